//! The TPM2 keyslot's format through the library alone (docs/FORMAT.md "keyslot", kind 5): the
//! sealing is a closure here, so these run everywhere and test what libkeyring owns — the slot's
//! bytes, the sealed object's file, their authentication, and the slot's life (add, list, open,
//! remove, rotate). The TPM itself: tests/tpm2.rs (swtpm).

use keyringrs_tests::fixtures::temp_store;
use keyringrs_tests::*;
use libkeyring::crypto::sha256;
use libkeyring::format::{Header, SLOT_TPM2};
use libkeyring::{Error, ErrorKind, SlotKind, Store};
use zeroize::Zeroizing;

/// A stand-in for what the TPM seals: some bytes and a key.
fn fake_seal(
    sealed: &[u8],
    key: [u8; 32],
) -> impl FnOnce() -> libkeyring::Result<(Vec<u8>, Zeroizing<[u8; 32]>)> + '_ {
    move || Ok((sealed.to_vec(), Zeroizing::new(key)))
}

fn add(s: &Store, name: &str, key: [u8; 32], login: bool) {
    s.add_tpm2_slot(
        b"pw",
        name,
        1 << 7,
        false,
        login,
        fake_seal(b"sealed object", key),
    )
    .unwrap();
}

/// The header file with byte `i` flipped and its (unkeyed) checksum recomputed, as an attacker
/// who can write the file would.
fn flipped_header(orig: &[u8], i: usize) -> Vec<u8> {
    let mut b = orig.to_vec();
    b[i] ^= 0x01;
    let n = b.len();
    let sum = sha256(&[&b[..n - 32]]);
    b[n - 32..].copy_from_slice(&sum);
    b
}

#[test]
fn a_tpm2_slot_opens_with_its_key_and_the_password_still_does() {
    let (dir, s) = temp_store("tpm2-slot");
    s.set("svc", "u", b"secret").unwrap();
    add(&s, "machine", [7; 32], true);
    let info = s.slots().unwrap();
    let slot = info.iter().find(|i| i.name == "machine").unwrap();
    assert_eq!(slot.kind, SlotKind::Tpm2);
    assert_eq!(slot.kdf, None);
    let b = slot.tpm2.unwrap();
    assert_eq!((b.pcrs, b.pin, b.login), (1 << 7, false, true));
    assert_eq!(b.pcr_list(), vec![7]);
    // The sealed object is a file named by its digest, private like the rest.
    let file = dir.store().join("tpm2").join(b.file_name());
    assert_eq!(std::fs::read(&file).unwrap(), b"sealed object");
    let found = s.tpm2_slots(true).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].sealed, b"sealed object");
    s.lock().unwrap();
    let opened = s.open_with_tpm2(found[0].index, &[7; 32]).unwrap();
    s.unlock_opened(&opened, &test_opts()).unwrap();
    assert_eq!(&**s.get("svc", "u").unwrap(), b"secret");
    // Another key does not open it; a password never opens a TPM2 slot; the password still
    // opens the store.
    assert_eq!(
        s.open_with_tpm2(found[0].index, &[8; 32])
            .unwrap_err()
            .kind(),
        ErrorKind::WrongPassword
    );
    assert_eq!(
        s.open_with_tpm2(0, &[7; 32]).unwrap_err().kind(),
        ErrorKind::WrongPassword
    );
    s.open_with_password(b"pw").unwrap();
}

#[test]
fn only_slots_added_for_login_are_offered_to_the_pam_module() {
    let (_dir, s) = temp_store("tpm2-login");
    add(&s, "unlock-only", [1; 32], false);
    assert!(s.tpm2_slots(true).unwrap().is_empty());
    assert_eq!(s.tpm2_slots(false).unwrap().len(), 1);
}

#[test]
fn a_wrong_password_costs_no_sealing_and_adds_nothing() {
    let (dir, s) = temp_store("tpm2-wrong");
    let before = std::fs::read(dir.store().join("header")).unwrap();
    let e = s
        .add_tpm2_slot(b"nope", "m", 0, false, false, || {
            panic!("sealed although the password was wrong")
        })
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::WrongPassword);
    assert_eq!(std::fs::read(dir.store().join("header")).unwrap(), before);
    assert!(!dir.store().join("tpm2").exists());
    // A PCR beyond 23, a bad name, a name taken: refused before any sealing.
    for (name, pcrs) in [("m", 1u32 << 24), ("bad name", 0), ("login", 0)] {
        let e = s
            .add_tpm2_slot(b"pw", name, pcrs, false, false, || panic!("sealed"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{name} {pcrs:#x}: {e}");
    }
}

#[test]
fn every_flipped_byte_of_a_tpm2_slot_is_refused() {
    let (dir, s) = temp_store("tpm2-flip");
    add(&s, "machine", [9; 32], true);
    s.lock().unwrap();
    let path = dir.store().join("header");
    let orig = std::fs::read(&path).unwrap();
    let (header, _) = Header::decode(&orig).unwrap();
    let index = header
        .slots
        .iter()
        .position(|k| k.kind == SLOT_TPM2)
        .unwrap();
    let start = 37 + 102 * index;
    for i in start..start + 102 {
        std::fs::write(&path, flipped_header(&orig, i)).unwrap();
        let r = Store::open(dir.store()).and_then(|s| {
            let slots = s.tpm2_slots(false)?;
            let at = slots.first().map_or(index, |t| t.index);
            s.open_with_tpm2(at, &[9; 32])
        });
        match r {
            Ok(_) => panic!("byte {} of the TPM2 slot flipped, and it opened", i - start),
            Err(e) => assert!(
                matches!(e.kind(), ErrorKind::Corrupt | ErrorKind::WrongPassword),
                "byte {}: {e}",
                i - start
            ),
        }
    }
    std::fs::write(&path, &orig).unwrap();
    s.open_with_tpm2(index, &[9; 32]).unwrap();
}

#[test]
fn a_changed_missing_or_planted_sealed_object_is_corrupt_naming_it() {
    let (dir, s) = temp_store("tpm2-object");
    add(&s, "machine", [3; 32], true);
    let b = s.slots().unwrap().into_iter().find_map(|i| i.tpm2).unwrap();
    let file = dir.store().join("tpm2").join(b.file_name());
    let orig = std::fs::read(&file).unwrap();
    for i in 0..orig.len() {
        let mut changed = orig.clone();
        changed[i] ^= 0x80;
        std::fs::write(&file, &changed).unwrap();
        let e = s.tpm2_slots(true).unwrap_err();
        assert!(
            matches!(&e, Error::Corrupt { path, .. } if path == &file),
            "byte {i}: {e}"
        );
    }
    std::fs::write(&file, b"sealed object and more").unwrap();
    assert_eq!(s.tpm2_slots(true).unwrap_err().kind(), ErrorKind::Corrupt);
    std::fs::remove_file(&file).unwrap();
    let e = s.tpm2_slots(true).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    // A symlink in its place is not followed.
    std::os::unix::fs::symlink(dir.store().join("header"), &file).unwrap();
    assert_eq!(s.tpm2_slots(true).unwrap_err().kind(), ErrorKind::Corrupt);
    // Nor is a FIFO waited on (a login reads this file).
    std::fs::remove_file(&file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&file)
        .status()
        .unwrap();
    assert!(made.success());
    let started = std::time::Instant::now();
    assert_eq!(s.tpm2_slots(true).unwrap_err().kind(), ErrorKind::Corrupt);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
    // The whole directory gone: the same.
    std::fs::remove_dir_all(dir.store().join("tpm2")).unwrap();
    let e = s.tpm2_slots(true).unwrap_err();
    assert!(e.to_string().contains("missing"), "{e}");
    // The password opens the store whatever happened to the TPM2 slot's object.
    s.open_with_password(b"pw").unwrap();
}

#[test]
fn removing_the_slot_or_rotating_removes_its_sealed_object() {
    let (dir, s) = temp_store("tpm2-remove");
    add(&s, "one", [1; 32], true);
    s.add_tpm2_slot(
        b"pw",
        "two",
        0,
        true,
        false,
        fake_seal(b"other object", [2; 32]),
    )
    .unwrap();
    let tpm2 = dir.store().join("tpm2");
    assert_eq!(std::fs::read_dir(&tpm2).unwrap().count(), 2);
    s.remove_slot(b"pw", "one").unwrap();
    assert_eq!(std::fs::read_dir(&tpm2).unwrap().count(), 1);
    let left = s.tpm2_slots(false).unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].binding.pin);
    s.open_with_tpm2(left[0].index, &[2; 32]).unwrap();
    // A rotation keeps only the password's slot: the sealed objects go with the others.
    s.rotate(b"pw", b"pw2", &test_opts()).unwrap();
    assert_eq!(std::fs::read_dir(&tpm2).unwrap().count(), 0);
    assert!(s.tpm2_slots(false).unwrap().is_empty());
}

/// docs/FORMAT.md is enough to read a store with a TPM2 keyslot: the independent reader
/// (docs/read-store.py) skips the slot and opens the store with a password slot after it.
#[test]
fn the_format_document_reader_opens_a_store_with_a_tpm2_slot() {
    let (dir, s) = temp_store("tpm2-reader");
    s.set("svc", "u", b"read by the document").unwrap();
    add(&s, "machine", [5; 32], false);
    s.add_password(b"pw", "later", b"after-the-tpm2-slot", false, test_kdf())
        .unwrap();
    let reader = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/read-store.py");
    let mut c = std::process::Command::new("/usr/bin/python3");
    c.arg(reader).arg(dir.store());
    let o = run(c, b"after-the-tpm2-slot\n");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("'svc' 'u'") && out.contains("read by the document"),
        "{out}"
    );
}

/// The last slot that opens without the TPM (a password, the recovery key) is never removed: a
/// store only a TPM opens would be lost with that TPM.
#[test]
fn the_last_password_slot_is_kept_beside_a_tpm2_slot() {
    let (_dir, s) = temp_store("tpm2-last");
    add(&s, "machine", [4; 32], true);
    let e = s.remove_slot(b"pw", "login").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().contains("without the TPM"), "{e}");
    // With a recovery key beside it, the password slot may go; the TPM2 slot may always go.
    let key = s.add_recovery_key(b"pw").unwrap();
    s.remove_slot(b"pw", "login").unwrap();
    s.remove_slot(&key, "machine").unwrap();
    s.open_with_recovery_key(&key).unwrap();
}
