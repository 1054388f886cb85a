//! The "set" group (a durable set beside add_key, the fdatasync floor, keyring-core's keyutils
//! store and gnome-keyring, at each store size) and "set-tmpfs" (the same code where fsync costs
//! nothing, to separate durability from CPU).

use std::path::Path;

use keyring_core::Entry;
use libkeyring::Store;

use crate::fixture::{picks, secret, service, user, Fixture};
use crate::harness::{compare, e2s, Op, Scratch};
use crate::report::{na, time_row, Row};
use crate::{sys, Config, PASSWORD};

pub const ROW_RAW_SET: &str = "raw kernel: add_key (update one user key)";
pub const ROW_OURS_SET: &str = "libkeyring Store::set (durable: one journal record + fdatasync)";
pub const ROW_FLOOR_SET: &str =
    "floor: pwrite + fdatasync of one 4 KiB block of a preallocated file (same filesystem)";
pub const ROW_KU_SET: &str = "keyring-core linux-keyutils store: Entry::set_secret";
pub const ROW_GK_SET: &str =
    "gnome-keyring over D-Bus: keyring-core Secret Service Entry::set_secret";

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

/// add_key of the raw key, as an op's result.
fn raw_add_key(raw_desc: &std::ffi::CStr) -> Result<(), String> {
    if sys::add_key(raw_desc, &[0x42; 32]) > 0 {
        Ok(())
    } else {
        Err("add_key failed".into())
    }
}

/// The rows at `n` entries (the fixture filled to `n`).
pub fn rows(cfg: &Config, fx: &Fixture, n: usize) -> Result<Vec<Row>, String> {
    let pk = picks(n);
    let mut rows = Vec::new();
    let mut k = 0usize;
    let mut ku_k = 0usize;
    let mut gk_k = 0usize;
    let keys: Vec<(String, String, Vec<u8>)> = pk
        .iter()
        .map(|&i| (service(i), user(i), secret(i)))
        .collect();
    let ku_sel: Vec<(&Entry, Vec<u8>)> =
        pk.iter().map(|&i| (&fx.ku_entries[i], secret(i))).collect();
    let store = &fx.store;
    let raw_desc = &fx.raw_desc;
    let floor = floor_file(&fx.work)?;
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
        (ROW_RAW_SET.into(), Box::new(move || raw_add_key(raw_desc))),
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
        if name == ROW_OURS_SET && fx.on_tmpfs {
            row.note = "store is on tmpfs here: fsync costs nothing".into();
        }
        rows.push(row);
    }
    let gk_sel: Vec<(&Entry, Vec<u8>)> = if fx.gk_ready(n) {
        pk.iter().map(|&i| (&fx.gk_entries[i], secret(i))).collect()
    } else {
        vec![]
    };
    rows.push(fx.gk_row(
        "set",
        ROW_GK_SET,
        n,
        Box::new(move || {
            let (e, v) = &gk_sel[gk_k % gk_sel.len()];
            gk_k += 1;
            e.set_secret(v).map_err(e2s)
        }),
        2,
        (cfg.dbus_samples / 5).max(5),
    ));
    Ok(rows)
}

/// The set-tmpfs rows: a store of 10 entries on /dev/shm, beside a kernel read + add_key.
pub fn tmpfs_rows(cfg: &Config, fx: &Fixture) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    let shm = Path::new("/dev/shm");
    if !(shm.is_dir() && sys::is_tmpfs(shm)) {
        rows.push(na(
            "set-tmpfs",
            "libkeyring Store::set, store on tmpfs",
            Some(10),
            "/dev/shm is not a tmpfs",
        ));
        return Ok(rows);
    }
    let dir = Scratch(shm.join(format!("keyringrs-bench-{}", std::process::id())));
    let s2 = Store::init(&dir.0, PASSWORD, &fx.small_kdf).map_err(e2s)?;
    for i in 0..10 {
        s2.set(&service(i), &user(i), &secret(i)).map_err(e2s)?;
    }
    let mut k = 0usize;
    let mut buf = [0u8; 64];
    let raw_desc = &fx.raw_desc;
    let s2r = &s2;
    let mut ops: Vec<(String, Op)> = vec![
        (
            ROW_RAW_SET.into(),
            Box::new(move || {
                let _ = sys::search_read(raw_desc, &mut buf);
                raw_add_key(raw_desc)
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
    Ok(rows)
}
