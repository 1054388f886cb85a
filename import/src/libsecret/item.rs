//! One item: its clear part `(a{say}ay)` (hashed attributes, blob), the blob's MAC, its
//! decryption, and the plaintext `(a{ss}sttay)` checked against the hashed attributes.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use super::crypto::{self, Key};
use super::gvariant::{array, string, Tuple};
use super::{Item, Why, IV_LEN, MAC_LEN, MAX_ATTRIBUTES, MAX_SECRET_LEN, MAX_STRING_LEN};

/// An item as the file keeps it in clear.
#[derive(Debug)]
pub(super) struct Encrypted<'a> {
    /// Attribute name → HMAC-SHA256 of its value.
    hashed: BTreeMap<String, &'a [u8]>,
    /// ciphertext ‖ IV ‖ MAC.
    blob: &'a [u8],
}

/// The clear part of item `n` (1-based, for messages).
pub(super) fn clear(e: &[u8], n: usize) -> std::result::Result<Encrypted<'_>, Why> {
    let what = format!("item {n}");
    let mut t = Tuple::new(e, 1, &what)?;
    let dict = t.var(false, "hashed attributes")?;
    let blob = t.var(true, "encrypted part")?;
    t.finish()?;
    let mut hashed = BTreeMap::new();
    for entry in array(dict, MAX_ATTRIBUTES, &format!("{what}: hashed attributes"))? {
        let mut t = Tuple::new(entry, 1, &what)?;
        let name = string(
            t.var(false, "hashed attribute name")?,
            MAX_STRING_LEN,
            &format!("{what}: hashed attribute name"),
        )?;
        let mac = t.var(true, "hashed attribute value")?;
        t.finish()?;
        if mac.len() != MAC_LEN {
            return Err(format!(
                "{what}: hashed attribute {name:?} of {} bytes, not {MAC_LEN}",
                mac.len()
            ));
        }
        if hashed.insert(name.clone(), mac).is_some() {
            return Err(format!("{what}: hashed attribute {name:?} twice"));
        }
    }
    // At least one block, the IV and the MAC.
    if blob.len() < 16 + IV_LEN + MAC_LEN || (blob.len() - IV_LEN - MAC_LEN) % 16 != 0 {
        return Err(format!(
            "{what}: encrypted part of {} bytes (not blocks of 16, an IV and a MAC)",
            blob.len()
        ));
    }
    Ok(Encrypted { hashed, blob })
}

impl Encrypted<'_> {
    /// Does the blob's MAC check out under `key`?
    pub(super) fn authenticates(&self, key: &Key) -> bool {
        let (data, tag) = self.blob.split_at(self.blob.len() - MAC_LEN);
        crypto::verify(key, data, tag)
    }

    /// Decrypt (after [`Encrypted::authenticates`]) and check item `n`.
    pub(super) fn decrypt(&self, key: &Key, n: usize) -> std::result::Result<Item, Why> {
        let what = format!("item {n}");
        if !self.authenticates(key) {
            return Err(format!("{what}: fails authentication"));
        }
        let data = &self.blob[..self.blob.len() - MAC_LEN];
        let (ct, iv) = data.split_at(data.len() - IV_LEN);
        let plain = crypto::decrypt(key, iv, ct).map_err(|w| format!("{what}: {w}"))?;
        let item = plaintext(&plain, &what)?;
        // The same names, and each hash the HMAC of the decrypted value.
        if item.attributes.len() != self.hashed.len()
            || !item.attributes.keys().eq(self.hashed.keys())
        {
            return Err(format!(
                "{what}: its hashed attributes name other attributes than it holds"
            ));
        }
        for (name, value) in &item.attributes {
            if !crypto::verify(key, value.as_bytes(), self.hashed[name]) {
                return Err(format!(
                    "{what}: hashed attribute {name:?} does not match its value"
                ));
            }
        }
        Ok(item)
    }
}

/// The decrypted `(a{ss}sttay)`.
pub(super) fn plaintext(p: &[u8], what: &str) -> std::result::Result<Item, Why> {
    let mut t = Tuple::new(p, 2, what)?;
    let dict = t.var(false, "attributes")?;
    let label = string(
        t.var(false, "label")?,
        MAX_STRING_LEN,
        &format!("{what}: label"),
    )?;
    let created = t.u64("created time")?;
    let modified = t.u64("modified time")?;
    let secret = t.var(true, "secret")?;
    t.finish()?;
    if secret.len() > MAX_SECRET_LEN {
        return Err(format!(
            "{what}: secret of {} bytes (more than {MAX_SECRET_LEN})",
            secret.len()
        ));
    }
    let mut attributes = BTreeMap::new();
    for entry in array(dict, MAX_ATTRIBUTES, &format!("{what}: attributes"))? {
        let mut t = Tuple::new(entry, 1, what)?;
        let name = string(
            t.var(false, "attribute name")?,
            MAX_STRING_LEN,
            &format!("{what}: attribute name"),
        )?;
        let value = string(
            t.var(true, "attribute value")?,
            MAX_STRING_LEN,
            &format!("{what}: attribute {name:?}"),
        )?;
        t.finish()?;
        if attributes.insert(name.clone(), value).is_some() {
            return Err(format!("{what}: attribute {name:?} twice"));
        }
    }
    Ok(Item {
        label,
        attributes,
        secret: Zeroizing::new(secret.to_vec()),
        created: i64::try_from(created).ok(),
        modified: i64::try_from(modified).ok(),
    })
}
