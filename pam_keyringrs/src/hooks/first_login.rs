//! The first-login import: at the login that created the store, the items of the user's
//! gnome-keyring login keyring come over if it opens with the login password.

use libkeyring::sys::creds::Account;
use libkeyring::{Error, Store};

use crate::handle::{Level, Pam};

use super::Log;

/// At the first login (the store was just created): bring over the items of the user's
/// gnome-keyring login keyring if it opens with the login password (or has none: the textual
/// format), as the user, into the unlocked store. Bounded (the reader caps size, counts and
/// iterations; writes wait at most LOCK_WAIT), and never fails the login: a keyring that does
/// not open is left for `keyringrs import gnome-keyring`, with a message.
pub(super) fn import_login_keyring<P: Pam>(
    log: &Log<P>,
    account: &Account,
    store: &Store,
    password: &[u8],
) {
    use keyringrs_import::{self as import, gnome};
    let user = &account.name;
    // From the passwd home, never from XDG_DATA_HOME: the environment is not the user's here.
    let path = account.home.join(".local/share/keyrings/login.keyring");
    if std::fs::symlink_metadata(&path).is_err() {
        log.debug(&format!(
            "no gnome-keyring login keyring for {user}: nothing to import"
        ));
        return;
    }
    let result = gnome::read_file(&path)
        .and_then(|bytes| gnome::parse(&path, &bytes, Some(password)))
        .and_then(|keyring| {
            let items: Vec<import::Item> = keyring.items.into_iter().map(Into::into).collect();
            let plan = import::plan_for(store, &items)?;
            import::apply(store, &items, &plan)?;
            Ok(plan.summary())
        });
    match result {
        Ok(summary) => log.at(
            Level::Info,
            &format!(
                "imported the gnome-keyring login keyring {} of {user}: {summary}",
                path.display()
            ),
        ),
        Err(Error::WrongPassword) => {
            log.at(
                Level::Notice,
                &format!(
                    "the gnome-keyring login keyring {} of {user} does not open with the login \
                     password: not imported",
                    path.display()
                ),
            );
            log.pam.info(IMPORT_MESSAGE);
        }
        Err(e) => log.error(
            &format!(
                "importing the gnome-keyring login keyring {} of {user}",
                path.display()
            ),
            &e,
        ),
    }
}

/// Shown when the gnome-keyring login keyring could not be imported at the first login.
pub const IMPORT_MESSAGE: &str = "Your gnome-keyring login keyring does not open with your login \
password, so its secrets were not brought over to keyringrs. Run `keyringrs import \
gnome-keyring` and give its password.";
