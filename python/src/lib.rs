//! `keyringrs._keyringrs`: the Python extension module over libkeyring. The public Python API is
//! `python/keyringrs/__init__.py` (Store, init, exceptions), `keyringrs.kernel` and
//! `keyringrs.backend`; types in `_keyringrs.pyi`.
//!
//! Secrets and passwords are copied out of Python objects into buffers wiped on drop; the GIL is
//! released while Argon2id or file and kernel I/O run.
// pyo3's macros expand to the unsafe CPython glue; this file writes no unsafe code itself.
#![allow(unsafe_code)]

use std::path::PathBuf;

use libkeyring::keyring::{KeySerial, Keyring};
use libkeyring::{ErrorKind, KdfParams, Scope, UnlockOptions};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};
use zeroize::Zeroizing;

create_exception!(
    keyringrs,
    Error,
    PyException,
    "Base class of keyringrs errors."
);
create_exception!(
    keyringrs,
    LockedError,
    Error,
    "The store's key is not in the kernel keyring: unlock first."
);
create_exception!(
    keyringrs,
    NoEntryError,
    Error,
    "No entry for this (service, username)."
);
create_exception!(
    keyringrs,
    WrongPasswordError,
    Error,
    "The password opens no keyslot of the store."
);
create_exception!(
    keyringrs,
    NoStoreError,
    Error,
    "There is no store at this path."
);
create_exception!(
    keyringrs,
    CorruptError,
    Error,
    "A store file failed authentication or is malformed."
);
create_exception!(
    keyringrs,
    AccessDeniedError,
    Error,
    "The key belongs to another uid, or a file is not readable."
);
create_exception!(
    keyringrs,
    QuotaError,
    Error,
    "The kernel key quota or the disk is full."
);
create_exception!(
    keyringrs,
    InvalidInputError,
    Error,
    "An argument was refused (too long, bad characters, bad parameters)."
);

/// The Python exception for a library error (one class per kind of the contract).
fn to_py(e: libkeyring::Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::Locked => LockedError::new_err(msg),
        ErrorKind::NoEntry => NoEntryError::new_err(msg),
        ErrorKind::WrongPassword => WrongPasswordError::new_err(msg),
        ErrorKind::NoStore => NoStoreError::new_err(msg),
        ErrorKind::Corrupt => CorruptError::new_err(msg),
        ErrorKind::AccessDenied => AccessDeniedError::new_err(msg),
        ErrorKind::Quota => QuotaError::new_err(msg),
        ErrorKind::InvalidInput => InvalidInputError::new_err(msg),
        _ => Error::new_err(msg),
    }
}

/// A secret or password argument: str (UTF-8), bytes or bytearray, copied into a wiped buffer.
fn secret_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Zeroizing<Vec<u8>>> {
    if let Ok(s) = obj.downcast::<PyString>() {
        return Ok(Zeroizing::new(s.to_str()?.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return Ok(Zeroizing::new(b.as_bytes().to_vec()));
    }
    if let Ok(b) = obj.downcast::<PyByteArray>() {
        return Ok(Zeroizing::new(b.to_vec()));
    }
    Err(PyTypeError::new_err(format!(
        "{what} must be str, bytes or bytearray"
    )))
}

fn kdf_params(memory_kib: Option<u32>, time: Option<u32>) -> PyResult<KdfParams> {
    let d = KdfParams::DEFAULT;
    KdfParams::new(
        memory_kib.unwrap_or(d.memory_kib()),
        time.unwrap_or(d.time()),
        1,
    )
    .map_err(to_py)
}

fn store_path(path: Option<PathBuf>) -> PyResult<PathBuf> {
    match path {
        Some(p) => Ok(p),
        None => libkeyring::default_path().map_err(to_py),
    }
}

/// An open keyringrs store.
/// One keyslot for Python: (index, name, kind, Argon2id KiB, Argon2id passes).
type SlotRow = (usize, String, &'static str, u32, u32);

#[pyclass(module = "keyringrs", frozen)]
struct Store {
    inner: libkeyring::Store,
}

#[pymethods]
impl Store {
    /// Open the store at `path` (default: `$KEYRINGRS_STORE`, `$XDG_DATA_HOME/keyringrs`,
    /// `~/.local/share/keyringrs`). Raises NoStoreError if there is none.
    #[new]
    #[pyo3(signature = (path=None))]
    fn new(py: Python<'_>, path: Option<PathBuf>) -> PyResult<Store> {
        let path = store_path(path)?;
        let inner = py
            .allow_threads(|| libkeyring::Store::open(path))
            .map_err(to_py)?;
        Ok(Store { inner })
    }

    /// The store's directory.
    #[getter]
    fn path(&self) -> PathBuf {
        self.inner.path().to_path_buf()
    }

    /// The store id (hex); the kernel key is `keyringrs:<id>`.
    #[getter]
    fn id(&self) -> String {
        self.inner.id()
    }

    /// Whether this process cannot use the store now (no key in its keyrings).
    #[getter]
    fn locked(&self, py: Python<'_>) -> PyResult<bool> {
        py.allow_threads(|| self.inner.is_locked()).map_err(to_py)
    }

    /// The secret of (service, username) as bytes, or None if there is no such entry.
    fn get_bytes<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        username: &str,
    ) -> PyResult<Option<Bound<'py, PyByteArray>>> {
        match py.allow_threads(|| self.inner.get(service, username)) {
            Ok(secret) => Ok(Some(PyByteArray::new(py, &secret))),
            Err(libkeyring::Error::NoEntry { .. }) => Ok(None),
            Err(e) => Err(to_py(e)),
        }
    }

    /// The secret of (service, username) as str, or None if there is no such entry.
    fn get<'py>(
        &self,
        py: Python<'py>,
        service: &str,
        username: &str,
    ) -> PyResult<Option<Bound<'py, PyString>>> {
        // One copy out of the decryption buffer (wiped on drop, not mlocked: it lives only
        // until the Python str, which no one can lock or wipe, is built from it).
        let got = py.allow_threads(|| {
            self.inner
                .get_with(service, username, |s| Zeroizing::new(s.to_vec()))
        });
        match got {
            // Straight from the wiped buffer into the Python str: no intermediate String copy
            // left unwiped in freed memory (and one allocation less on the hot path).
            Ok(secret) => std::str::from_utf8(&secret)
                .map(|s| Some(PyString::new(py, s)))
                .map_err(|_| PyValueError::new_err("the secret is not UTF-8 text: use get_bytes")),
            Err(libkeyring::Error::NoEntry { .. }) => Ok(None),
            Err(e) => Err(to_py(e)),
        }
    }

    /// Store `secret` (str, bytes or bytearray) for (service, username), replacing any value.
    fn set(
        &self,
        py: Python<'_>,
        service: &str,
        username: &str,
        secret: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let secret = secret_arg(secret, "secret")?;
        py.allow_threads(|| self.inner.set(service, username, &secret))
            .map_err(to_py)
    }

    /// Delete the entry; NoEntryError if there is none.
    fn delete(&self, py: Python<'_>, service: &str, username: &str) -> PyResult<()> {
        py.allow_threads(|| self.inner.delete(service, username))
            .map_err(to_py)
    }

    /// Every (service, username), sorted.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<(String, String)>> {
        py.allow_threads(|| self.inner.list()).map_err(to_py)
    }

    /// Unlock with `password` (checked even if already unlocked) for this session, or with the
    /// store's `recovery_key` (its text, as `keyringrs recovery-key add` printed it) instead;
    /// `timeout` in seconds; `scope` "session" (default) or "user".
    #[pyo3(signature = (password=None, timeout=None, scope="session", kdf_memory=None, kdf_time=None, recovery_key=None))]
    #[allow(clippy::too_many_arguments)]
    fn unlock(
        &self,
        py: Python<'_>,
        password: Option<&Bound<'_, PyAny>>,
        timeout: Option<u32>,
        scope: &str,
        kdf_memory: Option<u32>,
        kdf_time: Option<u32>,
        recovery_key: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let opts = UnlockOptions {
            kdf: kdf_params(kdf_memory, kdf_time)?,
            scope: scope.parse::<Scope>().map_err(to_py)?,
            timeout,
            ..Default::default()
        };
        match (password, recovery_key) {
            (Some(password), None) => {
                let password = secret_arg(password, "password")?;
                py.allow_threads(|| self.inner.unlock(&password, &opts))
                    .map(|_| ())
                    .map_err(to_py)
            }
            (None, Some(key)) => {
                let text = secret_arg(key, "recovery_key")?;
                py.allow_threads(|| {
                    let key = libkeyring::recovery::RecoveryKey::parse(&text)?;
                    let opened = self.inner.open_with_recovery_key(&key)?;
                    self.inner.install_opened(&opened, &opts)
                })
                .map(|_| ())
                .map_err(to_py)
            }
            _ => Err(to_py(libkeyring::Error::InvalidInput(
                "give either password or recovery_key".into(),
            ))),
        }
    }

    /// The keyslots: a list of `SlotRow`s (index, name, kind, kdf_memory_kib, kdf_time); kind is
    /// "login-password", "password", "recovery-key" or "tpm2" (whose kdf_memory_kib and kdf_time
    /// are 0: the TPM, not Argon2id, guards its key). Never a secret.
    fn slots(&self, py: Python<'_>) -> PyResult<Vec<SlotRow>> {
        py.allow_threads(|| self.inner.slots())
            .map(|v| {
                v.into_iter()
                    .map(|s| {
                        (
                            s.index,
                            s.name,
                            s.kind.name(),
                            s.kdf.map_or(0, |k| k.memory_kib()),
                            s.kdf.map_or(0, |k| k.time()),
                        )
                    })
                    .collect()
            })
            .map_err(to_py)
    }

    /// Lock: invalidate the key. Locking a locked store succeeds.
    fn lock(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.inner.lock())
            .map(|_| ())
            .map_err(to_py)
    }

    /// Move the journal's writes into entry files now (e.g. before copying the store's files;
    /// a full journal does it by itself).
    fn checkpoint(&self, py: Python<'_>) -> PyResult<()> {
        py.allow_threads(|| self.inner.checkpoint()).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!("keyringrs.Store({:?})", self.inner.path())
    }
}

/// Create a store at `path` (default as for Store) protected by `password`, unlocked in this
/// session; returns it.
#[pyfunction]
#[pyo3(signature = (password, path=None, kdf_memory=None, kdf_time=None))]
fn init(
    py: Python<'_>,
    password: &Bound<'_, PyAny>,
    path: Option<PathBuf>,
    kdf_memory: Option<u32>,
    kdf_time: Option<u32>,
) -> PyResult<Store> {
    let password = secret_arg(password, "password")?;
    let opts = UnlockOptions {
        kdf: kdf_params(kdf_memory, kdf_time)?,
        ..Default::default()
    };
    let path = store_path(path)?;
    let inner = py
        .allow_threads(|| libkeyring::Store::init(path, &password, &opts))
        .map_err(to_py)?;
    Ok(Store { inner })
}

/// A keyring argument: "@t", "@p", "@s", "@u", "@us" or a serial.
fn keyring_arg(obj: &Bound<'_, PyAny>) -> PyResult<Keyring> {
    if let Ok(n) = obj.extract::<i32>() {
        return Ok(Keyring::Id(KeySerial(n)));
    }
    match obj.extract::<String>()?.as_str() {
        "@t" => Ok(Keyring::Thread),
        "@p" => Ok(Keyring::Process),
        "@s" => Ok(Keyring::Session),
        "@u" => Ok(Keyring::User),
        "@us" => Ok(Keyring::UserSession),
        other => Err(PyValueError::new_err(format!(
            "keyring {other:?}: expected @t, @p, @s, @u, @us or a serial"
        ))),
    }
}

/// Add (or update) a `user` key; returns its serial.
#[pyfunction]
fn kernel_add(
    py: Python<'_>,
    description: &str,
    payload: &Bound<'_, PyAny>,
    keyring: &Bound<'_, PyAny>,
) -> PyResult<i32> {
    let payload = secret_arg(payload, "payload")?;
    let keyring = keyring_arg(keyring)?;
    py.allow_threads(|| keyring.add(description, &payload))
        .map(|k| k.0)
        .map_err(to_py)
}

/// Search a keyring (and those linked below it) for a `user` key; returns its serial.
#[pyfunction]
fn kernel_search(py: Python<'_>, description: &str, keyring: &Bound<'_, PyAny>) -> PyResult<i32> {
    let keyring = keyring_arg(keyring)?;
    py.allow_threads(|| keyring.search(description))
        .map(|k| k.0)
        .map_err(to_py)
}

/// The whole payload of a key, any size.
#[pyfunction]
fn kernel_read<'py>(py: Python<'py>, serial: i32) -> PyResult<Bound<'py, PyBytes>> {
    let payload = py
        .allow_threads(|| KeySerial(serial).read())
        .map_err(to_py)?;
    Ok(PyBytes::new(py, &payload))
}

#[pyfunction]
fn kernel_invalidate(py: Python<'_>, serial: i32) -> PyResult<()> {
    py.allow_threads(|| KeySerial(serial).invalidate())
        .map_err(to_py)
}

#[pyfunction]
fn kernel_set_timeout(py: Python<'_>, serial: i32, seconds: u32) -> PyResult<()> {
    py.allow_threads(|| KeySerial(serial).set_timeout(seconds))
        .map_err(to_py)
}

/// type, uid, gid, perm and description of a key.
#[pyfunction]
fn kernel_describe<'py>(py: Python<'py>, serial: i32) -> PyResult<Bound<'py, PyDict>> {
    let d = py
        .allow_threads(|| KeySerial(serial).describe())
        .map_err(to_py)?;
    let out = PyDict::new(py);
    out.set_item("type", d.key_type)?;
    out.set_item("uid", d.uid)?;
    out.set_item("gid", d.gid)?;
    out.set_item("perm", d.perm)?;
    out.set_item("description", d.description)?;
    Ok(out)
}

/// Give the calling thread (and processes it starts) a new session keyring.
#[pyfunction]
#[pyo3(signature = (name=None))]
fn kernel_join_session(py: Python<'_>, name: Option<&str>) -> PyResult<i32> {
    py.allow_threads(|| libkeyring::keyring::join_session(name))
        .map(|k| k.0)
        .map_err(to_py)
}

#[pymodule]
fn _keyringrs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("LockedError", py.get_type::<LockedError>())?;
    m.add("NoEntryError", py.get_type::<NoEntryError>())?;
    m.add("WrongPasswordError", py.get_type::<WrongPasswordError>())?;
    m.add("NoStoreError", py.get_type::<NoStoreError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("AccessDeniedError", py.get_type::<AccessDeniedError>())?;
    m.add("QuotaError", py.get_type::<QuotaError>())?;
    m.add("InvalidInputError", py.get_type::<InvalidInputError>())?;
    m.add_class::<Store>()?;
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_add, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_search, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_read, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_invalidate, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_set_timeout, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_describe, m)?)?;
    m.add_function(wrap_pyfunction!(kernel_join_session, m)?)?;
    Ok(())
}
