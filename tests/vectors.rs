//! The committed store under tests/vectors/store-v1 pins the on-disk format: it was made once
//! (see tests/vectors/README.md) and must keep opening with its password.

use keyringrs_tests::*;
use libkeyring::format::Header;
use libkeyring::Store;

const PASSWORD: &[u8] = b"correct horse battery staple";
const STORE_ID: &str = "24a118d4227f1e036e3181b793e596dd";

fn vector_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/store-v1")
}

#[test]
fn committed_store_v1_still_opens_with_its_password() {
    let tmp = TempDir::new("vector");
    copy_tree(&vector_dir(), &tmp.store());
    fresh_session();
    let s = Store::open(tmp.store()).unwrap();
    assert_eq!(s.id(), STORE_ID);
    assert!(s.is_locked().unwrap());
    assert!(matches!(
        s.unlock(b"wrong", &test_opts()),
        Err(libkeyring::Error::WrongPassword)
    ));
    s.unlock(PASSWORD, &test_opts()).unwrap();
    assert_eq!(&**s.get("example.org", "alice").unwrap(), b"hunter2");
    let all: Vec<u8> = (0..=255u8).collect();
    assert_eq!(&**s.get("a:b", "c").unwrap(), all.as_slice());
    assert_eq!(&**s.get("unicode ✓", "").unwrap(), "pässwörd".as_bytes());
    assert_eq!(s.list().unwrap().len(), 3);
}

#[test]
fn committed_header_v1_fields_are_as_documented() {
    let bytes = std::fs::read(vector_dir().join("header")).unwrap();
    assert_eq!(&bytes[..16], b"keyringrs-store\n");
    assert_eq!(u16::from_le_bytes([bytes[16], bytes[17]]), 1);
    assert_eq!(bytes.len(), 37 + 102 + 32 + 32, "one keyslot");
    let (h, _) = Header::decode(&bytes).unwrap();
    assert_eq!(libkeyring::format::hex(&h.id.0), STORE_ID);
    assert_eq!(h.slots.len(), 1);
    assert_eq!(
        (
            h.slots[0].kdf.memory_kib(),
            h.slots[0].kdf.time(),
            h.slots[0].kdf.lanes()
        ),
        (TEST_KDF_MEMORY, TEST_KDF_TIME, 1)
    );
}
