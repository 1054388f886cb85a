//! pam_keyringrs.so through real libpam (docs/PAM.md): a test PAM application
//! (tests/pam/pam-driver.c, like login or sshd) runs pam_authenticate / pam_open_session /
//! pam_close_session / pam_chauthtok against throwaway /etc/pam.d services that name the built
//! module by absolute path beside pam_unix and `pam_keyinit force revoke`, for throwaway users;
//! commands run as the user inside the opened session. The module's syslog output is collected
//! from /dev/log when no system logger owns it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

/// Every file under the store is the user's; the directories 0700, the files 0600.
fn assert_owned_private(dir: &Path, user: &ThrowawayUser) {
    let m = std::fs::symlink_metadata(dir).unwrap();
    assert_eq!(
        (m.uid(), m.mode() & 0o7777),
        (user.uid, 0o700),
        "{}",
        dir.display()
    );
    for f in files_under(dir) {
        let m = std::fs::symlink_metadata(&f).unwrap();
        let want = if m.is_dir() { 0o700 } else { 0o600 };
        assert_eq!((m.uid(), m.gid()), (user.uid, user.gid), "{}", f.display());
        assert_eq!(m.mode() & 0o7777, want, "{}", f.display());
    }
}

#[test]
fn first_login_creates_the_store_and_the_session_can_use_it() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("first", "first-login-pw");
    let svc = Service::standard("first", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf s3cret | ./keyringrs set example.org alice\n{}close\nend\n",
            login("first-login-pw"),
            get_step("example.org", "alice")
        ),
    );
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("run"), [0, 0], "{t}");
    assert!(t.has("value=s3cret"), "{t}");
    let store = default_store(&user);
    assert_owned_private(&store, &user);
    assert_owned_private(&user.home.join(".local/share"), &user);
    assert_logged(&log, &svc, "created store");
}

#[test]
fn logout_locks_the_store_and_removes_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("logout", "logout-pw");
    let svc = Service::standard("logout", "");
    // The key id and serial are written down inside the session, checked after close.
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf v | ./keyringrs set s u && echo {KEY_ID} > key-id\n\
             run keyctl search @s user $(cat key-id) > serial && echo found\n\
             close\n{}run keyctl search @s user $(cat key-id) || echo gone-from-session\n\
             run keyctl describe $(cat serial) || echo key-invalidated\nend\n",
            login("logout-pw"),
            get_step("s", "u")
        ),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("close"), [0], "{t}");
    assert!(t.has("found"), "{t}");
    // After close: Locked (exit 3), the key is found nowhere and its serial is dead.
    assert_eq!(t.codes("run")[2], 3, "{t}");
    assert!(
        t.has("gone-from-session") && t.has("key-invalidated"),
        "{t}"
    );
    assert_logged(&log, &svc, "locked the store of");
}

#[test]
fn a_second_login_unlocks_the_same_store() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("second", "second-pw");
    let svc = Service::standard("second", "");
    let first = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf kept | ./keyringrs set s u\nclose\nend\n",
            login("second-pw")
        ),
    );
    assert_eq!(first.codes("run"), [0], "{first}");
    let id = std::fs::read(default_store(&user).join("header")).unwrap();
    let second = drive(
        &svc,
        &user.name,
        &format!("{}{}close\nend\n", login("second-pw"), get_step("s", "u")),
    );
    assert_eq!(second.codes("run"), [0], "{second}");
    assert!(second.has("value=kept"), "{second}");
    assert_eq!(
        std::fs::read(default_store(&user).join("header")).unwrap(),
        id
    );
}

#[test]
fn passwd_through_pam_rewraps_the_store_for_the_new_password() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("passwd", "old-Pw-4711");
    let svc = Service::standard("passwd", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf kept | ./keyringrs set s u\nclose\nend\n",
            login("old-Pw-4711")
        ),
    );
    assert_eq!(t.codes("run"), [0], "{t}");
    // The user runs passwd: real uid = the user, so pam_unix asks for the old password.
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "ruid\nchauthtok {} {}\nend\n",
            hex("old-Pw-4711"),
            hex("new-Pw-0815")
        ),
    );
    assert_eq!(t.codes("chauthtok"), [0], "{t}");
    assert_logged(&log, &svc, "for the new password");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}{}run printf 'old-Pw-4711\\n' | ./keyringrs unlock --password-stdin\nclose\nend\n",
            login("new-Pw-0815"),
            get_step("s", "u")
        ),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("value=kept"), "{t}");
    // The old password opens no keyslot any more (WrongPassword, exit 5)...
    assert_eq!(t.codes("run"), [0, 5], "{t}");
    // ...and no longer logs in.
    let t = drive(&svc, &user.name, &format!("{}end\n", login("old-Pw-4711")));
    assert_ne!(t.codes("auth"), [0], "{t}");
}

#[test]
fn an_admin_password_reset_keeps_the_login_and_tells_the_user_how_to_resync() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("reset", "before-reset");
    let svc = Service::standard("reset", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf kept | ./keyringrs set s u\nclose\nend\n",
            login("before-reset")
        ),
    );
    assert_eq!(t.codes("run"), [0], "{t}");
    set_password(&user, "after-reset");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}{}run printf 'before-reset\\nafter-reset\\n' | ./keyringrs resync --password-stdin\n{}\
             close\nend\n",
            login("after-reset"),
            get_step("s", "u"),
            get_step("s", "u"),
        ),
    );
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "login must proceed: {t}");
    assert!(t.has("@@ info: Your keyringrs secrets stay locked"), "{t}");
    assert!(t.has("Run `keyringrs resync`"), "{t}");
    // Locked until the user resyncs: one command, unlocked at once.
    assert_eq!(t.codes("run"), [3, 0, 0], "{t}");
    assert!(t.has("value=kept"), "{t}");
    assert_logged(&log, &svc, "wrong password");
    let t = drive(
        &svc,
        &user.name,
        &format!("{}{}close\nend\n", login("after-reset"), get_step("s", "u")),
    );
    assert!(t.has("value=kept"), "{t}");
    assert!(!t.has("@@ info:"), "{t}");
}

#[test]
fn a_wrong_password_at_auth_fails_the_login_installs_nothing_and_leaves_no_copy() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("wrong", "right-password");
    // `required` (not requisite) pam_unix: the module's auth still runs with the wrong password.
    let svc = Service::new(
        "wrong",
        &format!(
            "auth     required  pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  optional  pam_keyinit.so force revoke\n\
             session  required  pam_unix.so\n\
             session  optional  MODULE {TEST_OPTIONS}\n"
        ),
    );
    let before = user.key_usage();
    let canary = "Wr0ng-Canary-Passw0rd-7f3e";
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}end\nscan {}\n",
            login(canary).replace("open\n", ""),
            hex(canary)
        ),
    );
    assert_eq!(
        t.codes("auth"),
        [7],
        "pam_unix must refuse (PAM_AUTH_ERR): {t}"
    );
    assert!(
        t.has("@@ scan 0 copies"),
        "a copy of the password outlived pam_end: {t}"
    );
    assert_eq!(user.key_usage(), before, "a key was installed");
    assert!(!user.home.join(".local/share/keyringrs").exists());
}

#[test]
fn without_pam_keyinit_the_login_succeeds_and_no_shared_keyring_gets_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("nokeyinit", "nokeyinit-pw");
    let svc = Service::new(
        "nokeyinit",
        &format!(
            "auth     requisite pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  required  pam_unix.so\n\
             session  optional  MODULE {TEST_OPTIONS}\n"
        ),
    );
    let before = user.key_usage();
    let t = drive(
        &svc,
        &user.name,
        &format!("{}run keyctl show @s\nclose\nend\n", login("nokeyinit-pw")),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(
        !t.out.contains("keyringrs:"),
        "a key was placed in a shared keyring: {t}"
    );
    assert_eq!(user.key_usage().0, before.0, "{t}");
    assert_logged(&log, &svc, "pam_keyinit must run before pam_keyringrs");
}

#[test]
fn a_store_dir_symlinked_to_a_root_file_is_refused_and_the_target_untouched() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("symlink", "symlink-pw");
    let svc = Service::standard("symlink", "");
    let target = TempDir::new("pam-symlink-target");
    let file = target.path().join("root-file");
    std::fs::write(&file, b"root's bytes\n").unwrap();
    let share = user.home.join(".local/share");
    std::fs::create_dir_all(&share).unwrap();
    chown_tree(&user.home.join(".local"), user.uid, user.gid);
    std::os::unix::fs::symlink(&file, share.join("keyringrs")).unwrap();
    let t = drive(
        &svc,
        &user.name,
        &format!("{}close\nend\n", login("symlink-pw")),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(std::fs::read(&file).unwrap(), b"root's bytes\n");
    assert_eq!(files_under(target.path()), vec![file.clone()]);
    assert_logged(&log, &svc, "symbolic link");

    // A parent directory symlinked to a directory only root may write: the store would be
    // created there if the module wrote as root; as the user it cannot.
    let rootdir = target.path().join("root-dir");
    std::fs::create_dir(&rootdir).unwrap();
    std::fs::set_permissions(&rootdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(share.join("keyringrs")).unwrap();
    std::fs::remove_dir(&share).unwrap();
    std::os::unix::fs::symlink(&rootdir, &share).unwrap();
    let t = drive(
        &svc,
        &user.name,
        &format!("{}close\nend\n", login("symlink-pw")),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(
        std::fs::read_dir(&rootdir).unwrap().count(),
        0,
        "written as root"
    );
    let root_owned: Vec<_> = files_under(&user.home)
        .into_iter()
        .filter(|f| {
            std::fs::symlink_metadata(f)
                .map(|m| m.uid() == 0)
                .unwrap_or(false)
        })
        // The test's own: the copy of keyringrs and the planted symlink.
        .filter(|f| f != &user.home.join("keyringrs") && f != &share)
        .collect();
    assert!(root_owned.is_empty(), "created as root: {root_owned:?}");
    assert_logged(&log, &svc, "Permission denied");
}

#[test]
fn another_uid_in_the_same_session_cannot_read_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("owner", "owner-pw");
    let other = ThrowawayUser::new("other");
    let svc = Service::standard("otheruid", "");
    let shared = TempDir::new("pam-otheruid");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let serial = shared.path().join("serial");
    let id = shared.path().join("id");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf v | ./keyringrs set s u && echo {KEY_ID} > {i} && \
             keyctl search @s user $(cat {i}) > {s} && chmod 644 {s} {i} && echo id=$(cat {s})\n\
             runas {o} keyctl print $(cat {s}) || echo other-print-refused\n\
             runas {o} keyctl search @s user $(cat {i}) || echo other-search-refused\n\
             close\nend\n",
            login("owner-pw"),
            s = serial.display(),
            i = id.display(),
            o = other.name,
        ),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("id="), "{t}");
    assert!(
        t.has("other-print-refused") && t.has("other-search-refused"),
        "{t}"
    );
    assert!(t.has("Permission denied"), "{t}");
}

#[test]
fn two_hundred_logins_leave_the_key_quota_where_it_started() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("cycles", "cycles-pw");
    let svc = Service::standard("cycles", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf v | ./keyringrs set s u\nclose\nend\n",
            login("cycles-pw")
        ),
    );
    assert_eq!(t.codes("run"), [0], "{t}");
    wait_for_key_usage_at_most(user.uid, 0);
    let before = user.key_usage();
    let cycle = format!("auth {}\nopen\nclose\nend\n", hex("cycles-pw"));
    let t = drive(&svc, &user.name, &cycle.repeat(200));
    assert_eq!(t.codes("open"), vec![0; 200], "{t}");
    assert_eq!(t.codes("close"), vec![0; 200], "{t}");
    wait_for_key_usage_at_most(user.uid, before.0);
    assert_eq!(user.key_usage(), before);
}

#[test]
fn home_and_store_variables_in_the_environment_are_ignored() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("env", "env-pw");
    let svc = Service::standard("env", "");
    let decoy = TempDir::new("pam-env-decoy");
    let steps: String = ["HOME", "KEYRINGRS_STORE", "XDG_DATA_HOME"]
        .iter()
        .map(|v| format!("putenv {v}={}/{v}\n", decoy.path().display()))
        .collect();
    let t = drive(
        &svc,
        &user.name,
        &format!("{steps}{}close\nend\n", login("env-pw")),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(default_store(&user).join("header").exists(), "{t}");
    assert!(files_under(decoy.path()).is_empty());
}

#[test]
fn a_full_key_quota_leaves_the_login_working() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("quota", "quota-pw");
    // Between pam_keyinit and the module, fill the user's key quota in the new session keyring.
    let filler = TempDir::new("pam-quota");
    let script = filler.path().join("fill");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec setpriv --reuid=\"$PAM_USER\" --regid=\"$(id -g \"$PAM_USER\")\" \
         --clear-groups sh -c 'i=0; while keyctl add user filler$i x @s >/dev/null 2>&1; do \
         i=$((i+1)); done'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc = Service::new(
        "quota",
        &format!(
            "auth     requisite pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  optional  pam_keyinit.so force revoke\n\
             session  required  pam_unix.so\n\
             session  optional  pam_exec.so {}\n\
             session  optional  MODULE {TEST_OPTIONS}\n",
            script.display()
        ),
    );
    let t = drive(
        &svc,
        &user.name,
        &format!("{}{}close\nend\n", login("quota-pw"), get_step("s", "u")),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("run"), [3], "{t}");
    assert_logged(&log, &svc, "quota exceeded");
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
    let user = login_user("canary", pw1);
    let svc = Service::standard("canary", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf {secret} | ./keyringrs set s u\nclose\nend\nruid\nchauthtok {} {}\nend\n",
            login(pw1),
            hex(pw1),
            hex(pw2)
        ),
    );
    assert_eq!(t.codes("chauthtok"), [0], "{t}");
    set_password(&user, pw1);
    let t = drive(&svc, &user.name, &format!("{}close\nend\n", login(pw1)));
    assert!(t.has("@@ info:"), "{t}");
    let lines = log.lines(&svc);
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

/// docs/THREAT-MODEL.md "planted files": while logins create and open the store, another
/// process keeps swapping the store's parent directory for a symlink to a directory only root may
/// write. Whatever the interleaving, the module (acting as the user) never writes there.
#[test]
fn a_symlink_swapped_in_during_logins_never_makes_the_module_write_outside() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("race", "race-pw");
    let svc = Service::standard("race", "");
    let target = TempDir::new("pam-race-target");
    let rootdir = target.path().join("root-dir");
    std::fs::create_dir(&rootdir).unwrap();
    std::fs::set_permissions(&rootdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let local = user.home.join(".local");
    std::fs::create_dir_all(&local).unwrap();
    chown_tree(&local, user.uid, user.gid);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, local, rootdir) = (Arc::clone(&stop), local.clone(), rootdir.clone());
        std::thread::spawn(move || {
            let share = local.join("share");
            let mut swaps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Move whatever is there away (the module's directory or our link), plant the
                // link, give the module a moment to meet it.
                let _ = std::fs::rename(&share, local.join(format!("moved-{swaps}")));
                let _ = std::os::unix::fs::symlink(&rootdir, &share);
                std::thread::sleep(std::time::Duration::from_micros(200));
                swaps += 1;
            }
            swaps
        })
    };
    let cycle = format!("auth {}\nopen\nclose\nend\n", hex("race-pw"));
    let t = drive(&svc, &user.name, &cycle.repeat(30));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert_eq!(t.codes("open"), vec![0; 30], "{t}");
    assert!(swaps > 30, "the racer swapped only {swaps} times");
    assert_eq!(
        std::fs::read_dir(&rootdir).unwrap().count(),
        0,
        "written as root"
    );
}

/// Shell for a `run` step in a login: start a session bus and keyringrs-secret-service (a copy
/// in the user's home, see `copy_secret_service`), wait until it owns org.freedesktop.secrets.
const START_SECRET_SERVICE: &str = "dbus-daemon --session --fork --print-address=3 \
    --print-pid=4 3>bus-addr 4>bus-pid >/dev/null 2>&1 && \
    (DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) ./keyringrs-secret-service >ss.log 2>&1 &) && \
    for i in $(seq 100); do DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) dbus-send --session \
    --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null \
    | grep -q true && break; sleep 0.1; done";

/// `secret-tool lookup service S username U` on that bus, in `$(...)`.
const LOOKUP: &str =
    "DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) timeout 20 secret-tool lookup service S username U";

/// ... and stop that bus and daemon.
const STOP_SECRET_SERVICE: &str =
    "kill $(cat bus-pid) 2>/dev/null; pkill -u $(id -u) keyringrs-secre; true";

fn copy_secret_service(user: &ThrowawayUser) {
    let daemon = target_dir().join("keyringrs-secret-service");
    assert!(
        daemon.exists(),
        "{} missing: cargo build --workspace",
        daemon.display()
    );
    std::fs::copy(&daemon, user.home.join("keyringrs-secret-service")).unwrap();
}

/// Issue 8's promise, end to end: a user who logs in through the PAM module can read with
/// `secret-tool` (over keyringrs-secret-service on the session's D-Bus) what `keyringrs set`
/// stored, and gets nothing after logout.
#[test]
fn secret_tool_reads_the_login_unlocked_store_and_nothing_after_logout() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("sstool", "sstool-pw");
    copy_secret_service(&user);
    let svc = Service::standard("sstool", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf tok-from-cli | ./keyringrs set S U && {START_SECRET_SERVICE} && \
             echo \"in-session=[$({LOOKUP})]\"\n\
             close\nrun echo \"after-logout=[$({LOOKUP} 2>/dev/null)]\"; {STOP_SECRET_SERVICE}\nend\n",
            login("sstool-pw"),
        ),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("in-session=[tok-from-cli]"), "{t}");
    assert!(t.has("after-logout=[]"), "{t}");
}

/// `scope=user`: the key goes into the user's own `@u` (not root's, though the module runs as
/// root), so the user's processes outside the login session find it; close still locks it.
#[test]
fn scope_user_puts_the_key_in_the_users_own_user_keyring() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("scopeu", "scopeu-pw");
    let svc = Service::standard("scopeu", "scope=user");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf v | ./keyringrs set s u && keyctl search @u user {KEY_ID} >/dev/null \
             && echo in-users-keyring\n\
             run keyctl session - sh -c './keyringrs get s u; echo \" outside=$?\"'\n\
             close\nrun keyctl session - sh -c './keyringrs get s u; echo \" after=$?\"'\nend\n",
            login("scopeu-pw")
        ),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("in-users-keyring"), "{t}");
    assert!(
        t.has("v outside=0"),
        "a process outside the session must find it: {t}"
    );
    assert!(t.has(" after=3"), "close must lock it: {t}");
}

/// The module acts as the user (`libkeyring::sys::creds::AsUser`) and then hands the thread back
/// to the PAM application: every id and every effective capability must be as before, because a
/// later module needs them (pam_unix writing /etc/shadow needs CAP_CHOWN; a lost one made a
/// passwd after a session in the same process fail).
#[test]
fn acting_as_the_user_and_back_leaves_root_exactly_as_it_was() {
    use libkeyring::keyring::Keyring;
    use libkeyring::sys::creds::{self, AsRealUser, AsUser};
    require_root!("switches credentials to a throwaway user");
    let user = ThrowawayUser::new("creds");
    let dir = TempDir::new("pam-creds");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::thread::scope(|t| {
        t.spawn(|| {
            // Uid/Gid lines: real, effective, saved, fs. Credentials are per thread.
            let status = || -> Vec<String> {
                std::fs::read_to_string("/proc/thread-self/status")
                    .unwrap()
                    .lines()
                    .filter(|l| {
                        ["Uid:", "Gid:", "Groups:", "CapEff:", "CapPrm:"]
                            .iter()
                            .any(|k| l.starts_with(k))
                    })
                    .map(str::to_owned)
                    .collect()
            };
            // An application that runs without CAP_DAC_OVERRIDE (dropped from its effective set,
            // still permitted) must get it back no more than it had: the kernel raises the
            // permitted file capabilities again when the fsuid returns to 0.
            drop_effective_cap(CAP_DAC_OVERRIDE);
            let before = status();
            assert!(!cap_eff_has(&before, CAP_DAC_OVERRIDE), "{before:?}");
            let account = creds::account(&user.name).unwrap();
            assert_eq!(
                (account.uid, account.home.clone()),
                (user.uid, user.home.clone())
            );
            {
                let _as_user = AsUser::enter(&account).unwrap();
                let now = status();
                let u = user.uid;
                // Only the fs ids: the real uid stays root's, so the user cannot signal us.
                assert_eq!(now[0], format!("Uid:\t0\t0\t0\t{u}"), "{now:?}");
                let denied = std::fs::write(dir.path().join("as-user"), b"x").unwrap_err();
                assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
                {
                    let _real = AsRealUser::enter(&account).unwrap();
                    let now = status();
                    assert_eq!(now[0], format!("Uid:\t{u}\t0\t0\t{u}"), "{now:?}");
                    // The user keyring is the user's own (the kernel picks it by the real uid).
                    let d = Keyring::User.describe().unwrap();
                    assert_eq!((d.description, d.uid), (format!("_uid.{u}"), u));
                }
                assert_eq!(status()[0], format!("Uid:\t0\t0\t0\t{u}"));
                let denied = std::fs::write(dir.path().join("as-user"), b"x").unwrap_err();
                assert_eq!(denied.kind(), std::io::ErrorKind::PermissionDenied);
            }
            let after = status();
            assert_eq!(after, before, "credentials not restored");
            assert!(
                !cap_eff_has(&after, CAP_DAC_OVERRIDE),
                "CAP_DAC_OVERRIDE raised again: {after:?}"
            );
            let f = dir.path().join("as-root");
            std::fs::write(&f, b"x").unwrap();
            std::os::unix::fs::chown(&f, Some(user.uid), None).expect("CAP_CHOWN is back");
        });
    });
}

const CAP_DAC_OVERRIDE: u32 = 1;

/// Remove `cap` from the calling thread's effective set (capget/capset, version 3, pid 0: this
/// thread only); it stays permitted.
fn drop_effective_cap(cap: u32) {
    const VERSION_3: u32 = 0x2008_0522;
    let mut header = [VERSION_3, 0u32];
    // Two __user_cap_data_struct: (effective, permitted, inheritable) x (caps 0-31, 32-63).
    let mut data = [[0u32; 3]; 2];
    #[allow(unsafe_code)]
    // SAFETY: header and data have the layout capget/capset of version 3 read and write.
    let rc = unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[(cap / 32) as usize][0] &= !(1 << (cap % 32));
    #[allow(unsafe_code)]
    // SAFETY: as above; capset only reads data and changes the calling thread.
    let rc = unsafe { libc::syscall(libc::SYS_capset, header.as_mut_ptr(), data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

/// Whether the CapEff line among `status` lines has `cap`.
fn cap_eff_has(status: &[String], cap: u32) -> bool {
    let hex = status
        .iter()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .expect("CapEff line")
        .trim();
    u64::from_str_radix(hex, 16).expect("CapEff hex") & (1 << cap) != 0
}

/// A user whose passwd entry names a relative home (a broken or hand-edited /etc/passwd; usermod
/// refuses it, so the line is edited here under lckpwdf) still logs in; the module creates no
/// store anywhere and says why.
#[test]
fn a_user_with_a_relative_home_logs_in_and_no_store_is_created() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let user = login_user("relhome", "relhome-pw");
    // Dropped before the user: userdel must see the absolute home again.
    let _home = PasswdHome::set(&user, "relative/home");
    let svc = Service::standard("relhome", "");
    let t = drive(
        &svc,
        &user.name,
        &format!("{}{}close\nend\n", login("relhome-pw"), get_step("S", "U")),
    );
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("close"), [0], "{t}");
    // The driver runs in the test's directory; its commands fall back to / (no home).
    let cwd = std::env::current_dir().unwrap();
    for base in [cwd.as_path(), Path::new("/"), user.home.as_path()] {
        assert!(!base.join("relative").exists(), "{}", base.display());
    }
    assert!(!default_store(&user).exists());
    assert!(!user.home.join(".local").exists());
    assert_logged(&log, &svc, "no absolute home directory");
}

/// The home field of a user's /etc/passwd line, set to something useradd/usermod refuse and put
/// back on drop.
struct PasswdHome {
    name: String,
    home: String,
}

impl PasswdHome {
    fn set(user: &ThrowawayUser, home: &str) -> PasswdHome {
        edit_passwd_home(&user.name, home);
        PasswdHome {
            name: user.name.clone(),
            home: user.home.display().to_string(),
        }
    }
}

impl Drop for PasswdHome {
    fn drop(&mut self) {
        edit_passwd_home(&self.name, &self.home);
    }
}

/// Rewrite the home field of `name`'s /etc/passwd line, holding the lock useradd, userdel and
/// chpasswd take (lckpwdf), through a new file renamed over the old one.
fn edit_passwd_home(name: &str, home: &str) {
    #[allow(unsafe_code)]
    mod shadow {
        extern "C" {
            pub fn lckpwdf() -> libc::c_int;
            pub fn ulckpwdf() -> libc::c_int;
        }
    }
    #[allow(unsafe_code)]
    // SAFETY: glibc's lckpwdf takes no arguments; it waits up to 15 s for /etc/.pwd.lock.
    let locked = unsafe { shadow::lckpwdf() } == 0;
    assert!(locked, "lckpwdf: {}", std::io::Error::last_os_error());
    let text = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.len() == 7 && f[0] == name {
                found = true;
                f[5] = home;
                f.join(":")
            } else {
                l.to_owned()
            }
        })
        .collect();
    let tmp = Path::new("/etc/passwd.krt-tmp");
    let written = std::fs::write(tmp, lines.join("\n") + "\n")
        .and_then(|()| std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(tmp, "/etc/passwd"));
    #[allow(unsafe_code)]
    // SAFETY: releases the lock taken above.
    unsafe {
        shadow::ulckpwdf();
    }
    written.expect("rewrite /etc/passwd");
    assert!(found, "{name} not in /etc/passwd");
}

// ---- Logins that overlap: desktops, the user manager, text logins (docs/PAM.md "Lifetime") ----

/// A user with a display-manager-like service and the user manager's session opened: the
/// setting of every desktop test.
struct Desktop {
    user: ThrowawayUser,
    password: String,
    gdm: Service,
    _um: Service,
    /// A process of the user manager's session (an app, a terminal, the Secret Service).
    m: Live,
}

impl Desktop {
    fn new(tag: &str) -> Desktop {
        let password = format!("{tag}-pw");
        let user = login_user(tag, &password);
        let gdm = Service::standard(tag, "");
        let um = user_manager_service(&format!("{tag}-um"));
        let m = user_manager(&um, &user);
        Desktop {
            user,
            password,
            gdm,
            _um: um,
            m,
        }
    }

    /// A graphical login of the user, open.
    fn login(&self) -> Live {
        let mut g = Live::start(&self.gdm, &self.user.name);
        g.login(&self.password, true);
        g
    }

    /// A graphical login that stores `value` for (S, U).
    fn login_and_set(&self, value: &str) -> Live {
        let mut g = self.login();
        let t = g.step(&format!("run printf {value} | ./keyringrs set S U"));
        assert_eq!(t.codes("run"), [0], "{t}");
        g
    }
}

#[test]
fn a_graphical_login_unlocks_for_the_user_manager_session_until_it_closes() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("gdm");
    let mut g = d.login_and_set("desk");
    assert_eq!(d.m.get("S", "U"), (0, "desk".into()));
    let t = d.m.step("run ./keyringrs status");
    assert!(t.has("held by: graphical login"), "{t}");
    assert!(t.has("the user keyring (@u)"), "{t}");
    g.close();
    assert_eq!(d.m.get("S", "U").0, 3, "the last graphical logout locks it");
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

#[test]
fn overlapping_graphical_logins_lock_only_when_the_last_closes_in_either_order() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("overlap");
    for first_closes_first in [true, false] {
        let mut a = d.login_and_set("v");
        let mut b = d.login();
        let (first, second) = if first_closes_first {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        first.close();
        assert_eq!(
            d.m.get("S", "U"),
            (0, "v".into()),
            "one login still holds it"
        );
        assert_eq!(second.get("S", "U"), (0, "v".into()));
        second.close();
        assert_eq!(d.m.get("S", "U").0, 3, "the last close locks it");
    }
}

#[test]
fn a_text_login_during_a_desktop_session_reads_and_its_logout_leaves_the_desktop_unlocked() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("mixed");
    let ssh = Service::standard("mixed-t", "");
    let mut g = d.login_and_set("v");
    let mut t = Live::start(&ssh, &d.user.name);
    t.login(&d.password, false);
    assert_eq!(t.get("S", "U"), (0, "v".into()));
    let s = t.step("run ./keyringrs status");
    assert!(s.has("this login's session keyring (@s)"), "{s}");
    t.close();
    assert_eq!(
        d.m.get("S", "U"),
        (0, "v".into()),
        "the desktop stays unlocked"
    );
    // The other order: the text login outlives the desktop and keeps its own key.
    let mut t = Live::start(&ssh, &d.user.name);
    t.login(&d.password, false);
    g.close();
    assert_eq!(d.m.get("S", "U").0, 3, "the desktop's close locked @u");
    assert_eq!(
        t.get("S", "U"),
        (0, "v".into()),
        "the text login has its own key"
    );
    t.close();
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

#[test]
fn a_killed_graphical_login_stops_holding_the_store_at_the_next_logout() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("killed");
    // Killed while another login holds it too: the other's logout locks.
    let a = d.login_and_set("v");
    let mut b = d.login();
    a.kill();
    wait_until_a_holder_is_gone(&mut d.m);
    assert_eq!(d.m.get("S", "U"), (0, "v".into()));
    b.close();
    assert_eq!(
        d.m.get("S", "U").0,
        3,
        "a dead holder must not keep it open"
    );
    // Killed alone, the store stays open (nobody closed); the next login's logout locks it.
    d.login().kill();
    wait_until_a_holder_is_gone(&mut d.m);
    assert_eq!(d.m.get("S", "U"), (0, "v".into()));
    d.login().close();
    assert_eq!(d.m.get("S", "U").0, 3);
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

/// A killed login stops holding the store at the next close of any login, at once, however long
/// its session keyring lives on: here a process it started outside its process group (`setsid`,
/// as a daemon or a `nohup` job does) keeps that keyring alive for good, so only the dead opener
/// (the process that ran the PAM session, killed; also while still an unreaped zombie) tells.
#[test]
fn a_killed_graphical_login_stops_holding_the_store_at_once_whatever_keeps_its_keyring() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("escaped");
    for reaped in [true, false] {
        let mut a = d.login_and_set("v");
        let t = a.step("run setsid sleep 600 </dev/null >/dev/null 2>&1 &");
        assert_eq!(t.codes("run"), [0], "{t}");
        // Unreaped, the driver stays a zombie until this is dropped.
        let _zombie = if reaped {
            a.kill();
            None
        } else {
            a.kill_unreaped();
            Some(a)
        };
        let s = d.m.step("run ./keyringrs status");
        assert!(
            s.has("(gone;"),
            "its opener is dead, its keyring alive: {s}"
        );
        // Another login opens and closes at once, before any reaping could have helped.
        d.login().close();
        assert_eq!(
            d.m.get("S", "U").0,
            3,
            "a login killed without close kept the store open (reaped: {reaped})"
        );
    }
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

/// Nobody closes after the only holder is killed: the Secret Service daemon of the user's
/// session notices within its sweep (5 s) that no live login holds the store, and locks it.
#[test]
fn the_secret_service_daemon_locks_a_store_whose_only_holder_was_killed() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("abandon");
    copy_secret_service(&d.user);
    let mut a = d.login_and_set("v");
    let t = a.step("run setsid sleep 600 </dev/null >/dev/null 2>&1 &");
    assert_eq!(t.codes("run"), [0], "{t}");
    let t = d.m.step(&format!(
        "run {START_SECRET_SERVICE}; echo \"open=[$({LOOKUP})]\""
    ));
    assert!(t.has("open=[v]"), "{t}");
    a.kill();
    let mut locked = false;
    for _ in 0..150 {
        if d.m.get("S", "U").0 == 3 {
            locked = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let t = d.m.step(&format!("run cat ss.log; {STOP_SECRET_SERVICE}"));
    assert!(locked, "the store stayed open with no live holder: {t}");
    assert!(t.has("every login that held it open is gone"), "{t}");
}

/// The kernel reaps a dead login's session keyring once the last reference to it (the exited
/// processes' credentials, freed after an RCU grace period) is gone: `keyringrs status` then
/// shows that holder as gone.
fn wait_until_a_holder_is_gone(m: &mut Live) {
    for _ in 0..100 {
        let s = m.step("run ./keyringrs status");
        if s.has("(gone;") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the killed login's session keyring was never reaped");
}

#[test]
fn keyringrs_lock_from_one_session_locks_every_login() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("lockall");
    let mut a = d.login_and_set("v");
    let mut b = d.login();
    assert_eq!(d.m.step("run ./keyringrs lock").codes("run"), [0]);
    assert_eq!(d.m.get("S", "U").0, 3);
    assert_eq!(a.get("S", "U").0, 3);
    assert_eq!(b.get("S", "U").0, 3);
    let s = d.m.step("run ./keyringrs status");
    assert!(!s.has("held by:"), "{s}");
    a.close();
    b.close();
}

/// Debian's lightdm and xdm stacks have no pam_keyinit: a graphical login there gets a session
/// keyring of its own from the module and still unlocks for the user manager.
#[test]
fn a_graphical_login_in_a_stack_without_pam_keyinit_still_unlocks() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("nokeyinit", "nokeyinit-pw");
    let xdm = Service::new(
        "nokeyinit",
        &format!(
            "auth     requisite pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  required  pam_unix.so\n\
             session  optional  MODULE {TEST_OPTIONS}\n"
        ),
    );
    let um = user_manager_service("nokeyinit-um");
    let mut m = user_manager(&um, &user);
    let mut x = Live::start(&xdm, &user.name);
    // xdm tells only by PAM_TTY: the X display.
    assert_eq!(x.step("tty :0").codes("tty"), [0]);
    x.login("nokeyinit-pw", false);
    assert_eq!(
        x.step("run printf v | ./keyringrs set S U").codes("run"),
        [0]
    );
    assert_eq!(m.get("S", "U"), (0, "v".into()));
    x.close();
    assert_eq!(m.get("S", "U").0, 3);
}

/// `secret-tool` from the user manager's session (where desktop apps and the D-Bus-activated
/// daemon live) finds the secret while the display-manager login is open, nothing after.
#[test]
fn secret_tool_in_the_user_manager_session_follows_the_graphical_login() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("dmss");
    copy_secret_service(&d.user);
    let mut g = d.login_and_set("tok");
    let t = d.m.step(&format!(
        "run {START_SECRET_SERVICE}; echo \"open=[$({LOOKUP})]\""
    ));
    assert!(t.has("open=[tok]"), "{t}");
    g.close();
    let t = d.m.step(&format!(
        "run echo \"after=[$({LOOKUP} 2>/dev/null)]\"; {STOP_SECRET_SERVICE}"
    ));
    assert!(t.has("after=[]"), "{t}");
}

// ---- Security review (issue 17) ----

/// Who can get the master key of a text login's session-scope key, read straight from
/// /proc/keys by serial: the login's own processes, yes; the same user outside the login (a cron
/// job, another login), no; another uid that holds the login's session keyring (plain `su`
/// without pam_keyinit), no.
#[test]
fn only_the_logins_own_processes_can_read_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("isolate", "isolate-pw");
    let other = ThrowawayUser::new("isolate-o");
    let svc = Service::standard("isolate", "");
    let mut t = Live::start(&svc, &user.name);
    t.login("isolate-pw", false);
    let serial_cmd = "awk '$9 ~ /^keyringrs:/ {print $1}' /proc/keys | head -1";
    let s = t.step(&format!(
        "run s=$(printf '%d' 0x$({serial_cmd})); echo serial=$s; keyctl pipe $s | wc -c"
    ));
    let serial = s
        .out
        .lines()
        .find_map(|l| l.strip_prefix("serial="))
        .expect("the login sees its key in /proc/keys")
        .to_owned();
    assert!(s.has("32\n"), "the login itself reads 32 bytes: {s}");
    // The same user, outside the login: sees the key in /proc/keys, cannot read it.
    let mut c = user.command("keyctl");
    c.args([
        "session",
        "-",
        "sh",
        "-c",
        &format!("grep -c keyringrs: /proc/keys; keyctl pipe {serial}; echo rc=$?"),
    ]);
    let o = run(c, b"");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.starts_with('1'), "visible in /proc/keys: {out}");
    assert!(out.contains("rc=1"), "{out}");
    assert!(err.contains("Permission denied"), "{err}");
    // Another uid that holds the login's session keyring (runas keeps the driver's keyring).
    let s = t.step(&format!(
        "runas {} echo other-read=$(keyctl pipe {serial} 2>/dev/null | wc -c) \
         other-sees=$(grep -c keyringrs: /proc/keys)",
        other.name
    ));
    assert!(
        s.has("other-read=0 other-sees=0"),
        "another uid gets nothing: {s}"
    );
    t.close();
}

/// A user process holding the store's lock (flock -x on the store directory) cannot hang a
/// login: session open gives up on what needs the lock within its bound, and the login goes on.
#[test]
fn a_held_store_lock_never_hangs_a_login() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("held", "held-pw");
    let svc = Service::standard("held", "");
    // The first login creates the store.
    let t = drive(
        &svc,
        &user.name,
        &format!("{}close\nend\n", login("held-pw")),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    let store = default_store(&user);
    let mut holder = user.command("flock");
    holder
        .args(["-x"])
        .arg(&store)
        .args(["sleep", "60"])
        .stdin(std::process::Stdio::null());
    let mut holder = holder.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started = std::time::Instant::now();
    // kdf_memory=512 (above the store's 256) makes unlock want a KDF upgrade, which needs the lock.
    let upgrade = Service::standard("held-up", "kdf_memory=512");
    let t = drive(
        &upgrade,
        &user.name,
        &format!("{}{}close\nend\n", login("held-pw"), get_step("none", "x")),
    );
    let took = started.elapsed();
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("run"), [4], "unlocked, no such entry: {t}");
    // A first login whose store directory someone holds locked: init gives up, login goes on.
    let user2 = login_user("held2", "held2-pw");
    let dir2 = default_store(&user2);
    let mut mk = user2.command("mkdir");
    mk.arg("-p").arg(&dir2);
    assert_exit(&run(mk, b""), 0);
    let mut holder2 = user2.command("flock");
    holder2
        .args(["-x"])
        .arg(&dir2)
        .args(["sleep", "60"])
        .stdin(std::process::Stdio::null());
    let mut holder2 = holder2.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let started2 = std::time::Instant::now();
    let svc2 = Service::standard("held2", "");
    let t2 = drive(
        &svc2,
        &user2.name,
        &format!("{}close\nend\n", login("held2-pw")),
    );
    let took2 = started2.elapsed();
    let _ = holder.kill();
    let _ = holder2.kill();
    let _ = holder.wait();
    let _ = holder2.wait();
    assert_eq!(t2.codes("open"), [0], "{t2}");
    assert!(
        took < std::time::Duration::from_secs(10) && took2 < std::time::Duration::from_secs(10),
        "logins took {took:?} and {took2:?} with the store lock held"
    );
    assert!(!dir2.join("header").exists(), "init gave up while busy");
}

/// Programs that only authenticate (sudo, polkit, screen lockers: common-auth, no session with
/// the module) keep no copy of the password in their memory after pam_authenticate.
#[test]
fn an_application_that_only_authenticates_keeps_no_copy_of_the_password() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("sudo", "sudo-secret-pw");
    let sudo = Service::new(
        "sudo",
        &format!(
            "auth     requisite pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  required  pam_unix.so\n"
        ),
    );
    let t = drive(
        &sudo,
        &user.name,
        &format!(
            "auth {}\nscan {}\nend\n",
            hex("sudo-secret-pw"),
            hex("sudo-secret-pw")
        ),
    );
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert!(t.has("@@ scan 0 copies"), "{t}");
}

/// OpenSSH's keyboard-interactive method runs pam_authenticate in a forked child; only the
/// result reaches the process that opens the session. The password still unlocks the store.
#[test]
fn an_auth_in_a_forked_child_still_unlocks_the_store_at_session_open() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("kbdint", "kbdint-pw");
    let svc = Service::standard("kbdint", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "env KEYRINGRS_KDF_MEMORY={TEST_KDF_MEMORY}\nenv KEYRINGRS_KDF_TIME={TEST_KDF_TIME}\n\
             forkauth {}\nopen\nrun printf v | ./keyringrs set S U\n{}close\nend\n",
            hex("kbdint-pw"),
            get_step("S", "U")
        ),
    );
    assert_eq!(t.codes("forkauth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("value=v"), "{t}");
    assert!(default_store(&user).join("header").exists());
}

/// While Argon2id runs (the long part of session open), the process keeps root's real uid, so
/// the user cannot stop or kill the login daemon (kill -0 as the user: EPERM).
#[test]
fn the_user_cannot_signal_the_login_process_during_the_key_derivation() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("signal", "signal-pw");
    // The default Argon2id (64 MiB, t=3): a window of a few hundred milliseconds.
    let svc = Service::standard("signal", "kdf_memory=65536 kdf_time=3");
    let mut l = Live::start(&svc, &user.name);
    let pid = l.pid;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let stop = Arc::clone(&stop);
        let mut c = user.command("python3");
        c.args([
            "-c",
            &format!(
                "import os,sys\nok=tot=0\nwhile not os.path.exists('/proc/{pid}/stop-probe') and tot<3000000:\n \
                 tot+=1\n try:\n  os.kill({pid},0); ok+=1\n except PermissionError: pass\n \
                 if sys.stdin in __import__('select').select([sys.stdin],[],[],0)[0]: break\nprint(ok,tot)"
            ),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
        let child = c.spawn().unwrap();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            child
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(200));
    l.login("signal-pw", false);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut child = probe.join().unwrap();
    {
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(b"x\n");
    }
    let o = child.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    let nums: Vec<u64> = out
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    assert_eq!(nums.len(), 2, "{out}");
    let (ok, total) = (nums[0], nums[1]);
    assert!(total > 1000, "the probe ran: {out}");
    // The real uid is the user's only around a few keyring calls (microseconds).
    assert!(
        ok * 100 < total,
        "the user could signal the login process {ok} times in {total} tries"
    );
    l.close();
}

/// The first login of a user who has a gnome-keyring login keyring that opens with the login
/// password brings its items over in the same session open; a keyring with another password is
/// left alone (the login goes on, the user is told how to import it).
#[test]
fn the_first_login_imports_the_gnome_keyring_login_keyring() {
    use keyringrs_tests::gnome::{make_keyring, sample, GK_PASSWORD};
    require_root!("creates users and /etc/pam.d services");
    // After the login, secret-tool over keyringrs-secret-service finds every item by its own
    // attributes, with the same secret as in gnome-keyring.
    let mut lookups = String::new();
    for (i, (_, attrs, _)) in sample().iter().enumerate() {
        let query: Vec<String> = attrs.iter().map(|(k, v)| format!("'{k}' '{v}'")).collect();
        lookups.push_str(&format!(
            " echo \"item{i}=[$(LC_ALL=C.UTF-8 DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) timeout 20 secret-tool \
             lookup {})]\";",
            query.join(" ")
        ));
    }
    let gk_dir = TempDir::new("pam-gk");
    let gk = make_keyring(&gk_dir);
    let svc = Service::standard("gkimport", "");
    for (tag, login_password, imported) in [
        ("gkimp", GK_PASSWORD, true),
        ("gkother", "another-login-pw", false),
    ] {
        let user = login_user(tag, login_password);
        copy_secret_service(&user);
        let keyrings = user.home.join(".local/share/keyrings");
        std::fs::create_dir_all(&keyrings).unwrap();
        let file = keyrings.join("login.keyring");
        std::fs::copy(gk.keyring_file(), &file).unwrap();
        let before = std::fs::read(&file).unwrap();
        let o = std::process::Command::new("chown")
            .args(["-R", &format!("{0}:{0}", user.name)])
            .arg(user.home.join(".local"))
            .status()
            .unwrap();
        assert!(o.success());
        let t = drive(
            &svc,
            &user.name,
            &format!(
                "{}{}run ./keyringrs list | wc -l\nrun {START_SECRET_SERVICE};{lookups} \
                 {STOP_SECRET_SERVICE}\nclose\nend\n",
                login(login_password),
                get_step("svc.example", "alice")
            ),
        );
        assert_eq!(t.codes("open"), [0], "{t}");
        if imported {
            assert!(t.has("value=alice's token"), "{t}");
            assert!(t.has("\n4\n"), "every item came over: {t}");
            assert!(!t.has("@@ info:"), "{t}");
            for (i, (label, _, secret)) in sample().iter().enumerate() {
                let want = format!("item{i}=[{}]", String::from_utf8_lossy(secret));
                assert!(t.has(&want), "{label}: {want} in {t}");
            }
        } else {
            assert_eq!(t.codes("run")[0], 4, "nothing imported: {t}");
            assert!(
                t.has("@@ info: Your gnome-keyring login keyring does not open"),
                "{t}"
            );
        }
        assert_eq!(
            std::fs::read(&file).unwrap(),
            before,
            "the source is never modified"
        );
    }
}

/// The done-when of "never lose the store to a password": a user whose password an
/// administrator reset (chpasswd) and who forgot the old one gets every secret back with the
/// recovery key and one command; the next login unlocks with the new password.
#[test]
fn after_an_admin_reset_the_recovery_key_and_resync_bring_every_secret_back() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("recover", "forgotten-pw");
    let svc = Service::standard("recover", "");
    // First login: store created; the user adds a recovery key and a secret.
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf 'forgotten-pw\\n' | ./keyringrs recovery-key add --password-stdin > recovery.txt 2>/dev/null\n\
             run printf kept | ./keyringrs set s u\nclose\nend\n",
            login("forgotten-pw")
        ),
    );
    assert_eq!(t.codes("run"), [0, 0], "{t}");
    let key = std::fs::read_to_string(user.home.join("recovery.txt")).unwrap();
    assert_eq!(key.trim().len(), 71, "{key:?}");
    set_password(&user, "reset-by-admin");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}{}run (cat recovery.txt; printf 'reset-by-admin\\n') | ./keyringrs resync --recovery-key --password-stdin\n{}close\nend\n",
            login("reset-by-admin"),
            get_step("s", "u"),
            get_step("s", "u"),
        ),
    );
    assert!(t.has("@@ info: Your keyringrs secrets stay locked"), "{t}");
    assert_eq!(t.codes("run"), [3, 0, 0], "locked, resynced, read: {t}");
    assert!(t.has("value=kept"), "{t}");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}{}close\nend\n",
            login("reset-by-admin"),
            get_step("s", "u")
        ),
    );
    assert!(
        t.has("value=kept"),
        "the next login unlocks with the new password: {t}"
    );
    assert!(!t.has("@@ info:"), "{t}");
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
    let user = login_user("autologin", "login-pw");
    let svc = Service::standard("autologin-pw", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}run printf 'login-pw\\ndisk-passphrase\\n' | ./keyringrs slot add disk --pam --password-stdin\n\
             run printf 'login-pw\\nshared-pw\\n' | ./keyringrs slot add shared --password-stdin\n\
             run printf kept | ./keyringrs set s u\nclose\nend\n",
            login("login-pw")
        ),
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
        let t = drive(
            &stack,
            &user.name,
            &format!(
                "env KEYRINGRS_KDF_MEMORY={TEST_KDF_MEMORY}\nenv KEYRINGRS_KDF_TIME={TEST_KDF_TIME}\n\
                 auth 00\nopen\n{}close\nend\n",
                get_step("s", "u")
            ),
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

/// A store of format version 1 (the committed vector, as keyringrs 0.1 made it) is migrated to
/// version 2 by the first login, as the user, and keeps every secret.
#[test]
fn the_first_login_after_an_upgrade_migrates_a_version_1_store() {
    require_root!("creates users and /etc/pam.d services");
    let password = "correct horse battery staple";
    let user = login_user("migrate", password);
    let store = default_store(&user);
    copy_tree(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/store-v1"),
        &store,
    );
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_tree(&user.home.join(".local"), user.uid, user.gid);
    let svc = Service::standard("migrate", "");
    let t = drive(
        &svc,
        &user.name,
        &format!(
            "{}{}close\nend\n",
            login(password),
            get_step("example.org", "alice")
        ),
    );
    assert_eq!(t.codes("run"), [0], "{t}");
    assert!(t.has("value=hunter2"), "{t}");
    let header = std::fs::read(store.join("header")).unwrap();
    assert_eq!(u16::from_le_bytes([header[16], header[17]]), 2, "migrated");
    // What the migration wrote is the user's, private.
    for f in ["header", "index"] {
        let m = std::fs::metadata(store.join(f)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (user.uid, user.gid, 0o600),
            "{f}"
        );
    }
}
