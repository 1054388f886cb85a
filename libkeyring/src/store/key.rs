//! The handle's side of its kernel key (crate::kernel): the serial it remembers
//! (crate::store::cache), reading the master key, installing and locking through
//! [`StoreKey`](crate::kernel::StoreKey).

use super::{Store, UnlockOptions};
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::kernel::keyring::{KeySerial, Keyring};
use crate::kernel::{holders, KeyRef, Scope, StoreKey};

impl Store {
    /// What names this store's kernel key (for crate::kernel::holders).
    pub fn kernel_key(&self) -> &StoreKey {
        &self.key
    }

    /// Find this store's key: from the session keyring (which normally links `@u`), then `@u`.
    pub fn find_key(&self) -> Result<KeyRef> {
        self.key.find()
    }

    /// Read the master key from the kernel (Locked if absent), through the remembered serial
    /// if there is one (crate::store::cache); `.1` says so, for callers that retry with a
    /// search when the key opens nothing. Dropped (wiped) by the caller.
    pub(super) fn master_fast(&self) -> Result<(MasterKey, bool)> {
        if let Some(serial) = self.key_cache.get() {
            if let Ok(m) = StoreKey::read(serial) {
                return Ok((m, true));
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
        let master = self.key.read_found(key);
        if master.is_ok() {
            self.key_cache.set(key.serial);
        }
        master
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
        // A key in @u outlives the logins recorded as its holders only by an explicit unlock:
        // forget those that are gone, so that holders::lock_if_abandoned does not take this
        // unlock for theirs.
        if opts.scope == Scope::User {
            holders::prune(&self.key)?;
        }
        self.key.install(master, opts.scope, opts.timeout)
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

    fn lock_in(&self, keyrings: &[Keyring]) -> Result<bool> {
        self.key_cache.forget();
        // Whoever locks now says why, if a policy does (lock_note::set after this): an older
        // note is not this lock's reason.
        let _ = crate::kernel::lock_note::clear(&self.key);
        let locked = self.key.lock_in(keyrings)?;
        Ok(holders::clear(&self.key)? || locked)
    }
}
