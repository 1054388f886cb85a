//! Recovery keys: 256 random bits, shown once, that open the store when no password does (an
//! administrator reset the login password and the old one is forgotten).
//!
//! Written the way systemd-cryptenroll writes its recovery keys: "modhex" (the sixteen letters
//! `cbdefghijklnrtuv`, which read the same on any keyboard layout and cannot be confused with
//! digits), 64 letters in eight dash-separated groups of eight. Parsing is forgiving about case,
//! spaces and dashes, and strict about everything else.

use zeroize::Zeroizing;

use crate::crypto;
use crate::error::{Error, Result};

const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";

/// A recovery key's 32 bytes, wiped on drop; Debug shows nothing.
pub struct RecoveryKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for RecoveryKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecoveryKey(..)")
    }
}

impl RecoveryKey {
    /// A new random key.
    pub fn generate() -> Result<RecoveryKey> {
        Ok(RecoveryKey(Zeroizing::new(crypto::random()?)))
    }

    /// The key's bytes (what its keyslot is wrapped with).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The form a person types: `xxxxxxxx-xxxxxxxx-…` (8 × 8 modhex letters).
    pub fn to_text(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(71));
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 && i % 4 == 0 {
                out.push('-');
            }
            out.push(MODHEX[(b >> 4) as usize] as char);
            out.push(MODHEX[(b & 0x0f) as usize] as char);
        }
        out
    }

    /// Parse a typed key: modhex letters in any case, with any dashes and white space.
    pub fn parse(text: &[u8]) -> Result<RecoveryKey> {
        let bad = |why: &str| Error::InvalidInput(format!("not a recovery key: {why}"));
        let mut nibbles = Zeroizing::new(Vec::with_capacity(64));
        for &c in text {
            if c == b'-' || c.is_ascii_whitespace() {
                continue;
            }
            let c = c.to_ascii_lowercase();
            let v = MODHEX
                .iter()
                .position(|&m| m == c)
                .ok_or_else(|| bad("only the letters cbdefghijklnrtuv, in groups"))?;
            if nibbles.len() == 64 {
                return Err(bad("more than 64 letters"));
            }
            nibbles.push(v as u8);
        }
        if nibbles.len() != 64 {
            return Err(bad("64 letters expected"));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        for (i, pair) in nibbles.chunks(2).enumerate() {
            key[i] = (pair[0] << 4) | pair[1];
        }
        Ok(RecoveryKey(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_from_its_text_in_any_case_and_spacing() {
        let k = RecoveryKey::generate().unwrap();
        let text = k.to_text();
        assert_eq!(text.len(), 71);
        assert_eq!(text.split('-').count(), 8);
        assert!(text.bytes().all(|c| c == b'-' || MODHEX.contains(&c)));
        let again = RecoveryKey::parse(text.as_bytes()).unwrap();
        assert_eq!(again.as_bytes(), k.as_bytes());
        let loose = text.to_uppercase().replace('-', " ") + "\n";
        assert_eq!(
            RecoveryKey::parse(loose.as_bytes()).unwrap().as_bytes(),
            k.as_bytes()
        );
        assert!(!format!("{k:?}").contains(&text[..8]));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["", "cbdefghi", "a".repeat(64).as_str(), &"c".repeat(66)] {
            assert!(RecoveryKey::parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
    }
}
