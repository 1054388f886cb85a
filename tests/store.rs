//! Whole-store behaviour through the library, on the real kernel keyring, each test in a fresh
//! session keyring.

use std::path::Path;

use keyringrs_tests::*;
use libkeyring::keyring::{perm, Keyring};
use libkeyring::{Error, ErrorKind, Store};

fn new_store(dir: &TempDir) -> Store {
    fresh_session();
    Store::init(dir.store(), b"pw", &test_opts()).expect("init")
}

#[test]
fn secrets_of_every_shape_round_trip() {
    let dir = TempDir::new("roundtrip");
    let s = new_store(&dir);
    let all_bytes: Vec<u8> = (0..=255u8).collect();
    let mib: Vec<u8> = (0..(1 << 20)).map(|i| (i * 7 % 251) as u8).collect();
    let cases: Vec<(&str, &[u8])> = vec![
        ("empty", b""),
        ("one", b"x"),
        ("binary", &all_bytes),
        ("unicode", "pässwörd ✓ 密码 🔑".as_bytes()),
        ("mib", &mib),
    ];
    for (name, secret) in &cases {
        s.set(name, "user", secret).unwrap();
    }
    for (name, secret) in &cases {
        assert_eq!(&**s.get(name, "user").unwrap(), *secret, "{name}");
    }
    // Unicode in service and username too.
    s.set("сервис", "ユーザー", b"v").unwrap();
    assert_eq!(&**s.get("сервис", "ユーザー").unwrap(), b"v");
}

#[test]
fn overwrite_replaces_and_keeps_created_time() {
    let dir = TempDir::new("overwrite");
    let s = new_store(&dir);
    s.set("svc", "u", b"one").unwrap();
    let first = s.entry("svc", "u").unwrap();
    s.set("svc", "u", b"two").unwrap();
    let second = s.entry("svc", "u").unwrap();
    assert_eq!(&**second.secret, b"two");
    assert_eq!(second.created, first.created);
    assert_eq!(s.list().unwrap().len(), 1);
}

#[test]
fn delete_removes_and_missing_delete_is_no_entry() {
    let dir = TempDir::new("delete");
    let s = new_store(&dir);
    s.set("svc", "u", b"x").unwrap();
    s.delete("svc", "u").unwrap();
    assert_eq!(s.get("svc", "u").unwrap_err().kind(), ErrorKind::NoEntry);
    assert_eq!(s.delete("svc", "u").unwrap_err().kind(), ErrorKind::NoEntry);
    assert_eq!(
        s.delete("never", "was").unwrap_err().kind(),
        ErrorKind::NoEntry
    );
}

#[test]
fn list_is_sorted_and_complete() {
    let dir = TempDir::new("list");
    let s = new_store(&dir);
    assert!(s.list().unwrap().is_empty());
    for (svc, u) in [("b", "2"), ("a", "1"), ("b", "1")] {
        s.set(svc, u, b"x").unwrap();
    }
    let want: Vec<(String, String)> = [("a", "1"), ("b", "1"), ("b", "2")]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(s.list().unwrap(), want);
}

#[test]
fn separators_in_names_are_not_ambiguous() {
    let dir = TempDir::new("ambiguous");
    let s = new_store(&dir);
    s.set("a:b", "c", b"first").unwrap();
    s.set("a", "b:c", b"second").unwrap();
    assert_eq!(&**s.get("a:b", "c").unwrap(), b"first");
    assert_eq!(&**s.get("a", "b:c").unwrap(), b"second");
    assert_eq!(s.list().unwrap().len(), 2);
}

#[test]
fn lock_makes_every_operation_locked() {
    let dir = TempDir::new("lock");
    let s = new_store(&dir);
    s.set("svc", "u", b"x").unwrap();
    assert!(s.lock().unwrap());
    assert!(s.is_locked().unwrap());
    assert!(matches!(s.get("svc", "u"), Err(Error::Locked)));
    assert!(matches!(s.set("svc", "u", b"y"), Err(Error::Locked)));
    assert!(matches!(s.list(), Err(Error::Locked)));
    assert!(matches!(s.delete("svc", "u"), Err(Error::Locked)));
    // Locking a locked store is fine.
    assert!(!s.lock().unwrap());
    s.unlock(b"pw", &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"x");
}

#[test]
fn wrong_password_installs_nothing() {
    let dir = TempDir::new("wrongpw");
    let s = new_store(&dir);
    s.lock().unwrap();
    assert!(matches!(
        s.unlock(b"nope", &test_opts()),
        Err(Error::WrongPassword)
    ));
    assert!(matches!(
        Keyring::Session.search(s.key_description()),
        Err(Error::Locked)
    ));
    assert!(matches!(
        Keyring::User.search(s.key_description()),
        Err(Error::Locked)
    ));
    assert!(s.is_locked().unwrap());
}

#[test]
fn key_owner_and_permissions_are_exactly_the_design_ones() {
    let dir = TempDir::new("perm");
    let s = new_store(&dir);
    let d = s.find_key().unwrap().serial.describe().unwrap();
    assert_eq!(d.key_type, "user");
    assert_eq!(d.description, format!("keyringrs:{}", s.id()));
    assert_eq!(d.uid, libkeyring::sys::euid());
    assert_eq!(d.gid, libkeyring::sys::egid());
    // Possessor view+read, owner view+search (docs/THREAT-MODEL.md): not the turn-1 mask, which
    // let every process of the user read the key.
    assert_eq!(d.perm, perm::SESSION_KEY);
    assert_eq!(d.perm, 0x0309_0000);
    assert!(s
        .id()
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
}

#[test]
fn unlock_when_unlocked_checks_password_and_refreshes_timeout() {
    let dir = TempDir::new("reunlock");
    let s = new_store(&dir);
    let r = s.unlock(b"pw", &test_opts()).unwrap();
    assert!(r.already_unlocked);
    assert!(matches!(
        s.unlock(b"bad", &test_opts()),
        Err(Error::WrongPassword)
    ));
    assert!(
        !s.is_locked().unwrap(),
        "a wrong password must not lock an unlocked store"
    );
    let mut o = test_opts();
    o.timeout = Some(1);
    s.unlock(b"pw", &o).unwrap();
    assert_eq!(
        s.find_key().unwrap().serial.describe().unwrap().perm,
        perm::SESSION_KEY
    );
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(s.is_locked().unwrap(), "the key expires after its timeout");
}

#[test]
fn user_scope_key_is_found_and_invalidated_by_lock() {
    let dir = TempDir::new("userscope");
    let s = new_store(&dir);
    s.lock().unwrap();
    let mut o = test_opts();
    o.scope = libkeyring::Scope::User;
    s.unlock(b"pw", &o).unwrap();
    let k = Keyring::User.search(s.key_description()).unwrap();
    assert!(!s.is_locked().unwrap());
    s.lock().unwrap();
    assert!(
        matches!(k.read(), Err(Error::Locked)),
        "invalidated, not just unlinked"
    );
}

#[test]
fn passwd_rewraps_only() {
    let dir = TempDir::new("passwd");
    let s = new_store(&dir);
    s.set("svc", "u", b"secret").unwrap();
    let entries_before = snapshot(&dir.store().join("entries"));
    assert!(matches!(
        s.passwd(b"wrong", b"new", test_kdf()),
        Err(Error::WrongPassword)
    ));
    s.passwd(b"pw", b"new", test_kdf()).unwrap();
    assert_eq!(
        snapshot(&dir.store().join("entries")),
        entries_before,
        "entries untouched"
    );
    s.lock().unwrap();
    assert!(matches!(
        s.unlock(b"pw", &test_opts()),
        Err(Error::WrongPassword)
    ));
    s.unlock(b"new", &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"secret");
}

#[test]
fn weaker_kdf_parameters_are_upgraded_on_unlock() {
    let dir = TempDir::new("upgrade");
    let s = new_store(&dir);
    s.lock().unwrap();
    let mut o = test_opts();
    o.kdf = libkeyring::KdfParams::new(512, 2, 1).unwrap();
    let r = s.unlock(b"pw", &o).unwrap();
    assert!(r.kdf_upgraded);
    let bytes = std::fs::read(dir.store().join("header")).unwrap();
    let (h, _) = libkeyring::format::Header::decode(&bytes).unwrap();
    assert_eq!(h.slots[0].kdf, o.kdf);
    // Stronger than configured: left alone.
    s.lock().unwrap();
    assert!(!s.unlock(b"pw", &test_opts()).unwrap().kdf_upgraded);
    assert_eq!(
        libkeyring::format::Header::decode(&std::fs::read(dir.store().join("header")).unwrap())
            .unwrap()
            .0
            .slots[0]
            .kdf,
        o.kdf
    );
}

#[test]
fn no_plaintext_reaches_the_disk() {
    let dir = TempDir::new("plaintext");
    let s = new_store(&dir);
    let (svc, user, secret) = (
        "canary-svc-9f3a1c",
        "canary-user-77b2e0",
        "canary-secret-5d1e4a",
    );
    s.set(svc, user, secret.as_bytes()).unwrap();
    let files = files_under(&dir.store());
    assert!(files.len() >= 2);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        for canary in [svc, user, secret] {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary} found in {}",
                f.display()
            );
        }
    }
}

#[test]
fn store_files_are_private() {
    use std::os::unix::fs::MetadataExt;
    let dir = TempDir::new("modes");
    let s = new_store(&dir);
    s.set("svc", "u", b"x").unwrap();
    for d in [dir.store(), dir.store().join("entries")] {
        assert_eq!(
            std::fs::metadata(&d).unwrap().mode() & 0o777,
            0o700,
            "{}",
            d.display()
        );
    }
    for f in files_under(&dir.store()) {
        assert_eq!(
            std::fs::metadata(&f).unwrap().mode() & 0o777,
            0o600,
            "{}",
            f.display()
        );
    }
}

fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            (f, b)
        })
        .collect()
}

fn corrupt_path(e: &Error) -> String {
    match e {
        Error::Corrupt { path, .. } => path.display().to_string(),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

#[test]
fn a_flipped_header_byte_anywhere_is_corrupt_naming_the_header() {
    let dir = TempDir::new("flip-header");
    let s = new_store(&dir);
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
    let dir = TempDir::new("flip-entry");
    let s = new_store(&dir);
    s.set("svc", "u", b"secret").unwrap();
    // Out of the journal into its entry file (docs/FORMAT.md "journal").
    s.checkpoint().unwrap();
    // A fresh handle: hand edits below move no generation, and the handle that checkpointed
    // remembers the bytes it wrote (libkeyring::cache).
    let s = Store::open(dir.store()).unwrap();
    let f = files_under(&dir.store().join("entries")).remove(0);
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
    let dir = TempDir::new("swap");
    let s = new_store(&dir);
    s.set("one", "u", b"1").unwrap();
    s.set("two", "u", b"2").unwrap();
    s.checkpoint().unwrap();
    // A fresh handle: hand edits below move no generation, and the handle that checkpointed
    // remembers the bytes it wrote (libkeyring::cache).
    let s = Store::open(dir.store()).unwrap();
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
    s2.checkpoint().unwrap();
    // A fresh handle: hand edits below move no generation, and a handle that checkpointed
    // remembers the bytes it wrote (libkeyring::cache).
    let s2 = Store::open(d2.store()).unwrap();
    let f1 = files_under(&d1.store().join("entries")).remove(0);
    let f2 = files_under(&d2.store().join("entries")).remove(0);
    std::fs::copy(&f1, &f2).unwrap();
    assert!(matches!(s2.get("svc", "u"), Err(Error::Corrupt { .. })));
}

#[test]
fn a_symlinked_entry_is_refused_and_its_target_untouched() {
    let dir = TempDir::new("symentry");
    let s = new_store(&dir);
    s.set("svc", "u", b"x").unwrap();
    s.checkpoint().unwrap();
    // A fresh handle: hand edits below move no generation, and the handle that checkpointed
    // remembers the bytes it wrote (libkeyring::cache).
    let s = Store::open(dir.store()).unwrap();
    let f = files_under(&dir.store().join("entries")).remove(0);
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
    let dir = TempDir::new("symstore");
    let _s = new_store(&dir);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(dir.store(), &link).unwrap();
    let e = Store::open(&link).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt, "{e}");
    // A symlinked header.
    let h = dir.store().join("header");
    let real = dir.path().join("real-header");
    std::fs::rename(&h, &real).unwrap();
    std::os::unix::fs::symlink(&real, &h).unwrap();
    assert_eq!(
        Store::open(dir.store()).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}

#[test]
fn fifos_and_hard_links_and_loose_modes_are_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("oddfiles");
    let s = new_store(&dir);
    s.set("svc", "u", b"x").unwrap();
    s.checkpoint().unwrap();
    // A fresh handle: hand edits below move no generation, and the handle that checkpointed
    // remembers the bytes it wrote (libkeyring::cache).
    let s = Store::open(dir.store()).unwrap();
    let f = files_under(&dir.store().join("entries")).remove(0);
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
    assert_eq!(
        Store::open(dir.store()).unwrap_err().kind(),
        ErrorKind::Corrupt
    );
}

#[test]
fn unknown_version_is_a_clear_error() {
    let dir = TempDir::new("version");
    let _s = new_store(&dir);
    let h = dir.store().join("header");
    let mut b = std::fs::read(&h).unwrap();
    b[16] = 9;
    std::fs::write(&h, &b).unwrap();
    let e = Store::open(dir.store()).unwrap_err();
    assert!(
        e.to_string().contains("unknown store format version 9"),
        "{e}"
    );
}

#[test]
fn missing_store_is_no_store_and_init_twice_is_refused() {
    let dir = TempDir::new("nostore");
    fresh_session();
    assert_eq!(
        Store::open(dir.store()).unwrap_err().kind(),
        ErrorKind::NoStore
    );
    Store::init(dir.store(), b"pw", &test_opts()).unwrap();
    assert_eq!(
        Store::init(dir.store(), b"pw", &test_opts())
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput
    );
}

#[test]
fn oversize_secret_is_refused_before_writing() {
    let dir = TempDir::new("oversize");
    let s = new_store(&dir);
    let big = vec![0u8; libkeyring::format::MAX_SECRET_LEN + 1];
    assert_eq!(
        s.set("svc", "u", &big).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(files_under(&dir.store().join("entries")).is_empty());
}

/// The one test with the default Argon2id parameters (64 MiB, t=3, p=1).
#[test]
fn default_kdf_parameters_are_used_and_open() {
    let dir = TempDir::new("defaults");
    fresh_session();
    let s = Store::init(dir.store(), b"pw", &libkeyring::UnlockOptions::default()).unwrap();
    let (h, _) =
        libkeyring::format::Header::decode(&std::fs::read(dir.store().join("header")).unwrap())
            .unwrap();
    assert_eq!(h.slots[0].kdf, libkeyring::KdfParams::DEFAULT);
    assert_eq!(libkeyring::KdfParams::DEFAULT.memory_kib(), 65536);
    s.lock().unwrap();
    let t = std::time::Instant::now();
    s.unlock(b"pw", &libkeyring::UnlockOptions::default())
        .unwrap();
    eprintln!("unlock with default KDF parameters: {:?}", t.elapsed());
    s.set("svc", "u", b"x").unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"x");
}

#[test]
fn a_store_truncated_at_any_offset_is_corrupt_never_a_panic() {
    let dir = TempDir::new("truncate");
    let s = new_store(&dir);
    s.set("svc", "u", b"secret").unwrap();
    s.checkpoint().unwrap();
    let entry = files_under(&dir.store().join("entries")).remove(0);
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
    let dir = TempDir::new("rollback");
    let s = new_store(&dir);
    s.set("svc", "u", b"generation 1").unwrap();
    s.checkpoint().unwrap();
    let f = files_under(&dir.store().join("entries")).remove(0);
    let old = std::fs::read(&f).unwrap();
    s.set("svc", "u", b"generation 2").unwrap();
    s.checkpoint().unwrap();
    // A fresh handle: hand edits below move no generation, and the handle that checkpointed
    // remembers the bytes it wrote (libkeyring::cache).
    let s = Store::open(dir.store()).unwrap();
    std::fs::write(&f, &old).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"generation 1");
}

fn header_of(dir: &TempDir) -> libkeyring::format::Header {
    let bytes = std::fs::read(dir.store().join("header")).unwrap();
    libkeyring::format::Header::decode(&bytes).unwrap().0
}

/// A KDF "upgrade" takes the larger of each parameter: a 512 KiB/t=1 slot unlocked with the
/// configured 256 KiB/t=3 becomes 512 KiB/t=3, never 256 KiB/t=3 (security review, item 8).
#[test]
fn a_kdf_upgrade_never_lowers_a_parameter() {
    let dir = TempDir::new("kdf-max");
    fresh_session();
    let mut strong_memory = test_opts();
    strong_memory.kdf = libkeyring::KdfParams::new(512, 1, 1).unwrap();
    let s = Store::init(dir.store(), b"pw", &strong_memory).unwrap();
    s.lock().unwrap();
    let mut more_passes = test_opts();
    more_passes.kdf = libkeyring::KdfParams::new(256, 3, 1).unwrap();
    assert!(s.unlock(b"pw", &more_passes).unwrap().kdf_upgraded);
    let kdf = header_of(&dir).slots[0].kdf;
    assert_eq!((kdf.memory_kib(), kdf.time()), (512, 3));
    // A password change keeps the stronger parameters too.
    s.passwd(
        b"pw",
        b"pw2",
        libkeyring::KdfParams::new(256, 1, 1).unwrap(),
    )
    .unwrap();
    let kdf = header_of(&dir).slots[0].kdf;
    assert_eq!((kdf.memory_kib(), kdf.time()), (512, 3));
}

/// A header with keyslots whose Argon2id costs add up beyond one unlock's budget is refused
/// before any derivation (it used to cost 8 × the per-slot cap: 25.7 s and 1 GiB in PAM).
#[test]
fn a_header_whose_kdf_costs_exceed_the_budget_is_refused_before_deriving() {
    use libkeyring::KdfParams;
    let dir = TempDir::new("kdf-budget");
    let s = new_store(&dir);
    s.lock().unwrap();
    let mut h = header_of(&dir);
    let mut costly = h.slots[0].clone();
    costly.kdf = KdfParams::new(KdfParams::MAX_MEMORY_KIB, 4, 1).unwrap();
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
    let dir = TempDir::new("slot-salt");
    let s = new_store(&dir);
    s.lock().unwrap();
    let mut h = header_of(&dir);
    h.slots[0].salt[0] ^= 1;
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
    let dir = TempDir::new("list-skip");
    let s = new_store(&dir);
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

/// A recovery key opens the store when no password does, resyncs the login keyslot to a new
/// password, can be replaced and removed; passwords never open its slot and it never opens a
/// password's (issue: never lose the store to a password).
#[test]
fn a_recovery_key_opens_the_store_and_resyncs_the_login_password() {
    use libkeyring::recovery::RecoveryKey;
    let dir = TempDir::new("recovery");
    let s = new_store(&dir);
    s.set("svc", "u", b"kept").unwrap();
    assert!(matches!(
        s.add_recovery_key(b"wrong"),
        Err(Error::WrongPassword)
    ));
    let key = s.add_recovery_key(b"pw").unwrap();
    let slots = s.slots().unwrap();
    assert_eq!(slots.len(), 2);
    use libkeyring::SlotKind;
    assert_eq!(
        slots
            .iter()
            .map(|s| (s.name.as_str(), s.kind))
            .collect::<Vec<_>>(),
        [
            ("login", SlotKind::Login),
            ("recovery-key", SlotKind::RecoveryKey)
        ]
    );
    // The recovery key's text opens it; a password does not open the recovery slot.
    s.lock().unwrap();
    let typed = RecoveryKey::parse(key.to_text().as_bytes()).unwrap();
    let opened = s.open_with_recovery_key(&typed).unwrap();
    s.install_opened(&opened, &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"kept");
    assert!(matches!(
        s.open_with_password(key.to_text().as_bytes()),
        Err(Error::WrongPassword)
    ));
    let other = RecoveryKey::generate().unwrap();
    assert!(matches!(
        s.open_with_recovery_key(&other),
        Err(Error::WrongPassword)
    ));
    // After an admin reset nobody knows "pw" any more: resync with the key.
    s.resync_with_recovery_key(&typed, b"new-login", test_kdf())
        .unwrap();
    s.lock().unwrap();
    assert!(matches!(
        s.unlock(b"pw", &test_opts()),
        Err(Error::WrongPassword)
    ));
    s.unlock(b"new-login", &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"kept");
    // The recovery key itself opens the store for a keyslot change (DESIGN: `--recovery-key`).
    s.add_password(&typed, "by-key", b"added-with-key", false, test_kdf())
        .unwrap();
    s.unlock(b"added-with-key", &test_opts()).unwrap();
    s.remove_slot(&typed, "by-key").unwrap();
    // A new key replaces the old one; removing it leaves the password slot.
    let second = s.add_recovery_key(b"new-login").unwrap();
    assert!(s.open_with_recovery_key(&typed).is_err());
    assert!(s.open_with_recovery_key(&second).is_ok());
    assert_eq!(s.slots().unwrap().len(), 2);
    assert!(s.remove_recovery_key(b"new-login").unwrap());
    assert!(!s.remove_recovery_key(b"new-login").unwrap());
    assert_eq!(s.slots().unwrap().len(), 1);
    assert!(s.open_with_recovery_key(&second).is_err());
}

/// Every byte of a header with a recovery keyslot is authenticated: a flip anywhere makes the
/// header corrupt or opens nothing, never a wrong key.
#[test]
fn a_flipped_byte_in_a_header_with_a_recovery_slot_never_opens_with_a_wrong_key() {
    let dir = TempDir::new("recovery-flip");
    let s = new_store(&dir);
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

/// More password keyslots: either unlocks; removing one leaves the other working; the last one
/// that opens the store cannot be removed; only login-marked slots are tried at login.
#[test]
fn two_password_slots_either_unlocks_and_the_last_cannot_be_removed() {
    use libkeyring::SlotKind;
    let dir = TempDir::new("slots");
    let s = new_store(&dir);
    s.set("svc", "u", b"kept").unwrap();
    s.add_password(b"pw", "shared", b"second", false, test_kdf())
        .unwrap();
    s.add_password(b"pw", "disk", b"passphrase", true, test_kdf())
        .unwrap();
    assert!(matches!(
        s.add_password(b"pw", "disk", b"x", false, test_kdf()),
        Err(Error::InvalidInput(_))
    ));
    let kinds: Vec<_> = s
        .slots()
        .unwrap()
        .iter()
        .map(|x| (x.name.clone(), x.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            ("login".to_string(), SlotKind::Login),
            ("shared".to_string(), SlotKind::Password),
            ("disk".to_string(), SlotKind::Login)
        ]
    );
    for pw in [&b"pw"[..], b"second", b"passphrase"] {
        s.lock().unwrap();
        s.unlock(pw, &test_opts()).unwrap();
        assert_eq!(&**s.get("svc", "u").unwrap(), b"kept");
    }
    // At login only the login-marked ones.
    assert!(s.open_with_login_password(b"passphrase").is_ok());
    assert!(matches!(
        s.open_with_login_password(b"second"),
        Err(Error::WrongPassword)
    ));
    // Remove the login slot (index 0, in the middle): the others still open, and a new slot
    // takes its place.
    s.remove_slot(b"second", "login").unwrap();
    assert!(matches!(
        s.unlock(b"pw", &test_opts()),
        Err(Error::WrongPassword)
    ));
    s.unlock(b"second", &test_opts()).unwrap();
    s.unlock(b"passphrase", &test_opts()).unwrap();
    s.add_password(b"second", "again", b"third", false, test_kdf())
        .unwrap();
    assert_eq!(s.slots().unwrap()[0].name, "again");
    s.remove_slot(b"third", "disk").unwrap();
    s.remove_slot(b"third", "shared").unwrap();
    assert!(matches!(
        s.remove_slot(b"third", "again"),
        Err(Error::InvalidInput(_))
    ));
    s.unlock(b"third", &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"kept");
}

/// A rotation that meets an entry it cannot open changes nothing: the header, the password and
/// every other entry stay as they were (nothing is lost to a rotation).
#[test]
fn a_rotation_with_an_unreadable_entry_changes_nothing() {
    let dir = TempDir::new("rotate-bad");
    let s = new_store(&dir);
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
