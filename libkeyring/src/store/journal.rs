//! The journal's IO half (docs/FORMAT.md "journal"; its bytes are crate::format::journal):
//! opening and checking the file, bringing a handle's view up to date, writing a record, and the
//! checkpoint that moves journaled writes into entry files.

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::files::{lock_mutex, write_atomic, TMP_PREFIX};
use super::Store;
use crate::crypto::{self, MasterKey, Purpose, SubKey};
use crate::error::{Error, Result};
use crate::format;
use crate::format::journal::{
    encode_header, encode_record, parse_header, Name, Stop, View, JOURNAL, JOURNAL_LEN, KIND_PUT,
    MAX_PAYLOAD, MIN_FREE_FOR_JOURNAL, RECORDS_AT, RECORD_FIXED,
};
use crate::sys::fs;

/// What a handle knows of the journal: the records as it last read them, the store generation
/// that was at, and the file it opened.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub view: View,
    /// The store generation the view was brought up to date at (None: never).
    pub generation: Option<u64>,
    /// This handle just wrote a record the view holds, and will bump the generation.
    pub own_write: bool,
    /// The journal file as this handle last opened it, kept between calls: each use checks it
    /// against the path with one `statx` (a journal replaced or removed meanwhile is opened
    /// afresh), instead of an open, a stat and a close per call.
    pub kept: Option<Arc<Opened>>,
}

/// An open journal file, checked to be ours when opened.
#[derive(Debug)]
pub(crate) struct Opened {
    pub file: std::fs::File,
    /// (device, inode).
    pub id: (u64, u64),
    pub writable: bool,
}

/// A checkpoint of more entry files than this makes them durable with one syncfs.
const SYNC_EACH_UP_TO: usize = 4;
/// Bytes read per step when scanning records.
const CHUNK: usize = 4 << 10;

/// What the journal says about one entry: not named (read the file), a sealed value, or
/// deleted.
pub(crate) enum Overlay {
    File,
    Sealed(Arc<Vec<u8>>),
    Deleted,
}

impl Store {
    fn journal_path(&self) -> std::path::PathBuf {
        self.path.join(JOURNAL)
    }

    fn journal_key(&self, master: &MasterKey) -> SubKey {
        master.subkey(&self.id.0, Purpose::JournalMac)
    }

    /// The journal, checked to be ours (None: there is none): the one `view` keeps if the
    /// path still names it, else opened afresh (and kept).
    fn open_journal(&self, j: &mut Journal, write: bool) -> Result<Option<Arc<Opened>>> {
        let display = self.journal_path();
        let refused = || {
            Error::corrupt(
                &display,
                format!(
                    "is not a {JOURNAL_LEN}-byte regular file of uid {} with one link, \
                     writable only by its owner; refusing it",
                    self.owner
                ),
            )
        };
        // What the path names now, before anything is opened (a directory, a FIFO or a
        // device is refused without being opened).
        let m = match fs::stat_at(&self.dir, Path::new(JOURNAL)) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                j.kept = None;
                return Ok(None);
            }
            Err(e) => return Err(Error::from_io("stat", &display, e)),
        };
        if !self.journal_file_ok(&m) {
            j.kept = None;
            return Err(refused());
        }
        if let Some(kept) = &j.kept {
            if (m.dev(), m.ino()) == kept.id && (kept.writable || !write) {
                return Ok(Some(Arc::clone(kept)));
            }
        }
        j.kept = None;
        let f = if write {
            fs::open_rw(&self.dir, Path::new(JOURNAL))
        } else {
            fs::open_read(Some(&self.dir), Path::new(JOURNAL))
        };
        let f = match f {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::from_io("open", &display, e)),
        };
        // The file opened may not be the one stat'ed: checked again.
        let m = fs::stat(&f).map_err(|e| Error::from_io("stat", &display, e))?;
        if !self.journal_file_ok(&m) {
            return Err(refused());
        }
        let opened = Arc::new(Opened {
            file: f,
            id: (m.dev(), m.ino()),
            writable: write,
        });
        j.kept = Some(Arc::clone(&opened));
        Ok(Some(opened))
    }

    /// A regular file of the store's owner with one link, writable only by the owner, of
    /// the journal's size.
    fn journal_file_ok(&self, m: &fs::Stat) -> bool {
        m.is_file()
            && m.uid() == self.owner
            && m.nlink() == 1
            && m.mode() & 0o022 == 0
            && m.len() == JOURNAL_LEN
    }

    fn read_epoch(&self, f: &std::fs::File) -> Result<[u8; 16]> {
        let mut head = [0u8; 34];
        f.read_exact_at(&mut head, 0)
            .map_err(|e| Error::from_io("read", &self.journal_path(), e))?;
        parse_header(&head).ok_or_else(|| {
            Error::corrupt(&self.journal_path(), "not a keyringrs journal (bad magic)")
        })
    }

    /// Bring `view` up to date with the journal: from its tail, or from the start when the
    /// file or its epoch changed (a checkpoint). The epoch is read again after the scan,
    /// and the scan redone if it moved meanwhile.
    pub(crate) fn refresh_journal(&self, master: &MasterKey, j: &mut Journal) -> Result<()> {
        match self.open_journal(j, false)? {
            Some(opened) => self.refresh_journal_from(master, j, &opened, false),
            None => {
                j.view.reset((0, 0), [0; 16]);
                Ok(())
            }
        }
    }

    /// [`Store::refresh_journal`] from an open journal; `locked`: under the writer lock
    /// (no checkpoint can start meanwhile, so the epoch is read once).
    fn refresh_journal_from(
        &self,
        master: &MasterKey,
        j: &mut Journal,
        opened: &Opened,
        locked: bool,
    ) -> Result<()> {
        let (f, file) = (&opened.file, opened.id);
        let key = self.journal_key(master);
        for _ in 0..8 {
            let epoch = self.read_epoch(f)?;
            if j.view.file != file || j.view.epoch != epoch {
                j.view.reset(file, epoch);
            }
            let mut want = CHUNK;
            loop {
                let room = (JOURNAL_LEN - j.view.tail) as usize;
                let mut buf = vec![0u8; want.min(room)];
                let n = f
                    .read_at(&mut buf, j.view.tail)
                    .map_err(|e| Error::from_io("read", &self.journal_path(), e))?;
                buf.truncate(n);
                match j.view.read_records(&key, &buf) {
                    Stop::NeedMore(need) if need > n && n == want.min(room) && need <= room => {
                        want = need.max(CHUNK)
                    }
                    Stop::NeedMore(_) if n == want.min(room) && n > 0 => want = CHUNK,
                    Stop::Damaged => {
                        j.generation = None;
                        return Err(Error::corrupt(
                            &self.journal_path(),
                            format!(
                                "the record at offset {} does not authenticate but the \
                                 next one does (damaged or altered)",
                                j.view.tail
                            ),
                        ));
                    }
                    _ => break,
                }
            }
            if locked || self.read_epoch(f)? == epoch {
                return Ok(());
            }
        }
        Err(Error::corrupt(
            &self.journal_path(),
            "kept changing while it was read (a checkpoint in a loop?)",
        ))
    }

    /// What the journal says about entry `id`, with the view brought up to date if the
    /// store changed since it was (every time, without a generation counter).
    pub(crate) fn journal_overlay(
        &self,
        master: &MasterKey,
        id: &Name,
        generation: Option<u64>,
    ) -> Result<Overlay> {
        let mut j = lock_mutex(&self.journal);
        if generation.is_none() || j.generation != generation {
            self.refresh_journal(master, &mut j)?;
            j.generation = generation;
        }
        Ok(match j.view.latest.get(id) {
            None => Overlay::File,
            Some(Some(b)) => Overlay::Sealed(Arc::clone(b)),
            Some(None) => Overlay::Deleted,
        })
    }

    /// Entry names the journal adds (written, not yet in a file) and removes (deleted).
    pub(crate) fn journal_names(&self, master: &MasterKey) -> Result<(Vec<Name>, Vec<Name>)> {
        let mut j = lock_mutex(&self.journal);
        self.refresh_journal(master, &mut j)?;
        j.generation = None;
        let mut put = Vec::new();
        let mut deleted = Vec::new();
        for (n, v) in &j.view.latest {
            if v.is_some() {
                put.push(*n)
            } else {
                deleted.push(*n)
            }
        }
        Ok((put, deleted))
    }

    /// Write a new, empty journal (zeros, fsync, rename: its blocks are allocated once, so
    /// records later overwrite them in place).
    pub(crate) fn create_journal(dir: &std::fs::File, path: &Path) -> Result<()> {
        // Never the last free space: a nearly full disk writes entry files instead.
        if fs::free_bytes(dir).is_none_or(|free| free < MIN_FREE_FOR_JOURNAL) {
            return Err(Error::Quota(format!(
                "{}: too little free space for a journal",
                path.display()
            )));
        }
        let mut bytes = encode_header(&crypto::random()?);
        bytes.resize(JOURNAL_LEN as usize, 0);
        write_atomic(dir, dir, JOURNAL, &bytes, &path.join(JOURNAL))
    }

    /// Under the writer lock: record that entry `id` now holds `sealed` (KIND_PUT) or is
    /// deleted (KIND_DELETE, empty `sealed`), durably, with one write and one fdatasync.
    /// `Ok(false)`: not journaled (too large, or no journal can be made here): the caller
    /// writes the entry file instead (after this has checkpointed, so no older record of
    /// the entry outlives it).
    pub(crate) fn journal_write(
        &self,
        master: &MasterKey,
        kind: u8,
        id: &Name,
        sealed: &[u8],
    ) -> Result<bool> {
        // Too large for a record, or a network filesystem (two machines could write the
        // same offset: their lock may not reach each other): an entry file, after whatever
        // the journal holds has gone to files.
        if sealed.len() > MAX_PAYLOAD || !self.local {
            self.checkpoint_locked(master)?;
            return Ok(false);
        }
        let mut j = lock_mutex(&self.journal);
        let opened = match self.open_journal(&mut j, true)? {
            Some(j) => j,
            None => {
                // A store from before the journal, or one whose journal could not be made.
                if Self::create_journal(&self.dir, &self.path).is_err() {
                    return Ok(false);
                }
                match self.open_journal(&mut j, true)? {
                    Some(j) => j,
                    None => return Ok(false),
                }
            }
        };
        // Under the lock, always from the file: a writer killed after its record but
        // before its generation bump left a record no generation announced.
        self.refresh_journal_from(master, &mut j, &opened, true)?;
        let f = &opened.file;
        let whole = (RECORD_FIXED + sealed.len() + 16) as u64;
        if j.view.tail + whole > JOURNAL_LEN {
            drop(j);
            self.checkpoint_locked(master)?;
            j = lock_mutex(&self.journal);
            self.refresh_journal_from(master, &mut j, &opened, true)?;
        }
        let key = self.journal_key(master);
        let at = j.view.tail;
        let record = encode_record(&key, &j.view.epoch, at, kind, id, sealed);
        let display = self.journal_path();
        let written = f
            .write_all_at(&record, at)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::from_io("write", &display, e));
        if let Err(e) = written {
            // Never leave a record that did not become durable for readers to find.
            let _ = f.write_all_at(&[0u8; RECORD_FIXED], at);
            j.generation = None;
            return Err(e);
        }
        j.view.tail = at + whole;
        j.view
            .latest
            .insert(*id, (kind == KIND_PUT).then(|| Arc::new(sealed.to_vec())));
        // Current as of the generation the caller's bump makes (Store::bump_generation).
        j.generation = None;
        j.own_write = true;
        Ok(true)
    }

    /// Move every journaled write into its entry file now and start a new journal epoch
    /// (what a full journal does by itself): e.g. before copying the store's files.
    pub fn checkpoint(&self) -> Result<()> {
        let master = self.master()?;
        let _guard = fs::flock_exclusive(&self.dir, self.wait)
            .map_err(|e| super::files::busy(&self.path, e))?;
        self.check_master(&master)?;
        self.checkpoint_locked(&master)
    }

    /// Under the writer lock: write each entry of `latest` (sealed bytes; None: deleted)
    /// into its file: temp files, made durable together, renamed into `entries/` (deleted
    /// ones unlinked), one fsync of `entries/`. What a checkpoint and a repair do.
    pub(crate) fn move_into_files(
        &self,
        latest: &crate::crypto::KeyedMap<Name, Option<Arc<Vec<u8>>>>,
    ) -> Result<()> {
        let entries = self.path.join("entries");
        let mut staged = Vec::new();
        let result = (|| -> Result<()> {
            // All temp files written first, then made durable together: a few by an fsync
            // each; more by one syncfs of the store's filesystem (each fsync of a new file
            // is a filesystem-journal commit, ~1 ms here; one syncfs flushes them all at
            // once — and whatever else is dirty on that filesystem).
            let mut open = Vec::new();
            for (id, value) in latest {
                let name = format::hex(id);
                match value {
                    Some(bytes) => {
                        let tmp = format!("{TMP_PREFIX}{}", format::hex(&crypto::random::<8>()?));
                        staged.push(tmp.clone());
                        let io = |e| Error::from_io("write", &entries.join(&name), e);
                        let mut t =
                            fs::create_new(&self.dir, Path::new(&tmp), 0o600).map_err(io)?;
                        fs::fchmod(&t, 0o600).map_err(io)?;
                        std::io::Write::write_all(&mut t, bytes).map_err(io)?;
                        open.push((t, name));
                    }
                    None => staged.push(String::new()),
                }
            }
            if open.len() > SYNC_EACH_UP_TO {
                fs::sync_filesystem(&self.dir)
                    .map_err(|e| Error::from_io("sync", &self.path, e))?;
            } else {
                for (t, name) in &open {
                    t.sync_data()
                        .map_err(|e| Error::from_io("write", &entries.join(name), e))?;
                }
            }
            for ((id, value), tmp) in latest.iter().zip(&staged) {
                let name = format::hex(id);
                let io = |e| Error::from_io("write", &entries.join(&name), e);
                if value.is_some() {
                    fs::rename_into(&self.dir, Path::new(tmp), &self.entries, Path::new(&name))
                        .map_err(io)?;
                } else {
                    match fs::unlink(&self.entries, Path::new(&name)) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
                        _ => {}
                    }
                }
            }
            self.entries
                .sync_all()
                .map_err(|e| Error::from_io("sync", &entries, e))
        })();
        if result.is_err() {
            for tmp in staged.iter().filter(|t| !t.is_empty()) {
                let _ = fs::unlink(&self.dir, Path::new(tmp));
            }
        }
        result
    }

    /// Under the writer lock: move every journaled entry into its file (temp files, fsync,
    /// renames, one directory fsync), then start a new epoch (the header rewritten in place
    /// and fdatasync'd). A crash anywhere leaves the journal's records in force (they equal
    /// or supersede what the files hold).
    pub(crate) fn checkpoint_locked(&self, master: &MasterKey) -> Result<()> {
        let mut j = lock_mutex(&self.journal);
        let Some(opened) = self.open_journal(&mut j, true)? else {
            return Ok(());
        };
        self.refresh_journal_from(master, &mut j, &opened, true)?;
        let (f, file) = (&opened.file, opened.id);
        if j.view.latest.is_empty() && j.view.tail == RECORDS_AT {
            return Ok(());
        }
        self.move_into_files(&j.view.latest)?;
        let epoch: [u8; 16] = crypto::random()?;
        let display = self.journal_path();
        f.write_all_at(&encode_header(&epoch), 0)
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::from_io("write", &display, e))?;
        let moved = std::mem::take(&mut j.view.latest);
        j.view.reset(file, epoch);
        j.generation = None;
        drop(j);
        // Entry files changed: other handles drop what they remember of the files; this
        // one keeps it, with the entries it just wrote.
        self.bump_after_checkpoint(&moved)
    }
}
