//! keyringrs-tpm2 against real software TPMs: each test starts its own swtpm (own state
//! directory, own ports), so the tests run in parallel.

use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyringrs_rigs::swtpm::Swtpm;
use keyringrs_tpm2::{probe, seal, unseal, Account, Error, Policy, Sealed, Tcti};

const WITHIN: Duration = Duration::from_secs(20);

/// A fresh directory under the target dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p =
            std::env::temp_dir().join(format!("kr-tpm2-test-{}-{name}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running swtpm with its directory and TCTI.
struct Rig {
    tpm: Swtpm,
    _dir: TempDir,
}

impl Rig {
    fn new(name: &str) -> Rig {
        let dir = TempDir::new(name);
        let tpm = Swtpm::start(&dir.0.join("state")).unwrap_or_else(|e| panic!("swtpm: {e}"));
        Rig { tpm, _dir: dir }
    }

    fn tcti(&self) -> Tcti {
        Tcti::parse(&self.tpm.tcti()).unwrap()
    }
}

const NONE: Policy = Policy {
    pcrs: 0,
    pin: false,
};

#[test]
fn round_trip_without_pcrs() {
    let rig = Rig::new("round-trip");
    let t = rig.tcti();
    probe(&t, WITHIN, None).unwrap();
    let start = Instant::now();
    let (sealed, key) = seal(&t, &NONE, None, WITHIN).unwrap();
    let sealed_ms = start.elapsed().as_millis();
    let bytes = sealed.to_bytes();
    assert!(bytes.len() <= keyringrs_tpm2::MAX_SEALED_LEN);
    let again = Sealed::from_bytes(&bytes).unwrap();
    assert_eq!(again, sealed);
    let start = Instant::now();
    let got = unseal(&t, &again, &NONE, None, WITHIN, None).unwrap();
    let unsealed_ms = start.elapsed().as_millis();
    assert_eq!(*got, *key);
    assert_ne!(*key, [0u8; 32]);
    // Two seals: two different keys.
    let (_, key2) = seal(&t, &NONE, None, WITHIN).unwrap();
    assert_ne!(*key2, *key);
    let dbg = format!("{sealed:?}");
    assert!(dbg.starts_with("Sealed {") && dbg.contains("len"), "{dbg}");
    eprintln!(
        "seal {sealed_ms} ms, unseal {unsealed_ms} ms, {} bytes",
        bytes.len()
    );
}
