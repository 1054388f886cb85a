//! docs/FORMAT.md "entries/<name>" and "entry plaintext": an entry file (magic, version, nonce,
//! sealed plaintext bound to the store and the entry's name) and the plaintext's fields.

use std::collections::BTreeMap;

use super::{Malformed, Reader, StoreId, VERSION, VERSION_1};
use crate::crypto::{SubKey, NONCE_LEN};
use crate::error::Result;

/// First 16 bytes of an entry file.
pub const ENTRY_MAGIC: &[u8; 16] = b"keyringrs-entry\n";
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

const ENTRY_PREFIX_LEN: usize = 16 + 2 + NONCE_LEN;

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
    use crate::crypto::{MasterKey, Purpose};

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
