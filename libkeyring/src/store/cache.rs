//! What a long-lived [`Store`](crate::Store) (the daemon, a Python or C program) remembers
//! between calls so that a `get` does not repeat work whose result cannot have changed — and
//! nothing secret: no master key, no derived key, no plaintext (docs/PERFORMANCE.md).
//!
//! - [`KeySerial`] of the store's kernel key, found by the last search: read directly next time.
//!   A serial that died (lock, logout, timeout) fails the read and the caller searches again; a
//!   serial reused by another key yields a master key that opens nothing (every entry is
//!   authenticated, every write checks the key against the header MAC), and the caller forgets
//!   the serial and searches again: never a wrong plaintext.
//! - The sealed bytes of entry files, valid while the store's *generation counter* is unchanged:
//!   a file `generation` in the store directory that every writer bumps under the writer lock
//!   after its change, mapped shared and read-only here, so checking it costs no system call.
//!   Only on local filesystems: on NFS, SMB or sshfs another machine's write would not show in
//!   our mapping, so those stores read the files every time.
//! - The header (public bytes) as a writer last read it, valid while the files generation
//!   (every header replacement bumps it) and the file's identity (one `statx`) are unchanged.
//!   Its MAC is still checked against the key on every write.

use crate::crypto::KeyedMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use crate::format::Header;
use crate::kernel::keyring::KeySerial;
use crate::sys::fs::Counter;

/// The remembered serial of the store's kernel key (0: none).
#[derive(Debug, Default)]
pub struct KeyCache(AtomicI32);

impl KeyCache {
    pub fn get(&self) -> Option<KeySerial> {
        match self.0.load(Ordering::Relaxed) {
            0 => None,
            s => Some(KeySerial(s)),
        }
    }
    pub fn set(&self, key: KeySerial) {
        self.0.store(key.0, Ordering::Relaxed)
    }
    pub fn forget(&self) {
        self.0.store(0, Ordering::Relaxed)
    }
}

/// Entries larger than this are read from disk every time.
const MAX_CACHED_ENTRY: usize = 64 << 10;
/// At most this many bytes of sealed entries are kept.
const MAX_CACHED_TOTAL: usize = 16 << 20;

#[derive(Debug, Default)]
struct Entries {
    generation: u64,
    bytes: usize,
    sealed: KeyedMap<[u8; 32], Arc<Vec<u8>>>,
}

/// Sealed entry files by id, for the current files generation of the store (journal records
/// do not move it: they are read from the journal, crate::format::journal).
#[derive(Debug)]
pub struct EntryCache {
    counter: Counter,
    entries: Mutex<Entries>,
    header: Mutex<Option<SeenHeader>>,
}

/// (device, inode, size) of a file.
pub type FileId = (u64, u64, u64);

/// The parsed header and its MAC.
pub type HeaderAndMac = Arc<(Header, [u8; 32])>;

#[derive(Debug)]
struct SeenHeader {
    files: u64,
    file: FileId,
    header: HeaderAndMac,
}

impl EntryCache {
    pub fn new(counter: Counter) -> EntryCache {
        EntryCache {
            counter,
            entries: Mutex::new(Entries::default()),
            header: Mutex::new(None),
        }
    }

    /// The current generation, read before anything is loaded from disk (so bytes read during
    /// a concurrent write are filed under the older generation and never outlive it).
    pub fn generation(&self) -> u64 {
        self.counter.get()
    }

    /// The files generation (moves when entry files change; what cached bytes are keyed by).
    pub fn files_generation(&self) -> u64 {
        self.counter.files()
    }

    /// Bump the generation (and the files generation if `files`) through the shared mapping,
    /// if it is writable (see fs::Counter).
    pub fn bump(&self, files: bool) -> Option<u64> {
        self.counter.bump(files)
    }

    /// The remembered sealed bytes of entry `id`, if no writer changed the store since
    /// `generation` (else everything remembered is dropped).
    pub fn lookup(&self, generation: u64, id: &[u8; 32]) -> Option<Arc<Vec<u8>>> {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.generation != generation {
            *e = Entries {
                generation,
                ..Entries::default()
            };
            return None;
        }
        e.sealed.get(id).map(Arc::clone)
    }

    /// Remember the sealed bytes of entry `id`, read at `generation` and authenticated (never
    /// bytes that failed to open), when small enough.
    pub fn insert(&self, generation: u64, id: &[u8; 32], bytes: &Arc<Vec<u8>>) {
        if bytes.len() > MAX_CACHED_ENTRY {
            return;
        }
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.generation == generation && e.bytes + bytes.len() <= MAX_CACHED_TOTAL {
            e.bytes += bytes.len();
            e.sealed.insert(*id, Arc::clone(bytes));
        }
    }

    /// The header remembered for files generation `files` and file `file`, if any.
    pub fn header(&self, files: u64, file: FileId) -> Option<HeaderAndMac> {
        let h = self.header.lock().unwrap_or_else(|p| p.into_inner());
        h.as_ref()
            .filter(|h| h.files == files && h.file == file)
            .map(|h| Arc::clone(&h.header))
    }

    /// Remember `header`, read from file `file` after files generation `files` was read.
    pub fn remember_header(&self, files: u64, file: FileId, header: &HeaderAndMac) {
        *self.header.lock().unwrap_or_else(|p| p.into_inner()) = Some(SeenHeader {
            files,
            file,
            header: Arc::clone(header),
        });
    }

    /// After this handle's own checkpoint moved the files generation from `from` to `to`: keep
    /// what is remembered, with the entries the checkpoint wrote (`changed`: their new sealed
    /// bytes, None for removed) replaced. Only if nothing else moved it meanwhile.
    pub fn carry<'a>(
        &self,
        from: u64,
        to: u64,
        changed: impl Iterator<Item = (&'a [u8; 32], Option<&'a Arc<Vec<u8>>>)>,
    ) {
        let mut e = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if e.generation != from {
            return;
        }
        e.generation = to;
        for (id, bytes) in changed {
            if let Some(old) = e.sealed.remove(id) {
                e.bytes -= old.len();
            }
            if let Some(b) = bytes {
                if b.len() <= MAX_CACHED_ENTRY && e.bytes + b.len() <= MAX_CACHED_TOTAL {
                    e.bytes += b.len();
                    e.sealed.insert(*id, Arc::clone(b));
                }
            }
        }
        drop(e);
        let mut h = self.header.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = h.as_mut().filter(|h| h.files == from) {
            h.files = to;
        }
    }
}
