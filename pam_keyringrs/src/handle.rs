//! The libpam side: items, module data, syslog and the conversation, behind the [`Pam`] trait so
//! the hooks' logic in [`crate::hooks`] is plain Rust that tests can drive without libpam.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CString};

use pam::constants::{PamFlag, PAM_SILENT, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{AuthTok, OldAuthTok, Tty, User};
use pam::module::PamHandle;
use zeroize::Zeroizing;

/// Syslog priorities the module uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

impl Level {
    fn priority(self) -> c_int {
        match self {
            Level::Debug => libc::LOG_DEBUG,
            Level::Info => libc::LOG_INFO,
            Level::Notice => libc::LOG_NOTICE,
            Level::Warning => libc::LOG_WARNING,
            Level::Error => libc::LOG_ERR,
        }
    }
}

/// The login password remembered between `auth` and `session` open, tagged with the user it
/// was given for. Wiped when dropped: on use, and by libpam's cleanup at pam_end.
#[derive(Clone)]
pub struct Stash {
    pub user: String,
    pub password: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Stash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stash")
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .finish()
    }
}

/// What a session open did, so that close undoes exactly that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// Session scope: this login's own key (serial and description), invalidated at close if
    /// it still is that key.
    Session {
        user: String,
        serial: i32,
        description: String,
    },
    /// User scope: this login, whose session keyring is `session`, holds the store open in `@u`;
    /// close releases it and the last live holder locks it. `own_keyring`: the module joined
    /// that session keyring itself (no pam_keyinit in the stack) and revokes it at close.
    Holder {
        user: String,
        session: i32,
        own_keyring: bool,
    },
    /// User scope, store left locked, but the module joined a session keyring for this login
    /// (no pam_keyinit in the stack) that close revokes.
    OwnKeyring { user: String, session: i32 },
}

impl Installed {
    pub fn user(&self) -> &str {
        match self {
            Installed::Session { user, .. }
            | Installed::Holder { user, .. }
            | Installed::OwnKeyring { user, .. } => user,
        }
    }
}

/// What the hooks need from libpam.
pub trait Pam {
    /// PAM_USER, if set (never prompts).
    fn user(&self) -> Option<String>;
    /// PAM_AUTHTOK, if set.
    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// PAM_OLDAUTHTOK, if set.
    fn old_authtok(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// PAM_TTY, if set.
    fn tty(&self) -> Option<String>;
    /// A variable of the PAM environment (pam_getenv), if set.
    fn env(&self, name: &str) -> Option<String>;
    /// pam_syslog.
    fn log(&self, level: Level, msg: &str);
    /// A PAM_TEXT_INFO message to the user (not sent with PAM_SILENT).
    fn info(&self, msg: &str);
    /// Remember the verified password until session open (see [`crate::stash`]).
    fn stash_password(&mut self, stash: Stash);
    /// The password remembered for `user` by this login, wiping it wherever it was kept.
    fn take_password(&mut self, user: &str) -> Option<Stash>;
    fn record_key(&mut self, key: Installed);
    fn take_key(&mut self) -> Option<Installed>;
}

const STASH: &str = "pam_keyringrs_authtok";
const MARKER: &str = "pam_keyringrs_stashed";
const KEY: &str = "pam_keyringrs_key";

unsafe extern "C" {
    /// `void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...)`
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
    /// `const char *pam_getenv(pam_handle_t *pamh, const char *name)`
    fn pam_getenv(pamh: *const PamHandle, name: *const c_char) -> *const c_char;
}

/// Set in the PAM handle of the process that stashed a password in the kernel: when libpam
/// drops it (pam_end, or replaced on take), the kernel copy is discarded if still there. Only in
/// the process that put it there: sshd's auth child never calls pam_end, its parent consumes it.
/// It also says under which session id the password went, for a session open in this handle
/// after a `setsid()` (greetd's worker; see [`crate::stash`]).
#[derive(Clone, Debug)]
struct StashMarker {
    user: String,
    pid: u32,
    sid: i32,
}

impl Drop for StashMarker {
    fn drop(&mut self) {
        if std::process::id() == self.pid {
            crate::stash::discard(&self.user, self.sid);
        }
    }
}

/// libpam's handle for one hook call.
pub struct Handle<'a> {
    pamh: &'a mut PamHandle,
    silent: bool,
}

impl std::fmt::Debug for Handle<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("silent", &self.silent)
            .finish()
    }
}

impl<'a> Handle<'a> {
    pub fn new(pamh: &'a mut PamHandle, flags: PamFlag) -> Handle<'a> {
        Handle {
            pamh,
            silent: flags & PAM_SILENT != 0,
        }
    }

    /// Take the `Option<T>` stored under `name`, leaving `None` (libpam runs the cleanup of the
    /// old value, which drops and so wipes it).
    fn take<T: Clone + 'static>(&mut self, name: &str) -> Option<T> {
        // SAFETY: this module stores only `Option<T>` under each of its names (STASH holds
        // Option<Stash>, MARKER Option<StashMarker>, KEY Option<Installed>), so the type matches.
        let value = unsafe { self.pamh.get_data::<Option<T>>(name) }
            .ok()
            .and_then(|v| v.clone());
        if value.is_some() {
            let _ = self.pamh.set_data::<Option<T>>(name, Box::new(None));
        }
        value
    }
}

fn secret(item: Option<&[u8]>) -> Option<Zeroizing<Vec<u8>>> {
    item.map(|b| Zeroizing::new(b.to_vec()))
}

impl Pam for Handle<'_> {
    fn user(&self) -> Option<String> {
        let user = self.pamh.get_item::<User>().ok().flatten()?;
        user.0.to_str().ok().map(str::to_owned)
    }

    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        let tok = self.pamh.get_item::<AuthTok>().ok().flatten();
        secret(tok.as_ref().map(AuthTok::as_bytes))
    }

    fn old_authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
        let tok = self.pamh.get_item::<OldAuthTok>().ok().flatten();
        secret(tok.as_ref().map(OldAuthTok::as_bytes))
    }

    fn tty(&self) -> Option<String> {
        let tty = self.pamh.get_item::<Tty>().ok().flatten()?;
        tty.0.to_str().ok().map(str::to_owned)
    }

    fn env(&self, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        // SAFETY: pamh is the live handle of this call and name is NUL-terminated; the result is
        // NULL or a NUL-terminated string owned by libpam, copied out before we return.
        let value = unsafe { pam_getenv(self.pamh, name.as_ptr()) };
        if value.is_null() {
            return None;
        }
        // SAFETY: non-NULL results of pam_getenv are NUL-terminated strings.
        let value = unsafe { std::ffi::CStr::from_ptr(value) };
        value.to_str().ok().map(str::to_owned)
    }

    fn log(&self, level: Level, msg: &str) {
        let msg = CString::new(msg.replace('\0', "?")).unwrap_or_default();
        // SAFETY: pamh is the live handle of this call; the format is a literal "%s" and its
        // one argument is a NUL-terminated string that outlives the call.
        unsafe { pam_syslog(self.pamh, level.priority(), c"%s".as_ptr(), msg.as_ptr()) };
    }

    fn info(&self, msg: &str) {
        if self.silent {
            return;
        }
        if let Ok(Some(conv)) = self.pamh.get_item::<Conv>() {
            let _ = conv.send(PAM_TEXT_INFO, msg);
        }
    }

    fn stash_password(&mut self, stash: Stash) {
        match crate::stash::put(&stash.user, &stash.password) {
            Ok(sid) => {
                let marker = StashMarker {
                    user: stash.user.clone(),
                    pid: std::process::id(),
                    sid,
                };
                let _ = self
                    .pamh
                    .set_data::<Option<StashMarker>>(MARKER, Box::new(Some(marker)));
            }
            Err(e) => {
                // No persistent keyrings (CONFIG_PERSISTENT_KEYRINGS), or quota: keep it in this
                // process, locked in memory, as a fallback (it does not survive sshd's fork).
                self.log(
                    Level::Notice,
                    &format!(
                        "auth: cannot keep the password in the kernel ({e}); keeping it in this                          process until session open"
                    ),
                );
                libkeyring::sys::lock_memory(&stash.password);
                let _ = self
                    .pamh
                    .set_data::<Option<Stash>>(STASH, Box::new(Some(stash)));
            }
        }
    }

    fn take_password(&mut self, user: &str) -> Option<Stash> {
        let kept = self.take::<Stash>(STASH);
        // This handle's own stash is under the session id it was put under; a stash of another
        // process of this login (sshd's auth child) is under the current one.
        // Read without taking: dropping the marker discards the kernel copy.
        // SAFETY: MARKER holds only Option<StashMarker> (see `take`).
        let sid = unsafe { self.pamh.get_data::<Option<StashMarker>>(MARKER) }
            .ok()
            .and_then(|m| m.as_ref().map(|m| m.sid))
            .unwrap_or_else(crate::stash::current_sid);
        let stashed = crate::stash::take(user, sid).ok().flatten();
        // Dropping the marker now (its kernel copy is gone already).
        let _ = self.take::<StashMarker>(MARKER);
        match (stashed, kept) {
            (Some(password), _) => Some(Stash {
                user: user.to_owned(),
                password,
            }),
            (None, kept) => kept,
        }
    }

    fn record_key(&mut self, key: Installed) {
        let _ = self
            .pamh
            .set_data::<Option<Installed>>(KEY, Box::new(Some(key)));
    }

    fn take_key(&mut self) -> Option<Installed> {
        self.take::<Installed>(KEY)
    }
}
