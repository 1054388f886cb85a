//! Which logins hold a store open in the user keyring `@u` (scope `user`: desktop logins).
//!
//! A key in `@u` is shared by every login of the user, so no single login owns it. Each login that
//! unlocked the store there, or found it unlocked, is recorded as a *holder*: a small `user` key
//! `holder:<serial>` in the keyring `keyringrs-holders:<store-id>` (in `@u`), where `<serial>` is
//! that login's session keyring. The record also names the login's *opener*: the process that
//! opened the PAM session (login, sshd's session process, the display manager's session worker),
//! which keeps the PAM handle and runs the close, by pid, start time and pid namespace.
//!
//! A holder is alive while both are: its session keyring answers as a keyring of this user, and
//! its opener still runs. The keyring alone is not enough: the kernel reaps it asynchronously
//! after the login's last process (an RCU grace period and the key garbage collector later), and
//! never while some process that escaped the login (`setsid`, `nohup`, a daemon it started) keeps
//! it as its session keyring. The opener ends with the login, at once, whether it closed or was
//! killed: nothing counts on a counter that a crash would leave behind. Records written before
//! the opener was recorded are judged by their keyring alone.
//!
//! A login can also be recorded by its opener alone (`holder:pid:<PID>`, session 0): the Secret
//! Service daemon does so when its unlock prompt opens the store for a login that gave no
//! password (autologin, a fingerprint, an ssh key), whose session keyring it cannot name. Such a
//! holder is alive while its opener runs; its opener's own close releases it.
//!
//! Who notices a dead holder: every close (the last live holder's close locks the store), every
//! new holder, and [`lock_if_abandoned`] (the Secret Service daemon calls it every few seconds):
//! holders recorded but none alive → the store locks in `@u`.
//!
//! Nothing here is secret: the records are owner-only so that other uids learn nothing.

use super::key::StoreKey;
use super::keyring::{perm, KeySerial, Keyring};
use crate::error::{Error, Result};
use crate::sys::process::{self, Process};

/// One login holding the store open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The serial of that login's session keyring (0: recorded by its opener alone).
    pub session: i32,
    /// What kind of login (e.g. `graphical`, `text`), as the PAM module recorded it.
    pub kind: String,
    /// When it started holding the store (seconds since the epoch).
    pub since: i64,
    /// The process that opened the login's PAM session (None in records older than it).
    pub opener: Option<Process>,
    /// Whether its session keyring and its opener are still alive (a dead holder is pruned at
    /// the next release).
    pub alive: bool,
    /// The record's own key.
    record: KeySerial,
}

fn description(key: &StoreKey) -> String {
    format!("keyringrs-holders:{}", key.id())
}

/// The holders keyring of `store` in `@u`, if there is one.
fn find(key: &StoreKey) -> Result<Option<KeySerial>> {
    match Keyring::User.search_settled("keyring", &description(key), key.owner()) {
        Ok(k) => {
            let d = k.describe()?;
            if d.uid != key.owner() {
                return Err(Error::AccessDenied(format!(
                    "the keyring {:?} belongs to uid {}, not {}",
                    d.description,
                    d.uid,
                    key.owner()
                )));
            }
            Ok(Some(k))
        }
        Err(Error::Locked) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Is the login of session keyring `serial` and opener `opener` still there? Its keyring must
/// still be a keyring of `owner` (not reaped, revoked, or reused by another key or another user)
/// and its opener must not have ended; an opener this process cannot judge (another pid
/// namespace) leaves the keyring to answer alone.
fn alive(serial: i32, opener: Option<&Process>, owner: u32) -> bool {
    if serial == 0 {
        return opener.is_some_and(|o| o.running() != Some(false));
    }
    let keyring =
        matches!(KeySerial(serial).describe(), Ok(d) if d.key_type == "keyring" && d.uid == owner);
    keyring && opener.and_then(Process::running) != Some(false)
}

/// The record's payload: `KIND SINCE [PID START PIDNS]`.
fn payload(kind: &str, since: u64, opener: Option<&Process>) -> String {
    match opener {
        Some(p) => format!("{kind} {since} {} {} {}", p.pid, p.start, p.pid_ns),
        None => format!("{kind} {since}"),
    }
}

/// (kind, since, opener) from a record's payload; missing or bad fields read as absent.
fn parse(payload: &str) -> (String, i64, Option<Process>) {
    let mut words = payload.split(' ');
    let kind = words.next().unwrap_or("").to_owned();
    let since = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
    let opener = (|| {
        Some(Process {
            pid: words.next()?.parse().ok()?,
            start: words.next()?.parse().ok()?,
            pid_ns: words.next()?.parse().ok()?,
        })
    })();
    (kind, since, opener)
}

/// Record the login whose session keyring is `session`, opened by the calling process, as a
/// holder of `store`; dead holders are pruned first.
pub fn register(key: &StoreKey, session: KeySerial, kind: &str) -> Result<()> {
    add_record(
        key,
        &format!("holder:{}", session.0),
        kind,
        process::current().as_ref(),
    )
}

/// Record the login whose opener is `opener` as a holder of `store`, by its opener alone (the
/// caller cannot name its session keyring); dead holders are pruned first.
pub fn register_opener(key: &StoreKey, opener: &Process, kind: &str) -> Result<()> {
    add_record(
        key,
        &format!("holder:pid:{}", opener.pid),
        kind,
        Some(opener),
    )
}

fn add_record(key: &StoreKey, name: &str, kind: &str, opener: Option<&Process>) -> Result<()> {
    prune(key)?;
    let keyring = match find(key)? {
        Some(k) => k,
        None => Keyring::Thread.add_keyring(&description(key))?.place(
            perm::HOLDERS_KEYRING,
            Keyring::User,
            None,
        )?,
    };
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = Keyring::Thread.add(name, payload(kind, since, opener).as_bytes())?;
    record
        .place(perm::HOLDER, Keyring::Id(keyring), None)
        .map(drop)
}

/// Every holder of `store` recorded in `@u` (dead ones included, marked).
pub fn list(key: &StoreKey) -> Result<Vec<Holder>> {
    let Some(keyring) = find(key)? else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for record in keyring.members()? {
        let Ok(d) = record.describe() else { continue };
        let Some(session) =
            d.description
                .strip_prefix("holder:")
                .and_then(|s| match s.strip_prefix("pid:") {
                    Some(pid) => pid.parse::<i32>().ok().map(|_| 0),
                    None => s.parse::<i32>().ok().filter(|&n| n != 0),
                })
        else {
            continue;
        };
        if d.uid != key.owner() {
            continue;
        }
        let payload = record.read().unwrap_or_default();
        let (kind, since, opener) = parse(&String::from_utf8_lossy(&payload));
        out.push(Holder {
            session,
            kind,
            since,
            alive: alive(session, opener.as_ref(), key.owner()),
            opener,
            record,
        });
    }
    out.sort_by_key(|h| (h.since, h.session));
    Ok(out)
}

/// The login of `session` stops holding `store` (and so does a record of it by its opener, the
/// calling process); dead holders are pruned. Returns how many live
/// holders remain (0: the caller locks the store).
pub fn release(key: &StoreKey, session: KeySerial) -> Result<usize> {
    Ok(drop_holders(key, Some(session))?.live)
}

/// What a pass over the records found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// Holders still alive.
    pub live: usize,
    /// Records dropped (dead holders, and the released one).
    pub dropped: usize,
}

/// Forget the holders that are gone (and the login of `released`).
fn drop_holders(key: &StoreKey, released: Option<KeySerial>) -> Result<Pruned> {
    let mut p = Pruned {
        live: 0,
        dropped: 0,
    };
    let me = released.and_then(|_| process::current());
    for h in list(key)? {
        let own = match released {
            Some(_) if h.session == 0 => me.is_some() && h.opener == me,
            Some(s) => h.session == s.0,
            None => false,
        };
        if own || !h.alive {
            let _ = h.record.invalidate();
            p.dropped += 1;
        } else {
            p.live += 1;
        }
    }
    Ok(p)
}

/// Forget the holders that are gone.
pub fn prune(key: &StoreKey) -> Result<Pruned> {
    drop_holders(key, None)
}

/// If logins were recorded as holders of `store` and none of them is alive any more (killed
/// without a close, nobody else closed since), lock the store in `@u`. Ok(true) if it locked.
/// A store unlocked in `@u` with no holder recorded (`keyringrs unlock --scope user`) is left
/// alone.
pub fn lock_if_abandoned(key: &StoreKey) -> Result<bool> {
    let p = prune(key)?;
    if p.dropped > 0 && p.live == 0 {
        key.lock_in(&[Keyring::User])?;
        clear(key)?;
        return Ok(true);
    }
    Ok(false)
}

/// Forget every holder (`keyringrs lock`). Ok(true) if there was a record.
pub fn clear(key: &StoreKey) -> Result<bool> {
    match find(key) {
        Ok(Some(k)) => match k.invalidate() {
            Ok(()) | Err(Error::Locked) => Ok(true),
            Err(e) => Err(e),
        },
        Ok(None) => Ok(false),
        // Someone else's keyring under our name: not ours to forget.
        Err(Error::AccessDenied(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_names_its_opener_and_an_older_record_reads_without_one() {
        let p = Process {
            pid: 41,
            start: 12345,
            pid_ns: 4026531836,
        };
        let text = payload("graphical", 1700000000, Some(&p));
        assert_eq!(text, "graphical 1700000000 41 12345 4026531836");
        assert_eq!(parse(&text), ("graphical".into(), 1700000000, Some(p)));
        assert_eq!(
            parse("graphical 1700000000"),
            ("graphical".into(), 1700000000, None)
        );
        assert_eq!(
            parse("text 5 41 x 7"),
            ("text".into(), 5, None),
            "a bad field"
        );
        assert_eq!(parse(""), (String::new(), 0, None));
    }
}
