//! Exports that read, write, delete and list entries, and free what they handed out.

use std::ffi::{c_char, CString};

use zeroize::Zeroize;

use crate::ffi::*;
use crate::*;

/// Copy the secret of (service, username) into `buf` (capacity `cap`) and its length into
/// `*len`. If `cap` is too small: KEYRINGRS_BUFFER_TOO_SMALL, `*len` = the needed length, `buf`
/// untouched (call again with a larger buffer, or use keyringrs_get_alloc).
///
/// # Safety
/// `store` a live handle; `service`, `username` NUL-terminated; `buf` NULL (with `cap` 0) or
/// writable for `cap` bytes; `len` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_get(
    store: *const keyringrs_store,
    service: *const c_char,
    username: *const c_char,
    buf: *mut u8,
    cap: usize,
    len: *mut usize,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, service, username) = unsafe { entry_args(store, service, username) }?;
        if len.is_null() {
            return Err(invalid("len is NULL"));
        }
        let secret = s.get(service, username)?;
        // SAFETY: the caller's contract above.
        unsafe { put(len, secret.len(), "len") }?;
        if secret.len() > cap {
            return Err(Fail(
                KEYRINGRS_BUFFER_TOO_SMALL,
                format!(
                    "the secret needs {} bytes, the buffer has {cap}",
                    secret.len()
                ),
            ));
        }
        if !secret.is_empty() {
            if buf.is_null() {
                return Err(invalid("buf is NULL"));
            }
            // SAFETY: buf is writable for cap >= secret.len() bytes; the regions are distinct.
            unsafe { std::ptr::copy_nonoverlapping(secret.as_ptr(), buf, secret.len()) };
        }
        Ok(())
    })
}

/// The secret of (service, username) in a buffer allocated here: `*secret` (never NULL on
/// success, even for an empty secret) and `*len`. Free it with keyringrs_secret_free, which
/// wipes it.
///
/// # Safety
/// `store` a live handle; `service`, `username` NUL-terminated; `secret` and `len` valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_get_alloc(
    store: *const keyringrs_store,
    service: *const c_char,
    username: *const c_char,
    secret: *mut *mut u8,
    len: *mut usize,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, service, username) = unsafe { entry_args(store, service, username) }?;
        if secret.is_null() || len.is_null() {
            return Err(invalid("secret or len is NULL"));
        }
        let value = s.get(service, username)?;
        // One allocation of exactly the secret's size (at least 1 byte, so never NULL), filled
        // from the wiped library copy.
        let mut out = vec![0u8; value.len().max(1)].into_boxed_slice();
        out[..value.len()].copy_from_slice(&value);
        let n = value.len();
        let p = Box::into_raw(out).cast::<u8>();
        // SAFETY: the caller's contract above (both checked non-NULL).
        unsafe {
            secret.write(p);
            len.write(n);
        }
        Ok(())
    })
}

/// Wipe and free a secret from keyringrs_get_alloc (`len` as returned). NULL is ignored.
///
/// # Safety
/// `secret` is NULL or from keyringrs_get_alloc with this `len`, freed once.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_secret_free(secret: *mut u8, len: usize) {
    if secret.is_null() {
        return;
    }
    let alloc = len.max(1);
    // SAFETY: keyringrs_get_alloc allocated exactly max(len, 1) bytes as a boxed slice.
    let mut b = unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(secret, alloc)) };
    b.zeroize();
}

/// Store `secret` (`secret_len` bytes, may be 0) for (service, username), replacing any value.
///
/// # Safety
/// `store` a live handle; `service`, `username` NUL-terminated; `secret` readable for
/// `secret_len` bytes (NULL allowed when 0).
#[no_mangle]
pub unsafe extern "C" fn keyringrs_set(
    store: *const keyringrs_store,
    service: *const c_char,
    username: *const c_char,
    secret: *const u8,
    secret_len: usize,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, service, username, value) = unsafe {
            (
                handle(store)?,
                text(service, "service")?,
                text(username, "username")?,
                bytes(secret, secret_len, "secret")?,
            )
        };
        s.set(service, username, value)?;
        Ok(())
    })
}

/// Delete the entry (service, username); KEYRINGRS_NO_ENTRY if there is none.
///
/// # Safety
/// `store` a live handle; `service`, `username` NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_delete(
    store: *const keyringrs_store,
    service: *const c_char,
    username: *const c_char,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, service, username) = unsafe { entry_args(store, service, username) }?;
        s.delete(service, username)?;
        Ok(())
    })
}

/// Snapshot the (service, username) pairs into `*out`; walk with keyringrs_list_next, free with
/// keyringrs_list_free. A pair that cannot be a C string (a NUL byte in a name) and an entry
/// that does not open are left out, never failing the whole list; the CLI's `list` names them.
///
/// # Safety
/// `store` a live handle; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_list_open(
    store: *const keyringrs_store,
    out: *mut *mut keyringrs_list,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let s = unsafe { handle(store) }?;
        let items = s
            .list()?
            .into_iter()
            .filter_map(|(a, b)| Some((CString::new(a).ok()?, CString::new(b).ok()?)))
            .collect::<Vec<_>>();
        // SAFETY: the caller's contract above.
        unsafe { hand_out(out, keyringrs_list { items, next: 0 }, "out") }
    })
}

/// The next pair: true with `*service`, `*username` set (valid until keyringrs_list_free), or
/// false at the end.
///
/// # Safety
/// `list` from keyringrs_list_open, not freed; `service`, `username` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_list_next(
    list: *mut keyringrs_list,
    service: *mut *const c_char,
    username: *mut *const c_char,
) -> bool {
    // SAFETY: the caller's contract above (NULL checked).
    let Some(l) = (unsafe { list.as_mut() }) else {
        return false;
    };
    if service.is_null() || username.is_null() {
        return false;
    }
    let Some((s, u)) = l.items.get(l.next) else {
        return false;
    };
    l.next += 1;
    // SAFETY: both checked non-NULL; the strings live in the list until it is freed.
    unsafe {
        service.write(s.as_ptr());
        username.write(u.as_ptr());
    }
    true
}

/// Free a list (NULL is ignored).
///
/// # Safety
/// `list` NULL or from keyringrs_list_open, freed once.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_list_free(list: *mut keyringrs_list) {
    if !list.is_null() {
        // SAFETY: from Box::into_raw in keyringrs_list_open, freed once per the contract.
        drop(unsafe { Box::from_raw(list) });
    }
}

/// Wipe a password buffer the caller filled (a convenience: a wipe the compiler cannot drop).
///
/// # Safety
/// `buf` NULL or writable for `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_wipe(buf: *mut u8, len: usize) {
    if !buf.is_null() && len > 0 {
        // SAFETY: writable for len bytes per the contract.
        let s = unsafe { std::slice::from_raw_parts_mut(buf, len) };
        s.zeroize();
    }
}
