//! The blind attribute index (docs/FORMAT.md "index"): per item, keyed hashes ("tokens") of its
//! attribute pairs, so that a search decrypts only the items whose tokens match the query's.
//!
//! The index is derived data. It never decides what an item holds: every candidate is decrypted
//! and checked against the query, and an item missing from the index is found by comparing the
//! index with the entry directory (crate::store::search). This module is the file format and the
//! in-memory form; crate::store::search keeps it in step with the store.

use std::collections::{BTreeMap, HashSet};

use crate::crypto::{MasterKey, Purpose, SubKey};
use crate::format::{StoreId, MAX_ATTRIBUTES};

/// The index file in the store directory.
pub const INDEX: &str = "index";
/// First 16 bytes of the index file.
pub const INDEX_MAGIC: &[u8; 16] = b"keyringrs-index\n";
/// The index file's own format version.
pub const INDEX_VERSION: u16 = 1;
/// magic ‖ version ‖ index id.
pub const HEADER_LEN: usize = 16 + 2 + 16;
/// Tokens are HMAC-SHA256 truncated to 128 bits (a collision only adds a candidate).
pub const TOKEN_LEN: usize = 16;
const MAC_LEN: usize = 16;
/// kind ‖ entry name ‖ token count.
const RECORD_FIXED: usize = 1 + 32 + 2;
/// A record: the item `name` has (at least) these tokens.
pub const KIND_ITEM: u8 = 1;
/// A record: the item `name` was deleted.
pub const KIND_REMOVED: u8 = 2;
/// An item's attributes plus `service` and `username`.
pub const MAX_TOKENS: usize = MAX_ATTRIBUTES + 2;
/// Index files larger than this are refused before reading (and rebuilt).
pub const MAX_INDEX_LEN: u64 = 256 << 20;

pub type Token = [u8; TOKEN_LEN];
/// An entry's name: the 32 bytes its file name is the hex of.
pub type Name = [u8; 32];

/// The index's two keys, derived from the master key; wiped on drop.
#[derive(Debug)]
pub struct IndexKeys {
    token: SubKey,
    mac: SubKey,
}

impl IndexKeys {
    pub fn new(master: &MasterKey, store: &StoreId) -> IndexKeys {
        IndexKeys {
            token: master.subkey(&store.0, Purpose::IndexToken),
            mac: master.subkey(&store.0, Purpose::IndexMac),
        }
    }

    /// The token of one attribute pair: HMAC(index-token, u32 len ‖ name ‖ u32 len ‖ value).
    pub fn token(&self, name: &str, value: &str) -> Token {
        let full = self.token.mac(&[
            &(name.len() as u32).to_le_bytes(),
            name.as_bytes(),
            &(value.len() as u32).to_le_bytes(),
            value.as_bytes(),
        ]);
        let mut t = [0u8; TOKEN_LEN];
        t.copy_from_slice(&full[..TOKEN_LEN]);
        t
    }

    /// The sorted, distinct tokens of an attribute map.
    pub fn tokens<'a>(
        &self,
        attrs: impl IntoIterator<Item = (&'a String, &'a String)>,
    ) -> Vec<Token> {
        let mut v: Vec<Token> = attrs.into_iter().map(|(k, v)| self.token(k, v)).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    fn record_mac(&self, index_id: &[u8; 16], offset: u64, body: &[u8]) -> [u8; MAC_LEN] {
        let full = self.mac.mac(&[index_id, &offset.to_le_bytes(), body]);
        let mut m = [0u8; MAC_LEN];
        m.copy_from_slice(&full[..MAC_LEN]);
        m
    }
}

/// The first bytes of an index file with this id.
pub fn encode_header(index_id: &[u8; 16]) -> Vec<u8> {
    [
        INDEX_MAGIC.as_slice(),
        &INDEX_VERSION.to_le_bytes(),
        index_id,
    ]
    .concat()
}

/// The index id of an index file's header, if it is one.
pub fn parse_header(bytes: &[u8]) -> Option<[u8; 16]> {
    if bytes.len() < HEADER_LEN
        || &bytes[..16] != INDEX_MAGIC
        || bytes[16..18] != INDEX_VERSION.to_le_bytes()
    {
        return None;
    }
    bytes[18..HEADER_LEN].try_into().ok()
}

/// One record, to be written at file offset `offset` of the index `index_id`.
pub fn encode_record(
    keys: &IndexKeys,
    index_id: &[u8; 16],
    offset: u64,
    kind: u8,
    name: &Name,
    tokens: &[Token],
) -> Vec<u8> {
    debug_assert!(tokens.len() <= MAX_TOKENS);
    let mut v = Vec::with_capacity(RECORD_FIXED + tokens.len() * TOKEN_LEN + MAC_LEN);
    v.push(kind);
    v.extend_from_slice(name);
    v.extend_from_slice(&(tokens.len() as u16).to_le_bytes());
    for t in tokens {
        v.extend_from_slice(t);
    }
    let mac = keys.record_mac(index_id, offset, &v);
    v.extend_from_slice(&mac);
    v
}

/// The index in memory: which items have which tokens, and the reverse.
#[derive(Debug, Clone, Default)]
pub struct Index {
    /// The random id in the file's header (bound into every record's MAC).
    pub index_id: [u8; 16],
    /// (device, inode) of the file this was read from; (0, 0): not from a file.
    pub file: (u64, u64),
    /// How many bytes of that file have been applied.
    pub len: u64,
    /// Records applied (live and dead): when far more than the items, the file is compacted.
    pub records: usize,
    items: crate::crypto::KeyedMap<Name, Vec<Token>>,
    postings: crate::crypto::KeyedMap<Token, Vec<Name>>,
}

impl Index {
    /// An empty index for a new file with this id.
    pub fn new(index_id: [u8; 16]) -> Index {
        Index {
            index_id,
            len: HEADER_LEN as u64,
            ..Index::default()
        }
    }

    /// Item `name` has `tokens` (added to what it had: a record written before an entry write
    /// that never happened only adds candidates, never hides the item's real attributes).
    pub fn add(&mut self, name: &Name, tokens: &[Token]) {
        let have = self.items.entry(*name).or_default();
        for t in tokens {
            if let Err(at) = have.binary_search(t) {
                have.insert(at, *t);
                self.postings.entry(*t).or_default().push(*name);
            }
        }
    }

    /// Item `name` is gone.
    pub fn remove(&mut self, name: &Name) {
        if let Some(tokens) = self.items.remove(name) {
            for t in tokens {
                if let Some(p) = self.postings.get_mut(&t) {
                    p.retain(|n| n != name);
                    if p.is_empty() {
                        self.postings.remove(&t);
                    }
                }
            }
        }
    }

    /// Is item `name` in the index?
    pub fn contains(&self, name: &Name) -> bool {
        self.items.contains_key(name)
    }

    /// The tokens recorded for `name`.
    pub fn tokens_of(&self, name: &Name) -> Option<&[Token]> {
        self.items.get(name).map(Vec::as_slice)
    }

    /// How many items.
    pub fn live(&self) -> usize {
        self.items.len()
    }

    /// Every item's name.
    pub fn names(&self) -> impl Iterator<Item = &Name> {
        self.items.keys()
    }

    /// The items that have every token of `query` (every item for an empty query): the
    /// shortest posting list, filtered by the others. Cost: O(that list).
    pub fn candidates(&self, query: &[Token]) -> Vec<Name> {
        if query.is_empty() {
            return self.items.keys().copied().collect();
        }
        let mut lists = Vec::with_capacity(query.len());
        for t in query {
            match self.postings.get(t) {
                Some(p) => lists.push(p),
                None => return vec![],
            }
        }
        lists.sort_by_key(|p| p.len());
        let mut seen = HashSet::new();
        lists[0]
            .iter()
            .filter(|n| {
                let have = &self.items[*n];
                query.iter().all(|t| have.binary_search(t).is_ok()) && seen.insert(**n)
            })
            .copied()
            .collect()
    }

    /// Apply the records in `buf`, which starts at file offset `self.len`. A record cut short
    /// at the end (an append in progress, or torn by a crash) is left for later; anything
    /// else that does not parse or authenticate is an error (the caller rebuilds).
    pub fn read_records(&mut self, keys: &IndexKeys, buf: &[u8]) -> Result<(), String> {
        let mut pos = 0usize;
        while buf.len() - pos >= RECORD_FIXED {
            let kind = buf[pos];
            let n = u16::from_le_bytes([buf[pos + 33], buf[pos + 34]]) as usize;
            if !(kind == KIND_ITEM && n <= MAX_TOKENS || kind == KIND_REMOVED && n == 0) {
                return Err(format!(
                    "bad record (kind {kind}, {n} tokens) at offset {}",
                    self.len
                ));
            }
            let body_len = RECORD_FIXED + n * TOKEN_LEN;
            if buf.len() - pos < body_len + MAC_LEN {
                break;
            }
            let body = &buf[pos..pos + body_len];
            let mac = keys.record_mac(&self.index_id, self.len, body);
            if !constant_time_eq(&mac, &buf[pos + body_len..pos + body_len + MAC_LEN]) {
                return Err(format!(
                    "record at offset {} does not authenticate",
                    self.len
                ));
            }
            let name: Name = body[1..33].try_into().expect("32 bytes");
            if kind == KIND_ITEM {
                let tokens: Vec<Token> = body[RECORD_FIXED..]
                    .chunks_exact(TOKEN_LEN)
                    .map(|c| c.try_into().expect("16 bytes"))
                    .collect();
                self.add(&name, &tokens);
            } else {
                self.remove(&name);
            }
            self.records += 1;
            pos += body_len + MAC_LEN;
            self.len += (body_len + MAC_LEN) as u64;
        }
        Ok(())
    }

    /// Parse a whole index file.
    pub fn parse(keys: &IndexKeys, bytes: &[u8], file: (u64, u64)) -> Result<Index, String> {
        let id = parse_header(bytes).ok_or("not a keyringrs index (bad magic or version)")?;
        let mut idx = Index::new(id);
        idx.file = file;
        idx.read_records(keys, &bytes[HEADER_LEN..])?;
        Ok(idx)
    }

    /// A compact file holding this index's items, under a new index id.
    pub fn encode(&self, keys: &IndexKeys, index_id: &[u8; 16]) -> Vec<u8> {
        let mut v = encode_header(index_id);
        let mut names: Vec<&Name> = self.items.keys().collect();
        names.sort_unstable();
        for n in names {
            let r = encode_record(keys, index_id, v.len() as u64, KIND_ITEM, n, &self.items[n]);
            v.extend_from_slice(&r);
        }
        v
    }

    /// Build from decrypted items: (name, attributes).
    pub fn build<'a>(
        keys: &IndexKeys,
        items: impl IntoIterator<Item = (Name, &'a BTreeMap<String, String>)>,
    ) -> Index {
        let mut idx = Index::default();
        for (name, attrs) in items {
            idx.add(&name, &keys.tokens(attrs));
        }
        idx
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> IndexKeys {
        IndexKeys::new(&MasterKey::generate().unwrap(), &StoreId([3; 16]))
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_query_finds_exactly_the_items_holding_all_its_pairs() {
        let k = keys();
        let a = attrs(&[("xdg:schema", "org.example"), ("id", "1")]);
        let b = attrs(&[("xdg:schema", "org.example"), ("id", "2")]);
        let idx = Index::build(&k, [([1; 32], &a), ([2; 32], &b)]);
        let q = |p: &[(&str, &str)]| {
            let mut c = idx.candidates(&k.tokens(&attrs(p)));
            c.sort();
            c
        };
        assert_eq!(q(&[("id", "1")]), vec![[1; 32]]);
        assert_eq!(q(&[("xdg:schema", "org.example")]), vec![[1; 32], [2; 32]]);
        assert_eq!(
            q(&[("xdg:schema", "org.example"), ("id", "3")]),
            Vec::<Name>::new()
        );
        assert_eq!(q(&[]).len(), 2);
        // ("a:b", "c") and ("a", "b:c") are different pairs.
        assert_ne!(k.token("a:b", "c"), k.token("a", "b:c"));
    }

    #[test]
    fn records_roundtrip_and_every_flip_or_cut_is_caught() {
        let k = keys();
        let id = [9; 16];
        let mut file = encode_header(&id);
        let t = k.tokens(&attrs(&[("x", "1"), ("y", "2")]));
        let r1 = encode_record(&k, &id, file.len() as u64, KIND_ITEM, &[1; 32], &t);
        file.extend_from_slice(&r1);
        let r2 = encode_record(&k, &id, file.len() as u64, KIND_REMOVED, &[1; 32], &[]);
        file.extend_from_slice(&r2);
        let idx = Index::parse(&k, &file, (1, 2)).unwrap();
        assert_eq!(idx.live(), 0);
        assert_eq!(idx.records, 2);
        assert_eq!(idx.len, file.len() as u64);
        // A cut record is left for later, never an error.
        for cut in HEADER_LEN..file.len() {
            let idx = Index::parse(&k, &file[..cut], (1, 2)).unwrap();
            assert!(idx.len <= cut as u64);
        }
        // Any flipped bit is an error, or (a token count made larger) leaves the file not
        // wholly read, which the store treats as damage unless a writer is at work.
        for i in 0..file.len() {
            let mut b = file.clone();
            b[i] ^= 1;
            let r = Index::parse(&k, &b, (1, 2));
            assert!(r.is_err() || r.unwrap().len < b.len() as u64, "flip at {i}");
        }
        // Another key: nothing authenticates.
        assert!(Index::parse(&keys(), &file, (1, 2)).is_err());
    }

    #[test]
    fn a_compacted_index_has_the_same_items() {
        let k = keys();
        let mut idx = Index::new([1; 16]);
        idx.add(&[1; 32], &k.tokens(&attrs(&[("a", "1")])));
        idx.add(&[2; 32], &k.tokens(&attrs(&[("a", "2")])));
        idx.remove(&[2; 32]);
        let bytes = idx.encode(&k, &[5; 16]);
        let back = Index::parse(&k, &bytes, (0, 0)).unwrap();
        assert_eq!(back.live(), 1);
        assert_eq!(back.tokens_of(&[1; 32]), idx.tokens_of(&[1; 32]));
    }
}
