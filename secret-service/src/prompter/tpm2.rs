//! The unlock prompt and the store's TPM2 keyslots (`keyringrs slot add NAME --tpm2`): a slot
//! without a PIN opens the store with the TPM before any dialog is shown, so an app's unlock
//! in an autologin whose login did not open the store needs nothing typed — unless a lock
//! policy locked it (screen lock, suspend), which only the user's answer undoes; a slot with a PIN is
//! tried with the dialog's answer when no password slot takes it. The TPM is /dev/tpmrm0
//! unless the daemon's TPM2TOOLS_TCTI or TCTI names another; each TPM operation ends within
//! [`WITHIN`].

use std::time::{Duration, Instant};

use keyringrs_tpm2::{Tcti, Unsealer};
use libkeyring::{Opened, Store, Tpm2Slot};
use zeroize::Zeroizing;

use super::{hold, unlock_options, Caller};
use crate::state::{log, State};

/// The longest one TPM operation may hold up a prompt.
const WITHIN: Duration = Duration::from_secs(10);

fn unsealer() -> Option<Unsealer> {
    match Tcti::from_env() {
        Ok(tcti) => Some(Unsealer {
            tcti,
            within: WITHIN,
            as_user: None,
        }),
        Err(e) => {
            log(format!("the TPM2 keyslots are not tried: {e}"));
            None
        }
    }
}

/// The store's TPM2 keyslots that `pin` says (with a PIN, or without).
fn slots(store: &Store, pin: bool) -> Vec<Tpm2Slot> {
    match store.tpm2_slots(false) {
        Ok(all) => all.into_iter().filter(|s| s.binding.pin == pin).collect(),
        Err(e) => {
            log(format!("the TPM2 keyslots are not tried: {e}"));
            vec![]
        }
    }
}

/// Unlock with a TPM2 keyslot that needs no PIN, if the store has one and the TPM opens it;
/// `true` when the store is unlocked (and held by the caller's login, as after a dialog).
pub(super) fn without_dialog(st: &State, caller: &Caller) -> bool {
    let Ok(store) = st.login.store() else {
        return false;
    };
    let slots = slots(&store, false);
    if slots.is_empty() {
        return false;
    }
    // A store a lock policy locked (at screen lock, at suspend) stays locked until the user
    // answers: an app's lookup must not undo the policy through the TPM.
    if let Some((why, _)) = libkeyring::lock_note::get(store.kernel_key()) {
        log(format!(
            "the store was locked at {why}: its TPM2 keyslot does not reopen it unasked; asking \
             for the password"
        ));
        return false;
    }
    let Some(tpm) = unsealer() else {
        return false;
    };
    let started = Instant::now();
    let opened = tpm.open(&store, &slots, &mut |_| None);
    let ms = started.elapsed().as_millis();
    let (opened, slot) = match opened {
        Ok(o) => o,
        Err(e) => {
            log(format!(
                "the TPM2 keyslot did not open the store ({e}; {ms} ms): asking for the password"
            ));
            return false;
        }
    };
    let opts = unlock_options();
    let held = store
        .unlock_opened(&opened, &opts)
        .and_then(|_| hold(&store, caller, &opts));
    let name = &slot.name;
    match held {
        Ok(how) => {
            log(format!(
                "unlocked the store through its TPM2 keyslot {name} ({} at {}, {ms} ms){how}",
                slot.binding.pcr_text(),
                tpm.tcti
            ));
            true
        }
        Err(e) => {
            log(format!(
                "the TPM2 keyslot {name} opened the store, but unlocking failed: {e}"
            ));
            false
        }
    }
}

/// `answer` as the PIN of the store's TPM2 keyslots that have one.
pub(super) fn with_pin(store: &Store, answer: &[u8]) -> Option<Opened> {
    let slots = slots(store, true);
    if slots.is_empty() || answer.is_empty() {
        return None;
    }
    let tpm = unsealer()?;
    match tpm.open(store, &slots, &mut |_| {
        Some(Zeroizing::new(answer.to_vec()))
    }) {
        Ok((opened, _)) => Some(opened),
        Err(e) => {
            log(format!("not the TPM2 PIN either ({e})"));
            None
        }
    }
}
