//! Writing a file keyring, for the tests and the fuzzer (the real files come from libsecret
//! and oo7). Byte for byte what libsecret writes for the same contents, except the IVs, which
//! are derived from the key and the item's place instead of random (so a file is reproducible).

use super::crypto::{self, Key};
use super::gvariant::{write_array, write_string, TupleWriter};
use super::{derive_key, Keyring, MAGIC, VERSION};

/// The file for `k` (its salt, iteration count, times and items) under `password`.
pub fn encode(k: &Keyring, password: &[u8]) -> Vec<u8> {
    encode_with(k, &derive_key(password, &k.salt, k.iterations))
}

/// [`encode`] with the key already derived (from `k`'s salt and iteration count, or not: a
/// file whose items do not open with its own password).
pub fn encode_with(k: &Keyring, key: &Key) -> Vec<u8> {
    let mut items = Vec::with_capacity(k.items.len());
    for (i, it) in k.items.iter().enumerate() {
        let attrs: Vec<Vec<u8>> = it
            .attributes
            .iter()
            .map(|(n, v)| {
                TupleWriter::default()
                    .var(&write_string(n), false)
                    .var(&write_string(v), true)
                    .finish()
            })
            .collect();
        let plain = zeroize::Zeroizing::new(
            TupleWriter::default()
                .var(&write_array(&attrs), false)
                .var(&write_string(&it.label), false)
                .u64(time(it.created))
                .u64(time(it.modified))
                .var(&it.secret, true)
                .finish(),
        );
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&crypto::mac(key, &(i as u64).to_le_bytes())[..16]);
        let mut blob = crypto::encrypt(key, &iv, &plain);
        blob.extend_from_slice(&iv);
        let tag = crypto::mac(key, &blob);
        blob.extend_from_slice(&tag);
        let hashed: Vec<Vec<u8>> = it
            .attributes
            .iter()
            .map(|(n, v)| {
                TupleWriter::default()
                    .var(&write_string(n), false)
                    .var(&crypto::mac(key, v.as_bytes()), true)
                    .finish()
            })
            .collect();
        items.push(
            TupleWriter::default()
                .var(&write_array(&hashed), false)
                .var(&blob, true)
                .finish(),
        );
    }
    let body = TupleWriter::default()
        .u32(k.salt.len() as u32)
        .var(&k.salt, false)
        .u32(k.iterations)
        .u64(k.modified)
        .u32(k.usage_count)
        .var(&write_array(&items), true)
        .finish();
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION);
    out.extend_from_slice(&body);
    out
}

/// An item's time as the file has it (none: 0).
fn time(t: Option<i64>) -> u64 {
    t.and_then(|t| u64::try_from(t).ok()).unwrap_or(0)
}
