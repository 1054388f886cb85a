//! docs/FORMAT.md "keyslot": one wrap of the master key under a key derived from a password or
//! a recovery key, or unsealed by a TPM2, bound to its header and its index; and the slot names
//! file `slots`.

use super::{Malformed, Reader};
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
/// A key sealed to this machine's TPM2 (`keyringrs slot add --tpm2`): the sealed object lives in
/// `<store>/tpm2/<hex of its digest>`, the slot holds the digest and the policy.
pub const SLOT_TPM2: u8 = 5;
/// Key sources (the byte after the kind): Argon2id v1.3 of a password or recovery key.
pub const KDF_ARGON2ID: u8 = 1;
/// The key is unsealed by the TPM2 named in the slot's policy (kind 5 only).
pub const KEY_TPM2: u8 = 2;
/// TPM2 slot flags: the sealed object also needs a PIN (its authValue).
pub const TPM2_PIN: u32 = 1;
/// TPM2 slot flags: the PAM module tries the slot at a login without a password.
pub const TPM2_LOGIN: u32 = 2;
/// Length of the sealed object's digest kept in a TPM2 slot (a SHA-256 prefix).
pub const SEALED_DIGEST_LEN: usize = 16;

/// How a TPM2 keyslot's key is sealed: the PCRs of the SHA-256 bank its policy binds (bit i =
/// PCR i, i < 24), whether it needs a PIN, whether the PAM module tries it, and which sealed
/// object file it is (the first 16 bytes of that file's SHA-256).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tpm2Binding {
    pub pcrs: u32,
    pub pin: bool,
    pub login: bool,
    pub sealed: [u8; SEALED_DIGEST_LEN],
}

impl Tpm2Binding {
    /// All 24 PCRs of a PC client TPM.
    pub const PCR_MASK: u32 = (1 << 24) - 1;

    /// The digest a sealed object file of these bytes has in its slot.
    pub fn digest(sealed: &[u8]) -> [u8; SEALED_DIGEST_LEN] {
        let full = crypto::sha256(&[b"keyringrs-tpm2-sealed\n", sealed]);
        let mut d = [0u8; SEALED_DIGEST_LEN];
        d.copy_from_slice(&full[..SEALED_DIGEST_LEN]);
        d
    }

    /// The sealed object's file name under `<store>/tpm2/`.
    pub fn file_name(&self) -> String {
        super::hex(&self.sealed)
    }

    fn flags(&self) -> u32 {
        (if self.pin { TPM2_PIN } else { 0 }) | (if self.login { TPM2_LOGIN } else { 0 })
    }

    /// The PCR numbers, ascending.
    pub fn pcr_list(&self) -> Vec<u8> {
        (0..24).filter(|i| self.pcrs & (1 << i) != 0).collect()
    }

    /// "no PCRs", or "PCRs 0,7" (of the SHA-256 bank), for messages and `slot list`.
    pub fn pcr_text(&self) -> String {
        let list: Vec<String> = self.pcr_list().iter().map(u8::to_string).collect();
        if list.is_empty() {
            "no PCRs".into()
        } else {
            format!("PCRs {}", list.join(","))
        }
    }
}

/// What a keyslot's wrapping key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKey {
    /// Argon2id of a password or a recovery key, with the slot's own salt.
    Argon2id {
        kdf: KdfParams,
        salt: [u8; SALT_LEN],
    },
    /// 32 bytes a TPM2 unseals.
    Tpm2(Tpm2Binding),
}

impl SlotKey {
    /// The Argon2id parameters, for a slot opened by a password or recovery key.
    pub fn kdf(&self) -> Option<KdfParams> {
        match self {
            SlotKey::Argon2id { kdf, .. } => Some(*kdf),
            SlotKey::Tpm2(_) => None,
        }
    }

    /// The TPM2 binding, for a TPM2 slot.
    pub fn tpm2(&self) -> Option<&Tpm2Binding> {
        match self {
            SlotKey::Tpm2(b) => Some(b),
            SlotKey::Argon2id { .. } => None,
        }
    }

    /// Bytes 1..30 of the slot.
    fn encode(&self, v: &mut Vec<u8>) {
        match self {
            SlotKey::Argon2id { kdf, salt } => {
                v.push(KDF_ARGON2ID);
                v.extend_from_slice(&kdf.memory_kib().to_le_bytes());
                v.extend_from_slice(&kdf.time().to_le_bytes());
                v.extend_from_slice(&kdf.lanes().to_le_bytes());
                v.extend_from_slice(salt);
            }
            SlotKey::Tpm2(b) => {
                v.push(KEY_TPM2);
                v.extend_from_slice(&b.pcrs.to_le_bytes());
                v.extend_from_slice(&b.flags().to_le_bytes());
                v.extend_from_slice(&0u32.to_le_bytes());
                v.extend_from_slice(&b.sealed);
            }
        }
    }

    /// Parse bytes 1..30 of a slot of `kind` (checked already to be a known kind).
    pub(crate) fn decode(kind: u8, r: &mut Reader, what: &str) -> Result<SlotKey, Malformed> {
        let source = r.u8(what)?;
        let (a, b, c) = (r.u32(what)?, r.u32(what)?, r.u32(what)?);
        let tail: [u8; SALT_LEN] = r.array(what)?;
        match (kind, source) {
            (SLOT_TPM2, KEY_TPM2) => {
                if a & !Tpm2Binding::PCR_MASK != 0 {
                    return Err(format!("{what}: PCR selection {a:#x} beyond PCR 23"));
                }
                if b & !(TPM2_PIN | TPM2_LOGIN) != 0 || c != 0 {
                    return Err(format!("{what}: unknown TPM2 flags {b:#x}/{c:#x}"));
                }
                Ok(SlotKey::Tpm2(Tpm2Binding {
                    pcrs: a,
                    pin: b & TPM2_PIN != 0,
                    login: b & TPM2_LOGIN != 0,
                    sealed: tail,
                }))
            }
            (SLOT_TPM2, _) => Err(format!("{what}: TPM2 slot with key source {source}")),
            (_, KDF_ARGON2ID) => {
                let kdf = KdfParams::new(a, b, c).map_err(|e| format!("{what}: {e}"))?;
                Ok(SlotKey::Argon2id { kdf, salt: tail })
            }
            _ => Err(format!("{what}: unknown KDF {source}")),
        }
    }
}

/// One keyslot: the master key wrapped under a key derived from a password or unsealed by a TPM2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyslot {
    pub kind: u8,
    pub key: SlotKey,
    pub nonce: [u8; NONCE_LEN],
    pub wrapped: [u8; KEY_LEN + TAG_LEN],
}

impl Keyslot {
    /// The slot's bytes before the nonce: kind, key source, its parameters (bound into its AAD).
    pub(crate) fn params_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(30);
        v.push(self.kind);
        self.key.encode(&mut v);
        v
    }

    pub(crate) fn aad(prefix: &[u8], index: usize, params: &[u8]) -> Vec<u8> {
        [prefix, &[index as u8], params].concat()
    }

    /// The Argon2id parameters of a password or recovery-key slot (a TPM2 slot costs none).
    pub fn kdf(&self) -> Option<KdfParams> {
        self.key.kdf()
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
        let key = SlotKey::Argon2id { kdf, salt };
        Self::seal(
            kind,
            key,
            kdf.derive(password, &salt)?,
            prefix,
            index,
            master,
        )
    }

    /// Wrap `master` in a TPM2 slot under `kek`, the 32 bytes sealed to the TPM.
    pub fn wrap_tpm2(
        binding: Tpm2Binding,
        kek: &[u8; KEY_LEN],
        prefix: &[u8],
        index: usize,
        master: &MasterKey,
    ) -> Result<Keyslot> {
        let kek = SubKey::from_bytes(kek);
        Self::seal(
            SLOT_TPM2,
            SlotKey::Tpm2(binding),
            kek,
            prefix,
            index,
            master,
        )
    }

    fn seal(
        kind: u8,
        key: SlotKey,
        kek: SubKey,
        prefix: &[u8],
        index: usize,
        master: &MasterKey,
    ) -> Result<Keyslot> {
        let mut slot = Keyslot {
            kind,
            key,
            nonce: [0; NONCE_LEN],
            wrapped: [0; KEY_LEN + TAG_LEN],
        };
        let (nonce, ct) = kek.seal(
            &Self::aad(prefix, index, &slot.params_bytes()),
            master.as_bytes(),
        )?;
        slot.nonce = nonce;
        slot.wrapped.copy_from_slice(&ct);
        Ok(slot)
    }

    /// Try to unwrap with `password`; `None` if it does not open this slot (a TPM2 slot never
    /// opens with a password).
    pub fn unwrap(
        &self,
        prefix: &[u8],
        index: usize,
        password: &[u8],
    ) -> Result<Option<MasterKey>> {
        let SlotKey::Argon2id { kdf, salt } = &self.key else {
            return Ok(None);
        };
        self.open(kdf.derive(password, salt)?, prefix, index)
    }

    /// Try to unwrap a TPM2 slot with the key the TPM unsealed; `None` if it does not open.
    pub fn unwrap_tpm2(
        &self,
        prefix: &[u8],
        index: usize,
        kek: &[u8; KEY_LEN],
    ) -> Result<Option<MasterKey>> {
        if self.key.tpm2().is_none() {
            return Ok(None);
        }
        self.open(SubKey::from_bytes(kek), prefix, index)
    }

    fn open(&self, kek: SubKey, prefix: &[u8], index: usize) -> Result<Option<MasterKey>> {
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
