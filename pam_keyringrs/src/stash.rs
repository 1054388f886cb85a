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
//!
//! A process that authenticates and then opens the session itself may change its session id in
//! between: greetd's session worker calls `setsid()` after `pam_authenticate` and before
//! `pam_open_session` (found under the real greetd in the VM test). So the handle that stashed
//! remembers the session id it stashed under (`put` returns it), and session open in that same
//! handle looks there; only a handle that stashed nothing (sshd's parent, whose auth child put
//! the password) looks under its current session id.

use libkeyring::keyring::{perm, persistent_keyring_of, KeySerial, Keyring};
use libkeyring::{Error, Result};
use zeroize::Zeroizing;

/// Seconds a stashed password lives in the kernel at most: a login goes from authentication to
/// session open in well under this (a password-change dialogue re-stashes the new password).
pub const TTL: u32 = 30;

/// Possessor view, read, search: nobody else, not even the owner uid without possession.
const MASK: u32 = perm::POS_VIEW | perm::POS_READ | perm::POS_SEARCH;

fn description(sid: i32, user: &str) -> String {
    format!("keyringrs-stash:{sid}:{user}")
}

/// The session id a stash of this process goes under now.
pub fn current_sid() -> i32 {
    libkeyring::sys::sid()
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

/// Put `password` for `user` into the kernel (replacing an earlier one of this login); returns
/// the session id it went under.
pub fn put(user: &str, password: &[u8]) -> Result<i32> {
    let holding = Holding::get()?;
    let sid = current_sid();
    Keyring::Thread
        .add(&description(sid, user), password)?
        .place(MASK, Keyring::Id(holding.0), Some(TTL))
        .map(|_| sid)
}

/// Take the password stashed for `user` under session id `sid`: read once, then invalidated.
pub fn take(user: &str, sid: i32) -> Result<Option<Zeroizing<Vec<u8>>>> {
    let holding = Holding::get()?;
    let key = match Keyring::Id(holding.0).search(&description(sid, user)) {
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

/// Forget the password stashed for `user` under session id `sid`, if any.
pub fn discard(user: &str, sid: i32) {
    if let Ok(holding) = Holding::get() {
        if let Ok(key) = Keyring::Id(holding.0).search(&description(sid, user)) {
            let _ = key.invalidate();
        }
    }
}
