//! The on-disk format, byte for byte as docs/FORMAT.md describes it: the header (magic, version,
//! store id, keyslots, MAC, checksum), entry files, and the entry plaintext. Parsing is bounded
//! and total: any input gives a value or a reason, never a panic.

use std::collections::BTreeMap;

use crate::crypto::{
    self, KdfParams, MasterKey, Purpose, SubKey, KEY_LEN, NONCE_LEN, SALT_LEN, TAG_LEN,
};
use crate::error::Result;

/// First 16 bytes of a header file.
pub const HEADER_MAGIC: &[u8; 16] = b"keyringrs-store\n";
/// First 16 bytes of an entry file.
pub const ENTRY_MAGIC: &[u8; 16] = b"keyringrs-entry\n";
/// The format version this code writes (docs/FORMAT.md). Version 1 stores and entries are
/// read too; a version 1 store is migrated on its first unlock or write (`Store::migrate`).
pub const VERSION: u16 = 2;
/// The first format version (no attribute index, no content type in entries).
pub const VERSION_1: u16 = 1;
/// Store ids are 16 random bytes.
pub const STORE_ID_LEN: usize = 16;
/// At most this many keyslots.
pub const MAX_KEYSLOTS: usize = 8;
/// Header files larger than this are refused before reading.
pub const MAX_HEADER_LEN: u64 = 4096;
/// Largest secret (16 MiB).
pub const MAX_SECRET_LEN: usize = 16 << 20;
/// Largest service, username, label, attribute name or value (64 KiB each).
pub const MAX_FIELD_LEN: usize = 64 << 10;
/// Most attributes per entry.
pub const MAX_ATTRIBUTES: usize = 256;
/// Entry files larger than this are refused before reading: every field (service, username,
/// label, content type, attributes, secret) at its limit, plus
/// 64 KiB for the prefix, tag, length prefixes and times (48 MiB + 256 KiB).
pub const MAX_ENTRY_LEN: u64 =
    (MAX_SECRET_LEN + 4 * MAX_FIELD_LEN + 2 * MAX_ATTRIBUTES * MAX_FIELD_LEN + (64 << 10)) as u64;

const FIXED_LEN: usize = 16 + 2 + 2 + STORE_ID_LEN + 1; // magic, version, flags, id, slot count
#[cfg_attr(not(test), allow(dead_code))]
const SLOT_LEN: usize = 1 + 1 + 4 + 4 + 4 + SALT_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;
const MAC_LEN: usize = 32;
const SUM_LEN: usize = 32;
const ENTRY_PREFIX_LEN: usize = 16 + 2 + NONCE_LEN;

/// Keyslot kinds (docs/FORMAT.md "keyslot"). A password the PAM module tries at login: the login
/// password's slot, and slots added with `keyringrs slot add --pam`.
pub const SLOT_PASSWORD: u8 = 1;
/// A recovery key (256 random bits shown once to the user).
pub const SLOT_RECOVERY: u8 = 2;
/// Another password (`keyringrs slot add`), tried by `unlock` but not at login.
pub const SLOT_EXTRA: u8 = 3;
/// The place of a removed keyslot (slots are bound to their index): never opens.
pub const SLOT_EMPTY: u8 = 4;
/// KDF ids.
pub const KDF_ARGON2ID: u8 = 1;

/// A store's random identifier; names its kernel key (`keyringrs:<hex>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreId(pub [u8; STORE_ID_LEN]);

impl StoreId {
    pub fn hex(&self) -> String {
        hex(&self.0)
    }
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// A malformed-input reason, turned into `Error::Corrupt` with the file name by the caller.
pub type Malformed = String;

/// Bounded little-endian reader over a byte slice.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("truncated at {what} (offset {})", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Malformed> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        Ok(self.array::<1>(what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    fn i64(&mut self, what: &str) -> Result<i64, Malformed> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    fn bytes(&mut self, max: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(format!("{what} length {n} exceeds {max}"));
        }
        self.take(n, what)
    }
    fn str(&mut self, what: &str) -> Result<&'a str, Malformed> {
        let b = self.bytes(MAX_FIELD_LEN, what)?;
        std::str::from_utf8(b).map_err(|_| format!("{what} is not UTF-8"))
    }
    fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    fn finish(&self, what: &str) -> Result<(), Malformed> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(format!(
                "{} trailing bytes after {what}",
                self.buf.len() - self.pos
            ))
        }
    }
}

/// One keyslot: the master key wrapped under a key derived from a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    pub kind: u8,
    pub kdf: KdfParams,
    pub salt: [u8; SALT_LEN],
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; KEY_LEN + TAG_LEN],
}

impl Keyslot {
    /// The slot's bytes before the nonce: kind, kdf id, params, salt (bound into its AAD).
    fn params_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(30);
        v.push(self.kind);
        v.push(KDF_ARGON2ID);
        v.extend_from_slice(&self.kdf.memory_kib().to_le_bytes());
        v.extend_from_slice(&self.kdf.time().to_le_bytes());
        v.extend_from_slice(&self.kdf.lanes().to_le_bytes());
        v.extend_from_slice(&self.salt);
        v
    }

    fn aad(prefix: &[u8], index: usize, params: &[u8]) -> Vec<u8> {
        [prefix, &[index as u8], params].concat()
    }

    /// Wrap `master` for `password` as slot number `index` of a header whose fixed prefix
    /// (magic, version, flags, store id) is `prefix`.
    pub fn wrap(
        prefix: &[u8],
        index: usize,
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<Keyslot> {
        Self::wrap_kind(SLOT_PASSWORD, prefix, index, master, password, kdf)
    }

    /// Wrap `master` in a slot of `kind` (a password or a recovery key).
    pub fn wrap_kind(
        kind: u8,
        prefix: &[u8],
        index: usize,
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<Keyslot> {
        let salt: [u8; SALT_LEN] = crypto::random()?;
        let mut slot = Keyslot {
            kind,
            kdf,
            salt,
            nonce: [0; NONCE_LEN],
            wrapped: [0; KEY_LEN + TAG_LEN],
        };
        let kek = kdf.derive(password, &salt)?;
        let (nonce, ct) = kek.seal(
            &Self::aad(prefix, index, &slot.params_bytes()),
            master.as_bytes(),
        )?;
        slot.nonce = nonce;
        slot.wrapped.copy_from_slice(&ct);
        Ok(slot)
    }

    /// Try to unwrap with `password`; `None` if it does not open this slot.
    pub fn unwrap(
        &self,
        prefix: &[u8],
        index: usize,
        password: &[u8],
    ) -> Result<Option<MasterKey>> {
        let kek: SubKey = self.kdf.derive(password, &self.salt)?;
        let aad = Self::aad(prefix, index, &self.params_bytes());
        Ok(kek
            .open(&self.nonce, &aad, &self.wrapped)
            .and_then(|pt| MasterKey::from_slice(&pt)))
    }
}

/// The parsed header. Everything in it is public; its integrity is checked with the checksum
/// (any reader) and the MAC (whoever holds the master key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2 ([`VERSION`]): what the header says; kept when the header is rewritten.
    pub version: u16,
    pub id: StoreId,
    pub slots: Vec<Keyslot>,
}

impl Header {
    /// magic, version 1, flags, store id: the prefix bound into every keyslot. The version
    /// field of this AAD is always 1, whatever the header's version: a keyslot wrapped in a
    /// version 1 store stays valid after the migration to version 2 (its secret, e.g. a
    /// recovery key, is not at hand then). The header MAC covers the real version.
    pub fn prefix(&self) -> Vec<u8> {
        self.prefix_with(VERSION_1)
    }

    fn prefix_with(&self, version: u16) -> Vec<u8> {
        let mut v = Vec::with_capacity(FIXED_LEN - 1);
        v.extend_from_slice(HEADER_MAGIC);
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&self.id.0);
        v
    }

    /// Everything the MAC covers: magic, the header's version, flags, id, slot count and the
    /// slots.
    fn body(&self) -> Vec<u8> {
        let mut v = self.prefix_with(self.version);
        v.push(self.slots.len() as u8);
        for s in &self.slots {
            v.extend_from_slice(&s.params_bytes());
            v.extend_from_slice(&s.nonce);
            v.extend_from_slice(&s.wrapped);
        }
        v
    }

    /// Serialize, with the MAC under `master` and the checksum.
    pub fn encode(&self, master: &MasterKey) -> Vec<u8> {
        let mut v = self.body();
        let mac = master.subkey(&self.id.0, Purpose::HeaderMac).mac(&[&v]);
        v.extend_from_slice(&mac);
        let sum = crypto::sha256(&[&v]);
        v.extend_from_slice(&sum);
        v
    }

    /// Parse and check the checksum. The MAC is checked by [`Header::verify_mac`] once the
    /// master key is known. Errors distinguish an unknown version from damage.
    pub fn decode(bytes: &[u8]) -> Result<(Header, [u8; MAC_LEN]), HeaderError> {
        let mut r = Reader::new(bytes);
        let magic = r.take(16, "magic").map_err(HeaderError::Malformed)?;
        if magic != HEADER_MAGIC {
            return Err(HeaderError::Malformed(
                "not a keyringrs store header (bad magic)".into(),
            ));
        }
        let version = r.u16("version").map_err(HeaderError::Malformed)?;
        if version != VERSION && version != VERSION_1 {
            return Err(HeaderError::UnknownVersion(version));
        }
        if bytes.len() < SUM_LEN + FIXED_LEN {
            return Err(HeaderError::Malformed("truncated header".into()));
        }
        let (content, sum) = bytes.split_at(bytes.len() - SUM_LEN);
        if crypto::sha256(&[content]) != sum {
            return Err(HeaderError::Malformed(
                "header checksum mismatch (damaged or altered)".into(),
            ));
        }
        let parse = |r: &mut Reader| -> Result<(Header, [u8; MAC_LEN]), Malformed> {
            let flags = r.u16("flags")?;
            if flags != 0 {
                return Err(format!("unknown header flags {flags:#06x}"));
            }
            let id = StoreId(r.array("store id")?);
            let n = r.u8("keyslot count")? as usize;
            if n == 0 || n > MAX_KEYSLOTS {
                return Err(format!("keyslot count {n} outside 1..={MAX_KEYSLOTS}"));
            }
            let mut slots = Vec::with_capacity(n);
            for i in 0..n {
                let what = format!("keyslot {i}");
                let kind = r.u8(&what)?;
                if !(SLOT_PASSWORD..=SLOT_EMPTY).contains(&kind) {
                    return Err(format!("{what}: unknown kind {kind}"));
                }
                let kdf_id = r.u8(&what)?;
                if kdf_id != KDF_ARGON2ID {
                    return Err(format!("{what}: unknown KDF {kdf_id}"));
                }
                let (m, t, p) = (r.u32(&what)?, r.u32(&what)?, r.u32(&what)?);
                let kdf = KdfParams::new(m, t, p).map_err(|e| format!("{what}: {e}"))?;
                slots.push(Keyslot {
                    kind,
                    kdf,
                    salt: r.array(&what)?,
                    nonce: r.array(&what)?,
                    wrapped: r.array(&what)?,
                });
            }
            let mac = r.array("header MAC")?;
            r.finish("header MAC")?;
            Ok((Header { version, id, slots }, mac))
        };
        let mut r = Reader {
            buf: content,
            pos: r.pos,
        };
        parse(&mut r).map_err(HeaderError::Malformed)
    }

    /// Check the header MAC with the master key (constant time).
    pub fn verify_mac(&self, master: &MasterKey, mac: &[u8; MAC_LEN]) -> bool {
        master
            .subkey(&self.id.0, Purpose::HeaderMac)
            .verify_mac(&[&self.body()], mac)
    }
}

/// Why a header did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// A version this code does not know: never guess.
    UnknownVersion(u16),
    /// Damaged, truncated or not a header.
    Malformed(Malformed),
}

/// The decrypted content of one entry.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct EntryData {
    pub service: String,
    pub username: String,
    pub label: String,
    /// The secret's MIME type as the Secret Service gives it (version 2 entries; empty, and
    /// read as "text/plain", in version 1 entries and when not given).
    pub content_type: String,
    pub attributes: BTreeMap<String, String>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub modified: i64,
    pub secret: zeroize::Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for EntryData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryData")
            .field("service", &self.service)
            .field("username", &self.username)
            .field("label", &self.label)
            .field("content_type", &self.content_type)
            .field("attributes", &self.attributes)
            .field("created", &self.created)
            .field("modified", &self.modified)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

fn put_bytes(v: &mut Vec<u8>, b: &[u8]) {
    v.extend_from_slice(&(b.len() as u32).to_le_bytes());
    v.extend_from_slice(b);
}

/// Check lengths before anything is written, so every stored entry can be read back.
pub fn check_limits(
    service: &str,
    username: &str,
    label: &str,
    attributes: &BTreeMap<String, String>,
    secret: &[u8],
) -> Result<()> {
    check_limits_typed(service, username, label, "", attributes, secret)
}

/// [`check_limits`] with a content type.
pub fn check_limits_typed(
    service: &str,
    username: &str,
    label: &str,
    content_type: &str,
    attributes: &BTreeMap<String, String>,
    secret: &[u8],
) -> Result<()> {
    use crate::error::Error;
    for (what, s) in [
        ("service", service),
        ("username", username),
        ("label", label),
        ("content type", content_type),
    ] {
        if s.len() > MAX_FIELD_LEN {
            return Err(Error::InvalidInput(format!(
                "{what} longer than {MAX_FIELD_LEN} bytes"
            )));
        }
    }
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(Error::InvalidInput(format!(
            "more than {MAX_ATTRIBUTES} attributes"
        )));
    }
    if attributes
        .iter()
        .any(|(k, v)| k.len() > MAX_FIELD_LEN || v.len() > MAX_FIELD_LEN)
    {
        return Err(Error::InvalidInput(format!(
            "attribute longer than {MAX_FIELD_LEN} bytes"
        )));
    }
    if secret.len() > MAX_SECRET_LEN {
        return Err(Error::InvalidInput(format!(
            "secret longer than {MAX_SECRET_LEN} bytes"
        )));
    }
    Ok(())
}

impl EntryData {
    /// The plaintext sealed into a version 2 entry file (lengths are u32 LE).
    pub fn encode(&self) -> zeroize::Zeroizing<Vec<u8>> {
        // Exact capacity: the buffer never reallocates, so no unwiped copy is left behind.
        let mut v = zeroize::Zeroizing::new(Vec::with_capacity(self.encoded_len()));
        self.encode_into(&mut v);
        crate::sys::lock_memory(&v);
        v
    }

    /// The length of [`EntryData::encode`]'s plaintext.
    pub fn encoded_len(&self) -> usize {
        let attrs: usize = self
            .attributes
            .iter()
            .map(|(k, v)| 8 + k.len() + v.len())
            .sum();
        4 * 4
            + self.service.len()
            + self.username.len()
            + self.label.len()
            + self.content_type.len()
            + 4
            + attrs
            + 8
            + 8
            + 4
            + self.secret.len()
    }

    /// Append the plaintext to `v` (which should have room for [`EntryData::encoded_len`]
    /// more bytes, so it never reallocates).
    pub fn encode_into(&self, v: &mut Vec<u8>) {
        put_bytes(v, self.service.as_bytes());
        put_bytes(v, self.username.as_bytes());
        put_bytes(v, self.label.as_bytes());
        put_bytes(v, self.content_type.as_bytes());
        v.extend_from_slice(&(self.attributes.len() as u32).to_le_bytes());
        for (k, val) in &self.attributes {
            put_bytes(v, k.as_bytes());
            put_bytes(v, val.as_bytes());
        }
        v.extend_from_slice(&self.created.to_le_bytes());
        v.extend_from_slice(&self.modified.to_le_bytes());
        put_bytes(v, &self.secret);
    }

    /// Parse a decrypted version 2 plaintext (already authenticated, still parsed with bounds).
    pub fn decode(pt: &[u8]) -> Result<EntryData, Malformed> {
        Self::decode_version(pt, VERSION)
    }

    /// Parse a decrypted plaintext of entry format `version` (1: no content type).
    pub fn decode_version(pt: &[u8], version: u16) -> Result<EntryData, Malformed> {
        Plain::parse(pt, version).map(|p| p.to_data(true))
    }
}

/// A decrypted entry plaintext, parsed in place (borrowing the buffer it was decrypted into):
/// what a `get` reads without copying the rest of the entry.
#[derive(Debug)]
pub struct Plain<'a> {
    pub service: &'a str,
    pub username: &'a str,
    pub label: &'a str,
    pub content_type: &'a str,
    pub attributes: Vec<(&'a str, &'a str)>,
    pub created: i64,
    pub modified: i64,
    pub secret: &'a [u8],
}

impl<'a> Plain<'a> {
    /// Parse a plaintext of entry format `version` (1: no content type), with bounds.
    pub fn parse(pt: &'a [u8], version: u16) -> Result<Plain<'a>, Malformed> {
        let mut r = Reader::new(pt);
        let service = r.str("service")?;
        let username = r.str("username")?;
        let label = r.str("label")?;
        let content_type = if version == VERSION_1 {
            ""
        } else {
            r.str("content type")?
        };
        let n = r.u32("attribute count")? as usize;
        if n > MAX_ATTRIBUTES {
            return Err(format!("attribute count {n} exceeds {MAX_ATTRIBUTES}"));
        }
        let mut attributes = Vec::with_capacity(n);
        for _ in 0..n {
            attributes.push((r.str("attribute name")?, r.str("attribute value")?));
        }
        let created = r.i64("created")?;
        let modified = r.i64("modified")?;
        let secret = r.bytes(MAX_SECRET_LEN, "secret")?;
        r.finish("secret")?;
        Ok(Plain {
            service,
            username,
            label,
            content_type,
            attributes,
            created,
            modified,
            secret,
        })
    }

    /// Owned, with the secret copied into an mlocked buffer (`secret` false: left empty).
    pub fn to_data(&self, secret: bool) -> EntryData {
        let copy = zeroize::Zeroizing::new(if secret {
            self.secret.to_vec()
        } else {
            Vec::new()
        });
        crate::sys::lock_memory(&copy);
        EntryData {
            service: self.service.into(),
            username: self.username.into(),
            label: self.label.into(),
            content_type: self.content_type.into(),
            attributes: self
                .attributes
                .iter()
                .map(|&(k, v)| (k.into(), v.into()))
                .collect(),
            created: self.created,
            modified: self.modified,
            secret: copy,
        }
    }
}

/// The entry's identity: HMAC-SHA256(entry-name key, u32 len ‖ service ‖ u32 len ‖ username).
/// Length prefixes make ('a:b','c') and ('a','b:c') different.
pub fn entry_id(name_key: &SubKey, service: &str, username: &str) -> [u8; 32] {
    name_key.mac(&[
        &(service.len() as u32).to_le_bytes(),
        service.as_bytes(),
        &(username.len() as u32).to_le_bytes(),
        username.as_bytes(),
    ])
}

fn entry_aad(version: u16, store: &StoreId, id: &[u8; 32]) -> Vec<u8> {
    [ENTRY_MAGIC.as_slice(), &version.to_le_bytes(), &store.0, id].concat()
}

/// Seal an entry: magic ‖ version ‖ nonce ‖ XChaCha20-Poly1305(plaintext, AAD).
pub fn seal_entry(
    seal_key: &SubKey,
    store: &StoreId,
    id: &[u8; 32],
    data: &EntryData,
) -> Result<Vec<u8>> {
    let (nonce, ct) =
        seal_key.seal_with(&entry_aad(VERSION, store, id), data.encoded_len(), |v| {
            data.encode_into(v)
        })?;
    Ok([ENTRY_MAGIC.as_slice(), &VERSION.to_le_bytes(), &nonce, &ct].concat())
}

/// Why an entry file did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryError {
    UnknownVersion(u16),
    Malformed(Malformed),
}

/// Open an entry file's bytes: authenticate against store id and entry id, then parse.
pub fn open_entry(
    seal_key: &SubKey,
    store: &StoreId,
    id: &[u8; 32],
    bytes: &[u8],
) -> Result<EntryData, EntryError> {
    open_entry_with(seal_key, store, id, bytes, |p| p.to_data(true))
}

/// Open an entry file's bytes and hand the parsed plaintext to `f`, in a buffer wiped after
/// the call (see [`SubKey::open_with`]).
pub fn open_entry_with<R>(
    seal_key: &SubKey,
    store: &StoreId,
    id: &[u8; 32],
    bytes: &[u8],
    f: impl FnOnce(Plain<'_>) -> R,
) -> Result<R, EntryError> {
    let mut r = Reader::new(bytes);
    let m = |e| EntryError::Malformed(e);
    if r.take(16, "magic").map_err(m)? != ENTRY_MAGIC {
        return Err(m("not a keyringrs entry (bad magic)".into()));
    }
    let version = r.u16("version").map_err(m)?;
    if version != VERSION && version != VERSION_1 {
        return Err(EntryError::UnknownVersion(version));
    }
    let nonce: [u8; NONCE_LEN] = r.array("nonce").map_err(m)?;
    debug_assert_eq!(r.pos, ENTRY_PREFIX_LEN);
    seal_key
        .open_with(&nonce, &entry_aad(version, store, id), r.rest(), |pt| {
            Plain::parse(pt, version).map(f)
        })
        .ok_or_else(|| {
            m("authentication failed (damaged, altered, swapped or from another store)".into())
        })?
        .map_err(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> KdfParams {
        KdfParams::new(64, 1, 1).unwrap()
    }

    fn header(master: &MasterKey) -> Header {
        let mut h = Header {
            version: VERSION,
            id: StoreId([7; 16]),
            slots: vec![],
        };
        let slot = Keyslot::wrap(&h.prefix(), 0, master, b"pw", small()).unwrap();
        h.slots.push(slot);
        h
    }

    #[test]
    fn header_roundtrip_and_unwrap() {
        let m = MasterKey::generate().unwrap();
        let h = header(&m);
        let bytes = h.encode(&m);
        assert_eq!(bytes.len(), FIXED_LEN + SLOT_LEN + MAC_LEN + SUM_LEN);
        let (h2, mac) = Header::decode(&bytes).unwrap();
        assert_eq!(h, h2);
        assert!(h2.verify_mac(&m, &mac));
        let got = h2.slots[0].unwrap(&h2.prefix(), 0, b"pw").unwrap().unwrap();
        assert_eq!(got.as_bytes(), m.as_bytes());
        assert!(h2.slots[0]
            .unwrap(&h2.prefix(), 0, b"nope")
            .unwrap()
            .is_none());
    }

    #[test]
    fn every_truncation_and_flip_of_a_header_is_an_error_not_a_panic() {
        let m = MasterKey::generate().unwrap();
        let bytes = header(&m).encode(&m);
        for n in 0..bytes.len() {
            assert!(Header::decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Header::decode(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn unknown_version_is_its_own_error() {
        let m = MasterKey::generate().unwrap();
        let mut bytes = header(&m).encode(&m);
        bytes[16] = 3;
        assert_eq!(Header::decode(&bytes), Err(HeaderError::UnknownVersion(3)));
    }

    #[test]
    fn entry_roundtrip_and_binding() {
        let m = MasterKey::generate().unwrap();
        let sid = StoreId([1; 16]);
        let seal = m.subkey(&sid.0, Purpose::EntrySeal);
        let name = m.subkey(&sid.0, Purpose::EntryName);
        let id = entry_id(&name, "svc", "user");
        let data = EntryData {
            service: "svc".into(),
            username: "user".into(),
            secret: zeroize::Zeroizing::new(vec![0, 1, 2]),
            ..Default::default()
        };
        let bytes = seal_entry(&seal, &sid, &id, &data).unwrap();
        assert_eq!(open_entry(&seal, &sid, &id, &bytes).unwrap(), data);
        let other = entry_id(&name, "svc", "user2");
        assert!(open_entry(&seal, &sid, &other, &bytes).is_err());
        assert!(open_entry(&seal, &StoreId([2; 16]), &id, &bytes).is_err());
        for n in 0..bytes.len() {
            assert!(open_entry(&seal, &sid, &id, &bytes[..n]).is_err());
        }
    }

    #[test]
    fn entry_ids_are_unambiguous() {
        let m = MasterKey::generate().unwrap();
        let k = m.subkey(b"x", Purpose::EntryName);
        assert_ne!(entry_id(&k, "a:b", "c"), entry_id(&k, "a", "b:c"));
        assert_ne!(entry_id(&k, "ab", ""), entry_id(&k, "a", "b"));
    }

    #[test]
    fn hostile_lengths_in_plaintext_are_refused_without_allocating() {
        let mut pt = Vec::new();
        pt.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(EntryData::decode(&pt).is_err());
    }
}
