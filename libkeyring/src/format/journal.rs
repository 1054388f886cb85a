//! The write journal (docs/FORMAT.md "journal"): a preallocated file into which `set` and
//! `delete` write one authenticated record and fdatasync it — one flush of data into blocks that
//! are already allocated, so no filesystem metadata and no filesystem journal commit — instead
//! of a new entry file (temp file, fsync, rename, directory fsync: two commits). Readers overlay
//! the records on the entry files; a checkpoint moves them into entry files and starts a new
//! epoch. This module is the file format and the in-memory view; crate::store::journal drives it.

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
    /// (device, inode) of the journal read; (0, 0): there was none.
    pub file: (u64, u64),
    pub epoch: [u8; 16],
    /// Where the next record goes.
    pub tail: u64,
    pub latest: crate::crypto::KeyedMap<Name, Option<Arc<Vec<u8>>>>,
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
