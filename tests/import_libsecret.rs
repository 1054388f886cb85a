//! `keyringrs import libsecret-file` (docs/IMPORT.md "libsecret file keyrings") on files
//! written by Debian's real libsecret (`secret-tool` with `SECRET_BACKEND=file`,
//! `SECRET_FILE_TEST_PATH` and `SECRET_FILE_TEST_PASSWORD`, honoured by libsecret 0.20.5's file
//! backend; no session bus needed), into a store unlocked in a fresh session keyring: secrets,
//! labels, attributes and times carried over, exactly once; a conflicting item kept apart; a
//! wrong password, a damaged file; `--app-id` with the app's Secret portal secret from the
//! store. And the store call the importers write with (`Store::set_imported`). secret-tool
//! comes with libsecret-tools (`make test`); without it the tests fail saying so.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use keyringrs_import::libsecret;
use keyringrs_tests::*;
use libkeyring::mapping::Identity;
use libkeyring::{EntryData, Error, Store};

const FILE_PW: &str = "libsecret-file-pw";
const APP: &str = "org.example.App";

fn need_secret_tool() {
    assert!(
        Path::new("/usr/bin/secret-tool").exists(),
        "/usr/bin/secret-tool is not installed: `apt-get install --no-install-recommends libsecret-tools` (`make test` does)"
    );
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `secret-tool store` into the file keyring `file` with `password` (libsecret's file backend:
/// it creates the file and its directory, or adds the item to it).
fn secret_tool_store(file: &Path, password: &[u8], label: &str, a: &[(&str, &str)], secret: &[u8]) {
    need_secret_tool();
    let mut c = Command::new("/usr/bin/secret-tool");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", file.parent().unwrap())
        .env("SECRET_BACKEND", "file")
        .env("SECRET_FILE_TEST_PATH", file)
        .env(
            "SECRET_FILE_TEST_PASSWORD",
            std::ffi::OsStr::from_bytes(password),
        )
        .args(["store", "--label", label]);
    for (k, v) in a {
        c.args([k, v]);
    }
    let o = run(c, secret);
    assert!(
        o.status.success() && file.exists(),
        "secret-tool store {label:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// label, attributes, secret: one item with service/username, one an app's (schema), one
/// binary secret (NUL, 0xff, trailing newline: secret-tool stores stdin's bytes exactly).
type Sample = (&'static str, Vec<(&'static str, &'static str)>, Vec<u8>);

fn sample() -> Vec<Sample> {
    vec![
        (
            "Python keyring item",
            vec![("service", "svc.example"), ("username", "alice")],
            "alice's pässwörd".as_bytes().to_vec(),
        ),
        (
            "App item",
            vec![("xdg:schema", "org.example.Password"), ("id", "42")],
            b"app token".to_vec(),
        ),
        (
            "Binary",
            vec![("kind", "binary")],
            b"\x00\xff\x01binary\n".to_vec(),
        ),
    ]
}

fn write_sample(file: &Path, password: &[u8]) {
    for (label, a, secret) in sample() {
        secret_tool_store(file, password, label, &a, &secret);
    }
}

fn open_store(dir: &TempDir) -> Store {
    fresh_session();
    let o = keyringrs(&dir.store(), &["init", "--password-stdin"], b"pw\n");
    assert_exit(&o, 0);
    Store::open(dir.store()).unwrap()
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `o` succeeded and its stdout says `says`.
fn assert_prints(o: &std::process::Output, says: &str) {
    assert_exit(o, 0);
    assert!(stdout(o).contains(says), "{}", stdout(o));
}

/// `o` exited `code` and its stderr says `says`.
fn assert_refused(o: &std::process::Output, code: i32, says: &str) {
    assert_exit(o, code);
    assert!(stderr(o).contains(says), "{}", stderr(o));
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sha(path: &Path) -> [u8; 32] {
    libkeyring::crypto::sha256(&[&std::fs::read(path).unwrap()])
}

/// `keyringrs import libsecret-file ARGS` with `stdin` and HOME = `home`.
fn import(store: &Path, home: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut c = cli(store);
    c.env("HOME", home)
        .args(["import", "libsecret-file"])
        .args(args);
    run(c, stdin)
}

/// Every item of the file (as the library reads it, times included) is an entry of the store
/// with the same label, attributes, secret, creation and modification time, under the
/// identity libkeyring::mapping gives.
fn check_entries(store: &Store, file: &Path, password: &[u8]) {
    let k = libsecret::parse(file, &std::fs::read(file).unwrap(), password).unwrap();
    let entries = store.entries().unwrap();
    assert_eq!(k.items.len(), sample().len());
    for ((label, a, secret), it) in sample().iter().zip(&k.items) {
        assert_eq!(it.label, *label);
        assert_eq!(it.attributes, attrs(a), "{label}");
        assert_eq!(&it.secret[..], &secret[..], "{label}");
        assert!(it.created > Some(1_600_000_000), "{it:?}");
        let e: Vec<&EntryData> = entries
            .iter()
            .filter(|e| e.label == *label && !e.label.is_empty())
            .collect();
        assert_eq!(e.len(), 1, "{label}: {entries:?}");
        let e = e[0];
        assert_eq!(e.attributes, attrs(a), "{label}");
        assert_eq!(&e.secret[..], &secret[..], "{label}");
        assert_eq!(Some(e.created), it.created, "{label}: creation time");
        assert_eq!(Some(e.modified), it.modified, "{label}: modification time");
        match Identity::from_attributes(&attrs(a)) {
            Some(id) => assert_eq!(Identity::of(e), id),
            None => assert!(Identity::of(e).is_synthetic(), "{e:?}"),
        }
    }
}

/// The latest creation or modification time of the file's items.
fn latest_time(file: &Path, password: &[u8]) -> i64 {
    let k = libsecret::parse(file, &std::fs::read(file).unwrap(), password).unwrap();
    k.items
        .iter()
        .filter_map(|i| i.created.max(i.modified))
        .max()
        .unwrap()
}

#[test]
fn a_file_secret_tool_wrote_imports_exactly_once_with_its_times() {
    let dir = TempDir::new("imp-lsf");
    let home = dir.path().join("home");
    let file = home.join(".local/share/keyrings/default.keyring");
    write_sample(&file, FILE_PW.as_bytes());
    let before = sha(&file);
    let store = open_store(&dir);
    let f = file.to_str().unwrap();
    // Times written at the import would differ from the items' own.
    wait_past(latest_time(&file, FILE_PW.as_bytes()));
    let pw = format!("{FILE_PW}\n");

    // A wrong password: exit 5 naming the file, nothing imported.
    let o = import(&dir.store(), &home, &[f, "--password-stdin"], b"not-it\n");
    assert_exit(&o, 5);
    assert!(stderr(&o).contains(f), "{}", stderr(&o));
    assert!(store.entries().unwrap().is_empty());

    // A dry run lists labels and attribute names, never secrets, and writes nothing.
    let o = import(
        &dir.store(),
        &home,
        &[f, "--password-stdin", "--dry-run"],
        pw.as_bytes(),
    );
    assert_exit(&o, 0);
    let out = stdout(&o);
    assert!(
        out.contains("App item") && out.contains("xdg:schema") && !out.contains("org.example"),
        "{out}"
    );
    assert!(
        out.contains("dry run, nothing written: 3 new, 0 already there, 0 conflicting"),
        "{out}"
    );
    assert!(
        !out.contains("pässwörd") && !out.contains("app token"),
        "{out}"
    );
    assert!(store.entries().unwrap().is_empty());

    // The default FILE: $HOME/.local/share/keyrings/default.keyring (no XDG_DATA_HOME).
    let o = import(&dir.store(), &home, &["--password-stdin"], pw.as_bytes());
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains(&format!(
            "imported from {f}: 3 new, 0 already there, 0 conflicting"
        )),
        "{}",
        stdout(&o)
    );
    check_entries(&store, &file, FILE_PW.as_bytes());
    let o = keyringrs(&dir.store(), &["get", "svc.example", "alice"], b"");
    assert_exit(&o, 0);
    assert_eq!(o.stdout, "alice's pässwörd".as_bytes());

    // Again: nothing added; the source unchanged.
    let o = import(&dir.store(), &home, &[f, "--password-stdin"], pw.as_bytes());
    assert_prints(&o, "0 new, 3 already there, 0 conflicting");
    check_entries(&store, &file, FILE_PW.as_bytes());
    assert_eq!(sha(&file), before, "the source was modified");

    // A (service, username) taken by another secret: the item becomes a second entry, the
    // original is untouched; the next import finds that copy.
    let o = keyringrs(&dir.store(), &["set", "svc.example", "alice"], b"changed\n");
    assert_exit(&o, 0);
    let o = import(&dir.store(), &home, &[f, "--password-stdin"], pw.as_bytes());
    assert_prints(&o, "0 new, 2 already there, 1 conflicting");
    assert_eq!(&store.get("svc.example", "alice").unwrap()[..], b"changed");
    let alice: Vec<EntryData> = store
        .entries()
        .unwrap()
        .into_iter()
        .filter(|e| e.label == "Python keyring item")
        .collect();
    assert_eq!(alice.len(), 2, "{alice:?}");
    let copy = alice
        .iter()
        .find(|e| Identity::of(e).is_synthetic())
        .expect("a synthetic copy");
    assert_eq!(&copy.secret[..], "alice's pässwörd".as_bytes());
    assert_eq!(
        copy.attributes,
        attrs(&[("service", "svc.example"), ("username", "alice")])
    );
    let o = import(&dir.store(), &home, &[f, "--password-stdin"], pw.as_bytes());
    assert_prints(&o, "0 new, 3 already there, 0 conflicting");
    let n = store.entries().unwrap().len();
    assert_eq!(n, 4);

    // A damaged item (one byte of the second item's encrypted part) among good ones, and a
    // truncated file: exit 7 naming the file, nothing imported.
    let bytes = std::fs::read(&file).unwrap();
    let mut damaged = bytes.clone();
    let id = bytes
        .windows(3)
        .position(|w| w == b"id\0")
        .expect("item 2's hashed attribute id");
    // Its hashed attributes: "id\0" + MAC + offset, "xdg:schema\0" + MAC + offset, the
    // dictionary's two offsets; then the blob.
    let blob = id + 3 + 32 + 1 + 11 + 32 + 1 + 2;
    damaged[blob + 5] ^= 0x40;
    let bad = dir.path().join("damaged.keyring");
    std::fs::write(&bad, &damaged).unwrap();
    let cut = dir.path().join("truncated.keyring");
    std::fs::write(&cut, &bytes[..bytes.len() - 40]).unwrap();
    for (path, says) in [(&bad, "item 2 of 3 fails"), (&cut, "truncated.keyring")] {
        let p = path.to_str().unwrap();
        let o = import(&dir.store(), &home, &[p, "--password-stdin"], pw.as_bytes());
        assert_exit(&o, 7);
        assert!(
            stderr(&o).contains(p) && stderr(&o).contains(says),
            "{}",
            stderr(&o)
        );
    }
    assert_eq!(store.entries().unwrap().len(), n);

    // A gnome-keyring file given as a libsecret one (and the other way round) says which
    // import reads it.
    let mut v0 = bytes.clone();
    v0[16] = 0;
    let gk = dir.path().join("login.keyring");
    std::fs::write(&gk, &v0).unwrap();
    let o = import(
        &dir.store(),
        &home,
        &[gk.to_str().unwrap(), "--password-stdin"],
        pw.as_bytes(),
    );
    assert_refused(&o, 7, "import gnome-keyring");
    let o = keyringrs(
        &dir.store(),
        &["import", "gnome-keyring", f, "--password-stdin"],
        pw.as_bytes(),
    );
    assert_refused(&o, 7, "import libsecret-file");

    // A missing file: exit 1.
    let o = import(
        &dir.store(),
        &home,
        &["/nonexistent/default.keyring", "--password-stdin"],
        pw.as_bytes(),
    );
    assert_exit(&o, 1);

    // A locked store: exit 3 before anything is read.
    let o = keyringrs(&dir.store(), &["lock"], b"");
    assert_exit(&o, 0);
    let o = import(&dir.store(), &home, &[f, "--password-stdin"], pw.as_bytes());
    assert_exit(&o, 3);
}

/// The item keeping `app`'s portal secret, as keyringrs-secret-service and gnome-keyring keep
/// it (libkeyring::portal), with a known `secret`.
fn put_portal_secret(store: &Store, app: &str, secret: &[u8]) {
    let a = libkeyring::portal::attributes(app);
    let id = Identity::synthetic(&a);
    store
        .set_item(
            &id.service,
            &id.username,
            secret,
            Some(&libkeyring::portal::label(app)),
            Some(&a),
            Some(libkeyring::portal::CONTENT_TYPE),
        )
        .unwrap();
}

#[test]
fn app_id_opens_the_apps_keyring_with_its_portal_secret() {
    let dir = TempDir::new("imp-lsf-app");
    let home = dir.path().join("home");
    let store = open_store(&dir);
    // The Flatpak app's keyring, in its data directory; libsecret inside the sandbox uses the
    // portal's 64 bytes as the file's password. secret-tool takes a password as a string
    // (SECRET_FILE_TEST_PASSWORD): 64 ASCII bytes here.
    let portal: Vec<u8> = (0..64u32).map(|i| b'!' + (i * 7 % 90) as u8).collect();
    assert_eq!(portal.len(), libkeyring::portal::SECRET_LEN);
    put_portal_secret(&store, APP, &portal);
    assert_eq!(
        &libkeyring::portal::find(&store, APP)
            .unwrap()
            .unwrap()
            .1
            .secret[..],
        &portal[..]
    );
    let file = home.join(format!(".var/app/{APP}/data/keyrings/default.keyring"));
    write_sample(&file, &portal);
    wait_past(latest_time(&file, &portal));
    let n = store.entries().unwrap().len();

    // FILE defaults to the app's; nothing is read from stdin or a tty.
    let o = import(&dir.store(), &home, &["--app-id", APP], b"");
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("3 new, 0 already there, 0 conflicting")
            && stdout(&o).contains(file.to_str().unwrap()),
        "{}",
        stdout(&o)
    );
    check_entries(&store, &file, &portal);
    assert_eq!(store.entries().unwrap().len(), n + 3);
    let o = import(&dir.store(), &home, &["--app-id", APP], b"");
    assert_prints(&o, "0 new, 3 already there");

    // An app whose portal secret is not in the store: exit 1 saying so, nothing imported.
    let other = "org.example.Other";
    let other_file = home.join(format!(".var/app/{other}/data/keyrings/default.keyring"));
    secret_tool_store(&other_file, b"whatever", "x", &[("a", "b")], b"s");
    let o = import(&dir.store(), &home, &["--app-id", other], b"");
    assert_refused(
        &o,
        1,
        "portal secret of the app org.example.Other is not in the store",
    );
    // Its portal secret is not that file's password: exit 5, nothing imported.
    put_portal_secret(&store, other, &[b'x'; 64]);
    let o = import(&dir.store(), &home, &["--app-id", other], b"");
    assert_exit(&o, 5);
    assert!(
        stderr(&o).contains("portal secret of org.example.Other")
            && stderr(&o).contains(other_file.to_str().unwrap()),
        "{}",
        stderr(&o)
    );
    assert_eq!(store.entries().unwrap().len(), n + 4);

    // A secret minted by libkeyring::portal::secret (64 random bytes, what the daemon hands the
    // sandboxed app): secret-tool cannot take raw bytes, so this file is written by our encoder
    // (byte-compatible with libsecret's, tests in import/src/libsecret/tests.rs).
    let minted_app = "org.example.Minted";
    let minted = libkeyring::portal::secret(&store, minted_app).unwrap();
    assert!(minted.minted && minted.secret.len() == 64);
    let minted = minted.secret;
    let minted_file = home.join(format!(
        ".var/app/{minted_app}/data/keyrings/default.keyring"
    ));
    std::fs::create_dir_all(minted_file.parent().unwrap()).unwrap();
    let k = libsecret::Keyring {
        salt: vec![9; 32],
        iterations: 1000,
        modified: 1_700_000_100,
        usage_count: 1,
        items: vec![libsecret::Item {
            label: "Minted".into(),
            attributes: attrs(&[("xdg:schema", "org.example.Minted"), ("n", "1")]),
            secret: vec![0u8, 1, 2].into(),
            created: Some(1_700_000_000),
            modified: Some(1_700_000_050),
        }],
    };
    std::fs::write(&minted_file, libsecret::encode(&k, &minted)).unwrap();
    let o = import(&dir.store(), &home, &["--app-id", minted_app], b"");
    assert_prints(&o, "1 new");
    let e = store
        .entries()
        .unwrap()
        .into_iter()
        .find(|e| e.label == "Minted")
        .unwrap();
    assert_eq!(
        (e.created, e.modified, &e.secret[..]),
        (1_700_000_000, 1_700_000_050, &[0u8, 1, 2][..])
    );

    // An app id that is not one path element is refused.
    let o = import(&dir.store(), &home, &["--app-id", "../x"], b"");
    assert_exit(&o, 1);
    // --app-id and --password-stdin exclude each other: a usage error.
    let o = import(
        &dir.store(),
        &home,
        &["--app-id", APP, "--password-stdin"],
        b"",
    );
    assert_eq!(code(&o), 2, "{}", stderr(&o));
}

#[test]
fn an_empty_keyring_imports_nothing_and_says_its_password_was_not_checked() {
    let dir = TempDir::new("imp-lsf-empty");
    let store = open_store(&dir);
    let file = dir.path().join("empty.keyring");
    let k = libsecret::Keyring {
        salt: vec![1; 32],
        iterations: 100_000,
        modified: 0,
        usage_count: 0,
        items: vec![],
    };
    std::fs::write(&file, libsecret::encode(&k, b"any")).unwrap();
    let o = import(
        &dir.store(),
        dir.path(),
        &[file.to_str().unwrap(), "--password-stdin"],
        b"",
    );
    assert_exit(&o, 0);
    assert!(stdout(&o).contains("0 new, 0 already there, 0 conflicting"));
    assert!(
        stderr(&o).contains("no way to check its password"),
        "{}",
        stderr(&o)
    );
    assert!(store.entries().unwrap().is_empty());
}

#[test]
fn set_imported_keeps_sane_times_and_never_overwrites() {
    let dir = TempDir::new("imp-times");
    fresh_session();
    let store = Store::init(dir.store(), b"pw", &test_opts()).unwrap();
    let entry = |username: &str, created: i64, modified: i64| EntryData {
        service: "svc".into(),
        username: username.into(),
        label: format!("label {username}"),
        content_type: "text/plain".into(),
        attributes: attrs(&[("service", "svc"), ("username", username), ("x", "y")]),
        created,
        modified,
        secret: b"s3cret".to_vec().into(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    store
        .set_imported(&entry("old", 1_000_000_000, 1_500_000_000))
        .unwrap();
    let e = store.entry("svc", "old").unwrap();
    assert_eq!((e.created, e.modified), (1_000_000_000, 1_500_000_000));
    assert_eq!(e.label, "label old");
    assert_eq!(e.content_type, "text/plain");
    assert_eq!(&e.secret[..], b"s3cret");
    // Found by its attributes like any item (indexed).
    assert_eq!(store.search(&attrs(&[("x", "y")])).unwrap().len(), 1);

    // Not after 1970, or more than a day ahead: the time of the write.
    for (u, c, m) in [
        ("neg", -5, 0),
        ("future", now + 10 * 86_400, i64::MAX),
        ("zero", i64::MIN, 0),
    ] {
        store.set_imported(&entry(u, c, m)).unwrap();
        let e = store.entry("svc", u).unwrap();
        for t in [e.created, e.modified] {
            assert!((now - 5..now + 60).contains(&t), "{u}: {t} (now {now})");
        }
    }

    // Never over an existing entry: refused, the entry untouched.
    let mut again = entry("old", 1_600_000_000, 1_600_000_000);
    again.secret = b"other".to_vec().into();
    match store.set_imported(&again) {
        Err(Error::InvalidInput(why)) => assert!(why.contains("exists already"), "{why}"),
        other => panic!("{other:?}"),
    }
    let e = store.entry("svc", "old").unwrap();
    assert_eq!((e.created, &e.secret[..]), (1_000_000_000, &b"s3cret"[..]));
    // set_item still replaces, keeping the creation time.
    store.set("svc", "old", b"new").unwrap();
    let e = store.entry("svc", "old").unwrap();
    assert_eq!(e.created, 1_000_000_000);
    assert!(e.modified >= now - 5);
}
