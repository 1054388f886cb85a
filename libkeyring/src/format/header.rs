//! docs/FORMAT.md "header": the store header file (magic, version, flags, store id, keyslots,
//! MAC, checksum). Parsing is bounded and total: any input gives a value or a reason.

use super::slots::{Keyslot, SlotKey, SLOT_PASSWORD, SLOT_TPM2};
use super::{Malformed, Reader, StoreId, STORE_ID_LEN, VERSION, VERSION_1};
use crate::crypto::{self, MasterKey, Purpose};

/// First 16 bytes of a header file.
pub const HEADER_MAGIC: &[u8; 16] = b"keyringrs-store\n";
/// At most this many keyslots.
pub const MAX_KEYSLOTS: usize = 8;
/// Header files larger than this are refused before reading.
pub const MAX_HEADER_LEN: u64 = 4096;

const FIXED_LEN: usize = 16 + 2 + 2 + STORE_ID_LEN + 1; // magic, version, flags, id, slot count
const MAC_LEN: usize = 32;
const SUM_LEN: usize = 32;

/// The parsed header. Everything in it is public; its integrity is checked with the checksum
/// (any reader) and the MAC (whoever holds the master key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// 1 or 2 ([`VERSION`]): what the header says; kept when the header is rewritten.
    pub version: u16,
    pub id: StoreId,
    pub slots: Vec<Keyslot>,
}

impl Header {
    /// magic, version 1, flags, store id: the prefix bound into every keyslot. The version
    /// field of this AAD is always 1, whatever the header's version: a keyslot wrapped in a
    /// version 1 store stays valid after the migration to version 2 (its secret, e.g. a
    /// recovery key, is not at hand then). The header MAC covers the real version.
    pub fn prefix(&self) -> Vec<u8> {
        self.prefix_with(VERSION_1)
    }

    fn prefix_with(&self, version: u16) -> Vec<u8> {
        let mut v = Vec::with_capacity(FIXED_LEN - 1);
        v.extend_from_slice(HEADER_MAGIC);
        v.extend_from_slice(&version.to_le_bytes());
        v.extend_from_slice(&0u16.to_le_bytes());
        v.extend_from_slice(&self.id.0);
        v
    }

    /// Everything the MAC covers: magic, the header's version, flags, id, slot count and the
    /// slots.
    fn body(&self) -> Vec<u8> {
        let mut v = self.prefix_with(self.version);
        v.push(self.slots.len() as u8);
        for s in &self.slots {
            v.extend_from_slice(&s.params_bytes());
            v.extend_from_slice(&s.nonce);
            v.extend_from_slice(&s.wrapped);
        }
        v
    }

    /// Serialize, with the MAC under `master` and the checksum.
    pub fn encode(&self, master: &MasterKey) -> Vec<u8> {
        let mut v = self.body();
        let mac = master.subkey(&self.id.0, Purpose::HeaderMac).mac(&[&v]);
        v.extend_from_slice(&mac);
        let sum = crypto::sha256(&[&v]);
        v.extend_from_slice(&sum);
        v
    }

    /// Parse and check the checksum. The MAC is checked by [`Header::verify_mac`] once the
    /// master key is known. Errors distinguish an unknown version from damage.
    pub fn decode(bytes: &[u8]) -> Result<(Header, [u8; MAC_LEN]), HeaderError> {
        let mut r = Reader::new(bytes);
        let magic = r.take(16, "magic").map_err(HeaderError::Malformed)?;
        if magic != HEADER_MAGIC {
            return Err(HeaderError::Malformed(
                "not a keyringrs store header (bad magic)".into(),
            ));
        }
        let version = r.u16("version").map_err(HeaderError::Malformed)?;
        if version != VERSION && version != VERSION_1 {
            return Err(HeaderError::UnknownVersion(version));
        }
        if bytes.len() < SUM_LEN + FIXED_LEN {
            return Err(HeaderError::Malformed("truncated header".into()));
        }
        let (content, sum) = bytes.split_at(bytes.len() - SUM_LEN);
        if crypto::sha256(&[content]) != sum {
            return Err(HeaderError::Malformed(
                "header checksum mismatch (damaged or altered)".into(),
            ));
        }
        let parse = |r: &mut Reader| -> Result<(Header, [u8; MAC_LEN]), Malformed> {
            let flags = r.u16("flags")?;
            if flags != 0 {
                return Err(format!("unknown header flags {flags:#06x}"));
            }
            let id = StoreId(r.array("store id")?);
            let n = r.u8("keyslot count")? as usize;
            if n == 0 || n > MAX_KEYSLOTS {
                return Err(format!("keyslot count {n} outside 1..={MAX_KEYSLOTS}"));
            }
            let mut slots = Vec::with_capacity(n);
            for i in 0..n {
                let what = format!("keyslot {i}");
                let kind = r.u8(&what)?;
                if !(SLOT_PASSWORD..=SLOT_TPM2).contains(&kind) {
                    return Err(format!("{what}: unknown kind {kind}"));
                }
                slots.push(Keyslot {
                    kind,
                    key: SlotKey::decode(kind, r, &what)?,
                    nonce: r.array(&what)?,
                    wrapped: r.array(&what)?,
                });
            }
            let mac = r.array("header MAC")?;
            r.finish("header MAC")?;
            Ok((Header { version, id, slots }, mac))
        };
        let mut r = Reader {
            buf: content,
            pos: r.pos,
        };
        parse(&mut r).map_err(HeaderError::Malformed)
    }

    /// Check the header MAC with the master key (constant time).
    pub fn verify_mac(&self, master: &MasterKey, mac: &[u8; MAC_LEN]) -> bool {
        master
            .subkey(&self.id.0, Purpose::HeaderMac)
            .verify_mac(&[&self.body()], mac)
    }
}

/// Why a header did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderError {
    /// A version this code does not know: never guess.
    UnknownVersion(u16),
    /// Damaged, truncated or not a header.
    Malformed(Malformed),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::KdfParams;
    use crate::format::slots::SLOT_LEN;

    fn small() -> KdfParams {
        KdfParams::new(64, 1, 1).unwrap()
    }

    fn header(master: &MasterKey) -> Header {
        let mut h = Header {
            version: VERSION,
            id: StoreId([7; 16]),
            slots: vec![],
        };
        let slot = Keyslot::wrap(&h.prefix(), 0, master, b"pw", small()).unwrap();
        h.slots.push(slot);
        h
    }

    #[test]
    fn header_roundtrip_and_unwrap() {
        let m = MasterKey::generate().unwrap();
        let h = header(&m);
        let bytes = h.encode(&m);
        assert_eq!(bytes.len(), FIXED_LEN + SLOT_LEN + MAC_LEN + SUM_LEN);
        let (h2, mac) = Header::decode(&bytes).unwrap();
        assert_eq!(h, h2);
        assert!(h2.verify_mac(&m, &mac));
        let got = h2.slots[0].unwrap(&h2.prefix(), 0, b"pw").unwrap().unwrap();
        assert_eq!(got.as_bytes(), m.as_bytes());
        assert!(h2.slots[0]
            .unwrap(&h2.prefix(), 0, b"nope")
            .unwrap()
            .is_none());
    }

    #[test]
    fn every_truncation_and_flip_of_a_header_is_an_error_not_a_panic() {
        let m = MasterKey::generate().unwrap();
        let bytes = header(&m).encode(&m);
        for n in 0..bytes.len() {
            assert!(Header::decode(&bytes[..n]).is_err(), "truncated at {n}");
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            assert!(Header::decode(&b).is_err(), "flip at {i}");
        }
    }

    #[test]
    fn unknown_version_is_its_own_error() {
        let m = MasterKey::generate().unwrap();
        let mut bytes = header(&m).encode(&m);
        bytes[16] = 3;
        assert_eq!(Header::decode(&bytes), Err(HeaderError::UnknownVersion(3)));
    }
}
