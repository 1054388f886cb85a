//! Items with any attributes and the blind index (docs/FORMAT.md "index"): a search finds exactly
//! the items holding the query's pairs, and a missing, damaged, cut or stale index never makes
//! it return a wrong item or miss one.

use std::collections::BTreeMap;

use keyringrs_tests::*;
use libkeyring::mapping::Identity;
use libkeyring::Store;

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn new_store(dir: &TempDir) -> Store {
    fresh_session();
    Store::init(dir.store(), b"pw", &test_opts()).expect("init")
}

/// An app's item (no service/username): stored under a synthetic identity, as the daemon does.
fn add_app_item(s: &Store, schema: &str, id: &str, secret: &[u8]) -> String {
    let a = attrs(&[("xdg:schema", schema), ("id", id)]);
    let ident = Identity::synthetic(&a);
    s.set_item(
        &ident.service,
        &ident.username,
        secret,
        Some(&format!("item {id}")),
        Some(&a),
        Some("application/octet-stream"),
    )
    .unwrap();
    s.entry_name(&ident.service, &ident.username).unwrap()
}

fn secrets(found: &[libkeyring::Found]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = found.iter().map(|(_, e)| e.secret.to_vec()).collect();
    v.sort();
    v
}

#[test]
fn a_search_finds_exactly_the_items_with_all_the_pairs() {
    let dir = TempDir::new("items-search");
    let s = new_store(&dir);
    for i in 0..50 {
        add_app_item(
            &s,
            "org.example.App",
            &i.to_string(),
            format!("s{i}").as_bytes(),
        );
    }
    add_app_item(&s, "org.example.Other", "7", b"other");
    s.set("svc", "alice", b"cli").unwrap();
    let q = |p: &[(&str, &str)]| s.search(&attrs(p)).unwrap();
    assert_eq!(
        secrets(&q(&[("xdg:schema", "org.example.App"), ("id", "7")])),
        vec![b"s7".to_vec()]
    );
    assert_eq!(
        secrets(&q(&[("id", "7")])),
        vec![b"other".to_vec(), b"s7".to_vec()]
    );
    assert_eq!(q(&[("xdg:schema", "org.example.App")]).len(), 50);
    assert!(q(&[("xdg:schema", "org.example.App"), ("id", "50")]).is_empty());
    assert_eq!(
        secrets(&q(&[("service", "svc"), ("username", "alice")])),
        vec![b"cli".to_vec()]
    );
    assert_eq!(q(&[]).len(), 52);
    // The content type and label are kept.
    let e = &q(&[("id", "3")])[0].1;
    assert_eq!(e.content_type, "application/octet-stream");
    assert_eq!(e.label, "item 3");
    // Addressed by name, as the daemon does.
    let name = add_app_item(&s, "org.example.App", "x", b"by name");
    assert_eq!(&**s.entry_by_name(&name).unwrap().secret, b"by name");
    // Deleted items are not found.
    s.delete("svc", "alice").unwrap();
    assert!(q(&[("service", "svc")]).is_empty());
}

/// Two items may share service and username (a Secret Service CreateItem with replace=false):
/// the second lives under a synthetic identity with the same attributes.
#[test]
fn items_sharing_service_and_username_coexist() {
    let dir = TempDir::new("items-dup");
    let s = new_store(&dir);
    s.set("S", "U", b"first").unwrap();
    let a = attrs(&[("service", "S"), ("username", "U")]);
    let dup = Identity::synthetic(&a);
    s.set_entry(&dup.service, &dup.username, b"second", None, Some(&a))
        .unwrap();
    let found = s.search(&a).unwrap();
    assert_eq!(secrets(&found), vec![b"first".to_vec(), b"second".to_vec()]);
    assert_eq!(&**s.get("S", "U").unwrap(), b"first");
}

/// No index file, a damaged one, one cut in the middle of a record: every search still finds
/// every item (rebuilt from the entries), and the rebuilt file serves the next handle.
#[test]
fn a_missing_damaged_or_cut_index_is_rebuilt() {
    let dir = TempDir::new("items-rebuild");
    let s = new_store(&dir);
    for i in 0..20 {
        add_app_item(&s, "org.example.App", &i.to_string(), b"x");
    }
    let index = dir.store().join("index");
    let good = std::fs::read(&index).unwrap();
    let q = attrs(&[("xdg:schema", "org.example.App")]);
    let mut damaged = good.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x40;
    for (what, bytes) in [
        ("missing", None),
        ("damaged", Some(damaged)),
        ("cut", Some(good[..good.len() - 7].to_vec())),
        ("empty", Some(vec![])),
    ] {
        match &bytes {
            None => std::fs::remove_file(&index).unwrap(),
            Some(b) => std::fs::write(&index, b).unwrap(),
        }
        let fresh = Store::open(dir.store()).unwrap();
        assert_eq!(fresh.search(&q).unwrap().len(), 20, "{what}");
        // The running handle notices the file changed under it too.
        assert_eq!(
            s.search(&q).unwrap().len(),
            20,
            "{what} (long-lived handle)"
        );
        let rebuilt = Store::open(dir.store()).unwrap();
        assert_eq!(
            rebuilt.search(&q).unwrap().len(),
            20,
            "{what} (after rebuild)"
        );
        std::fs::write(&index, &good).unwrap();
    }
}

/// An entry the index does not know (written by something that skipped the index, or whose
/// record a power cut lost) is found by the next full read of the index, which compares it with
/// the entry directory; a record for an item that is gone is dropped.
#[test]
fn entries_missing_from_the_index_are_found_and_ghosts_dropped() {
    let dir = TempDir::new("items-missing");
    let s = new_store(&dir);
    add_app_item(&s, "org.example.App", "1", b"one");
    let index = dir.store().join("index");
    let before = std::fs::read(&index).unwrap();
    add_app_item(&s, "org.example.App", "2", b"two");
    let ghost = add_app_item(&s, "org.example.App", "3", b"three");
    s.checkpoint().unwrap();
    // Lose the records of 2 and 3 (as a power cut could), and delete 3's file behind the
    // index's back.
    std::fs::write(&index, &before).unwrap();
    std::fs::remove_file(dir.store().join("entries").join(&ghost)).unwrap();
    let fresh = Store::open(dir.store()).unwrap();
    let found = fresh
        .search(&attrs(&[("xdg:schema", "org.example.App")]))
        .unwrap();
    assert_eq!(secrets(&found), vec![b"one".to_vec(), b"two".to_vec()]);
    assert_eq!(fresh.search(&attrs(&[("id", "2")])).unwrap().len(), 1);
}

/// An item whose attributes change keeps its old tokens in the index until compaction (a record
/// written before an entry write that never happened must not hide the item): a search by the
/// old attributes gets that candidate, decrypts it, and drops it.
#[test]
fn stale_candidates_are_checked_and_dropped() {
    let dir = TempDir::new("items-stale");
    let s = new_store(&dir);
    let a = attrs(&[("xdg:schema", "org.example.App"), ("id", "1")]);
    let ident = Identity::synthetic(&a);
    s.set_entry(&ident.service, &ident.username, b"x", None, Some(&a))
        .unwrap();
    let b = attrs(&[("xdg:schema", "org.example.App"), ("id", "2")]);
    s.set_entry(&ident.service, &ident.username, b"x", None, Some(&b))
        .unwrap();
    assert!(s.search(&attrs(&[("id", "1")])).unwrap().is_empty());
    assert_eq!(s.search(&attrs(&[("id", "2")])).unwrap().len(), 1);
    let other = Store::open(dir.store()).unwrap();
    assert!(other.search(&attrs(&[("id", "1")])).unwrap().is_empty());
}

/// Writers in other processes: a long-lived handle's search sees items another process added
/// and deleted after it last looked.
#[test]
fn a_long_lived_handle_sees_other_processes_writes() {
    let dir = TempDir::new("items-procs");
    let s = new_store(&dir);
    add_app_item(&s, "org.example.App", "1", b"one");
    let q = attrs(&[("xdg:schema", "org.example.App")]);
    assert_eq!(s.search(&q).unwrap().len(), 1);
    // The CLI is another process writing the same store.
    assert_exit(
        &keyringrs(&dir.store(), &["set", "--raw", "svc", "u"], b"cli"),
        0,
    );
    assert_eq!(
        secrets(&s.search(&attrs(&[("service", "svc")])).unwrap()),
        vec![b"cli".to_vec()]
    );
    assert_exit(
        &keyringrs(&dir.store(), &["set", "--raw", "svc", "v"], b"cli2"),
        0,
    );
    assert_eq!(s.search(&attrs(&[("service", "svc")])).unwrap().len(), 2);
    assert_exit(&keyringrs(&dir.store(), &["delete", "svc", "u"], b""), 0);
    assert_eq!(
        secrets(&s.search(&attrs(&[("service", "svc")])).unwrap()),
        vec![b"cli2".to_vec()]
    );
    assert_eq!(s.search(&q).unwrap().len(), 1);
}

/// Many attribute changes leave dead records; the next full read compacts the file.
#[test]
fn the_index_is_compacted() {
    let dir = TempDir::new("items-compact");
    let s = new_store(&dir);
    let a = attrs(&[("id", "0")]);
    let ident = Identity::synthetic(&a);
    for i in 0..300 {
        let b = attrs(&[("id", &i.to_string())]);
        s.set_entry(&ident.service, &ident.username, b"x", None, Some(&b))
            .unwrap();
    }
    let index = dir.store().join("index");
    let big = std::fs::metadata(&index).unwrap().len();
    let fresh = Store::open(dir.store()).unwrap();
    assert_eq!(fresh.search(&attrs(&[("id", "299")])).unwrap().len(), 1);
    let small = std::fs::metadata(&index).unwrap().len();
    assert!(small < big / 10, "{big} -> {small}");
    assert_eq!(fresh.search(&attrs(&[("id", "299")])).unwrap().len(), 1);
    assert!(fresh.search(&attrs(&[("id", "5")])).unwrap().is_empty());
}

/// Without the key, the files of a store hold no attribute name or value (the blind index keeps
/// keyed tokens; entries are sealed; file names are keyed hashes).
#[test]
fn nothing_on_disk_names_an_attribute_or_a_value() {
    let dir = TempDir::new("items-blind");
    let s = new_store(&dir);
    let a = attrs(&[
        ("xdg:schema", "org.example.DistinctiveSchema"),
        ("connection-uuid", "5e1f0c2a-distinctive-value"),
    ]);
    let ident = Identity::synthetic(&a);
    s.set_entry(
        &ident.service,
        &ident.username,
        b"x",
        Some("Distinctive label"),
        Some(&a),
    )
    .unwrap();
    s.set("distinctive-service.example", "distinctive-user", b"y")
        .unwrap();
    assert_eq!(s.search(&a).unwrap().len(), 1);
    let needles = [
        "DistinctiveSchema",
        "connection-uuid",
        "distinctive-value",
        "Distinctive label",
        "distinctive-service",
        "distinctive-user",
        "xdg:schema",
    ];
    for f in files_under(&dir.store()) {
        let bytes = std::fs::read(&f).unwrap();
        let name = f.to_string_lossy().into_owned();
        for n in needles {
            assert!(!name.contains(n), "{name}");
            assert!(
                !bytes.windows(n.len()).any(|w| w == n.as_bytes()),
                "{n} in {name}"
            );
        }
    }
}

/// Something planted in place of the index (derived data) is never followed or written through:
/// a symlink, a FIFO, a file of another mode or a hard link is replaced by a new index, and
/// every item is still found.
#[test]
fn a_planted_index_is_replaced_never_followed() {
    use std::os::unix::fs::PermissionsExt;
    for kind in ["symlink", "fifo", "loose mode", "hard link"] {
        let dir = TempDir::new("items-planted");
        let s = new_store(&dir);
        add_app_item(&s, "org.example.App", "1", b"one");
        let index = dir.store().join("index");
        let outside = dir.path().join("outside");
        std::fs::write(&outside, b"must not change").unwrap();
        std::fs::remove_file(&index).unwrap();
        match kind {
            "symlink" => std::os::unix::fs::symlink(&outside, &index).unwrap(),
            "fifo" => {
                let st = std::process::Command::new("mkfifo")
                    .arg(&index)
                    .status()
                    .unwrap();
                assert!(st.success());
            }
            "loose mode" => {
                std::fs::write(&index, b"keyringrs-index\n").unwrap();
                std::fs::set_permissions(&index, std::fs::Permissions::from_mode(0o666)).unwrap();
            }
            _ => std::fs::hard_link(&outside, &index).unwrap(),
        }
        // A write appends to it (a new item), a fresh handle searches through it.
        add_app_item(&s, "org.example.App", "2", b"two");
        let fresh = Store::open(dir.store()).unwrap();
        let found = fresh
            .search(&attrs(&[("xdg:schema", "org.example.App")]))
            .unwrap();
        assert_eq!(
            secrets(&found),
            vec![b"one".to_vec(), b"two".to_vec()],
            "{kind}"
        );
        assert_eq!(
            std::fs::read(&outside).unwrap(),
            b"must not change",
            "{kind}"
        );
        let m = std::fs::symlink_metadata(&index).unwrap();
        assert!(
            m.file_type().is_file(),
            "{kind}: replaced by a regular file"
        );
        assert_eq!(m.permissions().mode() & 0o777, 0o600, "{kind}");
    }
}
