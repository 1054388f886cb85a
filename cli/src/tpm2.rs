//! The TPM2 keyslot from the command line: `slot add NAME --tpm2 [--pcrs LIST] [--pin] [--pam]`
//! and `unlock --tpm2` (docs/FORMAT.md "keyslot", docs/THREAT-MODEL.md). The TPM is the kernel's
//! resource manager, /dev/tpmrm0, unless TPM2TOOLS_TCTI or TCTI names another.

use std::path::Path;
use std::time::Duration;

use keyringrs_tpm2::{Policy, SlotError, Tcti, Unsealer};
use libkeyring::format::Tpm2Binding;
use libkeyring::{Credential, Store, UnlockOptions};

use crate::args::ScopeArg;
use crate::input::{one_secret, Password};
use crate::session::scope_that_outlives_us;
use crate::{Failure, Outcome};

/// How long one TPM operation may take here (a PIN's dictionary-attack delay included).
const WITHIN: Duration = Duration::from_secs(30);

/// Exit 5 for a slot that does not open (PCRs changed, wrong PIN, another TPM), like a wrong
/// password; 1 with the TPM's own words when there is no TPM to ask.
fn failure(e: SlotError) -> Failure {
    match e {
        SlotError::Store(e) => e.into(),
        e if e.slot_refused() => Failure(5, e.to_string()),
        e => Failure(1, e.to_string()),
    }
}

fn unsealer() -> Result<Unsealer, Failure> {
    Ok(Unsealer {
        tcti: Tcti::from_env().map_err(|e| failure(e.into()))?,
        within: WITHIN,
        as_user: None,
    })
}

/// "TPM2, PCRs 0,7, PIN, at login" for `slot list`.
pub fn describe(b: &Tpm2Binding) -> String {
    let mut s = format!("TPM2, {}", b.pcr_text());
    if b.pcrs != 0 {
        s.push_str(" (sha256)");
    }
    if b.pin {
        s.push_str(", PIN");
    }
    if b.login {
        s.push_str(", at login");
    }
    s
}

/// `slot add NAME --tpm2`: seal a fresh key to the TPM and wrap the master key with it.
pub fn add(
    store: &Store,
    credential: Credential<'_>,
    name: &str,
    pcrs: Option<&str>,
    pin: Option<&[u8]>,
    login: bool,
) -> Outcome {
    if pin.is_some_and(<[u8]>::is_empty) {
        return Err(crate::fail("refusing an empty PIN"));
    }
    let policy = Policy {
        pcrs: Policy::parse_pcrs(pcrs.unwrap_or("")).map_err(|e| failure(e.into()))?,
        pin: pin.is_some(),
    };
    let tpm = unsealer()?;
    tpm.add_slot(store, credential, name, &policy, pin, login)
        .map_err(failure)?;
    eprintln!(
        "keyringrs: added keyslot {name} ({}), sealed to the TPM2 at {}",
        describe(&Tpm2Binding {
            pcrs: policy.pcrs,
            pin: policy.pin,
            login,
            sealed: [0; 16],
        }),
        tpm.tcti
    );
    Ok(())
}

/// `unlock --tpm2`: the TPM2 keyslots in order; a PIN is asked (tty, or a line of stdin) only
/// for a slot that has one.
pub fn unlock(path: &Path, password_stdin: bool, timeout: Option<u32>, scope: ScopeArg) -> Outcome {
    let scope = scope_that_outlives_us(scope)?;
    let store = Store::open(path)?;
    let slots = store.tpm2_slots(false)?;
    if slots.is_empty() {
        return Err(failure(SlotError::NoSlot));
    }
    let tpm = unsealer()?;
    let mut asked: Option<Failure> = None;
    let mut pin = |slot: &libkeyring::Tpm2Slot| -> Option<Password> {
        match one_secret(
            password_stdin,
            &format!("TPM2 PIN of keyslot {}: ", slot.name),
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                asked = Some(e);
                None
            }
        }
    };
    let opened = tpm.open(&store, &slots, &mut pin);
    let (opened, _) = match (opened, asked) {
        (Ok(o), _) => o,
        (Err(_), Some(e)) => return Err(e),
        (Err(e), None) => return Err(failure(e)),
    };
    let opts = UnlockOptions {
        scope,
        timeout,
        ..Default::default()
    };
    if store.unlock_opened(&opened, &opts)?.migrated {
        eprintln!("keyringrs: migrated the store to format version 2");
    }
    Ok(())
}
