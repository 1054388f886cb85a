//! The `auth` hook: remember the password the stack has verified, for session open; and, in a
//! screen locker, reopen a store that a lock policy locked.

use libkeyring::sys::{self, creds, process};
use libkeyring::{holders, lock_note, Scope, Store, UnlockOptions};

use crate::handle::{Level, Pam, Stash};
use crate::options::Options;

use super::{Log, Outcome, LOCK_WAIT};

/// `auth`: remember the password the stack has verified, for session open.
pub fn authenticate(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let log = Log::new(pam, opts, "auth");
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
    if sys::euid() != 0 {
        reopen_after_policy_lock(&log, opts, &user, &password);
    }
    log.debug(&format!(
        "remembering the password of {user} for session open"
    ));
    pam.stash_password(Stash { user, password });
    Outcome::Skipped
}

/// A screen locker: the module runs as the user (not as root, as login programs do), inside a
/// running login. If a lock policy locked the store (at screen lock or suspend:
/// libkeyring's lock_note), the password of the screen unlock reopens it where the policy took
/// it from, `@u`, held by this login (its session's leader). Anything else is left alone: the
/// user's own `keyringrs lock` stays locked. Never fails the authentication.
fn reopen_after_policy_lock<P: Pam>(log: &Log<P>, opts: &Options, user: &str, password: &[u8]) {
    let Ok(account) = creds::account(user) else {
        return;
    };
    if account.uid != sys::euid() {
        return;
    }
    let Ok(store) = Store::open(opts.store_path(&account.name, &account.home)) else {
        return;
    };
    if !store.is_locked().unwrap_or(false) {
        return;
    }
    let Some((why, _)) = lock_note::get(store.kernel_key()) else {
        return;
    };
    let how = UnlockOptions {
        kdf: opts.kdf,
        scope: Scope::User,
        timeout: opts.timeout,
        lock_wait: Some(LOCK_WAIT),
    };
    let result = store
        .unlock(password, &how)
        .and_then(|_| match process::session_leader("self") {
            Some(leader) => holders::register_opener(store.kernel_key(), &leader, "graphical"),
            None => Ok(()),
        });
    match result {
        Ok(()) => log.at(
            Level::Info,
            &format!(
                "reopened the store of {user}, locked at {}, with the password of the screen \
                 unlock",
                why.replace('-', " ")
            ),
        ),
        Err(e) => log.error(&format!("reopening the store of {user} after {why}"), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::fake::fake;

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
}
