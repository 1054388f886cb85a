//! The "unlock" group: Store::lock + Store::unlock beside Argon2id alone, with the store's
//! minimal parameters at each size (what unlock costs beside the KDF), and with the defaults;
//! and the unlock through a TPM2 keyslot (swtpm as the TPM: fork, primary key, policy session,
//! unseal) beside them.

use std::path::Path;
use std::time::Duration;

use keyringrs_tpm2::{Policy, Tcti, Unsealer};
use libkeyring::{KdfParams, Store, UnlockOptions};

use crate::fixture::Fixture;
use crate::harness::{compare, e2s, Op};
use crate::report::{time_row, Row};
use crate::{Config, PASSWORD};

/// The rows at `n` entries, with the store's own (minimal) parameters: no Argon2id cost.
pub fn minimal_rows(cfg: &Config, fx: &Fixture, n: usize) -> Vec<Row> {
    let mut salt = [7u8; 16];
    let kdf = fx.small_kdf.kdf;
    let small_kdf = &fx.small_kdf;
    let store = &fx.store;
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
                store.unlock(PASSWORD, small_kdf).map(drop).map_err(e2s)
            }),
        ),
    ];
    let res = compare(&mut ops, 3, (cfg.set_samples / 3).max(10), 3);
    ops.iter()
        .zip(res)
        .map(|((name, _), r)| time_row("unlock", name, Some(n), r))
        .collect()
}

/// A store at `path` with the default parameters and one entry (also the memory rows' store).
pub fn default_store(path: &Path) -> Result<Store, String> {
    let store = Store::init(path, PASSWORD, &UnlockOptions::default()).map_err(e2s)?;
    store.set("example.org", "alice", b"hunter2").map_err(e2s)?;
    Ok(store)
}

/// Argon2id alone with the default parameters, and the whole unlock of `store` (made by
/// [`default_store`]).
pub fn default_rows(cfg: &Config, store: &Store) -> Vec<Row> {
    let default_opts = UnlockOptions::default();
    let mut salt = [9u8; 16];
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
                store.lock().map_err(e2s)?;
                store.unlock(PASSWORD, &default_opts).map(drop).map_err(e2s)
            }),
        ),
    ];
    let res = compare(&mut ops, 1, cfg.unlock_samples, cfg.unlock_samples);
    ops.iter()
        .zip(res)
        .map(|((name, _), r)| time_row("unlock", name, Some(1), r))
        .collect()
}

/// The unlock of `store` (made by [`default_store`]) through a TPM2 keyslot, with swtpm on
/// 127.0.0.1 as the TPM (under `dir`): what `unlock --tpm2`, a login without a password and the
/// unlock prompt's TPM2 step cost. n/a without swtpm.
pub fn tpm2_rows(cfg: &Config, store: &Store, dir: &Path) -> Vec<Row> {
    let name = "Store unlock through a TPM2 keyslot (swtpm: fork, primary key, unseal)";
    let tpm = match keyringrs_rigs::swtpm::Swtpm::start(&dir.join("swtpm")) {
        Ok(t) => t,
        Err(e) => return vec![crate::report::na("unlock", name, Some(1), e)],
    };
    let tpm2 = (|| -> Result<Unsealer, String> {
        let unsealer = Unsealer {
            tcti: Tcti::parse(&tpm.tcti()).map_err(e2s)?,
            within: Duration::from_secs(30),
            as_user: None,
        };
        unsealer
            .add_slot(
                store,
                PASSWORD,
                "bench-tpm2",
                &Policy::default(),
                None,
                false,
            )
            .map_err(e2s)?;
        Ok(unsealer)
    })();
    let unsealer = match tpm2 {
        Ok(u) => u,
        Err(e) => return vec![crate::report::na("unlock", name, Some(1), e)],
    };
    let opts = UnlockOptions::default();
    let mut ops: Vec<(String, Op)> = vec![(
        name.into(),
        Box::new(move || {
            store.lock().map_err(e2s)?;
            let slots = store.tpm2_slots(false).map_err(e2s)?;
            let (opened, _) = unsealer.open(store, &slots, &mut |_| None).map_err(e2s)?;
            store.unlock_opened(&opened, &opts).map(drop).map_err(e2s)
        }),
    )];
    let res = compare(&mut ops, 1, cfg.unlock_samples, cfg.unlock_samples);
    drop(tpm);
    ops.iter()
        .zip(res)
        .map(|((name, _), r)| time_row("unlock", name, Some(1), r))
        .collect()
}
