//! Writing: the header, entries (through the journal when it can), deletes, and telling other
//! handles through the generation counter.

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use super::cache::EntryCache;
use super::files::{
    bump_generation, busy, lock_mutex, now, refusal, write_atomic, ENTRIES, GENERATION, HEADER,
};
use super::journal::Overlay;
use super::Store;
use crate::crypto::{MasterKey, SubKey};
use crate::error::{Error, Result};
use crate::format::journal::{KIND_DELETE, KIND_PUT};
use crate::format::{self, EntryData, Header};
use crate::sys::fs;

impl Store {
    /// Replace the header (under the writer lock): temp file, fsync, rename, directory fsync.
    /// Every replacement moves the files generation: handles that remember the header read it
    /// again.
    pub(crate) fn write_header(&self, header: &Header, master: &MasterKey) -> Result<()> {
        write_atomic(
            &self.dir,
            &self.dir,
            HEADER,
            &header.encode(master),
            &self.path.join(HEADER),
        )?;
        self.bump_generation()
    }

    /// Before a write (under the writer lock): the key from the kernel must be the one the header
    /// is authenticated with. A key left from before a rotation (another login's) or any other
    /// key would seal entries nobody can open later: such a session counts as locked.
    /// Under the writer lock: the master key, checked against the header MAC (a key from
    /// before a rotation is Locked), read through the remembered serial when there is one (a
    /// serial now naming another key fails the check, and the key is searched for again).
    pub(super) fn writer_master(&self) -> Result<MasterKey> {
        let (master, remembered) = self.master_fast()?;
        match self.check_master(&master) {
            Err(Error::Locked) if remembered => {
                self.key_cache.forget();
                let master = self.master()?;
                self.check_master(&master)?;
                Ok(master)
            }
            r => r.map(|()| master),
        }
    }

    pub(crate) fn check_master(&self, master: &MasterKey) -> Result<()> {
        let seen = self.current_header()?;
        let (header, mac) = &*seen;
        if header.id != self.id {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "store id changed while open",
            ));
        }
        if header.verify_mac(master, mac) {
            Ok(())
        } else {
            Err(Error::Locked)
        }
    }

    /// The header as its file holds it now. A handle with a generation counter reuses the
    /// header it read last while the files generation (every replacement moves it) and the
    /// file's identity and size are unchanged: one `statx` instead of an open, a stat, a read
    /// and a close.
    pub(super) fn current_header(&self) -> Result<crate::store::cache::HeaderAndMac> {
        let read = || Self::read_header(&self.dir, &self.path, self.owner).map(std::sync::Arc::new);
        let Some(cache) = &self.entry_cache else {
            return read();
        };
        let files = cache.files_generation();
        // Only a header that would be read now (ours, one link, not writable by others): a
        // file changed in place to be refused is read again, and refused.
        let file = fs::stat_at(&self.dir, Path::new(HEADER))
            .ok()
            .filter(|m| refusal(m, self.owner, format::MAX_HEADER_LEN).is_none())
            .map(|m| (m.dev(), m.ino(), m.len()));
        if let Some(seen) = file.and_then(|f| cache.header(files, f)) {
            return Ok(seen);
        }
        let header = read()?;
        if let Some(f) = file {
            cache.remember_header(files, f, &header);
        }
        Ok(header)
    }

    /// After a checkpoint (under the writer lock) moved the journal's entries (`moved`: their
    /// sealed bytes, None: deleted) into files: move the files generation, and keep what this
    /// handle remembers, with those entries' new bytes.
    pub(crate) fn bump_after_checkpoint(
        &self,
        moved: &crate::crypto::KeyedMap<[u8; 32], Option<std::sync::Arc<Vec<u8>>>>,
    ) -> Result<()> {
        let from = self.entry_cache.as_ref().map(EntryCache::files_generation);
        self.bump_generation()?;
        if let (Some(cache), Some(from)) = (&self.entry_cache, from) {
            let to = cache.files_generation();
            cache.carry(from, to, moved.iter().map(|(id, b)| (id, b.as_ref())));
        }
        Ok(())
    }

    /// Store `secret` for (service, username), keeping label, attributes and creation time of
    /// an existing entry.
    pub fn set(&self, service: &str, username: &str, secret: &[u8]) -> Result<()> {
        self.set_entry(service, username, secret, None, None)
    }

    /// Store an entry; `label`/`attributes` of None keep the existing ones (or the defaults).
    pub fn set_entry(
        &self,
        service: &str,
        username: &str,
        secret: &[u8],
        label: Option<&str>,
        attributes: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        self.set_item(service, username, secret, label, attributes, None)
    }

    /// [`Store::set_entry`] with the secret's content type (None keeps the existing one).
    pub fn set_item(
        &self,
        service: &str,
        username: &str,
        secret: &[u8],
        label: Option<&str>,
        attributes: Option<&BTreeMap<String, String>>,
        content_type: Option<&str>,
    ) -> Result<()> {
        let empty = BTreeMap::new();
        format::check_limits_typed(
            service,
            username,
            label.unwrap_or(""),
            content_type.unwrap_or(""),
            attributes.unwrap_or(&empty),
            secret,
        )?;
        self.put(service, username, |old, t| {
            Ok(EntryData {
                service: service.into(),
                username: username.into(),
                label: label
                    .map(str::to_string)
                    .or_else(|| old.map(|o| o.label.clone()))
                    .unwrap_or_else(|| format!("{username}@{service}")),
                content_type: content_type
                    .map(str::to_string)
                    .or_else(|| old.map(|o| o.content_type.clone()))
                    .unwrap_or_default(),
                attributes: attributes
                    .cloned()
                    .or_else(|| old.map(|o| o.attributes.clone()))
                    .unwrap_or_default(),
                created: old.map_or(t, |o| o.created),
                modified: t,
                secret: Zeroizing::new(secret.to_vec()),
            })
        })
    }

    /// Write `data` as a new entry, times included (what an import carries over from its
    /// source, docs/IMPORT.md): never over an existing entry of the same (service, username)
    /// (`InvalidInput`, checked under the writer lock, so a concurrent writer's entry is never
    /// replaced). A time that is not sane (not after 1970-01-01T00:00:00, or more than a day
    /// ahead of this clock) is replaced by the time of the write.
    pub fn set_imported(&self, data: &EntryData) -> Result<()> {
        format::check_limits_typed(
            &data.service,
            &data.username,
            &data.label,
            &data.content_type,
            &data.attributes,
            &data.secret,
        )?;
        self.put(&data.service, &data.username, |old, t| {
            if old.is_some() {
                return Err(Error::InvalidInput(format!(
                    "an entry for service {:?} and username {:?} exists already; not overwritten",
                    data.service, data.username
                )));
            }
            let sane = |v: i64| {
                if v > 0 && v <= t.saturating_add(86_400) {
                    v
                } else {
                    t
                }
            };
            let mut new = data.clone();
            new.created = sane(data.created);
            new.modified = sane(data.modified);
            Ok(new)
        })
    }

    /// The write of [`Store::set_item`] and [`Store::set_imported`] (limits already checked):
    /// under the writer lock, `build` makes the entry from the existing one (without its
    /// secret; None: there is none) and the time now; then index, seal, and journal (or file).
    fn put(
        &self,
        service: &str,
        username: &str,
        build: impl FnOnce(Option<&EntryData>, i64) -> Result<EntryData>,
    ) -> Result<()> {
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let master = self.writer_master()?;
        self.migrate_locked(&master)?;
        let [name_key, seal] = self.entry_keys(&master);
        let id = format::entry_id(&name_key, service, username);
        let old = self.with_entry(&master, &seal, &id, |p| p.to_data(false))?;
        let data = build(old.as_ref(), now())?;
        debug_assert!(data.service == service && data.username == username);
        let old_attrs = old.as_ref().map(crate::mapping::item_attributes);
        self.index_item(
            &master,
            &id,
            &crate::mapping::item_attributes(&data),
            old_attrs.as_ref(),
        )?;
        let sealed = format::seal_entry(&seal, &self.id, &id, &data)?;
        if self.journal_write(&master, KIND_PUT, &id, &sealed)? {
            return self.bump_journal();
        }
        let name = format::hex(&id);
        write_atomic(
            &self.dir,
            &self.entries,
            &name,
            &sealed,
            &self.entry_path(&name),
        )?;
        self.bump_generation()
    }

    /// Seal `data` as entry `id` and write it atomically and durably (under the writer lock).
    pub(super) fn write_entry(&self, seal: &SubKey, id: &[u8; 32], data: &EntryData) -> Result<()> {
        let name = format::hex(id);
        let bytes = format::seal_entry(seal, &self.id, id, data)?;
        write_atomic(
            &self.dir,
            &self.entries,
            &name,
            &bytes,
            &self.entry_path(&name),
        )
    }

    /// Tell every open store handle (any process) that entries changed: after the change is in
    /// place, under the writer lock.
    pub(crate) fn bump_generation(&self) -> Result<()> {
        self.bump(true)
    }

    /// Tell every open store handle that the journal has a new record (entry files unchanged:
    /// their cached bytes stay valid).
    pub(crate) fn bump_journal(&self) -> Result<()> {
        self.bump(false)
    }

    pub(super) fn bump(&self, files: bool) -> Result<()> {
        let next = match self.entry_cache.as_ref().and_then(|c| c.bump(files)) {
            Some(next) => next,
            None => bump_generation(&self.dir, self.owner, files)
                .map_err(|e| Error::from_io("write", &self.path.join(GENERATION), e))?,
        };
        // This handle's journal view already holds its own write: current at the new
        // generation (the writer lock is still held, so nobody else wrote in between).
        let mut view = lock_mutex(&self.journal);
        if std::mem::take(&mut view.own_write) && self.entry_cache.is_some() {
            view.generation = Some(next);
        }
        Ok(())
    }

    /// Delete (service, username); `NoEntry` if it does not exist.
    pub fn delete(&self, service: &str, username: &str) -> Result<()> {
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let master = self.writer_master()?;
        let id = self.entry_id(&master, service, username);
        let name = format::hex(&id);
        self.migrate_locked(&master)?;
        let exists = match self.journal_overlay(&master, &id, None)? {
            Overlay::Sealed(_) => true,
            Overlay::Deleted => false,
            Overlay::File => match fs::open_read(Some(&self.entries), Path::new(&name)) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(Error::from_io("open", &self.entry_path(&name), e)),
            },
        };
        if !exists {
            return Err(Error::NoEntry {
                service: service.into(),
                username: username.into(),
            });
        }
        let journaled = self.journal_write(&master, KIND_DELETE, &id, &[])?;
        if !journaled {
            match fs::unlink(&self.entries, Path::new(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::from_io("delete", &self.entry_path(&name), e))
                }
                _ => {}
            }
            self.entries
                .sync_all()
                .map_err(|e| Error::from_io("sync", &self.path.join(ENTRIES), e))?;
        }
        // Derived data: a lost removal only leaves a candidate that no longer opens.
        let _ = self.index_removed(&master, &id);
        if journaled {
            self.bump_journal()
        } else {
            self.bump_generation()
        }
    }
}
