//! Transfer encryption of Secret Service sessions.
//!
//! - `plain`: secrets travel unencrypted (parameters empty).
//! - `dh-ietf1024-sha256-aes128-cbc-pkcs7`: Diffie-Hellman in the 1024-bit MODP group 2 of
//!   RFC 2409 (generator 2); the shared secret, big-endian and left-padded to 128 bytes, goes
//!   through HKDF-SHA256 with an empty salt and empty info to a 16-byte AES-128 key; each secret
//!   is AES-128-CBC with PKCS#7 padding, its random 16-byte IV in `parameters`.
//!
//! The client side ([`ClientDh`]) is here too, for the tests and tools of this crate.
//!
//! The same construction in the 1536-bit MODP group 5 of RFC 3526 (shared secret padded to
//! 192 bytes) is gcr's secret exchange `sx-aes-1`, which carries the password typed into the
//! desktop's system prompt ([`Exchange`], used by prompter/gcr.rs).

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use num_bigint::BigUint;
use zeroize::Zeroizing;

/// The algorithm names of the specification.
pub const PLAIN: &str = "plain";
pub const DH_AES: &str = "dh-ietf1024-sha256-aes128-cbc-pkcs7";

/// RFC 2409 section 6.2, the second Oakley group (1024-bit MODP).
const MODP_1024_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1\
29024E088A67CC74020BBEA63B139B22514A08798E3404DD\
EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245\
E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381\
FFFFFFFFFFFFFFFF";

/// RFC 3526 section 2, the 1536-bit MODP group 5 (gcr's `ietf-ike-grp-modp-1536`).
const MODP_1536_HEX: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD1\
29024E088A67CC74020BBEA63B139B22514A08798E3404DD\
EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245\
E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED\
EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3D\
C2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F\
83655D23DCA3AD961C62F356208552BB9ED529077096966D\
670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF";

/// A MODP group (generator 2): its prime and the prime's length in bytes.
#[derive(Clone, Copy)]
struct Group {
    prime_hex: &'static str,
    bytes: usize,
}

const MODP_1024: Group = Group {
    prime_hex: MODP_1024_HEX,
    bytes: 128,
};
const MODP_1536: Group = Group {
    prime_hex: MODP_1536_HEX,
    bytes: 192,
};

impl Group {
    fn prime(self) -> BigUint {
        BigUint::parse_bytes(self.prime_hex.as_bytes(), 16).expect("valid prime constant")
    }
}

/// A malformed peer key or ciphertext.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoError(pub String);

impl std::fmt::Display for CryptoError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b
}

fn to_padded(n: &BigUint, group: Group) -> Zeroizing<Vec<u8>> {
    let bytes = Zeroizing::new(n.to_bytes_be());
    let mut out = Zeroizing::new(vec![0u8; group.bytes.saturating_sub(bytes.len())]);
    out.extend_from_slice(&bytes);
    out
}

/// One side of the key agreement: a random private exponent and its public value.
struct KeyPair {
    group: Group,
    private: BigUint,
    public: BigUint,
}

impl KeyPair {
    fn generate(group: Group) -> KeyPair {
        let p = group.prime();
        // A random exponent of the group's size in [2, p-2]. (num-bigint's modpow is not
        // constant time; the exponent is fresh per session and only protects transfer on a bus
        // of the same user.)
        let mut bytes = Zeroizing::new(vec![0u8; group.bytes]);
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        let two = BigUint::from(2u32);
        let private = BigUint::from_bytes_be(&bytes) % (&p - 3u32) + &two;
        let public = two.modpow(&private, &p);
        KeyPair {
            group,
            private,
            public,
        }
    }

    /// The AES key shared with the peer whose public value is `peer` (big-endian bytes).
    fn agree(&self, peer: &[u8]) -> Result<Zeroizing<[u8; 16]>, CryptoError> {
        let p = self.group.prime();
        if peer.len() > self.group.bytes * 2 {
            return Err(CryptoError("public key too long".into()));
        }
        let y = BigUint::from_bytes_be(peer);
        // Reject 0, 1 and p-1 (and anything outside the group): they force a known secret.
        if y <= BigUint::from(1u32) || y >= &p - 1u32 {
            return Err(CryptoError(
                "public key outside the group (must be 1 < y < p-1)".into(),
            ));
        }
        let shared = to_padded(&y.modpow(&self.private, &p), self.group);
        let mut key = Zeroizing::new([0u8; 16]);
        hkdf::Hkdf::<sha2::Sha256>::new(None, &shared)
            .expand(&[], &mut *key)
            .expect("16 bytes is a valid HKDF-SHA256 output length");
        Ok(key)
    }
}

/// The symmetric side of an open session: `None` for plain.
#[derive(Clone)]
pub struct SessionKey(Option<Zeroizing<[u8; 16]>>);

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "SessionKey(aes128)"
        } else {
            "SessionKey(plain)"
        })
    }
}

type Enc = cbc::Encryptor<aes::Aes128>;
type Dec = cbc::Decryptor<aes::Aes128>;

impl SessionKey {
    pub fn plain() -> SessionKey {
        SessionKey(None)
    }

    pub fn aes(key: Zeroizing<[u8; 16]>) -> SessionKey {
        SessionKey(Some(key))
    }

    /// Server side of `OpenSession` with the DH algorithm: our public value (128 bytes,
    /// big-endian) and the session key.
    pub fn server_dh(client_public: &[u8]) -> Result<(Vec<u8>, SessionKey), CryptoError> {
        let pair = KeyPair::generate(MODP_1024);
        let key = pair.agree(client_public)?;
        Ok((
            to_padded(&pair.public, MODP_1024).to_vec(),
            SessionKey(Some(key)),
        ))
    }

    /// (parameters, value) for a secret sent through this session.
    pub fn encrypt(&self, secret: &[u8]) -> (Vec<u8>, Vec<u8>) {
        match &self.0 {
            None => (Vec::new(), secret.to_vec()),
            Some(key) => {
                let iv = random::<16>();
                let ct = Enc::new(key.as_ref().into(), &iv.into())
                    .encrypt_padded_vec_mut::<Pkcs7>(secret);
                (iv.to_vec(), ct)
            }
        }
    }

    /// The secret of (parameters, value) received through this session.
    pub fn decrypt(
        &self,
        parameters: &[u8],
        value: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        match &self.0 {
            None if parameters.is_empty() => Ok(Zeroizing::new(value.to_vec())),
            None => Err(CryptoError(
                "a plain session takes empty secret parameters".into(),
            )),
            Some(key) => {
                let iv: [u8; 16] = parameters.try_into().map_err(|_| {
                    CryptoError(format!(
                        "the secret parameters must be a 16-byte IV, not {} bytes",
                        parameters.len()
                    ))
                })?;
                if value.is_empty() || value.len() % 16 != 0 {
                    return Err(CryptoError(
                        "the encrypted secret is not a whole number of AES blocks".into(),
                    ));
                }
                Dec::new(key.as_ref().into(), &iv.into())
                    .decrypt_padded_vec_mut::<Pkcs7>(value)
                    .map(Zeroizing::new)
                    .map_err(|_| CryptoError("bad padding in the encrypted secret".into()))
            }
        }
    }
}

/// The client side of the DH algorithm (tests, tools).
pub struct ClientDh(KeyPair);

impl std::fmt::Debug for ClientDh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientDh")
    }
}

impl Default for ClientDh {
    fn default() -> Self {
        Self::new()
    }
}

impl ClientDh {
    pub fn new() -> ClientDh {
        ClientDh(KeyPair::generate(MODP_1024))
    }

    /// Our public value, to pass to `OpenSession`.
    pub fn public(&self) -> Vec<u8> {
        to_padded(&self.0.public, MODP_1024).to_vec()
    }

    /// The session key from the server's public value.
    pub fn finish(&self, server_public: &[u8]) -> Result<SessionKey, CryptoError> {
        Ok(SessionKey(Some(self.0.agree(server_public)?)))
    }
}

/// One side of gcr's secret exchange (`sx-aes-1`): our key pair until the peer's public value
/// arrives, then the transport key. Either side can use it (the prompter side is for tests).
pub struct Exchange {
    pair: KeyPair,
    key: Option<SessionKey>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exchange")
    }
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    pub fn new() -> Exchange {
        Exchange {
            pair: KeyPair::generate(MODP_1536),
            key: None,
        }
    }

    /// Our public value, big-endian without leading zeros (as gcr exports it).
    pub fn public(&self) -> Vec<u8> {
        self.pair.public.to_bytes_be()
    }

    /// Derive the transport key from the peer's public value.
    pub fn agree(&mut self, peer: &[u8]) -> Result<(), CryptoError> {
        self.key = Some(SessionKey(Some(self.pair.agree(peer)?)));
        Ok(())
    }

    /// The transport key, once agreed.
    pub fn key(&self) -> Option<&SessionKey> {
        self.key.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_round_trip() {
        let client = ClientDh::new();
        let (server_pub, server_key) = SessionKey::server_dh(&client.public()).unwrap();
        assert_eq!(server_pub.len(), 128);
        let client_key = client.finish(&server_pub).unwrap();
        for len in [0usize, 1, 15, 16, 17, 1000] {
            let secret: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let (iv, ct) = server_key.encrypt(&secret);
            assert_eq!(iv.len(), 16);
            assert_eq!(ct.len(), (len / 16 + 1) * 16);
            assert_eq!(&*client_key.decrypt(&iv, &ct).unwrap(), &secret);
            let (iv, ct) = client_key.encrypt(&secret);
            assert_eq!(&*server_key.decrypt(&iv, &ct).unwrap(), &secret);
        }
    }

    #[test]
    fn both_sides_of_the_secret_exchange_agree_in_the_1536_bit_group() {
        let mut ours = Exchange::new();
        let mut theirs = Exchange::new();
        assert!(ours.public().len() <= 192 && ours.public().len() > 150);
        ours.agree(&theirs.public()).unwrap();
        theirs.agree(&ours.public()).unwrap();
        let (iv, ct) = theirs.key().unwrap().encrypt(b"typed password");
        assert_eq!(
            &*ours.key().unwrap().decrypt(&iv, &ct).unwrap(),
            b"typed password"
        );
        assert!(
            Exchange::new().agree(&[1]).is_err(),
            "a degenerate public key"
        );
    }

    #[test]
    fn degenerate_public_keys_are_refused() {
        let p = MODP_1024.prime();
        for bad in [
            vec![],
            vec![0],
            vec![1],
            (&p - 1u32).to_bytes_be(),
            p.to_bytes_be(),
            vec![0xff; 300],
        ] {
            assert!(SessionKey::server_dh(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn bad_ciphertexts_are_errors_not_panics() {
        let key = SessionKey::aes(Zeroizing::new([7u8; 16]));
        assert!(key.decrypt(&[0; 15], &[0; 16]).is_err());
        assert!(key.decrypt(&[0; 16], &[]).is_err());
        assert!(key.decrypt(&[0; 16], &[0; 17]).is_err());
        // Whatever a random block decrypts to, it is an answer, not a panic.
        let _ = key.decrypt(&[0; 16], &[0; 16]);
        assert!(SessionKey::plain().decrypt(&[1], b"x").is_err());
        assert_eq!(&*SessionKey::plain().decrypt(&[], b"x").unwrap(), b"x");
    }

    /// A known answer: HKDF-SHA256 of 128 zero-padded bytes equals the construction python's
    /// secretstorage uses (HMAC with a 32-byte zero salt, one output block).
    #[test]
    fn hkdf_matches_the_secretstorage_construction() {
        use hmac::Mac;
        let shared = [0x42u8; 128];
        let mut key = [0u8; 16];
        hkdf::Hkdf::<sha2::Sha256>::new(None, &shared)
            .expand(&[], &mut key)
            .unwrap();
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&[0u8; 32]).unwrap();
        m.update(&shared);
        let prk = m.finalize().into_bytes();
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(&prk).unwrap();
        m.update(&[1]);
        let okm = m.finalize().into_bytes();
        assert_eq!(key, okm[..16]);
    }
}
