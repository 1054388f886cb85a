//! TPM2 keyslots (docs/FORMAT.md "keyslot", kind 5): the master key wrapped under 32 bytes that
//! this machine's TPM2 seals. libkeyring never talks to a TPM: the caller (the CLI, the PAM
//! module, the Secret Service daemon, through the `keyringrs-tpm2` crate) seals and unseals,
//! and hands the sealed object's bytes and the key here.
//!
//! The sealed object (the TPM's public and private parts, a few hundred bytes) does not fit a
//! 102-byte keyslot, so it lives in `<store>/tpm2/<hex of its digest>`; the slot holds that
//! digest, so the file is authenticated like every other byte the slot names: the digest is in
//! the slot's AAD and under the header MAC. Named by its digest, a new object never replaces a
//! file a slot still names.

use std::path::{Path, PathBuf};

use super::files::{open_dir_checked, read_checked, write_atomic, HEADER};
use super::slots::Credential;
use super::{Opened, Store};
use crate::crypto::KEY_LEN;
use crate::error::{Error, Result};
use crate::format::{Keyslot, Tpm2Binding, SLOT_TPM2};
use crate::sys::fs;

/// The directory of sealed objects in the store.
pub(crate) const TPM2_DIR: &str = "tpm2";
/// A sealed object file is refused above this size (tss-esapi's are ~330 bytes).
pub const MAX_SEALED_LEN: u64 = 4096;

/// A TPM2 keyslot as the unsealer needs it: where it is, how it is bound, the sealed object.
#[derive(Clone, PartialEq, Eq)]
pub struct Tpm2Slot {
    pub index: usize,
    pub name: String,
    pub binding: Tpm2Binding,
    /// The sealed object's bytes, checked against the slot's digest.
    pub sealed: Vec<u8>,
}

impl std::fmt::Debug for Tpm2Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tpm2Slot")
            .field("index", &self.index)
            .field("name", &self.name)
            .field("binding", &self.binding)
            .field("sealed", &format_args!("{} bytes", self.sealed.len()))
            .finish()
    }
}

/// A sealed object `check` found wrong: its file name under `tpm2/`, and why.
pub(crate) type Unreadable = (String, String);

impl Store {
    fn tpm2_path(&self, file: &str) -> PathBuf {
        self.path.join(TPM2_DIR).join(file)
    }

    /// The sealed object of `binding`, read (as the store's owner, bounded) and checked against
    /// the slot's digest: a missing, foreign or changed file is `Corrupt`, naming it.
    fn read_sealed(&self, binding: &Tpm2Binding) -> Result<Vec<u8>> {
        let file = binding.file_name();
        let display = || self.tpm2_path(&file);
        let dir = match open_dir_checked(
            Some(&self.dir),
            Path::new(TPM2_DIR),
            &self.path.join(TPM2_DIR),
            self.owner,
        ) {
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::corrupt(
                    &display(),
                    "missing: the TPM2 keyslot's sealed object is gone",
                ))
            }
            r => r?,
        };
        let bytes = read_checked(&dir, Path::new(&file), &display, self.owner, MAX_SEALED_LEN)?
            .ok_or_else(|| {
                Error::corrupt(
                    &display(),
                    "missing: the TPM2 keyslot's sealed object is gone",
                )
            })?;
        if Tpm2Binding::digest(&bytes) != binding.sealed {
            return Err(Error::corrupt(
                &display(),
                "does not match its keyslot's digest (altered or replaced)",
            ));
        }
        Ok(bytes)
    }

    /// The TPM2 keyslots, with their sealed objects; `login`: only those the PAM module tries
    /// (`slot add --tpm2 --pam`). A slot whose object file is missing or altered is an error
    /// (`Corrupt`) only if no other slot is usable: the rest are still returned.
    pub fn tpm2_slots(&self, login: bool) -> Result<Vec<Tpm2Slot>> {
        let (header, _) = Store::read_header(&self.dir, &self.path, self.owner)?;
        let names = self.slots()?;
        let mut out = vec![];
        let mut first_error = None;
        for (index, slot) in header.slots.iter().enumerate() {
            let Some(binding) = slot.key.tpm2() else {
                continue;
            };
            if slot.kind != SLOT_TPM2 || (login && !binding.login) {
                continue;
            }
            match self.read_sealed(binding) {
                Ok(sealed) => out.push(Tpm2Slot {
                    index,
                    name: names
                        .iter()
                        .find(|s| s.index == index)
                        .map_or_else(|| format!("slot-{index}"), |s| s.name.clone()),
                    binding: *binding,
                    sealed,
                }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (out.is_empty(), first_error) {
            (true, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// Unwrap the master key of TPM2 keyslot `index` with `key`, the 32 bytes the TPM unsealed,
    /// and check the header MAC. A key that does not open it: `WrongPassword` (exit 5).
    pub fn open_with_tpm2(&self, index: usize, key: &[u8; KEY_LEN]) -> Result<Opened> {
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header.id != self.id {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "store id changed while open",
            ));
        }
        let slot = header.slots.get(index).ok_or(Error::WrongPassword)?;
        let master = slot
            .unwrap_tpm2(&header.prefix(), index, key)?
            .ok_or(Error::WrongPassword)?;
        if !header.verify_mac(&master, &mac) {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "header MAC does not verify (altered)",
            ));
        }
        Ok(Opened {
            header,
            index,
            master,
        })
    }

    /// Add a TPM2 keyslot `name`, after `credential` opened the store: `seal` is called then
    /// (not before: a wrong password costs no TPM work) and returns the sealed object's bytes
    /// and the 32-byte key it seals; the object is written to `<store>/tpm2/` before the header
    /// names it. `pin`: the object needs a PIN; `login`: the PAM module tries the slot.
    pub fn add_tpm2_slot<'a>(
        &self,
        credential: impl Into<Credential<'a>>,
        name: &str,
        pcrs: u32,
        pin: bool,
        login: bool,
        seal: impl FnOnce() -> Result<(Vec<u8>, zeroize::Zeroizing<[u8; KEY_LEN]>)>,
    ) -> Result<()> {
        super::slots::check_name(name)?;
        if pcrs & !Tpm2Binding::PCR_MASK != 0 {
            return Err(Error::InvalidInput("PCRs are numbered 0 to 23".into()));
        }
        if self.slots()?.iter().any(|s| s.name == name) {
            return Err(Error::InvalidInput(format!(
                "there is a keyslot named {name:?} already"
            )));
        }
        let opened = self.open_by(credential)?;
        let (sealed, key) = seal()?;
        if sealed.is_empty() || sealed.len() as u64 > MAX_SEALED_LEN {
            return Err(Error::InvalidInput(format!(
                "a sealed object of {} bytes (1 to {MAX_SEALED_LEN})",
                sealed.len()
            )));
        }
        let binding = Tpm2Binding {
            pcrs,
            pin,
            login,
            sealed: Tpm2Binding::digest(&sealed),
        };
        let display = self.tpm2_path(&binding.file_name());
        // Under the writer lock (edit_slots): a concurrent removal's clean-up of unnamed
        // sealed objects cannot take this one before the header names it.
        self.edit_slots(&opened, |header, names| {
            match fs::mkdir(Some(&self.dir), Path::new(TPM2_DIR), 0o700) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::from_io("create", &self.path.join(TPM2_DIR), e))
                }
                _ => {}
            }
            let dir = open_dir_checked(
                Some(&self.dir),
                Path::new(TPM2_DIR),
                &self.path.join(TPM2_DIR),
                self.owner,
            )?;
            write_atomic(&self.dir, &dir, &binding.file_name(), &sealed, &display)?;
            Self::place_slot(header, names, name.to_owned(), |prefix, index| {
                Keyslot::wrap_tpm2(binding, &key, prefix, index, &opened.master)
            })
        })
    }

    /// Remove sealed object files no keyslot of `header` names (called under the writer lock
    /// after a header is written). Best effort: what cannot be removed stays, harmless (it opens nothing without
    /// a slot that names it and the master key's header MAC).
    pub(crate) fn remove_unused_sealed(&self, header: &crate::format::Header) {
        let Ok(dir) = open_dir_checked(
            Some(&self.dir),
            Path::new(TPM2_DIR),
            &self.path.join(TPM2_DIR),
            self.owner,
        ) else {
            return;
        };
        let used: Vec<String> = header
            .slots
            .iter()
            .filter_map(|s| s.key.tpm2().map(Tpm2Binding::file_name))
            .collect();
        for n in fs::list(&dir).unwrap_or_default() {
            let n = n.to_string_lossy().into_owned();
            if !used.contains(&n) {
                let _ = fs::unlink(&dir, Path::new(&n));
            }
        }
    }

    /// For `keyringrs check`: each TPM2 keyslot's sealed object that does not read back as its
    /// slot names it (file name under `tpm2/`, why), and the files there that no slot names.
    pub(crate) fn survey_tpm2(&self) -> Result<(Vec<Unreadable>, Vec<String>)> {
        let (header, _) = Store::read_header(&self.dir, &self.path, self.owner)?;
        let mut wrong = vec![];
        let mut named = vec![];
        for binding in header.slots.iter().filter_map(|s| s.key.tpm2()) {
            named.push(binding.file_name());
            if let Err(e) = self.read_sealed(binding) {
                let why = match e {
                    Error::Corrupt { reason, .. } => reason,
                    e => e.to_string(),
                };
                wrong.push((binding.file_name(), why));
            }
        }
        let unnamed = match fs::open_dir(Some(&self.dir), Path::new(TPM2_DIR)) {
            Ok(dir) => fs::list(&dir)
                .unwrap_or_default()
                .into_iter()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !named.contains(n))
                .collect(),
            Err(_) => vec![],
        };
        Ok((wrong, unnamed))
    }
}
