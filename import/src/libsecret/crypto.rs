//! The key and the items' encryption: PBKDF2-HMAC-SHA256 to a 16-byte key, HMAC-SHA256 (whole,
//! 32 bytes) of ciphertext‖IV and of each attribute value, AES-128-CBC with PKCS#7 padding.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Why, KEY_LEN, MAC_LEN};

type HmacSha256 = Hmac<Sha256>;

/// The key of a file: what both the items' cipher and every MAC use.
pub struct Key(pub(super) Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(<16 bytes>)")
    }
}

/// PBKDF2 (RFC 8018) with HMAC-SHA256, `iterations` rounds, one 16-byte block (the first half
/// of T_1 = U_1 ^ ... ^ U_c, U_1 = HMAC(P, S ‖ INT(1)), U_i = HMAC(P, U_{i-1})).
pub fn derive_key(password: &[u8], salt: &[u8], iterations: u32) -> Key {
    let keyed = HmacSha256::new_from_slice(password).expect("HMAC takes any key length");
    let mut mac = keyed.clone();
    mac.update(salt);
    mac.update(&1u32.to_be_bytes());
    let mut u = Zeroizing::new([0u8; 32]);
    u.copy_from_slice(&mac.finalize().into_bytes());
    let mut t = Zeroizing::new(*u);
    for _ in 1..iterations {
        let mut mac = keyed.clone();
        mac.update(&u[..]);
        u.copy_from_slice(&mac.finalize().into_bytes());
        for (a, b) in t.iter_mut().zip(u.iter()) {
            *a ^= b;
        }
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&t[..KEY_LEN]);
    Key(key)
}

/// HMAC-SHA256 of `data` under the file's key.
pub fn mac(key: &Key, data: &[u8]) -> [u8; MAC_LEN] {
    let mut m = HmacSha256::new_from_slice(&key.0[..]).expect("16-byte key");
    m.update(data);
    m.finalize().into_bytes().into()
}

/// Is `tag` the MAC of `data` (compared in constant time)?
pub fn verify(key: &Key, data: &[u8], tag: &[u8]) -> bool {
    let mut m = HmacSha256::new_from_slice(&key.0[..]).expect("16-byte key");
    m.update(data);
    m.verify_slice(tag).is_ok()
}

/// Decrypt (AES-128-CBC) and strip the PKCS#7 padding, which must be whole: 1 to 16 bytes,
/// each the pad length (libsecret strips the last byte's count unchecked; a bad pad in an
/// authenticated blob means a broken writer, refused).
pub fn decrypt(key: &Key, iv: &[u8], ct: &[u8]) -> std::result::Result<Zeroizing<Vec<u8>>, Why> {
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    if ct.is_empty() || ct.len() % 16 != 0 {
        return Err(format!(
            "encrypted part of {} bytes, not a positive multiple of 16",
            ct.len()
        ));
    }
    let mut plain = Zeroizing::new(ct.to_vec());
    cbc::Decryptor::<aes::Aes128>::new_from_slices(&key.0[..], iv)
        .map_err(|_| Why::from("bad IV length"))?
        .decrypt_padded_mut::<NoPadding>(&mut plain)
        .map_err(|_| Why::from("encrypted part is not whole blocks"))?;
    let n = plain[plain.len() - 1] as usize;
    if n == 0 || n > 16 || plain[plain.len() - n..].iter().any(|&b| b as usize != n) {
        return Err("bad PKCS#7 padding after decryption".into());
    }
    let len = plain.len() - n;
    plain.truncate(len);
    Ok(plain)
}

/// Encrypt with PKCS#7 padding (the encoder).
pub fn encrypt(key: &Key, iv: &[u8; 16], plain: &[u8]) -> Vec<u8> {
    use cbc::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
    cbc::Encryptor::<aes::Aes128>::new_from_slices(&key.0[..], iv)
        .expect("16-byte key and IV")
        .encrypt_padded_vec_mut::<Pkcs7>(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pbkdf2_matches_rfc_7914s_vector() {
        // RFC 7914 section 11: PBKDF2-HMAC-SHA256 (P="passwd", S="salt", c=1, dkLen=64).
        let k = derive_key(b"passwd", b"salt", 1);
        assert_eq!(
            k.0[..],
            [
                0x55, 0xac, 0x04, 0x6e, 0x56, 0xe3, 0x08, 0x9f, 0xec, 0x16, 0x91, 0xc2, 0x25, 0x44,
                0xb6, 0x05
            ]
        );
        // (P="Password", S="NaCl", c=80000): first 16 bytes.
        let k = derive_key(b"Password", b"NaCl", 80_000);
        assert_eq!(
            k.0[..],
            [
                0x4d, 0xdc, 0xd8, 0xf6, 0x0b, 0x98, 0xbe, 0x21, 0x83, 0x0c, 0xee, 0x5e, 0xf2, 0x27,
                0x01, 0xf9
            ]
        );
    }

    #[test]
    fn padding_round_trips_and_bad_padding_is_refused() {
        let k = derive_key(b"k", b"s", 1);
        let iv = [7u8; 16];
        for n in 0..40 {
            let p: Vec<u8> = (0..n as u8).collect();
            let c = encrypt(&k, &iv, &p);
            assert_eq!(c.len(), (n / 16 + 1) * 16);
            assert_eq!(&decrypt(&k, &iv, &c).unwrap()[..], &p[..]);
        }
        // A block of zeros decrypts to garbage padding: refused, never a panic.
        for b in 0..=255u8 {
            let _ = decrypt(&k, &[b; 16], &[b; 16]);
        }
        assert!(decrypt(&k, &iv, &[0; 15]).is_err());
        assert!(decrypt(&k, &iv, &[]).is_err());
    }
}
