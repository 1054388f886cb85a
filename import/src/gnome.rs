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

use std::collections::BTreeMap;
use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::md5::md5;
use libkeyring::{Error, Result};

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

// ---------------------------------------------------------------------------------------------
// Binary format

/// A bounds-checked big-endian reader; every failure names what was being read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

type Why = String;

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn bytes(&mut self, n: usize, what: &str) -> std::result::Result<&'a [u8], Why> {
        if n > self.remaining() {
            return Err(format!(
                "truncated: {what} needs {n} bytes at offset {}, {} left",
                self.pos,
                self.remaining()
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u32(&mut self, what: &str) -> std::result::Result<u32, Why> {
        let b = self.bytes(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn time(&mut self, what: &str) -> std::result::Result<i64, Why> {
        let hi = self.u32(what)? as u64;
        let lo = self.u32(what)? as u64;
        let t = (hi << 32) | lo;
        i64::try_from(t).map_err(|_| format!("{what} out of range"))
    }
    /// A string's bytes; None for NULL.
    fn opt_bytes(&mut self, what: &str) -> std::result::Result<Option<&'a [u8]>, Why> {
        let n = self.u32(what)?;
        if n == u32::MAX {
            return Ok(None);
        }
        let n = n as usize;
        if n > MAX_STRING_LEN {
            return Err(format!("{what} of {n} bytes (more than {MAX_STRING_LEN})"));
        }
        self.bytes(n, what).map(Some)
    }
    /// A UTF-8 string; NULL reads as empty.
    fn string(&mut self, what: &str) -> std::result::Result<String, Why> {
        let b = self.opt_bytes(what)?.unwrap_or(&[]);
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| format!("{what} is not UTF-8"))
    }
    /// A count, checked against `max` and against what the remaining bytes can hold at
    /// `min_size` bytes each.
    fn count(
        &mut self,
        what: &str,
        max: usize,
        min_size: usize,
    ) -> std::result::Result<usize, Why> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(format!("{what} is {n} (more than {max})"));
        }
        if n.saturating_mul(min_size) > self.remaining() {
            return Err(format!(
                "{what} is {n}, more than the {} bytes left can hold",
                self.remaining()
            ));
        }
        Ok(n)
    }
}

/// One attribute (name, type, value); `hashed` for the clear part (values are hashes).
fn attribute(r: &mut Reader<'_>, item: usize) -> std::result::Result<(String, String), Why> {
    let name = r.string(&format!("item {item}: attribute name"))?;
    let ty = r.u32(&format!("item {item}: attribute {name:?} type"))?;
    let value = match ty {
        0 => r.string(&format!("item {item}: attribute {name:?} value"))?,
        1 => r
            .u32(&format!("item {item}: attribute {name:?} value"))?
            .to_string(),
        t => {
            return Err(format!(
                "item {item}: attribute {name:?} of unknown type {t}"
            ))
        }
    };
    Ok((name, value))
}

/// Key and IV: SHA-256 of password‖salt, rehashed until `iterations` hashes in all.
fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<[u8; 32]> {
    let mut d = Zeroizing::new([0u8; 32]);
    let mut h = Sha256::new();
    h.update(password);
    h.update(salt);
    d.copy_from_slice(&h.finalize());
    for _ in 1..iterations {
        let next = Sha256::digest(&d[..]);
        d.copy_from_slice(&next);
    }
    d
}

/// Parse the binary (encrypted) format.
pub fn parse_binary(path: &Path, bytes: &[u8], password: &[u8]) -> Result<Keyring> {
    match binary(bytes, password) {
        Ok(k) => Ok(k),
        Err(BinErr::WrongPassword) => Err(Error::WrongPassword),
        Err(BinErr::Malformed(why)) => Err(Error::corrupt(
            path,
            format!("not a valid gnome-keyring file: {why}"),
        )),
    }
}

enum BinErr {
    WrongPassword,
    Malformed(Why),
}

impl From<Why> for BinErr {
    fn from(w: Why) -> BinErr {
        BinErr::Malformed(w)
    }
}

fn binary(bytes: &[u8], password: &[u8]) -> std::result::Result<Keyring, BinErr> {
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};

    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes").into());
    }
    let mut r = Reader::new(bytes);
    if r.bytes(16, "magic")? != MAGIC {
        return Err(Why::from("no GnomeKeyring magic").into());
    }
    let v = r.bytes(4, "version")?;
    if v[0..2] != [0, 0] {
        return Err(format!("unknown version {}", u16::from_be_bytes([v[0], v[1]])).into());
    }
    if v[2] != 0 {
        return Err(format!("unknown cipher {}", v[2]).into());
    }
    if v[3] != 0 {
        return Err(format!("unknown hash {}", v[3]).into());
    }
    let name = r.string("keyring name")?;
    let created = r.time("keyring ctime")?;
    let modified = r.time("keyring mtime")?;
    let _flags = r.u32("flags")?;
    let _lock_timeout = r.u32("lock timeout")?;
    let iterations = r.u32("hash iterations")?;
    if iterations == 0 || iterations > MAX_ITERATIONS {
        return Err(
            format!("hash iterations {iterations} (1 to {MAX_ITERATIONS} accepted)").into(),
        );
    }
    let salt = r.bytes(8, "salt")?;
    r.bytes(16, "reserved")?;
    // Clear part: id, type, hashed attributes (12 bytes at least per item).
    let n = r.count("item count", MAX_ITEMS, 12)?;
    let mut types = Vec::new();
    for i in 0..n {
        let _id = r.u32(&format!("item {i}: id"))?;
        types.push(r.u32(&format!("item {i}: type"))?);
        let na = r.count(&format!("item {i}: attribute count"), MAX_ATTRIBUTES, 8)?;
        for _ in 0..na {
            attribute(&mut r, i)?;
        }
    }
    let enc_len = r.u32("encrypted size")? as usize;
    if enc_len < 16 || enc_len % 16 != 0 {
        return Err(format!("encrypted size {enc_len} is not a positive multiple of 16").into());
    }
    let enc = r.bytes(enc_len, "encrypted part")?;
    if r.remaining() != 0 {
        return Err(format!("{} bytes after the encrypted part", r.remaining()).into());
    }
    let kiv = derive(password, salt, iterations);
    let mut plain = Zeroizing::new(enc.to_vec());
    cbc::Decryptor::<aes::Aes128>::new_from_slices(&kiv[..16], &kiv[16..])
        .map_err(|_| Why::from("bad key length"))?
        .decrypt_padded_mut::<NoPadding>(&mut plain)
        .map_err(|_| Why::from("encrypted part is not whole blocks"))?;
    if md5(&plain[16..]) != plain[..16] {
        return Err(BinErr::WrongPassword);
    }
    // From here the payload is what gnome-keyring wrote with this password: a failure is a
    // damaged file (or a writer bug), not a wrong password.
    let mut r = Reader::new(&plain[16..]);
    let mut items = Vec::new();
    for (i, &item_type) in types.iter().enumerate() {
        let label = r.string(&format!("item {i}: label"))?;
        let secret = Zeroizing::new(
            r.opt_bytes(&format!("item {i}: secret"))?
                .unwrap_or(&[])
                .to_vec(),
        );
        let created = r.time(&format!("item {i}: ctime"))?;
        let modified = r.time(&format!("item {i}: mtime"))?;
        r.opt_bytes(&format!("item {i}: reserved string"))?;
        r.bytes(16, &format!("item {i}: reserved words"))?;
        let na = r.count(&format!("item {i}: attribute count"), MAX_ATTRIBUTES, 8)?;
        let mut attributes = BTreeMap::new();
        for _ in 0..na {
            let (k, v) = attribute(&mut r, i)?;
            if attributes.insert(k.clone(), v).is_some() {
                return Err(format!("item {i}: attribute {k:?} twice").into());
            }
        }
        let nacl = r.count(&format!("item {i}: ACL length"), MAX_ACL, 20)?;
        for _ in 0..nacl {
            r.u32(&format!("item {i}: ACL types"))?;
            r.opt_bytes(&format!("item {i}: ACL display name"))?;
            r.opt_bytes(&format!("item {i}: ACL path"))?;
            r.opt_bytes(&format!("item {i}: ACL reserved string"))?;
            r.u32(&format!("item {i}: ACL reserved word"))?;
        }
        items.push(Item {
            item_type,
            label,
            attributes,
            secret,
            created,
            modified,
        });
    }
    let rest = r.bytes(r.remaining(), "padding")?;
    if rest.len() >= 16 || rest.iter().any(|&b| b != 0) {
        return Err(format!("{} bytes of unexpected data after the items", rest.len()).into());
    }
    Ok(Keyring {
        format: Format::Binary,
        name,
        created,
        modified,
        items,
    })
}

// ---------------------------------------------------------------------------------------------
// Textual format

/// GKeyFile string unescaping: `\s \n \t \r \\`; anything else after `\` is refused.
fn unescape(v: &[u8], what: &str) -> std::result::Result<String, Why> {
    let mut out = Vec::with_capacity(v.len());
    let mut it = v.iter();
    while let Some(&c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        out.push(match it.next() {
            Some(b's') => b' ',
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            Some(b'\\') => b'\\',
            Some(&o) => return Err(format!("{what}: unknown escape \\{}", o as char)),
            None => return Err(format!("{what}: ends with a lone backslash")),
        });
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not UTF-8"))
}

fn hex_decode(v: &[u8], what: &str) -> std::result::Result<Vec<u8>, Why> {
    if v.len() % 2 != 0 {
        return Err(format!("{what}: odd number of hex digits"));
    }
    let digit = |c: u8| -> std::result::Result<u8, Why> {
        (c as char)
            .to_digit(16)
            .map(|d| d as u8)
            .ok_or_else(|| format!("{what}: not a hex digit: {:?}", c as char))
    };
    v.chunks_exact(2)
        .map(|p| Ok(digit(p[0])? << 4 | digit(p[1])?))
        .collect()
}

/// A group's keys and raw values (the last of a repeated key wins, as in GKeyFile).
type Group<'a> = BTreeMap<String, &'a [u8]>;

/// Parse the textual (blank-password) format.
pub fn parse_textual(path: &Path, bytes: &[u8]) -> Result<Keyring> {
    textual(bytes).map_err(|why| {
        Error::corrupt(
            path,
            format!("not a valid gnome-keyring file (no GnomeKeyring magic, and as a textual keyring: {why})"),
        )
    })
}

fn textual(bytes: &[u8]) -> std::result::Result<Keyring, Why> {
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(format!("larger than {MAX_FILE_LEN} bytes"));
    }
    let mut groups: Vec<(String, Group<'_>)> = Vec::new();
    for (no, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let no = no + 1;
        let trimmed = line.trim_ascii();
        if trimmed.is_empty() || trimmed[0] == b'#' {
            continue;
        }
        if trimmed[0] == b'[' {
            if trimmed.last() != Some(&b']') || trimmed.len() < 3 {
                return Err(format!("line {no}: malformed group header"));
            }
            let name = std::str::from_utf8(&trimmed[1..trimmed.len() - 1])
                .map_err(|_| format!("line {no}: group name is not UTF-8"))?;
            if groups.len() > 4 * MAX_ITEMS {
                return Err(format!("more than {} groups", 4 * MAX_ITEMS));
            }
            groups.push((name.to_string(), Group::new()));
            continue;
        }
        let eq = line
            .iter()
            .position(|&b| b == b'=')
            .ok_or_else(|| format!("line {no}: neither a group, a key=value pair nor a comment"))?;
        let key = std::str::from_utf8(line[..eq].trim_ascii())
            .map_err(|_| format!("line {no}: key is not UTF-8"))?;
        let value = &line[eq + 1..];
        if value.len() > 2 * MAX_STRING_LEN + 2 {
            return Err(format!(
                "line {no}: value longer than {MAX_STRING_LEN} bytes"
            ));
        }
        let (_, group) = groups
            .last_mut()
            .ok_or_else(|| format!("line {no}: key before the first group"))?;
        group.insert(key.to_string(), value);
    }
    let mut keyring: Option<Keyring> = None;
    let mut items: Vec<(u32, Item)> = Vec::new();
    let mut attrs: Vec<(u32, String, Group<'_>)> = Vec::new();
    let time = |g: &Group<'_>, k: &str, what: &str| -> std::result::Result<i64, Why> {
        match g.get(k) {
            None => Ok(0),
            Some(v) => std::str::from_utf8(v.trim_ascii())
                .ok()
                .and_then(|s| s.parse::<i64>().ok())
                .ok_or_else(|| format!("{what}: {k} is not a number")),
        }
    };
    let string = |g: &Group<'_>, k: &str, what: &str| -> std::result::Result<String, Why> {
        match g.get(k) {
            None => Ok(String::new()),
            Some(v) => {
                let v = v.trim_ascii_start();
                if v.len() > MAX_STRING_LEN {
                    return Err(format!("{what}: {k} longer than {MAX_STRING_LEN} bytes"));
                }
                unescape(v, &format!("{what}: {k}"))
            }
        }
    };
    for (name, g) in &groups {
        if name == "keyring" {
            keyring = Some(Keyring {
                format: Format::Textual,
                name: string(g, "display-name", "[keyring]")?,
                created: time(g, "ctime", "[keyring]")?,
                modified: time(g, "mtime", "[keyring]")?,
                items: Vec::new(),
            });
        } else if let Ok(id) = name.parse::<u32>() {
            if items.len() >= MAX_ITEMS {
                return Err(format!("more than {MAX_ITEMS} items"));
            }
            if items.iter().any(|(i, _)| *i == id) {
                return Err(format!("item [{id}] twice"));
            }
            let what = format!("[{id}]");
            let secret = match (g.get("secret"), g.get("binary-secret")) {
                (Some(_), Some(_)) => return Err(format!("{what}: both secret and binary-secret")),
                (Some(v), None) => v.to_vec(),
                (None, Some(v)) => hex_decode(v.trim_ascii(), &format!("{what}: binary-secret"))?,
                (None, None) => Vec::new(),
            };
            if secret.len() > MAX_STRING_LEN {
                return Err(format!("{what}: secret longer than {MAX_STRING_LEN} bytes"));
            }
            let item_type = match g.get("item-type") {
                None => 0,
                Some(v) => std::str::from_utf8(v.trim_ascii())
                    .ok()
                    .and_then(|s| s.parse::<u32>().ok())
                    .ok_or_else(|| format!("{what}: item-type is not a number"))?,
            };
            items.push((
                id,
                Item {
                    item_type,
                    label: string(g, "display-name", &what)?,
                    attributes: BTreeMap::new(),
                    secret: Zeroizing::new(secret),
                    created: time(g, "ctime", &what)?,
                    modified: time(g, "mtime", &what)?,
                },
            ));
        } else if let Some((id, sub)) = name.split_once(':') {
            let Ok(id) = id.parse::<u32>() else {
                continue;
            };
            if sub.starts_with("attribute") {
                attrs.push((id, name.clone(), g.clone()));
            }
            // `N:aclK` groups (application access lists) are not imported.
        }
        // Other groups are ignored.
    }
    let mut keyring = keyring.ok_or_else(|| Why::from("no [keyring] group"))?;
    for (id, gname, g) in attrs {
        let what = format!("[{gname}]");
        let item = items
            .iter_mut()
            .find(|(i, _)| *i == id)
            .map(|(_, it)| it)
            .ok_or_else(|| format!("{what}: attribute of a missing item [{id}]"))?;
        if item.attributes.len() >= MAX_ATTRIBUTES {
            return Err(format!("[{id}]: more than {MAX_ATTRIBUTES} attributes"));
        }
        let name = string(&g, "name", &what)?;
        if !g.contains_key("name") {
            return Err(format!("{what}: no name"));
        }
        let ty = g.get("type").map(|v| v.trim_ascii()).unwrap_or(b"string");
        let value = match ty {
            b"string" => string(&g, "value", &what)?,
            b"uint32" => std::str::from_utf8(g.get("value").copied().unwrap_or(b"").trim_ascii())
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
                .ok_or_else(|| format!("{what}: uint32 value is not a number"))?
                .to_string(),
            other => {
                return Err(format!(
                    "{what}: unknown type {:?}",
                    String::from_utf8_lossy(other)
                ))
            }
        };
        if item.attributes.insert(name.clone(), value).is_some() {
            return Err(format!("[{id}]: attribute {name:?} twice"));
        }
    }
    keyring.items = items.into_iter().map(|(_, it)| it).collect();
    Ok(keyring)
}

/// Write a keyring in the binary format (for tests and the fuzzer: the real files come from
/// gnome-keyring-daemon). Attribute values are written as strings; hashed values as zeros.
pub fn encode_binary(k: &Keyring, password: &[u8], salt: [u8; 8], iterations: u32) -> Vec<u8> {
    use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    fn s(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
    }
    fn t(out: &mut Vec<u8>, v: i64) {
        out.extend_from_slice(&((v as u64 >> 32) as u32).to_be_bytes());
        out.extend_from_slice(&(v as u32).to_be_bytes());
    }
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[0, 0, 0, 0]);
    s(&mut out, k.name.as_bytes());
    t(&mut out, k.created);
    t(&mut out, k.modified);
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&iterations.to_be_bytes());
    out.extend_from_slice(&salt);
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&(k.items.len() as u32).to_be_bytes());
    for (i, it) in k.items.iter().enumerate() {
        out.extend_from_slice(&(i as u32 + 1).to_be_bytes());
        out.extend_from_slice(&it.item_type.to_be_bytes());
        out.extend_from_slice(&(it.attributes.len() as u32).to_be_bytes());
        for name in it.attributes.keys() {
            s(&mut out, name.as_bytes());
            out.extend_from_slice(&0u32.to_be_bytes());
            s(&mut out, &[b'0'; 32]);
        }
    }
    let mut p = Vec::new();
    for it in &k.items {
        s(&mut p, it.label.as_bytes());
        s(&mut p, &it.secret);
        t(&mut p, it.created);
        t(&mut p, it.modified);
        p.extend_from_slice(&u32::MAX.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p.extend_from_slice(&(it.attributes.len() as u32).to_be_bytes());
        for (name, value) in &it.attributes {
            s(&mut p, name.as_bytes());
            p.extend_from_slice(&0u32.to_be_bytes());
            s(&mut p, value.as_bytes());
        }
        p.extend_from_slice(&0u32.to_be_bytes());
    }
    while (p.len() + 16) % 16 != 0 {
        p.push(0);
    }
    let mut enc = md5(&p).to_vec();
    enc.extend_from_slice(&p);
    let kiv = derive(password, &salt, iterations);
    let n = enc.len();
    cbc::Encryptor::<aes::Aes128>::new_from_slices(&kiv[..16], &kiv[16..])
        .expect("16-byte key and IV")
        .encrypt_padded_mut::<NoPadding>(&mut enc, n)
        .expect("whole blocks");
    out.extend_from_slice(&(enc.len() as u32).to_be_bytes());
    out.extend_from_slice(&enc);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gkeyfile_escapes() {
        assert_eq!(unescape(br"\sa\\b\nc\td\r", "x").unwrap(), " a\\b\nc\td\r");
        assert!(unescape(br"\q", "x").is_err());
        assert!(unescape(b"a\\", "x").is_err());
    }

    #[test]
    fn textual_sample() {
        let text = b"[keyring]\ndisplay-name=Login\nctime=0\nmtime=5\n\n[2]\nitem-type=0\ndisplay-name=\\sA\nsecret= raw\\s\nmtime=7\nctime=6\n\n[2:attribute0]\nname=port\ntype=uint32\nvalue=22\n\n[2:acl0]\ndisplay-name=x\n\n[3]\ndisplay-name=B\nbinary-secret=FF00\n";
        let k = textual(text).unwrap();
        assert_eq!(k.name, "Login");
        assert_eq!(k.items.len(), 2);
        assert_eq!(k.items[0].label, " A");
        assert_eq!(&k.items[0].secret[..], b" raw\\s");
        assert_eq!(k.items[0].attributes["port"], "22");
        assert_eq!((k.items[0].created, k.items[0].modified), (6, 7));
        assert_eq!(&k.items[1].secret[..], &[0xff, 0]);
    }
}
