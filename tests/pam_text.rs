//! Text logins through pam_keyringrs.so and real libpam (docs/PAM.md), as login, su or sshd run
//! them: the first login creates the store, the session uses it, logout locks it; the next
//! login unlocks it again, `scope=user`, an auth in a forked child, the Secret Service inside a
//! login, and what a first login brings over (a gnome-keyring login keyring, a version-1 store).
//! The harness (tests/pam/pam-driver.c against throwaway /etc/pam.d services, throwaway users,
//! the /dev/log collector) is keyringrs_tests::pam.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

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
    let l = Login::standard("first", "first-login-pw");
    let t = l.session(
        Steps::new()
            .set("example.org", "alice", "s3cret")
            .get("example.org", "alice"),
    );
    assert_eq!(t.codes("run"), [0, 0], "{t}");
    assert!(t.has("value=s3cret"), "{t}");
    assert_owned_private(&default_store(&l.user), &l.user);
    assert_owned_private(&l.user.home.join(".local/share"), &l.user);
    assert_logged(&log, &l.svc, "created store");
}

#[test]
fn logout_locks_the_store_and_removes_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let l = Login::standard("logout", "logout-pw");
    // The key id and serial are written down inside the session, checked after close.
    let t = l.drive(
        l.steps()
            .run(&format!(
                "printf v | ./keyringrs set s u && echo {KEY_ID} > key-id"
            ))
            .run("keyctl search @s user $(cat key-id) > serial && echo found")
            .close()
            .get("s", "u")
            .run("keyctl search @s user $(cat key-id) || echo gone-from-session")
            .run("keyctl describe $(cat serial) || echo key-invalidated"),
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
    assert_logged(&log, &l.svc, "locked the store of");
}

#[test]
fn a_second_login_unlocks_the_same_store() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("second", "second-pw");
    l.store("s", "u", "kept");
    let id = std::fs::read(default_store(&l.user).join("header")).unwrap();
    l.assert_reads("s", "u", "kept");
    assert_eq!(
        std::fs::read(default_store(&l.user).join("header")).unwrap(),
        id
    );
}

#[test]
fn two_hundred_logins_leave_the_key_quota_where_it_started() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("cycles", "cycles-pw");
    l.store("s", "u", "v");
    wait_for_key_usage_at_most(l.user.uid, 0);
    let before = l.user.key_usage();
    let t = l.cycles(200);
    assert_eq!(t.codes("open"), vec![0; 200], "{t}");
    assert_eq!(t.codes("close"), vec![0; 200], "{t}");
    wait_for_key_usage_at_most(l.user.uid, before.0);
    assert_eq!(l.user.key_usage(), before);
}

/// Issue 8's promise, end to end: a user who logs in through the PAM module can read with
/// `secret-tool` (over keyringrs-secret-service on the session's D-Bus) what `keyringrs set`
/// stored, and gets nothing after logout.
#[test]
fn secret_tool_reads_the_login_unlocked_store_and_nothing_after_logout() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("sstool", "sstool-pw");
    copy_secret_service(&l.user);
    let t = l.drive(
        l.steps()
            .run(&format!(
                "printf tok-from-cli | ./keyringrs set S U && {START_SECRET_SERVICE} && \
                 echo \"in-session=[$({LOOKUP})]\""
            ))
            .close()
            .run(&format!(
                "echo \"after-logout=[$({LOOKUP} 2>/dev/null)]\"; {STOP_SECRET_SERVICE}"
            )),
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
    let l = Login::new(
        "scopeu",
        "scopeu-pw",
        Service::standard("scopeu", "scope=user"),
    );
    let t = l.drive(
        l.steps()
            .run(&format!(
                "printf v | ./keyringrs set s u && keyctl search @u user {KEY_ID} >/dev/null \
                 && echo in-users-keyring"
            ))
            .run("keyctl session - sh -c './keyringrs get s u; echo \" outside=$?\"'")
            .close()
            .run("keyctl session - sh -c './keyringrs get s u; echo \" after=$?\"'"),
    );
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("in-users-keyring"), "{t}");
    assert!(
        t.has("v outside=0"),
        "a process outside the session must find it: {t}"
    );
    assert!(t.has(" after=3"), "close must lock it: {t}");
}

/// OpenSSH's keyboard-interactive method runs pam_authenticate in a forked child; only the
/// result reaches the process that opens the session. The password still unlocks the store.
#[test]
fn an_auth_in_a_forked_child_still_unlocks_the_store_at_session_open() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("kbdint", "kbdint-pw");
    let t = l.drive(
        Steps::new()
            .kdf()
            .step(&format!("forkauth {}", hex("kbdint-pw")))
            .open()
            .set("S", "U", "v")
            .get("S", "U")
            .close(),
    );
    assert_eq!(t.codes("forkauth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(t.has("value=v"), "{t}");
    assert!(default_store(&l.user).join("header").exists());
}

/// greetd's session worker calls `setsid()` between pam_authenticate and pam_open_session (its
/// session id changes in the same PAM handle): the password still unlocks the store. Found
/// under the real greetd in the VM test, where such a login stayed locked.
#[test]
fn a_new_session_id_between_auth_and_session_open_still_unlocks_the_store() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("setsid", "setsid-pw");
    let t = l.drive(
        Steps::new()
            .kdf()
            .auth("setsid-pw")
            .step("setsid")
            .open()
            .set("S", "U", "v")
            .get("S", "U")
            .close(),
    );
    assert_eq!(t.codes("setsid"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(
        t.has("value=v"),
        "the store must be unlocked after the setsid: {t}"
    );
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
            Steps::login(login_password)
                .get("svc.example", "alice")
                .run("./keyringrs list | wc -l")
                .run(&format!(
                    "{START_SECRET_SERVICE};{lookups} {STOP_SECRET_SERVICE}"
                ))
                .close()
                .end(),
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

/// A store of format version 1 (the committed vector, as keyringrs 0.1 made it) is migrated to
/// version 2 by the first login, as the user, and keeps every secret.
#[test]
fn the_first_login_after_an_upgrade_migrates_a_version_1_store() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("migrate", "correct horse battery staple");
    let store = default_store(&l.user);
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors/store-v1"),
        &store,
    );
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o700)).unwrap();
    chown_tree(&l.user.home.join(".local"), l.user.uid, l.user.gid);
    l.assert_reads("example.org", "alice", "hunter2");
    let header = std::fs::read(store.join("header")).unwrap();
    assert_eq!(u16::from_le_bytes([header[16], header[17]]), 2, "migrated");
    // What the migration wrote is the user's, private.
    for f in ["header", "index"] {
        let m = std::fs::metadata(store.join(f)).unwrap();
        assert_eq!(
            (m.uid(), m.gid(), m.mode() & 0o777),
            (l.user.uid, l.user.gid, 0o600),
            "{f}"
        );
    }
}
