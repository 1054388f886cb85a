//! A store's kernel key, `keyringrs:<store-id>` of the store's owner, through its lifetime:
//! found (a planted key is refused, never used), read, installed with the permissions of its
//! scope, locked. It knows the key's name and owner only, never the store (crate::store calls
//! it) nor the holders (crate::kernel::holders uses it).

use zeroize::Zeroizing;

use super::keyring::{perm, KeySerial, Keyring};
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};

/// Where the unlocked key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// `@s`: gone when the login session ends (the default).
    #[default]
    Session,
    /// `@u`: shared by all of the user's processes, for background services (opt-in).
    User,
}

impl Scope {
    pub(crate) fn keyring(self) -> Keyring {
        match self {
            Scope::Session => Keyring::Session,
            Scope::User => Keyring::User,
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scope> {
        match s {
            "session" => Ok(Scope::Session),
            "user" => Ok(Scope::User),
            _ => Err(Error::InvalidInput(format!(
                "scope {s:?}: expected session or user"
            ))),
        }
    }
}

/// The kernel key of an unlocked store, `keyringrs:<id>`, as found or installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    pub serial: KeySerial,
    /// Where it was installed, told by its permissions (docs/THREAT-MODEL.md).
    pub scope: Scope,
}

/// What names a store's kernel key: its description and the uid that must own it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreKey {
    description: String,
    /// The store id as hex (names the holders keyring, crate::kernel::holders).
    id: String,
    owner: u32,
}

impl StoreKey {
    /// The key of the store with id `id_hex`, owned by `owner`.
    pub fn new(id_hex: &str, owner: u32) -> StoreKey {
        StoreKey {
            description: format!("keyringrs:{id_hex}"),
            id: id_hex.to_owned(),
            owner,
        }
    }

    /// `keyringrs:<store-id hex>`.
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The store id as hex.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The uid that owns the store and must own its keys.
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// A key we found by name must be ours: owned by the store's owner, a `user` key, with one of
    /// the permission masks we set. Anything else was planted (another uid that possesses a
    /// keyring of ours can link a key of its own there) and is refused, never used.
    fn check(&self, key: KeySerial, masks: &[(u32, Scope)]) -> Result<Scope> {
        let d = key.describe()?;
        let foreign = |why: String| {
            Error::AccessDenied(format!(
                "the kernel key {:?} (serial {}) {why}: not installed by keyringrs for this \
                 user, refusing to use it (`keyringrs lock` unlinks it)",
                d.description, key.0
            ))
        };
        if d.key_type != "user" || d.uid != self.owner {
            return Err(foreign(format!(
                "is a {} key of uid {}, not of uid {}",
                d.key_type, d.uid, self.owner
            )));
        }
        masks
            .iter()
            .find(|(m, _)| *m == d.perm)
            .map(|(_, scope)| *scope)
            .ok_or_else(|| foreign(format!("has permissions {:08x}", d.perm)))
    }

    /// The key found by searching from `keyring` (which may find it in a keyring linked below).
    fn find_in(&self, keyring: Keyring) -> Result<KeyRef> {
        let serial = keyring.search_settled("user", &self.description, self.owner)?;
        let scope = self.check(
            serial,
            &[
                (perm::SESSION_KEY, Scope::Session),
                (perm::USER_KEY, Scope::User),
                // Installed by keyringrs 0.1 before this upgrade: used until that login ends.
                (perm::MASTER_KEY, Scope::Session),
            ],
        )?;
        Ok(KeyRef { serial, scope })
    }

    /// Find the key: from the session keyring (which normally links `@u`), then `@u`.
    pub fn find(&self) -> Result<KeyRef> {
        match self.find_in(Keyring::Session) {
            Err(Error::Locked) => self.find_in(Keyring::User),
            r => r,
        }
    }

    /// The master key `serial` holds: Locked if it is gone or is not 32 bytes (a key with our
    /// name that is not one is not ours to use). Read into a wiped stack buffer, as the
    /// MasterKey itself lives: no allocation.
    pub fn read(serial: KeySerial) -> Result<MasterKey> {
        let mut payload = Zeroizing::new([0u8; 2 * crypto::KEY_LEN]);
        let n = serial.read_into(&mut payload[..])?;
        if n != crypto::KEY_LEN {
            return Err(Error::Locked);
        }
        MasterKey::from_slice(&payload[..n]).ok_or(Error::Locked)
    }

    /// The master key of `found` (what [`StoreKey::find`] returned). A key invalidated between
    /// the search and the read (a `lock` or an unlock replacing it, in another thread or
    /// process) is no longer possessed, and the kernel answers its read EACCES, not ENOKEY:
    /// that is searched again, and reads as Locked once the key is gone (or as the key that
    /// replaced it). A key that is still there and still refuses the read stays AccessDenied.
    pub fn read_found(&self, found: KeyRef) -> Result<MasterKey> {
        let mut key = found;
        for _ in 0..4 {
            match Self::read(key.serial) {
                Err(Error::AccessDenied(why)) => match self.find() {
                    Ok(again) if again.serial == key.serial => {
                        return Err(Error::AccessDenied(why))
                    }
                    Ok(again) => key = again,
                    Err(e) => return Err(e),
                },
                r => return r,
            }
        }
        Err(Error::Locked)
    }

    /// Put `master` into the kernel with the permissions of `scope` (and `timeout` seconds).
    pub fn install(
        &self,
        master: &MasterKey,
        scope: Scope,
        timeout: Option<u32>,
    ) -> Result<KeyRef> {
        let mask = match scope {
            Scope::Session => perm::SESSION_KEY,
            Scope::User => perm::USER_KEY,
        };
        // Staged in the thread keyring: see KeySerial::place.
        let serial = Keyring::Thread
            .add(&self.description, master.as_bytes())?
            .place(mask, scope.keyring(), timeout)?;
        Ok(KeyRef { serial, scope })
    }

    /// Invalidate the key wherever `keyrings` lead. A key with our name that is not ours
    /// (planted) is unlinked. Ok(false): there was nothing to lock. (The holder records are
    /// crate::kernel::holders's.)
    pub fn lock_in(&self, keyrings: &[Keyring]) -> Result<bool> {
        let mut any = false;
        let description = &self.description;
        for &keyring in keyrings {
            // A key whose installer stopped half-way: unreadable, but not left behind.
            for key in keyring.staged("user", description, self.owner) {
                if key.unlink(keyring).is_ok() {
                    any = true;
                }
            }
            // Bounded: each round removes one key.
            for _ in 0..16 {
                let key = match keyring.search_settled("user", description, self.owner) {
                    Ok(k) => k,
                    Err(Error::Locked) => break,
                    Err(e) => return Err(e),
                };
                match key.invalidate() {
                    Ok(()) | Err(Error::Locked) => any = true,
                    Err(Error::AccessDenied(_)) => {
                        // Not ours: take it out of the keyrings we own.
                        let a = key.unlink(Keyring::Session);
                        let b = key.unlink(Keyring::User);
                        if a.is_err() && b.is_err() {
                            return Err(Error::AccessDenied(format!(
                                "a foreign key {description:?} (serial {}) is linked below a \
                                 keyring this process cannot change",
                                key.0
                            )));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(any)
    }
}
