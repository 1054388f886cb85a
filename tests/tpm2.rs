//! The TPM2 keyslot end to end: the built `keyringrs` against swtpm as the TPM (its TCP TCTI,
//! named in TPM2TOOLS_TCTI as a user would): `slot add --tpm2`, `lock`, `unlock --tpm2`, a PCR
//! change, a PIN, another TPM, no TPM at all, and the sealed object's file changed. The slot's
//! bytes alone (no TPM): tests/tpm2_slot.rs.

use std::path::Path;
use std::process::{Command, Output};

use keyringrs_rigs::swtpm::Swtpm;
use keyringrs_tests::fixtures::{cli_get, cli_unlock, init_with_cli};
use keyringrs_tests::*;

/// `keyringrs` on `store` with the TPM at `tcti`.
fn with_tpm(store: &Path, tcti: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut c: Command = cli(store);
    c.env("TPM2TOOLS_TCTI", tcti).args(args);
    run(c, stdin)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A store with one entry, its password "pw", and a TPM.
fn setup(tag: &str) -> (TempDir, Swtpm) {
    let dir = TempDir::new(tag);
    init_with_cli(&dir);
    assert_exit(
        &keyringrs(&dir.store(), &["set", "svc", "u"], b"tpm secret"),
        0,
    );
    let tpm = Swtpm::start(&dir.path().join("swtpm")).expect("swtpm");
    (dir, tpm)
}

/// [`setup`], a TPM2 keyslot `m` (no PCRs), and the store locked.
fn locked_with_slot(tag: &str) -> (TempDir, Swtpm) {
    let (dir, tpm) = setup(tag);
    let add = ["slot", "add", "m", "--tpm2", "--password-stdin"];
    assert_exit(&with_tpm(&dir.store(), &tpm.tcti(), &add, b"pw\n"), 0);
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    (dir, tpm)
}

fn locked(store: &Path) -> bool {
    code(&keyringrs(store, &["get", "svc", "u"], b"")) == 3
}

#[test]
fn a_tpm2_slot_unlocks_without_a_password_and_is_listed() {
    let (dir, tpm) = setup("tpm2-cli");
    let store = dir.store();
    let o = with_tpm(
        &store,
        &tpm.tcti(),
        &["slot", "add", "machine", "--tpm2", "--password-stdin"],
        b"pw\n",
    );
    assert_exit(&o, 0);
    let list = String::from_utf8(keyringrs(&store, &["slot", "list"], b"").stdout).unwrap();
    assert!(
        list.lines()
            .any(|l| l.contains("\tmachine\ttpm2\tTPM2, no PCRs\t")),
        "{list}"
    );
    assert_exit(&keyringrs(&store, &["lock"], b""), 0);
    assert!(locked(&store));
    // Nothing on stdin, no terminal: nothing is asked.
    let o = with_tpm(&store, &tpm.tcti(), &["unlock", "--tpm2"], b"");
    assert_exit(&o, 0);
    assert_eq!(cli_get(&store, "svc", "u"), b"tpm secret");
}

#[test]
fn a_pcr_change_keeps_the_slot_shut_and_the_password_still_opens() {
    let (dir, mut tpm) = setup("tpm2-pcr");
    let store = dir.store();
    let o = with_tpm(
        &store,
        &tpm.tcti(),
        &[
            "slot",
            "add",
            "bound",
            "--tpm2",
            "--pcrs",
            "16",
            "--pam",
            "--password-stdin",
        ],
        b"pw\n",
    );
    assert_exit(&o, 0);
    let list = String::from_utf8(keyringrs(&store, &["slot", "list"], b"").stdout).unwrap();
    assert!(list.contains("TPM2, PCRs 16 (sha256), at login"), "{list}");
    assert_exit(&keyringrs(&store, &["lock"], b""), 0);
    assert_exit(
        &with_tpm(&store, &tpm.tcti(), &["unlock", "--tpm2"], b""),
        0,
    );
    assert_exit(&keyringrs(&store, &["lock"], b""), 0);
    tpm.extend_pcr(16, "another OS booted").unwrap();
    let o = with_tpm(&store, &tpm.tcti(), &["unlock", "--tpm2"], b"");
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("PCR values differ"), "{}", stderr(&o));
    assert!(locked(&store));
    assert_exit(&cli_unlock(&store, "pw"), 0);
    assert_eq!(cli_get(&store, "svc", "u"), b"tpm secret");
    // A reboot resets the PCRs to the values it was sealed under: it opens again.
    assert_exit(&keyringrs(&store, &["lock"], b""), 0);
    tpm.restart().unwrap();
    assert_exit(
        &with_tpm(&store, &tpm.tcti(), &["unlock", "--tpm2"], b""),
        0,
    );
}

#[test]
fn a_pin_slot_asks_its_pin() {
    let (dir, tpm) = setup("tpm2-pin");
    let store = dir.store();
    let o = with_tpm(
        &store,
        &tpm.tcti(),
        &[
            "slot",
            "add",
            "pinned",
            "--tpm2",
            "--pin",
            "--password-stdin",
        ],
        b"pw\n4711\n",
    );
    assert_exit(&o, 0);
    assert_exit(&keyringrs(&store, &["lock"], b""), 0);
    let o = with_tpm(
        &store,
        &tpm.tcti(),
        &["unlock", "--tpm2", "--password-stdin"],
        b"1234\n",
    );
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("wrong TPM2 PIN"), "{}", stderr(&o));
    assert!(locked(&store));
    let o = with_tpm(
        &store,
        &tpm.tcti(),
        &["unlock", "--tpm2", "--password-stdin"],
        b"4711\n",
    );
    assert_exit(&o, 0);
    assert_eq!(cli_get(&store, "svc", "u"), b"tpm secret");
    // --pin with --pam: a login without a password has no PIN to give.
    let o = with_tpm(
        &store,
        &tpm.tcti(),
        &[
            "slot",
            "add",
            "x",
            "--tpm2",
            "--pin",
            "--pam",
            "--password-stdin",
        ],
        b"pw\n1\n",
    );
    assert_exit(&o, 2);
}

#[test]
fn no_tpm_is_a_named_error_and_another_tpm_does_not_open_the_slot() {
    let (dir, tpm) = locked_with_slot("tpm2-none");
    let store = dir.store();
    // No device, nothing listening: exit 1, naming the TCTI.
    for tcti in [
        "device:/dev/keyringrs-no-such-tpm",
        "swtpm:host=127.0.0.1,port=1",
    ] {
        let o = with_tpm(&store, tcti, &["unlock", "--tpm2"], b"");
        assert_exit(&o, 1);
        assert!(stderr(&o).contains("no TPM2 at"), "{tcti}: {}", stderr(&o));
    }
    // Adding a slot without a TPM changes nothing.
    let header = std::fs::read(store.join("header")).unwrap();
    let o = with_tpm(
        &store,
        "device:/dev/keyringrs-no-such-tpm",
        &["slot", "add", "n", "--tpm2", "--password-stdin"],
        b"pw\n",
    );
    assert_exit(&o, 1);
    assert_eq!(std::fs::read(store.join("header")).unwrap(), header);
    // A bad TCTI is refused as such.
    let o = with_tpm(&store, "carrier-pigeon:", &["unlock", "--tpm2"], b"");
    assert_exit(&o, 1);
    assert!(stderr(&o).contains("TCTI"), "{}", stderr(&o));
    // Another machine's TPM (a new swtpm state): the slot does not open (exit 5).
    let other = Swtpm::start(&dir.path().join("other-swtpm")).unwrap();
    let o = with_tpm(&store, &other.tcti(), &["unlock", "--tpm2"], b"");
    assert_exit(&o, 5);
    assert!(locked(&store));
    // A store without a TPM2 slot says so.
    let plain = TempDir::new("tpm2-plain");
    init_with_cli(&plain);
    let o = with_tpm(&plain.store(), &tpm.tcti(), &["unlock", "--tpm2"], b"");
    assert_exit(&o, 5);
    assert!(stderr(&o).contains("no TPM2 keyslot"), "{}", stderr(&o));
}

#[test]
fn a_changed_sealed_object_is_damage_naming_its_file() {
    let (dir, tpm) = locked_with_slot("tpm2-damage");
    let store = dir.store();
    let file = std::fs::read_dir(store.join("tpm2"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let orig = std::fs::read(&file).unwrap();
    let mut b = orig.clone();
    b[orig.len() / 2] ^= 1;
    std::fs::write(&file, &b).unwrap();
    let o = with_tpm(&store, &tpm.tcti(), &["unlock", "--tpm2"], b"");
    assert_exit(&o, 7);
    assert!(
        stderr(&o).contains(&file.display().to_string()),
        "{}",
        stderr(&o)
    );
    // `check` names it and says what to do; the password still opens the store.
    let o = keyringrs(&store, &["check"], b"");
    assert_eq!(code(&o), 7);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains(&file.display().to_string()) && out.contains("slot remove"),
        "{out}"
    );
    // `repair` moves nothing while it is so (the slot is removed and added again, as `check`
    // says); the password still opens the store.
    assert_exit(&cli_unlock(&store, "pw"), 0);
    let header = std::fs::read(store.join("header")).unwrap();
    let o = keyringrs(&store, &["repair"], b"");
    assert_exit(&o, 7);
    assert!(stderr(&o).contains("slot remove"), "{}", stderr(&o));
    assert_eq!(std::fs::read(store.join("header")).unwrap(), header);
    assert_eq!(std::fs::read(&file).unwrap(), b);
    assert_eq!(cli_get(&store, "svc", "u"), b"tpm secret");
    assert_exit(&keyringrs(&store, &["lock"], b""), 0);
    std::fs::write(&file, &orig).unwrap();
    assert_exit(
        &with_tpm(&store, &tpm.tcti(), &["unlock", "--tpm2"], b""),
        0,
    );
    // `check` knows the file; removing the slot removes it.
    let o = keyringrs(&store, &["check"], b"");
    assert_eq!(
        code(&o),
        0,
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        stderr(&o)
    );
    assert_exit(
        &keyringrs(
            &store,
            &["slot", "remove", "m", "--password-stdin"],
            b"pw\n",
        ),
        0,
    );
    assert!(!file.exists());
}
