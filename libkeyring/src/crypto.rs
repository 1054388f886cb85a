//! The cryptography of the store, in one place: the master key, Argon2id key derivation for
//! keyslots, HKDF subkeys, XChaCha20-Poly1305 sealing, and the keyed hash that names entries.

use chacha20poly1305::aead::{Aead, AeadInPlace, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// Length of the master key and of every subkey.
pub const KEY_LEN: usize = 32;
/// XChaCha20-Poly1305 nonce length.
pub const NONCE_LEN: usize = 24;
/// Poly1305 tag length.
pub const TAG_LEN: usize = 16;
/// Argon2 salt length.
pub const SALT_LEN: usize = 16;

/// Fill a buffer from the OS random source.
pub fn random<const N: usize>() -> Result<[u8; N]> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|e| Error::Io {
        what: "read random bytes".into(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    Ok(out)
}

/// The store's random master key. It lives in the kernel key while unlocked; in this process it
/// exists only for the duration of one operation and is wiped on drop. No Debug output.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct MasterKey([u8; KEY_LEN]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A fresh random master key.
    pub fn generate() -> Result<MasterKey> {
        random().map(MasterKey)
    }

    /// Rebuild from a kernel key payload; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<MasterKey> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(MasterKey)
    }

    /// The raw bytes, to install into the kernel keyring.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// Derive the subkey for one purpose: HKDF-SHA256(salt = store id, ikm = master key,
    /// info = "keyringrs v1 " + purpose).
    pub fn subkey(&self, store_id: &[u8], purpose: Purpose) -> SubKey {
        let [k] = self.subkeys(store_id, [purpose]);
        k
    }

    /// Several subkeys from one HKDF extract (the same values as [`MasterKey::subkey`]).
    pub fn subkeys<const N: usize>(&self, store_id: &[u8], purposes: [Purpose; N]) -> [SubKey; N] {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(store_id), &self.0);
        purposes.map(|purpose| {
            let mut out = SubKey([0u8; KEY_LEN]);
            // 32 bytes is always a valid HKDF-SHA256 output length.
            hk.expand_multi_info(&[b"keyringrs v1 ".as_slice(), purpose.label()], &mut out.0)
                .unwrap_or_else(|_| unreachable!("32-byte HKDF output"));
            out
        })
    }
}

/// The distinct purposes a subkey is derived for (the HKDF info strings of docs/FORMAT.md).
#[derive(Debug, Clone, Copy)]
pub enum Purpose {
    /// HMAC key that turns (service, username) into an entry's file name.
    EntryName,
    /// AEAD key for entry files.
    EntrySeal,
    /// HMAC key over the header.
    HeaderMac,
    /// HMAC key of the blind attribute index's tokens (crate::format::index).
    IndexToken,
    /// HMAC key over the blind attribute index's records.
    IndexMac,
    /// HMAC key over the write journal's records (crate::format::journal).
    JournalMac,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::EntryName => b"entry-name",
            Purpose::EntrySeal => b"entry-seal",
            Purpose::HeaderMac => b"header-mac",
            Purpose::IndexToken => b"index-token",
            Purpose::IndexMac => b"index-mac",
            Purpose::JournalMac => b"journal-mac",
        }
    }
}

/// A 32-byte key derived from the master key (or from a password), wiped on drop.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SubKey([u8; KEY_LEN]);

impl std::fmt::Debug for SubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SubKey(..)")
    }
}

impl SubKey {
    /// A key of these bytes (a TPM2 slot's, which the TPM unsealed).
    pub(crate) fn from_bytes(bytes: &[u8; KEY_LEN]) -> SubKey {
        SubKey(*bytes)
    }

    /// HMAC-SHA256 of the concatenation of `parts`.
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    /// Constant-time check of an HMAC-SHA256 tag.
    pub fn verify_mac(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        for p in parts {
            m.update(p);
        }
        m.verify_slice(tag).is_ok()
    }

    /// XChaCha20-Poly1305 encrypt `plaintext` with a fresh random nonce; returns (nonce, ct||tag).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        let nonce: [u8; NONCE_LEN] = random()?;
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| Error::InvalidInput("plaintext too long to encrypt".into()))?;
        Ok((nonce, ct))
    }

    /// Seal the `len`-byte plaintext that `fill` appends to the buffer it is given. Small
    /// plaintexts (every ordinary entry) are built in a per-thread scratch buffer that is
    /// mlocked once and wiped after each use (no allocation, no mlock call); larger ones in a
    /// fresh mlocked buffer, wiped on drop. `fill` must append exactly `len` bytes.
    pub fn seal_with(
        &self,
        aad: &[u8],
        len: usize,
        fill: impl FnOnce(&mut Vec<u8>),
    ) -> Result<([u8; NONCE_LEN], Vec<u8>)> {
        const SCRATCH: usize = 4096;
        thread_local! {
            static BUF: std::cell::RefCell<Option<Vec<u8>>> = const { std::cell::RefCell::new(None) };
        }
        let mut fill = Some(fill);
        if len <= SCRATCH {
            let fast = BUF.try_with(|cell| {
                let mut guard = cell.try_borrow_mut().ok()?;
                let buf = guard.get_or_insert_with(|| {
                    let mut b = vec![0u8; SCRATCH];
                    crate::sys::lock_memory(&b);
                    b.clear();
                    b
                });
                (fill.take()?)(buf);
                debug_assert_eq!(buf.len(), len);
                debug_assert_eq!(buf.capacity(), SCRATCH, "the scratch buffer grew");
                let r = self.seal(aad, buf);
                buf.zeroize();
                Some(r)
            });
            if let Ok(Some(r)) = fast {
                return r;
            }
        }
        // Large, re-entered or during thread teardown: a buffer of its own.
        let mut buf = Zeroizing::new(Vec::with_capacity(len));
        if let Some(fill) = fill.take() {
            fill(&mut buf);
        }
        crate::sys::lock_memory(&buf);
        self.seal(aad, &buf)
    }

    /// Decrypt and authenticate; `None` if anything (key, nonce, aad, ciphertext) is wrong.
    /// The plaintext is produced in place in one mlocked, zeroize-on-drop buffer.
    pub fn open(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct: &[u8],
    ) -> Option<Zeroizing<Vec<u8>>> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
        let mut buf = Zeroizing::new(Vec::with_capacity(ct.len()));
        buf.extend_from_slice(ct);
        crate::sys::lock_memory(&buf);
        cipher
            .decrypt_in_place(XNonce::from_slice(nonce), aad, &mut *buf)
            .ok()
            .map(|()| buf)
    }

    /// Like [`SubKey::open`], but hands the plaintext to `f` instead of returning it. Small
    /// ciphertexts (every ordinary entry) are decrypted in a per-thread scratch buffer that is
    /// mlocked once and wiped after each use, so the read path makes no allocation and no mlock
    /// call here; larger ones go through [`SubKey::open`].
    pub fn open_with<R>(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        ct: &[u8],
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        const SCRATCH: usize = 4096;
        thread_local! {
            static BUF: std::cell::RefCell<Option<Box<[u8; SCRATCH]>>> =
                const { std::cell::RefCell::new(None) };
        }
        let n = ct.len().checked_sub(TAG_LEN)?;
        if ct.len() > SCRATCH {
            return self.open(nonce, aad, ct).map(|pt| f(&pt));
        }
        let mut f = Some(f);
        let fast = BUF.try_with(|cell| {
            let mut guard = cell.try_borrow_mut().ok()?;
            let buf = guard.get_or_insert_with(|| {
                let b = Box::new([0u8; SCRATCH]);
                crate::sys::lock_memory(&b[..]);
                b
            });
            let (msg, tag) = buf[..ct.len()].split_at_mut(n);
            msg.copy_from_slice(&ct[..n]);
            tag.copy_from_slice(&ct[n..]);
            let cipher = XChaCha20Poly1305::new((&self.0).into());
            let ok = cipher
                .decrypt_in_place_detached(XNonce::from_slice(nonce), aad, msg, (&*tag).into())
                .is_ok();
            let r = if ok { f.take().map(|f| f(msg)) } else { None };
            buf[..ct.len()].zeroize();
            Some(r)
        });
        match fast {
            Ok(Some(r)) => r,
            // Re-entered or during thread teardown: the allocating path.
            _ => {
                let f = f.take()?;
                self.open(nonce, aad, ct).map(|pt| f(&pt))
            }
        }
    }
}

/// Argon2id cost parameters. Only constructible within bounds, so a hostile header can never
/// make us allocate gigabytes or spin for hours: parse, don't validate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    memory_kib: u32,
    time: u32,
    lanes: u32,
}

impl KdfParams {
    /// Smallest memory we accept (KiB). Small values exist for tests, through the same options.
    pub const MIN_MEMORY_KIB: u32 = 64;
    /// Largest memory we accept (KiB): 1 GiB.
    pub const MAX_MEMORY_KIB: u32 = 1 << 20;
    /// Largest iteration count we accept.
    pub const MAX_TIME: u32 = 16;
    /// Largest memory × iterations we accept (KiB): 4 GiB of passes, a few seconds here. A header
    /// someone else wrote can make one unlock cost at most this much, never minutes.
    pub const MAX_COST: u64 = 4 << 20;
    /// Largest lane count we accept.
    pub const MAX_LANES: u32 = 16;

    /// The defaults of DESIGN.md: 64 MiB, t = 3, p = 1.
    pub const DEFAULT: KdfParams = KdfParams {
        memory_kib: 64 * 1024,
        time: 3,
        lanes: 1,
    };

    /// Bounded constructor.
    pub fn new(memory_kib: u32, time: u32, lanes: u32) -> Result<KdfParams> {
        if !(1..=Self::MAX_LANES).contains(&lanes) {
            return Err(Error::InvalidInput(format!(
                "Argon2id lanes {lanes} outside 1..={}",
                Self::MAX_LANES
            )));
        }
        let min_mem = Self::MIN_MEMORY_KIB.max(8 * lanes);
        if !(min_mem..=Self::MAX_MEMORY_KIB).contains(&memory_kib) {
            return Err(Error::InvalidInput(format!(
                "Argon2id memory {memory_kib} KiB outside {min_mem}..={} KiB",
                Self::MAX_MEMORY_KIB
            )));
        }
        if !(1..=Self::MAX_TIME).contains(&time) {
            return Err(Error::InvalidInput(format!(
                "Argon2id time cost {time} outside 1..={}",
                Self::MAX_TIME
            )));
        }
        if memory_kib as u64 * time as u64 > Self::MAX_COST {
            return Err(Error::InvalidInput(format!(
                "Argon2id cost {memory_kib} KiB × {time} exceeds {} KiB",
                Self::MAX_COST
            )));
        }
        Ok(KdfParams {
            memory_kib,
            time,
            lanes,
        })
    }

    pub fn memory_kib(&self) -> u32 {
        self.memory_kib
    }
    pub fn time(&self) -> u32 {
        self.time
    }
    pub fn lanes(&self) -> u32 {
        self.lanes
    }

    /// Memory × passes (KiB): what one derivation costs, for budgets.
    pub fn cost(&self) -> u64 {
        self.memory_kib as u64 * self.time as u64
    }

    /// The larger of each parameter of `self` and `other`, so an upgrade never lowers a cost;
    /// passes are trimmed if memory × passes would exceed [`KdfParams::MAX_COST`].
    pub fn max_with(&self, other: &KdfParams) -> KdfParams {
        let memory_kib = self.memory_kib.max(other.memory_kib);
        let lanes = self.lanes.max(other.lanes);
        let most = (Self::MAX_COST / memory_kib as u64).max(1) as u32;
        let time = self.time.max(other.time).min(most);
        KdfParams {
            memory_kib,
            time,
            lanes,
        }
    }

    /// Is `self` weaker than `target` in any dimension (so a rewrap should upgrade it)?
    pub fn weaker_than(&self, target: &KdfParams) -> bool {
        self.memory_kib < target.memory_kib || self.time < target.time
    }

    /// Argon2id(password, salt) → 32-byte key-encryption key.
    pub fn derive(&self, password: &[u8], salt: &[u8; SALT_LEN]) -> Result<SubKey> {
        let params = argon2::Params::new(self.memory_kib, self.time, self.lanes, Some(KEY_LEN))
            .map_err(|e| Error::InvalidInput(format!("Argon2id parameters: {e}")))?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = SubKey([0u8; KEY_LEN]);
        argon
            .hash_password_into(password, salt, &mut out.0)
            .map_err(|e| Error::InvalidInput(format!("Argon2id: {e}")))?;
        Ok(out)
    }
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams::DEFAULT
    }
}

/// SHA-256 of the concatenation of `parts` (the header checksum, unkeyed).
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Hashes keys that are already uniformly random — entry names and index tokens, outputs of
/// HMAC-SHA256 under the store's keys — by their first 8 bytes: no SipHash round per lookup.
/// Nobody without the key can choose such values, so there is no flooding to defend against.
#[derive(Debug, Clone, Copy, Default)]
pub struct KeyedHash;

/// The hasher of [`KeyedHash`].
#[derive(Debug, Default)]
pub struct FirstBytes(u64);

impl std::hash::Hasher for FirstBytes {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut b = [0u8; 8];
        let n = bytes.len().min(8);
        b[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(b);
    }
    fn write_usize(&mut self, _: usize) {}
}

impl std::hash::BuildHasher for KeyedHash {
    type Hasher = FirstBytes;
    fn build_hasher(&self) -> FirstBytes {
        FirstBytes(0)
    }
}

/// A map keyed by HMAC outputs.
pub type KeyedMap<K, V> = std::collections::HashMap<K, V, KeyedHash>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kdf_params_refuse_hostile_values() {
        assert!(KdfParams::new(u32::MAX, 3, 1).is_err());
        assert!(KdfParams::new(65536, 1_000_000, 1).is_err());
        assert!(KdfParams::new(65536, 3, 255).is_err());
        assert!(KdfParams::new(8, 1, 1).is_err());
        assert!(KdfParams::new(65536, 0, 1).is_err());
        assert!(
            KdfParams::new(1 << 20, 16, 1).is_err(),
            "memory × time budget"
        );
        assert!(KdfParams::new(1 << 20, 4, 1).is_ok());
        assert_eq!(KdfParams::new(65536, 3, 1).unwrap(), KdfParams::DEFAULT);
    }

    #[test]
    fn seal_then_open_roundtrips_and_binds_aad() {
        let k = MasterKey::generate()
            .unwrap()
            .subkey(b"id", Purpose::EntrySeal);
        let (n, ct) = k.seal(b"aad", b"secret").unwrap();
        assert_eq!(&**k.open(&n, b"aad", &ct).unwrap(), b"secret");
        assert!(k.open(&n, b"other", &ct).is_none());
    }

    #[test]
    fn subkeys_differ_by_purpose_and_store() {
        let m = MasterKey::generate().unwrap();
        let a = m.subkey(b"s1", Purpose::EntryName).mac(&[b"x"]);
        let b = m.subkey(b"s1", Purpose::EntrySeal).mac(&[b"x"]);
        let c = m.subkey(b"s2", Purpose::EntryName).mac(&[b"x"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn debug_never_prints_key_bytes() {
        let m = MasterKey::from_slice(&[0xAB; 32]).unwrap();
        assert_eq!(format!("{m:?}"), "MasterKey(..)");
    }
}
