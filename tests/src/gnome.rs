//! A real gnome-keyring-daemon for the tests: a private session bus and throwaway HOME, items
//! stored with `secret-tool`, the login keyring file it writes (binary with a password, or
//! textual after its own ChangeWithMasterPassword to a blank one). Used by the import tests and
//! the PAM first-login import test.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::TempDir;

pub const GK_PASSWORD: &str = "gk-login-pw";

pub fn need(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).exists()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: `make test` installs gnome-keyring, libsecret-tools, \
         dbus and python3-dbus (the bench packages)"
    );
}

/// A private session bus and gnome-keyring-daemon with a throwaway HOME, unlocked with
/// `password` on stdin; both killed on drop (the rig of `keyringrs-rigs`, shared with the bench).
#[derive(Debug)]
pub struct GnomeKeyring {
    rig: keyringrs_rigs::gnome::GnomeKeyring,
    /// The daemon's HOME (its login keyring is under .local/share/keyrings).
    pub home: PathBuf,
}

impl GnomeKeyring {
    pub fn start(dir: &Path, password: &str) -> GnomeKeyring {
        for p in [
            "dbus-daemon",
            "dbus-send",
            "gnome-keyring-daemon",
            "secret-tool",
        ] {
            need(p);
        }
        let rig = keyringrs_rigs::gnome::GnomeKeyring::start(dir, password)
            .unwrap_or_else(|e| panic!("{e}"));
        GnomeKeyring {
            home: rig.home().to_path_buf(),
            rig,
        }
    }

    /// The private session bus the daemon is on (for clients such as `keyringrs import
    /// secret-service`); the daemon keeps running until [`GnomeKeyring::stop`] or drop.
    pub fn address(&self) -> &str {
        self.rig.address()
    }

    pub fn keyring_file(&self) -> PathBuf {
        self.rig.keyring_file()
    }

    pub fn store(&self, label: &str, attrs: &[(&str, &str)], secret: &[u8]) {
        self.rig
            .store(label, attrs, secret)
            .unwrap_or_else(|e| panic!("{e}"));
    }

    /// gnome-keyring's own password change (its internal D-Bus interface, with a `plain`
    /// Secret Service session for the two passwords), as its prompts do.
    pub fn change_password(&self, old: &str, new: &str) {
        need("python3");
        let script = r#"
import sys, dbus
bus = dbus.SessionBus()
svc = bus.get_object('org.freedesktop.secrets', '/org/freedesktop/secrets')
_, session = svc.OpenSession('plain', dbus.String('', variant_level=1),
                             dbus_interface='org.freedesktop.Secret.Service')
def secret(pw):
    return dbus.Struct((session, dbus.ByteArray(b''), dbus.ByteArray(pw.encode()), 'text/plain'),
                       signature='oayays')
iface = dbus.Interface(svc, 'org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface')
iface.ChangeWithMasterPassword(dbus.ObjectPath('/org/freedesktop/secrets/collection/login'),
                               secret(sys.argv[1]), secret(sys.argv[2]))
"#;
        let o = Command::new("/usr/bin/python3")
            .env("DBUS_SESSION_BUS_ADDRESS", self.address())
            .args(["-c", script, old, new])
            .output()
            .expect("run /usr/bin/python3 (python3-dbus)");
        assert!(
            o.status.success(),
            "ChangeWithMasterPassword: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    pub fn stop(&mut self) {
        self.rig.stop();
    }
}

/// label, attributes, secret.
pub type SampleItem = (&'static str, Vec<(&'static str, &'static str)>, Vec<u8>);

/// The four items of the tests.
pub fn sample() -> Vec<SampleItem> {
    vec![
        (
            "Non-ASCII sécret",
            vec![("app", "ünïcode"), ("kind", "note")],
            "pässwörd ✓ 秘密".as_bytes().to_vec(),
        ),
        (
            "Several attributes",
            vec![
                ("host", "h.example"),
                ("port", "22"),
                ("protocol", "ssh"),
                ("user", "bob"),
            ],
            b"multi attr secret".to_vec(),
        ),
        (
            "With schema",
            vec![("xdg:schema", "org.example.Password"), ("id", "42")],
            b"schema secret".to_vec(),
        ),
        (
            "Python keyring item",
            vec![("service", "svc.example"), ("username", "alice")],
            b"alice's token".to_vec(),
        ),
    ]
}

/// A login keyring written by gnome-keyring with the sample items; the daemon is stopped.
pub fn make_keyring(dir: &TempDir) -> GnomeKeyring {
    let mut gk = GnomeKeyring::start(dir.path(), GK_PASSWORD);
    for (label, a, secret) in sample() {
        gk.store(label, &a, &secret);
    }
    gk.stop();
    assert!(
        gk.keyring_file().exists(),
        "gnome-keyring wrote no login.keyring"
    );
    gk
}

/// The sample items are entries of `store` with their label, the attributes `attributes_of`
/// gives for (label, the sample's attributes), the exact secret, and the identity
/// libkeyring::mapping says.
pub fn check_imported(
    store: &libkeyring::Store,
    attributes_of: impl Fn(&str, &[(&str, &str)]) -> std::collections::BTreeMap<String, String>,
) {
    use libkeyring::mapping::{self, Identity};
    let entries = store.entries().unwrap();
    assert_eq!(entries.len(), 4, "{entries:?}");
    for (label, sample_attrs, secret) in sample() {
        let a = attributes_of(label, &sample_attrs);
        let e: &libkeyring::EntryData = entries
            .iter()
            .find(|e| e.label == label)
            .unwrap_or_else(|| panic!("no entry labelled {label:?}: {entries:?}"));
        assert_eq!(e.attributes, a, "{label}");
        assert_eq!(mapping::item_attributes(e), a, "{label}");
        assert_eq!(&e.secret[..], &secret[..], "{label}");
        match Identity::from_attributes(&a) {
            Some(id) => assert_eq!(Identity::of(e), id),
            None => {
                let schema = a.get("xdg:schema").map_or("", String::as_str);
                assert_eq!(e.service, format!("{}{schema}", mapping::SYNTHETIC_PREFIX));
                assert!(Identity::of(e).is_synthetic());
                assert_eq!(e.username.len(), 36, "a UUID: {}", e.username);
            }
        }
    }
    assert_eq!(
        &store.get("svc.example", "alice").unwrap()[..],
        b"alice's token"
    );
}

/// Every entry of `store` labelled like an item of `keyring` has that item's creation and
/// modification time (what the import carries over); `keyring` is the file as
/// keyringrs_import::gnome reads it.
pub fn check_times(store: &libkeyring::Store, keyring: &keyringrs_import::gnome::Keyring) {
    let entries = store.entries().unwrap();
    assert!(!keyring.items.is_empty());
    for it in &keyring.items {
        assert!(it.created > 1_600_000_000, "{it:?}");
        let mut found = 0;
        for e in entries.iter().filter(|e| e.label == it.label) {
            assert_eq!(
                (e.created, e.modified),
                (it.created, it.modified),
                "{}: times",
                it.label
            );
            found += 1;
        }
        assert!(found > 0, "no entry labelled {:?}", it.label);
    }
}

/// The latest creation or modification time of the keyring's items.
pub fn latest_time(keyring: &keyringrs_import::gnome::Keyring) -> i64 {
    keyring
        .items
        .iter()
        .map(|i| i.created.max(i.modified))
        .max()
        .unwrap_or(0)
}
