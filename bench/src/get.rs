//! The "get" group: one lookup in our store beside the raw kernel floor (keyctl_search +
//! keyctl_read), the raw file floor (openat + fstat + read), keyring-core's keyutils store and
//! gnome-keyring over D-Bus, at each store size.

use std::ffi::CString;

use keyring_core::Entry;

use std::time::Instant;

use libkeyring::Store;

use crate::fixture::{
    bulk_fill, picks, service, small_kdf, store_file_names, user, Fixture, SECRET_LEN,
};
use crate::harness::{compare, e2s, Op, Scratch};
use crate::report::{time_row, Row};
use crate::{sys, Config, PASSWORD};

pub const ROW_RAW_GET: &str = "raw kernel: keyctl_search + keyctl_read of one user key";
pub const ROW_OURS_GET: &str = "libkeyring Store::get";
pub const ROW_FILE_GET: &str = "raw file: openat + fstat + read + close of one entry file";
pub const ROW_KU_GET: &str = "keyring-core linux-keyutils store: Entry::get_secret";
pub const ROW_GK_GET: &str =
    "gnome-keyring over D-Bus: keyring-core Secret Service Entry::get_secret";

/// Ok when a secret read has the length every filled secret has.
fn check_len(len: usize) -> Result<(), String> {
    if len == SECRET_LEN {
        Ok(())
    } else {
        Err("wrong secret".into())
    }
}

/// The rows at `n` entries (the fixture filled to `n`).
pub fn rows(cfg: &Config, fx: &Fixture, n: usize) -> Result<Vec<Row>, String> {
    let pk = picks(n);
    let mut rows = Vec::new();
    let mut buf = [0u8; 64];
    let mut k = 0usize;
    let mut ku_k = 0usize;
    let mut gk_k = 0usize;
    let keys: Vec<(String, String)> = pk.iter().map(|&i| (service(i), user(i))).collect();
    let ku_sel: Vec<&Entry> = pk.iter().map(|&i| &fx.ku_entries[i]).collect();
    let store = &fx.store;
    let raw_desc = &fx.raw_desc;
    let entries_dir = std::fs::File::open(fx.store_path.join("entries")).map_err(e2s)?;
    let entries_dir = &entries_dir;
    let mut fk = 0usize;
    let mut fbuf = vec![0u8; 4096];
    let file_names: Vec<CString> = store_file_names(store, &pk)?;
    let mut fast: Vec<(String, Op)> = vec![
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
                check_len(store.get(s, u).map_err(e2s)?.len())
            }),
        ),
        (
            ROW_KU_GET.into(),
            Box::new(move || {
                let e = ku_sel[ku_k % ku_sel.len()];
                ku_k += 1;
                check_len(e.get_secret().map_err(e2s)?.len())
            }),
        ),
    ];
    let res = compare(&mut fast, cfg.get_samples / 20, cfg.get_samples, 10);
    for ((name, _), r) in fast.iter().zip(res) {
        rows.push(time_row("get", name, Some(n), r));
    }
    let gk_sel: Vec<&Entry> = if fx.gk_ready(n) {
        pk.iter().map(|&i| &fx.gk_entries[i]).collect()
    } else {
        vec![]
    };
    rows.push(fx.gk_row(
        "get",
        ROW_GK_GET,
        n,
        Box::new(move || {
            let e = gk_sel[gk_k % gk_sel.len()];
            gk_k += 1;
            e.get_secret().map(drop).map_err(e2s)
        }),
        5,
        cfg.dbus_samples,
    ));
    Ok(rows)
}

/// `--loop-get N SECONDS`, for profiling (perf record): fill N entries, then loop Store::get.
pub fn loop_get(n: usize, secs: u64) -> Result<(), String> {
    libkeyring::keyring::join_session(None).map_err(e2s)?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("keyringrs-bench-{}", std::process::id())));
    let store = Store::init(scratch.0.join("store"), PASSWORD, &small_kdf()?).map_err(e2s)?;
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
