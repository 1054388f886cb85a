//! The stores the get, set and unlock groups measure side by side, grown to each size in turn:
//! ours (bulk-filled), the raw kernel key, keyring-core's keyutils store and gnome-keyring over
//! D-Bus; and the entries they hold (names, secrets, the picks a measurement cycles through).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use keyring_core::{CredentialStore, Entry};
use libkeyring::crypto::{MasterKey, Purpose};
use libkeyring::format::{self, EntryData, StoreId};
use libkeyring::keyring::Keyring;
use libkeyring::{KdfParams, Store, UnlockOptions};
use zeroize::Zeroizing;

use crate::harness::{compare, e2s, Op};
use crate::report::{na, time_row, Row};
use crate::{gnome, sys, Config, PASSWORD};

/// The description of the raw kernel key (the floor of a lookup).
pub const RAW_DESC: &str = "kbench:raw";

pub fn service(i: usize) -> String {
    format!("svc{i:06}.example.org")
}
pub fn user(i: usize) -> String {
    format!("user{i}")
}
pub fn secret(i: usize) -> Vec<u8> {
    format!("secret-{i:06}-0123456789abcdef").into_bytes()
}
pub const SECRET_LEN: usize = 30;

/// The entries a measurement cycles through: spread over all `n`, so lookups are not all of
/// one hot file.
pub fn picks(n: usize) -> Vec<usize> {
    (0..64).map(|k| (k * 7919 + 3) % n).collect()
}

/// Minimal KDF parameters (unlock is measured separately with the defaults), so Argon2id does
/// not hide the rest of unlock.
pub fn small_kdf() -> Result<UnlockOptions, String> {
    Ok(UnlockOptions {
        kdf: KdfParams::new(KdfParams::MIN_MEMORY_KIB, 1, 1).map_err(e2s)?,
        ..Default::default()
    })
}

/// The master key of an unlocked store (from the session keyring) and its id.
fn master_key(store: &Store) -> Result<(MasterKey, StoreId), String> {
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
    Ok((master, StoreId(id)))
}

/// Write entries `from..to` straight into the store's directory, sealed exactly as
/// `Store::set` does, but without an fsync per file (one syncfs at the end). Only the bench
/// fills this way; the measured `set` rows go through the library with full durability.
pub fn bulk_fill(store: &Store, from: usize, to: usize) -> Result<(), String> {
    if from >= to {
        return Ok(());
    }
    let (master, sid) = master_key(store)?;
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
pub fn store_file_names(store: &Store, pk: &[usize]) -> Result<Vec<CString>, String> {
    let (master, sid) = master_key(store)?;
    let name = master.subkey(&sid.0, Purpose::EntryName);
    pk.iter()
        .map(|&i| {
            CString::new(format::hex(&format::entry_id(&name, &service(i), &user(i)))).map_err(e2s)
        })
        .collect()
}

/// Our store, the raw key and the two peers, with as many entries as the last `fill_to`.
pub struct Fixture {
    pub work: PathBuf,
    pub store_path: PathBuf,
    pub store: Store,
    pub small_kdf: UnlockOptions,
    pub on_tmpfs: bool,
    pub raw_desc: CString,
    ku: Arc<CredentialStore>,
    pub ku_entries: Vec<Entry>,
    pub gk_daemons: Result<gnome::Daemons, String>,
    gk: Result<Arc<CredentialStore>, String>,
    pub gk_entries: Vec<Entry>,
    gk_note: Option<String>,
    gk_fill_start: Instant,
    filled: usize,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("store_path", &self.store_path)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl Fixture {
    /// The stores in `work`, empty; gnome-keyring started (or why not).
    pub fn new(work: &Path) -> Result<Fixture, String> {
        let small_kdf = small_kdf()?;
        let store_path = work.join("store");
        let store = Store::init(&store_path, PASSWORD, &small_kdf).map_err(e2s)?;
        let on_tmpfs = sys::is_tmpfs(work);

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

        // gnome-keyring.
        let gk_daemons = gnome::start(&work.join("gnome"));
        let gk: Result<Arc<CredentialStore>, String> = match &gk_daemons {
            Ok(d) => gnome::peer_store(d),
            Err(e) => Err(e.clone()),
        };
        Ok(Fixture {
            work: work.to_path_buf(),
            store_path,
            store,
            small_kdf,
            on_tmpfs,
            raw_desc,
            ku,
            ku_entries: Vec::new(),
            gk_daemons,
            gk,
            gk_entries: Vec::new(),
            gk_note: None,
            gk_fill_start: Instant::now(),
            filled: 0,
        })
    }

    /// Entries 0..n in every store (gnome-keyring within its fill budget).
    pub fn fill_to(&mut self, cfg: &Config, n: usize) -> Result<(), String> {
        bulk_fill(&self.store, self.filled, n)?;
        self.filled = n;
        for i in self.ku_entries.len()..n {
            let e = Entry::new_in_store(&self.ku, &service(i), &user(i)).map_err(e2s)?;
            e.set_secret(&secret(i)).map_err(e2s)?;
            self.ku_entries.push(e);
        }
        if let Ok(g) = &self.gk {
            if self.gk_note.is_none() {
                while self.gk_entries.len() < n {
                    if self.gk_fill_start.elapsed() > cfg.gnome_fill_budget {
                        self.gk_note = Some(format!(
                            "filling over D-Bus reached only {} items in the {} s budget",
                            self.gk_entries.len(),
                            cfg.gnome_fill_budget.as_secs()
                        ));
                        break;
                    }
                    let i = self.gk_entries.len();
                    let e = Entry::new_in_store(g, &service(i), &user(i)).map_err(e2s)?;
                    e.set_secret(&secret(i)).map_err(e2s)?;
                    self.gk_entries.push(e);
                }
            }
        }
        Ok(())
    }

    /// The entries in every store.
    pub fn filled(&self) -> usize {
        self.filled
    }

    /// Whether gnome-keyring holds `n` entries.
    pub fn gk_ready(&self, n: usize) -> bool {
        self.gk.is_ok() && self.gk_entries.len() >= n
    }

    /// Why gnome-keyring's rows are missing.
    pub fn gk_missing(&self) -> String {
        self.gk
            .as_ref()
            .err()
            .cloned()
            .or(self.gk_note.clone())
            .unwrap_or_default()
    }

    /// gnome-keyring's row of `group` at `n`: `op` measured alone, in one round (a D-Bus call
    /// costs far more than the others), or why it is missing.
    pub fn gk_row(
        &self,
        group: &str,
        name: &str,
        n: usize,
        op: Op<'_>,
        warmup: usize,
        samples: usize,
    ) -> Row {
        if !self.gk_ready(n) {
            return na(group, name, Some(n), self.gk_missing());
        }
        let mut ops = vec![(name.to_string(), op)];
        let r = compare(&mut ops, warmup, samples, 1)
            .pop()
            .unwrap_or_else(|| Err("not run".into()));
        time_row(group, name, Some(n), r)
    }

    /// The keyutils peer's keys out (they are also linked into the persistent keyring), our
    /// store locked, gnome-keyring stopped (its items go with its throwaway HOME: deleting them
    /// one by one over D-Bus would rewrite its keyring file once per item).
    pub fn clean_up(self) {
        for e in &self.ku_entries {
            let _ = e.delete_credential();
        }
        let _ = self.store.lock();
    }
}
