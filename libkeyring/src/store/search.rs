//! Items by their attributes: search through the blind index (crate::format::index), address items by
//! their entry name, keep the index in step with every write, and migrate version 1 stores
//! (docs/FORMAT.md "index" and "Migration from version 1").
//!
//! Rules that make a stale, damaged or missing index harmless:
//! - every candidate is decrypted and its attributes compared with the query (a wrong
//!   candidate is dropped, never returned);
//! - a writer appends an item's tokens *before* it writes the entry (so an entry on disk always
//!   has its tokens in the file), and fsyncs them when an existing item gains tokens (new items
//!   are covered by the next rule);
//! - whenever a handle (re)reads the whole file, it compares the index with the entry directory
//!   and indexes the entries it lacks; a file that does not parse or authenticate is rebuilt
//!   from the entries.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;

use super::files::{busy, lock_mutex, parse_entry_name, read_checked, write_atomic};
use super::Store;
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::format::index::{self, Index, IndexKeys, Name, INDEX, KIND_ITEM, KIND_REMOVED};
use crate::format::{self, EntryData, VERSION, VERSION_1};
use crate::mapping;
use crate::sys::fs;

/// Compact when dead records outnumber the items by this much.
const COMPACT_SLACK: usize = 256;

/// An item found by a search: its entry name (64 hex digits; stable for the life of the item)
/// and its decrypted entry.
pub type Found = (String, EntryData);

impl Store {
    fn index_path(&self) -> std::path::PathBuf {
        self.path.join(INDEX)
    }

    /// Items whose attributes (as the Secret Service shows them: stored attributes plus
    /// `service` and `username`, see crate::mapping) include every pair of `query`, most
    /// recently modified first. Costs the matching items, not the store: only the candidates
    /// the index names are read and decrypted (an empty query lists everything).
    pub fn search(&self, query: &BTreeMap<String, String>) -> Result<Vec<Found>> {
        let master = self.master()?;
        self.migrate_if_free(&master);
        let keys = IndexKeys::new(&master, &self.id);
        if !self.local {
            return self.search_every_item(&master, query);
        }
        let candidates = {
            let mut guard = lock_mutex(&self.index);
            let idx = self.refresh_index(&master, &keys, guard.take())?;
            let c = idx.candidates(&keys.tokens(query));
            *guard = Some(idx);
            c
        };
        let [name_key, seal] = self.entry_keys(&master);
        let mut found = Vec::with_capacity(candidates.len());
        for id in candidates {
            let e = match self.load_entry(&master, &seal, &id) {
                Ok(Some(e)) => e,
                // Deleted since it was indexed.
                Ok(None) => continue,
                // A bad file is reported by `list`; a search shows the items that open.
                Err(Error::Corrupt { .. }) => continue,
                Err(e) => return Err(e),
            };
            if !names_match(&name_key, &id, &e) {
                continue;
            }
            let attrs = mapping::item_attributes(&e);
            if query.iter().all(|(k, v)| attrs.get(k) == Some(v)) {
                found.push((format::hex(&id), e));
            }
        }
        found.sort_by(|a, b| b.1.modified.cmp(&a.1.modified).then_with(|| a.0.cmp(&b.0)));
        Ok(found)
    }

    /// On a network filesystem: every item read and compared (the index is not kept there:
    /// two machines appending at once, without a lock that reaches both, could lose a record).
    fn search_every_item(
        &self,
        master: &MasterKey,
        query: &BTreeMap<String, String>,
    ) -> Result<Vec<Found>> {
        let mut found: Vec<Found> = self
            .every_entry(master)?
            .into_iter()
            .filter(|(_, e)| {
                let attrs = mapping::item_attributes(e);
                query.iter().all(|(k, v)| attrs.get(k) == Some(v))
            })
            .map(|(id, e)| (format::hex(&id), e))
            .collect();
        found.sort_by(|a, b| b.1.modified.cmp(&a.1.modified).then_with(|| a.0.cmp(&b.0)));
        Ok(found)
    }

    /// Every entry that opens under its own name, decrypted (the ones that do not are left
    /// out: `list` reports them).
    fn every_entry(&self, master: &MasterKey) -> Result<Vec<(Name, EntryData)>> {
        let [name_key, seal] = self.entry_keys(master);
        let mut out = Vec::new();
        for id in self.entry_names(master)? {
            if let Ok(Some(e)) = self.load_entry(master, &seal, &id) {
                if names_match(&name_key, &id, &e) {
                    out.push((id, e));
                }
            }
        }
        Ok(out)
    }

    /// An index built from every entry (nothing written).
    fn index_of_every_entry(&self, master: &MasterKey, keys: &IndexKeys) -> Result<Index> {
        let items: Vec<(Name, BTreeMap<String, String>)> = self
            .every_entry(master)?
            .iter()
            .map(|(id, e)| (*id, mapping::item_attributes(e)))
            .collect();
        Ok(Index::build(keys, items.iter().map(|(n, a)| (*n, a))))
    }

    /// The item whose entry file is `name` (64 hex digits, as [`Store::search`] and
    /// [`Store::entry_name`] give it).
    pub fn entry_by_name(&self, name: &str) -> Result<EntryData> {
        let id = parse_entry_name(name.as_bytes())
            .ok_or_else(|| Error::InvalidInput(format!("{name:?} is not an entry name")))?;
        let master = self.master()?;
        let [name_key, seal] = self.entry_keys(&master);
        match self.load_entry(&master, &seal, &id)? {
            Some(e) if names_match(&name_key, &id, &e) => Ok(e),
            Some(_) => Err(Error::corrupt(
                &self.entry_path(name),
                "entry identity does not match its name",
            )),
            None => {
                self.check_master(&master)?;
                Err(Error::NoEntry {
                    service: String::new(),
                    username: name.to_string(),
                })
            }
        }
    }

    /// The names of every entry file (no decryption: a directory listing), sorted.
    pub fn entry_names_hex(&self) -> Result<Vec<String>> {
        let master = self.master()?;
        let mut v: Vec<String> = self
            .entry_names(&master)?
            .iter()
            .map(|n| format::hex(n))
            .collect();
        v.sort();
        Ok(v)
    }

    /// Bring `idx` (what this handle read before, if anything) up to date with the file:
    /// read what was appended, or the whole file when it was replaced, cut, damaged or never
    /// read.
    fn refresh_index(
        &self,
        master: &MasterKey,
        keys: &IndexKeys,
        idx: Option<Index>,
    ) -> Result<Index> {
        let Some(mut idx) = idx else {
            return self.load_index(master, keys);
        };
        let f = match fs::open_read(Some(&self.dir), Path::new(INDEX)) {
            Ok(f) => f,
            Err(_) => return self.load_index(master, keys),
        };
        let m = fs::stat(&f).map_err(|e| Error::from_io("stat", &self.index_path(), e))?;
        if (m.dev(), m.ino()) != idx.file || m.len() < idx.len || m.len() > index::MAX_INDEX_LEN {
            return self.load_index(master, keys);
        }
        if m.len() == idx.len {
            return Ok(idx);
        }
        let mut buf = vec![0u8; (m.len() - idx.len) as usize];
        let n = f
            .read_at(&mut buf, idx.len)
            .map_err(|e| Error::from_io("read", &self.index_path(), e))?;
        buf.truncate(n);
        match idx.read_records(keys, &buf) {
            Ok(()) => Ok(idx),
            Err(_) => self.load_index(master, keys),
        }
    }

    /// Read the whole index file, check it against the entry directory, and repair, rebuild
    /// or compact it as needed (writing only when the writer lock is free at once).
    fn load_index(&self, master: &MasterKey, keys: &IndexKeys) -> Result<Index> {
        let display = || self.index_path();
        let parsed = match fs::open_read(Some(&self.dir), Path::new(INDEX)) {
            Ok(f) => {
                let m = fs::stat(&f).map_err(|e| Error::from_io("stat", &display(), e))?;
                match read_checked(
                    &self.dir,
                    Path::new(INDEX),
                    &display,
                    self.owner,
                    index::MAX_INDEX_LEN,
                ) {
                    Ok(Some(bytes)) => Index::parse(keys, &bytes, (m.dev(), m.ino())).ok(),
                    Ok(None) | Err(Error::Corrupt { .. }) => None,
                    Err(e) => return Err(e),
                }
            }
            Err(_) => None,
        };
        let Some(mut idx) = parsed else {
            return self.rebuild_index(master, keys);
        };
        if idx.len < file_len(&self.dir) {
            // A record cut short: an append in progress, or torn by a crash (or damage). With
            // no writer at work it is the latter: rebuild.
            if let Ok(_guard) = fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) {
                drop(_guard);
                return self.rebuild_index(master, keys);
            }
        }
        let on_disk: HashSet<Name> = self.entry_names(master)?.into_iter().collect();
        let ghosts: Vec<Name> = idx
            .names()
            .filter(|n| !on_disk.contains(*n))
            .copied()
            .collect();
        for n in &ghosts {
            idx.remove(n);
        }
        let missing: Vec<Name> = on_disk.into_iter().filter(|n| !idx.contains(n)).collect();
        let mut appends = Vec::new();
        if !missing.is_empty() {
            let [name_key, seal] = self.entry_keys(master);
            for id in missing {
                if let Ok(Some(e)) = self.with_entry(master, &seal, &id, |p| p.to_data(false)) {
                    if names_match(&name_key, &id, &e) {
                        let t = keys.tokens(&mapping::item_attributes(&e));
                        idx.add(&id, &t);
                        appends.push((id, t));
                    }
                }
            }
        }
        let compact = idx.records > 2 * idx.live() + COMPACT_SLACK;
        if appends.is_empty() && !compact {
            return Ok(idx);
        }
        // Repairs and compaction are written only when nobody writes: never wait for it.
        let Ok(_guard) = fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) else {
            return Ok(idx);
        };
        if compact {
            // From the entries: the file's union of old and new tokens is what compaction sheds.
            drop(_guard);
            return self.rebuild_index(master, keys);
        } else {
            for (id, t) in appends {
                // Read again (with ours) by the next refresh: appends may have followed ours.
                self.append_record(keys, KIND_ITEM, &id, &t, false)?;
            }
        }
        Ok(idx)
    }

    /// Build the index from every entry and write it (if the writer lock is free at once). The
    /// entries are read under that lock: a write landing between the reading and the file that
    /// replaces the index would lose its record (its item unsearchable until a full reload).
    fn rebuild_index(&self, master: &MasterKey, keys: &IndexKeys) -> Result<Index> {
        match fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) {
            Ok(_guard) => {
                let mut idx = self.index_of_every_entry(master, keys)?;
                self.write_index(keys, &mut idx)?;
                Ok(idx)
            }
            // A writer at work: use what the entries say now, write nothing.
            Err(_) => self.index_of_every_entry(master, keys),
        }
    }

    /// Replace the index file with `idx`, compacted under a new id (under the writer lock).
    fn write_index(&self, keys: &IndexKeys, idx: &mut Index) -> Result<()> {
        let id: [u8; 16] = crypto::random()?;
        let bytes = idx.encode(keys, &id);
        write_atomic(&self.dir, &self.dir, INDEX, &bytes, &self.index_path())?;
        let f = fs::open_read(Some(&self.dir), Path::new(INDEX))
            .map_err(|e| Error::from_io("open", &self.index_path(), e))?;
        let m = fs::stat(&f).map_err(|e| Error::from_io("stat", &self.index_path(), e))?;
        let fresh = Index::parse(keys, &bytes, (m.dev(), m.ino()))
            .map_err(|why| Error::corrupt(&self.index_path(), why))?;
        *idx = fresh;
        Ok(())
    }

    /// Append one record (under the writer lock); `durable`: fdatasync it. A missing or
    /// unreadable index file is started anew (readers then repair it from the entries).
    fn append_record(
        &self,
        keys: &IndexKeys,
        kind: u8,
        name: &Name,
        tokens: &[index::Token],
        durable: bool,
    ) -> Result<()> {
        let display = self.index_path();
        let io = |what, e| Error::from_io(what, &display, e);
        let f = match fs::open_append(&self.dir, Path::new(INDEX)) {
            Ok(f) => Some(f),
            // Missing, or a symlink (never followed): replaced below by a new file (a rename
            // replaces the link itself; its target is never touched).
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(libc::ELOOP) =>
            {
                None
            }
            Err(e) => return Err(io("open", e)),
        };
        let checked = match f {
            Some(f) => {
                let m = fs::stat(&f).map_err(|e| io("stat", e))?;
                let mut head = [0u8; index::HEADER_LEN];
                let ok = m.is_file()
                    && m.uid() == self.owner
                    && m.nlink() == 1
                    && m.mode() & 0o022 == 0
                    && m.len() < index::MAX_INDEX_LEN
                    && f.read_at(&mut head, 0).ok() == Some(head.len());
                index::parse_header(&head)
                    .filter(|_| ok)
                    .map(|id| (f, id, m.len()))
            }
            None => None,
        };
        let Some((mut f, index_id, offset)) = checked else {
            let id: [u8; 16] = crypto::random()?;
            let mut bytes = index::encode_header(&id);
            let r = index::encode_record(keys, &id, bytes.len() as u64, kind, name, tokens);
            bytes.extend_from_slice(&r);
            return write_atomic(&self.dir, &self.dir, INDEX, &bytes, &display);
        };
        let record = index::encode_record(keys, &index_id, offset, kind, name, tokens);
        if let Err(e) = f.write_all(&record) {
            // Never leave half a record for the next append to follow.
            let _ = f.set_len(offset);
            return Err(io("write", e));
        }
        if durable {
            f.sync_data().map_err(|e| io("sync", e))?;
        }
        Ok(())
    }

    /// Under the writer lock, before entry `id` is written with `attrs` (its item attributes;
    /// `old`: what it had, if it existed): record its tokens unless it has them all already.
    pub(crate) fn index_item(
        &self,
        master: &MasterKey,
        id: &Name,
        attrs: &BTreeMap<String, String>,
        old: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        if !self.local {
            return self.drop_index();
        }
        // The usual `set`: a new secret, the same attributes (no key derived, nothing hashed).
        if old.is_some_and(|o| attrs.iter().all(|(k, v)| o.get(k) == Some(v))) {
            return Ok(());
        }
        let keys = IndexKeys::new(master, &self.id);
        let tokens = keys.tokens(attrs);
        if let Some(old) = old {
            let had = keys.tokens(old);
            if tokens.iter().all(|t| had.binary_search(t).is_ok()) {
                return Ok(());
            }
        }
        // A new item's tokens need no fsync: after a crash, the first full read of the index
        // finds its entry in the directory listing and indexes it.
        self.append_record(&keys, KIND_ITEM, id, &tokens, old.is_some())
    }

    /// Under the writer lock, after entry `id` was deleted.
    pub(crate) fn index_removed(&self, master: &MasterKey, id: &Name) -> Result<()> {
        if !self.local {
            return self.drop_index();
        }
        let keys = IndexKeys::new(master, &self.id);
        self.append_record(&keys, KIND_REMOVED, id, &[], false)
    }

    /// A write on a network filesystem: the index would miss it, so there is none until a
    /// search on a local filesystem rebuilds it from the entries.
    fn drop_index(&self) -> Result<()> {
        *lock_mutex(&self.index) = None;
        match fs::unlink(&self.dir, Path::new(INDEX)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::from_io("remove", &self.index_path(), e))
            }
            _ => Ok(()),
        }
    }

    /// Under the writer lock: build and write the index from scratch (after a rotation).
    pub(crate) fn reindex_locked(&self, master: &MasterKey) -> Result<()> {
        let keys = IndexKeys::new(master, &self.id);
        let mut idx = self.index_of_every_entry(master, &keys)?;
        self.write_index(&keys, &mut idx)?;
        *lock_mutex(&self.index) = None;
        Ok(())
    }

    /// Migrate a version 1 store to version 2 (docs/FORMAT.md "Migration from version 1"),
    /// under the writer lock (waiting as the handle's lock wait says). `Ok(false)`: it was
    /// version 2 already. The index is written first; the commit is the header's rename to
    /// version 2. Entries stay as they are (version 1 entries are read as they are, and
    /// rewritten as version 2 when next written).
    pub fn migrate(&self) -> Result<bool> {
        let master = self.master()?;
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        self.migrate_locked(&master)
    }

    /// [`Store::migrate`] with the writer lock held.
    pub(crate) fn migrate_locked(&self, master: &MasterKey) -> Result<bool> {
        if self.version.load(std::sync::atomic::Ordering::Relaxed) == VERSION {
            return Ok(false);
        }
        let (mut header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header.version == VERSION {
            self.version
                .store(VERSION, std::sync::atomic::Ordering::Relaxed);
            return Ok(false);
        }
        debug_assert_eq!(header.version, VERSION_1);
        if !header.verify_mac(master, &mac) {
            return Err(Error::Locked);
        }
        self.reindex_locked(master)?;
        header.version = VERSION;
        self.write_header(&header, master)?;
        self.version
            .store(VERSION, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }
}

/// The index file's size now (0 if it cannot be read).
fn file_len(dir: &std::fs::File) -> u64 {
    fs::open_read(Some(dir), Path::new(INDEX))
        .and_then(|f| fs::stat(&f))
        .map_or(0, |m| m.len())
}

/// Does entry `e` belong under the name `id`? (Its (service, username) name.)
fn names_match(name_key: &crypto::SubKey, id: &Name, e: &EntryData) -> bool {
    format::entry_id(name_key, &e.service, &e.username) == *id
}
