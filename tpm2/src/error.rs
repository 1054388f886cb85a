//! The crate's [`Error`], its encoding over the child's pipe, and the classification of
//! tss-esapi errors by the step they happened in.

use std::time::Duration;

use tss_esapi::constants::response_code::{Tss2ResponseCode, Tss2ResponseCodeKind};

/// What went wrong. No variant ever carries key bytes or a PIN.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The device is missing, nothing listens at the TCTI, or the TCTI library cannot connect.
    #[error("no TPM2 at {0}")]
    NoTpm(String),
    /// The device is there but not ours to open (EACCES).
    #[error("no access to the TPM2: {0}")]
    Permission(String),
    /// A TCTI string of an unknown kind or form.
    #[error("invalid TCTI: {0}")]
    InvalidTcti(String),
    /// An argument that cannot be right (a PCR above 23, an empty PIN, a user we cannot become).
    #[error("{0}")]
    InvalidInput(String),
    /// Sealed bytes that do not parse.
    #[error("malformed TPM2 sealed object: {0}")]
    Malformed(String),
    /// The PCR values are not those the object was sealed to.
    #[error("the TPM's PCR values differ from those the slot was sealed to")]
    PolicyMismatch,
    /// The policy needs a PIN and none was given.
    #[error("this TPM2 slot needs a PIN")]
    PinRequired,
    /// The TPM refused the PIN (TPM_RC_AUTH_FAIL / TPM_RC_BAD_AUTH).
    #[error("wrong TPM2 PIN")]
    WrongPin,
    /// Dictionary-attack lockout (TPM_RC_LOCKOUT).
    #[error("the TPM2 is in dictionary-attack lockout after too many wrong PINs: wait for it to recover or reset it with the lockout authorization")]
    Lockout,
    /// The TPM refuses to load the object: damaged, sealed to another TPM, or the TPM was cleared.
    #[error("the TPM2 refuses the sealed object ({0}): sealed to another TPM, the TPM was cleared, or the object is damaged")]
    Damaged(String),
    /// The deadline passed; the child was killed.
    #[error("the TPM2 did not answer within {0:?}")]
    Timeout(Duration),
    /// Anything else, with the TPM response code text.
    #[error("the TPM2 failed: {0}")]
    Tpm(String),
}

impl Error {
    /// The tag of this variant on the pipe and its message (empty for unit variants).
    pub(crate) fn encode(&self) -> (u8, String) {
        match self {
            Error::NoTpm(s) => (0, s.clone()),
            Error::Permission(s) => (1, s.clone()),
            Error::InvalidTcti(s) => (2, s.clone()),
            Error::InvalidInput(s) => (3, s.clone()),
            Error::Malformed(s) => (4, s.clone()),
            Error::PolicyMismatch => (5, String::new()),
            Error::PinRequired => (6, String::new()),
            Error::WrongPin => (7, String::new()),
            Error::Lockout => (8, String::new()),
            Error::Damaged(s) => (9, s.clone()),
            Error::Timeout(d) => (10, d.as_millis().to_string()),
            Error::Tpm(s) => (11, s.clone()),
        }
    }

    /// The inverse of [`Error::encode`]; an unknown tag is a [`Error::Tpm`].
    pub(crate) fn decode(tag: u8, msg: String) -> Error {
        match tag {
            0 => Error::NoTpm(msg),
            1 => Error::Permission(msg),
            2 => Error::InvalidTcti(msg),
            3 => Error::InvalidInput(msg),
            4 => Error::Malformed(msg),
            5 => Error::PolicyMismatch,
            6 => Error::PinRequired,
            7 => Error::WrongPin,
            8 => Error::Lockout,
            9 => Error::Damaged(msg),
            10 => Error::Timeout(Duration::from_millis(msg.parse().unwrap_or(0))),
            _ => Error::Tpm(msg),
        }
    }
}

/// The step a tss-esapi call belongs to: the same response code means different things in
/// different steps (an integrity failure while loading is a damaged object; an auth failure
/// on Unseal is a wrong PIN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening the TCTI and the ESAPI context.
    Connect,
    /// Creating the primary (storage) key.
    Primary,
    /// Sessions and policy commands.
    Policy,
    /// TPM2_Create of the sealed object.
    Create,
    /// TPM2_Load of the sealed object.
    Load,
    /// TPM2_Unseal.
    Unseal,
    /// GetRandom and the like.
    Other,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Primary => "create primary",
            Stage::Policy => "policy",
            Stage::Create => "create",
            Stage::Load => "load",
            Stage::Unseal => "unseal",
            Stage::Other => "command",
        }
    }
}

/// The 32-bit TSS2_RC behind a tss-esapi response code (its bitfield newtypes hide the field,
/// but implement `BitRange`).
fn raw_rc(rc: Tss2ResponseCode) -> u32 {
    use bitfield::BitRange;
    match rc {
        Tss2ResponseCode::Success => 0,
        Tss2ResponseCode::FormatZero(c) => c.bit_range(31, 0),
        Tss2ResponseCode::FormatOne(c) => c.bit_range(31, 0),
    }
}

/// The name of a TSS2 layer (bits 16..24 of a TSS2_RC; 0 is the TPM itself), as in
/// tss2_common.h.
fn layer_name(layer: u32) -> &'static str {
    match layer {
        6 => "FAPI",
        7 => "ESAPI",
        8 => "SAPI",
        9 => "marshalling",
        10 => "TCTI",
        11 => "resource manager",
        12 => "resource manager TPM",
        _ => "TSS",
    }
}

/// The TSS2_BASE_RC_* codes of tss2_common.h (the low 16 bits of a TSS layer's code).
fn base_name(base: u32) -> Option<&'static str> {
    const NAMES: [&str; 28] = [
        "general failure",
        "not implemented",
        "bad context",
        "ABI mismatch",
        "bad reference",
        "insufficient buffer",
        "bad sequence",
        "no connection",
        "try again",
        "I/O error",
        "bad value",
        "not permitted",
        "invalid sessions",
        "no decrypt parameter",
        "no encrypt parameter",
        "bad size",
        "malformed response",
        "insufficient context",
        "insufficient response",
        "incompatible TCTI",
        "not supported",
        "bad TCTI structure",
        "out of memory",
        "bad ESYS_TR handle",
        "multiple decrypt sessions",
        "multiple encrypt sessions",
        "response HMAC did not verify",
        "no configuration",
    ];
    (base as usize)
        .checked_sub(1)
        .and_then(|i| NAMES.get(i))
        .copied()
}

/// TSS2_BASE_RC_NO_CONNECTION and TSS2_BASE_RC_IO_ERROR: the TPM cannot be reached.
const BASE_RC_NO_CONNECTION: u32 = 8;
const BASE_RC_IO_ERROR: u32 = 10;

/// A tss-esapi error of step `stage`, against the TPM at `tcti`, as one of ours.
pub(crate) fn classify(e: tss_esapi::Error, stage: Stage, tcti: &str) -> Error {
    let rc = match e {
        tss_esapi::Error::WrapperError(k) => {
            return if stage == Stage::Connect {
                Error::NoTpm(format!("{tcti} ({k})"))
            } else {
                Error::Tpm(format!("{}: {k}", stage.name()))
            };
        }
        tss_esapi::Error::Tss2Error(rc) => rc,
    };
    let raw = raw_rc(rc);
    let layer = (raw >> 16) & 0xff;
    if layer != 0 {
        let base = raw & 0xffff;
        let what = match base_name(base) {
            Some(n) => format!("{} {n}, {raw:#x}", layer_name(layer)),
            None => format!("{} error {raw:#x}", layer_name(layer)),
        };
        return if stage == Stage::Connect
            || (layer == 10 && (base == BASE_RC_IO_ERROR || base == BASE_RC_NO_CONNECTION))
        {
            Error::NoTpm(format!("{tcti} ({}: {what})", stage.name()))
        } else {
            Error::Tpm(format!("{}: {what}", stage.name()))
        };
    }
    let text = || format!("{}: {rc} (TPM_RC {raw:#x})", stage.name());
    use Tss2ResponseCodeKind as K;
    match (rc.kind(), stage) {
        (Some(K::Lockout), _) => Error::Lockout,
        (Some(K::AuthFail | K::BadAuth), Stage::Unseal) => Error::WrongPin,
        (Some(K::PolicyFail | K::PcrChanged | K::Pcr), Stage::Unseal | Stage::Policy) => {
            Error::PolicyMismatch
        }
        // Warnings (out of memory, retry, testing) while loading are not the object's fault.
        (
            Some(
                K::ObjectMemory
                | K::SessionMemory
                | K::Memory
                | K::ObjectHandles
                | K::SessionHandles
                | K::Retry
                | K::Testing
                | K::Yielded
                | K::Canceled
                | K::NvRate
                | K::NvUnavailable
                | K::ContextGap,
            ),
            _,
        ) => Error::Tpm(text()),
        (_, Stage::Load) => Error::Damaged(text()),
        _ => Error::Tpm(text()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tss(raw: u32) -> tss_esapi::Error {
        tss_esapi::Error::Tss2Error(Tss2ResponseCode::from(raw))
    }

    #[test]
    fn classify_by_code_and_stage() {
        let c = |raw, stage| classify(tss(raw), stage, "swtpm:port=1");
        // TPM_RC_AUTH_FAIL and TPM_RC_BAD_AUTH on session 1.
        assert!(matches!(c(0x98e, Stage::Unseal), Error::WrongPin));
        assert!(matches!(c(0x9a2, Stage::Unseal), Error::WrongPin));
        assert!(matches!(c(0x98e, Stage::Primary), Error::Tpm(_)));
        // TPM_RC_POLICY_FAIL, TPM_RC_PCR_CHANGED, TPM_RC_LOCKOUT.
        assert!(matches!(c(0x99d, Stage::Unseal), Error::PolicyMismatch));
        assert!(matches!(c(0x128, Stage::Unseal), Error::PolicyMismatch));
        assert!(matches!(c(0x921, Stage::Unseal), Error::Lockout));
        // TPM_RC_INTEGRITY on parameter 1 while loading; TPM_RC_OBJECT_MEMORY is not damage.
        assert!(matches!(c(0x1df, Stage::Load), Error::Damaged(_)));
        assert!(matches!(c(0x902, Stage::Load), Error::Tpm(_)));
        // TSS2_TCTI_RC_IO_ERROR, TSS2_TCTI_RC_NO_CONNECTION; an ESAPI code is not the TPM's.
        let e = c(0xa000a, Stage::Connect);
        assert_eq!(
            e.to_string(),
            "no TPM2 at swtpm:port=1 (connect: TCTI I/O error, 0xa000a)"
        );
        assert!(matches!(c(0xa0008, Stage::Unseal), Error::NoTpm(_)));
        assert!(matches!(c(0x7001b, Stage::Unseal), Error::Tpm(m) if m.contains("ESAPI")));
        let w = tss_esapi::Error::WrapperError(tss_esapi::WrapperErrorKind::InvalidParam);
        assert!(matches!(classify(w, Stage::Connect, "x"), Error::NoTpm(_)));
    }

    #[test]
    fn encode_decode() {
        for e in [
            Error::NoTpm("a".into()),
            Error::Permission("b".into()),
            Error::InvalidTcti("c".into()),
            Error::InvalidInput("d".into()),
            Error::Malformed("e".into()),
            Error::PolicyMismatch,
            Error::PinRequired,
            Error::WrongPin,
            Error::Lockout,
            Error::Damaged("f".into()),
            Error::Timeout(Duration::from_millis(1500)),
            Error::Tpm("g".into()),
        ] {
            let (tag, msg) = e.encode();
            let back = Error::decode(tag, msg);
            assert_eq!(format!("{back:?}"), format!("{e:?}"));
        }
    }
}
