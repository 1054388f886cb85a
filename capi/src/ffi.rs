//! The boundary's rules, shared by every export: panics caught, pointers checked, errors turned
//! into a status and this thread's last-error message, values handed out to C.

use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;

use libkeyring::{Error, ErrorKind, Store};

use crate::{keyringrs_status, keyringrs_store, *};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn set_last_error(msg: &str) {
    let c = CString::new(msg.replace('\0', "?")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Internal failure: a status plus its message.
pub(crate) struct Fail(pub(crate) keyringrs_status, pub(crate) String);

impl From<Error> for Fail {
    fn from(e: Error) -> Fail {
        let status = match e.kind() {
            ErrorKind::Locked => KEYRINGRS_LOCKED,
            ErrorKind::NoEntry => KEYRINGRS_NO_ENTRY,
            ErrorKind::WrongPassword => KEYRINGRS_WRONG_PASSWORD,
            ErrorKind::NoStore => KEYRINGRS_NO_STORE,
            ErrorKind::Corrupt => KEYRINGRS_CORRUPT,
            ErrorKind::AccessDenied => KEYRINGRS_ACCESS_DENIED,
            ErrorKind::Quota => KEYRINGRS_QUOTA,
            ErrorKind::InvalidInput => KEYRINGRS_INVALID_INPUT,
            _ => KEYRINGRS_IO,
        };
        Fail(status, e.to_string())
    }
}

pub(crate) fn invalid(what: &str) -> Fail {
    Fail(KEYRINGRS_INVALID_INPUT, format!("invalid input: {what}"))
}

/// Run `f` with panics caught; record the error message for keyringrs_last_error.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), Fail>) -> keyringrs_status {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => KEYRINGRS_OK,
        Ok(Err(Fail(status, msg))) => {
            set_last_error(&msg);
            status
        }
        Err(_) => {
            set_last_error("internal error (panic) in libkeyringrs");
            KEYRINGRS_PANIC
        }
    }
}

/// A NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string that lives for `'a`.
pub(crate) unsafe fn text<'a>(p: *const c_char, name: &str) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(invalid(&format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and NUL-terminated per this function's contract.
    unsafe { CStr::from_ptr(p) }
        .to_str()
        .map_err(|_| invalid(&format!("{name} is not UTF-8")))
}

/// A byte buffer argument (`len` 0 allows NULL).
///
/// # Safety
/// `p` is NULL or points to `len` readable bytes that live for `'a`.
pub(crate) unsafe fn bytes<'a>(p: *const u8, len: usize, name: &str) -> Result<&'a [u8], Fail> {
    if len == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(invalid(&format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and `len` readable bytes per this function's contract.
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// The store behind a handle.
///
/// # Safety
/// `s` is NULL or a handle from keyringrs_open/keyringrs_init not yet closed.
pub(crate) unsafe fn handle<'a>(s: *const keyringrs_store) -> Result<&'a Store, Fail> {
    // SAFETY: per this function's contract.
    unsafe { s.as_ref() }
        .map(|h| &h.store)
        .ok_or_else(|| invalid("store handle is NULL"))
}

/// The store and the (service, username) of an entry call.
///
/// # Safety
/// As for [`handle`] and [`text`].
pub(crate) unsafe fn entry_args<'a>(
    store: *const keyringrs_store,
    service: *const c_char,
    username: *const c_char,
) -> Result<(&'a Store, &'a str, &'a str), Fail> {
    // SAFETY: this function's contract.
    unsafe {
        Ok((
            handle(store)?,
            text(service, "service")?,
            text(username, "username")?,
        ))
    }
}

/// Move `value` to the heap and hand it to C through `out` (freed by the matching free call).
///
/// # Safety
/// As for [`put`].
pub(crate) unsafe fn hand_out<T>(out: *mut *mut T, value: T, name: &str) -> Result<(), Fail> {
    if out.is_null() {
        return Err(invalid(&format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and writable per this function's contract.
    unsafe { out.write(Box::into_raw(Box::new(value))) };
    Ok(())
}

/// Write through an out-pointer.
///
/// # Safety
/// `out` is NULL or valid for a write of T.
pub(crate) unsafe fn put<T>(out: *mut T, value: T, name: &str) -> Result<(), Fail> {
    if out.is_null() {
        return Err(invalid(&format!("{name} is NULL")));
    }
    // SAFETY: non-NULL and writable per this function's contract.
    unsafe { out.write(value) };
    Ok(())
}

/// # Safety
/// `path` is NULL (the default store: `$KEYRINGRS_STORE`, `$XDG_DATA_HOME/keyringrs`,
/// `~/.local/share/keyringrs`) or a NUL-terminated string.
pub(crate) unsafe fn store_path(path: *const c_char) -> Result<PathBuf, Fail> {
    if path.is_null() {
        Ok(libkeyring::default_path()?)
    } else {
        // SAFETY: non-NULL and NUL-terminated per this function's contract.
        Ok(PathBuf::from(unsafe { text(path, "path") }?))
    }
}

/// The message of the last error on this thread (empty if none); valid until the next failing
/// call on this thread. Never NULL.
#[no_mangle]
pub extern "C" fn keyringrs_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// The library version, e.g. "0.1.0". Never NULL; static.
#[no_mangle]
pub extern "C" fn keyringrs_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
