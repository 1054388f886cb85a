//! The verified password between `auth` and session open, kept in the kernel, not in memory.
//!
//! Two reasons not to keep it in the process (pam_set_data):
//! - OpenSSH's keyboard-interactive method runs `pam_authenticate` in a forked child and sends
//!   only the result to the process that later opens the session: data set on the child's copy of
//!   the PAM handle never arrives. The kernel is shared by both.
//! - Programs that only authenticate (sudo, polkit agents, screen lockers: common-auth) keep their
//!   PAM handle for minutes or hours and never open a session that would consume the password.
//!
//! So `auth` puts the password into a `user` key `keyringrs-stash:<sid>:<user>` in the
//! persistent keyring of the process's effective uid (root for sshd, login, display managers and
//! sudo): possessor-only permissions, so only a process that can obtain that persistent keyring
//! (root, or the same euid) can read it — never the user, never the network-facing sshd child. It
//! expires after [`TTL`] seconds, session open reads it once and invalidates it, and pam_end of
//! the process that put it there invalidates it too. `<sid>` (the caller's session id) ties it to
//! the login: sshd's per-connection process and its auth child share it; other connections and
//! other terminals do not. The kernel frees the payload with kfree_sensitive (zeroed).

use libkeyring::keyring::{perm, persistent_keyring_of, KeySerial, Keyring};
use libkeyring::{Error, Result};
use zeroize::Zeroizing;

/// Seconds a stashed password lives in the kernel at most: a login goes from authentication to
/// session open in well under this (a password-change dialogue re-stashes the new password).
pub const TTL: u32 = 30;

/// Possessor view, read, search: nobody else, not even the owner uid without possession.
const MASK: u32 = perm::POS_VIEW | perm::POS_READ | perm::POS_SEARCH;

fn description(user: &str) -> String {
    let sid = libkeyring::sys::sid();
    format!("keyringrs-stash:{sid}:{user}")
}

/// The effective uid's persistent keyring, linked into this thread's keyring for the duration
/// of one operation (which is what makes us its possessor).
struct Holding(KeySerial);

impl Holding {
    fn get() -> Result<Holding> {
        persistent_keyring_of(libkeyring::sys::euid(), Keyring::Thread).map(Holding)
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        let _ = self.0.unlink(Keyring::Thread);
    }
}

/// Put `password` for `user` into the kernel (replacing an earlier one of this login).
pub fn put(user: &str, password: &[u8]) -> Result<()> {
    let holding = Holding::get()?;
    Keyring::Thread
        .add(&description(user), password)?
        .place(MASK, Keyring::Id(holding.0), Some(TTL))
        .map(drop)
}

/// Take the password stashed for `user` by this login: read once, then invalidated.
pub fn take(user: &str) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let holding = Holding::get()?;
    let key = match Keyring::Id(holding.0).search(&description(user)) {
        Ok(k) => k,
        Err(Error::Locked) => return Ok(None),
        Err(e) => return Err(e),
    };
    let password = key.read();
    let _ = key.invalidate();
    match password {
        Ok(p) => Ok(Some(p)),
        Err(Error::Locked) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Forget the password stashed for `user` by this login, if any.
pub fn discard(user: &str) {
    if let Ok(holding) = Holding::get() {
        if let Ok(key) = Keyring::Id(holding.0).search(&description(user)) {
            let _ = key.invalidate();
        }
    }
}
