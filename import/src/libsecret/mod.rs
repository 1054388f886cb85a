//! A reader of libsecret's file keyrings (`default.keyring`), which libsecret's "file backend"
//! keeps inside Flatpak (and Snap) sandboxes, and on the host with `SECRET_BACKEND=file`; oo7's
//! file backend writes the same format.
//!
//! The format is defined by code only. The facts below were read from libsecret 0.20.5
//! (Debian 12's; `libsecret/secret-file-collection.c`, `secret-file-item.c`,
//! `secret-file-backend.c`, LGPL) and oo7's `client/src/file/` (MIT), and checked against
//! files Debian's `secret-tool` writes; no code of either was copied or translated.
//!
//! - **Header**: the 16 bytes `GnomeKeyring\n\r\0\n` (gnome-keyring's magic), then the major
//!   and minor version, 1 and 0 (gnome-keyring's own files have 0 and 0 there).
//! - **Body**: one GVariant of type `(uayutua(a{say}ay))`, little-endian, filling the rest of
//!   the file: the salt's length, the salt (32 random bytes when libsecret creates a file), the
//!   PBKDF2 iteration count (100,000), the file's modification time (Unix seconds), a usage
//!   counter (incremented on every change), and the items. Each item is its *hashed
//!   attributes* (attribute name → HMAC-SHA256 of the value, all 32 bytes, under the key),
//!   in clear for searching, and its encrypted *blob*. None of the body is authenticated as a
//!   whole; each item is.
//! - **Key**: PBKDF2-HMAC-SHA256 over the password with the salt and iteration count, to 16
//!   bytes (libsecret asks libgcrypt for one cipher block's worth). libsecret opens an "AES256"
//!   cipher handle with it, but libgcrypt picks the rounds by key length: the items are
//!   **AES-128**-CBC (oo7 says so plainly; checked by decrypting real files). Inside a sandbox
//!   the password is the 64 bytes the Secret portal hands the app (`RetrieveSecret`); with
//!   `SECRET_FILE_TEST_PASSWORD` set, that string.
//! - **Blob**: ciphertext ‖ IV (16 random bytes) ‖ MAC, the MAC being HMAC-SHA256 (32 bytes,
//!   not truncated) under the same 16-byte key, over ciphertext ‖ IV (encrypt-then-MAC).
//!   The plaintext is padded with PKCS#7 (1 to 16 bytes, always).
//! - **Plaintext item**: a GVariant `(a{ss}sttay)`: the attributes, the label, created and
//!   modified (Unix seconds), the secret's bytes. libsecret keeps no content type (it reads
//!   every secret back as `text/plain`); oo7 keeps it as an attribute `xdg:content-type`,
//!   which is imported as the attribute it is.
//! - The hashed attributes are HMAC-SHA256(key, value) for each attribute of the plaintext,
//!   under its name: the same names, one hash each.
//!
//! How it is read: the whole clear part is parsed and checked first (no key needed: sizes,
//! counts, GVariant framing, hashed attributes of 32 bytes); then the key is derived; then
//! every item's MAC is checked before anything is decrypted. A wrong password makes every
//! item's MAC fail: if **no** item authenticates, the error is `WrongPassword` (the file's
//! items being all damaged looks the same, and the message says so); if some authenticate and
//! others do not, the file is damaged (`Corrupt`, naming the items; libsecret never checks a
//! password, so an item added under another password reads the same way). Then each item is
//! decrypted, its padding and GVariant checked, and its hashed attributes compared with its
//! decrypted attributes (a mismatch is `Corrupt`). An **empty** keyring (no items) cannot tell
//! a wrong password from the right one: it reads as an empty keyring whatever the password
//! ([`Keyring::items`] empty), and the CLI says the password was not checked.
//!
//! Parsing is bounded: the file size, every count and length, and the iteration count are
//! checked against the caps below before anything is allocated or looped over. Every refusal
//! is `Corrupt` naming the file and what is wrong. The key and every plaintext are wiped
//! after use (zeroize); no secret appears in `Debug` output.

mod crypto;
mod encode;
mod gvariant;
mod item;
mod keyring;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use libkeyring::Result;

pub use crypto::{derive_key, Key};
pub use encode::{encode, encode_with};
pub use keyring::{parse, parse_locked, Locked};

/// Why a part of a file is refused (turned into `Corrupt` naming the file).
type Why = String;

/// Largest keyring file read (as for gnome-keyring's).
pub const MAX_FILE_LEN: u64 = crate::gnome::MAX_FILE_LEN;
/// Most items in one keyring.
pub const MAX_ITEMS: usize = 100_000;
/// Most attributes of one item.
pub const MAX_ATTRIBUTES: usize = 1_000;
/// Longest label, attribute name or value.
pub const MAX_STRING_LEN: usize = 1 << 20;
/// Longest secret (the store's own limit).
pub const MAX_SECRET_LEN: usize = libkeyring::format::MAX_SECRET_LEN;
/// Longest salt (libsecret and oo7 write 32 bytes).
pub const MAX_SALT_LEN: usize = 1024;
/// Largest PBKDF2 iteration count accepted: ten times libsecret's and oo7's 100,000.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The file's magic (gnome-keyring's).
pub const MAGIC: &[u8; 16] = b"GnomeKeyring\n\r\0\n";
/// The version this reader knows (major, minor).
pub const VERSION: [u8; 2] = [1, 0];
/// Bytes of the derived key.
pub const KEY_LEN: usize = 16;
/// Bytes of every MAC (HMAC-SHA256, whole).
pub const MAC_LEN: usize = 32;
/// Bytes of each item's IV.
pub const IV_LEN: usize = 16;

/// One decrypted item: the common import item, its times those of the file (a time that does
/// not fit an i64 reads as none).
pub use crate::Item;

/// A whole decrypted keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    pub salt: Vec<u8>,
    pub iterations: u32,
    /// The file's modification time (Unix seconds), as it says.
    pub modified: u64,
    /// How many times it was written.
    pub usage_count: u32,
    pub items: Vec<Item>,
}

/// Where a keyring is: `$XDG_DATA_HOME/keyrings/default.keyring` (else
/// `~/.local/share/keyrings/default.keyring`), or with `app_id` the Flatpak app's own,
/// `~/.var/app/<app_id>/data/keyrings/default.keyring` (its `$XDG_DATA_HOME` in the sandbox).
/// An app id that is not one path element is refused (`InvalidInput`).
pub fn default_path(app_id: Option<&str>) -> Result<PathBuf> {
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| {
                libkeyring::Error::InvalidInput("no HOME to find the keyring file in".into())
            })
    };
    let data = match app_id {
        Some(id) => {
            libkeyring::portal::check_app_id(id)?;
            if id.contains('/') || id == "." || id == ".." {
                return Err(libkeyring::Error::InvalidInput(format!(
                    "not an app id: {id:?}"
                )));
            }
            home()?.join(".var/app").join(id).join("data")
        }
        None => match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => home()?.join(".local/share"),
        },
    };
    Ok(data.join("keyrings/default.keyring"))
}

/// Read a keyring file as [`crate::gnome::read_file`] does: a regular file of at most
/// [`MAX_FILE_LEN`] bytes, read-only, never blocking on a FIFO.
pub fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    crate::gnome::read_file(path)
}
