//! The write journal (docs/FORMAT.md "journal"): a preallocated file into which `set` and
//! `delete` write one authenticated record and fdatasync it — one flush of data into blocks that
//! are already allocated, so no filesystem metadata and no filesystem journal commit — instead
//! of a new entry file (temp file, fsync, rename, directory fsync: two commits). Readers overlay
//! the records on the entry files; a checkpoint moves them into entry files and starts a new
//! epoch. This module is the file format and the in-memory view; crate::store drives it.

use std::sync::Arc;

use crate::crypto::SubKey;

/// The journal file in the store directory.
pub const JOURNAL: &str = "journal";
/// First 16 bytes of the journal.
pub const JOURNAL_MAGIC: &[u8; 16] = b"keyringrs-journ\n";
/// The journal's own format version.
pub const JOURNAL_VERSION: u16 = 1;
/// The journal's fixed size: written whole (zeros) when it is created, never grown or shrunk.
pub const JOURNAL_LEN: u64 = 16 << 10;
/// A journal is made only where at least this much is free (never take a full disk's last space).
pub const MIN_FREE_FOR_JOURNAL: u64 = 1 << 20;
/// The header block; records start after it.
pub const RECORDS_AT: u64 = 4096;
/// length ‖ kind ‖ entry name.
pub const RECORD_FIXED: usize = 4 + 1 + 32;
const TAG_LEN: usize = 16;
/// The largest sealed entry a record can hold (larger entries are written as files).
pub const MAX_PAYLOAD: usize = (JOURNAL_LEN - RECORDS_AT) as usize - RECORD_FIXED - TAG_LEN;
/// A record: entry `name` now holds the sealed bytes of the payload.
pub const KIND_PUT: u8 = 1;
/// A record: entry `name` was deleted (no payload).
pub const KIND_DELETE: u8 = 2;

/// An entry's name: the 32 bytes its file name is the hex of.
pub type Name = [u8; 32];

/// The header block for `epoch`: magic ‖ version ‖ epoch, zero-padded to [`RECORDS_AT`].
pub fn encode_header(epoch: &[u8; 16]) -> Vec<u8> {
    let mut v = vec![0u8; RECORDS_AT as usize];
    v[..16].copy_from_slice(JOURNAL_MAGIC);
    v[16..18].copy_from_slice(&JOURNAL_VERSION.to_le_bytes());
    v[18..34].copy_from_slice(epoch);
    v
}

/// The epoch of a journal header, if it is one.
pub fn parse_header(b: &[u8]) -> Option<[u8; 16]> {
    if b.len() < 34 || &b[..16] != JOURNAL_MAGIC || b[16..18] != JOURNAL_VERSION.to_le_bytes() {
        return None;
    }
    b[18..34].try_into().ok()
}

fn tag(key: &SubKey, epoch: &[u8; 16], offset: u64, body: &[u8]) -> [u8; TAG_LEN] {
    let full = key.mac(&[epoch, &offset.to_le_bytes(), body]);
    let mut t = [0u8; TAG_LEN];
    t.copy_from_slice(&full[..TAG_LEN]);
    t
}

/// One record, to be written at `offset` of the journal of `epoch`.
pub fn encode_record(
    key: &SubKey,
    epoch: &[u8; 16],
    offset: u64,
    kind: u8,
    name: &Name,
    payload: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(RECORD_FIXED + payload.len() + TAG_LEN);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.push(kind);
    v.extend_from_slice(name);
    v.extend_from_slice(payload);
    let t = tag(key, epoch, offset, &v);
    v.extend_from_slice(&t);
    v
}

/// Why a scan stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// At the end of the valid records (a zeroed, torn, stale or foreign record, or the end of
    /// the file).
    End,
    /// A record's length says it continues past the bytes given: read this many from `tail`.
    NeedMore(usize),
    /// A record that does not authenticate is followed by one that does: not a torn last
    /// record but damage (or tampering) in the middle.
    Damaged,
}

/// The journal as one handle last read it: for each entry it names, the newest record's
/// sealed bytes (None: deleted). Sealed bytes are ciphertext, never a secret.
#[derive(Debug, Default)]
pub struct View {
    /// The store generation the view was brought up to date at (None: never).
    pub generation: Option<u64>,
    /// (device, inode) of the journal read; (0, 0): there was none.
    pub file: (u64, u64),
    pub epoch: [u8; 16],
    /// Where the next record goes.
    pub tail: u64,
    pub latest: crate::cache::KeyedMap<Name, Option<Arc<Vec<u8>>>>,
    /// This handle just wrote a record the view holds, and will bump the generation.
    pub own_write: bool,
    /// The journal file as this handle last opened it, kept between calls: each use checks it
    /// against the path with one `statx` (a journal replaced or removed meanwhile is opened
    /// afresh), instead of an open, a stat and a close per call.
    pub kept: Option<Arc<Opened>>,
}

/// An open journal file, checked to be ours when opened.
#[derive(Debug)]
pub struct Opened {
    pub file: std::fs::File,
    /// (device, inode).
    pub id: (u64, u64),
    pub writable: bool,
}

impl View {
    /// Start over for the journal `file` of `epoch`.
    pub fn reset(&mut self, file: (u64, u64), epoch: [u8; 16]) {
        self.file = file;
        self.epoch = epoch;
        self.tail = RECORDS_AT;
        self.latest.clear();
    }

    /// Apply the records in `buf`, which starts at file offset `self.tail`, up to the first
    /// one that is not whole and authentic.
    pub fn read_records(&mut self, key: &SubKey, buf: &[u8]) -> Stop {
        let mut pos = 0usize;
        loop {
            let rest = &buf[pos..];
            if rest.len() < RECORD_FIXED {
                return if self.tail + (RECORD_FIXED as u64) <= JOURNAL_LEN {
                    Stop::NeedMore(RECORD_FIXED)
                } else {
                    Stop::End
                };
            }
            let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
            let kind = rest[4];
            let whole = RECORD_FIXED + len + TAG_LEN;
            let plausible = match kind {
                KIND_PUT => len > 0 && len <= MAX_PAYLOAD,
                KIND_DELETE => len == 0,
                _ => false,
            };
            if !plausible || self.tail + whole as u64 > JOURNAL_LEN {
                return Stop::End;
            }
            if rest.len() < whole {
                return Stop::NeedMore(whole);
            }
            let body = &rest[..RECORD_FIXED + len];
            if !authentic(key, &self.epoch, self.tail, &rest[..whole]) {
                // Torn by a crash, it is the last record: nothing valid follows it.
                let next = self.tail + whole as u64;
                return if next_is_authentic(key, &self.epoch, next, &rest[whole..]) {
                    Stop::Damaged
                } else {
                    Stop::End
                };
            }
            let name: Name = body[5..37].try_into().expect("32 bytes");
            let value = (kind == KIND_PUT).then(|| Arc::new(body[RECORD_FIXED..].to_vec()));
            self.latest.insert(name, value);
            self.tail += whole as u64;
            pos += whole;
        }
    }
}

/// A whole journal file's bytes, read as a reader would (for `check` and `repair`).
#[derive(Debug)]
pub struct Scan {
    /// The records that authenticate, up to the first that does not.
    pub view: View,
    /// How the records ended: [`Stop::Damaged`] when a record that does not authenticate is
    /// followed by one that does.
    pub stop: Stop,
    /// Whole, authentic records after the damage (not applied).
    pub after: usize,
}

/// Scan `bytes` (a journal file: header block and records) with the journal key. None: the
/// header block is not a journal's.
pub fn scan(key: &SubKey, bytes: &[u8]) -> Option<Scan> {
    let epoch = parse_header(bytes)?;
    let mut view = View::default();
    view.reset((0, 0), epoch);
    let end = bytes.len().min(JOURNAL_LEN as usize);
    let records = bytes.get(RECORDS_AT as usize..end).unwrap_or_default();
    let stop = match view.read_records(key, records) {
        // Everything there was given: a record cut short by the file's end is the end.
        Stop::NeedMore(_) => Stop::End,
        s => s,
    };
    let mut after = 0;
    if stop == Stop::Damaged {
        let mut at = view.tail as usize;
        let len_at = |at: usize| {
            bytes
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        };
        // Past the damaged record (its length is plausible: the next one authenticates).
        if let Some(len) = len_at(at) {
            at += RECORD_FIXED + len + TAG_LEN;
            while let Some(len) = len_at(at) {
                if !next_is_authentic(key, &epoch, at as u64, &bytes[at..end.max(at)]) {
                    break;
                }
                after += 1;
                at += RECORD_FIXED + len + TAG_LEN;
            }
        }
    }
    Some(Scan { view, stop, after })
}

/// Does `rec` (one whole record at `offset`) carry its tag?
fn authentic(key: &SubKey, epoch: &[u8; 16], offset: u64, rec: &[u8]) -> bool {
    let (body, t) = rec.split_at(rec.len() - TAG_LEN);
    constant_time_eq(&tag(key, epoch, offset, body), t)
}

/// Is there a whole, authentic record at the start of `rest` (at `offset`)?
fn next_is_authentic(key: &SubKey, epoch: &[u8; 16], offset: u64, rest: &[u8]) -> bool {
    if rest.len() < RECORD_FIXED {
        return false;
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    let whole = RECORD_FIXED + len + TAG_LEN;
    len <= MAX_PAYLOAD
        && rest.len() >= whole
        && offset + whole as u64 <= JOURNAL_LEN
        && authentic(key, epoch, offset, &rest[..whole])
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{MasterKey, Purpose};

    fn key() -> SubKey {
        MasterKey::generate()
            .unwrap()
            .subkey(&[1; 16], Purpose::JournalMac)
    }

    fn journal(key: &SubKey, epoch: &[u8; 16], records: &[(u8, Name, &[u8])]) -> Vec<u8> {
        let mut f = encode_header(epoch);
        for (kind, name, payload) in records {
            let r = encode_record(key, epoch, f.len() as u64, *kind, name, payload);
            f.extend_from_slice(&r);
        }
        f.resize(JOURNAL_LEN as usize, 0);
        f
    }

    fn view(key: &SubKey, file: &[u8]) -> View {
        let mut v = View::default();
        v.reset((1, 1), parse_header(file).unwrap());
        assert_eq!(v.read_records(key, &file[RECORDS_AT as usize..]), Stop::End);
        v
    }

    #[test]
    fn the_newest_record_of_each_entry_wins_and_deletes_count() {
        let k = key();
        let f = journal(
            &k,
            &[7; 16],
            &[
                (KIND_PUT, [1; 32], b"a1"),
                (KIND_PUT, [2; 32], b"b1"),
                (KIND_PUT, [1; 32], b"a2"),
                (KIND_DELETE, [2; 32], b""),
            ],
        );
        let v = view(&k, &f);
        assert_eq!(
            v.latest[&[1; 32]].as_deref().map(Vec::as_slice),
            Some(&b"a2"[..])
        );
        assert_eq!(v.latest[&[2; 32]], None);
        assert_eq!(v.tail, RECORDS_AT + 4 * (RECORD_FIXED + TAG_LEN) as u64 + 6);
    }

    #[test]
    fn a_torn_stale_or_foreign_record_ends_the_journal() {
        let k = key();
        let recs: [(u8, Name, &[u8]); 2] = [(KIND_PUT, [1; 32], b"a1"), (KIND_PUT, [2; 32], b"b1")];
        let f = journal(&k, &[7; 16], &recs);
        let second = RECORDS_AT as usize + RECORD_FIXED + 2 + TAG_LEN;
        // Any byte of the last record changed (a torn write): the first alone survives.
        for i in second..second + RECORD_FIXED + 2 + TAG_LEN {
            let mut g = f.clone();
            g[i] ^= 0x10;
            let v = view(&k, &g);
            assert_eq!(v.latest.len(), 1, "flip at {i}");
        }
        // A payload or tag byte of the first record changed, the second intact: damage, said.
        for i in RECORDS_AT as usize + RECORD_FIXED..second {
            let mut g = f.clone();
            g[i] ^= 0x10;
            let mut v = View::default();
            v.reset((1, 1), [7; 16]);
            assert_eq!(
                v.read_records(&k, &g[RECORDS_AT as usize..]),
                Stop::Damaged,
                "flip at {i}"
            );
        }
        // Records of another epoch (a journal before a checkpoint) are not read.
        let mut g = f.clone();
        g[18..34].copy_from_slice(&[8; 16]);
        assert!(view(&k, &g).latest.is_empty());
        // Another key: nothing.
        assert!(view(&key(), &f).latest.is_empty());
        // A record whose length runs past the given bytes asks for more.
        let mut v = View::default();
        v.reset((1, 1), [7; 16]);
        let cut = &f[RECORDS_AT as usize..RECORDS_AT as usize + 10];
        assert_eq!(
            v.read_records(&k, cut),
            Stop::NeedMore(RECORD_FIXED),
            "a header cut short"
        );
        let cut = &f[RECORDS_AT as usize..RECORDS_AT as usize + RECORD_FIXED + 1];
        assert_eq!(
            v.read_records(&k, cut),
            Stop::NeedMore(RECORD_FIXED + 2 + TAG_LEN)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The store's side: reading the journal into a view, writing records, checkpoints.

mod store_side {
    use std::os::unix::fs::FileExt;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::crypto::{self, MasterKey, Purpose};
    use crate::error::{Error, Result};
    use crate::format;
    use crate::store::{lock_mutex, write_atomic, Store, TMP_PREFIX};
    use crate::sys::fs;

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
        fn open_journal(&self, view: &mut View, write: bool) -> Result<Option<Arc<Opened>>> {
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
                    view.kept = None;
                    return Ok(None);
                }
                Err(e) => return Err(Error::from_io("stat", &display, e)),
            };
            if !self.journal_file_ok(&m) {
                view.kept = None;
                return Err(refused());
            }
            if let Some(kept) = &view.kept {
                if (m.dev(), m.ino()) == kept.id && (kept.writable || !write) {
                    return Ok(Some(Arc::clone(kept)));
                }
            }
            view.kept = None;
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
            view.kept = Some(Arc::clone(&opened));
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
        pub(crate) fn refresh_journal(&self, master: &MasterKey, view: &mut View) -> Result<()> {
            match self.open_journal(view, false)? {
                Some(opened) => self.refresh_journal_from(master, view, &opened, false),
                None => {
                    view.reset((0, 0), [0; 16]);
                    Ok(())
                }
            }
        }

        /// [`Store::refresh_journal`] from an open journal; `locked`: under the writer lock
        /// (no checkpoint can start meanwhile, so the epoch is read once).
        fn refresh_journal_from(
            &self,
            master: &MasterKey,
            view: &mut View,
            opened: &Opened,
            locked: bool,
        ) -> Result<()> {
            let (f, file) = (&opened.file, opened.id);
            let key = self.journal_key(master);
            for _ in 0..8 {
                let epoch = self.read_epoch(f)?;
                if view.file != file || view.epoch != epoch {
                    view.reset(file, epoch);
                }
                let mut want = CHUNK;
                loop {
                    let room = (JOURNAL_LEN - view.tail) as usize;
                    let mut buf = vec![0u8; want.min(room)];
                    let n = f
                        .read_at(&mut buf, view.tail)
                        .map_err(|e| Error::from_io("read", &self.journal_path(), e))?;
                    buf.truncate(n);
                    match view.read_records(&key, &buf) {
                        Stop::NeedMore(need) if need > n && n == want.min(room) && need <= room => {
                            want = need.max(CHUNK)
                        }
                        Stop::NeedMore(_) if n == want.min(room) && n > 0 => want = CHUNK,
                        Stop::Damaged => {
                            view.generation = None;
                            return Err(Error::corrupt(
                                &self.journal_path(),
                                format!(
                                    "the record at offset {} does not authenticate but the \
                                     next one does (damaged or altered)",
                                    view.tail
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
            let mut view = lock_mutex(&self.journal);
            if generation.is_none() || view.generation != generation {
                self.refresh_journal(master, &mut view)?;
                view.generation = generation;
            }
            Ok(match view.latest.get(id) {
                None => Overlay::File,
                Some(Some(b)) => Overlay::Sealed(Arc::clone(b)),
                Some(None) => Overlay::Deleted,
            })
        }

        /// Entry names the journal adds (written, not yet in a file) and removes (deleted).
        pub(crate) fn journal_names(&self, master: &MasterKey) -> Result<(Vec<Name>, Vec<Name>)> {
            let mut view = lock_mutex(&self.journal);
            self.refresh_journal(master, &mut view)?;
            view.generation = None;
            let mut put = Vec::new();
            let mut deleted = Vec::new();
            for (n, v) in &view.latest {
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
            if fs::free_bytes(dir).map_or(true, |free| free < MIN_FREE_FOR_JOURNAL) {
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
            let mut view = lock_mutex(&self.journal);
            let opened = match self.open_journal(&mut view, true)? {
                Some(j) => j,
                None => {
                    // A store from before the journal, or one whose journal could not be made.
                    if Self::create_journal(&self.dir, &self.path).is_err() {
                        return Ok(false);
                    }
                    match self.open_journal(&mut view, true)? {
                        Some(j) => j,
                        None => return Ok(false),
                    }
                }
            };
            // Under the lock, always from the file: a writer killed after its record but
            // before its generation bump left a record no generation announced.
            self.refresh_journal_from(master, &mut view, &opened, true)?;
            let f = &opened.file;
            let whole = (RECORD_FIXED + sealed.len() + 16) as u64;
            if view.tail + whole > JOURNAL_LEN {
                drop(view);
                self.checkpoint_locked(master)?;
                view = lock_mutex(&self.journal);
                self.refresh_journal_from(master, &mut view, &opened, true)?;
            }
            let key = self.journal_key(master);
            let at = view.tail;
            let record = encode_record(&key, &view.epoch, at, kind, id, sealed);
            let display = self.journal_path();
            let written = f
                .write_all_at(&record, at)
                .and_then(|()| f.sync_data())
                .map_err(|e| Error::from_io("write", &display, e));
            if let Err(e) = written {
                // Never leave a record that did not become durable for readers to find.
                let _ = f.write_all_at(&[0u8; RECORD_FIXED], at);
                view.generation = None;
                return Err(e);
            }
            view.tail = at + whole;
            view.latest
                .insert(*id, (kind == KIND_PUT).then(|| Arc::new(sealed.to_vec())));
            // Current as of the generation the caller's bump makes (Store::bump_generation).
            view.generation = None;
            view.own_write = true;
            Ok(true)
        }

        /// Move every journaled write into its entry file now and start a new journal epoch
        /// (what a full journal does by itself): e.g. before copying the store's files.
        pub fn checkpoint(&self) -> Result<()> {
            let master = self.master()?;
            let _guard = fs::flock_exclusive(&self.dir, self.wait)
                .map_err(|e| crate::store::busy(&self.path, e))?;
            self.check_master(&master)?;
            self.checkpoint_locked(&master)
        }

        /// Under the writer lock: write each entry of `latest` (sealed bytes; None: deleted)
        /// into its file: temp files, made durable together, renamed into `entries/` (deleted
        /// ones unlinked), one fsync of `entries/`. What a checkpoint and a repair do.
        pub(crate) fn move_into_files(
            &self,
            latest: &crate::cache::KeyedMap<Name, Option<Arc<Vec<u8>>>>,
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
                            let tmp =
                                format!("{TMP_PREFIX}{}", format::hex(&crypto::random::<8>()?));
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
                            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                                return Err(io(e))
                            }
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
            let mut view = lock_mutex(&self.journal);
            let Some(opened) = self.open_journal(&mut view, true)? else {
                return Ok(());
            };
            self.refresh_journal_from(master, &mut view, &opened, true)?;
            let (f, file) = (&opened.file, opened.id);
            if view.latest.is_empty() && view.tail == RECORDS_AT {
                return Ok(());
            }
            self.move_into_files(&view.latest)?;
            let epoch: [u8; 16] = crypto::random()?;
            let display = self.journal_path();
            f.write_all_at(&encode_header(&epoch), 0)
                .and_then(|()| f.sync_data())
                .map_err(|e| Error::from_io("write", &display, e))?;
            let moved = std::mem::take(&mut view.latest);
            view.reset(file, epoch);
            view.generation = None;
            drop(view);
            // Entry files changed: other handles drop what they remember of the files; this
            // one keeps it, with the entries it just wrote.
            self.bump_after_checkpoint(&moved)
        }
    }
}

pub(crate) use store_side::Overlay;
