//! Unlocking: a password or recovery key opens a keyslot (Argon2id, bounded), the master key
//! goes into the kernel; changing a password; upgrading a keyslot's KDF.

use super::files::{busy, HEADER};
use super::{Opened, Store, UnlockOptions, UnlockReport, UNLOCK_KDF_BUDGET};
use crate::crypto::{KdfParams, MasterKey};
use crate::error::{Error, Result};
use crate::format::{Header, Keyslot, SLOT_EXTRA, SLOT_PASSWORD, SLOT_RECOVERY};
use crate::recovery::RecoveryKey;
use crate::sys::fs;

impl Store {
    /// Unlock with `password`: derive, unwrap, install the key (owner = caller).
    /// Already unlocked: the password is still checked; a timeout, if given, is refreshed.
    pub fn unlock(&self, password: &[u8], opts: &UnlockOptions) -> Result<UnlockReport> {
        let opened = self.open_with_password(password)?;
        let mut report = self.install_opened(&opened, opts)?;
        match self.upgrade_kdf(&opened, password, opts.kdf) {
            Ok(upgraded) => report.kdf_upgraded = upgraded,
            Err(e) => {
                report.warning = Some(format!(
                    "could not upgrade the key derivation parameters: {e}"
                ))
            }
        }
        self.after_unlock(&opened, &mut report);
        Ok(report)
    }

    /// Unlock with a master key a keyslot gave (a recovery key's, a TPM2 slot's): install it,
    /// then what every unlock does after.
    pub fn unlock_opened(&self, opened: &Opened, opts: &UnlockOptions) -> Result<UnlockReport> {
        let mut report = self.install_opened(opened, opts)?;
        self.after_unlock(opened, &mut report);
        Ok(report)
    }

    /// Finish a rotation a crash left, migrate a version 1 store, remove stale temp files.
    fn after_unlock(&self, opened: &Opened, report: &mut UnlockReport) {
        self.recover_rotation(&opened.master);
        report.migrated = self.migrate_after_unlock(opened);
        self.remove_stale_temp_files();
    }

    /// Unwrap the master key with `password` (the Argon2id work); the kernel is not touched.
    /// Every password keyslot is tried (never a recovery key's).
    pub fn open_with_password(&self, password: &[u8]) -> Result<Opened> {
        self.open_with(&[SLOT_PASSWORD, SLOT_EXTRA], password)
    }

    /// The same with only the keyslots marked for login (the PAM module's: the login password's
    /// and those added with `slot add --pam`).
    pub fn open_with_login_password(&self, password: &[u8]) -> Result<Opened> {
        self.open_with(&[SLOT_PASSWORD], password)
    }

    /// Unwrap the master key with a recovery key (its keyslot only).
    pub fn open_with_recovery_key(&self, key: &RecoveryKey) -> Result<Opened> {
        self.open_with(&[SLOT_RECOVERY], key.as_bytes())
    }

    pub(crate) fn open_with(&self, kinds: &[u8], secret: &[u8]) -> Result<Opened> {
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header.id != self.id {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "store id changed while open",
            ));
        }
        let (index, master) = self.open_slot(&header, &mac, kinds, secret)?;
        Ok(Opened {
            header,
            index,
            master,
        })
    }

    /// Put an unwrapped master key into the kernel for `opts.scope`, unless a key of this store
    /// with the same master key is there already in that scope (and no timeout asks for a new
    /// one). A key of another scope is left alone: a text login during a desktop session gets
    /// its own.
    pub fn install_opened(&self, opened: &Opened, opts: &UnlockOptions) -> Result<UnlockReport> {
        let mut report = UnlockReport::default();
        let existing = self.find_key().and_then(|key| Ok((key, self.master()?)));
        match existing {
            Ok((key, current)) if key.scope == opts.scope => {
                if current.as_bytes() == opened.master.as_bytes() {
                    report.already_unlocked = true;
                    if opts.timeout.is_none() {
                        return Ok(report);
                    }
                }
                // Without setattr permission the timeout cannot be changed in place; a key
                // that does not match the header is replaced by the right one.
                let _ = key.serial.invalidate();
            }
            Ok((_, current)) => {
                report.already_unlocked = current.as_bytes() == opened.master.as_bytes();
            }
            Err(Error::Locked) => {}
            Err(e) => return Err(e),
        }
        report.installed = Some(self.install(&opened.master, opts)?);
        // Open again: a lock policy's note (why it locked) is over.
        let _ = crate::kernel::lock_note::clear(self.kernel_key());
        Ok(report)
    }

    /// Rewrap the slot `opened` came from if its KDF parameters are weaker than `kdf` in any
    /// dimension, to the larger of each parameter (never lower a cost). Never waits for the
    /// writer lock: busy → `Ok(false)`, next time.
    pub fn upgrade_kdf(&self, opened: &Opened, password: &[u8], kdf: KdfParams) -> Result<bool> {
        let Some(current) = opened.header.slots[opened.index].kdf() else {
            return Ok(false);
        };
        if !current.weaker_than(&kdf) {
            return Ok(false);
        }
        let target = current.max_with(&kdf);
        match self.rewrap(
            &opened.master,
            &opened.header,
            opened.index,
            password,
            target,
            Some(std::time::Duration::ZERO),
        ) {
            Ok(()) => Ok(true),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::WouldBlock => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Find the keyslot `password` opens and check the header MAC with the master key. The
    /// Argon2id cost summed over the slots tried is bounded by [`UNLOCK_KDF_BUDGET`].
    pub(super) fn open_slot(
        &self,
        header: &Header,
        mac: &[u8; 32],
        kinds: &[u8],
        password: &[u8],
    ) -> Result<(usize, MasterKey)> {
        let prefix = header.prefix();
        // Refused before any derivation: a header someone else wrote costs nothing then.
        let total: u64 = header
            .slots
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .filter_map(|s| s.kdf().map(|k| k.cost()))
            .sum();
        if total > UNLOCK_KDF_BUDGET {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                format!(
                    "the keyslots' key derivations add up to {total} KiB × passes, more than the \
                     {UNLOCK_KDF_BUDGET} one unlock may spend"
                ),
            ));
        }
        for (i, slot) in header.slots.iter().enumerate() {
            if !kinds.contains(&slot.kind) {
                continue;
            }
            if let Some(master) = slot.unwrap(&prefix, i, password)? {
                if !header.verify_mac(&master, mac) {
                    return Err(Error::corrupt(
                        &self.path.join(HEADER),
                        "header MAC does not verify (altered)",
                    ));
                }
                return Ok((i, master));
            }
        }
        Err(Error::WrongPassword)
    }

    /// Replace keyslot `index` with a wrap of `master` under `password` and `kdf`, if the header
    /// on disk is still `expected` (taken under the writer lock, waiting as `wait` says). The slot
    /// keeps its kind.
    pub(crate) fn rewrap(
        &self,
        master: &MasterKey,
        expected: &Header,
        index: usize,
        password: &[u8],
        kdf: KdfParams,
        wait: fs::Wait,
    ) -> Result<()> {
        let _guard = fs::flock_exclusive(&self.dir, wait).map_err(|e| busy(&self.path, e))?;
        let (mut header, _) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if &header != expected {
            return Err(Error::InvalidInput(
                "the header changed meanwhile; not rewrapping".into(),
            ));
        }
        let kind = header.slots[index].kind;
        header.slots[index] =
            Keyslot::wrap_kind(kind, &header.prefix(), index, master, password, kdf)?;
        self.write_header(&header, master)
    }

    /// Change the password: rewrap the master key only; entries are untouched. Works whether
    /// the store is locked or not. The slot keeps the stronger of its and `kdf`'s parameters.
    pub fn passwd(&self, old: &[u8], new: &[u8], kdf: KdfParams) -> Result<()> {
        let opened = self.open_with_password(old)?;
        let target = opened.header.slots[opened.index]
            .kdf()
            .map_or(kdf, |k| k.max_with(&kdf));
        self.rewrap(
            &opened.master,
            &opened.header,
            opened.index,
            new,
            target,
            self.wait,
        )
    }
}
