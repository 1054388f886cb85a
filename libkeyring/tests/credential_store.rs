//! keyring-core's store-agnostic cases (those of its sample store's tests: empty service, user
//! and password, missing entry, ASCII and non-ASCII round trips, same and different specifiers,
//! random bytes, search) against `libkeyring::credential_store`, plus the error mapping, on the
//! real kernel keyring in a fresh session keyring per test.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use keyring_core::{CredentialStore, Entry, Error};
use libkeyring::credential_store::Store;
use libkeyring::{KdfParams, UnlockOptions};

/// A fresh session keyring and an initialised, unlocked store (removed on drop).
struct Fixture {
    dir: PathBuf,
    store: Arc<CredentialStore>,
}

impl Fixture {
    fn new(tag: &str) -> Fixture {
        libkeyring::keyring::join_session(None).expect("join a session keyring");
        let dir = std::env::temp_dir().join(format!("krs-kc-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let opts = UnlockOptions {
            kdf: KdfParams::new(256, 1, 1).unwrap(),
            ..Default::default()
        };
        libkeyring::Store::init(dir.join("store"), b"pw", &opts).expect("init");
        let store: Arc<CredentialStore> = Store::open(dir.join("store")).expect("open");
        Fixture { dir, store }
    }
    fn entry(&self, service: &str, user: &str) -> Entry {
        Entry::new_in_store(&self.store, service, user).expect("build entry")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn round_trip(f: &Fixture, service: &str, user: &str, password: &str) {
    let e = f.entry(service, user);
    e.set_password(password).unwrap();
    assert_eq!(e.get_password().unwrap(), password);
    e.delete_credential().unwrap();
    assert!(matches!(e.get_password(), Err(Error::NoEntry)));
}

#[test]
fn empty_service_user_and_password() {
    let f = Fixture::new("empty");
    round_trip(&f, "svc", "", "it doesn't matter");
    round_trip(&f, "", "user", "it doesn't matter");
    round_trip(&f, "", "", "it doesn't matter");
    round_trip(&f, "svc", "user", "");
}

#[test]
fn missing_entry_is_no_entry() {
    let f = Fixture::new("missing");
    let e = f.entry("nobody", "nothing");
    assert!(matches!(e.get_password(), Err(Error::NoEntry)));
    assert!(matches!(e.delete_credential(), Err(Error::NoEntry)));
    assert!(matches!(e.get_credential(), Err(Error::NoEntry)));
}

#[test]
fn ascii_non_ascii_and_random_bytes_round_trip() {
    let f = Fixture::new("roundtrip");
    round_trip(&f, "ascii", "u", "test ascii password");
    round_trip(&f, "non-ascii", "u", "このきれいな花は桜です");
    let secret: Vec<u8> = (0..=255u8).rev().collect();
    let e = f.entry("bytes", "u");
    e.set_secret(&secret).unwrap();
    assert_eq!(e.get_secret().unwrap(), secret);
    assert!(matches!(e.get_password(), Err(Error::BadEncoding(_))));
    e.delete_credential().unwrap();
}

#[test]
fn same_and_different_specifiers() {
    let f = Fixture::new("specifiers");
    let (e1, e2, e3) = (
        f.entry("n1", "n2"),
        f.entry("n1", "n2"),
        f.entry("n2", "n1"),
    );
    e1.set_password("test password").unwrap();
    assert_eq!(e2.get_password().unwrap(), "test password");
    assert!(e3.get_password().is_err());
    e1.delete_credential().unwrap();
    assert!(e2.get_password().is_err());
    assert!(e3.delete_credential().is_err());
    assert_eq!(e1.get_specifiers(), Some(("n1".into(), "n2".into())));
}

#[test]
fn search_by_service_and_user() {
    let f = Fixture::new("search");
    for (s, u) in [("a", "x"), ("a", "y"), ("b", "x")] {
        f.entry(s, u).set_password("p").unwrap();
    }
    let spec =
        |pairs: &[(&'static str, &'static str)]| pairs.iter().copied().collect::<HashMap<_, _>>();
    assert_eq!(f.store.search(&spec(&[("service", "a")])).unwrap().len(), 2);
    assert_eq!(f.store.search(&spec(&[("user", "x")])).unwrap().len(), 2);
    let one = f
        .store
        .search(&spec(&[("service", "b"), ("user", "x")]))
        .unwrap();
    assert_eq!(one[0].get_specifiers(), Some(("b".into(), "x".into())));
    assert!(matches!(
        f.store.search(&spec(&[("label", "z")])),
        Err(Error::Invalid(_, _))
    ));
    let mods = spec(&[("target", "t")]);
    assert!(matches!(
        Entry::new_in_store_with_modifiers(&f.store, "s", "u", &mods),
        Err(Error::NotSupportedByStore(_))
    ));
}

#[test]
fn locked_is_no_storage_access_and_corrupt_is_bad_data_format() {
    let f = Fixture::new("errors");
    let e = f.entry("s", "u");
    e.set_password("v").unwrap();
    let raw = libkeyring::Store::open(f.dir.join("store")).unwrap();
    // Out of the journal into its entry file (docs/FORMAT.md "journal").
    raw.checkpoint().unwrap();
    let name = raw.entry_name("s", "u").unwrap();
    let file = f.dir.join("store/entries").join(name);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    assert!(matches!(e.get_password(), Err(Error::BadDataFormat(_, _))));
    raw.lock().unwrap();
    assert!(matches!(e.get_password(), Err(Error::NoStorageAccess(_))));
    assert!(matches!(
        Store::open(f.dir.join("none")),
        Err(Error::NoStorageAccess(_))
    ));
}

#[test]
fn the_default_store_serves_entry_new() {
    let f = Fixture::new("default");
    keyring_core::set_default_store(Arc::clone(&f.store));
    let e = Entry::new("github.com", "alice").unwrap();
    e.set_password("tok").unwrap();
    assert_eq!(
        f.entry("github.com", "alice").get_password().unwrap(),
        "tok"
    );
    assert!(f.store.vendor().starts_with("keyringrs"));
    keyring_core::unset_default_store();
}
