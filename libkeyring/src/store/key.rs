//! The store's kernel key: finding it (and refusing a planted one), reading the master key
//! from it, installing it, locking.

use zeroize::Zeroizing;

use super::{KeyRef, Scope, Store, UnlockOptions};
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::keyring::{perm, KeySerial, Keyring};

impl Store {
    /// A key we found by name must be ours: owned by the store's owner, a `user` key, with one of
    /// the permission masks we set. Anything else was planted (another uid that possesses a
    /// keyring of ours can link a key of its own there) and is refused, never used.
    pub(super) fn check_key(&self, key: KeySerial, masks: &[(u32, Scope)]) -> Result<Scope> {
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
    pub(super) fn key_in(&self, keyring: Keyring) -> Result<KeyRef> {
        let serial = keyring.search_settled("user", &self.description, self.owner)?;
        let scope = self.check_key(
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

    /// Find this store's key: from the session keyring (which normally links `@u`), then `@u`.
    pub fn find_key(&self) -> Result<KeyRef> {
        match self.key_in(Keyring::Session) {
            Err(Error::Locked) => self.key_in(Keyring::User),
            r => r,
        }
    }

    /// Read the master key from the kernel (Locked if absent), through the remembered serial
    /// if there is one (crate::store::cache); `.1` says so, for callers that retry with a search when
    /// the key opens nothing. Dropped (wiped) by the caller.
    pub(super) fn master_fast(&self) -> Result<(MasterKey, bool)> {
        if let Some(serial) = self.key_cache.get() {
            let mut payload = Zeroizing::new([0u8; 2 * crypto::KEY_LEN]);
            match serial.read_into(&mut payload[..]) {
                Ok(n) if n == crypto::KEY_LEN => {
                    if let Some(m) = MasterKey::from_slice(&payload[..n]) {
                        return Ok((m, true));
                    }
                }
                _ => {}
            }
            self.key_cache.forget();
        }
        self.master().map(|m| (m, false))
    }

    /// Make this handle remember `serial` as its key's, as if a search had found it: for tests
    /// of what happens when a remembered serial dies or is reused by another key.
    #[doc(hidden)]
    pub fn remember_key_serial(&self, serial: KeySerial) {
        self.key_cache.set(serial)
    }

    /// Read the master key from the kernel by searching for it (Locked if absent).
    pub(crate) fn master(&self) -> Result<MasterKey> {
        let key = self.find_key()?;
        self.key_cache.set(key.serial);
        // Into a wiped stack buffer, as the MasterKey itself lives: no allocation per operation.
        let mut payload = Zeroizing::new([0u8; 2 * crypto::KEY_LEN]);
        let n = key.serial.read_into(&mut payload[..])?;
        // A key with our name that is not 32 bytes is not ours to use: still locked.
        if n != crypto::KEY_LEN {
            return Err(Error::Locked);
        }
        MasterKey::from_slice(&payload[..n]).ok_or(Error::Locked)
    }

    /// Is the store locked for this process? (`AccessDenied` if the key is someone else's.)
    pub fn is_locked(&self) -> Result<bool> {
        match self.master() {
            Ok(_) => Ok(false),
            Err(Error::Locked) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Put the master key into the kernel with the permissions of its scope.
    pub(super) fn install(&self, master: &MasterKey, opts: &UnlockOptions) -> Result<KeyRef> {
        let mask = match opts.scope {
            Scope::Session => perm::SESSION_KEY,
            Scope::User => perm::USER_KEY,
        };
        // A key in @u outlives the logins recorded as its holders only by an explicit unlock:
        // forget those that are gone, so that crate::holders::lock_if_abandoned does not take
        // this unlock for theirs.
        if opts.scope == Scope::User {
            crate::holders::prune(self)?;
        }
        // Staged in the thread keyring: see KeySerial::place.
        let serial = Keyring::Thread
            .add(&self.description, master.as_bytes())?
            .place(mask, opts.scope.keyring(), opts.timeout)?;
        Ok(KeyRef {
            serial,
            scope: opts.scope,
        })
    }

    /// Lock: invalidate this store's keys wherever this process can find them (its session
    /// keyring, `@u`), and forget which logins held it. A key with our name that is not ours
    /// (planted) is unlinked. Locked already: Ok(false).
    pub fn lock(&self) -> Result<bool> {
        self.lock_in(&[Keyring::Session, Keyring::User])
    }

    /// Lock only what lives in `@u` (the keys and the holder records of user scope): what the
    /// PAM module does when the last login holding the store there closes.
    pub fn lock_user_scope(&self) -> Result<bool> {
        self.lock_in(&[Keyring::User])
    }

    pub(super) fn lock_in(&self, keyrings: &[Keyring]) -> Result<bool> {
        self.key_cache.forget();
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
        if crate::holders::clear(self)? {
            any = true;
        }
        Ok(any)
    }
}
