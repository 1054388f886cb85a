//! The `session` close hook: undo what this login's open did (lock its key, release its hold on
//! the store in `@u`, revoke a session keyring the module made).

use libkeyring::holders;
use libkeyring::keyring::KeySerial;
use libkeyring::sys::creds::Account;
use libkeyring::{Error, Store};

use crate::handle::{Installed, Level, Pam};
use crate::options::Options;

use super::{as_real_user, become_user, Log, Outcome};

/// `session` close: undo what this session's open did — invalidate its own keys, or release
/// its hold on the store in `@u` (the last live holder locks it), and revoke a session keyring
/// the module made.
pub fn close_session(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let key = pam.take_key();
    let log = Log::new(pam, opts, "session close");
    let Some(key) = key else {
        log.debug("this session unlocked no store: nothing to lock");
        return Outcome::Skipped;
    };
    let user = key.user().to_owned();
    let Some((account, _as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
    match key {
        Installed::Session {
            serial,
            description,
            ..
        } => {
            let outcome = close_own_key(&log, &account, KeySerial(serial), &description);
            lock_abandoned(&log, opts, &account);
            outcome
        }
        Installed::Holder {
            session,
            own_keyring,
            ..
        } => {
            let outcome = release_hold(&log, opts, &account, KeySerial(session));
            if own_keyring {
                revoke_own_keyring(&log, &account, session);
            }
            outcome
        }
        Installed::OwnKeyring { session, .. } => {
            revoke_own_keyring(&log, &account, session);
            Outcome::Done
        }
    }
}

/// Invalidate this login's key, if it still is that key: a serial freed and reused since open
/// belongs to something else.
fn close_own_key<P: Pam>(
    log: &Log<P>,
    account: &Account,
    serial: KeySerial,
    description: &str,
) -> Outcome {
    let user = &account.name;
    match serial.describe() {
        Ok(d) if d.description == description && d.uid == account.uid => {
            match serial.invalidate() {
                Ok(()) => {
                    log.at(Level::Info, &format!("locked the store of {user}"));
                    Outcome::Done
                }
                Err(e) => {
                    log.error(&format!("locking the store of {user}"), &e);
                    Outcome::Skipped
                }
            }
        }
        Ok(_) | Err(Error::Locked) => {
            log.debug(&format!(
                "the key of {user} is gone already (session keyring revoked, locked or expired)"
            ));
            Outcome::Skipped
        }
        Err(e) => {
            log.error(&format!("finding the key of {user}"), &e);
            Outcome::Skipped
        }
    }
}

/// A key in `@u` that only logins ended without a close held (killed) is locked now: this
/// close is the last chance before the user's next process would read it.
fn lock_abandoned<P: Pam>(log: &Log<P>, opts: &Options, account: &Account) {
    let path = opts.store_path(&account.name, &account.home);
    let Ok(store) = Store::open(&path) else {
        return;
    };
    match as_real_user(account, || holders::lock_if_abandoned(store.kernel_key())) {
        Ok(true) => log.at(
            Level::Info,
            &format!(
                "locked the store of {} in the user keyring: every login that held it there \
                 had ended without a close",
                account.name
            ),
        ),
        Ok(false) => {}
        Err(e) => log.error(
            &format!("checking the holders of {}'s store", account.name),
            &e,
        ),
    }
}

/// This login stops holding the store in `@u`; if no live holder remains, lock it there.
fn release_hold<P: Pam>(
    log: &Log<P>,
    opts: &Options,
    account: &Account,
    session: KeySerial,
) -> Outcome {
    let user = &account.name;
    let path = opts.store_path(&account.name, &account.home);
    let store = match Store::open(&path) {
        Ok(s) => s,
        Err(e) => {
            log.error(&format!("opening store {} of {user}", path.display()), &e);
            return Outcome::Skipped;
        }
    };
    let result = as_real_user(account, || {
        let remaining = holders::release(store.kernel_key(), session)?;
        if remaining == 0 {
            store.lock_user_scope()?;
        }
        Ok(remaining)
    });
    match result {
        Ok(0) => {
            log.at(
                Level::Info,
                &format!("locked the store of {user} (the last login holding it closed)"),
            );
            Outcome::Done
        }
        Ok(n) => {
            log.at(
                Level::Info,
                &format!(
                    "the store of {user} stays unlocked: {n} other login(s) of the user hold it"
                ),
            );
            Outcome::Done
        }
        Err(e) => {
            log.error(&format!("releasing the store of {user}"), &e);
            Outcome::Skipped
        }
    }
}

fn revoke_own_keyring<P: Pam>(log: &Log<P>, account: &Account, session: i32) {
    let serial = KeySerial(session);
    let ours =
        matches!(serial.describe(), Ok(d) if d.uid == account.uid && d.key_type == "keyring");
    if ours {
        if let Err(e) = serial.revoke() {
            log.error("revoking the session keyring made at open", &e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::{change_password, fake::fake, PAM_PRELIM_CHECK};

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
