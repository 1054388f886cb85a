//! pam_keyringrs.so behind a real OpenSSH sshd (docs/PAM.md "sshd"): an sshd of the test's own
//! on 127.0.0.1 (own config, host key and PAM service, in the foreground as a child of the test),
//! driven by `sshpass` + `ssh` with each authentication method chosen by the client. The PAM
//! service is this repository's etc/pam.d/sshd with the built module; OpenSSH names its PAM
//! service after its program name, so sshd runs through a symlink named like the service.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use keyringrs_tests::pam::*;
use keyringrs_tests::sshd::{Method, Sshd};
use keyringrs_tests::*;

/// `keyringrs get S U` in a login: its value and exit code on one line, `value=V rc=N`.
const GET: &str = "v=$(./keyringrs get S U); echo \"value=$v rc=$?\"";

/// Wait (up to 20 s) until `file` exists and is not empty; its contents.
fn wait_for_file(file: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(file) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} never written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn header(user: &ThrowawayUser) -> PathBuf {
    default_store(user).join("header")
}

#[test]
fn password_and_keyboard_interactive_logins_unlock_and_the_logout_locks() {
    require_root!("creates users, /etc/pam.d services and runs sshd");
    let _common = CommonStacks::shared();
    let user = login_user("sshpw", "Sshd-pw-4711");
    let sshd = Sshd::start("sshd-pw", &shipped_stack("sshd"));
    assert!(!header(&user).exists());
    // The first login (password method) creates the store; the session can use it.
    let out = sshd.ok(
        &user,
        Method::Password("Sshd-pw-4711"),
        &format!("test -f .local/share/keyringrs/header && echo created; printf s3cret | ./keyringrs set S U && echo set; {GET}"),
    );
    assert!(out.contains("created\nset\nvalue=s3cret rc=0"), "{out}");
    assert!(header(&user).exists());
    // The second (keyboard-interactive: pam_authenticate in a child of sshd's monitor) reads it,
    // and leaves behind a process that reads once while the session is open (the session waits
    // for that) and again after the session has ended.
    let out = sshd.ok(
        &user,
        Method::KeyboardInteractive("Sshd-pw-4711"),
        &format!(
            "{GET}; rm -f out pre rc; setsid sh -c './keyringrs get S U > out 2>&1; echo $? > pre; \
             sleep 2; ./keyringrs get S U > out 2>&1; echo $? > rc' </dev/null >/dev/null 2>&1 & \
             while [ ! -s pre ]; do sleep 0.1; done"
        ),
    );
    assert!(out.contains("value=s3cret rc=0"), "{out}");
    assert_eq!(wait_for_file(&user.home.join("pre")), "0\n");
    assert_eq!(
        wait_for_file(&user.home.join("rc")),
        "3\n",
        "a process outliving the ssh session must find the store locked: {}",
        std::fs::read_to_string(user.home.join("out")).unwrap_or_default()
    );
    // Both logins were ended by sshd: a fresh session of the user finds nothing.
    assert_eq!(fresh_user_session_get(&user), 3);
}

#[test]
fn a_public_key_login_is_not_blocked_and_finds_the_store_locked() {
    require_root!("creates users, /etc/pam.d services and runs sshd");
    let _common = CommonStacks::shared();
    let user = login_user("sshkey", "Sshd-key-0815");
    let sshd = Sshd::start("sshd-key", &shipped_stack("sshd"));
    let out = sshd.ok(
        &user,
        Method::Password("Sshd-key-0815"),
        &format!("printf k | ./keyringrs set S U; {GET}"),
    );
    assert!(out.contains("value=k rc=0"), "{out}");
    let keys = TempDir::new("sshd-client-key");
    let id = keys.path().join("id");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&id)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{o:?}");
    let dot_ssh = user.home.join(".ssh");
    std::fs::create_dir_all(&dot_ssh).unwrap();
    std::fs::copy(id.with_extension("pub"), dot_ssh.join("authorized_keys")).unwrap();
    chown_tree(&dot_ssh, user.uid, user.gid);
    let started = Instant::now();
    let out = sshd.ok(&user, Method::PublicKey(&id), GET);
    assert!(out.contains("value= rc=3"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the key login took {:?}",
        started.elapsed()
    );
    assert!(
        sshd.log.lock().unwrap().contains("Accepted publickey"),
        "{}",
        sshd.log.lock().unwrap()
    );
}

/// `passwd` run by the user in an ssh session goes through the machine's /etc/pam.d/passwd
/// (@include common-password): with the pam-auth-update profile enabled, the store follows the
/// new password. The sshd here uses Debian's own /etc/pam.d/sshd (from openssh-server), which
/// then gets the module from the common-* files, as on a machine set up as docs/PAM.md says
/// (the shipped file beside the profile would run the module twice).
#[test]
fn passwd_in_an_ssh_session_keeps_the_store_in_step() {
    require_root!("creates users, /etc/pam.d services, runs sshd and pam-auth-update");
    let debian_sshd =
        std::fs::read_to_string("/etc/pam.d/sshd").expect("/etc/pam.d/sshd of openssh-server");
    let profile = PamProfile::enable();
    let user = login_user("sshpasswd", "Old-pw-4711x");
    let sshd = Sshd::start("sshd-passwd", &debian_sshd);
    let out = sshd.ok(
        &user,
        Method::Password("Old-pw-4711x"),
        &format!("printf kept | ./keyringrs set S U; {GET}"),
    );
    assert!(out.contains("value=kept rc=0"), "{out}");
    // Debian's passwd reads the old and the new password (twice) from stdin when it is no tty.
    let out = sshd.ok(
        &user,
        Method::KeyboardInteractive("Old-pw-4711x"),
        "printf 'Old-pw-4711x\\nNew-pw-0815y\\nNew-pw-0815y\\n' | passwd; echo passwd=$?",
    );
    assert!(out.contains("passwd=0"), "{out}");
    let out = sshd.ok(&user, Method::Password("New-pw-0815y"), GET);
    assert!(
        out.contains("value=kept rc=0"),
        "the new password must unlock the store: {out}"
    );
    // The old password opens neither the login nor the store.
    let o = sshd.ssh(&user, Method::Password("Old-pw-4711x"), GET);
    assert!(!o.status.success(), "{o:?}");
    let out = sshd.ok(
        &user,
        Method::Password("New-pw-0815y"),
        "printf 'Old-pw-4711x\\n' | ./keyringrs unlock --password-stdin; echo unlock=$?",
    );
    assert!(out.contains("unlock=5"), "{out}");
    drop(sshd);
    drop(profile);
}

/// `scope=user` over a real sshd: each ssh login is a holder of the store in `@u`, its opener
/// sshd's privileged session process (which runs both pam_open_session and pam_close_session),
/// alive for the whole connection. So a second login that opens and closes while the first is
/// connected leaves the store unlocked for the first, whose own logout then locks it.
#[test]
fn overlapping_ssh_logins_with_scope_user_hold_the_store_until_the_last_logout() {
    require_root!("creates users, /etc/pam.d services and runs sshd");
    let _common = CommonStacks::shared();
    let user = login_user("sshhold", "Sshd-hold-31");
    let stack = shipped_stack("sshd").replace("MODULE ", "MODULE scope=user ");
    let sshd = Sshd::start("sshd-hold", &stack);
    let first = std::thread::scope(|s| {
        let first = s.spawn(|| {
            sshd.ok(
                &user,
                Method::Password("Sshd-hold-31"),
                &format!(
                    "printf v | ./keyringrs set S U; ./keyringrs status > status1; \
                     while [ ! -e done ]; do sleep 0.1; done; {GET}"
                ),
            )
        });
        let status = wait_for_file(&user.home.join("status1"));
        assert!(status.contains("held by: text login"), "{status}");
        assert!(!status.contains("(gone;"), "{status}");
        let out = sshd.ok(
            &user,
            Method::Password("Sshd-hold-31"),
            &format!("./keyringrs status; {GET}"),
        );
        assert!(out.contains("value=v rc=0"), "{out}");
        assert_eq!(
            out.matches("held by: text login").count(),
            2,
            "both logins hold it, neither gone: {out}"
        );
        assert!(!out.contains("(gone;"), "{out}");
        std::fs::write(user.home.join("done"), "").unwrap();
        first.join().unwrap()
    });
    assert!(
        first.contains("value=v rc=0"),
        "the second logout must not lock the first login's store: {first}"
    );
    // sshd closes the PAM session after the client has seen the command end: wait for it.
    let started = Instant::now();
    while fresh_user_session_get(&user) != 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the last logout did not lock it: {}",
            sshd.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
