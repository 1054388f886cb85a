//! The typed kernel keyring layer: keyrings and keys as small values, with the operations the
//! store and the tools need. All system calls and errno mapping live in `sys::keyctl`.

use zeroize::Zeroizing;

use crate::error::Result;
use crate::sys::keyctl;

/// A keyring to add to or search from: one of the special keyrings, or one by serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyring {
    /// `@t`: this thread's keyring.
    Thread,
    /// `@p`: this process's keyring.
    Process,
    /// `@s`: the session keyring (what pam_keyinit gives each login).
    Session,
    /// `@u`: the user keyring, shared by all of the user's processes.
    User,
    /// `@us`: the user-session keyring, the fallback session keyring.
    UserSession,
    /// A keyring by serial (e.g. the persistent keyring from [`persistent_keyring`]).
    Id(KeySerial),
}

impl Keyring {
    fn raw(self) -> i32 {
        match self {
            Keyring::Thread => libc::KEY_SPEC_THREAD_KEYRING,
            Keyring::Process => libc::KEY_SPEC_PROCESS_KEYRING,
            Keyring::Session => libc::KEY_SPEC_SESSION_KEYRING,
            Keyring::User => libc::KEY_SPEC_USER_KEYRING,
            Keyring::UserSession => libc::KEY_SPEC_USER_SESSION_KEYRING,
            Keyring::Id(s) => s.0,
        }
    }

    /// The keyring's serial; with `create`, special keyrings are created if missing.
    pub fn serial(self, create: bool) -> Result<KeySerial> {
        keyctl::keyring_id(self.raw(), create).map(KeySerial)
    }

    /// Add a `user` key (or update the one with the same description in this keyring).
    pub fn add(self, description: &str, payload: &[u8]) -> Result<KeySerial> {
        keyctl::add_user_key(description, payload, self.raw()).map(KeySerial)
    }

    /// Search this keyring and the keyrings linked below it for a `user` key.
    pub fn search(self, description: &str) -> Result<KeySerial> {
        keyctl::search_user_key(self.raw(), description).map(KeySerial)
    }

    /// [`Keyring::search`] that tells a key of `owner` still being placed (see
    /// [`KeySerial::place`]) from a foreign one: a search that meets only a staged key fails
    /// with EACCES, as for a key someone else made unsearchable. If such a staged key of `owner`
    /// is linked here or in `@u`, wait (bounded) for its placing to finish and search again;
    /// still staged (its installer was stopped or killed mid-way) → Locked, since it cannot be
    /// read. Otherwise the AccessDenied stands, as strict as before.
    pub fn search_settled(self, kind: &str, description: &str, owner: u32) -> Result<KeySerial> {
        let search = || match kind {
            "keyring" => self.search_keyring(description),
            _ => self.search(description),
        };
        let denied = |r: &Result<KeySerial>| matches!(r, Err(crate::Error::AccessDenied(_)));
        let mut result = search();
        for round in 0..PLACING_ROUNDS {
            if !denied(&result) {
                return result;
            }
            if self.staged(kind, description, owner).is_empty() {
                // The key may have become final between the search and the look: one more
                // search decides; denied again with nothing staged, the refusal stands.
                result = search();
                if !denied(&result) || self.staged(kind, description, owner).is_empty() {
                    return result;
                }
            }
            if round + 1 == PLACING_ROUNDS {
                return Err(crate::Error::Locked);
            }
            std::thread::sleep(std::time::Duration::from_micros(100 << round.min(5)));
            result = search();
        }
        result
    }

    /// Keys of `owner` named `description`, of type `kind`, still with the staging permissions,
    /// linked directly in this keyring or in `@u` (where keys are placed). Unreadable keyrings
    /// contribute nothing.
    pub fn staged(self, kind: &str, description: &str, owner: u32) -> Vec<KeySerial> {
        let mut rings = vec![self];
        if self != Keyring::User {
            rings.push(Keyring::User);
        }
        rings
            .into_iter()
            .filter_map(|r| KeySerial(r.raw()).members().ok())
            .flatten()
            .filter(|k| {
                matches!(k.describe(), Ok(d) if d.key_type == kind
                    && d.description == description
                    && d.uid == owner
                    && d.perm == perm::STAGED)
            })
            .collect()
    }

    /// Create an empty keyring named `description` linked into this keyring (a keyring with the
    /// same name here is displaced: search first).
    pub fn add_keyring(self, description: &str) -> Result<KeySerial> {
        keyctl::add_key(keyctl::KeyType::Keyring, description, &[], self.raw()).map(KeySerial)
    }

    /// Search this keyring and the keyrings below it for a keyring named `description`.
    pub fn search_keyring(self, description: &str) -> Result<KeySerial> {
        keyctl::search(self.raw(), keyctl::KeyType::Keyring, description).map(KeySerial)
    }

    /// This keyring's attributes (e.g. to tell `_ses` from the `_uid_ses.N` fallback).
    pub fn describe(self) -> Result<KeyDescription> {
        KeySerial(self.raw()).describe()
    }
}

/// The calling user's persistent keyring (persistent-keyring(7)), linked into `link_to`.
pub fn persistent_keyring(link_to: Keyring) -> Result<KeySerial> {
    keyctl::persistent_keyring(link_to.raw()).map(KeySerial)
}

/// `uid`'s persistent keyring, linked into `link_to` (another uid than the caller's real or
/// effective one needs CAP_SETUID).
pub fn persistent_keyring_of(uid: u32, link_to: Keyring) -> Result<KeySerial> {
    keyctl::persistent_keyring_of(uid, link_to.raw()).map(KeySerial)
}

/// Give the calling thread a fresh session keyring (anonymous if `name` is None); processes it
/// starts afterwards inherit it. This is what `keyctl session -` does.
pub fn join_session(name: Option<&str>) -> Result<KeySerial> {
    keyctl::join_session(name).map(KeySerial)
}

/// How many times [`Keyring::search_settled`] looks again for a key being placed (sleeping
/// 0.1, 0.2, … 3.2 ms between: about 10 ms in all, far more than the two system calls a placing
/// takes even on a loaded machine).
const PLACING_ROUNDS: u32 = 8;

/// A key's serial number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySerial(pub i32);

/// What KEYCTL_DESCRIBE tells about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDescription {
    pub key_type: String,
    pub uid: u32,
    pub gid: u32,
    pub perm: u32,
    pub description: String,
}

/// Key permission bits (keyctl_setperm(3)).
pub mod perm {
    pub const POS_VIEW: u32 = 0x0100_0000;
    pub const POS_READ: u32 = 0x0200_0000;
    pub const POS_WRITE: u32 = 0x0400_0000;
    pub const POS_SEARCH: u32 = 0x0800_0000;
    pub const POS_LINK: u32 = 0x1000_0000;
    pub const POS_SETATTR: u32 = 0x2000_0000;
    pub const USR_VIEW: u32 = 0x0001_0000;
    pub const USR_READ: u32 = 0x0002_0000;
    pub const USR_WRITE: u32 = 0x0004_0000;
    pub const USR_SEARCH: u32 = 0x0008_0000;
    pub const USR_LINK: u32 = 0x0010_0000;
    pub const USR_SETATTR: u32 = 0x0020_0000;

    /// The turn-1 mask (owner view, read, write, search): kept only to recognise keys installed
    /// by older versions. The kernel grants owner bits by uid alone, so any process of the user,
    /// in any session, could read such a key (docs/THREAT-MODEL.md).
    pub const MASTER_KEY: u32 = POS_VIEW | USR_VIEW | USR_READ | USR_WRITE | USR_SEARCH;

    /// Session scope: the key is readable only by a *possessor* (a process of the login whose
    /// session keyring holds it), and findable by the owner. The kernel counts a process as a
    /// possessor only if its search reaches the key *with search permission*: another uid that
    /// holds the session keyring (plain `su` without pam_keyinit) has no search bit here, so it
    /// is no possessor and reads nothing; the user's processes outside the login do not reach
    /// the key from their keyrings (and cannot link the login's session keyring, which gives its
    /// owner no link or search bit), so they only see it in /proc/keys. Owner search lets the
    /// user find it from elsewhere to invalidate it, never read it. = 0x03090000.
    pub const SESSION_KEY: u32 = POS_VIEW | POS_READ | USR_VIEW | USR_SEARCH;
    /// User scope (`@u`, desktops): every process of the user, by design; possession adds
    /// nothing, so another uid holding a keyring that links `@u` gets nothing. = 0x000b0000.
    pub const USER_KEY: u32 = USR_VIEW | USR_READ | USR_SEARCH;
    /// A key or keyring being placed ([`super::KeySerial::place`]): owner view, link and setattr
    /// only, so no search finds it (searching needs the search bit), nobody reads it, and its
    /// installer can still link it and set its final mask. = 0x00310000.
    pub const STAGED: u32 = USR_VIEW | USR_LINK | USR_SETATTR;
    /// A holder record and the holders keyring (owner only; the keyring also takes writes).
    pub const HOLDER: u32 = USR_VIEW | USR_READ | USR_SEARCH;
    pub const HOLDERS_KEYRING: u32 = USR_VIEW | USR_READ | USR_WRITE | USR_SEARCH;
}

impl KeySerial {
    /// The whole payload, any size; wiped on drop.
    pub fn read(self) -> Result<Zeroizing<Vec<u8>>> {
        keyctl::read(self.0)
    }
    /// Read into `buf`; returns the payload's full length (more than `buf.len()`: truncated).
    pub fn read_into(self, buf: &mut [u8]) -> Result<usize> {
        keyctl::read_into(self.0, buf)
    }
    /// Replace the payload.
    pub fn update(self, payload: &[u8]) -> Result<()> {
        keyctl::update(self.0, payload)
    }
    pub fn describe(self) -> Result<KeyDescription> {
        let (key_type, uid, gid, perm, description) = keyctl::describe(self.0)?;
        Ok(KeyDescription {
            key_type,
            uid,
            gid,
            perm,
            description,
        })
    }
    pub fn set_perm(self, perm: u32) -> Result<()> {
        keyctl::set_perm(self.0, perm)
    }
    /// Expire the key after `seconds` (0 clears the timeout).
    pub fn set_timeout(self, seconds: u32) -> Result<()> {
        keyctl::set_timeout(self.0, seconds)
    }
    pub fn chown(self, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
        keyctl::chown(self.0, uid, gid)
    }
    /// Make the key unusable everywhere at once (not just unlinked from one keyring).
    pub fn invalidate(self) -> Result<()> {
        keyctl::invalidate(self.0)
    }
    /// Revoke the key: it stays linked but answers EKEYREVOKED (what pam_keyinit's revoke does).
    pub fn revoke(self) -> Result<()> {
        keyctl::revoke(self.0)
    }
    /// The keys linked in this keyring (KEYCTL_READ of a keyring: an array of serials).
    pub fn members(self) -> Result<Vec<KeySerial>> {
        let raw = self.read()?;
        Ok(raw
            .chunks_exact(4)
            .map(|c| KeySerial(i32::from_ne_bytes([c[0], c[1], c[2], c[3]])))
            .collect())
    }
    /// Move a key made in the thread keyring (which no other process possesses) into `target`
    /// so that no reader ever finds it before its permissions and timeout are final (verified
    /// step by step on Linux 6.18, tests/kernel.rs): set the timeout (needs setattr, so first);
    /// restrict to [`perm::STAGED`] (no search bit: from now on no search finds it and nobody
    /// reads it, yet the owner may still link it and set its attributes); link it into `target`
    /// (unsearchable there); set the final `mask` in one KEYCTL_SETPERM, the moment it becomes
    /// findable; unlink it from the thread keyring. On any failure it is invalidated (or, once
    /// unsearchable, which invalidation needs, unlinked from `target`).
    /// (KEYCTL_UPDATE is never used on our keys: it clears the timeout.)
    pub fn place(self, mask: u32, target: Keyring, timeout: Option<u32>) -> Result<KeySerial> {
        self.place_observed(mask, target, timeout, &mut |_| {})
    }

    /// [`KeySerial::place`], calling `between(step)` after each step (`"timeout"`, `"staged"`,
    /// `"linked"`, `"final"`): for the test that a reader at every point gets the value or
    /// Locked.
    #[doc(hidden)]
    pub fn place_observed(
        self,
        mask: u32,
        target: Keyring,
        timeout: Option<u32>,
        between: &mut dyn FnMut(&str),
    ) -> Result<KeySerial> {
        let placed = (|| -> Result<()> {
            if let Some(t) = timeout {
                self.set_timeout(t)?;
            }
            between("timeout");
            self.set_perm(perm::STAGED)?;
            between("staged");
            self.link(target)?;
            between("linked");
            self.set_perm(mask)?;
            between("final");
            Ok(())
        })();
        let unlinked = self.unlink(Keyring::Thread);
        if let Err(e) = placed.and(unlinked) {
            if self.invalidate().is_err() {
                let _ = self.unlink(target);
            }
            return Err(e);
        }
        Ok(self)
    }
    pub fn link(self, into: Keyring) -> Result<()> {
        keyctl::link(self.0, into.raw())
    }
    pub fn unlink(self, from: Keyring) -> Result<()> {
        keyctl::unlink(self.0, from.raw())
    }
}
