//! The file: header, the clear body (salt, iteration count, times, hashed attributes and
//! blobs), then the key and the items, as the module doc of crate::libsecret describes.

use std::path::Path;

use libkeyring::{Error, Result};

use super::gvariant::{array, Tuple};
use super::item::{self, Encrypted};
use super::{
    derive_key, Key, Keyring, Why, MAGIC, MAX_FILE_LEN, MAX_ITEMS, MAX_ITERATIONS, MAX_SALT_LEN,
    VERSION,
};

/// A file whose clear part was parsed and checked: everything but the items' contents.
#[derive(Debug)]
pub struct Locked<'a> {
    path: &'a Path,
    pub salt: &'a [u8],
    pub iterations: u32,
    pub modified: u64,
    pub usage_count: u32,
    items: Vec<Encrypted<'a>>,
}

fn corrupt(path: &Path, why: Why) -> Error {
    Error::corrupt(path, format!("not a valid libsecret file keyring: {why}"))
}

/// Parse the clear part of a file (no key needed). `path` only names the file in errors.
pub fn parse_locked<'a>(path: &'a Path, bytes: &'a [u8]) -> Result<Locked<'a>> {
    clear(path, bytes).map_err(|why| corrupt(path, why))
}

fn clear<'a>(path: &'a Path, bytes: &'a [u8]) -> std::result::Result<Locked<'a>, Why> {
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes"));
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err("no GnomeKeyring magic".into());
    }
    let Some(version) = bytes.get(MAGIC.len()..MAGIC.len() + 2) else {
        return Err("truncated: no version".into());
    };
    if version != VERSION {
        return Err(if version == [0, 0] {
            "version 0.0 is gnome-keyring's own format: use `keyringrs import gnome-keyring`"
                .to_string()
        } else {
            format!("unknown version {}.{}", version[0], version[1])
        });
    }
    let body = &bytes[MAGIC.len() + 2..];
    // (u ay u t u a(a{say}ay)): one framing offset, the end of the salt.
    let mut t = Tuple::new(body, 1, "body")?;
    let salt_size = t.u32("salt size")? as usize;
    let salt = t.var(false, "salt")?;
    if salt.len() > MAX_SALT_LEN {
        return Err(format!(
            "salt of {} bytes (more than {MAX_SALT_LEN})",
            salt.len()
        ));
    }
    if salt.len() != salt_size {
        return Err(format!(
            "salt of {} bytes, but its size says {salt_size}",
            salt.len()
        ));
    }
    let iterations = t.u32("iteration count")?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(format!(
            "iteration count {iterations} (1 to {MAX_ITERATIONS} accepted)"
        ));
    }
    let modified = t.u64("modified time")?;
    let usage_count = t.u32("usage count")?;
    let items_bytes = t.var(true, "items")?;
    t.finish()?;
    let elements = array(items_bytes, MAX_ITEMS, "items")?;
    let mut items = Vec::with_capacity(elements.len());
    for (i, e) in elements.into_iter().enumerate() {
        items.push(item::clear(e, i + 1)?);
    }
    Ok(Locked {
        path,
        salt,
        iterations,
        modified,
        usage_count,
        items,
    })
}

impl Locked<'_> {
    /// How many items the file has.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Has it no items (so no password can be checked)?
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The key for `password` (PBKDF2: the slow part).
    pub fn derive_key(&self, password: &[u8]) -> Key {
        derive_key(password, self.salt, self.iterations)
    }

    /// Decrypt every item with `key`: `WrongPassword` if no item authenticates, `Corrupt`
    /// (naming the file and the items) if only some do or an authenticated item is malformed.
    pub fn unlock(&self, key: &Key) -> Result<Keyring> {
        let bad: Vec<usize> = self
            .items
            .iter()
            .enumerate()
            .filter(|(_, it)| !it.authenticates(key))
            .map(|(i, _)| i + 1)
            .collect();
        if !bad.is_empty() && bad.len() == self.items.len() {
            return Err(Error::WrongPassword);
        }
        if !bad.is_empty() {
            let list: Vec<String> = bad.iter().take(10).map(usize::to_string).collect();
            return Err(corrupt(
                self.path,
                format!(
                    "item{} {}{} of {} fail{} authentication while the others authenticate: damaged (or written with another password: libsecret never checks it)",
                    if bad.len() > 1 { "s" } else { "" },
                    list.join(", "),
                    if bad.len() > 10 { ", ..." } else { "" },
                    self.items.len(),
                    if bad.len() > 1 { "" } else { "s" },
                ),
            ));
        }
        let mut items = Vec::with_capacity(self.items.len());
        for (i, it) in self.items.iter().enumerate() {
            items.push(
                it.decrypt(key, i + 1)
                    .map_err(|why| corrupt(self.path, why))?,
            );
        }
        Ok(Keyring {
            salt: self.salt.to_vec(),
            iterations: self.iterations,
            modified: self.modified,
            usage_count: self.usage_count,
            items,
        })
    }
}

/// Parse and decrypt a file with its password. `path` only names the file in errors.
pub fn parse(path: &Path, bytes: &[u8], password: &[u8]) -> Result<Keyring> {
    let locked = parse_locked(path, bytes)?;
    let key = locked.derive_key(password);
    locked.unlock(&key)
}
