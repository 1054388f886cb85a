//! The libsecret file keyring reader against a file Debian's libsecret 0.20.5 wrote
//! (tests/data/secret-tool-0.20.5.keyring, below), the encoder's round trip, every flipped bit
//! and every truncation of the real file, and the caps.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use proptest::prelude::*;
use zeroize::Zeroizing;

use super::gvariant::{write_array, write_string, TupleWriter};
use super::*;
use libkeyring::{Error, ErrorKind};

/// Written by `secret-tool store` (libsecret-tools 0.20.5-3, Debian 12) with
/// `SECRET_BACKEND=file SECRET_FILE_TEST_PATH=... SECRET_FILE_TEST_PASSWORD=fixture-pw`:
/// 1. `printf 'alice pässwörd' | secret-tool store --label 'Python keyring item' service svc.example username alice`
/// 2. `printf 'app token' | secret-tool store --label 'App item' xdg:schema org.example.App id 42`
/// 3. `printf '\x00\xff\x01binary\n' | secret-tool store --label 'Binary' kind binary`
const REAL: &[u8] = include_bytes!("../../tests/data/secret-tool-0.20.5.keyring");
const REAL_PW: &[u8] = b"fixture-pw";
const FILE: &str = "/fuzz/default.keyring";

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn real_items() -> Vec<(&'static str, BTreeMap<String, String>, Vec<u8>)> {
    vec![
        (
            "Python keyring item",
            attrs(&[("service", "svc.example"), ("username", "alice")]),
            "alice pässwörd".as_bytes().to_vec(),
        ),
        (
            "App item",
            attrs(&[("xdg:schema", "org.example.App"), ("id", "42")]),
            b"app token".to_vec(),
        ),
        (
            "Binary",
            attrs(&[("kind", "binary")]),
            b"\x00\xff\x01binary\n".to_vec(),
        ),
    ]
}

/// Parse with `key_of` giving the key for (salt, iterations): Ok(keyring) or the error's
/// kind, checking that a Corrupt error names the file.
fn outcome(
    bytes: &[u8],
    key_of: &mut dyn FnMut(&[u8], u32) -> std::rc::Rc<Key>,
) -> Result<Keyring, ErrorKind> {
    let r = parse_locked(Path::new(FILE), bytes).and_then(|l| {
        let key = key_of(l.salt, l.iterations);
        l.unlock(&key)
    });
    match r {
        Ok(k) => Ok(k),
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains(FILE), "{e}");
            Err(ErrorKind::Corrupt)
        }
        Err(e) => Err(e.kind()),
    }
}

/// A key cache for `password` (PBKDF2 with 100,000 iterations is the slow part).
fn keys(password: &'static [u8]) -> impl FnMut(&[u8], u32) -> std::rc::Rc<Key> {
    let mut cache: HashMap<(Vec<u8>, u32), std::rc::Rc<Key>> = HashMap::new();
    move |salt, iterations| {
        cache
            .entry((salt.to_vec(), iterations))
            .or_insert_with(|| std::rc::Rc::new(derive_key(password, salt, iterations)))
            .clone()
    }
}

#[test]
fn the_file_secret_tool_wrote_reads_back_exactly() {
    let k = parse(Path::new(FILE), REAL, REAL_PW).unwrap();
    assert_eq!(k.iterations, 100_000);
    assert_eq!(k.salt.len(), 32);
    assert_eq!(k.usage_count, 3, "three stores");
    let want = real_items();
    assert_eq!(k.items.len(), want.len(), "{k:?}");
    for (it, (label, a, secret)) in k.items.iter().zip(&want) {
        assert_eq!(it.label, *label);
        assert_eq!(it.attributes, *a, "{label}");
        assert_eq!(&it.secret[..], &secret[..], "{label}");
        // libsecret stamps both times at the store, the file's own at its write.
        assert!(it.created > Some(1_700_000_000), "{it:?}");
        assert_eq!(it.created, it.modified, "{it:?}");
        assert!(Some(k.modified as i64) >= it.modified);
    }
    // The key is libsecret's: 16 bytes of PBKDF2-HMAC-SHA256 (independently: Python's
    // hashlib.pbkdf2_hmac('sha256', b'fixture-pw', salt, 100000, 16) gives the same key, and
    // AES-128-CBC with it decrypts the items).
    let locked = parse_locked(Path::new(FILE), REAL).unwrap();
    assert_eq!(locked.len(), 3);
    let key = locked.derive_key(REAL_PW);
    assert_eq!(locked.unlock(&key).unwrap(), k);
    // Debug output carries no secret.
    let dbg = format!("{k:?} {key:?}");
    assert!(
        !dbg.contains("pässwörd") && !dbg.contains("app token"),
        "{dbg}"
    );
}

#[test]
fn a_wrong_password_is_wrong_password_and_an_empty_keyring_opens_with_any() {
    assert!(matches!(
        parse(Path::new(FILE), REAL, b"not-it"),
        Err(Error::WrongPassword)
    ));
    let empty = Keyring {
        salt: vec![1; 32],
        iterations: 1,
        modified: 5,
        usage_count: 0,
        items: vec![],
    };
    let f = encode(&empty, b"pw");
    assert_eq!(parse(Path::new(FILE), &f, b"anything").unwrap(), empty);
}

#[test]
fn gnome_keyrings_and_other_versions_are_named() {
    let mut f = REAL.to_vec();
    f[16] = 0;
    let e = parse(Path::new(FILE), &f, REAL_PW).unwrap_err();
    assert!(e.to_string().contains("import gnome-keyring"), "{e}");
    f[16] = 2;
    let e = parse(Path::new(FILE), &f, REAL_PW).unwrap_err();
    assert!(e.to_string().contains("unknown version 2.0"), "{e}");
}

#[test]
fn every_flipped_bit_of_the_real_file_is_refused_or_changes_nothing() {
    let want = parse(Path::new(FILE), REAL, REAL_PW).unwrap().items;
    let mut key_of = keys(REAL_PW);
    // The clear fields nothing authenticates and nothing imports: the file's modified time
    // and usage count (body offsets 40..52: u32 salt size, 32-byte salt, u32 iterations).
    let unauthenticated = 18 + 40..18 + 52;
    let salt = 18 + 4..18 + 36;
    let (mut refused, mut same) = (0, 0);
    for i in 0..REAL.len() {
        // Inside the salt one flip per byte (each costs a PBKDF2 run); all 8 bits elsewhere.
        let flips: Vec<u8> = if salt.contains(&i) {
            vec![0xff]
        } else {
            (0..8).map(|b| 1 << b).collect()
        };
        for flip in flips {
            let mut b = REAL.to_vec();
            b[i] ^= flip;
            match outcome(&b, &mut key_of) {
                Ok(k) => {
                    assert!(
                        unauthenticated.contains(&i),
                        "a flip of byte {i} (^{flip:#x}) was accepted"
                    );
                    assert_eq!(k.items, want, "byte {i}");
                    same += 1;
                }
                Err(ErrorKind::Corrupt | ErrorKind::WrongPassword) => refused += 1,
                Err(k) => panic!("byte {i} ^{flip:#x}: unexpected {k:?}"),
            }
        }
    }
    assert_eq!(same, 12 * 8);
    assert!(refused > 4000, "{refused}");
}

#[test]
fn every_truncation_of_the_real_file_is_refused() {
    let mut key_of = keys(REAL_PW);
    for cut in 0..REAL.len() {
        match outcome(&REAL[..cut], &mut key_of) {
            Err(ErrorKind::Corrupt | ErrorKind::WrongPassword) => {}
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    // And bytes added at the end are not ignored either.
    let mut longer = REAL.to_vec();
    longer.push(0);
    assert!(outcome(&longer, &mut key_of).is_err());
}

#[test]
fn one_damaged_item_among_good_ones_is_corrupt_naming_it() {
    let mut k = parse(Path::new(FILE), REAL, REAL_PW).unwrap();
    k.iterations = 1;
    let good = encode(&k, b"pw");
    // Damage the second item's ciphertext: its last byte, right before its IV (the encoder's
    // IV of item index 1).
    let key = derive_key(b"pw", &k.salt, 1);
    let iv = &crypto::mac(&key, &1u64.to_le_bytes())[..16];
    let at = good.windows(16).position(|w| w == iv).expect("item 2's IV") - 1;
    let mut bad = good.clone();
    bad[at] ^= 1;
    let e = parse(Path::new(FILE), &bad, b"pw").unwrap_err();
    assert!(
        matches!(e, Error::Corrupt { .. }) && e.to_string().contains("item 2 of 3 fails"),
        "{e}"
    );
    // A hashed attribute that does not match its (authenticated) value.
    let mut k2 = k.clone();
    k2.items.truncate(1);
    let f = encode(&k2, b"pw");
    let hash = crypto::mac(&key, b"alice");
    let p = f.windows(32).position(|w| w == hash).unwrap();
    let mut g = f.clone();
    g[p] ^= 1;
    let e = parse(Path::new(FILE), &g, b"pw").unwrap_err();
    assert!(e.to_string().contains("does not match its value"), "{e}");
}

/// A GVariant body of this keyring with its items array replaced by `items`.
fn body_with_items(items: Vec<u8>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&VERSION);
    out.extend_from_slice(
        &TupleWriter::default()
            .u32(32)
            .var(&[7; 32], false)
            .u32(1)
            .u64(0)
            .u32(0)
            .var(&items, true)
            .finish(),
    );
    out
}

fn corrupt_saying(bytes: &[u8], says: &str) {
    match parse(Path::new(FILE), bytes, b"pw") {
        Err(e @ Error::Corrupt { .. }) => assert!(e.to_string().contains(says), "{e}"),
        other => panic!("expected Corrupt ({says}): {other:?}"),
    }
}

#[test]
fn caps_are_checked_before_allocating_or_looping() {
    let k = |iterations, salt: Vec<u8>| Keyring {
        salt,
        iterations,
        modified: 0,
        usage_count: 0,
        items: vec![],
    };
    let key = derive_key(b"pw", b"", 1);
    corrupt_saying(
        &encode_with(&k(MAX_ITERATIONS + 1, vec![0; 32]), &key),
        "iteration count",
    );
    corrupt_saying(&encode_with(&k(0, vec![0; 32]), &key), "iteration count");
    corrupt_saying(
        &encode_with(&k(1, vec![0; MAX_SALT_LEN + 1]), &key),
        "salt of",
    );
    // The salt's size field must say its length.
    let mut f = encode_with(&k(1, vec![0; 32]), &key);
    f[18] = 31;
    corrupt_saying(&f, "its size says 31");
    // Item count: the array's offsets table says how many, checked before any is parsed.
    let many = write_array(&vec![vec![0u8]; MAX_ITEMS + 1]);
    corrupt_saying(&body_with_items(many), "more than 100000");
    // Attribute count of the hashed attributes, before any is parsed.
    let entry = TupleWriter::default()
        .var(&write_string("n"), false)
        .var(&[0; 32], true)
        .finish();
    let dict = write_array(&vec![entry; MAX_ATTRIBUTES + 1]);
    let item = TupleWriter::default()
        .var(&dict, false)
        .var(&[0; 64], true)
        .finish();
    corrupt_saying(&body_with_items(write_array(&[item])), "more than 1000");
    // A hashed attribute of the wrong length; a blob too short for an IV and a MAC.
    let entry = TupleWriter::default()
        .var(&write_string("n"), false)
        .var(&[0; 31], true)
        .finish();
    let item = TupleWriter::default()
        .var(&write_array(&[entry]), false)
        .var(&[0; 64], true)
        .finish();
    corrupt_saying(&body_with_items(write_array(&[item])), "of 31 bytes");
    let item = TupleWriter::default()
        .var(&write_array(&[]), false)
        .var(&[0; 63], true)
        .finish();
    corrupt_saying(
        &body_with_items(write_array(&[item])),
        "encrypted part of 63",
    );
    // The file size.
    let mut huge = REAL.to_vec();
    huge.resize(MAX_FILE_LEN as usize + 1, 0);
    corrupt_saying(&huge, "larger than");
    // Strings and the secret inside an (authenticated) item.
    let long = Keyring {
        salt: vec![0; 32],
        iterations: 1,
        modified: 0,
        usage_count: 0,
        items: vec![Item {
            label: "x".repeat(MAX_STRING_LEN + 1),
            attributes: BTreeMap::new(),
            secret: Zeroizing::new(vec![]),
            created: Some(0),
            modified: Some(0),
        }],
    };
    corrupt_saying(&encode(&long, b"pw"), "label");
    let big = TupleWriter::default()
        .var(&write_array(&[]), false)
        .var(&write_string(""), false)
        .u64(0)
        .u64(0)
        .var(&vec![0; MAX_SECRET_LEN + 1], true)
        .finish();
    assert!(item::plaintext(&big, "item 1")
        .unwrap_err()
        .contains("secret of"));
}

fn item_strategy() -> impl Strategy<Value = Item> {
    (
        "[^\\x00]{0,12}",
        prop::collection::btree_map("[a-z:]{1,8}", "[^\\x00]{0,10}", 0..5),
        prop::collection::vec(any::<u8>(), 0..300),
        0..=i64::MAX,
        0..=i64::MAX,
    )
        .prop_map(|(label, attributes, secret, created, modified)| Item {
            label,
            attributes,
            secret: Zeroizing::new(secret),
            created: Some(created),
            modified: Some(modified),
        })
}

fn keyring_strategy() -> impl Strategy<Value = Keyring> {
    (
        prop::collection::vec(any::<u8>(), 0..40),
        1u32..4,
        any::<u64>(),
        any::<u32>(),
        prop::collection::vec(item_strategy(), 0..6),
    )
        .prop_map(|(salt, iterations, modified, usage_count, items)| Keyring {
            salt,
            iterations,
            modified,
            usage_count,
            items,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn encoded_keyrings_round_trip(k in keyring_strategy()) {
        let f = encode(&k, b"pw");
        prop_assert_eq!(parse(Path::new(FILE), &f, b"pw").unwrap(), k.clone());
        if !k.items.is_empty() {
            prop_assert!(matches!(
                parse(Path::new(FILE), &f, b"wrong"),
                Err(Error::WrongPassword)
            ));
        }
    }

    #[test]
    fn mutated_encoded_keyrings_are_refused_or_unchanged(
        k in keyring_strategy(),
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let f = encode(&k, b"pw");
        let mut b = f.clone();
        let i = pos.index(b.len());
        b[i] = byte;
        // Items are authenticated, the header's times and counter are not (and not used).
        if let Ok(got) = parse(Path::new(FILE), &b, b"pw") {
            prop_assert_eq!(got.items, k.items.clone());
        }
        let c = cut.index(f.len());
        prop_assert!(parse(Path::new(FILE), &f[..c], b"pw").is_err());
    }

    #[test]
    fn random_bytes_after_the_header_never_panic(tail in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&VERSION);
        b.extend_from_slice(&tail);
        if let Ok(k) = parse(Path::new(FILE), &b, b"pw") {
            // Only an empty keyring can come out of random bytes.
            prop_assert!(k.items.is_empty());
        }
    }
}
