//! Whole-store behaviour through the library, on the real kernel keyring, each test in a fresh
//! session keyring: entries, locking, passwords and keyslots, KDF parameters, and what reaches the
//! disk. (A damaged or tampered store: tests/store_damage.rs.)

use std::path::Path;

use keyringrs_tests::fixtures::{header_of, temp_store};
use keyringrs_tests::*;
use libkeyring::keyring::{perm, Keyring};
use libkeyring::{Error, ErrorKind, Store};

#[test]
fn secrets_of_every_shape_round_trip() {
    let (_dir, s) = temp_store("roundtrip");
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
    let (_dir, s) = temp_store("overwrite");
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
    let (_dir, s) = temp_store("delete");
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
    let (_dir, s) = temp_store("list");
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
    let (_dir, s) = temp_store("ambiguous");
    s.set("a:b", "c", b"first").unwrap();
    s.set("a", "b:c", b"second").unwrap();
    assert_eq!(&**s.get("a:b", "c").unwrap(), b"first");
    assert_eq!(&**s.get("a", "b:c").unwrap(), b"second");
    assert_eq!(s.list().unwrap().len(), 2);
}

#[test]
fn lock_makes_every_operation_locked() {
    let (_dir, s) = temp_store("lock");
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
    let (_dir, s) = temp_store("wrongpw");
    s.lock().unwrap();
    assert!(wrong_password(s.unlock(b"nope", &test_opts())));
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
    let (_dir, s) = temp_store("perm");
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
    let (_dir, s) = temp_store("reunlock");
    let r = s.unlock(b"pw", &test_opts()).unwrap();
    assert!(r.already_unlocked);
    assert!(wrong_password(s.unlock(b"bad", &test_opts())));
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
    let (_dir, s) = temp_store("userscope");
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
    let (dir, s) = temp_store("passwd");
    s.set("svc", "u", b"secret").unwrap();
    let entries_before = snapshot(&dir.store().join("entries"));
    assert!(wrong_password(s.passwd(b"wrong", b"new", test_kdf())));
    s.passwd(b"pw", b"new", test_kdf()).unwrap();
    assert_eq!(
        snapshot(&dir.store().join("entries")),
        entries_before,
        "entries untouched"
    );
    s.lock().unwrap();
    assert!(wrong_password(s.unlock(b"pw", &test_opts())));
    s.unlock(b"new", &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"secret");
}

#[test]
fn weaker_kdf_parameters_are_upgraded_on_unlock() {
    let (dir, s) = temp_store("upgrade");
    s.lock().unwrap();
    let mut o = test_opts();
    o.kdf = libkeyring::KdfParams::new(512, 2, 1).unwrap();
    let r = s.unlock(b"pw", &o).unwrap();
    assert!(r.kdf_upgraded);
    assert_eq!(header_of(&dir).slots[0].kdf().unwrap(), o.kdf);
    // Stronger than configured: left alone.
    s.lock().unwrap();
    assert!(!s.unlock(b"pw", &test_opts()).unwrap().kdf_upgraded);
    assert_eq!(header_of(&dir).slots[0].kdf().unwrap(), o.kdf);
}

#[test]
fn no_plaintext_reaches_the_disk() {
    let (dir, s) = temp_store("plaintext");
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
    let (dir, s) = temp_store("modes");
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

/// Did `r` fail with WrongPassword?
fn wrong_password<T>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::WrongPassword))
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
    let (dir, s) = temp_store("oversize");
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
    assert_eq!(
        header_of(&dir).slots[0].kdf().unwrap(),
        libkeyring::KdfParams::DEFAULT
    );
    assert_eq!(libkeyring::KdfParams::DEFAULT.memory_kib(), 65536);
    s.lock().unwrap();
    let t = std::time::Instant::now();
    s.unlock(b"pw", &libkeyring::UnlockOptions::default())
        .unwrap();
    eprintln!("unlock with default KDF parameters: {:?}", t.elapsed());
    s.set("svc", "u", b"x").unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"x");
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
    let kdf = header_of(&dir).slots[0].kdf().unwrap();
    assert_eq!((kdf.memory_kib(), kdf.time()), (512, 3));
    // A password change keeps the stronger parameters too.
    s.passwd(
        b"pw",
        b"pw2",
        libkeyring::KdfParams::new(256, 1, 1).unwrap(),
    )
    .unwrap();
    let kdf = header_of(&dir).slots[0].kdf().unwrap();
    assert_eq!((kdf.memory_kib(), kdf.time()), (512, 3));
}

/// A recovery key opens the store when no password does, resyncs the login keyslot to a new
/// password, can be replaced and removed; passwords never open its slot and it never opens a
/// password's (issue: never lose the store to a password).
#[test]
fn a_recovery_key_opens_the_store_and_resyncs_the_login_password() {
    use libkeyring::recovery::RecoveryKey;
    let (_dir, s) = temp_store("recovery");
    s.set("svc", "u", b"kept").unwrap();
    assert!(wrong_password(s.add_recovery_key(b"wrong")));
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
    assert!(wrong_password(
        s.open_with_password(key.to_text().as_bytes())
    ));
    let other = RecoveryKey::generate().unwrap();
    assert!(wrong_password(s.open_with_recovery_key(&other)));
    // After an admin reset nobody knows "pw" any more: resync with the key.
    s.resync_with_recovery_key(&typed, b"new-login", test_kdf())
        .unwrap();
    s.lock().unwrap();
    assert!(wrong_password(s.unlock(b"pw", &test_opts())));
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

/// More password keyslots: either unlocks; removing one leaves the other working; the last one
/// that opens the store cannot be removed; only login-marked slots are tried at login.
#[test]
fn two_password_slots_either_unlocks_and_the_last_cannot_be_removed() {
    use libkeyring::SlotKind;
    let (_dir, s) = temp_store("slots");
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
    assert!(wrong_password(s.open_with_login_password(b"second")));
    // Remove the login slot (index 0, in the middle): the others still open, and a new slot
    // takes its place.
    s.remove_slot(b"second", "login").unwrap();
    assert!(wrong_password(s.unlock(b"pw", &test_opts())));
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
