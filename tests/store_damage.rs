//! A damaged or tampered store, through the library, each test in a fresh session keyring:
//! flipped, truncated, swapped, rolled-back or foreign bytes, links, FIFOs and loose modes in its
//! place, hostile KDF costs and altered keyslots. Each is refused as Corrupt naming the file, or
//! reads as what it authentically is; never a panic.

use std::path::PathBuf;

use keyringrs_tests::fixtures::{corrupt_path, header_of, new_store, temp_store};
use keyringrs_tests::*;
use libkeyring::keyring::Keyring;
use libkeyring::{Error, ErrorKind, Store};

/// Checkpoint `s` (its journal into entry files), then a fresh handle on `dir`'s store: hand
/// edits then move no generation, and the handle that checkpointed remembers the bytes it wrote
/// (libkeyring::cache).
fn checkpointed(s: &Store, dir: &TempDir) -> Store {
    s.checkpoint().unwrap();
    Store::open(dir.store()).unwrap()
}

/// A temporary store (see `temp_store`) holding one entry, svc/u = `secret`.
fn with_one_entry(tag: &str, secret: &[u8]) -> (TempDir, Store) {
    let (dir, s) = temp_store(tag);
    s.set("svc", "u", secret).unwrap();
    (dir, s)
}

/// `with_one_entry`, the entry checkpointed into its file, a fresh handle (`checkpointed`) and
/// that file.
fn one_entry_file(tag: &str, secret: &[u8]) -> (TempDir, Store, PathBuf) {
    let (dir, s) = with_one_entry(tag, secret);
    let s = checkpointed(&s, &dir);
    let f = first_entry_file(&dir);
    (dir, s, f)
}

/// Why the store at `path` does not open.
fn open_error(path: impl AsRef<std::path::Path>) -> Error {
    Store::open(path.as_ref()).unwrap_err()
}

/// The first entry file of `dir`'s store.
fn first_entry_file(dir: &TempDir) -> PathBuf {
    files_under(&dir.store().join("entries")).remove(0)
}

#[test]
fn a_flipped_header_byte_anywhere_is_corrupt_naming_the_header() {
    let (dir, s) = temp_store("flip-header");
    s.lock().unwrap();
    let hpath = dir.store().join("header");
    let orig = std::fs::read(&hpath).unwrap();
    for i in 0..orig.len() {
        let mut b = orig.clone();
        b[i] ^= 0x40;
        std::fs::write(&hpath, &b).unwrap();
        let e = Store::open(dir.store())
            .and_then(|s| s.unlock(b"pw", &test_opts()).map(drop))
            .unwrap_err();
        assert!(corrupt_path(&e).ends_with("header"), "offset {i}: {e}");
        assert!(matches!(
            Keyring::Session.search(s.key_description()),
            Err(Error::Locked)
        ));
    }
    std::fs::write(&hpath, &orig).unwrap();
    s.unlock(b"pw", &test_opts()).unwrap();
}

#[test]
fn a_flipped_entry_byte_anywhere_is_corrupt_naming_the_entry() {
    // Out of the journal into its entry file (docs/FORMAT.md "journal").
    let (_dir, s, f) = one_entry_file("flip-entry", b"secret");
    let orig = std::fs::read(&f).unwrap();
    for i in 0..orig.len() {
        let mut b = orig.clone();
        b[i] ^= 0x01;
        std::fs::write(&f, &b).unwrap();
        let e = s.get("svc", "u").unwrap_err();
        assert_eq!(corrupt_path(&e), f.display().to_string(), "offset {i}");
        // Listing skips the damaged entry and reports it, naming the file.
        let (good, bad) = s.list_report().unwrap();
        assert!(good.is_empty(), "offset {i}");
        assert_eq!(bad.len(), 1, "offset {i}");
        assert_eq!(corrupt_path(&bad[0]), f.display().to_string(), "offset {i}");
    }
    std::fs::write(&f, &orig).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"secret");
}

#[test]
fn swapped_entry_files_are_corrupt() {
    let (dir, s) = temp_store("swap");
    s.set("one", "u", b"1").unwrap();
    s.set("two", "u", b"2").unwrap();
    let s = checkpointed(&s, &dir);
    let fs = files_under(&dir.store().join("entries"));
    let (a, b) = (
        std::fs::read(&fs[0]).unwrap(),
        std::fs::read(&fs[1]).unwrap(),
    );
    std::fs::write(&fs[0], &b).unwrap();
    std::fs::write(&fs[1], &a).unwrap();
    assert!(matches!(s.get("one", "u"), Err(Error::Corrupt { .. })));
    assert!(matches!(s.get("two", "u"), Err(Error::Corrupt { .. })));
}

#[test]
fn entries_from_another_store_do_not_open() {
    let (d1, d2) = (TempDir::new("other1"), TempDir::new("other2"));
    let s1 = new_store(&d1);
    let s2 = Store::init(d2.store(), b"pw", &test_opts()).unwrap();
    s1.set("svc", "u", b"1").unwrap();
    s2.set("svc", "u", b"2").unwrap();
    s1.checkpoint().unwrap();
    let s2 = checkpointed(&s2, &d2);
    let (f1, f2) = (first_entry_file(&d1), first_entry_file(&d2));
    std::fs::copy(&f1, &f2).unwrap();
    assert!(matches!(s2.get("svc", "u"), Err(Error::Corrupt { .. })));
}

#[test]
fn a_symlinked_entry_is_refused_and_its_target_untouched() {
    let (dir, s, f) = one_entry_file("symentry", b"x");
    let target = dir.path().join("target");
    std::fs::write(&target, b"do not touch").unwrap();
    std::fs::remove_file(&f).unwrap();
    std::os::unix::fs::symlink(&target, &f).unwrap();
    let e = s.get("svc", "u").unwrap_err();
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("symbolic link"), "{e}");
    // Overwriting goes through a new file and rename: the target is never written.
    assert!(matches!(
        s.set("svc", "u", b"y"),
        Err(Error::Corrupt { .. })
    ));
    assert_eq!(std::fs::read(&target).unwrap(), b"do not touch");
}

#[test]
fn a_symlinked_store_dir_or_header_is_refused() {
    let (dir, _s) = temp_store("symstore");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.store(), &link).unwrap();
    let e = open_error(&link);
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // A symlinked header.
    let h = dir.store().join("header");
    let real = dir.path().join("real-header");
    std::fs::rename(&h, &real).unwrap();
    std::os::unix::fs::symlink(&real, &h).unwrap();
    assert_eq!(open_error(dir.store()).kind(), ErrorKind::Corrupt);
}

#[test]
fn fifos_and_hard_links_and_loose_modes_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, s, f) = one_entry_file("oddfiles", b"x");
    // Hard link.
    let other = dir.path().join("hardlink");
    std::fs::hard_link(&f, &other).unwrap();
    assert!(s
        .get("svc", "u")
        .unwrap_err()
        .to_string()
        .contains("hard links"));
    std::fs::remove_file(&other).unwrap();
    // World-writable.
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o666)).unwrap();
    assert_eq!(s.get("svc", "u").unwrap_err().kind(), ErrorKind::Corrupt);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"x");
    // A FIFO in place of the entry: refused at once, never blocks. (A fresh handle: a long-lived
    // one keeps serving the authentic bytes it read until a writer bumps the generation.)
    std::fs::remove_file(&f).unwrap();
    let c = std::ffi::CString::new(f.as_os_str().as_encoded_bytes()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: c is a NUL-terminated path.
    let r = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
    assert_eq!(r, 0);
    assert!(Store::open(dir.store())
        .unwrap()
        .get("svc", "u")
        .unwrap_err()
        .to_string()
        .contains("not a regular file"));
    // A group-writable store dir.
    std::fs::set_permissions(dir.store(), std::fs::Permissions::from_mode(0o770)).unwrap();
    assert_eq!(open_error(dir.store()).kind(), ErrorKind::Corrupt);
}

#[test]
fn unknown_version_is_a_clear_error() {
    let (dir, _s) = temp_store("version");
    let h = dir.store().join("header");
    let mut b = std::fs::read(&h).unwrap();
    b[16] = 9;
    std::fs::write(&h, &b).unwrap();
    let e = open_error(dir.store());
    assert!(
        e.to_string().contains("unknown store format version 9"),
        "{e}"
    );
}

#[test]
fn a_store_truncated_at_any_offset_is_corrupt_never_a_panic() {
    let (dir, s) = with_one_entry("truncate", b"secret");
    s.checkpoint().unwrap();
    let entry = first_entry_file(&dir);
    for file in [dir.store().join("header"), entry] {
        let orig = std::fs::read(&file).unwrap();
        for n in 0..orig.len() {
            std::fs::write(&file, &orig[..n]).unwrap();
            let r = Store::open(dir.store()).and_then(|s2| s2.get("svc", "u"));
            let e = r.expect_err("a truncated file must not open");
            assert_eq!(corrupt_path(&e), file.display().to_string(), "cut at {n}");
        }
        std::fs::write(&file, &orig).unwrap();
    }
    assert_eq!(&**s.get("svc", "u").unwrap(), b"secret");
}

/// Rolling one entry back to an older version of itself is not detected (see
/// docs/THREAT-MODEL.md: whoever can write the user's files can delete them too); the older
/// version is authentic and is what `get` returns — never a panic, never a mix.
#[test]
fn an_older_generation_of_an_entry_restored_reads_as_that_generation() {
    let (dir, s) = with_one_entry("rollback", b"generation 1");
    s.checkpoint().unwrap();
    let f = first_entry_file(&dir);
    let old = std::fs::read(&f).unwrap();
    s.set("svc", "u", b"generation 2").unwrap();
    let s = checkpointed(&s, &dir);
    std::fs::write(&f, &old).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"generation 1");
}

/// A header with keyslots whose Argon2id costs add up beyond one unlock's budget is refused
/// before any derivation (it used to cost 8 × the per-slot cap: 25.7 s and 1 GiB in PAM).
#[test]
fn a_header_whose_kdf_costs_exceed_the_budget_is_refused_before_deriving() {
    use libkeyring::KdfParams;
    let (dir, s) = temp_store("kdf-budget");
    s.lock().unwrap();
    let mut h = header_of(&dir);
    let mut costly = h.slots[0].clone();
    if let libkeyring::format::SlotKey::Argon2id { kdf, .. } = &mut costly.key {
        *kdf = KdfParams::new(KdfParams::MAX_MEMORY_KIB, 4, 1).unwrap();
    }
    h.slots = vec![costly; 8];
    let anyone = libkeyring::crypto::MasterKey::generate().unwrap();
    std::fs::write(dir.store().join("header"), h.encode(&anyone)).unwrap();
    let started = std::time::Instant::now();
    let e = s.unlock(b"pw", &test_opts()).unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    assert!(matches!(e, Error::Corrupt { .. }), "{e}");
    assert!(e.to_string().contains("more than the"), "{e}");
}

/// A keyslot whose salt was altered and its (unkeyed) checksum recomputed looks like a wrong
/// password; the message says both (security review, item 9).
#[test]
fn an_altered_keyslot_with_a_recomputed_checksum_reports_both_causes() {
    let (dir, s) = temp_store("slot-salt");
    s.lock().unwrap();
    let mut h = header_of(&dir);
    if let libkeyring::format::SlotKey::Argon2id { salt, .. } = &mut h.slots[0].key {
        salt[0] ^= 1;
    }
    let anyone = libkeyring::crypto::MasterKey::generate().unwrap();
    std::fs::write(dir.store().join("header"), h.encode(&anyone)).unwrap();
    let e = s.unlock(b"pw", &test_opts()).unwrap_err();
    assert!(matches!(e, Error::WrongPassword), "{e}");
    assert!(
        e.to_string().contains("or the store's header was altered"),
        "{e}"
    );
    let o = keyringrs(&dir.store(), &["unlock", "--password-stdin"], b"pw\n");
    assert_exit(&o, 5);
}

/// One damaged entry never hides the others: listing skips it and names it; the CLI prints the
/// rest, names the file and exits 7 (security review, item 6).
#[test]
fn listing_skips_and_reports_an_entry_that_does_not_open() {
    let (dir, s) = temp_store("list-skip");
    s.set("a", "1", b"x").unwrap();
    s.set("b", "2", b"y").unwrap();
    let bad = dir.store().join("entries").join("ab".repeat(32));
    std::fs::write(&bad, vec![7u8; 200]).unwrap();
    let (good, problems) = s.list_report().unwrap();
    assert_eq!(good, [("a".into(), "1".into()), ("b".into(), "2".into())]);
    assert_eq!(problems.len(), 1);
    assert_eq!(corrupt_path(&problems[0]), bad.display().to_string());
    let o = keyringrs(&dir.store(), &["list"], b"");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "a\t1\nb\t2\n");
    assert_eq!(code(&o), 7);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&bad.display().to_string()), "{err}");
}

/// Every byte of a header with a recovery keyslot is authenticated: a flip anywhere makes the
/// header corrupt or opens nothing, never a wrong key.
#[test]
fn a_flipped_byte_in_a_header_with_a_recovery_slot_never_opens_with_a_wrong_key() {
    let (dir, s) = temp_store("recovery-flip");
    let key = s.add_recovery_key(b"pw").unwrap();
    s.lock().unwrap();
    let path = dir.store().join("header");
    let orig = std::fs::read(&path).unwrap();
    for i in (0..orig.len()).step_by(7) {
        let mut b = orig.clone();
        b[i] ^= 0x20;
        std::fs::write(&path, &b).unwrap();
        let r = s.open_with_recovery_key(&key);
        assert!(
            matches!(r, Err(Error::Corrupt { .. }) | Err(Error::WrongPassword)),
            "offset {i}: {r:?}"
        );
    }
    std::fs::write(&path, &orig).unwrap();
    assert!(s.open_with_recovery_key(&key).is_ok());
}

/// A rotation that meets an entry it cannot open changes nothing: the header, the password and
/// every other entry stay as they were (nothing is lost to a rotation).
#[test]
fn a_rotation_with_an_unreadable_entry_changes_nothing() {
    let (dir, s) = temp_store("rotate-bad");
    s.set("a", "1", b"kept").unwrap();
    s.checkpoint().unwrap();
    let before = files_under(&dir.store().join("entries"));
    s.set("b", "2", b"damaged").unwrap();
    s.checkpoint().unwrap();
    let header = std::fs::read(dir.store().join("header")).unwrap();
    // b's file is the one its set added (the open store's entry cache is not consulted).
    let added: Vec<_> = files_under(&dir.store().join("entries"))
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    assert_eq!(added.len(), 1, "{added:?}");
    let mut bytes = std::fs::read(&added[0]).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&added[0], &bytes).unwrap();
    let s = Store::open(dir.store()).unwrap();
    assert!(s.get("b", "2").is_err(), "one entry damaged");
    let e = s.rotate(b"pw", b"new", &test_opts()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    assert_eq!(std::fs::read(dir.store().join("header")).unwrap(), header);
    assert!(!dir.store().join("rotating").exists());
    assert_eq!(&**s.get("a", "1").unwrap(), b"kept");
    s.lock().unwrap();
    s.unlock(b"pw", &test_opts()).unwrap();
}
