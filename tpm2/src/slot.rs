//! TPM2 keyslots of a libkeyring store (docs/FORMAT.md "keyslot", kind 5): seal a fresh key for
//! `slot add --tpm2`, and open the store with the TPM (`unlock --tpm2`, the PAM module at a
//! login without a password, the Secret Service daemon's unlock prompt). libkeyring keeps the
//! slot and the sealed object's bytes; this is the only place both meet the TPM.

use std::time::Duration;

use libkeyring::{Credential, Opened, Store, Tpm2Slot};
use zeroize::Zeroizing;

use crate::{seal, unseal, Account, Error, Policy, Sealed, Tcti};

/// Why a TPM2 keyslot did not open, or could not be added.
#[derive(Debug)]
pub enum SlotError {
    /// The store's side: no store, a wrong password before `slot add`, damage, the header MAC.
    Store(libkeyring::Error),
    /// The TPM's side: no TPM, PCRs changed, wrong PIN, timeout.
    Tpm(Error),
    /// The store has no TPM2 keyslot (of the kind asked for).
    NoSlot,
}

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlotError::Store(e) => e.fmt(f),
            SlotError::Tpm(e) => e.fmt(f),
            SlotError::NoSlot => f.write_str(
                "the store has no TPM2 keyslot (add one with `keyringrs slot add NAME --tpm2`)",
            ),
        }
    }
}

impl std::error::Error for SlotError {}

impl From<libkeyring::Error> for SlotError {
    fn from(e: libkeyring::Error) -> Self {
        SlotError::Store(e)
    }
}

impl From<Error> for SlotError {
    fn from(e: Error) -> Self {
        SlotError::Tpm(e)
    }
}

impl SlotError {
    /// Is this "the slot does not open" (exit 5, like a wrong password) rather than "there is no
    /// TPM to ask" or another failure?
    pub fn slot_refused(&self) -> bool {
        match self {
            SlotError::Store(e) => e.kind() == libkeyring::ErrorKind::WrongPassword,
            SlotError::Tpm(e) => matches!(
                e,
                Error::PolicyMismatch
                    | Error::WrongPin
                    | Error::PinRequired
                    | Error::Lockout
                    | Error::Damaged(_)
                    | Error::Malformed(_)
            ),
            SlotError::NoSlot => true,
        }
    }
}

/// Where and how to reach the TPM, and for how long.
#[derive(Debug, Clone)]
pub struct Unsealer {
    pub tcti: Tcti,
    /// Each TPM operation (one seal or unseal: a primary key, a session, the command) ends
    /// within this, or its child process is killed.
    pub within: Duration,
    /// Run the TPM work as this user (the PAM module, which runs as root).
    pub as_user: Option<Account>,
}

impl Unsealer {
    /// Seal a fresh key to the TPM as `policy` says and add it as keyslot `name`, after
    /// `credential` opened the store (a wrong password costs no TPM work). `login`: the PAM
    /// module tries it at a login without a password.
    pub fn add_slot<'a>(
        &self,
        store: &Store,
        credential: impl Into<Credential<'a>>,
        name: &str,
        policy: &Policy,
        pin: Option<&[u8]>,
        login: bool,
    ) -> Result<(), SlotError> {
        if policy.pin != pin.is_some() {
            return Err(Error::PinRequired.into());
        }
        let mut failed = None;
        let added =
            store.add_tpm2_slot(
                credential,
                name,
                policy.pcrs,
                policy.pin,
                login,
                || match seal(&self.tcti, policy, pin, self.within) {
                    Ok((sealed, key)) => Ok((sealed.to_bytes(), key)),
                    Err(e) => {
                        let text = e.to_string();
                        failed = Some(e);
                        Err(libkeyring::Error::InvalidInput(text))
                    }
                },
            );
        match (added, failed) {
            (Ok(()), _) => Ok(()),
            (Err(_), Some(e)) => Err(e.into()),
            (Err(e), None) => Err(e.into()),
        }
    }

    /// Open the store with one of `slots` (from [`Store::tpm2_slots`]), in order; `pin` is asked
    /// for a slot that needs one (None: skip that slot). The first slot that opens wins; when
    /// none does, the error of the last one tried (a missing or hung TPM is reported at once:
    /// the other slots would meet the same).
    pub fn open<'s>(
        &self,
        store: &Store,
        slots: &'s [Tpm2Slot],
        pin: &mut dyn FnMut(&Tpm2Slot) -> Option<Zeroizing<Vec<u8>>>,
    ) -> Result<(Opened, &'s Tpm2Slot), SlotError> {
        let mut last = SlotError::NoSlot;
        for slot in slots {
            let policy = Policy {
                pcrs: slot.binding.pcrs,
                pin: slot.binding.pin,
            };
            let asked = if slot.binding.pin {
                match pin(slot) {
                    Some(p) => Some(p),
                    None => {
                        last = Error::PinRequired.into();
                        continue;
                    }
                }
            } else {
                None
            };
            let result = Sealed::from_bytes(&slot.sealed).and_then(|sealed| {
                unseal(
                    &self.tcti,
                    &sealed,
                    &policy,
                    asked.as_deref().map(|p| &p[..]),
                    self.within,
                    self.as_user.as_ref(),
                )
            });
            match result {
                Ok(key) => match store.open_with_tpm2(slot.index, &key) {
                    Ok(opened) => return Ok((opened, slot)),
                    Err(e) => last = e.into(),
                },
                // No TPM, or one that hangs: the other slots would meet the same (and a login
                // would wait a timeout per slot).
                Err(
                    e @ (Error::NoTpm(_)
                    | Error::Permission(_)
                    | Error::InvalidTcti(_)
                    | Error::Timeout(_)),
                ) => return Err(e.into()),
                Err(e) => last = e.into(),
            }
        }
        Err(last)
    }
}
