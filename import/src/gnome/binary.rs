//! gnome-keyring's binary keyring format (a keyring with a password): the clear part, the
//! AES-128-CBC part and its MD5 check, as the module doc of crate::gnome describes.

use std::path::Path;

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use std::collections::BTreeMap;

use super::{
    Format, Item, Keyring, Why, MAGIC, MAX_ACL, MAX_ATTRIBUTES, MAX_FILE_LEN, MAX_ITEMS,
    MAX_ITERATIONS, MAX_STRING_LEN,
};
use crate::md5::md5;
use libkeyring::{Error, Result};

/// A bounds-checked big-endian reader; every failure names what was being read.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

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
    if v[0..2] == [1, 0] {
        return Err(Why::from(
            "version 1.0 is a libsecret (or oo7) file keyring: use `keyringrs import libsecret-file`",
        )
        .into());
    }
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
