//! Exports that open, create, unlock and lock a store.

use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use libkeyring::{KdfParams, Store, UnlockOptions};

use crate::ffi::*;
use crate::*;

/// Open the store at `path` (NULL: the default store) into `*out`; free with keyringrs_close.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_open(
    path: *const c_char,
    out: *mut *mut keyringrs_store,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let store = Store::open(unsafe { store_path(path) }?)?;
        // SAFETY: the caller's contract above.
        unsafe { hand_out(out, keyringrs_store { store }, "out") }
    })
}

/// Create a store at `path` (NULL: the default store) protected by `password`, leave it unlocked
/// in this session, and return it in `*out`. `kdf` NULL: the default Argon2id cost.
///
/// # Safety
/// `path` NULL or NUL-terminated; `password` points to `password_len` bytes; `kdf` NULL or valid;
/// `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_init(
    path: *const c_char,
    password: *const u8,
    password_len: usize,
    kdf: *const keyringrs_kdf,
    out: *mut *mut keyringrs_store,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (path, password) = unsafe {
            (
                store_path(path)?,
                bytes(password, password_len, "password")?,
            )
        };
        // SAFETY: the caller's contract above (NULL or valid).
        let kdf = match unsafe { kdf.as_ref() } {
            None => KdfParams::DEFAULT,
            Some(k) => KdfParams::new(k.memory_kib, k.time, 1)?,
        };
        let opts = UnlockOptions {
            kdf,
            ..Default::default()
        };
        let store = Store::init(path, password, &opts)?;
        // SAFETY: the caller's contract above.
        unsafe { hand_out(out, keyringrs_store { store }, "out") }
    })
}

/// Close a handle from keyringrs_open/keyringrs_init (NULL is ignored). Does not lock.
///
/// # Safety
/// `store` is NULL or a handle not yet closed; it must not be used afterwards.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_close(store: *mut keyringrs_store) {
    if !store.is_null() {
        // SAFETY: a handle from Box::into_raw, closed once per the contract.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(store) })));
    }
}

/// Unlock with `password` (checks it if already unlocked). `timeout_secs` 0: no timeout.
///
/// # Safety
/// `store` a live handle; `password` points to `password_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_unlock(
    store: *const keyringrs_store,
    password: *const u8,
    password_len: usize,
    timeout_secs: u32,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, pw) = unsafe { (handle(store)?, bytes(password, password_len, "password")?) };
        let opts = UnlockOptions {
            timeout: (timeout_secs > 0).then_some(timeout_secs),
            ..Default::default()
        };
        s.unlock(pw, &opts)?;
        Ok(())
    })
}

/// Unlock with the store's recovery key: its text as `keyringrs recovery-key add` printed it
/// (`key_len` bytes; case, spaces and dashes do not matter). `timeout_secs` 0: no timeout.
///
/// # Safety
/// `store` a live handle; `key` points to `key_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_unlock_recovery_key(
    store: *const keyringrs_store,
    key: *const u8,
    key_len: usize,
    timeout_secs: u32,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let (s, text) = unsafe { (handle(store)?, bytes(key, key_len, "key")?) };
        let key = libkeyring::recovery::RecoveryKey::parse(text)?;
        let opts = UnlockOptions {
            timeout: (timeout_secs > 0).then_some(timeout_secs),
            ..Default::default()
        };
        let opened = s.open_with_recovery_key(&key)?;
        s.install_opened(&opened, &opts)?;
        Ok(())
    })
}

/// The number of keyslots that open the store (`*count`), and how many of them are recovery
/// keys (`*recovery`, may be NULL). Names and details: `keyringrs slot list`.
///
/// # Safety
/// `store` a live handle; `count` valid for a write; `recovery` NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_slot_count(
    store: *const keyringrs_store,
    count: *mut usize,
    recovery: *mut usize,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let s = unsafe { handle(store) }?;
        if count.is_null() {
            return Err(invalid("count is NULL"));
        }
        let slots = s.slots()?;
        let rec = slots
            .iter()
            .filter(|x| x.kind == libkeyring::SlotKind::RecoveryKey)
            .count();
        // SAFETY: checked non-NULL / NULL-or-valid per the contract.
        unsafe {
            count.write(slots.len());
            if !recovery.is_null() {
                recovery.write(rec);
            }
        }
        Ok(())
    })
}

/// Lock (invalidate the session's key). Locking a locked store succeeds.
///
/// # Safety
/// `store` a live handle.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_lock(store: *const keyringrs_store) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        unsafe { handle(store) }?.lock()?;
        Ok(())
    })
}

/// `*locked` = whether this process can use the store now.
///
/// # Safety
/// `store` a live handle; `locked` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn keyringrs_is_locked(
    store: *const keyringrs_store,
    locked: *mut bool,
) -> keyringrs_status {
    guard(|| {
        // SAFETY: the caller's contract above.
        let l = unsafe { handle(store) }?.is_locked()?;
        // SAFETY: the caller's contract above.
        unsafe { put(locked, l, "locked") }
    })
}
