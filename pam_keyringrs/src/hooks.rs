//! What each PAM hook does, as plain Rust over the [`Pam`] trait. Every problem is logged once
//! with its reason and turns into [`Outcome::Skipped`]: this module never fails or blocks a login.

use libkeyring::keyring::{KeySerial, Keyring};
use libkeyring::sys::creds::{self, Account, AsUser};
use libkeyring::{Error, Scope, Store, UnlockOptions};

use crate::handle::{Installed, Level, Pam, Stash};
use crate::options::Options;

/// `PAM_PRELIM_CHECK` and `PAM_UPDATE_AUTHTOK` (security/_pam_types.h).
pub const PAM_PRELIM_CHECK: u32 = 0x4000;
pub const PAM_UPDATE_AUTHTOK: u32 = 0x2000;

/// What a hook did: `Done` → PAM_SUCCESS, `Skipped` → PAM_IGNORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Skipped,
}

/// Shown to the user when the login password no longer opens the store.
pub const RESYNC_MESSAGE: &str = "Your keyringrs secrets stay locked: your login password does \
not open them (was it reset?). Run `keyringrs unlock` with your previous password, then \
`keyringrs passwd` to change it to your login password.";

struct Log<'a, P: Pam> {
    pam: &'a P,
    debug: bool,
    phase: &'static str,
}

impl<P: Pam> Log<'_, P> {
    fn at(&self, level: Level, msg: &str) {
        if level != Level::Debug || self.debug {
            self.pam.log(level, &format!("{}: {msg}", self.phase));
        }
    }
    fn debug(&self, msg: &str) {
        self.at(Level::Debug, msg)
    }
    /// Log a library error with the level its kind deserves.
    fn error(&self, what: &str, err: &Error) {
        let level = match err {
            Error::WrongPassword | Error::NoStore(_) => Level::Notice,
            Error::Quota(_) | Error::Locked => Level::Warning,
            _ => Level::Error,
        };
        self.at(level, &format!("{what}: {err}"));
    }
}

/// Look the user up and act as them (fsuid, fsgid, groups) for the rest of the hook.
fn become_user<P: Pam>(log: &Log<P>, user: &str) -> Option<(Account, AsUser)> {
    let account = creds::account(user)
        .map_err(|e| log.error(&format!("user {user}"), &e))
        .ok()?;
    let guard = AsUser::enter(&account)
        .map_err(|e| log.error(&format!("acting as {user}"), &e))
        .ok()?;
    Some((account, guard))
}

/// The key may only go into a real per-session keyring of this user: one pam_keyinit made
/// (owned by the user), not the `_uid_ses.N` fallback and not the caller's (root's) keyring.
fn check_session_keyring(account: &Account) -> Result<(), String> {
    let d = Keyring::Session
        .describe()
        .map_err(|e| format!("no usable session keyring ({e})"))?;
    if d.description.starts_with("_uid_ses.") {
        return Err(format!(
            "the session keyring is the shared fallback {} (no pam_keyinit before \
             pam_keyringrs in this stack?)",
            d.description
        ));
    }
    if d.uid != account.uid {
        return Err(format!(
            "the session keyring {:?} belongs to uid {}, not to {} (uid {}): pam_keyinit must \
             run before pam_keyringrs in the session stack",
            d.description, d.uid, account.name, account.uid
        ));
    }
    Ok(())
}

/// `auth`: remember the password the stack has verified, for session open.
pub fn authenticate(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "auth",
    };
    let Some(user) = pam.user() else {
        log.debug("no user name: nothing to remember");
        return Outcome::Skipped;
    };
    let Some(password) = pam.authtok() else {
        log.debug(&format!(
            "no password for {user} (key or password-less authentication): nothing to remember"
        ));
        return Outcome::Skipped;
    };
    log.debug(&format!(
        "remembering the password of {user} for session open"
    ));
    pam.stash_password(Stash { user, password });
    Outcome::Skipped
}

/// `session` open: unlock the user's store with the remembered password (create it on the first
/// login unless `no_init`), and remember the key for close.
pub fn open_session(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let user = pam.user();
    // Taken (and so wiped from the PAM handle) whatever happens next.
    let stash = pam.take_password();
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "session open",
    };
    let Some(user) = user else {
        log.debug("no user name: nothing to unlock");
        return Outcome::Skipped;
    };
    let Some(stash) = stash else {
        log.debug(&format!(
            "no password from auth for {user} (ssh key, autologin, su from root, or \
             pam_keyringrs missing from the auth stack): store left locked"
        ));
        return Outcome::Skipped;
    };
    if stash.user != user {
        log.at(
            Level::Notice,
            &format!(
                "the password was given for {} but the session is for {user}: not used, store \
                 left locked",
                stash.user
            ),
        );
        return Outcome::Skipped;
    }
    let Some((account, _as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
    if opts.scope == Scope::Session {
        if let Err(why) = check_session_keyring(&account) {
            log.at(
                Level::Notice,
                &format!("{why}: store of {user} left locked"),
            );
            return Outcome::Skipped;
        }
    }
    let path = opts.store_path(&account.name, &account.home);
    let how = UnlockOptions {
        kdf: opts.kdf,
        scope: opts.scope,
        timeout: opts.timeout,
    };
    let store = match Store::open(&path) {
        Ok(store) => match store.unlock(&stash.password, &how) {
            // Unlocked already (e.g. a `scope=user` key another session put in @u): that key is
            // not ours to lock at close, unless `timeout=` made unlock replace it with ours.
            Ok(report) if report.already_unlocked && opts.timeout.is_none() => {
                log.debug(&format!(
                    "store {} of {user} was unlocked already; close leaves it",
                    path.display()
                ));
                return Outcome::Done;
            }
            Ok(report) => {
                if let Some(w) = report.warning {
                    log.at(Level::Warning, &w);
                }
                log.at(
                    Level::Info,
                    &format!("unlocked store {} of {user}", path.display()),
                );
                store
            }
            Err(e) => {
                log.error(
                    &format!("unlocking store {} of {user}, left locked", path.display()),
                    &e,
                );
                if let Error::WrongPassword = e {
                    log.pam.info(RESYNC_MESSAGE);
                }
                return Outcome::Skipped;
            }
        },
        Err(Error::NoStore(_)) if opts.no_init => {
            log.debug(&format!(
                "no store at {} for {user} and no_init: nothing to unlock",
                path.display()
            ));
            return Outcome::Skipped;
        }
        Err(Error::NoStore(_)) => match Store::init(&path, &stash.password, &how) {
            Ok(store) => {
                log.at(
                    Level::Info,
                    &format!("created store {} of {user} (first login)", path.display()),
                );
                store
            }
            Err(e) => {
                log.error(&format!("creating store {} of {user}", path.display()), &e);
                return Outcome::Skipped;
            }
        },
        Err(e) => {
            log.error(&format!("opening store {} of {user}", path.display()), &e);
            return Outcome::Skipped;
        }
    };
    drop(stash);
    match store.find_key() {
        Ok(KeySerial(serial)) => {
            log.debug(&format!(
                "key {serial} installed; close_session will lock it"
            ));
            pam.record_key(Installed {
                user,
                serial,
                description: store.key_description().to_owned(),
            });
        }
        Err(e) => log.error("finding the key just installed", &e),
    }
    Outcome::Done
}

/// `session` close: invalidate the key this session's open installed (if it is still that key).
pub fn close_session(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let key = pam.take_key();
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "session close",
    };
    let Some(key) = key else {
        log.debug("this session unlocked no store: nothing to lock");
        return Outcome::Skipped;
    };
    let Some((account, _as_user)) = become_user(&log, &key.user) else {
        return Outcome::Skipped;
    };
    let serial = KeySerial(key.serial);
    // The serial could have been freed and reused since open: only a key with our description
    // and owner is ours to invalidate.
    match serial.describe() {
        Ok(d) if d.description == key.description && d.uid == account.uid => {
            match serial.invalidate() {
                Ok(()) => {
                    log.at(Level::Info, &format!("locked the store of {}", key.user));
                    Outcome::Done
                }
                Err(e) => {
                    log.error(&format!("locking the store of {}", key.user), &e);
                    Outcome::Skipped
                }
            }
        }
        Ok(_) | Err(Error::Locked) => {
            log.debug(&format!(
                "the key of {} is gone already (locked, expired or revoked)",
                key.user
            ));
            Outcome::Skipped
        }
        Err(e) => {
            log.error(&format!("finding the key of {}", key.user), &e);
            Outcome::Skipped
        }
    }
}

/// `password`: on PAM_UPDATE_AUTHTOK, rewrap the store's master key from the old password to the
/// new one (entries are untouched).
pub fn change_password(pam: &mut impl Pam, opts: &Options, flags: u32) -> Outcome {
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "password",
    };
    if flags & PAM_UPDATE_AUTHTOK == 0 {
        return Outcome::Skipped;
    }
    let Some(user) = pam.user() else {
        log.debug("no user name: nothing to rewrap");
        return Outcome::Skipped;
    };
    let (Some(old), Some(new)) = (pam.old_authtok(), pam.authtok()) else {
        log.at(
            Level::Notice,
            &format!(
                "the old or new password of {user} is not available (set by root?): the store \
                 keeps its password; the next login tells the user how to resync"
            ),
        );
        return Outcome::Skipped;
    };
    let Some((account, as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
    let path = opts.store_path(&account.name, &account.home);
    let result = Store::open(&path).and_then(|s| s.passwd(&old, &new, opts.kdf));
    drop(as_user);
    match result {
        Ok(()) => {
            log.at(
                Level::Info,
                &format!(
                    "rewrapped store {} of {user} for the new password",
                    path.display()
                ),
            );
            // A password changed during login (expired): session open must use the new one.
            if let Some(mut stash) = pam.take_password() {
                if stash.user == user {
                    stash.password = new;
                }
                pam.stash_password(stash);
            }
            Outcome::Done
        }
        Err(Error::NoStore(_)) => {
            log.debug(&format!(
                "no store at {} for {user}: nothing to rewrap",
                path.display()
            ));
            Outcome::Skipped
        }
        Err(e) => {
            log.error(
                &format!(
                    "rewrapping store {} of {user}, it keeps its password",
                    path.display()
                ),
                &e,
            );
            if let Error::WrongPassword = e {
                pam.info(
                    "Your keyringrs secrets keep their old password (it was not your previous \
                     login password). Run `keyringrs passwd` to change it.",
                );
            }
            Outcome::Skipped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    /// libpam stand-in: items, data and what was logged or shown.
    #[derive(Default)]
    struct Fake {
        user: Option<String>,
        authtok: Option<Vec<u8>>,
        stash: Option<Stash>,
        key: Option<Installed>,
        logged: std::cell::RefCell<Vec<(Level, String)>>,
        shown: std::cell::RefCell<Vec<String>>,
    }

    impl Pam for Fake {
        fn user(&self) -> Option<String> {
            self.user.clone()
        }
        fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
            self.authtok.clone().map(Zeroizing::new)
        }
        fn old_authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
            None
        }
        fn log(&self, level: Level, msg: &str) {
            self.logged.borrow_mut().push((level, msg.to_owned()));
        }
        fn info(&self, msg: &str) {
            self.shown.borrow_mut().push(msg.to_owned());
        }
        fn stash_password(&mut self, stash: Stash) {
            self.stash = Some(stash);
        }
        fn take_password(&mut self) -> Option<Stash> {
            self.stash.take()
        }
        fn record_key(&mut self, key: Installed) {
            self.key = Some(key);
        }
        fn take_key(&mut self) -> Option<Installed> {
            self.key.take()
        }
    }

    fn fake(user: &str, authtok: Option<&[u8]>) -> Fake {
        Fake {
            user: Some(user.into()),
            authtok: authtok.map(<[u8]>::to_vec),
            ..Fake::default()
        }
    }

    #[test]
    fn auth_remembers_the_password_tagged_with_the_user_and_never_decides() {
        let mut pam = fake("alice", Some(b"pw"));
        assert_eq!(
            authenticate(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        let stash = pam.stash.expect("stashed");
        assert_eq!(
            (stash.user.as_str(), &stash.password[..]),
            ("alice", &b"pw"[..])
        );
        assert!(!format!("{stash:?}").contains("pw\""), "Debug must redact");

        let mut pam = fake("alice", None);
        assert_eq!(
            authenticate(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert!(pam.stash.is_none());
    }

    #[test]
    fn no_password_is_a_quiet_skip() {
        let mut pam = fake("alice", None);
        assert_eq!(
            open_session(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert!(pam.logged.borrow().is_empty(), "{:?}", pam.logged.borrow());
        let (debug, _) = Options::parse(["debug"]);
        assert_eq!(open_session(&mut pam, &debug), Outcome::Skipped);
        assert_eq!(pam.logged.borrow()[0].0, Level::Debug);
    }

    #[test]
    fn a_password_for_another_user_is_not_used_and_is_wiped() {
        let mut pam = fake("alice", None);
        pam.stash = Some(Stash {
            user: "bob".into(),
            password: Zeroizing::new(b"bobs".to_vec()),
        });
        assert_eq!(
            open_session(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert!(
            pam.stash.is_none(),
            "the stash must be taken (wiped) whatever happens"
        );
        let logged = pam.logged.borrow();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].0, Level::Notice);
        assert!(logged[0]
            .1
            .contains("given for bob but the session is for alice"));
        assert!(!logged[0].1.contains("bobs"));
    }

    #[test]
    fn close_without_an_installed_key_does_nothing_and_prelim_check_changes_nothing() {
        let mut pam = fake("alice", Some(b"new"));
        assert_eq!(
            close_session(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert_eq!(
            change_password(&mut pam, &Options::default(), PAM_PRELIM_CHECK),
            Outcome::Skipped
        );
        assert!(pam.logged.borrow().is_empty());
    }
}
