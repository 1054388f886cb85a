//! The header and entry parsers never panic and refuse malformed input with a reason: a
//! committed corpus of crafted files (tests/corpus/MANIFEST) replayed with its expected errors,
//! and property-based fuzzing (proptest, stable Rust) of random and mutated inputs. Failures
//! proptest finds are saved under proptest-regressions/ and replayed first on every run.

use std::path::Path;

use libkeyring::crypto::{MasterKey, Purpose};
use libkeyring::format::{self, EntryData, Header, HeaderError, StoreId};
use proptest::prelude::*;

fn corpus() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn header_error(bytes: &[u8]) -> String {
    match Header::decode(bytes) {
        Ok(_) => "ok".into(),
        Err(HeaderError::UnknownVersion(v)) => format!("unknown version {v}"),
        Err(HeaderError::Malformed(why)) => why,
    }
}

#[test]
fn committed_corpus_gives_the_expected_errors() {
    let manifest = std::fs::read_to_string(corpus().join("MANIFEST")).unwrap();
    let mut n = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let bytes = std::fs::read(corpus().join(f[0])).unwrap();
        let got = match f[1] {
            "header" => header_error(&bytes),
            "plaintext-v1" => EntryData::decode_version(&bytes, libkeyring::format::VERSION_1)
                .map_or_else(|e| e, |_| "ok".into()),
            other => panic!("unknown parser {other}"),
        };
        assert!(
            got.contains(f[2]),
            "{}: expected {:?}, got {:?}",
            f[0],
            f[2],
            got
        );
        n += 1;
    }
    assert!(n >= 20, "corpus has {n} cases");
}

fn valid_header() -> Vec<u8> {
    std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors/store-v1/header"))
        .unwrap()
}

fn with_checksum(mut b: Vec<u8>) -> Vec<u8> {
    if b.len() >= 32 {
        let n = b.len() - 32;
        let sum = libkeyring::crypto::sha256(&[&b[..n]]);
        b[n..].copy_from_slice(&sum);
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_the_header_parser(b in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = Header::decode(&b);
    }

    /// Mutations of a real header with the checksum recomputed, so they reach the field parser.
    #[test]
    fn mutated_headers_parse_or_fail_cleanly(
        flips in proptest::collection::vec((0usize..203, any::<u8>()), 1..6),
        cut in 0usize..260,
    ) {
        let mut b = valid_header();
        for (i, x) in flips {
            b[i] ^= x;
        }
        b.truncate(cut.max(40));
        if let Ok((h, _)) = Header::decode(&with_checksum(b.clone())) {
            // Anything that parses is within bounds and re-encodes to the same length.
            prop_assert!((1..=8).contains(&h.slots.len()));
            prop_assert!(h.slots.iter().all(|s| s.kdf().is_none_or(|k| k.memory_kib() <= 1 << 20)));
        }
    }

    #[test]
    fn random_plaintexts_never_panic_the_entry_parser(b in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = EntryData::decode(&b);
    }

    /// Well-formed plaintexts round-trip; every truncation of them is refused.
    #[test]
    fn entry_plaintexts_round_trip_and_truncations_fail(
        service in ".{0,20}", username in ".{0,20}", label in ".{0,20}", content_type in ".{0,12}",
        attrs in proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4),
        secret in proptest::collection::vec(any::<u8>(), 0..64),
        created in any::<i64>(), modified in any::<i64>(),
    ) {
        let e = EntryData { service, username, label, content_type, attributes: attrs, created, modified, secret: secret.into() };
        let pt = e.encode();
        prop_assert_eq!(EntryData::decode(&pt).unwrap(), e);
        for n in 0..pt.len() {
            prop_assert!(EntryData::decode(&pt[..n]).is_err());
        }
    }

    /// Sealed entry files: any change to any byte, or another identity, is refused.
    #[test]
    fn sealed_entries_refuse_every_change(i in any::<prop::sample::Index>(), x in 1u8..=255, cut in any::<prop::sample::Index>()) {
        let m = MasterKey::from_slice(&[7u8; 32]).unwrap();
        let sid = StoreId([3; 16]);
        let seal = m.subkey(&sid.0, Purpose::EntrySeal);
        let id = format::entry_id(&m.subkey(&sid.0, Purpose::EntryName), "s", "u");
        let e = EntryData { service: "s".into(), username: "u".into(), secret: b"secret".to_vec().into(), ..Default::default() };
        let mut b = format::seal_entry(&seal, &sid, &id, &e).unwrap();
        prop_assert!(format::open_entry(&seal, &sid, &id, &b).is_ok());
        let k = i.index(b.len());
        b[k] ^= x;
        prop_assert!(format::open_entry(&seal, &sid, &id, &b).is_err());
        b[k] ^= x;
        let n = cut.index(b.len());
        prop_assert!(format::open_entry(&seal, &sid, &id, &b[..n]).is_err());
    }
}

/// Random nonces: 100,000 writes of one entry never repeat a nonce.
#[test]
fn nonces_never_repeat_across_100000_writes() {
    let m = MasterKey::generate().unwrap();
    let sid = StoreId([1; 16]);
    let seal = m.subkey(&sid.0, Purpose::EntrySeal);
    let id = [0u8; 32];
    let e = EntryData::default();
    let mut seen = std::collections::HashSet::with_capacity(100_000);
    for _ in 0..100_000 {
        let b = format::seal_entry(&seal, &sid, &id, &e).unwrap();
        assert!(seen.insert(b[18..42].to_vec()), "nonce repeated");
    }
}
