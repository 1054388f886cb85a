//! Changing a store in place: the master-key rotation (docs/FORMAT.md "Rotation") and its crash
//! recovery, and the migration from version 1 after an unlock.

use std::path::Path;

use super::files::{busy, read_checked, write_atomic, ENTRIES, MAX_JOURNAL_LEN, ROTATING};
use super::{Opened, Store, UnlockOptions};
use crate::crypto::MasterKey;
use crate::error::{Error, Result};
use crate::format::{self, Header, Keyslot};
use crate::sys::fs;

impl Store {
    /// Change the password and replace the master key: every entry is resealed under a new
    /// master key, so an old header with an old password (a backup, a stolen disk image), or a
    /// master key read earlier, opens nothing written from now on. Crash-safe: the journal
    /// `rotating` lists the entries under the old key and the old header's MAC; the new header
    /// replacing the old one (one rename) is the commit; whatever a crash leaves is finished or
    /// undone by the next rotation or unlock (`recover_rotation`). Only the password's own
    /// keyslot survives: other keyslots cannot be rewrapped without their secrets. Every entry
    /// must open (else nothing changes). This session's key is replaced; other logins holding
    /// the old key count as locked until they unlock again.
    pub fn rotate(&self, old: &[u8], new: &[u8], opts: &UnlockOptions) -> Result<()> {
        let opened = self.open_with_password(old)?;
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header != opened.header {
            return Err(Error::InvalidInput(
                "the header changed meanwhile; not rotating".into(),
            ));
        }
        self.recover_rotation_locked(&opened.master)?;
        // Every entry in its file first: the rotation renames files, and the journal's records
        // are bound to the old key.
        self.checkpoint_locked(&opened.master)?;
        let [old_name, old_seal] = self.entry_keys(&opened.master);
        let ids = self.entry_names(&opened.master)?;
        let mut entries = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(e) = self.load_entry(&opened.master, &old_seal, id)? else {
                continue;
            };
            if format::entry_id(&old_name, &e.service, &e.username) != *id {
                return Err(Error::corrupt(
                    &self.entry_path(&format::hex(id)),
                    "entry identity does not match its name; not rotating",
                ));
            }
            entries.push(e);
        }
        let mut journal = format::hex(&mac);
        for id in &ids {
            journal.push('\n');
            journal.push_str(&format::hex(id));
        }
        write_atomic(
            &self.dir,
            &self.dir,
            ROTATING,
            journal.as_bytes(),
            &self.path.join(ROTATING),
        )?;
        let master = MasterKey::generate()?;
        let [new_name, new_seal] = self.entry_keys(&master);
        for e in &entries {
            let id = format::entry_id(&new_name, &e.service, &e.username);
            self.write_entry(&new_seal, &id, e)?;
        }
        let kdf = opened.header.slots[opened.index]
            .kdf()
            .map_or(opts.kdf, |k| k.max_with(&opts.kdf));
        let mut next = Header {
            version: format::VERSION,
            id: self.id,
            slots: vec![],
        };
        next.slots
            .push(Keyslot::wrap(&next.prefix(), 0, &master, new, kdf)?);
        // The commit.
        self.write_header(&next, &master)?;
        self.bump_generation()?;
        self.key_cache.forget();
        // Only the password's slot is left: names of the others are gone with them, and so
        // are the TPM2 slots' sealed objects.
        let _ = fs::unlink(&self.dir, Path::new("slots"));
        self.remove_unused_sealed(&next);
        self.recover_rotation_locked(&master)?;
        // The new header is version 2; the index is rebuilt under the new keys (until then,
        // readers find the old one does not authenticate and rebuild it themselves).
        self.version
            .store(format::VERSION, std::sync::atomic::Ordering::Relaxed);
        self.reindex_locked(&master)?;
        // This session reads with the new key from now on (the old one opens nothing). The
        // rotation has committed whatever happens here: a failure leaves the store locked.
        let _ = self.install_opened(
            &Opened {
                header: next,
                index: 0,
                master,
            },
            opts,
        );
        Ok(())
    }

    /// Finish or undo a rotation a crash interrupted, with the master key the current header
    /// opens; nothing to do without a journal. Called under the writer lock.
    pub(crate) fn recover_rotation_locked(&self, master: &MasterKey) -> Result<()> {
        let display = || self.path.join(ROTATING);
        let Some(journal) = read_checked(
            &self.dir,
            Path::new(ROTATING),
            &display,
            self.owner,
            MAX_JOURNAL_LEN,
        )?
        else {
            return Ok(());
        };
        let text = String::from_utf8(journal)
            .map_err(|_| Error::corrupt(&display(), "rotation journal is not text"))?;
        let mut lines = text.lines();
        let old_mac = lines.next().unwrap_or("");
        let listed: std::collections::HashSet<&str> = lines.collect();
        let (_, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        // The header still carries the MAC the journal recorded: the rotation did not commit,
        // the new entries are the leftovers. Otherwise it did: the listed ones are.
        let committed = format::hex(&mac) != old_mac;
        let [_, seal] = self.entry_keys(master);
        for id in self.entry_names(master)? {
            let name = format::hex(&id);
            if listed.contains(name.as_str()) != committed {
                continue;
            }
            // Only what does not open under the current key goes: an entry another login
            // wrote meanwhile opens and stays.
            if matches!(
                self.load_entry(master, &seal, &id),
                Err(Error::Corrupt { .. })
            ) {
                let _ = fs::unlink(&self.entries, Path::new(&name));
            }
        }
        self.entries
            .sync_all()
            .map_err(|e| Error::from_io("sync", &self.path.join(ENTRIES), e))?;
        self.bump_generation()?;
        fs::unlink(&self.dir, Path::new(ROTATING))
            .map_err(|e| Error::from_io("remove", &display(), e))?;
        self.dir
            .sync_all()
            .map_err(|e| Error::from_io("sync", &self.path, e))
    }

    /// After an unlock: migrate a version 1 store, if the writer lock is free now (otherwise
    /// the next write or search does). True if it was migrated now.
    pub fn migrate_after_unlock(&self, opened: &Opened) -> bool {
        self.migrate_if_free(&opened.master)
    }

    /// [`Store::migrate_after_unlock`] with the master key at hand.
    pub(crate) fn migrate_if_free(&self, master: &MasterKey) -> bool {
        if self.version.load(std::sync::atomic::Ordering::Relaxed) == format::VERSION {
            return false;
        }
        match fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) {
            Ok(_guard) => self.migrate_locked(master).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// After an unlock: finish or undo an interrupted rotation, if the writer lock is free now.
    pub(super) fn recover_rotation(&self, master: &MasterKey) {
        if let Ok(_guard) = fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) {
            let _ = self.recover_rotation_locked(master);
        }
    }
}
