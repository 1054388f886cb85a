//! The C ABI called as C would call it (the same `extern "C"` functions, raw pointers), on the
//! real kernel keyring in a fresh session keyring per test: every status, NULL arguments, the
//! caller's buffer too small, locked, no entry, no store, wrong password.
#![allow(unsafe_code)] // calling the C ABI

use std::ffi::{c_char, CStr, CString};
use std::ptr::{null, null_mut};

use keyringrs::keyringrs_status::*;
use keyringrs::*;
use keyringrs_tests::{fresh_session, TempDir, TEST_KDF_MEMORY, TEST_KDF_TIME};

const KDF: keyringrs_kdf = keyringrs_kdf {
    memory_kib: TEST_KDF_MEMORY,
    time: TEST_KDF_TIME,
};

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn last_error() -> String {
    // SAFETY: keyringrs_last_error never returns NULL and the string is NUL-terminated.
    unsafe { CStr::from_ptr(keyringrs_last_error()) }
        .to_string_lossy()
        .into_owned()
}

/// A fresh session and an initialised, unlocked store; closed on drop.
struct Fixture {
    _dir: TempDir,
    path: CString,
    store: *mut keyringrs_store,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        fresh_session();
        let dir = TempDir::new(tag);
        let path = c(dir.store().to_str().unwrap());
        let mut store = null_mut();
        // SAFETY: valid path, password and out-pointer.
        let st = unsafe { keyringrs_init(path.as_ptr(), b"pw".as_ptr(), 2, &KDF, &mut store) };
        assert_eq!(st, KEYRINGRS_OK, "{}", last_error());
        Fixture {
            _dir: dir,
            path,
            store,
        }
    }

    fn set(&self, s: &str, u: &str, v: &[u8]) -> keyringrs_status {
        // SAFETY: live handle, NUL-terminated strings, v.len() readable bytes.
        unsafe {
            keyringrs_set(
                self.store,
                c(s).as_ptr(),
                c(u).as_ptr(),
                v.as_ptr(),
                v.len(),
            )
        }
    }

    fn get_alloc(&self, s: &str, u: &str) -> Result<Vec<u8>, keyringrs_status> {
        let (mut p, mut n) = (null_mut(), 0usize);
        // SAFETY: live handle, NUL-terminated strings, valid out-pointers.
        let st = unsafe {
            keyringrs_get_alloc(self.store, c(s).as_ptr(), c(u).as_ptr(), &mut p, &mut n)
        };
        if st != KEYRINGRS_OK {
            return Err(st);
        }
        assert!(!p.is_null());
        // SAFETY: p holds n bytes from keyringrs_get_alloc; freed once right after the copy.
        let v = unsafe { std::slice::from_raw_parts(p, n) }.to_vec();
        // SAFETY: p and n as returned by keyringrs_get_alloc.
        unsafe { keyringrs_secret_free(p, n) };
        Ok(v)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // SAFETY: the handle from keyringrs_init, closed once.
        unsafe { keyringrs_close(self.store) };
    }
}

#[test]
fn set_get_both_ways_list_delete() {
    let f = Fixture::new("capi-roundtrip");
    let binary: Vec<u8> = (0..=255).collect();
    assert_eq!(f.set("example.org", "alice", &binary), KEYRINGRS_OK);
    assert_eq!(f.set("a:b", "c", b""), KEYRINGRS_OK);
    assert_eq!(f.get_alloc("example.org", "alice").unwrap(), binary);
    assert_eq!(f.get_alloc("a:b", "c").unwrap(), b"");

    // Caller's buffer: too small reports the needed length and leaves the buffer alone.
    let (s, u) = (c("example.org"), c("alice"));
    let mut buf = [0xAAu8; 16];
    let mut len = 0usize;
    // SAFETY: live handle, strings, buf writable for its length, len writable.
    let st = unsafe {
        keyringrs_get(
            f.store,
            s.as_ptr(),
            u.as_ptr(),
            buf.as_mut_ptr(),
            buf.len(),
            &mut len,
        )
    };
    assert_eq!((st, len), (KEYRINGRS_BUFFER_TOO_SMALL, 256));
    assert!(buf.iter().all(|&b| b == 0xAA));
    assert!(last_error().contains("needs 256 bytes"));
    let mut big = vec![0u8; 300];
    // SAFETY: as above with a large enough buffer.
    let st = unsafe {
        keyringrs_get(
            f.store,
            s.as_ptr(),
            u.as_ptr(),
            big.as_mut_ptr(),
            big.len(),
            &mut len,
        )
    };
    assert_eq!((st, len), (KEYRINGRS_OK, 256));
    assert_eq!(&big[..len], &binary[..]);

    // An entry that C cannot name (a NUL in its service, set through the Rust API) is left out
    // of the list; it used to make the whole listing fail.
    libkeyring::Store::open(f.path.to_str().unwrap())
        .unwrap()
        .set("nul\0name", "x", b"v")
        .unwrap();
    let mut list = null_mut();
    // SAFETY: live handle, valid out-pointer.
    let st = unsafe { keyringrs_list_open(f.store, &mut list) };
    assert_eq!(st, KEYRINGRS_OK);
    let mut seen = vec![];
    let (mut ps, mut pu): (*const c_char, *const c_char) = (null(), null());
    // SAFETY: list from keyringrs_list_open; strings valid until keyringrs_list_free.
    while unsafe { keyringrs_list_next(list, &mut ps, &mut pu) } {
        // SAFETY: set by keyringrs_list_next to NUL-terminated strings in the list.
        let pair = unsafe { (CStr::from_ptr(ps), CStr::from_ptr(pu)) };
        seen.push((
            pair.0.to_str().unwrap().to_owned(),
            pair.1.to_str().unwrap().to_owned(),
        ));
    }
    // SAFETY: freed once.
    unsafe { keyringrs_list_free(list) };
    seen.sort();
    assert_eq!(
        seen,
        [
            ("a:b".into(), "c".into()),
            ("example.org".into(), "alice".into())
        ]
    );

    // SAFETY: live handle and strings.
    let st = unsafe { keyringrs_delete(f.store, s.as_ptr(), u.as_ptr()) };
    assert_eq!(st, KEYRINGRS_OK);
    // SAFETY: as above.
    let st = unsafe { keyringrs_delete(f.store, s.as_ptr(), u.as_ptr()) };
    assert_eq!(st, KEYRINGRS_NO_ENTRY);
    assert_eq!(f.get_alloc("example.org", "alice"), Err(KEYRINGRS_NO_ENTRY));
    assert!(last_error().contains("no entry"), "{}", last_error());
}

#[test]
fn lock_unlock_and_wrong_password() {
    let f = Fixture::new("capi-lock");
    assert_eq!(f.set("s", "u", b"v"), KEYRINGRS_OK);
    let mut locked = true;
    // SAFETY: live handle, writable bool.
    let st = unsafe { keyringrs_is_locked(f.store, &mut locked) };
    assert_eq!(st, KEYRINGRS_OK);
    assert!(!locked);
    // SAFETY: live handle.
    assert_eq!(unsafe { keyringrs_lock(f.store) }, KEYRINGRS_OK);
    // SAFETY: live handle (locking twice succeeds).
    assert_eq!(unsafe { keyringrs_lock(f.store) }, KEYRINGRS_OK);
    // SAFETY: live handle, writable bool.
    let st = unsafe { keyringrs_is_locked(f.store, &mut locked) };
    assert_eq!(st, KEYRINGRS_OK);
    assert!(locked);
    assert_eq!(f.get_alloc("s", "u"), Err(KEYRINGRS_LOCKED));
    assert_eq!(f.set("s", "u", b"w"), KEYRINGRS_LOCKED);
    // SAFETY: live handle, 5 readable bytes.
    let st = unsafe { keyringrs_unlock(f.store, b"wrong".as_ptr(), 5, 0) };
    assert_eq!(st, KEYRINGRS_WRONG_PASSWORD);
    assert_eq!(f.get_alloc("s", "u"), Err(KEYRINGRS_LOCKED));
    // SAFETY: live handle, 2 readable bytes.
    let st = unsafe { keyringrs_unlock(f.store, b"pw".as_ptr(), 2, 60) };
    assert_eq!(st, KEYRINGRS_OK);
    assert_eq!(f.get_alloc("s", "u").unwrap(), b"v");

    // A second handle on the same path sees the same store.
    let mut other = null_mut();
    // SAFETY: valid path and out-pointer.
    let st = unsafe { keyringrs_open(f.path.as_ptr(), &mut other) };
    assert_eq!(st, KEYRINGRS_OK);
    // SAFETY: the handle just opened, closed once.
    unsafe { keyringrs_close(other) };
}

#[test]
fn no_store_null_arguments_and_bad_strings_are_typed_errors() {
    fresh_session();
    let dir = TempDir::new("capi-nostore");
    let path = c(dir.store().to_str().unwrap());
    let mut store = null_mut();
    // SAFETY: valid path and out-pointer.
    let st = unsafe { keyringrs_open(path.as_ptr(), &mut store) };
    assert_eq!(st, KEYRINGRS_NO_STORE);
    assert!(store.is_null());
    assert!(last_error().contains("no store at"), "{}", last_error());
    // SAFETY: NULL out-pointer is checked.
    let st = unsafe { keyringrs_open(path.as_ptr(), null_mut()) };
    assert_eq!(st, KEYRINGRS_NO_STORE);

    let f = Fixture::new("capi-null");
    let (s, u) = (c("s"), c("u"));
    let mut len = 0usize;
    // SAFETY: NULL handle, strings, buffer and out-pointers are all checked by the library.
    unsafe {
        assert_eq!(
            keyringrs_set(null(), s.as_ptr(), u.as_ptr(), null(), 0),
            KEYRINGRS_INVALID_INPUT
        );
        assert_eq!(
            keyringrs_set(f.store, null(), u.as_ptr(), null(), 0),
            KEYRINGRS_INVALID_INPUT
        );
        assert_eq!(
            keyringrs_set(f.store, s.as_ptr(), u.as_ptr(), null(), 3),
            KEYRINGRS_INVALID_INPUT
        );
        assert_eq!(
            keyringrs_get(f.store, s.as_ptr(), u.as_ptr(), null_mut(), 0, null_mut()),
            KEYRINGRS_INVALID_INPUT
        );
        assert_eq!(
            keyringrs_get_alloc(f.store, s.as_ptr(), null(), null_mut(), &mut len),
            KEYRINGRS_INVALID_INPUT
        );
        assert_eq!(
            keyringrs_is_locked(f.store, null_mut()),
            KEYRINGRS_INVALID_INPUT
        );
        assert_eq!(keyringrs_lock(null()), KEYRINGRS_INVALID_INPUT);
        assert!(!keyringrs_list_next(null_mut(), null_mut(), null_mut()));
        keyringrs_close(null_mut());
        keyringrs_list_free(null_mut());
        keyringrs_secret_free(null_mut(), 0);
    }
    assert!(last_error().contains("NULL"), "{}", last_error());
    let bad = [0xffu8, 0xfe, 0];
    // SAFETY: a NUL-terminated byte string that is not UTF-8.
    let st = unsafe { keyringrs_delete(f.store, bad.as_ptr().cast(), u.as_ptr()) };
    assert_eq!(st, KEYRINGRS_INVALID_INPUT);
    assert!(last_error().contains("not UTF-8"));
    // An empty secret through a NULL pointer is fine.
    // SAFETY: NULL with length 0 is allowed.
    let st = unsafe { keyringrs_set(f.store, s.as_ptr(), u.as_ptr(), null(), 0) };
    assert_eq!(st, KEYRINGRS_OK);
    // SAFETY: keyringrs_version returns a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(keyringrs_version()) };
    assert_eq!(version.to_str().unwrap(), env!("CARGO_PKG_VERSION"));
}

#[test]
fn the_recovery_key_unlocks_and_the_slots_are_counted() {
    let f = Fixture::new("capi-recovery");
    let store = libkeyring::Store::open(f.path.to_str().unwrap()).unwrap();
    let key = store.add_recovery_key(b"pw").unwrap();
    let text = key.to_text();
    let (mut count, mut recovery) = (0usize, 0usize);
    // SAFETY: live handle, valid out-pointers.
    let st = unsafe { keyringrs_slot_count(f.store, &mut count, &mut recovery) };
    assert_eq!((st, count, recovery), (KEYRINGRS_OK, 2, 1));
    // SAFETY: live handle.
    assert_eq!(unsafe { keyringrs_lock(f.store) }, KEYRINGRS_OK);
    let wrong = "c".repeat(64);
    // SAFETY: live handle, strings with their lengths.
    let st = unsafe { keyringrs_unlock_recovery_key(f.store, wrong.as_ptr(), wrong.len(), 0) };
    assert_eq!(st, KEYRINGRS_WRONG_PASSWORD);
    // SAFETY: as above.
    let st = unsafe { keyringrs_unlock_recovery_key(f.store, text.as_ptr(), text.len(), 0) };
    assert_eq!(st, KEYRINGRS_OK, "{}", last_error());
    assert_eq!(f.set("s", "u", b"v"), KEYRINGRS_OK);
}
