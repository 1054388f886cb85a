//! The TPM2 keyslot's TPM side: a 32-byte wrapping key sealed to this machine's TPM2, bound to
//! PCR values of the SHA-256 bank and optionally a PIN, following systemd-cryptenroll's
//! choices (an ECC P-256 storage key re-created from the SRK template each time; a keyedhash
//! sealed object usable through its policy only; salted, parameter-encrypted sessions).
//!
//! Every call talks to the TPM from a forked child under a deadline (see [`seal`]), so a TPM,
//! resource manager or simulator that hangs costs the caller the deadline only. All TPM
//! command marshalling is tpm2-tss's (through the `tss-esapi` crate).

mod bounded;
mod error;
mod esys;
mod policy;
mod sealed;
mod slot;
mod tcti;

use std::time::Duration;

use zeroize::Zeroizing;

pub use error::Error;
pub use policy::Policy;
pub use sealed::Sealed;
pub use slot::{SlotError, Unsealer};
pub use tcti::{Tcti, DEFAULT_TCTI};

/// Length of the sealed key.
pub const KEY_LEN: usize = 32;
/// Longest [`Sealed::to_bytes`] accepted.
pub const MAX_SEALED_LEN: usize = 4096;

/// A user to become before touching the TPM (see [`unseal`]).
#[derive(Debug, Clone)]
pub struct Account {
    /// The login name (for the supplementary groups, such as `tss`).
    pub name: String,
    /// The uid.
    pub uid: u32,
    /// The primary gid.
    pub gid: u32,
}

/// A PIN must not be empty (it would be a policy that anybody satisfies with nothing).
fn check_pin(pin: Option<&[u8]>) -> Result<(), Error> {
    match pin {
        Some([]) => Err(Error::InvalidInput("empty TPM2 PIN".into())),
        _ => Ok(()),
    }
}

/// Seal 32 fresh random bytes (the OS's RNG) to the TPM at `tcti` under `policy` (with
/// `policy.pin`, `pin` is required): returns the sealed object and the key. The TPM work runs
/// in a forked child killed after `within` ([`Error::Timeout`]).
pub fn seal(
    tcti: &Tcti,
    policy: &Policy,
    pin: Option<&[u8]>,
    within: Duration,
) -> Result<(Sealed, Zeroizing<[u8; KEY_LEN]>), Error> {
    policy.check()?;
    check_pin(pin)?;
    match (policy.pin, pin) {
        (true, None) => return Err(Error::PinRequired),
        (false, Some(_)) => {
            return Err(Error::InvalidInput(
                "a TPM2 PIN was given for a policy without PIN".into(),
            ))
        }
        _ => {}
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    getrandom::fill(&mut key[..]).map_err(|e| Error::Tpm(format!("OS randomness: {e}")))?;
    let out = bounded::run(within, &bounded::Become::Same, || {
        let sealed = esys::seal(tcti, policy, pin, &key)?;
        Ok(Zeroizing::new(sealed.to_bytes()))
    })?;
    let sealed = Sealed::from_bytes(&out)
        .map_err(|e| Error::Tpm(format!("the TPM returned an unusable object: {e}")))?;
    Ok((sealed, key))
}

/// Unseal the key from `sealed` on the TPM at `tcti`, with `policy` (the one it was sealed
/// with) and, when `policy.pin`, `pin` (else [`Error::PinRequired`]; ignored without).
/// `as_user`: the forked child drops to that user (its supplementary groups, such as `tss`,
/// then setresgid, setresuid) before any TPM or TCTI call; only root may ask for another
/// user than itself. Bounded by `within` like [`seal`].
pub fn unseal(
    tcti: &Tcti,
    sealed: &Sealed,
    policy: &Policy,
    pin: Option<&[u8]>,
    within: Duration,
    as_user: Option<&Account>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    policy.check()?;
    let pin = if policy.pin { pin } else { None };
    if policy.pin && pin.is_none() {
        return Err(Error::PinRequired);
    }
    check_pin(pin)?;
    if sealed.has_pin()? != policy.pin {
        return Err(Error::InvalidInput(if policy.pin {
            "the TPM2 object was sealed without PIN, the policy says PIN".into()
        } else {
            "the TPM2 object was sealed with a PIN, the policy says none".into()
        }));
    }
    let who = bounded::Become::plan(as_user)?;
    let out = bounded::run(within, &who, || {
        let key = esys::unseal(tcti, sealed, policy, pin)?;
        Ok(Zeroizing::new(key.to_vec()))
    })
    .map_err(|e| permission_text(e, tcti))?;
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    if out.len() != KEY_LEN {
        return Err(Error::Tpm(
            "the TPM2 helper returned a key of the wrong length".into(),
        ));
    }
    key.copy_from_slice(&out);
    Ok(key)
}

/// Is a TPM2 reachable at `tcti` (GetRandom(1))? Bounded and as `as_user` like [`unseal`].
pub fn probe(tcti: &Tcti, within: Duration, as_user: Option<&Account>) -> Result<(), Error> {
    let who = bounded::Become::plan(as_user)?;
    bounded::run(within, &who, || {
        esys::probe(tcti).map(|()| Zeroizing::new(Vec::new()))
    })
    .map_err(|e| permission_text(e, tcti))?;
    Ok(())
}

/// The child reports EACCES on a device with its path; say who may open it.
fn permission_text(e: Error, tcti: &Tcti) -> Error {
    let Error::Permission(path) = e else { return e };
    let _ = tcti;
    Error::Permission(sysinfo::device_hint(&path))
}

mod sysinfo {
    //! Owner, group and mode of a device node, for the permission error's text.
    #![allow(unsafe_code)]

    use std::ffi::CStr;
    use std::os::unix::fs::MetadataExt;

    /// "/dev/tpmrm0 is root:tss 0660: add the user to group tss".
    pub(super) fn device_hint(path: &str) -> String {
        let Ok(m) = std::fs::metadata(path) else {
            return format!("{path}: permission denied");
        };
        let user = user_name(m.uid()).unwrap_or_else(|| m.uid().to_string());
        let group = group_name(m.gid()).unwrap_or_else(|| m.gid().to_string());
        format!(
            "{path} is {user}:{group} {:04o}: add the user to group {group}",
            m.mode() & 0o7777
        )
    }

    fn user_name(uid: u32) -> Option<String> {
        let mut buf = vec![0 as libc::c_char; 4096];
        // SAFETY: an all-zero passwd is a valid value (null pointers, zero ids).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut out = std::ptr::null_mut();
        // SAFETY: `pw`, `buf` (of the length passed) and `out` are valid for writing.
        let r = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
        if r != 0 || out.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`.
        Some(
            unsafe { CStr::from_ptr(pw.pw_name) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    fn group_name(gid: u32) -> Option<String> {
        let mut buf = vec![0 as libc::c_char; 4096];
        // SAFETY: an all-zero group is a valid value (null pointers, zero id).
        let mut gr: libc::group = unsafe { std::mem::zeroed() };
        let mut out = std::ptr::null_mut();
        // SAFETY: `gr`, `buf` (of the length passed) and `out` are valid for writing.
        let r = unsafe { libc::getgrgid_r(gid, &mut gr, buf.as_mut_ptr(), buf.len(), &mut out) };
        if r != 0 || out.is_null() {
            return None;
        }
        // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`.
        Some(
            unsafe { CStr::from_ptr(gr.gr_name) }
                .to_string_lossy()
                .into_owned(),
        )
    }
}
