//! Passwords and pam_keyringrs.so through real libpam (docs/PAM.md): `passwd` rewraps the store,
//! an administrator's reset keeps the login working and `keyringrs resync` (with the old
//! password or the recovery key) brings every secret back, an autologin with the disk
//! passphrase opens a `--pam` keyslot, and no log line ever holds a password or a secret. The
//! harness (tests/pam/pam-driver.c, throwaway services and users) is keyringrs_tests::pam.

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

#[test]
fn passwd_through_pam_rewraps_the_store_for_the_new_password() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let mut l = Login::standard("passwd", "old-Pw-4711");
    l.store("s", "u", "kept");
    // The user runs passwd: real uid = the user, so pam_unix asks for the old password.
    l.passwd("new-Pw-0815");
    assert_logged(&log, &l.svc, "for the new password");
    let t = l.session(
        Steps::new()
            .get("s", "u")
            .run("printf 'old-Pw-4711\\n' | ./keyringrs unlock --password-stdin"),
    );
    assert!(t.has("value=kept"), "{t}");
    // The old password opens no keyslot any more (WrongPassword, exit 5)...
    assert_eq!(t.codes("run"), [0, 5], "{t}");
    // ...and no longer logs in.
    let t = l.drive(Steps::login("old-Pw-4711"));
    assert_ne!(t.codes("auth"), [0], "{t}");
}

/// After an administrator reset the password to `l.password`: the login proceeds, finds (s, u)
/// locked and tells so; `resync` (shell) unlocks it at once and (s, u) reads `kept`; the next
/// login unlocks with the new password and tells nothing. The first login's transcript.
fn a_resync_after_the_reset_brings_the_secret_back(l: &Login, resync: &str) -> Transcript {
    let t = l.session(Steps::new().get("s", "u").run(resync).get("s", "u"));
    assert!(t.has("@@ info: Your keyringrs secrets stay locked"), "{t}");
    assert_eq!(t.codes("run"), [3, 0, 0], "locked, resynced, read: {t}");
    assert!(t.has("value=kept"), "{t}");
    let next = l.assert_reads("s", "u", "kept");
    assert!(!next.has("@@ info:"), "{next}");
    t
}

#[test]
fn an_admin_password_reset_keeps_the_login_and_tells_the_user_how_to_resync() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let mut l = Login::standard("reset", "before-reset");
    l.store("s", "u", "kept");
    l.reset_password("after-reset");
    let t = a_resync_after_the_reset_brings_the_secret_back(
        &l,
        "printf 'before-reset\\nafter-reset\\n' | ./keyringrs resync --password-stdin",
    );
    assert!(t.has("Run `keyringrs resync`"), "{t}");
    assert_logged(&log, &l.svc, "wrong password");
}

/// The done-when of "never lose the store to a password": a user whose password an
/// administrator reset (chpasswd) and who forgot the old one gets every secret back with the
/// recovery key and one command; the next login unlocks with the new password.
#[test]
fn after_an_admin_reset_the_recovery_key_and_resync_bring_every_secret_back() {
    require_root!("creates users and /etc/pam.d services");
    let mut l = Login::standard("recover", "forgotten-pw");
    // First login: store created; the user adds a recovery key and a secret.
    let t = l.session(
        Steps::new()
            .run(
                "printf 'forgotten-pw\\n' | ./keyringrs recovery-key add --password-stdin \
                 > recovery.txt 2>/dev/null",
            )
            .set("s", "u", "kept"),
    );
    assert_eq!(t.codes("run"), [0, 0], "{t}");
    let key = std::fs::read_to_string(l.user.home.join("recovery.txt")).unwrap();
    assert_eq!(key.trim().len(), 71, "{key:?}");
    l.reset_password("reset-by-admin");
    a_resync_after_the_reset_brings_the_secret_back(
        &l,
        "(cat recovery.txt; printf 'reset-by-admin\\n') | \
         ./keyringrs resync --recovery-key --password-stdin",
    );
}

/// Autologin with the disk passphrase: systemd's pam_systemd_loadkey puts the LUKS passphrase
/// into PAM_AUTHTOK without a prompt (here: a tiny test module standing for it); with a keyslot
/// added with `slot add --pam` holding that passphrase, the autologin unlocks the store. A wrong
/// AUTHTOK leaves it locked and the login proceeds; a slot not marked for login is not tried.
#[test]
fn an_autologin_with_the_disk_passphrase_unlocks_a_pam_slot() {
    require_root!("creates users and /etc/pam.d services");
    let module = TempDir::new("pam-authtok");
    let authtok = build_c(
        "pam/pam-authtok.c",
        &module.path().join("pam-authtok.so"),
        &["-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-lpam"],
    );
    let l = Login::new(
        "autologin",
        "login-pw",
        Service::standard("autologin-pw", ""),
    );
    let t = l.session(
        Steps::new()
            .run(
                "printf 'login-pw\\ndisk-passphrase\\n' | \
                 ./keyringrs slot add disk --pam --password-stdin",
            )
            .run("printf 'login-pw\\nshared-pw\\n' | ./keyringrs slot add shared --password-stdin")
            .set("s", "u", "kept"),
    );
    assert_eq!(t.codes("run"), [0, 0, 0], "{t}");
    for (token, unlocked) in [
        ("disk-passphrase", true),
        ("wrong-passphrase", false),
        ("shared-pw", false),
    ] {
        let stack = Service::new(
            "autologin",
            &format!(
                "auth     required  {} token={}\n\
                 auth     optional  MODULE {TEST_OPTIONS}\n\
                 account  required  pam_permit.so\n\
                 session  optional  pam_keyinit.so force revoke\n\
                 session  required  pam_unix.so\n\
                 session  optional  MODULE {TEST_OPTIONS}\n",
                authtok.display(),
                hex(token)
            ),
        );
        // No password of its own: the AUTHTOK comes from the module before.
        let t = drive(
            &stack,
            &l.user.name,
            Steps::new()
                .kdf()
                .step("auth 00")
                .open()
                .get("s", "u")
                .close()
                .end(),
        );
        assert_eq!(t.codes("auth"), [0], "no prompt, no failure: {t}");
        assert_eq!(t.codes("open"), [0], "the login proceeds: {t}");
        if unlocked {
            assert!(t.has("value=kept"), "{token}: {t}");
        } else {
            assert_eq!(t.codes("run"), [3], "{token}: {t}");
        }
    }
}

/// docs/THREAT-MODEL.md "logs": at `debug`, every hook logs, and no line holds a password or a
/// secret.
#[test]
fn debug_logs_never_contain_a_password_or_a_secret() {
    require_root!("creates users and /etc/pam.d services");
    let Some(log) = syslog() else {
        eprintln!("SKIPPED: a system logger owns /dev/log; cannot collect the module's lines");
        return;
    };
    let (pw1, pw2, secret) = (
        "CanaryPw-One-93a1",
        "CanaryPw-Two-5c7d",
        "CanarySecret-e4b2",
    );
    let mut l = Login::standard("canary", pw1);
    let t = l.drive(
        l.steps()
            .set("s", "u", secret)
            .close()
            .end()
            .passwd(pw1, pw2),
    );
    assert_eq!(t.codes("chauthtok"), [0], "{t}");
    l.reset_password(pw1);
    let t = l.session(Steps::new());
    assert!(t.has("@@ info:"), "{t}");
    let lines = log.lines(&l.svc);
    for phase in ["auth", "session open", "session close", "password"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("]: {phase}: "))
                    || l.contains(&format!("): {phase}: "))),
            "no {phase} line in {lines:#?}"
        );
    }
    for l in &lines {
        for canary in [pw1, pw2, secret] {
            assert!(!l.contains(canary), "log line holds a canary: {l}");
        }
    }
}
