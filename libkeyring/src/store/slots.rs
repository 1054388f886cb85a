//! The store's keyslots beyond the first (docs/FORMAT.md "keyslot"): more passwords (tried at
//! login or not), the recovery key, their names, and removing one.
//!
//! Every keyslot is bound to its index (its AAD holds it), so a removed slot in the middle stays
//! as an empty slot (`SLOT_EMPTY`) that a later addition reuses; only trailing ones are dropped.
//! Names live in a small file `slots` beside the header (`<index>\t<name>\t<created>` lines):
//! labels for the user, not secrets and not authenticated — a changed name changes nothing
//! about which slot opens with what.

use std::path::Path;

use super::files::{busy, read_checked, write_atomic};
use super::{Opened, Store};
use crate::crypto::{self, KdfParams};
use crate::error::{Error, Result};
use crate::format::slots::{
    encode_names, parse_names, valid_name, Names, MAX_NAMES_LEN, MAX_NAME_LEN, NAMES,
};
use crate::format::{
    self, Header, Keyslot, SlotKey, Tpm2Binding, SLOT_EMPTY, SLOT_EXTRA, SLOT_PASSWORD,
    SLOT_RECOVERY, SLOT_TPM2,
};
use crate::recovery::RecoveryKey;
use crate::sys::fs;

/// What a keyslot opens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// A password the PAM module tries at login (the login password's, `slot add --pam`).
    Login,
    /// Another password, for `keyringrs unlock` only.
    Password,
    /// The recovery key.
    RecoveryKey,
    /// A key sealed to this machine's TPM2 (`slot add --tpm2`).
    Tpm2,
}

impl SlotKind {
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::Login => "login-password",
            SlotKind::Password => "password",
            SlotKind::RecoveryKey => "recovery-key",
            SlotKind::Tpm2 => "tpm2",
        }
    }
}

/// One keyslot as `keyringrs slot list` shows it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotInfo {
    pub index: usize,
    pub name: String,
    pub kind: SlotKind,
    /// Argon2id's parameters (password and recovery-key slots).
    pub kdf: Option<KdfParams>,
    /// The PCRs, PIN and login flags (TPM2 slots).
    pub tpm2: Option<Tpm2Binding>,
    /// When it was added (seconds since the epoch), if recorded.
    pub created: Option<i64>,
}

/// What opens the store before a keyslot change: one of its passwords, or its recovery key.
#[derive(Debug, Clone, Copy)]
pub enum Credential<'a> {
    Password(&'a [u8]),
    RecoveryKey(&'a RecoveryKey),
}

impl<'a> From<&'a [u8]> for Credential<'a> {
    fn from(p: &'a [u8]) -> Self {
        Credential::Password(p)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Credential<'a> {
    fn from(p: &'a [u8; N]) -> Self {
        Credential::Password(p)
    }
}

impl<'a> From<&'a RecoveryKey> for Credential<'a> {
    fn from(k: &'a RecoveryKey) -> Self {
        Credential::RecoveryKey(k)
    }
}

fn kind_of(raw: u8) -> Option<SlotKind> {
    match raw {
        SLOT_PASSWORD => Some(SlotKind::Login),
        SLOT_EXTRA => Some(SlotKind::Password),
        SLOT_RECOVERY => Some(SlotKind::RecoveryKey),
        SLOT_TPM2 => Some(SlotKind::Tpm2),
        _ => None,
    }
}

/// The name a slot has when the file names none.
fn default_name(index: usize, kind: SlotKind) -> String {
    match (index, kind) {
        (0, SlotKind::Login) => "login".into(),
        (_, SlotKind::RecoveryKey) => "recovery-key".into(),
        _ => format!("slot-{index}"),
    }
}

pub(super) fn check_name(name: &str) -> Result<()> {
    if !valid_name(name) {
        return Err(Error::InvalidInput(format!(
            "slot name {name:?}: 1 to {MAX_NAME_LEN} letters, digits, '-', '_', '.', '@'"
        )));
    }
    Ok(())
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A slot that never opens, to keep a removed slot's index.
fn empty_slot() -> Result<Keyslot> {
    Ok(Keyslot {
        kind: SLOT_EMPTY,
        key: SlotKey::Argon2id {
            kdf: KdfParams::new(KdfParams::MIN_MEMORY_KIB, 1, 1)?,
            salt: crypto::random()?,
        },
        nonce: crypto::random()?,
        wrapped: crypto::random()?,
    })
}

impl Store {
    pub(super) fn open_by<'a>(&self, credential: impl Into<Credential<'a>>) -> Result<Opened> {
        match credential.into() {
            Credential::Password(p) => self.open_with_password(p),
            Credential::RecoveryKey(k) => self.open_with_recovery_key(k),
        }
    }

    fn read_names(&self) -> Names {
        let path = self.path.join(NAMES);
        let Ok(Some(bytes)) = read_checked(
            &self.dir,
            Path::new(NAMES),
            &|| path.clone(),
            self.owner,
            MAX_NAMES_LEN,
        ) else {
            return vec![];
        };
        parse_names(&bytes)
    }

    fn write_names(&self, names: &Names) -> Result<()> {
        write_atomic(
            &self.dir,
            &self.dir,
            NAMES,
            &encode_names(names),
            &self.path.join(NAMES),
        )
    }

    /// The keyslots that can open the store: index, name, kind, key-derivation cost, when added.
    pub fn slots(&self) -> Result<Vec<SlotInfo>> {
        let (header, _) = Store::read_header(&self.dir, &self.path, self.owner)?;
        let names = self.read_names();
        Ok(header
            .slots
            .iter()
            .enumerate()
            .filter_map(|(index, s)| {
                let kind = kind_of(s.kind)?;
                let named = names.iter().find(|(i, _, _)| *i == index);
                Some(SlotInfo {
                    index,
                    name: named.map_or_else(|| default_name(index, kind), |(_, n, _)| n.clone()),
                    kind,
                    kdf: s.kdf(),
                    tpm2: s.key.tpm2().copied(),
                    created: named.map(|(_, _, c)| *c).filter(|c| *c > 0),
                })
            })
            .collect())
    }

    /// Change the keyslots under the writer lock, if the header on disk is still the one
    /// `opened` read; `edit` gets the header and the names. The header is written first (the
    /// commit), the names after (cosmetic).
    pub(super) fn edit_slots<T>(
        &self,
        opened: &Opened,
        edit: impl FnOnce(&mut Header, &mut Names) -> Result<T>,
    ) -> Result<T> {
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let (mut header, _) = Store::read_header(&self.dir, &self.path, self.owner)?;
        if header != opened.header {
            return Err(Error::InvalidInput(
                "the header changed meanwhile; try again".into(),
            ));
        }
        let mut names = self.read_names();
        let out = edit(&mut header, &mut names)?;
        // Trailing empty slots go; a header needs at least one slot that opens.
        while header.slots.last().is_some_and(|s| s.kind == SLOT_EMPTY) {
            header.slots.pop();
        }
        names.retain(|(i, _, _)| *i < header.slots.len());
        self.write_header(&header, &opened.master)?;
        self.remove_unused_sealed(&header);
        self.write_names(&names)?;
        Ok(out)
    }

    /// Put `slot` (built for the index given) into the first empty place, or at the end.
    pub(super) fn place_slot(
        header: &mut Header,
        names: &mut Names,
        name: String,
        slot: impl FnOnce(&[u8], usize) -> Result<Keyslot>,
    ) -> Result<()> {
        let index = header
            .slots
            .iter()
            .position(|s| s.kind == SLOT_EMPTY)
            .unwrap_or(header.slots.len());
        if index >= format::MAX_KEYSLOTS {
            return Err(Error::InvalidInput(format!(
                "no room for another keyslot (at most {})",
                format::MAX_KEYSLOTS
            )));
        }
        let new = slot(&header.prefix(), index)?;
        if index == header.slots.len() {
            header.slots.push(new);
        } else {
            header.slots[index] = new;
        }
        names.retain(|(i, _, _)| *i != index);
        names.push((index, name, now()));
        Ok(())
    }

    /// Empty the slot at `index` (a trailing one is dropped when the header is written).
    fn empty(header: &mut Header, names: &mut Names, index: usize) -> Result<()> {
        header.slots[index] = empty_slot()?;
        names.retain(|(i, _, _)| *i != index);
        Ok(())
    }

    /// Add a recovery key (replacing an earlier one), after `credential` (a password, or the
    /// current recovery key) opened the store; the key is returned once, to be shown to the
    /// user. Its keyslot takes the cheapest Argon2id parameters: 256 random bits need no
    /// stretching.
    pub fn add_recovery_key<'a>(
        &self,
        credential: impl Into<Credential<'a>>,
    ) -> Result<RecoveryKey> {
        let opened = self.open_by(credential)?;
        let key = RecoveryKey::generate()?;
        let cheap = KdfParams::new(KdfParams::MIN_MEMORY_KIB, 1, 1)?;
        self.edit_slots(&opened, |header, names| {
            for i in 0..header.slots.len() {
                if header.slots[i].kind == SLOT_RECOVERY {
                    Self::empty(header, names, i)?;
                }
            }
            Self::place_slot(header, names, "recovery-key".into(), |prefix, index| {
                Keyslot::wrap_kind(
                    SLOT_RECOVERY,
                    prefix,
                    index,
                    &opened.master,
                    key.as_bytes(),
                    cheap,
                )
            })
        })?;
        Ok(key)
    }

    /// Remove the recovery key, after `credential` opened the store. Ok(false): there was none.
    pub fn remove_recovery_key<'a>(&self, credential: impl Into<Credential<'a>>) -> Result<bool> {
        let opened = self.open_by(credential)?;
        self.edit_slots(&opened, |header, names| {
            let mut had = false;
            for i in 0..header.slots.len() {
                if header.slots[i].kind == SLOT_RECOVERY {
                    Self::empty(header, names, i)?;
                    had = true;
                }
            }
            Ok(had)
        })
    }

    /// Add another password as keyslot `name`, after `credential` opened the store; `login`:
    /// the PAM module tries it at login too (e.g. a disk passphrase that an autologin hands over).
    pub fn add_password<'a>(
        &self,
        credential: impl Into<Credential<'a>>,
        name: &str,
        new_password: &[u8],
        login: bool,
        kdf: KdfParams,
    ) -> Result<()> {
        check_name(name)?;
        if new_password.is_empty() {
            return Err(Error::InvalidInput("refusing an empty password".into()));
        }
        if self.slots()?.iter().any(|s| s.name == name) {
            return Err(Error::InvalidInput(format!(
                "there is a keyslot named {name:?} already"
            )));
        }
        let opened = self.open_by(credential)?;
        let kind = if login { SLOT_PASSWORD } else { SLOT_EXTRA };
        self.edit_slots(&opened, |header, names| {
            Self::place_slot(header, names, name.to_owned(), |prefix, index| {
                Keyslot::wrap_kind(kind, prefix, index, &opened.master, new_password, kdf)
            })
        })
    }

    /// Remove keyslot `name`, after `credential` opened the store. The last keyslot that can
    /// open the store is never removed.
    pub fn remove_slot<'a>(&self, credential: impl Into<Credential<'a>>, name: &str) -> Result<()> {
        let slots = self.slots()?;
        let Some(target) = slots.iter().find(|s| s.name == name) else {
            return Err(Error::InvalidInput(format!("no keyslot named {name:?}")));
        };
        if slots.len() == 1 {
            return Err(Error::InvalidInput(format!(
                "{name:?} is the last keyslot that opens the store; add another first"
            )));
        }
        // A store only a TPM opens is lost with that TPM (cleared, replaced, a firmware update
        // that changes its PCRs): a password or the recovery key always stays.
        let without_tpm = |s: &&SlotInfo| s.kind != SlotKind::Tpm2;
        if target.kind != SlotKind::Tpm2 && slots.iter().filter(without_tpm).count() == 1 {
            return Err(Error::InvalidInput(format!(
                "{name:?} is the last keyslot that opens the store without the TPM (a password \
                 or the recovery key); add another first"
            )));
        }
        let index = target.index;
        let opened = self.open_by(credential)?;
        self.edit_slots(&opened, |header, names| Self::empty(header, names, index))
    }

    /// After an administrator reset the login password: open with the recovery key and rewrap
    /// the login keyslot (the first slot tried at login) to `login_password`.
    pub fn resync_with_recovery_key(
        &self,
        key: &RecoveryKey,
        login_password: &[u8],
        kdf: KdfParams,
    ) -> Result<()> {
        let opened = self.open_with_recovery_key(key)?;
        let login = opened
            .header
            .slots
            .iter()
            .position(|s| s.kind == SLOT_PASSWORD)
            .ok_or_else(|| Error::InvalidInput("the store has no login keyslot".into()))?;
        let target = opened.header.slots[login]
            .kdf()
            .map_or(kdf, |k| k.max_with(&kdf));
        self.rewrap(
            &opened.master,
            &opened.header,
            login,
            login_password,
            target,
            self.wait,
        )
    }
}
