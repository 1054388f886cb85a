//! Which logins hold a store open in the user keyring `@u` (scope `user`: desktop logins).
//!
//! A key in `@u` is shared by every login of the user, so no single login owns it. Each login that
//! unlocked the store there, or found it unlocked, is recorded as a *holder*: a small `user` key
//! `holder:<serial>` in the keyring `keyringrs-holders:<store-id>` (in `@u`), where `<serial>` is
//! that login's session keyring. The kernel reaps a session keyring with the last process of its
//! login (and pam_keyinit revokes it at close), so a holder whose keyring no longer answers as a
//! keyring of this user is dead, whether its login closed or was killed: nothing counts on a
//! counter that a crash would leave behind. The last live holder's close locks the store.
//!
//! Nothing here is secret: the records are owner-only so that other uids learn nothing.

use crate::error::{Error, Result};
use crate::keyring::{perm, KeySerial, Keyring};
use crate::store::Store;

/// One login holding the store open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The serial of that login's session keyring.
    pub session: i32,
    /// What kind of login (e.g. `graphical`, `text`), as the PAM module recorded it.
    pub kind: String,
    /// When it started holding the store (seconds since the epoch).
    pub since: i64,
    /// Whether its session keyring is still alive (a dead one is pruned at the next release).
    pub alive: bool,
    /// The record's own key.
    record: KeySerial,
}

fn description(store: &Store) -> String {
    format!("keyringrs-holders:{}", store.id())
}

/// The holders keyring of `store` in `@u`, if there is one.
fn find(store: &Store) -> Result<Option<KeySerial>> {
    match Keyring::User.search_settled("keyring", &description(store), store.owner()) {
        Ok(k) => {
            let d = k.describe()?;
            if d.uid != store.owner() {
                return Err(Error::AccessDenied(format!(
                    "the keyring {:?} belongs to uid {}, not {}",
                    d.description,
                    d.uid,
                    store.owner()
                )));
            }
            Ok(Some(k))
        }
        Err(Error::Locked) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Is `serial` still a session keyring of `owner`? (Reaped, revoked, or reused by another key
/// or another user: no.)
fn alive(serial: i32, owner: u32) -> bool {
    matches!(KeySerial(serial).describe(), Ok(d) if d.key_type == "keyring" && d.uid == owner)
}

/// Record the login whose session keyring is `session` as a holder of `store`.
pub fn register(store: &Store, session: KeySerial, kind: &str) -> Result<()> {
    let keyring = match find(store)? {
        Some(k) => k,
        None => Keyring::Thread.add_keyring(&description(store))?.place(
            perm::HOLDERS_KEYRING,
            Keyring::User,
            None,
        )?,
    };
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let record = Keyring::Thread.add(
        &format!("holder:{}", session.0),
        format!("{kind} {since}").as_bytes(),
    )?;
    record
        .place(perm::HOLDER, Keyring::Id(keyring), None)
        .map(drop)
}

/// Every holder of `store` recorded in `@u` (dead ones included, marked).
pub fn list(store: &Store) -> Result<Vec<Holder>> {
    let Some(keyring) = find(store)? else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for record in keyring.members()? {
        let Ok(d) = record.describe() else { continue };
        let Some(session) = d
            .description
            .strip_prefix("holder:")
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if d.uid != store.owner() {
            continue;
        }
        let payload = record.read().unwrap_or_default();
        let text = String::from_utf8_lossy(&payload);
        let mut words = text.split(' ');
        let kind = words.next().unwrap_or("").to_owned();
        let since = words.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        out.push(Holder {
            session,
            kind,
            since,
            alive: alive(session, store.owner()),
            record,
        });
    }
    out.sort_by_key(|h| (h.since, h.session));
    Ok(out)
}

/// The login of `session` stops holding `store`; dead holders are pruned. Returns how many live
/// holders remain (0: the caller locks the store).
pub fn release(store: &Store, session: KeySerial) -> Result<usize> {
    let mut live = 0;
    for h in list(store)? {
        if h.session == session.0 || !h.alive {
            let _ = h.record.invalidate();
        } else {
            live += 1;
        }
    }
    Ok(live)
}

/// Forget every holder (`keyringrs lock`). Ok(true) if there was a record.
pub fn clear(store: &Store) -> Result<bool> {
    match find(store) {
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
