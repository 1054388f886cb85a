//! Reading: one entry (journal record, remembered bytes or file), the secret alone, every
//! entry, the list, the status.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::cache::EntryCache;
use super::files::{parse_entry_name, read_checked, ENTRIES, TMP_PREFIX};
use super::journal::Overlay;
use super::{Identity, Status, Store};
use crate::crypto::{MasterKey, Purpose, SubKey};
use crate::error::{Error, Result};
use crate::format::{self, EntryData, EntryError};
use crate::sys::{self, fs};

impl Store {
    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(ENTRIES).join(name)
    }

    /// The entry-name and entry-seal subkeys, from one HKDF extract.
    pub(crate) fn entry_keys(&self, master: &MasterKey) -> [SubKey; 2] {
        master.subkeys(&self.id.0, [Purpose::EntryName, Purpose::EntrySeal])
    }

    /// Entry `id`, from the journal if it names it, else from its file (None: no such entry).
    pub(crate) fn load_entry(
        &self,
        master: &MasterKey,
        seal: &SubKey,
        id: &[u8; 32],
    ) -> Result<Option<EntryData>> {
        self.with_entry(master, seal, id, |p| p.to_data(true))
    }

    /// Open entry `id` (journal record, remembered bytes or file) and hand its plaintext to
    /// `f`, parsed in place in a buffer wiped after the call; None: there is no such entry.
    /// (`|p| p.to_data(false)`: the entry without its secret, what a write keeps of the old
    /// entry and what indexing reads: no copy of the secret, no mlock call.)
    pub(crate) fn with_entry<R>(
        &self,
        master: &MasterKey,
        seal: &SubKey,
        id: &[u8; 32],
        f: impl FnOnce(format::Plain<'_>) -> R,
    ) -> Result<Option<R>> {
        let name = format::hex(id);
        let display = || self.entry_path(&name);
        // Both read before anything from disk (see crate::store::cache).
        let files = self.entry_cache.as_ref().map(EntryCache::files_generation);
        let generation = self.entry_cache.as_ref().map(EntryCache::generation);
        let journaled = match self.journal_overlay(master, id, generation)? {
            Overlay::File => None,
            Overlay::Sealed(b) => Some(b),
            Overlay::Deleted => return Ok(None),
        };
        let cached = match (&self.entry_cache, files) {
            (Some(cache), Some(g)) => cache.lookup(g, id),
            _ => None,
        };
        let (bytes, fresh) = match journaled.or(cached) {
            Some(b) => (b, false),
            None => match read_checked(
                &self.entries,
                Path::new(&name),
                &display,
                self.owner,
                format::MAX_ENTRY_LEN,
            )? {
                Some(b) => (std::sync::Arc::new(b), true),
                None => return Ok(None),
            },
        };
        let r = format::open_entry_with(seal, &self.id, id, &bytes, f).map_err(|e| match e {
            EntryError::UnknownVersion(v) => {
                Error::corrupt(&display(), format!("unknown entry format version {v}"))
            }
            EntryError::Malformed(why) => Error::corrupt(&display(), why),
        })?;
        if let (true, Some(cache), Some(g)) = (fresh, &self.entry_cache, files) {
            cache.insert(g, id, &bytes);
        }
        Ok(Some(r))
    }

    pub(super) fn entry_id(&self, master: &MasterKey, service: &str, username: &str) -> [u8; 32] {
        format::entry_id(
            &master.subkey(&self.id.0, Purpose::EntryName),
            service,
            username,
        )
    }

    /// The on-disk name of the entry (service, username): 64 lowercase hex digits of a keyed
    /// hash, so it needs the unlocked key (`Locked` otherwise). Stable for the life of the store
    /// and reveals nothing without the key; the Secret Service daemon builds item paths from it.
    pub fn entry_name(&self, service: &str, username: &str) -> Result<String> {
        let master = self.master()?;
        Ok(format::hex(&self.entry_id(&master, service, username)))
    }

    /// The whole entry for (service, username).
    pub fn entry(&self, service: &str, username: &str) -> Result<EntryData> {
        self.read_entry(service, username, |p| p.to_data(true))
    }

    /// The secret of (service, username), handed to `f` straight from the buffer it was
    /// decrypted into (wiped after the call; mlocked): no copy of it, and none of the rest of
    /// the entry. What a binding that converts the secret at once (Python's `str`) uses.
    pub fn get_with<R>(
        &self,
        service: &str,
        username: &str,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.read_entry(service, username, |p| f(p.secret))
    }

    /// Entry (service, username) through the remembered key serial, and if that fails as a
    /// serial now naming another key would, through a search: `f` gets its plaintext.
    pub(super) fn read_entry<R>(
        &self,
        service: &str,
        username: &str,
        f: impl FnOnce(format::Plain<'_>) -> R,
    ) -> Result<R> {
        let (master, remembered) = self.master_fast()?;
        let mut f = Some(f);
        match self.entry_with(&master, service, username, &mut f) {
            // The remembered serial may now be another key: search, and try once more.
            Err(Error::Locked) | Err(Error::NoEntry { .. }) | Err(Error::Corrupt { .. })
                if remembered =>
            {
                self.key_cache.forget();
                self.entry_with(&self.master()?, service, username, &mut f)
            }
            r => r,
        }
    }

    /// `f` is taken (and called) only when the entry opened under its own name.
    pub(super) fn entry_with<R>(
        &self,
        master: &MasterKey,
        service: &str,
        username: &str,
        f: &mut Option<impl FnOnce(format::Plain<'_>) -> R>,
    ) -> Result<R> {
        let [name_key, seal] = self.entry_keys(master);
        let id = format::entry_id(&name_key, service, username);
        let opened = self.with_entry(master, &seal, &id, |p| {
            if p.service != service || p.username != username {
                return None;
            }
            f.take().map(|f| f(p))
        });
        let data = match opened {
            Ok(Some(Some(data))) => data,
            Ok(Some(None)) => {
                return Err(Error::corrupt(
                    &self.entry_path(&format::hex(&id)),
                    "entry identity does not match its name",
                ))
            }
            // A key from before a rotation finds no entry and opens none: such a session is
            // locked, not missing entries or corrupt (one header read, off the hot path).
            Ok(None) => {
                self.check_master(master)?;
                return Err(Error::NoEntry {
                    service: service.into(),
                    username: username.into(),
                });
            }
            Err(e @ Error::Corrupt { .. }) => {
                self.check_master(master)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(data)
    }

    /// The secret of (service, username).
    pub fn get(&self, service: &str, username: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.get_with(service, username, |secret| {
            let copy = Zeroizing::new(secret.to_vec());
            sys::lock_memory(&copy);
            copy
        })
    }

    /// The names of every entry: the entry files, with what the journal adds and deletes.
    pub(crate) fn entry_names(&self, master: &MasterKey) -> Result<Vec<[u8; 32]>> {
        // The journal before the directory: a checkpoint renames its entries into files before
        // it empties the journal, so an entry it moves meanwhile is in one or the other. (The
        // other order can miss every entry of the checkpoint: listed before their files came,
        // read after the journal emptied.)
        let (put, deleted) = self.journal_names(master)?;
        let names = fs::list(&self.entries)
            .map_err(|e| Error::from_io("list", &self.path.join(ENTRIES), e))?;
        let mut all: std::collections::HashSet<[u8; 32]> = names
            .iter()
            .filter_map(|n| parse_entry_name(n.as_encoded_bytes()))
            .collect();
        all.extend(put);
        for d in &deleted {
            all.remove(d);
        }
        Ok(all.into_iter().collect())
    }

    /// Every entry that opens, decrypted (secrets included), in no particular order, and the
    /// problem of each one that does not (a damaged, foreign or misnamed file: each error names
    /// its file). One bad entry never hides the others.
    pub fn entries_report(&self) -> Result<(Vec<EntryData>, Vec<Error>)> {
        let master = self.master()?;
        let [name_key, seal] = self.entry_keys(&master);
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for id in self.entry_names(&master)? {
            match self.load_entry(&master, &seal, &id) {
                // An entry deleted between listing and reading is simply gone.
                Ok(None) => {}
                Ok(Some(e)) if format::entry_id(&name_key, &e.service, &e.username) != id => bad
                    .push(Error::corrupt(
                        &self.entry_path(&format::hex(&id)),
                        "entry identity does not match its name",
                    )),
                Ok(Some(e)) => out.push(e),
                Err(e) => bad.push(e),
            }
        }
        Ok((out, bad))
    }

    /// Every entry that opens (see [`Store::entries_report`] for the ones that do not).
    pub fn entries(&self) -> Result<Vec<EntryData>> {
        self.entries_report().map(|(good, _)| good)
    }

    /// Every (service, username) that opens, sorted, and the problems of the entries that do not.
    pub fn list_report(&self) -> Result<(Vec<Identity>, Vec<Error>)> {
        let (entries, bad) = self.entries_report()?;
        let mut v: Vec<_> = entries
            .into_iter()
            .map(|e| (e.service.clone(), e.username.clone()))
            .collect();
        v.sort();
        Ok((v, bad))
    }

    /// Every (service, username) that opens, sorted.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        self.list_report().map(|(good, _)| good)
    }

    /// Path, id, lock state, and the number of entries when unlocked.
    pub fn status(&self) -> Result<Status> {
        let locked = self.is_locked()?;
        Ok(Status {
            path: self.path.clone(),
            id: self.id(),
            locked,
            entries: if locked {
                None
            } else {
                Some(self.entry_names(&self.master()?)?.len())
            },
        })
    }

    /// Temp files left by a writer that crashed (only writers holding the lock create them).
    /// Every temp file is created in the store directory (see `write_atomic`), so this lists
    /// that small directory only, never `entries/` with its one file per entry: unlock stays
    /// Argon2id + a few syscalls at any store size.
    pub(super) fn remove_stale_temp_files(&self) {
        // Never waits: a busy store is cleaned up next time.
        let Ok(_guard) = fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) else {
            return;
        };
        if let Ok(names) = fs::list(&self.dir) {
            for n in names
                .iter()
                .filter(|n| n.as_encoded_bytes().starts_with(TMP_PREFIX.as_bytes()))
            {
                let _ = fs::unlink(&self.dir, Path::new(n));
            }
        }
    }
}
