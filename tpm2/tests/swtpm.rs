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
    // Averages over 10, each a fork, a connection, a primary key and the command.
    let pin_pcr = Policy {
        pcrs: Policy::parse_pcrs("0,7,16").unwrap(),
        pin: true,
    };
    let start = Instant::now();
    let mut slots = Vec::new();
    for _ in 0..10 {
        slots.push(seal(&t, &pin_pcr, Some(b"pin"), WITHIN).unwrap());
    }
    let seal_avg = start.elapsed() / 10;
    let start = Instant::now();
    for (s, k) in &slots {
        assert_eq!(
            *unseal(&t, s, &pin_pcr, Some(b"pin"), WITHIN, None).unwrap(),
            **k
        );
    }
    eprintln!(
        "PCRs 0,7,16 + PIN: seal {:?}, unseal {:?} on average",
        seal_avg,
        start.elapsed() / 10
    );
}

#[test]
fn pcr_policy_follows_pcr_16_across_a_reboot() {
    let mut rig = Rig::new("pcr");
    let policy = Policy {
        pcrs: Policy::parse_pcrs("16").unwrap(),
        pin: false,
    };
    let (sealed, key) = seal(&rig.tcti(), &policy, None, WITHIN).unwrap();
    assert_eq!(
        *unseal(&rig.tcti(), &sealed, &policy, None, WITHIN, None).unwrap(),
        *key
    );
    rig.tpm.extend_pcr(16, "keyringrs test").unwrap();
    let e = unseal(&rig.tcti(), &sealed, &policy, None, WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::PolicyMismatch), "{e:?}");
    assert_eq!(
        e.to_string(),
        "the TPM's PCR values differ from those the slot was sealed to"
    );
    // A slot sealed without PCRs does not care.
    let (free, free_key) = seal(&rig.tcti(), &NONE, None, WITHIN).unwrap();
    assert_eq!(
        *unseal(&rig.tcti(), &free, &NONE, None, WITHIN, None).unwrap(),
        *free_key
    );
    // Reboot: PCR 16 back at its boot value, the same TPM (its seeds in the state directory).
    rig.tpm.restart().unwrap();
    assert_eq!(
        *unseal(&rig.tcti(), &sealed, &policy, None, WITHIN, None).unwrap(),
        *key
    );
    assert_eq!(
        *unseal(&rig.tcti(), &free, &NONE, None, WITHIN, None).unwrap(),
        *free_key
    );
    // Sealed after an extend: bound to the extended value, so it fails after the reboot.
    rig.tpm.extend_pcr(16, "again").unwrap();
    let (later, later_key) = seal(&rig.tcti(), &policy, None, WITHIN).unwrap();
    assert_eq!(
        *unseal(&rig.tcti(), &later, &policy, None, WITHIN, None).unwrap(),
        *later_key
    );
    rig.tpm.restart().unwrap();
    let e = unseal(&rig.tcti(), &later, &policy, None, WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::PolicyMismatch), "{e:?}");
}

#[test]
fn pin_right_wrong_missing() {
    let rig = Rig::new("pin");
    let t = rig.tcti();
    let policy = Policy {
        pcrs: Policy::parse_pcrs("0,7").unwrap(),
        pin: true,
    };
    assert!(matches!(
        seal(&t, &policy, None, WITHIN),
        Err(Error::PinRequired)
    ));
    assert!(matches!(
        seal(&t, &policy, Some(b""), WITHIN),
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        seal(&t, &NONE, Some(b"1234"), WITHIN),
        Err(Error::InvalidInput(_))
    ));
    // A long PIN fits: the authValue is its SHA-256.
    let pin = "correct horse battery staple ".repeat(10);
    let (sealed, key) = seal(&t, &policy, Some(pin.as_bytes()), WITHIN).unwrap();
    assert_eq!(
        *unseal(&t, &sealed, &policy, Some(pin.as_bytes()), WITHIN, None).unwrap(),
        *key
    );
    let e = unseal(&t, &sealed, &policy, Some(b"12345"), WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::WrongPin), "{e:?}");
    assert_eq!(e.to_string(), "wrong TPM2 PIN");
    assert!(!format!("{e:?}").contains("12345"));
    let e = unseal(&t, &sealed, &policy, None, WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::PinRequired), "{e:?}");
    // The policy must say what the object was sealed with.
    let e = unseal(
        &t,
        &sealed,
        &Policy {
            pin: false,
            ..policy
        },
        None,
        WITHIN,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    // The right PIN still opens after one wrong one.
    assert_eq!(
        *unseal(&t, &sealed, &policy, Some(pin.as_bytes()), WITHIN, None).unwrap(),
        *key
    );
}

#[test]
fn wrong_pins_end_in_lockout() {
    let rig = Rig::new("lockout");
    let t = rig.tcti();
    let policy = Policy { pcrs: 0, pin: true };
    let (sealed, _key) = seal(&t, &policy, Some(b"1234"), WITHIN).unwrap();
    let mut wrong = 0;
    let locked = loop {
        match unseal(&t, &sealed, &policy, Some(b"0000"), WITHIN, None) {
            Err(Error::WrongPin) => wrong += 1,
            Err(Error::Lockout) => break true,
            other => panic!("after {wrong} wrong PINs: {other:?}"),
        }
        if wrong > 100 {
            break false;
        }
    };
    assert!(locked, "no lockout after {wrong} wrong PINs");
    eprintln!("lockout after {wrong} wrong PINs");
    // Locked out: the right PIN is refused too.
    let e = unseal(&t, &sealed, &policy, Some(b"1234"), WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::Lockout), "{e:?}");
    // A slot without PIN (noDA) still opens.
    let (free, free_key) = seal(&t, &NONE, None, WITHIN).unwrap();
    assert_eq!(
        *unseal(&t, &free, &NONE, None, WITHIN, None).unwrap(),
        *free_key
    );
}

#[test]
fn another_tpm_is_damaged() {
    let a = Rig::new("tpm-a");
    let b = Rig::new("tpm-b");
    let (sealed, _) = seal(&a.tcti(), &NONE, None, WITHIN).unwrap();
    let e = unseal(&b.tcti(), &sealed, &NONE, None, WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::Damaged(_)), "{e:?}");
    eprintln!("{e}");
}

/// A loopback port nobody listens on: port 1 (tcpmux), below the ephemeral range the rigs of
/// the tests running in parallel take their ports from.
fn closed_port() -> u16 {
    for p in [1, 2] {
        assert!(
            std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, p)).is_err(),
            "something listens on 127.0.0.1:{p}"
        );
    }
    1
}

#[test]
fn nothing_listening_is_no_tpm_and_fast() {
    let port = closed_port();
    let t = Tcti::parse(&format!("swtpm:host=127.0.0.1,port={port}")).unwrap();
    let start = Instant::now();
    let e = probe(&t, WITHIN, None).unwrap_err();
    assert!(matches!(e, Error::NoTpm(_)), "{e:?}");
    let e = seal(&t, &NONE, None, WITHIN).unwrap_err();
    assert!(matches!(e, Error::NoTpm(_)), "{e:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(e.to_string().starts_with("no TPM2 at swtpm:"), "{e}");
    let e = probe(
        &Tcti::parse("device:/nonexistent/tpmrm0").unwrap(),
        WITHIN,
        None,
    )
    .unwrap_err();
    assert!(matches!(e, Error::NoTpm(_)), "{e:?}");
}

#[test]
fn a_tpm_that_never_answers_times_out() {
    // Bound, listening, never accepting or answering: connections complete in the backlog.
    let (data, ctrl) = loop {
        let d = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let p = d.local_addr().unwrap().port();
        if let Ok(c) = TcpListener::bind((Ipv4Addr::LOCALHOST, p + 1)) {
            break (d, c);
        }
    };
    let port = data.local_addr().unwrap().port();
    let t = Tcti::parse(&format!("swtpm:host=127.0.0.1,port={port}")).unwrap();
    let deadline = Duration::from_secs(2);
    for _ in 0..2 {
        let start = Instant::now();
        let e = probe(&t, deadline, None).unwrap_err();
        let took = start.elapsed();
        assert!(matches!(e, Error::Timeout(d) if d == deadline), "{e:?}");
        assert!(
            took >= deadline && took < deadline + Duration::from_secs(1),
            "{took:?}"
        );
    }
    let start = Instant::now();
    let e = seal(&t, &NONE, None, deadline).unwrap_err();
    assert!(matches!(e, Error::Timeout(_)), "{e:?}");
    assert!(start.elapsed() < deadline + Duration::from_secs(1));
    drop((data, ctrl));
}

#[test]
fn every_flip_and_truncation_fails() {
    let rig = Rig::new("flips");
    let t = rig.tcti();
    let (sealed, key) = seal(&t, &NONE, None, WITHIN).unwrap();
    let bytes = sealed.to_bytes();
    let start = Instant::now();
    let (mut parse_errs, mut tpm_errs) = (0, 0);
    let mut check = |b: &[u8], what: &str| match Sealed::from_bytes(b) {
        Err(Error::Malformed(_)) => parse_errs += 1,
        Err(e) => panic!("{what}: from_bytes: {e:?}"),
        Ok(s) => match unseal(&t, &s, &NONE, None, WITHIN, None) {
            Ok(k) => panic!("{what}: unsealed (the same key: {})", *k == *key),
            Err(Error::Timeout(_)) => panic!("{what}: timeout"),
            Err(_) => tpm_errs += 1,
        },
    };
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0xff] {
            let mut b = bytes.clone();
            b[i] ^= mask;
            check(&b, &format!("byte {i} ^ {mask:#x}"));
        }
    }
    for n in 0..bytes.len() {
        check(&bytes[..n], &format!("first {n} bytes"));
    }
    let mut longer = bytes.clone();
    longer.push(0);
    check(&longer, "one byte more");
    check(&vec![0u8; keyringrs_tpm2::MAX_SEALED_LEN + 1], "too long");
    // The TPM has no objects or sessions left over from all that.
    assert_eq!(
        *unseal(&t, &sealed, &NONE, None, WITHIN, None).unwrap(),
        *key
    );
    eprintln!(
        "{} bytes: {parse_errs} refused by from_bytes, {tpm_errs} by the TPM, in {:?}",
        bytes.len(),
        start.elapsed()
    );
}

/// Seal and unseal from several threads at once (fork from a multi-threaded process). One
/// swtpm per thread: swtpm has no resource manager, so concurrent clients of one swtpm
/// would share its three transient object slots (as /dev/tpm0 would; /dev/tpmrm0 would not).
#[test]
fn threads_seal_and_unseal_at_once() {
    let rigs: Vec<Rig> = (0..4).map(|i| Rig::new(&format!("thread-{i}"))).collect();
    std::thread::scope(|s| {
        for rig in &rigs {
            s.spawn(move || {
                let t = rig.tcti();
                for _ in 0..3 {
                    let (sealed, key) = seal(&t, &NONE, None, WITHIN).unwrap();
                    assert_eq!(
                        *unseal(&t, &sealed, &NONE, None, WITHIN, None).unwrap(),
                        *key
                    );
                }
            });
        }
    });
}

/// A throwaway system user `kr-tpm2-<pid>` with a supplementary group `kr-tpm2g-<pid>`; both
/// removed on drop.
struct TempUser {
    account: Account,
    group: String,
    group_gid: u32,
}

fn run(cmd: &str, args: &[&str]) -> String {
    let o = std::process::Command::new(cmd).args(args).output().unwrap();
    assert!(
        o.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap().trim().to_owned()
}

impl TempUser {
    fn new() -> TempUser {
        let pid = std::process::id();
        let name = format!("kr-tpm2-{pid}");
        let group = format!("kr-tpm2g-{pid}");
        // Left over from a killed run of a process with our pid.
        let _ = std::process::Command::new("userdel").arg(&name).output();
        let _ = std::process::Command::new("groupdel").arg(&group).output();
        run("groupadd", &["--system", &group]);
        let mut u = TempUser {
            account: Account {
                name: name.clone(),
                uid: 0,
                gid: 0,
            },
            group: group.clone(),
            group_gid: 0,
        };
        run(
            "useradd",
            &[
                "--system",
                "--no-create-home",
                "--user-group",
                "--groups",
                &group,
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ],
        );
        u.account.uid = run("id", &["-u", &name]).parse().unwrap();
        u.account.gid = run("id", &["-g", &name]).parse().unwrap();
        u.group_gid = run("getent", &["group", &group])
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        u
    }
}

impl Drop for TempUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("userdel")
            .arg(&self.account.name)
            .output();
        let _ = std::process::Command::new("groupdel")
            .arg(&self.group)
            .output();
    }
}

#[test]
fn as_user_drops_privileges_in_the_child() {
    // Only root can create users and switch to them.
    if unsafe_free_euid() != 0 {
        eprintln!("skipped: not root");
        return;
    }
    let user = TempUser::new();
    let rig = Rig::new("as-user");
    let t = rig.tcti();
    let (sealed, key) = seal(&t, &NONE, None, WITHIN).unwrap();
    let got = unseal(&t, &sealed, &NONE, None, WITHIN, Some(&user.account)).unwrap();
    assert_eq!(*got, *key);
    probe(&t, WITHIN, Some(&user.account)).unwrap();

    // The drop is real: a root-only "device" is closed to the user (but open to root)...
    use std::os::unix::fs::{chown, PermissionsExt};
    let dir = TempDir::new("as-user-dev");
    let dev = dir.0.join("tpmrm0");
    std::fs::write(&dev, b"").unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o600)).unwrap();
    let dt = Tcti::parse(&format!("device:{}", dev.display())).unwrap();
    let e = probe(&dt, Duration::from_secs(5), Some(&user.account)).unwrap_err();
    assert!(matches!(e, Error::Permission(_)), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("is root:root 0600: add the user to group root"),
        "{text}"
    );
    let e = probe(&dt, Duration::from_secs(5), None).unwrap_err();
    assert!(!matches!(e, Error::Permission(_)), "{e:?}");
    eprintln!("root on a regular file: {e}");
    // ... and the supplementary groups apply: group-readable for the user's second group.
    chown(&dev, Some(0), Some(user.group_gid)).unwrap();
    std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o660)).unwrap();
    let e = probe(&dt, Duration::from_secs(5), Some(&user.account)).unwrap_err();
    assert!(!matches!(e, Error::Permission(_)), "{e:?}");
}

/// The effective uid, from /proc (the test crate has no libc).
fn unsafe_free_euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    line.split_whitespace().nth(2).unwrap().parse().unwrap()
}
