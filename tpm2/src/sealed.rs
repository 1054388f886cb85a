//! [`Sealed`]: the sealed object as the keyslot stores it, its TPM2B_PUBLIC followed by its
//! TPM2B_PRIVATE, both marshalled by tpm2-tss's marshalling library (through tss-esapi).
#![allow(unsafe_code)]

use std::fmt;

use tss_esapi::interface_types::algorithm::HashingAlgorithm;
use tss_esapi::structures::{Private, Public};
use tss_esapi::tss2_esys::{
    Tss2_MU_TPM2B_PRIVATE_Marshal, Tss2_MU_TPM2B_PRIVATE_Unmarshal, Tss2_MU_TPM2B_PUBLIC_Marshal,
    Tss2_MU_TPM2B_PUBLIC_Unmarshal, TPM2B_PRIVATE, TPM2B_PUBLIC,
};

use crate::{Error, MAX_SEALED_LEN};

/// A key sealed to one TPM: the public and private areas of a keyedhash object whose sealed
/// data is the key. Not secret by itself (the private area is encrypted by the TPM's storage
/// key), but only the TPM it was made on can load it.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    /// TPM2B_PUBLIC || TPM2B_PRIVATE.
    bytes: Vec<u8>,
    /// Where the TPM2B_PRIVATE starts.
    split: usize,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("public_len", &self.split)
            .field("private_len", &(self.bytes.len() - self.split))
            .finish()
    }
}

/// A TSS2_RC of the marshalling library as a message.
fn mu(what: &str, rc: u32) -> Result<(), String> {
    if rc == 0 {
        Ok(())
    } else {
        Err(format!("{what}: marshalling error {rc:#x}"))
    }
}

fn marshal_public(p: &TPM2B_PUBLIC) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; std::mem::size_of::<TPM2B_PUBLIC>()];
    let mut off = 0;
    // SAFETY: `p` is a valid TPM2B_PUBLIC; `buf` is writable for `buf.len()` bytes, the size
    // passed; `off` is a valid out pointer. The function writes no more than that size.
    let rc = unsafe { Tss2_MU_TPM2B_PUBLIC_Marshal(p, buf.as_mut_ptr(), buf.len() as _, &mut off) };
    mu("public area", rc)?;
    buf.truncate(off as usize);
    Ok(buf)
}

fn marshal_private(p: &TPM2B_PRIVATE) -> Result<Vec<u8>, String> {
    let mut buf = vec![0u8; std::mem::size_of::<TPM2B_PRIVATE>()];
    let mut off = 0;
    // SAFETY: as in marshal_public, for a TPM2B_PRIVATE.
    let rc =
        unsafe { Tss2_MU_TPM2B_PRIVATE_Marshal(p, buf.as_mut_ptr(), buf.len() as _, &mut off) };
    mu("private area", rc)?;
    buf.truncate(off as usize);
    Ok(buf)
}

impl Sealed {
    /// From the public and private areas TPM2_Create returned.
    pub(crate) fn new(public: Public, private: Private) -> Result<Sealed, Error> {
        let public = TPM2B_PUBLIC::try_from(public)
            .map_err(|e| Error::Tpm(format!("the sealed object's public area: {e}")))?;
        let private = TPM2B_PRIVATE::from(private);
        let mut bytes = marshal_public(&public).map_err(Error::Tpm)?;
        let split = bytes.len();
        bytes.extend(marshal_private(&private).map_err(Error::Tpm)?);
        if bytes.len() > MAX_SEALED_LEN {
            return Err(Error::Tpm(format!(
                "the sealed object is {} bytes, more than {MAX_SEALED_LEN}",
                bytes.len()
            )));
        }
        Ok(Sealed { bytes, split })
    }

    /// The bytes to store: TPM2B_PUBLIC || TPM2B_PRIVATE.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.clone()
    }

    /// Parse and check what [`Sealed::to_bytes`] made: both areas must unmarshal, fill `b`
    /// exactly, marshal back to the same bytes, and the public area must be a sealed data
    /// object of the kind [`crate::seal`] creates. Never panics.
    pub fn from_bytes(b: &[u8]) -> Result<Sealed, Error> {
        let bad = |m: String| Error::Malformed(m);
        if b.len() > MAX_SEALED_LEN {
            return Err(bad(format!(
                "{} bytes, more than {MAX_SEALED_LEN}",
                b.len()
            )));
        }
        let mut public = TPM2B_PUBLIC::default();
        let mut off = 0;
        // SAFETY: `b` is readable for `b.len()` bytes, the size passed; `off` and `public` are
        // valid out pointers; the function reads only within the size.
        let rc = unsafe {
            Tss2_MU_TPM2B_PUBLIC_Unmarshal(b.as_ptr(), b.len() as _, &mut off, &mut public)
        };
        mu("public area", rc).map_err(bad)?;
        let split = off as usize;
        let mut private = TPM2B_PRIVATE::default();
        // SAFETY: as above; `off` <= b.len() after a successful unmarshal.
        let rc = unsafe {
            Tss2_MU_TPM2B_PRIVATE_Unmarshal(b.as_ptr(), b.len() as _, &mut off, &mut private)
        };
        mu("private area", rc).map_err(bad)?;
        if off as usize != b.len() {
            return Err(bad(format!("{} trailing bytes", b.len() - off as usize)));
        }
        let again = [marshal_public(&public), marshal_private(&private)];
        match again {
            [Ok(p), Ok(q)] if p.len() == split && b[..split] == p[..] && b[split..] == q[..] => {}
            _ => return Err(bad("not in canonical form".into())),
        }
        let public = Public::try_from(public).map_err(|e| bad(format!("public area: {e}")))?;
        check_public(&public).map_err(bad)?;
        Private::try_from(private).map_err(|e| bad(format!("private area: {e}")))?;
        Ok(Sealed {
            bytes: b.to_vec(),
            split,
        })
    }

    /// The public and private areas, for TPM2_Load.
    pub(crate) fn parts(&self) -> Result<(Public, Private), Error> {
        let s = Sealed::from_bytes(&self.bytes)?;
        let mut public = TPM2B_PUBLIC::default();
        let mut private = TPM2B_PRIVATE::default();
        let mut off = 0;
        // SAFETY: as in from_bytes, which has just accepted these bytes.
        let rc = unsafe {
            Tss2_MU_TPM2B_PUBLIC_Unmarshal(
                s.bytes.as_ptr(),
                s.bytes.len() as _,
                &mut off,
                &mut public,
            )
        };
        mu("public area", rc).map_err(Error::Malformed)?;
        // SAFETY: as above.
        let rc = unsafe {
            Tss2_MU_TPM2B_PRIVATE_Unmarshal(
                s.bytes.as_ptr(),
                s.bytes.len() as _,
                &mut off,
                &mut private,
            )
        };
        mu("private area", rc).map_err(Error::Malformed)?;
        let public = Public::try_from(public).map_err(|e| Error::Malformed(e.to_string()))?;
        let private = Private::try_from(private).map_err(|e| Error::Malformed(e.to_string()))?;
        Ok((public, private))
    }

    /// Whether the object was sealed with a PIN (it is then subject to dictionary-attack
    /// protection: noDA is clear).
    pub(crate) fn has_pin(&self) -> Result<bool, Error> {
        let (public, _) = self.parts()?;
        Ok(!public.object_attributes().no_da())
    }
}

/// The public area must be what seal makes: a keyedhash sealed data object, SHA-256 names,
/// bound to this TPM and parent, usable through its policy only.
fn check_public(p: &Public) -> Result<(), String> {
    let Public::KeyedHash { .. } = p else {
        return Err("not a keyedhash (sealed data) object".into());
    };
    if p.name_hashing_algorithm() != HashingAlgorithm::Sha256 {
        return Err("name algorithm is not SHA-256".into());
    }
    let a = p.object_attributes();
    if !a.fixed_tpm() || !a.fixed_parent() {
        return Err("not fixedTPM and fixedParent".into());
    }
    if a.user_with_auth()
        || a.sensitive_data_origin()
        || a.sign_encrypt()
        || a.decrypt()
        || a.restricted()
    {
        return Err("attributes of another kind of object".into());
    }
    if p.auth_policy().len() != 32 {
        return Err("no SHA-256 authorization policy".into());
    }
    Ok(())
}
