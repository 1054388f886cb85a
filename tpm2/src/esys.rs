//! The TPM side, through tss-esapi. Runs in the forked child only (see `bounded`).
//!
//! Parent: a primary ECC NIST P-256 storage key created each time under the owner hierarchy
//! from a fixed template (the TCG SRK template: restricted decrypt, AES-128-CFB, fixedTPM,
//! fixedParent, sensitiveDataOrigin, userWithAuth, noDA; empty auth), so the same TPM
//! re-creates the same key and another TPM (or a cleared one) a different one.
//!
//! Sealed object: keyedhash sealed data, nameAlg SHA-256, fixedTPM|fixedParent, noDA only
//! without a PIN, usable through its policy only (no userWithAuth): PolicyPCR over the
//! selected SHA-256 PCRs (none: no PolicyPCR), then with a PIN PolicyAuthValue, whose
//! authValue is SHA-256(PIN). The policy digest comes from a trial session in the TPM.

use sha2::{Digest as _, Sha256};
use tss_esapi::attributes::{ObjectAttributesBuilder, SessionAttributesBuilder};
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{KeyHandle, ObjectHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, PublicAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::resource_handles::Hierarchy;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    Auth, Digest, EccPoint, KeyedHashScheme, PcrSelectionList, PcrSelectionListBuilder, PcrSlot,
    Public, PublicBuilder, PublicEccParametersBuilder, PublicKeyedHashParameters, SensitiveData,
    SymmetricDefinition, SymmetricDefinitionObject,
};
use tss_esapi::Context;
use zeroize::Zeroizing;

use crate::error::{classify, Stage};
use crate::{Error, Policy, Sealed, Tcti, KEY_LEN};

/// An ESAPI context on one TPM, flushing every transient object and session it made when
/// dropped (a TPM without resource manager, such as swtpm over TCP, keeps them otherwise).
struct Tpm {
    ctx: Context,
    tcti: String,
    handles: Vec<ObjectHandle>,
}

impl Drop for Tpm {
    fn drop(&mut self) {
        for h in self.handles.drain(..).rev() {
            let _ = self.ctx.flush_context(h);
        }
    }
}

impl Tpm {
    fn open(tcti: &Tcti) -> Result<Tpm, Error> {
        if let Some(dev) = tcti.device() {
            check_device(dev)?;
        }
        let ctx = Context::new(tcti.name_conf()?)
            .map_err(|e| classify(e, Stage::Connect, tcti.as_str()))?;
        Ok(Tpm {
            ctx,
            tcti: tcti.as_str().to_owned(),
            handles: Vec::new(),
        })
    }

    fn err(&self, stage: Stage) -> impl Fn(tss_esapi::Error) -> Error + '_ {
        move |e| classify(e, stage, &self.tcti)
    }

    fn forget(&mut self, h: ObjectHandle) {
        self.handles.retain(|x| *x != h);
    }

    /// The storage key, from the fixed template.
    fn primary(&mut self) -> Result<KeyHandle, Error> {
        let public = srk_template().map_err(self.err(Stage::Primary))?;
        let r = self
            .ctx
            .execute_with_nullauth_session(|c| {
                c.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .map_err(self.err(Stage::Primary))?;
        self.handles.push(r.key_handle.into());
        Ok(r.key_handle)
    }

    /// A session of `kind`; salted with `salt` (ECDH with the storage key) for parameter
    /// encryption with AES-128-CFB.
    fn session(
        &mut self,
        kind: SessionType,
        salt: Option<KeyHandle>,
    ) -> Result<AuthSession, Error> {
        let sym = if salt.is_some() {
            SymmetricDefinition::AES_128_CFB
        } else {
            SymmetricDefinition::Null
        };
        let s = self
            .ctx
            .start_auth_session(salt, None, None, kind, sym, HashingAlgorithm::Sha256)
            .map_err(self.err(Stage::Policy))?
            .ok_or_else(|| Error::Tpm("the TPM started no session".into()))?;
        self.handles.push(SessionHandle::from(s).into());
        Ok(s)
    }

    /// Run the policy's assertions in `s`: PolicyPCR over the current values of the selected
    /// PCRs (none selected: skipped), then PolicyAuthValue with a PIN.
    fn assert_policy(&mut self, s: PolicySession, policy: &Policy) -> Result<(), Error> {
        if let Some(pcrs) = selection(policy)? {
            self.ctx
                .policy_pcr(s, Digest::default(), pcrs)
                .map_err(self.err(Stage::Policy))?;
        }
        if policy.pin {
            self.ctx
                .policy_auth_value(s)
                .map_err(self.err(Stage::Policy))?;
        }
        Ok(())
    }
}

/// Open the device node ourselves first: the TCTI's errors lose the errno that tells a
/// missing TPM from one we may not use.
fn check_device(dev: &str) -> Result<(), Error> {
    match std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            Err(Error::Permission(dev.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NoTpm(format!("device:{dev} (no such device)")))
        }
        // EBUSY: /dev/tpm0 held by someone else; the TCTI will say what it says.
        Err(_) => Ok(()),
    }
}

fn srk_template() -> tss_esapi::Result<Public> {
    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_sensitive_data_origin(true)
        .with_user_with_auth(true)
        .with_no_da(true)
        .with_restricted(true)
        .with_decrypt(true)
        .build()?;
    let ecc = PublicEccParametersBuilder::new_restricted_decryption_key(
        SymmetricDefinitionObject::AES_128_CFB,
        EccCurve::NistP256,
    )
    .build()?;
    PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::Ecc)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_ecc_parameters(ecc)
        .with_ecc_unique_identifier(EccPoint::default())
        .build()
}

/// The SHA-256 bank selection of the policy's PCRs, None for none.
fn selection(policy: &Policy) -> Result<Option<PcrSelectionList>, Error> {
    if policy.pcrs == 0 {
        return Ok(None);
    }
    let slots = policy
        .pcr_list()
        .into_iter()
        .map(|i| PcrSlot::try_from(1u32 << i))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Error::InvalidInput(format!("PCR selection: {e}")))?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
        .map(Some)
        .map_err(|e| Error::InvalidInput(format!("PCR selection: {e}")))
}

/// The object's authValue for `pin`: SHA-256 of it, so that a PIN of any length fits.
fn pin_auth(pin: &[u8]) -> Result<Auth, Error> {
    let d = Zeroizing::new(<[u8; 32]>::from(Sha256::digest(pin)));
    Auth::try_from(d.to_vec()).map_err(|e| Error::Tpm(format!("auth value: {e}")))
}

/// Seal `key` to the TPM at `tcti` under `policy`.
pub(crate) fn seal(
    tcti: &Tcti,
    policy: &Policy,
    pin: Option<&[u8]>,
    key: &[u8; KEY_LEN],
) -> Result<Sealed, Error> {
    let mut tpm = Tpm::open(tcti)?;
    let primary = tpm.primary()?;

    let trial = tpm.session(SessionType::Trial, None)?;
    let trial_p = PolicySession::try_from(trial).map_err(tpm.err(Stage::Policy))?;
    tpm.assert_policy(trial_p, policy)?;
    let digest = tpm
        .ctx
        .policy_get_digest(trial_p)
        .map_err(tpm.err(Stage::Policy))?;
    let h = SessionHandle::from(trial).into();
    tpm.ctx.flush_context(h).map_err(tpm.err(Stage::Policy))?;
    tpm.forget(h);

    let attrs = ObjectAttributesBuilder::new()
        .with_fixed_tpm(true)
        .with_fixed_parent(true)
        .with_no_da(pin.is_none())
        .build()
        .map_err(tpm.err(Stage::Create))?;
    let public = PublicBuilder::new()
        .with_public_algorithm(PublicAlgorithm::KeyedHash)
        .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
        .with_object_attributes(attrs)
        .with_auth_policy(digest)
        .with_keyed_hash_parameters(PublicKeyedHashParameters::new(KeyedHashScheme::Null))
        .with_keyed_hash_unique_identifier(Digest::default())
        .build()
        .map_err(tpm.err(Stage::Create))?;
    let auth = pin.map(pin_auth).transpose()?;
    let data = SensitiveData::try_from(key.to_vec())
        .map_err(|e| Error::Tpm(format!("sealed data: {e}")))?;

    // The key travels to the TPM encrypted: an HMAC session salted with the storage key,
    // encrypting the command's first parameter (inSensitive).
    let hmac = tpm.session(SessionType::Hmac, Some(primary))?;
    let (a, m) = SessionAttributesBuilder::new()
        .with_decrypt(true)
        .with_continue_session(true)
        .build();
    tpm.ctx
        .tr_sess_set_attributes(hmac, a, m)
        .map_err(tpm.err(Stage::Policy))?;
    let r = tpm
        .ctx
        .execute_with_session(Some(hmac), |c| {
            c.create(primary, public, auth, Some(data), None, None)
        })
        .map_err(tpm.err(Stage::Create))?;
    Sealed::new(r.out_public, r.out_private)
}

/// Unseal `sealed` from the TPM at `tcti` under `policy`.
pub(crate) fn unseal(
    tcti: &Tcti,
    sealed: &Sealed,
    policy: &Policy,
    pin: Option<&[u8]>,
) -> Result<Zeroizing<[u8; KEY_LEN]>, Error> {
    let (public, private) = sealed.parts()?;
    let mut tpm = Tpm::open(tcti)?;
    let primary = tpm.primary()?;
    let object = tpm
        .ctx
        .execute_with_nullauth_session(|c| c.load(primary, private, public))
        .map_err(tpm.err(Stage::Load))?;
    tpm.handles.push(object.into());

    // Salted policy session; the TPM encrypts the response's first parameter (the key).
    let session = tpm.session(SessionType::Policy, Some(primary))?;
    let (a, m) = SessionAttributesBuilder::new()
        .with_encrypt(true)
        .with_continue_session(true)
        .build();
    tpm.ctx
        .tr_sess_set_attributes(session, a, m)
        .map_err(tpm.err(Stage::Policy))?;
    let ps = PolicySession::try_from(session).map_err(tpm.err(Stage::Policy))?;
    tpm.assert_policy(ps, policy)?;
    if let (true, Some(pin)) = (policy.pin, pin) {
        let auth = pin_auth(pin)?;
        tpm.ctx
            .tr_set_auth(object.into(), auth)
            .map_err(tpm.err(Stage::Policy))?;
    }
    let data = tpm
        .ctx
        .execute_with_session(Some(session), |c| c.unseal(object.into()))
        .map_err(tpm.err(Stage::Unseal))?;
    let bytes = data.value();
    if bytes.len() != KEY_LEN {
        return Err(Error::Damaged(format!(
            "it holds {} bytes, not a {KEY_LEN}-byte key",
            bytes.len()
        )));
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(bytes);
    Ok(key)
}

/// GetRandom(1) from the TPM at `tcti`.
pub(crate) fn probe(tcti: &Tcti) -> Result<(), Error> {
    let mut tpm = Tpm::open(tcti)?;
    tpm.ctx
        .execute_without_session(|c| c.get_random(1))
        .map_err(tpm.err(Stage::Other))?;
    Ok(())
}
