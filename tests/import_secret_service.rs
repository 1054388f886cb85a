//! `keyringrs import secret-service` (docs/IMPORT.md) from a real gnome-keyring-daemon on a
//! private session bus (items stored with `secret-tool`), into a store unlocked in a fresh
//! session keyring; then our own daemon serves the imported items to `secret-tool`, and the
//! import refuses it as a provider. gnome-keyring-daemon, secret-tool, dbus-daemon and dbus-send
//! come with `make test`; without them the tests fail saying what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use keyringrs_rigs::bus::{wait_for_owner, Bus, SECRETS};
use keyringrs_tests::gnome::*;
use keyringrs_tests::*;
use libkeyring::Store;

/// An item's attributes as the provider shows them, read with `secret-tool search --all` (which
/// prints `xdg:schema` as `schema = `): gnome-keyring adds `xdg:schema` to some items stored
/// without one.
fn source_attrs(bus: &str, label: &str, pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut c = Command::new("secret-tool");
    c.env("DBUS_SESSION_BUS_ADDRESS", bus)
        .args(["search", "--all"]);
    for (k, v) in pairs {
        c.args([k, v]);
    }
    let o = run(c, b"");
    assert!(o.status.success(), "secret-tool search: {}", stderr(&o));
    // Item details go to stdout, its attributes to stderr: search for one item only.
    let out = stdout(&o);
    let err = stderr(&o);
    assert_eq!(
        out.lines().filter(|l| l.starts_with('[')).count(),
        1,
        "{out}"
    );
    assert!(
        out.lines().any(|l| l == format!("label = {label}")),
        "{out}"
    );
    let mut a = BTreeMap::new();
    for l in out.lines().chain(err.lines()) {
        if let Some(rest) = l.strip_prefix("attribute.") {
            let (k, v) = rest.split_once(" = ").expect("attribute line");
            a.insert(k.to_string(), v.to_string());
        } else if let Some(schema) = l.strip_prefix("schema = ") {
            a.insert("xdg:schema".to_string(), schema.to_string());
        }
    }
    for (k, v) in pairs {
        assert_eq!(a.get(*k).map(String::as_str), Some(*v), "{label}: {out}");
    }
    a
}

fn open_store(dir: &TempDir) -> Store {
    fresh_session();
    let o = keyringrs(&dir.store(), &["init", "--password-stdin"], b"pw\n");
    assert_exit(&o, 0);
    Store::open(dir.store()).unwrap()
}

/// `keyringrs --store S import secret-service ARGS` against the provider on `bus`.
fn import(store: &Path, bus: &str, args: &[&str]) -> Output {
    let mut c = cli(store);
    c.env("DBUS_SESSION_BUS_ADDRESS", bus)
        .args(["import", "secret-service"])
        .args(args);
    run(c, b"")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sha(path: &Path) -> [u8; 32] {
    libkeyring::crypto::sha256(&[&std::fs::read(path).unwrap()])
}

fn check_entries(store: &Store, expected: &BTreeMap<&str, BTreeMap<String, String>>) {
    check_imported(store, |label, _| expected[label].clone());
}

/// A gnome-keyring-daemon holding the sample items, kept running.
fn gnome_keyring_with_samples(dir: &TempDir) -> GnomeKeyring {
    let gk = GnomeKeyring::start(dir.path(), GK_PASSWORD);
    for (label, a, secret) in sample() {
        gk.store(label, &a, &secret);
    }
    gk
}

/// A private session bus with keyringrs-secret-service over `store` on it; both killed on drop
/// (the daemon first, then its bus).
struct OurDaemon {
    daemon: Child,
    bus: Bus,
}

impl Drop for OurDaemon {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

fn daemon_bin() -> PathBuf {
    let p = target_dir().join("keyringrs-secret-service");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` (or `make test`) first",
        p.display()
    );
    p
}

fn session_bus() -> Bus {
    need("dbus-daemon");
    Bus::session().unwrap_or_else(|e| panic!("start dbus-daemon: {e}"))
}

impl OurDaemon {
    fn start(store: &Path) -> OurDaemon {
        let bus = session_bus();
        let daemon = Command::new(daemon_bin())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .env("KEYRINGRS_STORE", store)
            .env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
            .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
            .stdin(Stdio::null())
            .spawn()
            .expect("start keyringrs-secret-service");
        let d = OurDaemon { daemon, bus };
        wait_for_owner(
            d.address(),
            SECRETS,
            Duration::from_secs(20),
            Duration::from_millis(50),
        )
        .unwrap_or_else(|e| {
            panic!("keyringrs-secret-service did not take org.freedesktop.secrets: {e}")
        });
        d
    }

    fn address(&self) -> &str {
        self.bus.address()
    }
}

#[test]
fn secret_service_import_from_gnome_keyring_then_our_daemon_serves_the_same_secrets() {
    let dir = TempDir::new("imp-ss");
    let gk = gnome_keyring_with_samples(&dir);
    let bus = gk.address().to_string();
    let file = gk.keyring_file();
    let before = sha(&file);
    let store = open_store(&dir);
    let expected: BTreeMap<&str, BTreeMap<String, String>> = sample()
        .iter()
        .map(|(label, a, _)| (*label, source_attrs(&bus, label, a)))
        .collect();

    // A dry run lists labels and attribute names, never secrets (nor attribute values), and
    // writes nothing.
    let o = import(&dir.store(), &bus, &["--dry-run"]);
    assert_exit(&o, 0);
    let out = stdout(&o);
    for (label, _, secret) in sample() {
        assert!(out.contains(label), "{out}");
        assert!(!out.contains(&*String::from_utf8_lossy(&secret)), "{out}");
    }
    assert!(
        out.contains("xdg:schema") && !out.contains("ünïcode"),
        "{out}"
    );
    assert!(
        out.contains("dry run, nothing written: 4 new, 0 already there, 0 conflicting"),
        "{out}"
    );
    assert!(out.contains("gnome-keyring-daemon"), "{out}");
    assert!(store.entries().unwrap().is_empty());

    // The items' Created/Modified as gnome-keyring keeps them (its login keyring file, written
    // at each store); times written at the import would differ from them.
    let keyring = keyringrs_import::gnome::parse(
        &file,
        &std::fs::read(&file).unwrap(),
        Some(GK_PASSWORD.as_bytes()),
    )
    .unwrap();
    wait_past(latest_time(&keyring));
    let o = import(&dir.store(), &bus, &[]);
    assert_exit(&o, 0);
    assert!(
        stdout(&o).contains("4 new, 0 already there, 0 conflicting"),
        "{}",
        stdout(&o)
    );
    check_entries(&store, &expected);
    check_times(&store, &keyring);

    // Again: nothing added; by collection name (path element, label, alias) the same.
    for args in [
        &[][..],
        &["--collection", "login"],
        &["--collection", "Login"],
        &["--collection", "default"],
    ] {
        let o = import(&dir.store(), &bus, args);
        assert_exit(&o, 0);
        assert!(
            stdout(&o).contains("0 new, 4 already there, 0 conflicting"),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    check_entries(&store, &expected);

    // An unknown collection: one clear line, exit 1, nothing written.
    let o = import(&dir.store(), &bus, &["--collection", "nope"]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("no collection \"nope\"") && stderr(&o).contains("login"),
        "{}",
        stderr(&o)
    );
    assert_eq!(store.entries().unwrap().len(), 4);

    // The source was only read: its file is unchanged, its items still there.
    assert_eq!(sha(&file), before, "the gnome-keyring keyring was modified");

    // A locked collection is unlocked through the provider's prompt; this gnome-keyring has no
    // prompter, so the prompt completes dismissed: a clear error, nothing imported.
    let o = Command::new("dbus-send")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            "array:objpath:/org/freedesktop/secrets/collection/login",
        ])
        .output()
        .expect("dbus-send");
    assert!(o.status.success(), "Lock: {}", stderr(&o));
    let dir2 = TempDir::new("imp-ss-locked");
    let o = keyringrs(&dir2.store(), &["init", "--password-stdin"], b"pw\n");
    assert_exit(&o, 0);
    let o = import(&dir2.store(), &bus, &["--collection", "login"]);
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("dismissed"), "{}", stderr(&o));
    assert!(Store::open(dir2.store())
        .unwrap()
        .entries()
        .unwrap()
        .is_empty());
    drop(gk);

    // Done when: our daemon over the importing store serves every item with the same secret.
    let ours = OurDaemon::start(&dir.store());
    for (label, _, secret) in sample() {
        let mut c = Command::new("secret-tool");
        // A UTF-8 locale: secret-tool converts its arguments from the locale's charset.
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("LC_ALL", "C.UTF-8")
            .env("DBUS_SESSION_BUS_ADDRESS", ours.address())
            .arg("lookup");
        for (k, v) in &expected[label] {
            c.args([k, v]);
        }
        let o = run(c, b"");
        assert!(o.status.success(), "lookup {label}: {}", stderr(&o));
        assert_eq!(o.stdout, secret, "{label}");
    }

    // And it refuses our own daemon as a provider: one line, exit 1, nothing written.
    let o = import(&dir.store(), ours.address(), &[]);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("keyringrs-secret-service itself"),
        "{}",
        stderr(&o)
    );
    let o = import(&dir.store(), ours.address(), &["--dry-run"]);
    assert_exit(&o, 1);
    assert_eq!(store.entries().unwrap().len(), 4);
}

#[test]
fn secret_service_import_without_a_provider_is_a_clear_error() {
    let dir = TempDir::new("imp-ss-none");
    let _store = open_store(&dir);
    let bus = session_bus();
    let o = import(&dir.store(), bus.address(), &[]);
    drop(bus);
    assert_exit(&o, 1);
    assert!(
        stderr(&o).contains("no Secret Service provider is running"),
        "{}",
        stderr(&o)
    );
}
