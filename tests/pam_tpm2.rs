//! Logins without a password and a TPM2 keyslot (`slot add --tpm2 --pam`), through real libpam
//! with throwaway /etc/pam.d services whose auth gives no password (pam_permit, as an
//! autologin, a fingerprint or a smartcard login leaves PAM_AUTHTOK unset), swtpm as the TPM
//! named by the module's `tpm2_tcti=`: the store opens for that login with the lifetime of its
//! kind; a changed PCR, no TPM, a TPM that never answers, a device the user may not open, a
//! slot not marked for logins: the login goes on, the store stays locked, the log says why.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use keyringrs_rigs::swtpm::Swtpm;
use keyringrs_tests::pam::*;
use keyringrs_tests::*;

/// A stack whose auth asks nothing and gives no password, with the module's session options.
fn no_password_stack(tag: &str, session_options: &str) -> Service {
    Service::new(
        tag,
        &format!(
            "auth     required  pam_permit.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_permit.so\n\
             session  optional  pam_keyinit.so force revoke\n\
             session  required  pam_unix.so\n\
             session  optional  MODULE {TEST_OPTIONS} {session_options}\n"
        ),
    )
}

/// A user whose store has the entry s/u = kept and a TPM2 keyslot made with `slot_args`.
fn user_with_slot(tag: &str, tpm: &Swtpm, slot_args: &str) -> Login {
    let l = Login::standard(tag, "login-pw");
    let t = l.session(Steps::new().set("s", "u", "kept").run(&format!(
        "printf 'login-pw\\n' | TPM2TOOLS_TCTI={} ./keyringrs slot add machine --tpm2 \
                 {slot_args} --password-stdin",
        tpm.tcti()
    )));
    assert_eq!(t.codes("run"), [0, 0], "{t}");
    l
}

/// A login through `stack` (no password given): open, `get s u`, a `get` from a new process of
/// the user outside the login, close, and a last `get` after the close.
fn no_password_login(l: &Login, stack: &Service, tty: Option<&str>) -> Transcript {
    let mut steps = Steps::new().kdf().step("auth 00");
    if let Some(t) = tty {
        steps = steps.step(&format!("tty {t}"));
    }
    drive(
        stack,
        &l.user.name,
        steps.open().get("s", "u").close().get("s", "u").end(),
    )
}

#[test]
fn a_text_login_without_a_password_opens_the_store_with_the_tpm_for_that_login() {
    require_root!("creates users and /etc/pam.d services");
    let dir = TempDir::new("pam-tpm2");
    let tpm = Swtpm::start(&dir.path().join("swtpm")).unwrap();
    let l = user_with_slot("tpm2text", &tpm, "--pam");
    let log = syslog();
    let stack = no_password_stack("tpm2text", &format!("tpm2_tcti={}", tpm.tcti()));
    let t = no_password_login(&l, &stack, None);
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    // In the login: it reads; after its close (pam_keyinit revoke, the session's key): locked.
    assert_eq!(t.codes("run"), [0, 3], "{t}");
    assert!(t.has("value=kept"), "{t}");
    if let Some(log) = log {
        let lines = log.lines(&stack);
        assert!(
            lines.iter().any(|l| l.contains(
                "logged in without a password: the store opened \
                with its TPM2 keyslot machine (no PCRs at swtpm:"
            )),
            "{lines:#?}"
        );
    }
}

#[test]
fn a_graphical_autologin_opens_the_store_in_the_user_keyring_until_it_ends() {
    require_root!("creates users and /etc/pam.d services");
    let dir = TempDir::new("pam-tpm2-x");
    let tpm = Swtpm::start(&dir.path().join("swtpm")).unwrap();
    let l = user_with_slot("tpm2gui", &tpm, "--pcrs 16 --pam");
    let stack = no_password_stack("tpm2gui", &format!("tpm2_tcti={}", tpm.tcti()));
    let t = no_password_login(&l, &stack, Some(":0"));
    assert_eq!(t.codes("open"), [0], "{t}");
    // A display manager's login holds it in @u; the last close of such a login locks it.
    assert_eq!(t.codes("run"), [0, 3], "{t}");
    assert!(t.has("value=kept"), "{t}");
}

#[test]
fn when_the_tpm_slot_cannot_open_the_login_goes_on_and_the_store_stays_locked() {
    require_root!("creates users and /etc/pam.d services");
    let dir = TempDir::new("pam-tpm2-no");
    let tpm = Swtpm::start(&dir.path().join("swtpm")).unwrap();
    let l = user_with_slot("tpm2no", &tpm, "--pcrs 16 --pam");
    // A second login slot: a hung TPM is waited for once, not once a slot.
    let t = l.session(Steps::new().run(&format!(
        "printf 'login-pw\\n' | TPM2TOOLS_TCTI={} ./keyringrs slot add second --tpm2 --pcrs 16 --pam \
         --password-stdin",
        tpm.tcti()
    )));
    assert_eq!(t.codes("run"), [0], "{t}");
    let log = syslog();
    // Listeners (swtpm's command port and its control port beside it) that never answer: a
    // hung TPM.
    let hung = loop {
        let data = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = data.local_addr().unwrap().port();
        if let Ok(ctrl) = TcpListener::bind(("127.0.0.1", port + 1)) {
            break (data, ctrl);
        }
    };
    let hung_port = hung.0.local_addr().unwrap().port();
    // A device node the user may not open (root's, mode 0600), as /dev/tpmrm0 is without
    // the tss group.
    let dev = dir.path().join("tpmrm-root-only");
    std::fs::write(&dev, b"").unwrap();
    let cases = [
        ("pcr", tpm.tcti(), "PCR values differ"),
        (
            "none",
            "swtpm:host=127.0.0.1,port=1".to_string(),
            "no TPM2 at",
        ),
        (
            "hung",
            format!("swtpm:host=127.0.0.1,port={hung_port}"),
            "did not answer within 2s",
        ),
        (
            "device",
            format!("device:{}", dev.display()),
            "no access to the TPM2",
        ),
    ];
    tpm.extend_pcr(16, "changed").unwrap();
    for (tag, tcti, why) in cases {
        let stack = no_password_stack(
            &format!("tpm2no-{tag}"),
            &format!("tpm2_tcti={tcti} tpm2_timeout=2"),
        );
        let started = Instant::now();
        let t = no_password_login(&l, &stack, None);
        let took = started.elapsed();
        assert_eq!(t.codes("open"), [0], "{tag}: {t}");
        assert_eq!(t.codes("run"), [3, 3], "{tag}: {t}");
        assert!(
            took < Duration::from_secs(if tag == "hung" { 4 } else { 20 }),
            "{tag}: the login took {took:?}"
        );
        if let Some(log) = &log {
            let lines = log.lines(&stack);
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("did not open") && l.contains(why)),
                "{tag}: {lines:#?}"
            );
        }
    }
    drop(hung);
}

#[test]
fn a_slot_not_marked_for_logins_is_not_tried_and_a_password_login_ignores_the_tpm() {
    require_root!("creates users and /etc/pam.d services");
    let dir = TempDir::new("pam-tpm2-unmarked");
    let tpm = Swtpm::start(&dir.path().join("swtpm")).unwrap();
    let l = user_with_slot("tpm2unm", &tpm, "");
    let stack = no_password_stack("tpm2unm", &format!("tpm2_tcti={}", tpm.tcti()));
    let t = no_password_login(&l, &stack, None);
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("run"), [3, 3], "{t}");
    // The password login still opens it with the password (the TPM is not asked).
    l.assert_reads("s", "u", "kept");
}
