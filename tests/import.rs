//! `keyringrs import` on real sources (docs/IMPORT.md): login keyrings written by the real
//! gnome-keyring-daemon (binary with a password, and textual after gnome-keyring's own
//! ChangeWithMasterPassword to a blank password), and python-keyring-keyutils-style plaintext
//! `user` keys in a fresh session keyring. gnome-keyring-daemon, secret-tool, dbus-daemon,
//! dbus-send and python3-dbus come with `make test` (the bench packages); without them the
//! gnome-keyring tests fail saying what is missing.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use keyringrs_tests::gnome::*;
use keyringrs_tests::*;
use libkeyring::mapping::Identity;
use libkeyring::Store;

fn sha(path: &Path) -> [u8; 32] {
    libkeyring::crypto::sha256(&[&std::fs::read(path).unwrap()])
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn open_store(dir: &TempDir) -> Store {
    fresh_session();
    let o = keyringrs(&dir.store(), &["init", "--password-stdin"], b"pw\n");
    assert_exit(&o, 0);
    Store::open(dir.store()).unwrap()
}

fn check_entries(store: &Store) {
    check_imported(store, |_, a| attrs(a));
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `keyringrs ARGS` on the store of `dir`: it must succeed and its output contain `summary`.
fn import(dir: &TempDir, args: &[&str], stdin: &[u8], summary: &str) -> std::process::Output {
    let o = keyringrs(&dir.store(), args, stdin);
    assert_exit(&o, 0);
    assert!(stdout(&o).contains(summary), "{}", stdout(&o));
    o
}

#[test]
fn binary_login_keyring_from_gnome_keyring_imports_exactly_once() {
    let dir = TempDir::new("imp-bin");
    let gk = make_keyring(&dir);
    let file = gk.keyring_file();
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        bytes.starts_with(b"GnomeKeyring\n\r\0\n"),
        "gnome-keyring wrote a binary keyring"
    );
    let before = sha(&file);
    let f = file.to_str().unwrap();
    let store = open_store(&dir);
    let pw = format!("{GK_PASSWORD}\n");
    let parsed =
        keyringrs_import::gnome::parse(&file, &bytes, Some(GK_PASSWORD.as_bytes())).unwrap();
    // Times written at the import would differ from the items' own.
    wait_past(latest_time(&parsed));

    // A wrong password: exit 5, nothing imported.
    let o = keyringrs(
        &dir.store(),
        &["import", "gnome-keyring", f, "--password-stdin"],
        b"not-the-password\n",
    );
    assert_exit(&o, 5);
    assert!(store.entries().unwrap().is_empty());

    // A dry run lists labels and attribute names, never secrets, and writes nothing.
    let o = keyringrs(
        &dir.store(),
        &[
            "import",
            "gnome-keyring",
            f,
            "--password-stdin",
            "--dry-run",
        ],
        pw.as_bytes(),
    );
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("Several attributes") && out.contains("xdg:schema"),
        "{out}"
    );
    assert!(
        out.contains("4 new, 0 already there, 0 conflicting"),
        "{out}"
    );
    for (_, _, secret) in sample() {
        assert!(!out.contains(&*String::from_utf8_lossy(&secret)), "{out}");
    }
    assert!(store.entries().unwrap().is_empty());

    import(
        &dir,
        &["import", "gnome-keyring", f, "--password-stdin"],
        pw.as_bytes(),
        "4 new, 0 already there, 0 conflicting",
    );
    check_entries(&store);
    check_times(&store, &parsed);

    // Again: nothing added.
    import(
        &dir,
        &["import", "gnome-keyring", f, "--password-stdin"],
        pw.as_bytes(),
        "0 new, 4 already there",
    );
    check_entries(&store);
    assert_eq!(sha(&file), before, "the source was modified");

    // The same items read through the library parser, times included.
    let k = keyringrs_import::gnome::parse(&file, &bytes, Some(GK_PASSWORD.as_bytes())).unwrap();
    assert_eq!(k.items.len(), 4);
    assert!(k
        .items
        .iter()
        .all(|i| i.created > 1_600_000_000 && i.modified >= i.created));

    // A conflicting item (same attributes, other secret) is kept apart, never overwriting.
    store.set("svc.example", "alice", b"changed").unwrap();
    import(
        &dir,
        &["import", "gnome-keyring", f, "--password-stdin"],
        pw.as_bytes(),
        "0 new, 3 already there, 1 conflicting",
    );
    assert_eq!(&store.get("svc.example", "alice").unwrap()[..], b"changed");
    let copies: Vec<_> = store
        .entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.label == "Python keyring item" && Identity::of(e).is_synthetic())
        .collect();
    assert_eq!(copies.len(), 1);
    assert_eq!(&copies[0].secret[..], b"alice's token");

    // A truncated file: exit 7 naming it, nothing imported.
    let cut = dir.path().join("truncated.keyring");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    let n = store.entries().unwrap().len();
    let o = keyringrs(
        &dir.store(),
        &[
            "import",
            "gnome-keyring",
            cut.to_str().unwrap(),
            "--password-stdin",
        ],
        pw.as_bytes(),
    );
    assert_exit(&o, 7);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("truncated.keyring"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(store.entries().unwrap().len(), n);
}

#[test]
fn textual_keyring_after_a_blank_password_imports_asking_nothing() {
    let dir = TempDir::new("imp-txt");
    let mut gk = GnomeKeyring::start(dir.path(), GK_PASSWORD);
    for (label, a, secret) in sample() {
        gk.store(label, &a, &secret);
    }
    gk.change_password(GK_PASSWORD, "");
    gk.stop();
    let file = gk.keyring_file();
    let text = std::fs::read(&file).unwrap();
    assert!(
        text.starts_with(b"[keyring]"),
        "gnome-keyring wrote a textual keyring for the blank password"
    );
    let before = sha(&file);
    let store = open_store(&dir);
    let parsed = keyringrs_import::gnome::parse(&file, &text, None).unwrap();
    wait_past(latest_time(&parsed));
    // No password is read: stdin is empty and not a tty.
    let f = file.to_str().unwrap();
    import(
        &dir,
        &["import", "gnome-keyring", f],
        b"",
        "4 new, 0 already there, 0 conflicting",
    );
    check_entries(&store);
    check_times(&store, &parsed);
    import(
        &dir,
        &["import", "gnome-keyring", f],
        b"",
        "0 new, 4 already there",
    );
    assert_eq!(sha(&file), before, "the source was modified");

    // The default FILE is ~/.local/share/keyrings/login.keyring.
    let mut c = cli(&dir.store());
    c.env("HOME", &gk.home)
        .args(["import", "gnome-keyring", "--dry-run"]);
    let o = run(c, b"");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("0 new, 4 already there"),
        "{}",
        stdout(&o)
    );

    // A damaged textual file: exit 7 naming it.
    let bad = dir.path().join("bad.keyring");
    let mut broken = text.clone();
    broken.extend_from_slice(b"\n[1:attribute9]\nname=x\ntype=float\nvalue=1\n");
    std::fs::write(&bad, broken).unwrap();
    let o = keyringrs(
        &dir.store(),
        &["import", "gnome-keyring", bad.to_str().unwrap()],
        b"",
    );
    assert_exit(&o, 7);
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.keyring"));
}

#[test]
fn import_needs_an_unlocked_store() {
    let dir = TempDir::new("imp-locked");
    let store = open_store(&dir);
    store.lock().unwrap();
    let o = keyringrs(&dir.store(), &["import", "keyutils"], b"");
    assert_exit(&o, 3);
    let o = keyringrs(
        &dir.store(),
        &["import", "gnome-keyring", "/nonexistent/login.keyring"],
        b"",
    );
    assert_exit(&o, 3);
}

fn keyctl(args: &[&str]) -> String {
    let o = Command::new("keyctl").args(args).output().expect("keyctl");
    assert!(o.status.success(), "keyctl {args:?}: {o:?}");
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

#[test]
fn keyutils_plaintext_keys_import_and_remove_only_those() {
    let dir = TempDir::new("imp-keyutils");
    let store = open_store(&dir);
    let a = keyctl(&["add", "user", "svc A:user X", "secret A", "@s"]);
    let ring = keyctl(&["newring", "python-keyring-keyutils", "@s"]);
    let b = keyctl(&["add", "user", "https://h:8443:bob", "secret B", &ring]);
    let foreign = keyctl(&["add", "user", "_other:thing", "not ours", "@s"]);
    let nocolon = keyctl(&["add", "user", "plainname", "not ours", "@s"]);

    let o = import(
        &dir,
        &["import", "keyutils", "--dry-run"],
        b"",
        "2 new, 0 already there",
    );
    assert!(!stdout(&o).contains("secret A"));
    assert!(store.entries().unwrap().is_empty());

    import(
        &dir,
        &["import", "keyutils", "--remove"],
        b"",
        "2 new, 0 already there, 0 conflicting",
    );
    assert_eq!(&store.get("svc A", "user X").unwrap()[..], b"secret A");
    assert_eq!(
        &store.get("https://h:8443", "bob").unwrap()[..],
        b"secret B"
    );
    assert_eq!(store.entries().unwrap().len(), 2);
    // The imported keys are gone; the others are untouched.
    for k in [&a, &b] {
        assert!(
            !Command::new("keyctl")
                .args(["print", k])
                .output()
                .unwrap()
                .status
                .success(),
            "key {k} still readable"
        );
    }
    assert_eq!(keyctl(&["print", &foreign]), "not ours");
    assert_eq!(keyctl(&["print", &nocolon]), "not ours");

    // Importing again finds nothing new.
    keyctl(&["add", "user", "svc A:user X", "secret A", "@s"]);
    import(&dir, &["import", "keyutils"], b"", "0 new, 1 already there");
}
