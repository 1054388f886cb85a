//! A bounded reader (and, for the encoder, a writer) of GVariant's serialization, for exactly
//! the types of libsecret's file keyrings: `u`, `t`, `s`, `ay`, arrays of variable-size
//! elements (`a{say}`, `a{ss}`, `a(a{say}ay)`) and tuples / dict entries of these.
//!
//! GVariant's rules, as GLib documents them (the "GVariant serialization format" in
//! glib/gvariant-serialiser.c's comments and Ryan Lortie's paper), little-endian:
//! - a fixed-size value (`u`: 4 bytes, `t`: 8) sits at an offset (from the start of the value
//!   that contains it) aligned to its size, after zero padding;
//! - `s` is the UTF-8 bytes and one NUL (no other NUL); `ay` is the bytes;
//! - a container (array of variable-size elements, tuple, dict entry) keeps *framing offsets*:
//!   little-endian integers of the smallest width (1, 2, 4 or 8 bytes) that can address the
//!   container's size. An array stores the end of every element, in order, after the
//!   elements; a tuple stores the end of every variable-size member but the last, at its very
//!   end in reverse order (the first member's end last); the last member ends where those
//!   offsets begin.
//!
//! Every value here is read in normal form only: in-bounds, non-decreasing offsets, zero
//! padding, NUL-terminated UTF-8 strings. Anything else is refused with the reason (GLib
//! would read a non-normal value as a default, e.g. an empty string: never what was written).

use super::Why;

/// A GVariant value's bytes, being read; every failure names `what`.
pub(super) type R<T> = std::result::Result<T, Why>;

/// The width of the framing offsets in a container of `len` bytes.
pub(super) fn offset_size(len: usize) -> usize {
    match len as u64 {
        0 => 0,
        1..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xffff_ffff => 4,
        _ => 8,
    }
}

fn read_offset(b: &[u8], at: usize, size: usize) -> usize {
    let mut v: u64 = 0;
    for (i, &byte) in b[at..at + size].iter().enumerate() {
        v |= (byte as u64) << (8 * i);
    }
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// Zero padding from `from` up to the next multiple of `align` (within `limit`).
fn pad(c: &[u8], from: usize, align: usize, limit: usize, what: &str) -> R<usize> {
    let to = from.div_ceil(align) * align;
    if to > limit {
        return Err(format!("{what}: truncated (no room for its alignment)"));
    }
    if c[from..to].iter().any(|&b| b != 0) {
        return Err(format!("{what}: non-zero padding"));
    }
    Ok(to)
}

/// A tuple (or dict entry) being read member by member.
pub(super) struct Tuple<'a, 'w> {
    c: &'a [u8],
    what: &'w str,
    pos: usize,
    osz: usize,
    /// Framing offsets read so far (one per variable-size member but the last).
    frame: usize,
    /// Framing offsets in all.
    frames: usize,
    /// Where the framing offsets begin: the end of the last member.
    end: usize,
}

impl<'a, 'w> Tuple<'a, 'w> {
    /// A tuple of `c`'s bytes with `frames` framing offsets.
    pub(super) fn new(c: &'a [u8], frames: usize, what: &'w str) -> R<Tuple<'a, 'w>> {
        let osz = offset_size(c.len());
        let end = c
            .len()
            .checked_sub(osz * frames)
            .ok_or_else(|| format!("{what}: {} bytes, too short", c.len()))?;
        Ok(Tuple {
            c,
            what,
            pos: 0,
            osz,
            frame: 0,
            frames,
            end,
        })
    }

    fn fixed(&mut self, n: usize, name: &str) -> R<&'a [u8]> {
        let what = format!("{}: {name}", self.what);
        let at = pad(self.c, self.pos, n, self.end, &what)?;
        if n > self.end - at {
            return Err(format!("{what}: truncated"));
        }
        self.pos = at + n;
        Ok(&self.c[at..at + n])
    }

    pub(super) fn u32(&mut self, name: &str) -> R<u32> {
        let b = self.fixed(4, name)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(super) fn u64(&mut self, name: &str) -> R<u64> {
        let b = self.fixed(8, name)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A variable-size member (alignment 1: every such member of our types); `last` for the
    /// tuple's last member.
    pub(super) fn var(&mut self, last: bool, name: &str) -> R<&'a [u8]> {
        let what = format!("{}: {name}", self.what);
        let stop = if last {
            if self.frame != self.frames {
                return Err(format!("{what}: framing offsets left over"));
            }
            self.end
        } else {
            if self.frame >= self.frames {
                return Err(format!("{what}: no framing offset"));
            }
            self.frame += 1;
            read_offset(self.c, self.c.len() - self.osz * self.frame, self.osz)
        };
        if stop < self.pos || stop > self.end {
            return Err(format!(
                "{what}: framing offset {stop} out of bounds ({} to {})",
                self.pos, self.end
            ));
        }
        let s = &self.c[self.pos..stop];
        self.pos = stop;
        Ok(s)
    }

    /// The last member was read: nothing may be left.
    pub(super) fn finish(self) -> R<()> {
        if self.pos != self.end || self.frame != self.frames {
            return Err(format!(
                "{}: {} bytes left after its last member",
                self.what,
                self.end - self.pos
            ));
        }
        Ok(())
    }
}

/// The elements of an array of variable-size elements (alignment 1), at most `max`.
pub(super) fn array<'a>(c: &'a [u8], max: usize, what: &str) -> R<Vec<&'a [u8]>> {
    if c.is_empty() {
        return Ok(Vec::new());
    }
    let osz = offset_size(c.len());
    let table = read_offset(c, c.len() - osz, osz);
    if table > c.len() - osz {
        return Err(format!("{what}: framing offset {table} out of bounds"));
    }
    let table_len = c.len() - table;
    if table_len % osz != 0 {
        return Err(format!(
            "{what}: {table_len} bytes of framing offsets, not a multiple of {osz}"
        ));
    }
    let n = table_len / osz;
    if n > max {
        return Err(format!("{what}: {n} elements (more than {max})"));
    }
    let mut out = Vec::with_capacity(n);
    let mut start = 0;
    for i in 0..n {
        let end = read_offset(c, table + i * osz, osz);
        if end < start || end > table {
            return Err(format!(
                "{what}: element {i} ends at {end}, out of bounds ({start} to {table})"
            ));
        }
        out.push(&c[start..end]);
        start = end;
    }
    if start != table {
        return Err(format!(
            "{what}: {} bytes after its last element",
            table - start
        ));
    }
    Ok(out)
}

/// A string (`s`): UTF-8, NUL-terminated, no other NUL, at most `max` bytes.
pub(super) fn string(b: &[u8], max: usize, what: &str) -> R<String> {
    let Some((&0, body)) = b.split_last() else {
        return Err(format!("{what}: string without its NUL"));
    };
    if body.len() > max {
        return Err(format!("{what}: {} bytes (more than {max})", body.len()));
    }
    if body.contains(&0) {
        return Err(format!("{what}: NUL inside a string"));
    }
    std::str::from_utf8(body)
        .map(str::to_string)
        .map_err(|_| format!("{what}: not UTF-8"))
}

/// A writer of the same types (the encoder of tests and the fuzzer).
#[derive(Debug, Default)]
pub(super) struct TupleWriter {
    pub(super) buf: Vec<u8>,
    ends: Vec<usize>,
}

impl TupleWriter {
    fn align(&mut self, a: usize) {
        while self.buf.len() % a != 0 {
            self.buf.push(0);
        }
    }
    pub(super) fn u32(&mut self, v: u32) -> &mut Self {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub(super) fn u64(&mut self, v: u64) -> &mut Self {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A variable-size member; `last` for the tuple's last member (no framing offset).
    pub(super) fn var(&mut self, b: &[u8], last: bool) -> &mut Self {
        self.buf.extend_from_slice(b);
        if !last {
            self.ends.push(self.buf.len());
        }
        self
    }
    /// The tuple's bytes, framing offsets (reversed) appended.
    pub(super) fn finish(&mut self) -> Vec<u8> {
        let ends: Vec<usize> = self.ends.iter().rev().copied().collect();
        frame(std::mem::take(&mut self.buf), &ends)
    }
}

/// `body` followed by `ends` as framing offsets of the smallest width that addresses the
/// whole (GLib's choice: the width for the total size, offsets included).
fn frame(mut body: Vec<u8>, ends: &[usize]) -> Vec<u8> {
    if ends.is_empty() {
        return body;
    }
    let mut osz = 1;
    while offset_size(body.len() + osz * ends.len()) != osz {
        osz *= 2;
    }
    for &e in ends {
        body.extend_from_slice(&(e as u64).to_le_bytes()[..osz]);
    }
    body
}

/// An array of variable-size elements.
pub(super) fn write_array(elements: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut ends = Vec::with_capacity(elements.len());
    for e in elements {
        body.extend_from_slice(e);
        ends.push(body.len());
    }
    frame(body, &ends)
}

/// A string's bytes with its NUL.
pub(super) fn write_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_widths() {
        assert_eq!(offset_size(0), 0);
        assert_eq!(offset_size(255), 1);
        assert_eq!(offset_size(256), 2);
        assert_eq!(offset_size(65_535), 2);
        assert_eq!(offset_size(65_536), 4);
    }

    #[test]
    fn a_dict_entry_round_trips_and_framing_is_glibs() {
        // {ss} "a" => "bc": GLib serializes it as 61 00 62 63 00 02.
        let e = TupleWriter::default()
            .var(&write_string("a"), false)
            .var(&write_string("bc"), true)
            .finish();
        assert_eq!(e, b"a\0bc\0\x02");
        let mut t = Tuple::new(&e, 1, "entry").unwrap();
        assert_eq!(string(t.var(false, "k").unwrap(), 9, "k").unwrap(), "a");
        assert_eq!(string(t.var(true, "v").unwrap(), 9, "v").unwrap(), "bc");
        t.finish().unwrap();
        let a = write_array(&[e.clone(), e.clone()]);
        assert_eq!(array(&a, 2, "a").unwrap(), vec![&e[..], &e[..]]);
        assert!(array(&a, 1, "a").unwrap_err().contains("more than 1"));
    }

    #[test]
    fn bad_strings_and_offsets_are_refused() {
        assert!(string(b"ab", 9, "s").is_err());
        assert!(string(b"a\0b\0", 9, "s").is_err());
        assert!(string(b"\xff\0", 9, "s").is_err());
        assert!(string(b"abc\0", 2, "s").is_err());
        // An element ending past the offsets table.
        assert!(array(b"ab\x05\x02", 9, "a").is_err());
        // Decreasing offsets.
        assert!(array(b"abc\x02\x01", 9, "a").is_err());
        // Non-zero padding before a u32.
        let mut t = Tuple::new(b"a\0\x01\0\x05\0\0\0\x02", 1, "t").unwrap();
        t.var(false, "s").unwrap();
        assert!(t.u32("u").unwrap_err().contains("padding"));
    }
}
