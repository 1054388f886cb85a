//! What pam_keyringrs.so refuses or never gives, through real libpam (docs/THREAT-MODEL.md): a
//! wrong password installs nothing, a stack without pam_keyinit puts no key in a shared keyring,
//! another uid or the same user outside the login cannot read the key, an application that only
//! authenticates keeps no copy of the password, the user cannot signal the login process during
//! the key derivation, and acting as the user leaves root exactly as it was. The harness is
//! keyringrs_tests::pam.

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

#[test]
fn a_wrong_password_at_auth_fails_the_login_installs_nothing_and_leaves_no_copy() {
    require_root!("creates users and /etc/pam.d services");
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
    let l = Login::new("wrong", "right-password", svc);
    let before = l.user.key_usage();
    let canary = "Wr0ng-Canary-Passw0rd-7f3e";
    let t = l.drive(
        Steps::new()
            .kdf()
            .auth(canary)
            .end()
            .step(&format!("scan {}", hex(canary))),
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
    assert_eq!(l.user.key_usage(), before, "a key was installed");
    assert!(!l.user.home.join(".local/share/keyringrs").exists());
}

#[test]
fn without_pam_keyinit_the_login_succeeds_and_no_shared_keyring_gets_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let l = Login::new(
        "nokeyinit",
        "nokeyinit-pw",
        Service::without_keyinit("nokeyinit"),
    );
    let before = l.user.key_usage();
    let t = l.session(Steps::new().run("keyctl show @s"));
    assert!(
        !t.out.contains("keyringrs:"),
        "a key was placed in a shared keyring: {t}"
    );
    assert_eq!(l.user.key_usage().0, before.0, "{t}");
    assert_logged(&log, &l.svc, "pam_keyinit must run before pam_keyringrs");
}

#[test]
fn another_uid_in_the_same_session_cannot_read_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::new("owner", "owner-pw", Service::standard("otheruid", ""));
    let other = ThrowawayUser::new("other");
    let shared = TempDir::new("pam-otheruid");
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let (s, i) = (shared.path().join("serial"), shared.path().join("id"));
    let (s, i, o) = (s.display(), i.display(), &other.name);
    let t = l.session(
        Steps::new()
            .run(&format!(
                "printf v | ./keyringrs set s u && echo {KEY_ID} > {i} && \
                 keyctl search @s user $(cat {i}) > {s} && chmod 644 {s} {i} && echo id=$(cat {s})"
            ))
            .runas(
                o,
                &format!("keyctl print $(cat {s}) || echo other-print-refused"),
            )
            .runas(
                o,
                &format!("keyctl search @s user $(cat {i}) || echo other-search-refused"),
            ),
    );
    assert!(t.has("id="), "{t}");
    assert!(
        t.has("other-print-refused") && t.has("other-search-refused"),
        "{t}"
    );
    assert!(t.has("Permission denied"), "{t}");
}

/// Who can get the master key of a text login's session-scope key, read straight from
/// /proc/keys by serial: the login's own processes, yes; the same user outside the login (a cron
/// job, another login), no; another uid that holds the login's session keyring (plain `su`
/// without pam_keyinit), no.
#[test]
fn only_the_logins_own_processes_can_read_the_key() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("isolate", "isolate-pw");
    let other = ThrowawayUser::new("isolate-o");
    let mut t = Live::start(&l.svc, &l.user.name);
    t.login(&l.password, false);
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
    let mut c = l.user.command("keyctl");
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

/// Programs that only authenticate (sudo, polkit, screen lockers: common-auth, no session with
/// the module) keep no copy of the password in their memory after pam_authenticate.
#[test]
fn an_application_that_only_authenticates_keeps_no_copy_of_the_password() {
    require_root!("creates users and /etc/pam.d services");
    let sudo = Service::new(
        "sudo",
        &format!(
            "auth     requisite pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  required  pam_unix.so\n"
        ),
    );
    let l = Login::new("sudo", "sudo-secret-pw", sudo);
    let t = l.drive(
        Steps::new()
            .auth("sudo-secret-pw")
            .step(&format!("scan {}", hex("sudo-secret-pw"))),
    );
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert!(t.has("@@ scan 0 copies"), "{t}");
}

/// While Argon2id runs (the long part of session open), the process keeps root's real uid, so
/// the user cannot stop or kill the login daemon (kill -0 as the user: EPERM).
#[test]
fn the_user_cannot_signal_the_login_process_during_the_key_derivation() {
    require_root!("creates users and /etc/pam.d services");
    // The default Argon2id (64 MiB, t=3): a window of a few hundred milliseconds.
    let l = Login::new(
        "signal",
        "signal-pw",
        Service::standard("signal", "kdf_memory=65536 kdf_time=3"),
    );
    let mut live = Live::start(&l.svc, &l.user.name);
    let pid = live.pid;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = {
        let stop = Arc::clone(&stop);
        let mut c = l.user.command("python3");
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
    live.login(&l.password, false);
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
    live.close();
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
