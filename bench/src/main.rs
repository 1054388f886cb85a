//! `keyringrs-bench`: libkeyring beside the raw kernel keyring and its peers, in one run.
//!
//! Everything runs in a fresh anonymous session keyring with throwaway stores, a private D-Bus
//! and a private gnome-keyring. See docs/PERFORMANCE.md for what each row measures.
//!
//! Usage: keyringrs-bench [--quick] [--out DIR] [--only secret-service]

mod gnome;
mod harness;
mod pam;
mod report;
mod secret_service;
mod sys;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyring_core::{CredentialStore, Entry};
use libkeyring::crypto::{MasterKey, Purpose};
use libkeyring::format::{self, EntryData, StoreId};
use libkeyring::keyring::Keyring;
use libkeyring::{KdfParams, Store, UnlockOptions};
use zeroize::Zeroizing;

use harness::{compare, Op, Stats};
use report::{Report, Row, Target, Value};

const PASSWORD: &[u8] = b"correct horse battery staple";
const RAW_DESC: &str = "kbench:raw";

#[derive(Debug, Clone)]
struct Config {
    quick: bool,
    counts: Vec<usize>,
    get_samples: usize,
    set_samples: usize,
    dbus_samples: usize,
    cli_samples: usize,
    unlock_samples: usize,
    /// Wall-clock budget for filling gnome-keyring over D-Bus (it rewrites its file per item).
    gnome_fill_budget: Duration,
    out: PathBuf,
    /// `--only secret-service`: that group alone.
    only_secret_service: bool,
}

impl Config {
    fn parse() -> Result<Config, String> {
        let mut quick = false;
        let mut out = None;
        let mut only_secret_service = false;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--loop-get" => {
                    // For profiling (perf record): fill N entries, then loop Store::get.
                    let n = args
                        .next()
                        .and_then(|x| x.parse().ok())
                        .ok_or("--loop-get N SECONDS")?;
                    let secs = args
                        .next()
                        .and_then(|x| x.parse().ok())
                        .ok_or("--loop-get N SECONDS")?;
                    loop_get(n, secs)?;
                    std::process::exit(0);
                }
                "--only" => match args.next().as_deref() {
                    Some("secret-service") => only_secret_service = true,
                    other => return Err(format!("--only {other:?}: only secret-service")),
                },
                "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a directory")?)),
                "-h" | "--help" => {
                    println!("usage: keyringrs-bench [--quick] [--out DIR] [--only secret-service]\n\nWrites DIR/latest.{{json,md}} (quick: DIR/quick.{{json,md}}; --only secret-service: DIR/[quick-]secret-service.{{json,md}}); DIR defaults to bench/results.");
                    std::process::exit(0);
                }
                _ => return Err(format!("unknown argument {a:?} (try --help)")),
            }
        }
        let out = out.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results"));
        Ok(if quick {
            Config {
                quick,
                counts: vec![10, 300],
                get_samples: 400,
                set_samples: 20,
                dbus_samples: 20,
                cli_samples: 8,
                unlock_samples: 2,
                gnome_fill_budget: Duration::from_secs(20),
                out,
                only_secret_service,
            }
        } else {
            Config {
                quick,
                counts: vec![10, 1_000, 10_000, 100_000],
                get_samples: 20_000,
                set_samples: 300,
                dbus_samples: 300,
                cli_samples: 100,
                unlock_samples: 9,
                gnome_fill_budget: Duration::from_secs(60),
                out,
                only_secret_service,
            }
        })
    }
}

fn main() {
    let cfg = match Config::parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyringrs-bench: {e}");
            std::process::exit(2);
        }
    };
    let r = if cfg.only_secret_service {
        secret_service::run_alone(&cfg)
    } else {
        run(&cfg)
    };
    if let Err(e) = r {
        eprintln!("keyringrs-bench: {e}");
        std::process::exit(1);
    }
}

fn loop_get(n: usize, secs: u64) -> Result<(), String> {
    libkeyring::keyring::join_session(None).map_err(e2s)?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("keyringrs-bench-{}", std::process::id())));
    let opts = UnlockOptions {
        kdf: KdfParams::new(KdfParams::MIN_MEMORY_KIB, 1, 1).map_err(e2s)?,
        ..Default::default()
    };
    let store = Store::init(scratch.0.join("store"), PASSWORD, &opts).map_err(e2s)?;
    bulk_fill(&store, 0, n)?;
    let keys: Vec<(String, String)> = picks(n).iter().map(|&i| (service(i), user(i))).collect();
    let t = Instant::now();
    let mut calls = 0u64;
    while t.elapsed().as_secs() < secs {
        for (s, u) in &keys {
            store.get(s, u).map_err(e2s)?;
        }
        calls += keys.len() as u64;
    }
    eprintln!(
        "{calls} gets, {:.2} µs each",
        t.elapsed().as_secs_f64() * 1e6 / calls as f64
    );
    let _ = store.lock();
    Ok(())
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);
impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn service(i: usize) -> String {
    format!("svc{i:06}.example.org")
}
fn user(i: usize) -> String {
    format!("user{i}")
}
fn secret(i: usize) -> Vec<u8> {
    format!("secret-{i:06}-0123456789abcdef").into_bytes()
}
const SECRET_LEN: usize = 30;

/// The entries a measurement cycles through: spread over all `n`, so lookups are not all of
/// one hot file.
fn picks(n: usize) -> Vec<usize> {
    (0..64).map(|k| (k * 7919 + 3) % n).collect()
}

fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Write entries `from..to` straight into the store's directory, sealed exactly as
/// A 1 MiB file of written (allocated) zeros beside the store, for the durable-write floor: what
/// one `pwrite` + `fdatasync` of a 4 KiB block costs on this filesystem, with nothing else.
fn floor_file(work: &Path) -> Result<std::fs::File, String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(work.join("floor"))
        .map_err(e2s)?;
    f.write_all(&vec![0u8; 1 << 20]).map_err(e2s)?;
    f.sync_all().map_err(e2s)?;
    Ok(f)
}

/// `Store::set` does, but without an fsync per file (one syncfs at the end). Only the bench
/// fills this way; the measured `set` rows go through the library with full durability.
fn bulk_fill(store: &Store, from: usize, to: usize) -> Result<(), String> {
    if from >= to {
        return Ok(());
    }
    let payload = Keyring::Session
        .search(store.key_description())
        .and_then(|k| k.read())
        .map_err(e2s)?;
    let master = MasterKey::from_slice(&payload).ok_or("master key is not 32 bytes")?;
    let hex = store.id();
    let mut id = [0u8; format::STORE_ID_LEN];
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(e2s)?;
    }
    let sid = StoreId(id);
    let seal = master.subkey(&sid.0, Purpose::EntrySeal);
    let name = master.subkey(&sid.0, Purpose::EntryName);
    let dir = store.path().join("entries");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for i in from..to {
        let (s, u) = (service(i), user(i));
        let eid = format::entry_id(&name, &s, &u);
        let data = EntryData {
            label: format!("{u}@{s}"),
            content_type: String::new(),
            service: s,
            username: u,
            attributes: BTreeMap::new(),
            created: now,
            modified: now,
            secret: Zeroizing::new(secret(i)),
        };
        let bytes = format::seal_entry(&seal, &sid, &eid, &data).map_err(e2s)?;
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let p = dir.join(format::hex(&eid));
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&p)
            .and_then(|mut f| f.write_all(&bytes))
            .map_err(|e| format!("{}: {e}", p.display()))?;
    }
    let d = std::fs::File::open(&dir).map_err(e2s)?;
    sys::syncfs(&d);
    // The library must read what the bulk path wrote.
    for i in [from, to - 1] {
        let got = store.get(&service(i), &user(i)).map_err(e2s)?;
        if *got != secret(i) {
            return Err(format!("bulk-filled entry {i} reads back wrong"));
        }
    }
    Ok(())
}

/// The on-disk names of the picked entries (through the library's keyed hash).
fn store_file_names(store: &Store, pk: &[usize]) -> Result<Vec<CString>, String> {
    pk.iter()
        .map(|&i| {
            let payload = Keyring::Session
                .search(store.key_description())
                .and_then(|k| k.read())
                .map_err(e2s)?;
            let master = MasterKey::from_slice(&payload).ok_or("master key is not 32 bytes")?;
            let hex = store.id();
            let mut id = [0u8; format::STORE_ID_LEN];
            for (j, b) in id.iter_mut().enumerate() {
                *b = u8::from_str_radix(&hex[2 * j..2 * j + 2], 16).map_err(e2s)?;
            }
            let name = master.subkey(&id, Purpose::EntryName);
            CString::new(format::hex(&format::entry_id(&name, &service(i), &user(i)))).map_err(e2s)
        })
        .collect()
}

/// The path of a binary built next to this one (`make bench` builds the CLI too), else PATH.
fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn time_row(group: &str, name: &str, n: Option<usize>, r: Result<Stats, String>) -> Row {
    Row::new(
        group,
        name,
        n,
        match r {
            Ok(s) => Value::Time(s),
            Err(e) => Value::NotAvailable(e),
        },
    )
}

fn na(group: &str, name: &str, n: Option<usize>, why: impl Into<String>) -> Row {
    Row::new(group, name, n, Value::NotAvailable(why.into()))
}

/// Spawn-per-call measurement of a whole command.
fn spawn_op<'a>(mut make: impl FnMut() -> Command + 'a) -> Op<'a> {
    Box::new(move || {
        let st = make()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(e2s)?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("exited with {st}"))
        }
    })
}

const ROW_RAW_GET: &str = "raw kernel: keyctl_search + keyctl_read of one user key";
const ROW_OURS_GET: &str = "libkeyring Store::get";
const ROW_FILE_GET: &str = "raw file: openat + fstat + read + close of one entry file";
const ROW_KU_GET: &str = "keyring-core linux-keyutils store: Entry::get_secret";
const ROW_GK_GET: &str = "gnome-keyring over D-Bus: keyring-core Secret Service Entry::get_secret";
const ROW_RAW_SET: &str = "raw kernel: add_key (update one user key)";
const ROW_OURS_SET: &str = "libkeyring Store::set (durable: one journal record + fdatasync)";
const ROW_FLOOR_SET: &str =
    "floor: pwrite + fdatasync of one 4 KiB block of a preallocated file (same filesystem)";
const ROW_KU_SET: &str = "keyring-core linux-keyutils store: Entry::set_secret";
const ROW_GK_SET: &str = "gnome-keyring over D-Bus: keyring-core Secret Service Entry::set_secret";
const KU: &str = "keyutils store";

fn run(cfg: &Config) -> Result<(), String> {
    let t0 = Instant::now();
    libkeyring::keyring::join_session(None).map_err(|e| format!("join a session keyring: {e}"))?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("keyringrs-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).map_err(e2s)?;
    let work = scratch.0.clone();
    let mut rows: Vec<Row> = Vec::new();

    // Our store: minimal KDF parameters (unlock is measured separately with the defaults), so
    // Argon2id does not hide the rest of unlock.
    let small_kdf = UnlockOptions {
        kdf: KdfParams::new(KdfParams::MIN_MEMORY_KIB, 1, 1).map_err(e2s)?,
        ..Default::default()
    };
    let store_path = work.join("store");
    let store = Store::init(&store_path, PASSWORD, &small_kdf).map_err(e2s)?;
    let on_tmpfs = sys::is_tmpfs(&work);

    let raw_desc = CString::new(RAW_DESC).map_err(e2s)?;
    if sys::add_key(&raw_desc, &[0x42; 32]) < 0 {
        return Err("add_key of the raw key failed".into());
    }

    // keyring-core's keyutils store, with a prefix private to this run.
    let prefix = format!("kbench-{}:", std::process::id());
    let ku: Arc<CredentialStore> = linux_keyutils_keyring_store::Store::new_with_configuration(
        &std::collections::HashMap::from([("prefix", prefix.as_str())]),
    )
    .map_err(e2s)?;
    let mut ku_entries: Vec<Entry> = Vec::new();

    // gnome-keyring.
    let gk_daemons = gnome::start(&work.join("gnome"));
    let gk: Result<Arc<CredentialStore>, String> = match &gk_daemons {
        Ok(d) => gnome::peer_store(d),
        Err(e) => Err(e.clone()),
    };
    let mut gk_entries: Vec<Entry> = Vec::new();
    let mut gk_note: Option<String> = None;
    let gk_fill_start = Instant::now();

    let mut filled = 0usize;
    for &n in &cfg.counts {
        eprintln!(
            "[{:>5.1}s] filling to {n} entries",
            t0.elapsed().as_secs_f64()
        );
        bulk_fill(&store, filled, n)?;
        filled = n;
        for i in ku_entries.len()..n {
            let e = Entry::new_in_store(&ku, &service(i), &user(i)).map_err(e2s)?;
            e.set_secret(&secret(i)).map_err(e2s)?;
            ku_entries.push(e);
        }
        if let Ok(g) = &gk {
            if gk_note.is_none() {
                while gk_entries.len() < n {
                    if gk_fill_start.elapsed() > cfg.gnome_fill_budget {
                        gk_note = Some(format!(
                            "filling over D-Bus reached only {} items in the {} s budget",
                            gk_entries.len(),
                            cfg.gnome_fill_budget.as_secs()
                        ));
                        break;
                    }
                    let i = gk_entries.len();
                    let e = Entry::new_in_store(g, &service(i), &user(i)).map_err(e2s)?;
                    e.set_secret(&secret(i)).map_err(e2s)?;
                    gk_entries.push(e);
                }
            }
        }
        let gk_ready = gk.is_ok() && gk_entries.len() >= n;
        let pk = picks(n);
        eprintln!("[{:>5.1}s] get at {n}", t0.elapsed().as_secs_f64());

        // get
        {
            let mut buf = [0u8; 64];
            let mut k = 0usize;
            let mut ku_k = 0usize;
            let mut gk_k = 0usize;
            let keys: Vec<(String, String)> = pk.iter().map(|&i| (service(i), user(i))).collect();
            let ku_sel: Vec<&Entry> = pk.iter().map(|&i| &ku_entries[i]).collect();
            let gk_sel: Vec<&Entry> = if gk_ready {
                pk.iter().map(|&i| &gk_entries[i]).collect()
            } else {
                vec![]
            };
            let store = &store;
            let raw_desc = &raw_desc;
            let entries_dir = std::fs::File::open(store_path.join("entries")).map_err(e2s)?;
            let entries_dir = &entries_dir;
            let mut fk = 0usize;
            let mut fbuf = vec![0u8; 4096];
            let file_names: Vec<CString> = store_file_names(store, &pk)?;
            let mut ops: Vec<(String, Op)> = vec![
                (
                    ROW_FILE_GET.into(),
                    Box::new(move || {
                        let name = &file_names[fk % file_names.len()];
                        fk += 1;
                        if sys::read_file_at(entries_dir, name, &mut fbuf) > 0 {
                            Ok(())
                        } else {
                            Err("entry file read failed".into())
                        }
                    }),
                ),
                (
                    ROW_RAW_GET.into(),
                    Box::new(move || {
                        if sys::search_read(raw_desc, &mut buf) == 32 {
                            Ok(())
                        } else {
                            Err("raw read failed".into())
                        }
                    }),
                ),
                (
                    ROW_OURS_GET.into(),
                    Box::new(move || {
                        let (s, u) = &keys[k % keys.len()];
                        k += 1;
                        let v = store.get(s, u).map_err(e2s)?;
                        if v.len() == SECRET_LEN {
                            Ok(())
                        } else {
                            Err("wrong secret".into())
                        }
                    }),
                ),
                (
                    ROW_KU_GET.into(),
                    Box::new(move || {
                        let e = ku_sel[ku_k % ku_sel.len()];
                        ku_k += 1;
                        let v = e.get_secret().map_err(e2s)?;
                        if v.len() == SECRET_LEN {
                            Ok(())
                        } else {
                            Err("wrong secret".into())
                        }
                    }),
                ),
            ];
            if gk_ready {
                ops.push((
                    ROW_GK_GET.into(),
                    Box::new(move || {
                        let e = gk_sel[gk_k % gk_sel.len()];
                        gk_k += 1;
                        e.get_secret().map(drop).map_err(e2s)
                    }),
                ));
            }
            let (fast, slow): (Vec<_>, Vec<_>) =
                ops.into_iter().partition(|(n, _)| n != ROW_GK_GET);
            let mut fast = fast;
            let res = compare(&mut fast, cfg.get_samples / 20, cfg.get_samples, 10);
            for ((name, _), r) in fast.iter().zip(res) {
                rows.push(time_row("get", name, Some(n), r));
            }
            let mut slow = slow;
            if !slow.is_empty() {
                let res = compare(&mut slow, 5, cfg.dbus_samples, 1);
                for ((name, _), r) in slow.iter().zip(res) {
                    rows.push(time_row("get", name, Some(n), r));
                }
            } else {
                rows.push(na(
                    "get",
                    ROW_GK_GET,
                    Some(n),
                    gk.as_ref()
                        .err()
                        .cloned()
                        .or(gk_note.clone())
                        .unwrap_or_default(),
                ));
            }
        }

        eprintln!("[{:>5.1}s] set at {n}", t0.elapsed().as_secs_f64());
        // set
        {
            let mut k = 0usize;
            let mut ku_k = 0usize;
            let mut gk_k = 0usize;
            let keys: Vec<(String, String, Vec<u8>)> = pk
                .iter()
                .map(|&i| (service(i), user(i), secret(i)))
                .collect();
            let ku_sel: Vec<(&Entry, Vec<u8>)> =
                pk.iter().map(|&i| (&ku_entries[i], secret(i))).collect();
            let gk_sel: Vec<(&Entry, Vec<u8>)> = if gk_ready {
                pk.iter().map(|&i| (&gk_entries[i], secret(i))).collect()
            } else {
                vec![]
            };
            let store = &store;
            let raw_desc = &raw_desc;
            let floor = floor_file(&work)?;
            let mut floor_k = 0u64;
            let mut fast: Vec<(String, Op)> = vec![
                (
                    ROW_FLOOR_SET.into(),
                    Box::new(move || {
                        use std::os::unix::fs::FileExt;
                        let at = (floor_k % 256) * 4096;
                        floor_k += 1;
                        floor
                            .write_all_at(&[0x5a; 4096], at)
                            .and_then(|()| floor.sync_data())
                            .map_err(e2s)
                    }),
                ),
                (
                    ROW_RAW_SET.into(),
                    Box::new(move || {
                        if sys::add_key(raw_desc, &[0x42; 32]) > 0 {
                            Ok(())
                        } else {
                            Err("add_key failed".into())
                        }
                    }),
                ),
                (
                    ROW_OURS_SET.into(),
                    Box::new(move || {
                        let (s, u, v) = &keys[k % keys.len()];
                        k += 1;
                        store.set(s, u, v).map_err(e2s)
                    }),
                ),
                (
                    ROW_KU_SET.into(),
                    Box::new(move || {
                        let (e, v) = &ku_sel[ku_k % ku_sel.len()];
                        ku_k += 1;
                        e.set_secret(v).map_err(e2s)
                    }),
                ),
            ];
            let res = compare(&mut fast, 5, cfg.set_samples, 5);
            for ((name, _), r) in fast.iter().zip(res) {
                let mut row = time_row("set", name, Some(n), r);
                if name == ROW_OURS_SET && on_tmpfs {
                    row.note = "store is on tmpfs here: fsync costs nothing".into();
                }
                rows.push(row);
            }
            if gk_ready {
                let mut slow: Vec<(String, Op)> = vec![(
                    ROW_GK_SET.into(),
                    Box::new(move || {
                        let (e, v) = &gk_sel[gk_k % gk_sel.len()];
                        gk_k += 1;
                        e.set_secret(v).map_err(e2s)
                    }),
                )];
                let res = compare(&mut slow, 2, (cfg.dbus_samples / 5).max(5), 1);
                for ((name, _), r) in slow.iter().zip(res) {
                    rows.push(time_row("set", name, Some(n), r));
                }
            } else {
                rows.push(na(
                    "set",
                    ROW_GK_SET,
                    Some(n),
                    gk.as_ref()
                        .err()
                        .cloned()
                        .or(gk_note.clone())
                        .unwrap_or_default(),
                ));
            }
        }

        eprintln!("[{:>5.1}s] unlock at {n}", t0.elapsed().as_secs_f64());
        // unlock without Argon2id cost: the store's own (minimal) parameters.
        {
            let mut salt = [7u8; 16];
            let kdf = small_kdf.kdf;
            let store = &store;
            let mut ops: Vec<(String, Op)> = vec![
                (
                    "Argon2id alone, minimal parameters (64 KiB, t=1)".into(),
                    Box::new(move || {
                        salt[0] = salt[0].wrapping_add(1);
                        kdf.derive(PASSWORD, &salt).map(drop).map_err(e2s)
                    }),
                ),
                (
                    "Store::lock + Store::unlock, minimal parameters".into(),
                    Box::new(move || {
                        store.lock().map_err(e2s)?;
                        store.unlock(PASSWORD, &small_kdf).map(drop).map_err(e2s)
                    }),
                ),
            ];
            let res = compare(&mut ops, 3, (cfg.set_samples / 3).max(10), 3);
            for ((name, _), r) in ops.iter().zip(res) {
                rows.push(time_row("unlock", name, Some(n), r));
            }
        }
    }
    let max_n = filled;

    // set on tmpfs: the same code with fsync costing ~nothing, to separate durability from CPU.
    eprintln!("[{:>5.1}s] tmpfs set", t0.elapsed().as_secs_f64());
    {
        let shm = Path::new("/dev/shm");
        if shm.is_dir() && sys::is_tmpfs(shm) {
            let dir = Scratch(shm.join(format!("keyringrs-bench-{}", std::process::id())));
            let s2 = Store::init(&dir.0, PASSWORD, &small_kdf).map_err(e2s)?;
            for i in 0..10 {
                s2.set(&service(i), &user(i), &secret(i)).map_err(e2s)?;
            }
            let mut k = 0usize;
            let mut buf = [0u8; 64];
            let raw_desc = &raw_desc;
            let s2r = &s2;
            let mut ops: Vec<(String, Op)> = vec![
                (
                    ROW_RAW_SET.into(),
                    Box::new(move || {
                        let _ = sys::search_read(raw_desc, &mut buf);
                        if sys::add_key(raw_desc, &[0x42; 32]) > 0 {
                            Ok(())
                        } else {
                            Err("add_key failed".into())
                        }
                    }),
                ),
                (
                    "libkeyring Store::set, store on tmpfs (fsync ~free)".into(),
                    Box::new(move || {
                        k += 1;
                        s2r.set(&service(k % 10), &user(k % 10), &secret(k % 10))
                            .map_err(e2s)
                    }),
                ),
            ];
            let res = compare(&mut ops, 20, cfg.get_samples / 4, 5);
            let mut it = ops.iter().zip(res);
            if let Some((_, r)) = it.next() {
                rows.push(
                    time_row(
                        "set-tmpfs",
                        "raw kernel: keyctl_search + keyctl_read + add_key",
                        Some(10),
                        r,
                    )
                    .note("the kernel floor of a read-modify-write of one key"),
                );
            }
            for ((name, _), r) in it {
                rows.push(time_row("set-tmpfs", name, Some(10), r));
            }
        } else {
            rows.push(na(
                "set-tmpfs",
                "libkeyring Store::set, store on tmpfs",
                Some(10),
                "/dev/shm is not a tmpfs",
            ));
        }
    }

    // unlock with the default parameters: Argon2id alone, and the whole unlock.
    eprintln!(
        "[{:>5.1}s] unlock (default KDF)",
        t0.elapsed().as_secs_f64()
    );
    let default_opts = UnlockOptions::default();
    let ustore_path = work.join("store-default-kdf");
    let ustore = Store::init(&ustore_path, PASSWORD, &default_opts).map_err(e2s)?;
    ustore
        .set("example.org", "alice", b"hunter2")
        .map_err(e2s)?;
    {
        let mut salt = [9u8; 16];
        let u = &ustore;
        let mut ops: Vec<(String, Op)> = vec![
            (
                "Argon2id alone, default parameters (64 MiB, t=3, p=1)".into(),
                Box::new(move || {
                    salt[0] = salt[0].wrapping_add(1);
                    KdfParams::DEFAULT
                        .derive(PASSWORD, &salt)
                        .map(drop)
                        .map_err(e2s)
                }),
            ),
            (
                "Store::unlock, default parameters (after lock)".into(),
                Box::new(move || {
                    u.lock().map_err(e2s)?;
                    u.unlock(PASSWORD, &default_opts).map(drop).map_err(e2s)
                }),
            ),
        ];
        let res = compare(&mut ops, 1, cfg.unlock_samples, cfg.unlock_samples);
        for ((name, _), r) in ops.iter().zip(res) {
            rows.push(time_row("unlock", name, Some(1), r));
        }
    }

    // CLI per call, and process start-up for scale.
    eprintln!("[{:>5.1}s] CLI", t0.elapsed().as_secs_f64());
    let cli = sibling("keyringrs");
    {
        let raw_serial = Keyring::Session
            .search(RAW_DESC)
            .map(|k| k.0.to_string())
            .map_err(e2s)?;
        let (s0, u0) = (service(1), user(1));
        let sp = store_path.clone();
        let mut ops: Vec<(String, Op)> = vec![
            (
                "process start: /bin/true".into(),
                spawn_op(|| Command::new("/bin/true")),
            ),
            (
                "keyctl print <serial> (keyutils)".into(),
                spawn_op(move || {
                    let mut c = Command::new("keyctl");
                    c.args(["print", &raw_serial]);
                    c
                }),
            ),
            (
                format!("keyringrs get ({})", cli.display()),
                spawn_op(move || {
                    let mut c = Command::new(&cli);
                    c.args(["get", &s0, &u0]).env("KEYRINGRS_STORE", &sp);
                    c
                }),
            ),
        ];
        if let Ok(d) = &gk_daemons {
            if gk_entries.len() < 2 {
                let _ = gnome::secret_tool_store(d, &service(1), &user(1), &secret(1));
            }
            let (s1, u1) = (service(1), user(1));
            ops.push((
                "secret-tool lookup (gnome-keyring over D-Bus)".into(),
                spawn_op(move || {
                    let mut c = d.secret_tool();
                    c.args(["lookup", "service", &s1, "username", &u1]);
                    c
                }),
            ));
        }
        let res = compare(&mut ops, 2, cfg.cli_samples, 5);
        for ((name, _), r) in ops.iter().zip(res) {
            rows.push(time_row("cli", name, Some(max_n), r));
        }
        if let Err(e) = &gk_daemons {
            rows.push(na(
                "cli",
                "secret-tool lookup (gnome-keyring over D-Bus)",
                None,
                e.clone(),
            ));
        }
    }

    // Python.
    eprintln!("[{:>5.1}s] Python", t0.elapsed().as_secs_f64());
    rows.extend(python_rows(cfg, &store_path, max_n));

    // PAM.
    eprintln!("[{:>5.1}s] PAM", t0.elapsed().as_secs_f64());
    rows.extend(pam::rows(cfg));

    // Memory: peak RSS of `keyringrs unlock` with the default parameters, as a child process.
    eprintln!("[{:>5.1}s] memory", t0.elapsed().as_secs_f64());
    {
        let cli = sibling("keyringrs");
        ustore.lock().map_err(e2s)?;
        // Through /usr/bin/time (GNU time, a small process), because a child spawned straight
        // from this process inherits this process's own high-water mark into ru_maxrss.
        let measure = |args: &[&str], stdin: &[u8]| -> Result<u64, String> {
            let out = work.join("rss.txt");
            let mut child = Command::new("/usr/bin/time")
                .arg("-f")
                .arg("%M")
                .arg("-o")
                .arg(&out)
                .arg(&cli)
                .args(args)
                .env("KEYRINGRS_STORE", &ustore_path)
                .env_remove("KEYRINGRS_KDF_MEMORY")
                .env_remove("KEYRINGRS_KDF_TIME")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("/usr/bin/time (GNU time): {e}"))?;
            if let Some(mut i) = child.stdin.take() {
                use std::io::Write;
                i.write_all(stdin).map_err(e2s)?;
            }
            let st = child.wait().map_err(e2s)?;
            if !st.success() {
                return Err(format!("keyringrs {} exited with {st}", args.join(" ")));
            }
            std::fs::read_to_string(&out)
                .map_err(e2s)?
                .trim()
                .parse()
                .map_err(|e| format!("GNU time output: {e}"))
        };
        let mut pw = PASSWORD.to_vec();
        pw.push(b'\n');
        for (name, args, input) in [
            (
                "peak RSS: keyringrs unlock --password-stdin (default KDF: 64 MiB)",
                &["unlock", "--password-stdin"][..],
                &pw[..],
            ),
            (
                "peak RSS: keyringrs get (no KDF)",
                &["get", "example.org", "alice"][..],
                &b""[..],
            ),
        ] {
            rows.push(match measure(args, input) {
                Ok(k) => Row::new("memory", name, None, Value::Kib(k)),
                Err(e) => na("memory", name, None, e),
            });
        }
    }

    // Clean up the keyutils peer's keys (they are also linked into the persistent keyring).
    for e in &ku_entries {
        let _ = e.delete_credential();
    }
    // (gnome-keyring's items go with its throwaway HOME: deleting them one by one over D-Bus
    // would rewrite its keyring file once per item.)
    let _ = store.lock();
    let _ = ustore.lock();
    drop(gk_daemons);

    let mut targets = ratios_and_targets(&mut rows, cfg, max_n);
    // Our Secret Service daemon beside gnome-keyring-daemon (bench/src/secret_service.rs).
    eprintln!("[{:>5.1}s] Secret Service", t0.elapsed().as_secs_f64());
    secret_service::add(cfg, &mut rows, &mut targets);
    let report = Report {
        mode: if cfg.quick {
            "quick".into()
        } else {
            "full".into()
        },
        machine: machine(on_tmpfs),
        rows,
        targets,
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    print!("{}", report.text());
    std::fs::create_dir_all(&cfg.out).map_err(e2s)?;
    let stem = if cfg.quick { "quick" } else { "latest" };
    for (ext, body) in [("json", report.json()), ("md", report.markdown())] {
        let p = cfg.out.join(format!("{stem}.{ext}"));
        std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

fn machine(on_tmpfs: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, store on {}",
        if on_tmpfs {
            "tmpfs"
        } else {
            "disk (ext4 or similar; fsync is real)"
        }
    )
}

fn find<'a>(rows: &'a [Row], group: &str, name: &str, n: Option<usize>) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.group == group && r.name.starts_with(name) && (n.is_none() || r.entries == n))
}

fn med(rows: &[Row], group: &str, name: &str, n: Option<usize>) -> Option<f64> {
    find(rows, group, name, n).and_then(Row::median)
}

fn ratios_and_targets(rows: &mut [Row], cfg: &Config, max_n: usize) -> Vec<Target> {
    // Ratios per (group, entries).
    let snapshot: Vec<Row> = rows.to_vec();
    for r in rows.iter_mut() {
        let Some(m) = r.median() else { continue };
        let raw = match r.group.as_str() {
            "get" => med(&snapshot, "get", ROW_RAW_GET, r.entries),
            "set" => med(&snapshot, "set", ROW_RAW_SET, r.entries),
            "set-tmpfs" => med(&snapshot, "set-tmpfs", "raw kernel", r.entries),
            "cli" => med(&snapshot, "cli", "keyctl print", r.entries),
            "python" => med(&snapshot, "python", "ctypes raw", r.entries),
            _ => None,
        };
        if !r.name.starts_with("raw kernel")
            && !r.name.starts_with("keyctl print")
            && !r.name.starts_with("ctypes raw")
        {
            r.vs_raw = raw.map(|x| m / x);
        }
        let peer = match (r.group.as_str(), r.name.as_str()) {
            ("get", ROW_OURS_GET) => med(&snapshot, "get", ROW_KU_GET, r.entries).map(|p| (KU, p)),
            ("set", ROW_OURS_SET) => med(&snapshot, "set", ROW_KU_SET, r.entries).map(|p| (KU, p)),
            ("get", ROW_GK_GET) => {
                med(&snapshot, "get", ROW_OURS_GET, r.entries).map(|p| ("libkeyring", p))
            }
            ("set", ROW_GK_SET) => {
                med(&snapshot, "set", ROW_OURS_SET, r.entries).map(|p| ("libkeyring", p))
            }
            ("cli", n) if n.starts_with("keyringrs get") => {
                med(&snapshot, "cli", "secret-tool", None).map(|p| ("secret-tool", p))
            }
            _ => None,
        };
        r.vs_peer = peer.map(|(p, x)| (p.to_string(), m / x));
    }

    let rows = &snapshot;
    let ref_n = if cfg.counts.contains(&10_000) {
        10_000
    } else {
        max_n
    };
    let min_n = cfg.counts[0];
    let mut t = Vec::new();
    let ours = med(rows, "get", ROW_OURS_GET, Some(ref_n));
    let raw = med(rows, "get", ROW_RAW_GET, Some(ref_n));
    let ku = med(rows, "get", ROW_KU_GET, Some(ref_n));
    let fmt = harness::fmt_ns;
    match (ours, raw) {
        (Some(o), Some(r)) => t.push(Target {
            name: format!(
                "get at {ref_n} entries ≤ 2.5× raw keyctl_search+keyctl_read (fast-path target; DESIGN: ≤ 4×)"
            ),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(r), o / r),
            met: Some(o / r <= 2.5),
        }),
        _ => t.push(Target {
            name: "get ≤ 2.5× raw".into(),
            measured: "not measured".into(),
            met: None,
        }),
    }
    if let (Some(o), Some(k)) = (ours, ku) {
        t.push(Target {
            name: format!("get at {ref_n} entries no slower than keyring-core's keyutils store"),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(k), o / k),
            met: Some(o <= k),
        });
    }
    if let (Some(a), Some(b)) = (
        med(rows, "get", ROW_OURS_GET, Some(min_n)),
        med(rows, "get", ROW_OURS_GET, Some(max_n)),
    ) {
        t.push(Target {
            name: format!("get flat from {min_n} to {max_n} entries (median within 1.5×)"),
            measured: format!("{} → {} = {:.2}×", fmt(a), fmt(b), b / a),
            met: Some(b / a <= 1.5),
        });
    }
    let gk_n = cfg
        .counts
        .iter()
        .rev()
        .copied()
        .find(|&n| med(rows, "get", ROW_GK_GET, Some(n)).is_some());
    match gk_n {
        Some(n) => {
            let g = med(rows, "get", ROW_GK_GET, Some(n)).unwrap_or(f64::NAN);
            let o = med(rows, "get", ROW_OURS_GET, Some(n)).unwrap_or(f64::NAN);
            t.push(Target {
                name: format!("get ≥ 100× faster than gnome-keyring over D-Bus (at {n} entries)"),
                measured: format!("{} vs {} = {:.0}× faster", fmt(o), fmt(g), g / o),
                met: Some(g / o >= 100.0),
            });
        }
        None => t.push(Target {
            name: "get ≥ 100× faster than gnome-keyring over D-Bus".into(),
            measured: find(rows, "get", ROW_GK_GET, None)
                .map(|r| match &r.value {
                    Value::NotAvailable(w) => format!("not measured: {w}"),
                    _ => String::new(),
                })
                .unwrap_or_default(),
            met: None,
        }),
    }
    if let (Some(o), Some(r)) = (
        med(rows, "set", ROW_OURS_SET, Some(ref_n)),
        med(rows, "set", ROW_RAW_SET, Some(ref_n)),
    ) {
        // A kernel key is not durable: the set's own work is compared on tmpfs (where fsync
        // costs nothing); the durable set has its own target against the fdatasync floor.
        let tmpfs = match (
            med(rows, "set-tmpfs", "libkeyring", Some(10)),
            med(rows, "set-tmpfs", "raw kernel", Some(10)),
        ) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        t.push(Target {
            name: "set ≤ 10× raw: the set's work on tmpfs vs a kernel read + add_key (durability: next target)"
                .into(),
            measured: match tmpfs {
                Some((a, b)) => format!(
                    "{} vs {} = {:.1}×; durable at {ref_n} entries {} vs add_key {} = {:.0}× (one fdatasync)",
                    fmt(a),
                    fmt(b),
                    a / b,
                    fmt(o),
                    fmt(r),
                    o / r
                ),
                None => "not measured (no tmpfs)".into(),
            },
            met: tmpfs.map(|(a, b)| a / b <= 10.0),
        });
    }
    if let (Some(o), Some(f)) = (
        med(rows, "set", ROW_OURS_SET, Some(ref_n)),
        med(rows, "set", ROW_FLOOR_SET, Some(ref_n)),
    ) {
        t.push(Target {
            name: format!(
                "durable set at {ref_n} entries ≤ 1.5× the floor (one pwrite + fdatasync of 4 KiB)"
            ),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(f), o / f),
            met: Some(o / f <= 1.5),
        });
    }
    if let (Some(o), Some(r)) = (
        med(rows, "python", "keyringrs.Store.get", None),
        med(rows, "python", "ctypes raw", None),
    ) {
        t.push(Target {
            name: "Python keyringrs.Store.get ≤ 1.5× a ctypes raw keyctl search + read".into(),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(r), o / r),
            met: Some(o / r <= 1.5),
        });
    }
    if let (Some(u), Some(a)) = (
        med(rows, "unlock", "Store::lock + Store::unlock", Some(max_n)),
        med(rows, "unlock", "Argon2id alone, minimal", Some(max_n)),
    ) {
        let dflt = match (
            med(rows, "unlock", "Store::unlock, default", None),
            med(rows, "unlock", "Argon2id alone, default", None),
        ) {
            (Some(u), Some(a)) => format!(
                "; default parameters: unlock {} vs Argon2id {}",
                fmt(u),
                fmt(a)
            ),
            _ => String::new(),
        };
        t.push(Target {
            name: format!("unlock = Argon2id + ≤ 5 ms (at {max_n} entries)"),
            measured: format!(
                "lock+unlock {} − Argon2id {} = {}{dflt}",
                fmt(u),
                fmt(a),
                fmt(u - a)
            ),
            met: Some(u - a <= 5e6),
        });
    }
    match (
        med(rows, "pam", "session open with pam_keyringrs", None),
        med(rows, "pam", "session open without pam_keyringrs", None),
        med(rows, "unlock", "Argon2id alone, default", None),
    ) {
        (Some(w), Some(wo), Some(a)) => t.push(Target {
            name: "PAM session open adds Argon2id + ≤ 5 ms".into(),
            measured: format!(
                "{} − {} − Argon2id {} = {}",
                fmt(w),
                fmt(wo),
                fmt(a),
                fmt(w - wo - a)
            ),
            met: Some(w - wo - a <= 5e6),
        }),
        _ => t.push(Target {
            name: "PAM session open adds Argon2id + ≤ 5 ms".into(),
            measured: find(rows, "pam", "", None)
                .map(|r| match &r.value {
                    Value::NotAvailable(w) => format!("not measured: {w}"),
                    _ => "incomplete".into(),
                })
                .unwrap_or_default(),
            met: None,
        }),
    }
    t
}

const PY_BENCH: &str = include_str!("../python_bench.py");

/// Python: `keyringrs.Store.get`, `keyring.get_password` through our backend, and a ctypes raw
/// keyctl read, each timed inside one interpreter (issue 5's package, when installed).
fn python_rows(cfg: &Config, store_path: &Path, n: usize) -> Vec<Row> {
    let names = [
        "ctypes raw keyctl search + read",
        "keyringrs.Store.get",
        "keyring.get_password (keyringrs backend)",
    ];
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(["-c", PY_BENCH])
        .arg(cfg.cli_samples.max(10).saturating_mul(20).to_string())
        .arg(RAW_DESC)
        .arg(service(1))
        .arg(user(1))
        .env("KEYRINGRS_STORE", store_path)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return names
                .iter()
                .map(|m| na("python", m, Some(n), format!("{python}: {e}")))
                .collect()
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut results: BTreeMap<String, Result<Vec<f64>, String>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(kind), Some(name), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match kind {
            "ok" => {
                let v: Vec<f64> = rest.split(',').filter_map(|x| x.parse().ok()).collect();
                results.insert(name.into(), Ok(v));
            }
            "na" => {
                results.insert(name.into(), Err(rest.to_string()));
            }
            _ => {}
        }
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.lines().last().unwrap_or("no output").to_string();
    names
        .iter()
        .map(|name| match results.remove(*name) {
            Some(Ok(v)) => match Stats::from_samples(v) {
                Some(s) => Row::new("python", name, Some(n), Value::Time(s)),
                None => na("python", name, Some(n), "no samples"),
            },
            Some(Err(why)) => na("python", name, Some(n), why),
            None => na(
                "python",
                name,
                Some(n),
                format!("python bench failed: {err}"),
            ),
        })
        .collect()
}
