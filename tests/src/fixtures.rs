//! Fixtures of the store, CLI and kernel tests: a new store in a fresh session keyring, the CLI's
//! init, unlock and get, a store's header, and the file a `Corrupt` error names.

use std::path::Path;
use std::process::Output;

use libkeyring::format::Header;
use libkeyring::{Error, Store};

use crate::{assert_exit, fresh_session, keyringrs, test_opts, TempDir};

/// A new temporary directory (named after `tag`) and a store in it, as `new_store` makes it.
pub fn temp_store(tag: &str) -> (TempDir, Store) {
    let dir = TempDir::new(tag);
    let s = new_store(&dir);
    (dir, s)
}

/// A store in `dir` with the password "pw", created in a fresh session keyring (unlocked there).
pub fn new_store(dir: &TempDir) -> Store {
    store_with_password(dir, b"pw")
}

/// A store in `dir` with `password`, created in a fresh session keyring (unlocked there).
pub fn store_with_password(dir: &TempDir, password: &[u8]) -> Store {
    fresh_session();
    Store::init(dir.store(), password, &test_opts()).expect("init")
}

/// `keyringrs init` of a store in `dir` with the password "pw", in a fresh session keyring.
pub fn init_with_cli(dir: &TempDir) {
    fresh_session();
    let o = keyringrs(&dir.store(), &["init", "--password-stdin"], b"pw\n");
    assert_exit(&o, 0);
}

/// `keyringrs unlock --password-stdin` of `store` with the line `password`.
pub fn cli_unlock(store: &Path, password: &str) -> Output {
    let line = format!("{password}\n");
    keyringrs(store, &["unlock", "--password-stdin"], line.as_bytes())
}

/// What `keyringrs get <service> <username>` of `store` prints.
pub fn cli_get(store: &Path, service: &str, username: &str) -> Vec<u8> {
    keyringrs(store, &["get", service, username], b"").stdout
}

/// The header of the store in `dir`, decoded.
pub fn header_of(dir: &TempDir) -> Header {
    let bytes = std::fs::read(dir.store().join("header")).unwrap();
    Header::decode(&bytes).unwrap().0
}

/// The file a `Corrupt` error names (any other error fails the test).
pub fn corrupt_path(e: &Error) -> String {
    match e {
        Error::Corrupt { path, .. } => path.display().to_string(),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}
