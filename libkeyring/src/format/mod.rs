//! The on-disk format, byte for byte as docs/FORMAT.md describes it, one file per section:
//! [`header`], [`slots`] (keyslots and their names), [`entry`] (entry files and their
//! plaintext), [`index`], [`journal`]. Pure bytes ↔ types: no file IO here (that is
//! crate::store). Parsing is bounded and total: any input gives a value or a reason, never a
//! panic.

pub mod entry;
pub mod header;
pub mod index;
pub mod journal;
pub mod slots;

pub use entry::*;
pub use header::*;
pub use slots::*;

/// The format version this code writes (docs/FORMAT.md). Version 1 stores and entries are
/// read too; a version 1 store is migrated on its first unlock or write (`Store::migrate`).
pub const VERSION: u16 = 2;
/// The first format version (no attribute index, no content type in entries).
pub const VERSION_1: u16 = 1;
/// Store ids are 16 random bytes.
pub const STORE_ID_LEN: usize = 16;

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
pub(crate) struct Reader<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    pub(crate) fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| format!("truncated at {what} (offset {})", self.pos))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub(crate) fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Malformed> {
        let s = self.take(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, Malformed> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn u16(&mut self, what: &str) -> Result<u16, Malformed> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> Result<i64, Malformed> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn bytes(&mut self, max: usize, what: &str) -> Result<&'a [u8], Malformed> {
        let n = self.u32(what)? as usize;
        if n > max {
            return Err(format!("{what} length {n} exceeds {max}"));
        }
        self.take(n, what)
    }
    pub(crate) fn str(&mut self, what: &str) -> Result<&'a str, Malformed> {
        let b = self.bytes(MAX_FIELD_LEN, what)?;
        std::str::from_utf8(b).map_err(|_| format!("{what} is not UTF-8"))
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }
    pub(crate) fn finish(&self, what: &str) -> Result<(), Malformed> {
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
