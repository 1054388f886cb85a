//! A reader of gnome-keyring's keyring files (`~/.local/share/keyrings/*.keyring`).
//!
//! Written from the public description of the format only (gnome-keyring's
//! docs/file-format.txt) and from files the real gnome-keyring-daemon writes; no gnome-keyring
//! code (GPL) was copied or translated. Two formats:
//!
//! - **Binary** (a keyring with a password): the magic `GnomeKeyring\n\r\0\n`, version 0 (two
//!   bytes), crypto 0 (AES), hash 0 (MD5); the keyring's name, times, flags, lock timeout, hash
//!   iteration count, 8-byte salt, reserved words; the items' ids, types and hashed attributes in
//!   clear; then the encrypted part: AES-128-CBC, key and IV the two halves of SHA-256 applied
//!   `hash_iterations` times (first to password‖salt, then to the previous digest). Decrypted,
//!   it starts with the MD5 of the rest (what tells a wrong password), then per item: label,
//!   secret, ctime, mtime, reserved string and words, attributes (name, type 0 = string or
//!   1 = uint32, value), ACL; zero padding to a multiple of 16. Integers are big-endian u32,
//!   times two u32 (high, low), strings a u32 length (0xffffffff = NULL) and bytes.
//! - **Textual** (gnome-keyring writes it for a blank password): an INI-like (GKeyFile) file,
//!   group `[keyring]` (display-name, ctime, mtime, ...), a group `[N]` per item (item-type,
//!   display-name, `secret=` raw bytes up to the end of the line, or `binary-secret=` in hex,
//!   ctime, mtime), groups `[N:attributeK]` (name, type `string` or `uint32`, value) and
//!   `[N:aclK]` (ignored). display-name and attribute strings use GKeyFile's escapes.
//!
//! Parsing is bounded: the file size, every length and count, and the iteration count are
//! checked against the caps below before anything is allocated or looped over. Every refusal
//! is `Corrupt` naming the file and what is wrong; a wrong password is `WrongPassword`.

mod binary;
mod textual;

use std::collections::BTreeMap;
use std::path::Path;

use zeroize::Zeroizing;

use libkeyring::{Error, Result};

pub use binary::{encode_binary, parse_binary};
pub use textual::parse_textual;

/// Why a part of a file is refused (turned into `Corrupt` naming the file).
type Why = String;

/// Largest keyring file read.
pub const MAX_FILE_LEN: u64 = 64 << 20;
/// Most items in one keyring.
pub const MAX_ITEMS: usize = 100_000;
/// Longest string (label, secret, attribute name or value).
pub const MAX_STRING_LEN: usize = 1 << 20;
/// Most attributes of one item.
pub const MAX_ATTRIBUTES: usize = 1_000;
/// Most ACL entries of one item (read and dropped).
pub const MAX_ACL: usize = 1_000;
/// Largest hash iteration count accepted (gnome-keyring picks a few thousand).
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// The file's magic.
pub const MAGIC: &[u8; 16] = b"GnomeKeyring\n\r\0\n";

/// Which of the two formats a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Encrypted with the keyring password.
    Binary,
    /// Plain text, written for a blank password.
    Textual,
}

/// One item of a keyring.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    /// gnome-keyring's item type (0 generic secret, 1 network password, 2 note, ...).
    pub item_type: u32,
    pub label: String,
    /// Names and values exactly as stored; uint32 attributes in decimal.
    pub attributes: BTreeMap<String, String>,
    pub secret: Zeroizing<Vec<u8>>,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds.
    pub modified: i64,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("item_type", &self.item_type)
            .field("label", &self.label)
            .field("attributes", &self.attributes)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("created", &self.created)
            .field("modified", &self.modified)
            .finish()
    }
}

/// A whole keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyring {
    pub format: Format,
    pub name: String,
    pub created: i64,
    pub modified: i64,
    pub items: Vec<Item>,
}

/// gnome-keyring's default login keyring: `$XDG_DATA_HOME/keyrings/login.keyring`, else
/// `~/.local/share/keyrings/login.keyring`.
pub fn default_path() -> Option<std::path::PathBuf> {
    let data = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::PathBuf::from(std::env::var_os("HOME")?).join(".local/share"),
    };
    Some(data.join("keyrings/login.keyring"))
}

/// Read a keyring file: a regular file (symlinks are followed, as for any file the user names),
/// at most [`MAX_FILE_LEN`] bytes. Opened read-only (the source is never modified) and without
/// blocking: a FIFO in its place is refused at once, never waited on (the PAM module reads the
/// user's login keyring during a login).
pub fn read_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::Io {
            what: format!("open {}", path.display()),
            source: e,
        })?;
    let meta = f.metadata().map_err(|e| Error::Io {
        what: format!("stat {}", path.display()),
        source: e,
    })?;
    if !meta.is_file() {
        return Err(Error::corrupt(path, "not a regular file"));
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(Error::corrupt(
            path,
            format!("larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    let mut buf = Zeroizing::new(Vec::with_capacity(meta.len() as usize));
    f.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Error::Io {
            what: format!("read {}", path.display()),
            source: e,
        })?;
    if buf.len() as u64 > MAX_FILE_LEN {
        return Err(Error::corrupt(
            path,
            format!("larger than {MAX_FILE_LEN} bytes"),
        ));
    }
    Ok(buf)
}

/// The format of `bytes`: binary if it starts with the magic, else textual.
pub fn format_of(bytes: &[u8]) -> Format {
    if bytes.starts_with(MAGIC) {
        Format::Binary
    } else {
        Format::Textual
    }
}

/// Parse a keyring; `password` is needed for the binary format only (`InvalidInput` without
/// one). `path` only names the file in errors.
pub fn parse(path: &Path, bytes: &[u8], password: Option<&[u8]>) -> Result<Keyring> {
    match format_of(bytes) {
        Format::Binary => {
            let pw = password.ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{} is encrypted: a password is needed",
                    path.display()
                ))
            })?;
            parse_binary(path, bytes, pw)
        }
        Format::Textual => parse_textual(path, bytes),
    }
}
