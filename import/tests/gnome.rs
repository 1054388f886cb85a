//! The gnome-keyring reader (keyringrs_import::gnome) never panics and refuses damaged files
//! with a `Corrupt` error naming the file (or `WrongPassword` where the damage hits the
//! encrypted part): property-based fuzzing (proptest) of truncated, bit-flipped and
//! length-lying binary files and of mangled textual files, plus the caps.

use std::collections::BTreeMap;
use std::path::Path;

use keyringrs_import::gnome::{self, Format, Item, Keyring};
use libkeyring::{Error, ErrorKind};
use proptest::prelude::*;
use zeroize::Zeroizing;

const PW: &[u8] = b"password";
const FILE: &str = "/fuzz/login.keyring";

fn sample() -> Keyring {
    let item = |label: &str, attrs: &[(&str, &str)], secret: &[u8]| Item {
        item_type: 0,
        label: label.into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        secret: Zeroizing::new(secret.to_vec()),
        created: 1_700_000_000,
        modified: 1_700_000_001,
    };
    Keyring {
        format: Format::Binary,
        name: "Login".into(),
        created: 0,
        modified: 1_700_000_002,
        items: vec![
            item("a", &[("service", "s"), ("username", "u")], b"secret"),
            item(
                "b",
                &[("xdg:schema", "org.x.Y"), ("n", "1")],
                "ü\0\u{ff}".as_bytes(),
            ),
            item("", &[], b""),
        ],
    }
}

fn binary() -> Vec<u8> {
    gnome::encode_binary(&sample(), PW, *b"saltsalt", 17)
}

const TEXT: &str = "[keyring]\ndisplay-name=Login\nctime=0\nmtime=1\nlock-on-idle=false\n\n[1]\nitem-type=0\ndisplay-name=A\\sb\nsecret=x y\nmtime=3\nctime=2\n\n[1:attribute0]\nname=service\ntype=string\nvalue=s\n\n[1:attribute1]\nname=port\ntype=uint32\nvalue=22\n\n[2]\nitem-type=0\ndisplay-name=B\nbinary-secret=FF00\n";

/// Parse; Ok(()) or the error's kind, checking that a Corrupt error names the file.
fn outcome(bytes: &[u8]) -> Result<(), ErrorKind> {
    match gnome::parse(Path::new(FILE), bytes, Some(PW)) {
        Ok(_) => Ok(()),
        Err(e @ Error::Corrupt { .. }) => {
            assert!(e.to_string().contains(FILE), "{e}");
            Err(ErrorKind::Corrupt)
        }
        Err(e) => Err(e.kind()),
    }
}

#[test]
fn binary_round_trip() {
    let k = gnome::parse(Path::new(FILE), &binary(), Some(PW)).unwrap();
    assert_eq!(k, sample());
    assert!(matches!(
        gnome::parse(Path::new(FILE), &binary(), Some(b"wrong")),
        Err(Error::WrongPassword)
    ));
}

#[test]
fn textual_sample_parses() {
    let k = gnome::parse(Path::new(FILE), TEXT.as_bytes(), None).unwrap();
    assert_eq!(k.format, Format::Textual);
    assert_eq!(k.items.len(), 2);
    assert_eq!(k.items[0].label, "A b");
    assert_eq!(&k.items[0].secret[..], b"x y");
    assert_eq!(k.items[0].attributes["port"], "22");
    assert_eq!(&k.items[1].secret[..], &[0xff, 0]);
}

#[test]
fn caps_are_checked_before_allocating_or_looping() {
    let b = binary();
    // Offsets: magic 16, version 4, name 4+5, times 16, flags 4, timeout 4 → iterations at 53.
    let it = 16 + 4 + 4 + 5 + 16 + 4 + 4;
    let mut huge = b.clone();
    huge[it..it + 4].copy_from_slice(&u32::MAX.to_be_bytes());
    let e = gnome::parse(Path::new(FILE), &huge, Some(PW)).unwrap_err();
    assert!(e.to_string().contains("hash iterations"), "{e}");
    let mut zero = b.clone();
    zero[it..it + 4].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(outcome(&zero), Err(ErrorKind::Corrupt));
    // Item count right after iterations, salt (8) and reserved (16).
    let n = it + 4 + 8 + 16;
    let mut many = b.clone();
    many[n..n + 4].copy_from_slice(&5_000_000u32.to_be_bytes());
    let e = gnome::parse(Path::new(FILE), &many, Some(PW)).unwrap_err();
    assert!(e.to_string().contains("item count"), "{e}");
    let mut lying = b.clone();
    lying[n..n + 4].copy_from_slice(&90_000u32.to_be_bytes());
    let e = gnome::parse(Path::new(FILE), &lying, Some(PW)).unwrap_err();
    assert!(e.to_string().contains("bytes left"), "{e}");
    // The keyring name's length.
    let mut name = b.clone();
    name[20..24].copy_from_slice(&0x7fff_ffffu32.to_be_bytes());
    let e = gnome::parse(Path::new(FILE), &name, Some(PW)).unwrap_err();
    assert!(e.to_string().contains("keyring name"), "{e}");
    // A binary file without a password is refused before any work.
    assert!(matches!(
        gnome::parse(Path::new(FILE), &b, None),
        Err(Error::InvalidInput(_))
    ));
}

#[test]
fn neither_format_is_corrupt() {
    for bytes in [&b""[..], b"hello", b"GnomeKeyring\n\r\0", b"[other]\nx=1\n"] {
        assert_eq!(outcome(bytes), Err(ErrorKind::Corrupt), "{bytes:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn truncated_binary_is_an_error(cut in 0usize..2000) {
        let b = binary();
        let cut = cut % b.len();
        prop_assert!(outcome(&b[..cut]).is_err());
    }

    #[test]
    fn bit_flipped_binary_never_panics(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut b = binary();
        let i = pos.index(b.len());
        b[i] ^= 1 << bit;
        // A flip in the clear hashed part may still parse (its values are not used); a flip in
        // the encrypted part is a wrong-password error; anything else is Corrupt.
        match outcome(&b) {
            Ok(()) | Err(ErrorKind::Corrupt) | Err(ErrorKind::WrongPassword) => {}
            Err(k) => prop_assert!(false, "unexpected {k:?}"),
        }
    }

    #[test]
    fn length_lying_binary_never_panics(
        pos in any::<prop::sample::Index>(),
        value in prop_oneof![
            Just(0u32), Just(1), Just(15), Just(16), Just(0x7fff_ffff), Just(u32::MAX),
            Just(u32::MAX - 1), any::<u32>()
        ],
    ) {
        let mut b = binary();
        let i = pos.index(b.len() - 3);
        b[i..i + 4].copy_from_slice(&value.to_be_bytes());
        let _ = outcome(&b);
    }

    #[test]
    fn random_bytes_after_the_magic_never_panic(tail in prop::collection::vec(any::<u8>(), 0..512)) {
        let mut b = gnome::MAGIC.to_vec();
        b.extend_from_slice(&[0, 0, 0, 0]);
        b.extend_from_slice(&tail);
        prop_assert!(outcome(&b).is_err());
    }

    #[test]
    fn mangled_textual_never_panics(
        cut in 0usize..400,
        pos in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let mut t = TEXT.as_bytes().to_vec();
        let i = pos.index(t.len());
        t[i] = byte;
        t.truncate(cut.max(1));
        let _ = outcome(&t);
    }

    #[test]
    fn random_text_never_panics(s in "(\\[[0-9a-z:]{0,12}\\]\n|[a-z-]{0,8}=[ -~]{0,12}\n|#.*\n|\n){0,30}") {
        let _ = outcome(s.as_bytes());
    }
}
