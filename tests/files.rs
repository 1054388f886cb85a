//! Hostile files (THREAT-MODEL.md "A malicious file planted in the user's home"): whatever is put
//! in place of the store directory, the header, the entries directory, an entry or the journal —
//! symlink, hard
//! link, FIFO, device, directory, foreign owner, loose mode, oversize — is refused with a clear
//! error naming it; a link's target is never read or written; nothing blocks.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use keyringrs_tests::fixtures::init_with_cli;
use keyringrs_tests::*;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Place {
    StoreDir,
    Header,
    EntriesDir,
    Entry,
    /// The write journal (docs/FORMAT.md "journal").
    Journal,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Symlink,
    HardLink,
    Fifo,
    Device,
    Directory,
    RegularFile,
    ForeignOwner,
    GroupWritable,
    Oversize,
}

fn mknod(path: &Path, mode: libc::mode_t, dev: libc::dev_t) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    #[allow(unsafe_code)]
    // SAFETY: c is a NUL-terminated path.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    assert_eq!(
        r,
        0,
        "mknod {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// Replace `victim` (a file or directory of the store) by `kind`. Returns the outside files that
/// must stay untouched.
fn plant(victim: &Path, kind: Kind, outside: &Path) {
    let is_dir = victim.is_dir();
    let moved = outside.join("moved-away");
    std::fs::rename(victim, &moved).unwrap();
    match kind {
        Kind::Symlink => std::os::unix::fs::symlink(&moved, victim).unwrap(),
        Kind::HardLink if !is_dir => std::fs::hard_link(&moved, victim).unwrap(),
        Kind::HardLink => unreachable!(),
        Kind::Fifo => mknod(victim, libc::S_IFIFO | 0o600, 0),
        Kind::Device => mknod(victim, libc::S_IFCHR | 0o600, libc::makedev(1, 3)),
        Kind::Directory => std::fs::create_dir(victim).unwrap(),
        Kind::RegularFile => std::fs::write(victim, b"not a directory").unwrap(),
        Kind::ForeignOwner | Kind::GroupWritable | Kind::Oversize => {
            std::fs::rename(&moved, victim).unwrap();
            match kind {
                Kind::ForeignOwner => chown_tree(victim, 65534, 65534),
                Kind::GroupWritable => {
                    let mode = if is_dir { 0o770 } else { 0o660 };
                    std::fs::set_permissions(victim, std::fs::Permissions::from_mode(mode)).unwrap()
                }
                _ => {
                    let mut b = std::fs::read(victim).unwrap();
                    b.resize(60 << 20, 0);
                    std::fs::write(victim, b).unwrap();
                }
            }
        }
    }
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .filter(|f| {
            !std::fs::symlink_metadata(f)
                .unwrap()
                .file_type()
                .is_fifo_or_device()
        })
        .map(|f| {
            let b = std::fs::read(&f).unwrap_or_default();
            (f, b)
        })
        .collect()
}

trait FileTypeExt2 {
    fn is_fifo_or_device(&self) -> bool;
}
impl FileTypeExt2 for std::fs::FileType {
    fn is_fifo_or_device(&self) -> bool {
        use std::os::unix::fs::FileTypeExt;
        self.is_fifo() || self.is_char_device() || self.is_block_device()
    }
}

fn case(place: Place, kind: Kind) {
    let dir = TempDir::new("hostile");
    let outside = dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"must not change").unwrap();
    let store = dir.store();
    fresh_session();
    assert_exit(
        &keyringrs(&store, &["init", "--password-stdin"], b"pw\n"),
        0,
    );
    assert_exit(&keyringrs(&store, &["set", "svc", "u"], b"secret"), 0);
    // Out of the journal into its entry file (docs/FORMAT.md "journal").
    libkeyring::Store::open(&store)
        .unwrap()
        .checkpoint()
        .unwrap();
    let entry = files_under(&store.join("entries")).remove(0);
    let victim = match place {
        Place::StoreDir => store.clone(),
        Place::Header => store.join("header"),
        Place::EntriesDir => store.join("entries"),
        Place::Entry => entry,
        Place::Journal => store.join("journal"),
    };
    plant(&victim, kind, &outside);
    let before = snapshot(&outside);
    let mut commands = vec![&["get", "svc", "u"][..], &["set", "svc", "u"], &["list"]];
    // Unlock reads neither an entry nor the journal: the reads after it say what is wrong.
    if place != Place::Entry && place != Place::Journal {
        commands.push(&["unlock", "--password-stdin"]);
    }
    for args in commands {
        let t = Instant::now();
        let o = keyringrs(&store, args, b"pw\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{place:?}/{kind:?} {args:?} blocked"
        );
        // Wherever the planted file is, the answer is a refusal (Corrupt, naming it), or — for an
        // entry — a refusal of that entry only.
        assert_eq!(code(&o), 7, "{place:?}/{kind:?} {args:?}: {err}");
        assert!(
            err.starts_with("keyringrs: ") && err.contains(&victim.display().to_string()),
            "{place:?}/{kind:?} {args:?}: {err}"
        );
    }
    assert_eq!(
        snapshot(&outside),
        before,
        "{place:?}/{kind:?}: something outside the store changed"
    );
}

fn cases(place: Place, kinds: &[Kind]) {
    for &k in kinds {
        if matches!(k, Kind::Device | Kind::ForeignOwner) && !is_root() {
            eprintln!("SKIPPED (not root): {place:?}/{k:?} needs mknod or chown");
            continue;
        }
        case(place, k);
    }
}

const DIR_KINDS: &[Kind] = &[
    Kind::Symlink,
    Kind::Fifo,
    Kind::Device,
    Kind::RegularFile,
    Kind::ForeignOwner,
    Kind::GroupWritable,
];
const FILE_KINDS: &[Kind] = &[
    Kind::Symlink,
    Kind::HardLink,
    Kind::Fifo,
    Kind::Device,
    Kind::Directory,
    Kind::ForeignOwner,
    Kind::GroupWritable,
    Kind::Oversize,
];

/// One test for each place: every hostile kind of thing in it is refused (`cases`).
macro_rules! hostile_places {
    ($($test:ident: $place:ident, $kinds:ident;)*) => {$(
        #[test]
        fn $test() {
            cases(Place::$place, $kinds);
        }
    )*};
}

hostile_places! {
    hostile_things_in_place_of_the_store_dir_are_refused: StoreDir, DIR_KINDS;
    hostile_things_in_place_of_the_header_are_refused: Header, FILE_KINDS;
    hostile_things_in_place_of_the_entries_dir_are_refused: EntriesDir, DIR_KINDS;
    hostile_things_in_place_of_an_entry_are_refused: Entry, FILE_KINDS;
    hostile_things_in_place_of_the_journal_are_refused: Journal, FILE_KINDS;
}

/// A long-lived handle keeps the journal open and remembers the header between writes (each
/// checked against its path with one statx, docs/PERFORMANCE.md). Whatever is then put in their
/// place — replaced, or changed in place — its next write refuses it (Corrupt, naming it), never
/// follows a link, and nothing outside the store changes.
#[test]
fn hostile_things_in_place_of_what_a_long_lived_handle_kept_are_refused() {
    for place in [Place::Header, Place::Journal] {
        for &kind in FILE_KINDS {
            if matches!(kind, Kind::Device | Kind::ForeignOwner) && !is_root() {
                eprintln!("SKIPPED (not root): {place:?}/{kind:?} needs mknod or chown");
                continue;
            }
            let dir = TempDir::new("hostile-kept");
            let outside = dir.path().join("outside");
            std::fs::create_dir(&outside).unwrap();
            fresh_session();
            let s = libkeyring::Store::init(dir.store(), b"pw", &test_opts()).unwrap();
            // Two writes: the journal is open and the header remembered.
            s.set("svc", "u", b"one").unwrap();
            s.set("svc", "u", b"two").unwrap();
            let victim = match place {
                Place::Header => dir.store().join("header"),
                _ => dir.store().join("journal"),
            };
            plant(&victim, kind, &outside);
            let before = snapshot(&outside);
            let e = s.set("svc", "u", b"three").unwrap_err();
            assert_eq!(
                e.kind(),
                libkeyring::ErrorKind::Corrupt,
                "{place:?}/{kind:?}: {e}"
            );
            assert!(
                e.to_string().contains(&victim.display().to_string()),
                "{place:?}/{kind:?}: {e}"
            );
            assert_eq!(snapshot(&outside), before, "{place:?}/{kind:?}");
        }
    }
}

/// While writers run, a loop keeps swapping the entries directory and the header for symlinks
/// into a victim directory. Nothing is ever written there.
#[test]
fn symlinks_swapped_in_during_writes_never_redirect_a_write() {
    let dir = TempDir::new("swaprace");
    let store = dir.store();
    let victim = dir.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("header"), b"victim header").unwrap();
    fresh_session();
    assert_exit(
        &keyringrs(&store, &["init", "--password-stdin"], b"pw\n"),
        0,
    );
    let done = std::sync::atomic::AtomicBool::new(false);
    let mut refused = 0;
    std::thread::scope(|t| {
        t.spawn(|| {
            let (entries, aside) = (store.join("entries"), store.join("entries.aside"));
            let (header, haside) = (store.join("header"), store.join("header.aside"));
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::fs::rename(&entries, &aside).unwrap();
                std::os::unix::fs::symlink(&victim, &entries).unwrap();
                std::fs::rename(&header, &haside).unwrap();
                std::os::unix::fs::symlink(victim.join("header"), &header).unwrap();
                std::thread::sleep(Duration::from_micros(300));
                std::fs::remove_file(&entries).unwrap();
                std::fs::rename(&aside, &entries).unwrap();
                std::fs::remove_file(&header).unwrap();
                std::fs::rename(&haside, &header).unwrap();
                std::thread::sleep(Duration::from_micros(300));
            }
        });
        for i in 0..300 {
            let o = keyringrs(&store, &["set", "svc", &format!("u{i}")], b"x");
            if code(&o) != 0 {
                refused += 1;
            }
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let names: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("header")],
        "nothing written into the victim"
    );
    assert_eq!(
        std::fs::read(victim.join("header")).unwrap(),
        b"victim header"
    );
    eprintln!(
        "300 sets under symlink swapping: {refused} refused, {} written",
        300 - refused
    );
}

/// A header whose keyslot asks for absurd Argon2 memory (with a valid checksum) is refused at
/// parse time, before anything is allocated: it fails the same under a 256 MiB address space.
#[test]
fn hostile_kdf_parameters_are_refused_before_allocation() {
    let dir = TempDir::new("hostilekdf");
    init_with_cli(&dir);
    let h = dir.store().join("header");
    let mut b = std::fs::read(&h).unwrap();
    // Keyslot 0 memory field at offset 37 + 2; the checksum is the last 32 bytes.
    b[39..43].copy_from_slice(&u32::MAX.to_le_bytes());
    let n = b.len();
    let sum = {
        use std::io::Write;
        let mut c = std::process::Command::new("sha256sum")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&b[..n - 32]).unwrap();
        let out = c.wait_with_output().unwrap().stdout;
        let hex = String::from_utf8(out).unwrap();
        (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<u8>>()
    };
    b[n - 32..].copy_from_slice(&sum);
    std::fs::write(&h, &b).unwrap();
    let mut c = std::process::Command::new("prlimit");
    c.arg("--as=268435456")
        .arg(keyringrs_bin())
        .arg("--store")
        .arg(dir.store())
        .args(["unlock", "--password-stdin"]);
    let t = Instant::now();
    let o = run(c, b"pw\n");
    assert_exit(&o, 7);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("memory 4294967295 KiB outside"),
        "{o:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
}
