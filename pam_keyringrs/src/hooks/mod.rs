//! What each PAM hook does, as plain Rust over the [`Pam`] trait. Every problem is logged once
//! with its reason and turns into [`Outcome::Skipped`]: this module never fails or blocks a login.
//!
//! Who may read the key, and how long (docs/PAM.md has the table):
//! - a *text* login (tty, ssh; `scope=session`, the default for them) puts the key pair into its
//!   own session keyring: only that login's processes read it, and its close locks it;
//! - a *graphical* login (`scope=user`, the default for them) puts it into the user keyring `@u`,
//!   where the user's service manager and everything it starts find it, and records itself as a
//!   holder; the last holder's close locks it, and a killed login stops counting at once.
//!
//! One file a hook: [`auth`] (`auth`: remember the password), [`session_open`] (unlock, or create
//! at the first login, with [`first_login`] bringing over the gnome-keyring login keyring),
//! [`session_close`] (lock or release) and [`password`] (rewrap on passwd). What several of them
//! share is here: the outcome, the lock wait, the phase-tagged log and acting as the user.

use std::time::Duration;

use libkeyring::sys::creds::{self, Account, AsRealUser, AsUser};
use libkeyring::Error;

use crate::handle::{Level, Pam};
use crate::options::Options;

pub mod auth;
pub mod first_login;
pub mod password;
pub mod session_close;
pub mod session_open;
mod tpm2;

#[cfg(test)]
mod fake;

pub use auth::authenticate;
pub use first_login::IMPORT_MESSAGE;
pub use password::change_password;
pub use session_close::close_session;
pub use session_open::{open_session, LoginKind, RESYNC_MESSAGE};

/// `PAM_PRELIM_CHECK` and `PAM_UPDATE_AUTHTOK` (security/_pam_types.h).
pub const PAM_PRELIM_CHECK: u32 = 0x4000;
pub const PAM_UPDATE_AUTHTOK: u32 = 0x2000;

/// The longest a login waits for the store's writer lock (held by a process of the user): the
/// store is then left as it is, and the login goes on.
pub const LOCK_WAIT: Duration = Duration::from_secs(1);

/// What a hook did: `Done` → PAM_SUCCESS, `Skipped` → PAM_IGNORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Skipped,
}

struct Log<'a, P: Pam> {
    pam: &'a P,
    debug: bool,
    phase: &'static str,
}

impl<'a, P: Pam> Log<'a, P> {
    /// The log of one hook call: `phase` prefixes every line, debug lines only with `debug`.
    fn new(pam: &'a P, opts: &Options, phase: &'static str) -> Self {
        Log {
            pam,
            debug: opts.debug,
            phase,
        }
    }

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

/// Run `f` with the user's real ids too (for `@u` and joining a keyring), only for that call.
fn as_real_user<T>(account: &Account, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let _real = AsRealUser::enter(account)?;
    f()
}
