//! The `password` hook: on PAM_UPDATE_AUTHTOK, rewrap the store from the old password to the
//! new one.

use libkeyring::{Error, Store};

use crate::handle::{Level, Pam, Stash};
use crate::options::Options;

use super::{become_user, Log, Outcome, LOCK_WAIT, PAM_UPDATE_AUTHTOK};

/// `password`: on PAM_UPDATE_AUTHTOK, rewrap the store's master key from the old password to the
/// new one (entries are untouched).
pub fn change_password(pam: &mut impl Pam, opts: &Options, flags: u32) -> Outcome {
    let log = Log::new(pam, opts, "password");
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
    let result = Store::open(&path)
        .map(|s| s.with_lock_wait(Some(LOCK_WAIT)))
        .and_then(|s| s.passwd(&old, &new, opts.kdf));
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
            if let Some(stash) = pam.take_password(&user) {
                if stash.user == user {
                    pam.stash_password(Stash {
                        user: user.clone(),
                        password: new,
                    });
                }
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
