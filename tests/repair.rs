//! `keyringrs check` and `keyringrs repair` on a corpus of damaged stores (docs/FORMAT.md
//! "Recovering a damaged store"): every kind of damage the format can have — bits flipped,
//! files cut, swapped, planted, replaced by something that is not a file, refused for their
//! owner, mode or links — in entry files, the journal, the index and the store directory. Each
//! case: `check` exits 7 naming the file, `repair` sets it aside into `damaged/` (never deletes),
//! then `check` is clean, every undamaged secret reads back, and a second `repair` changes
//! nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use keyringrs_tests::*;
use libkeyring::format::journal::{RECORDS_AT, RECORD_FIXED};
use libkeyring::{Error, Store};

/// The secrets of the base store: a, b, c in entry files; d, e, f in the journal (in order).
const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];

fn base(dir: &TempDir) -> std::path::PathBuf {
    fresh_session();
    let s = Store::init(dir.store(), b"pw", &test_opts()).expect("init");
    for n in &NAMES[..3] {
        s.set("svc", n, format!("secret-{n}").as_bytes()).unwrap();
    }
    s.checkpoint().unwrap();
    for n in &NAMES[3..] {
        s.set("svc", n, format!("secret-{n}").as_bytes()).unwrap();
    }
    dir.store()
}

fn entry_file(store: &Path, name: &str) -> std::path::PathBuf {
    let s = Store::open(store).unwrap();
    store
        .join("entries")
        .join(s.entry_name("svc", name).unwrap())
}

fn flip(path: &Path, at: usize) {
    let mut b = std::fs::read(path).unwrap();
    b[at] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

/// Cut or grow `path` to `len` bytes.
fn set_len(path: &Path, len: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_len(len).unwrap();
}

/// The offset of the journal's `n`th record (0-based).
fn record_at(store: &Path, n: usize) -> usize {
    let b = std::fs::read(store.join("journal")).unwrap();
    let mut at = RECORDS_AT as usize;
    for _ in 0..n {
        let len = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize;
        at += RECORD_FIXED + len + 16;
    }
    at
}

struct Case {
    name: &'static str,
    /// The file `check` must name (relative to the store).
    names: &'static str,
    /// Secrets lost with the damage (all others must read back).
    lost: &'static [&'static str],
    damage: fn(&Path),
}

/// A file under a name that is not UTF-8.
fn plant_non_utf8(dir: &Path) {
    use std::os::unix::ffi::OsStrExt;
    std::fs::write(
        dir.join(std::ffi::OsStr::from_bytes(b"\xff\xfeplanted")),
        b"x",
    )
    .unwrap();
}

const CASES: &[Case] = &[
    Case {
        name: "entry bit flipped",
        names: "entries/",
        lost: &["a"],
        damage: |s| flip(&entry_file(s, "a"), 60),
    },
    Case {
        name: "entry cut",
        names: "entries/",
        lost: &["b"],
        damage: |s| {
            let p = entry_file(s, "b");
            let b = std::fs::read(&p).unwrap();
            std::fs::write(&p, &b[..30]).unwrap();
        },
    },
    Case {
        name: "two entries swapped",
        names: "entries/",
        lost: &["a", "b"],
        damage: |s| {
            let (a, b) = (entry_file(s, "a"), entry_file(s, "b"));
            let tmp = s.join("swap");
            std::fs::rename(&a, &tmp).unwrap();
            std::fs::rename(&b, &a).unwrap();
            std::fs::rename(&tmp, &b).unwrap();
        },
    },
    Case {
        name: "planted file in entries/",
        names: "entries/notes.txt",
        lost: &[],
        damage: |s| {
            std::fs::write(s.join("entries/notes.txt"), "hello").unwrap();
        },
    },
    Case {
        name: "planted garbage under an entry name",
        names: "entries/",
        lost: &[],
        damage: |s| {
            std::fs::write(
                s.join("entries").join("ab".repeat(32)),
                b"keyringrs-entry\ngarbage",
            )
            .unwrap();
        },
    },
    Case {
        name: "a directory under an entry name",
        names: "entries/",
        lost: &[],
        damage: |s| {
            std::fs::create_dir(s.join("entries").join("cd".repeat(32))).unwrap();
        },
    },
    Case {
        name: "a symlink under an entry name",
        names: "entries/",
        lost: &[],
        damage: |s| {
            std::os::unix::fs::symlink("/etc/passwd", s.join("entries").join("ef".repeat(32)))
                .unwrap();
        },
    },
    Case {
        name: "entry group- and world-writable",
        names: "entries/",
        lost: &[],
        damage: |s| {
            std::fs::set_permissions(entry_file(s, "c"), std::fs::Permissions::from_mode(0o666))
                .unwrap();
        },
    },
    Case {
        name: "entry with a second hard link",
        names: "entries/",
        lost: &[],
        damage: |s| {
            std::fs::hard_link(entry_file(s, "c"), s.parent().unwrap().join("elsewhere")).unwrap();
        },
    },
    Case {
        name: "journal record in the middle flipped",
        names: "journal",
        lost: &["e", "f"],
        damage: |s| {
            flip(&s.join("journal"), record_at(s, 1) + 50);
        },
    },
    Case {
        name: "journal cut",
        names: "journal",
        lost: &[],
        damage: |s| set_len(&s.join("journal"), 8000),
    },
    Case {
        name: "journal grown",
        names: "journal",
        lost: &[],
        damage: |s| set_len(&s.join("journal"), 16384 + 100),
    },
    Case {
        name: "journal magic flipped",
        names: "journal",
        lost: &["d", "e", "f"],
        damage: |s| flip(&s.join("journal"), 3),
    },
    Case {
        name: "journal replaced by a directory",
        names: "journal",
        lost: &["d", "e", "f"],
        damage: |s| {
            std::fs::remove_file(s.join("journal")).unwrap();
            std::fs::create_dir(s.join("journal")).unwrap();
        },
    },
    Case {
        name: "journal replaced by a FIFO",
        names: "journal",
        lost: &["d", "e", "f"],
        damage: |s| {
            std::fs::remove_file(s.join("journal")).unwrap();
            let c =
                std::ffi::CString::new(s.join("journal").as_os_str().as_encoded_bytes()).unwrap();
            #[allow(unsafe_code)]
            // SAFETY: a NUL-terminated path.
            let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
            assert_eq!(rc, 0);
        },
    },
    Case {
        name: "journal world-writable",
        names: "journal",
        lost: &[],
        damage: |s| {
            std::fs::set_permissions(s.join("journal"), std::fs::Permissions::from_mode(0o666))
                .unwrap();
        },
    },
    Case {
        name: "index record flipped",
        names: "index",
        lost: &[],
        damage: |s| flip(&s.join("index"), 40),
    },
    Case {
        name: "index garbage",
        names: "index",
        lost: &[],
        damage: |s| std::fs::write(s.join("index"), b"not an index").unwrap(),
    },
    Case {
        name: "generation malformed",
        names: "generation",
        lost: &[],
        damage: |s| std::fs::write(s.join("generation"), b"xyz").unwrap(),
    },
    Case {
        name: "planted file in the store",
        names: "evil",
        lost: &[],
        damage: |s| std::fs::write(s.join("evil"), b"x").unwrap(),
    },
    Case {
        name: "a file under a non-UTF-8 name in entries/",
        names: "entries/",
        lost: &[],
        damage: |s| plant_non_utf8(&s.join("entries")),
    },
    Case {
        name: "a file under a non-UTF-8 name in the store",
        names: "",
        lost: &[],
        damage: |s| plant_non_utf8(s),
    },
];

fn run_cli(store: &Path, args: &[&str]) -> (i32, String, String) {
    let o = keyringrs(store, args, b"");
    (
        code(&o),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn every_kind_of_damage_is_found_set_aside_and_every_undamaged_secret_reads_back() {
    let dir = TempDir::new("repair-corpus");
    let original = base(&dir);
    let (rc, out, err) = run_cli(&original, &["check"]);
    assert_eq!(rc, 0, "the base store is clean: {out}{err}");
    for (i, case) in CASES.iter().enumerate() {
        let copy = dir.path().join(format!("case-{i}"));
        std::fs::create_dir(&copy).unwrap();
        let store = copy.join("store");
        copy_tree(&original, &store);
        (case.damage)(&store);
        let what = case.name;
        let (rc, out, err) = run_cli(&store, &["check"]);
        assert_eq!(rc, 7, "{what}: check must find it: {out}{err}");
        let named = store.join(case.names).display().to_string();
        assert!(
            out.lines().any(|l| l.starts_with(&named)),
            "{what}: no line naming {named}: {out}"
        );
        let (rc, out, err) = run_cli(&store, &["repair"]);
        assert_eq!(rc, 0, "{what}: repair: {out}{err}");
        assert!(out.contains("set aside: "), "{what}: {out}");
        // One folder for this repair, holding what it set aside (files or directories).
        let folders: Vec<_> = std::fs::read_dir(store.join("damaged"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(folders.len(), 1, "{what}");
        let aside = std::fs::read_dir(folders[0].path()).unwrap().count();
        assert!(aside > 0, "{what}: nothing in damaged/");
        let (rc, out, err) = run_cli(&store, &["check"]);
        assert_eq!(rc, 0, "{what}: check after repair: {out}{err}");
        let s = Store::open(&store).unwrap();
        for n in NAMES {
            let got = s.get("svc", n);
            if case.lost.contains(&n) {
                assert!(
                    matches!(got, Err(Error::NoEntry { .. })),
                    "{what}: {n} was damaged: {got:?}"
                );
            } else {
                assert_eq!(
                    &**got.unwrap_or_else(|e| panic!("{what}: {n}: {e}")),
                    format!("secret-{n}").as_bytes(),
                    "{what}: {n}"
                );
            }
        }
        assert_eq!(
            s.list().unwrap().len(),
            NAMES.len() - case.lost.len(),
            "{what}"
        );
        // Searchable again through the rebuilt index.
        let found = s
            .search(&[("service".to_string(), "svc".to_string())].into())
            .unwrap();
        assert_eq!(found.len(), NAMES.len() - case.lost.len(), "{what}: search");
        let before = files_under(&store.join("damaged"));
        let (rc, out, err) = run_cli(&store, &["repair"]);
        assert_eq!(rc, 0, "{what}: second repair: {out}{err}");
        assert!(out.contains("nothing was damaged"), "{what}: {out}");
        assert_eq!(
            files_under(&store.join("damaged")),
            before,
            "{what}: idempotent"
        );
        // Writes work after the repair.
        s.set("svc", "after", b"ok").unwrap();
        assert_eq!(&**s.get("svc", "after").unwrap(), b"ok");
    }
}

/// A torn last journal record is a crash, not damage: the entry reads as the write before, and
/// check says nothing.
#[test]
fn a_torn_last_journal_record_is_not_damage() {
    let dir = TempDir::new("repair-torn");
    let store = base(&dir);
    flip(&store.join("journal"), record_at(&store, 2) + 50);
    let (rc, out, err) = run_cli(&store, &["check"]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(matches!(
        Store::open(&store).unwrap().get("svc", "f"),
        Err(Error::NoEntry { .. })
    ));
}

/// Locked: check verifies what needs no key and says what it could not; repair refuses (exit 3).
#[test]
fn a_locked_store_is_checked_for_its_structure_and_not_repaired() {
    let dir = TempDir::new("repair-locked");
    let store = base(&dir);
    std::fs::write(store.join("evil"), b"x").unwrap();
    flip(&entry_file(&store, "a"), 60);
    Store::open(&store).unwrap().lock().unwrap();
    let (rc, out, err) = run_cli(&store, &["check"]);
    assert_eq!(rc, 7, "{out}{err}");
    assert!(
        out.contains("evil: is not a file of a keyringrs store"),
        "{out}"
    );
    assert!(
        !out.contains("entries/"),
        "contents are not checked while locked: {out}"
    );
    assert!(err.contains("not checked: the store is locked"), "{err}");
    let (rc, out, err) = run_cli(&store, &["repair"]);
    assert_eq!(rc, 3, "{out}{err}");
    assert!(store.join("evil").exists());
}

/// Repair waits for a writer holding the lock (bounded), then works.
#[test]
fn repair_waits_for_a_writer_and_then_repairs() {
    let dir = TempDir::new("repair-lock");
    let store = base(&dir);
    std::fs::write(store.join("evil"), b"x").unwrap();
    let f = std::fs::File::open(&store).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: flock on a live descriptor.
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&f), libc::LOCK_EX) };
    assert_eq!(rc, 0);
    let started = std::time::Instant::now();
    let child = std::thread::spawn({
        let store = store.clone();
        move || run_cli(&store, &["repair"])
    });
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(
        store.join("evil").exists(),
        "repair must wait for the writer"
    );
    drop(f);
    let (rc, out, err) = child.join().unwrap();
    assert_eq!(rc, 0, "{out}{err}");
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
    assert!(!store.join("evil").exists());
}
