//! The libpam side: items, module data, syslog and the conversation, behind the [`Pam`] trait so
//! the hooks' logic in [`crate::hooks`] is plain Rust that tests can drive without libpam.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, CString};

use pam::constants::{PamFlag, PAM_SILENT, PAM_TEXT_INFO};
use pam::conv::Conv;
use pam::items::{AuthTok, OldAuthTok, User};
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

/// The key a session open installed, so that close locks exactly that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub user: String,
    pub serial: i32,
    pub description: String,
}

/// What the hooks need from libpam.
pub trait Pam {
    /// PAM_USER, if set (never prompts).
    fn user(&self) -> Option<String>;
    /// PAM_AUTHTOK, if set.
    fn authtok(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// PAM_OLDAUTHTOK, if set.
    fn old_authtok(&self) -> Option<Zeroizing<Vec<u8>>>;
    /// pam_syslog.
    fn log(&self, level: Level, msg: &str);
    /// A PAM_TEXT_INFO message to the user (not sent with PAM_SILENT).
    fn info(&self, msg: &str);
    fn stash_password(&mut self, stash: Stash);
    /// The stashed password, wiping the stash.
    fn take_password(&mut self) -> Option<Stash>;
    fn record_key(&mut self, key: Installed);
    fn take_key(&mut self) -> Option<Installed>;
}

const STASH: &str = "pam_keyringrs_authtok";
const KEY: &str = "pam_keyringrs_key";

unsafe extern "C" {
    /// `void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...)`
    fn pam_syslog(pamh: *const PamHandle, priority: c_int, fmt: *const c_char, ...);
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
        // Option<Stash>, KEY holds Option<Installed>), so the type matches.
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
        let _ = self
            .pamh
            .set_data::<Option<Stash>>(STASH, Box::new(Some(stash)));
    }

    fn take_password(&mut self) -> Option<Stash> {
        self.take::<Stash>(STASH)
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
