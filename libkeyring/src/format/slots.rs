//! docs/FORMAT.md "keyslot": one wrap of the master key under a key derived from a password or
//! a recovery key, bound to its header and its index; and the slot names file `slots`.

use crate::crypto::{self, KdfParams, MasterKey, SubKey, KEY_LEN, NONCE_LEN, SALT_LEN, TAG_LEN};
use crate::error::Result;

#[cfg_attr(not(test), allow(dead_code))]
pub(crate) const SLOT_LEN: usize = 1 + 1 + 4 + 4 + 4 + SALT_LEN + NONCE_LEN + KEY_LEN + TAG_LEN;

/// Keyslot kinds (docs/FORMAT.md "keyslot"). A password the PAM module tries at login: the login
/// password's slot, and slots added with `keyringrs slot add --pam`.
pub const SLOT_PASSWORD: u8 = 1;
/// A recovery key (256 random bits shown once to the user).
pub const SLOT_RECOVERY: u8 = 2;
/// Another password (`keyringrs slot add`), tried by `unlock` but not at login.
pub const SLOT_EXTRA: u8 = 3;
/// The place of a removed keyslot (slots are bound to their index): never opens.
pub const SLOT_EMPTY: u8 = 4;
/// KDF ids.
pub const KDF_ARGON2ID: u8 = 1;

/// One keyslot: the master key wrapped under a key derived from a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    pub kind: u8,
    pub kdf: KdfParams,
    pub salt: [u8; SALT_LEN],
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; KEY_LEN + TAG_LEN],
}

impl Keyslot {
    /// The slot's bytes before the nonce: kind, kdf id, params, salt (bound into its AAD).
    pub(crate) fn params_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(30);
        v.push(self.kind);
        v.push(KDF_ARGON2ID);
        v.extend_from_slice(&self.kdf.memory_kib().to_le_bytes());
        v.extend_from_slice(&self.kdf.time().to_le_bytes());
        v.extend_from_slice(&self.kdf.lanes().to_le_bytes());
        v.extend_from_slice(&self.salt);
        v
    }

    pub(crate) fn aad(prefix: &[u8], index: usize, params: &[u8]) -> Vec<u8> {
        [prefix, &[index as u8], params].concat()
    }

    /// Wrap `master` for `password` as slot number `index` of a header whose fixed prefix
    /// (magic, version, flags, store id) is `prefix`.
    pub fn wrap(
        prefix: &[u8],
        index: usize,
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<Keyslot> {
        Self::wrap_kind(SLOT_PASSWORD, prefix, index, master, password, kdf)
    }

    /// Wrap `master` in a slot of `kind` (a password or a recovery key).
    pub fn wrap_kind(
        kind: u8,
        prefix: &[u8],
        index: usize,
        master: &MasterKey,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<Keyslot> {
        let salt: [u8; SALT_LEN] = crypto::random()?;
        let mut slot = Keyslot {
            kind,
            kdf,
            salt,
            nonce: [0; NONCE_LEN],
            wrapped: [0; KEY_LEN + TAG_LEN],
        };
        let kek = kdf.derive(password, &salt)?;
        let (nonce, ct) = kek.seal(
            &Self::aad(prefix, index, &slot.params_bytes()),
            master.as_bytes(),
        )?;
        slot.nonce = nonce;
        slot.wrapped.copy_from_slice(&ct);
        Ok(slot)
    }

    /// Try to unwrap with `password`; `None` if it does not open this slot.
    pub fn unwrap(
        &self,
        prefix: &[u8],
        index: usize,
        password: &[u8],
    ) -> Result<Option<MasterKey>> {
        let kek: SubKey = self.kdf.derive(password, &self.salt)?;
        let aad = Self::aad(prefix, index, &self.params_bytes());
        Ok(kek
            .open(&self.nonce, &aad, &self.wrapped)
            .and_then(|pt| MasterKey::from_slice(&pt)))
    }
}

/// The slot names file beside the header (docs/FORMAT.md "keyslot"): labels for the user, not
/// secrets and not authenticated.
pub const NAMES: &str = "slots";
/// The names file is refused above this size.
pub const MAX_NAMES_LEN: u64 = 16 << 10;
/// A slot name: 1 to 64 letters, digits, '-', '_', '.', '@'.
pub const MAX_NAME_LEN: usize = 64;

/// The names file's lines: (index, name, added in unix seconds).
pub type Names = Vec<(usize, String, i64)>;

/// Is `name` a valid slot name?
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
}

/// Parse the names file: `<index>\t<name>\t<added>` lines; a line that does not parse or names
/// an invalid name is skipped.
pub fn parse_names(bytes: &[u8]) -> Names {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter_map(|l| {
            let mut f = l.split('\t');
            let index = f.next()?.parse().ok()?;
            let name = f.next()?.to_owned();
            let created = f.next().and_then(|c| c.parse().ok()).unwrap_or(0);
            valid_name(&name).then_some((index, name, created))
        })
        .collect()
}

/// The names file's bytes.
pub fn encode_names(names: &Names) -> Vec<u8> {
    names
        .iter()
        .map(|(i, n, c)| format!("{i}\t{n}\t{c}\n"))
        .collect::<String>()
        .into_bytes()
}
