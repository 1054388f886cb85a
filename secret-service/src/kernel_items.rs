//! The items of the `session` collection, kept in the kernel rather than in the daemon: one
//! `user` key per item in the daemon's session keyring (the user manager's when the daemon is
//! D-Bus/systemd-activated, so they die with the user's last logout, or with the login session's
//! keyring), described `keyringrs-ss:session:<32 hex>`, possessor view/read/write/search only.
//! The payload is the item serialized (label, content type, times, attributes, secret); the
//! daemon keeps none of it between calls.

use std::collections::BTreeMap;

use libkeyring::keyring::{perm, KeySerial, Keyring};
use zeroize::Zeroizing;

use crate::backend::{is_session_item_id, ItemData};
use crate::error::Error;

/// The description prefix of session items' keys.
pub const KEY_PREFIX: &str = "keyringrs-ss:session:";
/// The largest payload of a `user` key.
pub const MAX_PAYLOAD: usize = 32_767;
const MAGIC: &[u8] = b"KRSS\x01";

/// One session item, decoded (its secret wiped on drop).
pub type KernelItem = ItemData;

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn put(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&u32::try_from(b.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(b);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()?;
        self.take(n)
    }
    fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
}

impl KernelItem {
    /// The key payload; refused beyond what a `user` key holds.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, Error> {
        let mut out = Zeroizing::new(Vec::with_capacity(256 + self.secret.len()));
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.created.to_le_bytes());
        out.extend_from_slice(&self.modified.to_le_bytes());
        put(&mut out, self.label.as_bytes());
        put(&mut out, self.content_type.as_bytes());
        out.extend_from_slice(
            &u32::try_from(self.attributes.len())
                .unwrap_or(u32::MAX)
                .to_le_bytes(),
        );
        for (k, v) in &self.attributes {
            put(&mut out, k.as_bytes());
            put(&mut out, v.as_bytes());
        }
        // Reserve first, so the secret is never copied by a reallocation.
        out.reserve_exact(4 + self.secret.len());
        put(&mut out, &self.secret);
        if out.len() > MAX_PAYLOAD {
            return Err(Error::LimitsExceeded(format!(
                "session items are kept in the kernel keyring as `user` keys, which hold at most {MAX_PAYLOAD} bytes; this one needs {} (secret {} bytes, with its label, attributes and content type): store it in the login collection",
                out.len(),
                self.secret.len()
            )));
        }
        Ok(out)
    }

    pub fn decode(b: &[u8]) -> Option<KernelItem> {
        let mut r = Reader(b);
        if r.take(MAGIC.len())? != MAGIC {
            return None;
        }
        let created = r.u64()?;
        let modified = r.u64()?;
        let label = r.string()?;
        let content_type = r.string()?;
        let n = r.u32()?;
        let mut attributes = BTreeMap::new();
        for _ in 0..n {
            let k = r.string()?;
            let v = r.string()?;
            attributes.insert(k, v);
        }
        let secret = Zeroizing::new(r.bytes()?.to_vec());
        if !r.0.is_empty() {
            return None;
        }
        Some(KernelItem {
            label,
            content_type,
            created,
            modified,
            attributes,
            secret,
        })
    }
}

fn description(id: &str) -> String {
    format!("{KEY_PREFIX}{id}")
}

/// Is `id` a session item's id (32 hex digits)?
pub fn is_id(id: &str) -> bool {
    is_session_item_id(id)
}

fn new_id() -> Result<String, Error> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|e| Error::Failed(format!("random: {e}")))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// The ids of the session items in the daemon's session keyring (none if it has none, or it
/// was revoked).
pub fn list() -> Vec<String> {
    let Ok(ring) = Keyring::Session.serial(false) else {
        return vec![];
    };
    let Ok(members) = ring.members() else {
        return vec![];
    };
    members
        .into_iter()
        .filter_map(|k| k.describe().ok())
        .filter(|d| d.key_type == "user")
        .filter_map(|d| d.description.strip_prefix(KEY_PREFIX).map(str::to_string))
        .filter(|id| is_id(id))
        .collect()
}

fn key(id: &str) -> Option<KeySerial> {
    if !is_id(id) {
        return None;
    }
    Keyring::Session.search(&description(id)).ok()
}

/// The item `id`, or None if it is gone.
pub fn read(id: &str) -> Option<KernelItem> {
    let k = key(id)?;
    KernelItem::decode(&k.read().ok()?)
}

/// Every session item.
pub fn all() -> Vec<(String, KernelItem)> {
    list()
        .into_iter()
        .filter_map(|id| read(&id).map(|i| (id, i)))
        .collect()
}

/// A new session item; its id.
pub fn add(item: &KernelItem) -> Result<String, Error> {
    let payload = item.encode()?;
    let id = new_id()?;
    // Makes a session keyring if the daemon has none.
    Keyring::Session.serial(true)?;
    let k = Keyring::Session.add(&description(&id), &payload)?;
    if let Err(e) = k.set_perm(perm::POS_VIEW | perm::POS_READ | perm::POS_WRITE | perm::POS_SEARCH)
    {
        let _ = k.invalidate();
        return Err(e.into());
    }
    Ok(id)
}

/// Rewrite the item `id`.
pub fn update(id: &str, item: &KernelItem) -> Result<(), Error> {
    let payload = item.encode()?;
    let k = key(id).ok_or_else(gone)?;
    k.update(&payload)?;
    Ok(())
}

/// Delete the item `id` (its key is invalidated: gone everywhere at once).
pub fn delete(id: &str) -> Result<(), Error> {
    key(id).ok_or_else(gone)?.invalidate()?;
    Ok(())
}

pub(crate) fn gone() -> Error {
    Error::NoSuchObject("the session item is gone (deleted, or its session ended)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_big_ones_are_refused() {
        let mut i = KernelItem {
            label: "l".into(),
            content_type: "text/plain".into(),
            created: 1,
            modified: 2,
            attributes: [("a".to_string(), "b".to_string())].into(),
            secret: Zeroizing::new(b"s\0x".to_vec()),
        };
        let d = KernelItem::decode(&i.encode().unwrap()).unwrap();
        assert_eq!(
            (
                d.label.as_str(),
                d.content_type.as_str(),
                d.created,
                d.modified
            ),
            ("l", "text/plain", 1, 2)
        );
        assert_eq!(d.attributes, i.attributes);
        assert_eq!(&d.secret[..], b"s\0x");
        assert!(KernelItem::decode(b"KRSS\x01").is_none());
        i.secret = Zeroizing::new(vec![0; MAX_PAYLOAD]);
        assert!(matches!(i.encode(), Err(Error::LimitsExceeded(_))));
    }
}
