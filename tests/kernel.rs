//! Kernel keyring and sessions under stress (THREAT-MODEL.md "Other uids", "Sessions"): races
//! between lock and readers, independent sessions, processes outside the session, and the
//! user's key quota — on the real kernel, with throwaway users where a non-root uid matters.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keyringrs_tests::fixtures::{cli_get, cli_unlock, new_store};
use keyringrs_tests::*;
use libkeyring::{Error, Store};

#[test]
fn lock_racing_a_reader_never_yields_partial_data() {
    let dir = TempDir::new("lockrace");
    let s = new_store(&dir);
    let secret: Vec<u8> = (0..65536u32).map(|i| (i % 253) as u8).collect();
    s.set("svc", "u", &secret).unwrap();
    let done = AtomicBool::new(false);
    let (ok, locked) = (AtomicU64::new(0), AtomicU64::new(0));
    std::thread::scope(|t| {
        // Threads inherit the test thread's session keyring.
        t.spawn(|| {
            let r = Store::open(dir.store()).unwrap();
            while !done.load(Ordering::Relaxed) {
                match r.get("svc", "u") {
                    Ok(v) => {
                        assert_eq!(&**v, secret.as_slice(), "partial or wrong data");
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(Error::Locked) => {
                        locked.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("unexpected error while racing lock: {e}"),
                }
            }
        });
        let pause = std::time::Duration::from_micros(500);
        for _ in 0..200 {
            s.lock().unwrap();
            std::thread::sleep(pause);
            s.unlock(b"pw", &test_opts()).unwrap();
            std::thread::sleep(pause);
        }
        done.store(true, Ordering::Relaxed);
    });
    eprintln!(
        "reads during 200 lock/unlock cycles: {} whole, {} locked",
        ok.load(Ordering::Relaxed),
        locked.load(Ordering::Relaxed)
    );
    assert!(ok.load(Ordering::Relaxed) > 0 && locked.load(Ordering::Relaxed) > 0);
}

/// The cause of the race above, checked at every step instead of by chance: while a key is
/// being placed (the master key at unlock, in `@s` or `@u`), a reader of the store finds nothing
/// (Locked) until its permissions are final, and then the key; never a key it must refuse.
#[test]
fn a_key_being_installed_is_never_found_before_its_final_permissions() {
    use libkeyring::keyring::{perm, Keyring};
    for (mask, target) in [
        (perm::SESSION_KEY, Keyring::Session),
        (perm::USER_KEY, Keyring::User),
    ] {
        let dir = TempDir::new("placing");
        fresh_session();
        if target == Keyring::User {
            // The user keyring below this session's, as pam_keyinit leaves it.
            Keyring::User.serial(true).unwrap();
            let u = Keyring::User.serial(false).unwrap();
            u.link(Keyring::Session).unwrap();
        }
        let s = Store::init(dir.store(), b"pw", &test_opts()).unwrap();
        s.lock().unwrap();
        let reader = Store::open(dir.store()).unwrap();
        let mut seen = Vec::new();
        let staged = Keyring::Thread
            .add(s.key_description(), &[7u8; 32])
            .unwrap();
        staged
            .place_observed(mask, target, Some(600), &mut |step| {
                let found = reader.find_key();
                seen.push(format!("{step}: {:?}", found.as_ref().map(|k| k.serial)));
                match (step, found) {
                    ("final", Ok(k)) => assert_eq!(k.serial, staged),
                    ("final", r) => panic!("{target:?}: the placed key is not found: {r:?}"),
                    (_, Err(Error::Locked)) => {}
                    (_, r) => panic!("{target:?}: after step {step:?} a reader got {r:?}"),
                }
            })
            .unwrap();
        assert_eq!(seen.len(), 4, "{seen:?}");
        let d = staged.describe().unwrap();
        assert_eq!(d.perm, mask);
        // Its timeout was set before anyone could find it.
        assert!(proc_keys_line(staged).contains("10m") || proc_keys_line(staged).contains("9m"));
        s.lock().unwrap();
    }
}

/// A key whose installer stopped between its link and its final permissions (killed, or a
/// debugger): readers see the store locked (not AccessDenied), `lock` takes it away, and the next
/// unlock works; a key someone else made unsearchable still reads as AccessDenied.
#[test]
fn a_half_installed_key_reads_as_locked_and_lock_removes_it() {
    use libkeyring::keyring::{perm, Keyring};
    let dir = TempDir::new("halfplaced");
    let s = new_store(&dir);
    s.lock().unwrap();
    let k = Keyring::Thread
        .add(s.key_description(), &[7u8; 32])
        .unwrap();
    k.set_perm(perm::STAGED).unwrap();
    k.link(Keyring::Session).unwrap();
    k.unlink(Keyring::Thread).unwrap();
    let reader = Store::open(dir.store()).unwrap();
    assert!(matches!(reader.get("a", "b"), Err(Error::Locked)));
    assert!(reader.is_locked().unwrap());
    assert!(s.lock().unwrap(), "lock reports it removed something");
    assert!(Keyring::Session
        .staged("user", s.key_description(), s.owner())
        .is_empty());
    s.unlock(b"pw", &test_opts()).unwrap();
    s.set("a", "b", b"v").unwrap();
    assert_eq!(&**reader.get("a", "b").unwrap(), b"v");
    s.lock().unwrap();
    // Unsearchable, but not with the staging mask: not ours to wait for.
    let k = Keyring::Thread
        .add(s.key_description(), &[7u8; 32])
        .unwrap();
    k.set_perm(perm::USR_VIEW | perm::USR_LINK | perm::USR_SETATTR | perm::USR_WRITE)
        .unwrap();
    k.link(Keyring::Session).unwrap();
    k.unlink(Keyring::Thread).unwrap();
    assert!(matches!(reader.get("a", "b"), Err(Error::AccessDenied(_))));
    k.unlink(Keyring::Session).unwrap();
}

fn proc_keys_line(k: libkeyring::keyring::KeySerial) -> String {
    let hex = format!("{:08x}", k.0);
    std::fs::read_to_string("/proc/keys")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&hex))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn two_sessions_of_one_user_lock_independently() {
    let dir = TempDir::new("twosessions");
    new_store(&dir).set("svc", "u", b"x").unwrap();
    let session = |lock_it: bool, barrier: &std::sync::Barrier| {
        fresh_session();
        let s = Store::open(dir.store()).unwrap();
        s.unlock(b"pw", &test_opts()).unwrap();
        barrier.wait();
        if lock_it {
            s.lock().unwrap();
            assert!(s.is_locked().unwrap());
        }
        barrier.wait();
        if !lock_it {
            assert_eq!(
                &**s.get("svc", "u").unwrap(),
                b"x",
                "the other session still works"
            );
        }
    };
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|t| {
        t.spawn(|| session(true, &barrier));
        t.spawn(|| session(false, &barrier));
    });
}

#[test]
fn a_process_in_another_session_sees_locked() {
    let dir = TempDir::new("othersession");
    new_store(&dir).set("svc", "u", b"x").unwrap();
    assert_eq!(cli_get(&dir.store(), "svc", "u"), b"x");
    // Like a process started by cron or another login: its own session keyring.
    let mut c = std::process::Command::new("keyctl");
    c.args(["session", "-"])
        .arg(keyringrs_bin())
        .arg("--store")
        .arg(dir.store())
        .args(["get", "svc", "u"]);
    assert_locked_after_keyctl(&run(c, b""));
}

#[test]
fn a_background_process_of_the_user_sees_locked_cleanly() {
    require_root!("needs a throwaway user");
    let user = ThrowawayUser::new("bg");
    let store = user.home.join("store");
    let k = user.home.join("keyringrs");
    let _ = user.keyringrs();
    // The login (a session keyring of the user's own) creates the store, leaving it unlocked
    // there; a systemd --user or cron job of the same user has only the user-session keyring
    // `_uid_ses.<uid>`.
    let script = format!(
        "echo pw | {k} --store {s} init --password-stdin >/dev/null && \
         {k} --store {s} status | grep -q unlocked && \
         keyctl session _uid_ses.{uid} {k} --store {s} get svc u",
        k = k.display(),
        s = store.display(),
        uid = user.uid
    );
    let mut c = user.command("keyctl");
    c.env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
        .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
        .args(["session", "-", "sh", "-c", &script]);
    assert_locked_after_keyctl(&run(c, b""));
}

/// `keyctl session` prints "Joined session keyring: N" on stderr before running the command.
fn assert_locked_after_keyctl(o: &std::process::Output) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(o), 3, "{err}");
    assert!(o.stdout.is_empty());
    assert_eq!(
        err.lines().last(),
        Some("keyringrs: store is locked: run `keyringrs unlock`")
    );
}

/// The user has used up their kernel key quota: unlock fails with Quota (exit 9) and says so.
#[test]
fn a_full_key_quota_makes_unlock_fail_with_quota() {
    require_root!("needs a throwaway user (root has no practical key quota)");
    let user = ThrowawayUser::new("quota");
    let store = user.home.join("store");
    let k = user.home.join("keyringrs");
    user.init_store(&store);
    let script = format!(
        "keyctl session - sh -c 'i=0; while keyctl add user filler$i x @s >/dev/null 2>&1; do i=$((i+1)); done; \
         echo pw | {k} --store {s} unlock --password-stdin; echo rc=$?'",
        k = k.display(),
        s = store.display()
    );
    let mut c = user.command("sh");
    c.env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
        .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
        .args(["-c", &script]);
    let o = run(c, b"");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("rc=9"), "stdout {out} stderr {err}");
    assert!(
        err.contains("keyringrs: quota exceeded: ") && err.contains("/proc/key-users"),
        "{err}"
    );
}

/// 500 unlock/lock cycles leave the user's key usage where it started.
#[test]
fn unlock_lock_cycles_leave_the_key_quota_unchanged() {
    require_root!("needs a throwaway user");
    let user = ThrowawayUser::new("cycles");
    let store = user.home.join("store");
    user.init_store(&store);
    let mut c = user.keyringrs();
    c.arg("--store").arg(&store).arg("lock");
    assert_exit(&run(c, b""), 0);
    let settle = |want: Option<(u64, u64)>| {
        // Invalidated keys are reaped by the kernel's key garbage collector shortly after.
        for _ in 0..100 {
            let now = user.key_usage();
            if want.is_none_or(|w| w == now) {
                return now;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        user.key_usage()
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let before = settle(None);
    let script = format!(
        "k={k}; for i in $(seq 500); do echo pw | $k --store {s} unlock --password-stdin || exit 1; $k --store {s} lock || exit 1; done",
        k = user.home.join("keyringrs").display(),
        s = store.display()
    );
    let mut c = user.command("keyctl");
    c.env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
        .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
        .args(["session", "-", "sh", "-c", &script]);
    assert_exit(&run(c, b""), 0);
    assert_eq!(
        settle(Some(before)),
        before,
        "key usage (keys, bytes) of uid {}",
        user.uid
    );
}

/// Another uid that possesses the session keyring (plain `su` without pam_keyinit) and knows the
/// store id links its own `keyringrs:<id>` key there: the tools refuse it (exit 8) instead of
/// reporting "unlocked" and sealing new secrets under the planted key; `lock` removes it
/// (security review, item 6).
#[test]
fn a_key_planted_by_another_uid_is_refused_and_lock_removes_it() {
    require_root!("needs a throwaway user as the other uid");
    let dir = TempDir::new("planted");
    let s = new_store(&dir);
    s.set("svc", "u", b"real").unwrap();
    s.lock().unwrap();
    let attacker = ThrowawayUser::new("planter");
    // The test's session keyring is root's: let the other uid write into it, as a session
    // keyring shared through su lets it.
    let mut c = std::process::Command::new("keyctl");
    c.args(["setperm", "@s", "0x3f3f3f3f"]);
    assert_exit(&run(c, b""), 0);
    let mut c = attacker.command("sh");
    c.args([
        "-c",
        &format!(
            "k=$(printf '%032d' 0 | keyctl padd user keyringrs:{} @s) && keyctl setperm $k 0x3f3f3f3f",
            s.id()
        ),
    ]);
    assert_exit(&run(c, b""), 0);
    let o = keyringrs(&dir.store(), &["get", "svc", "u"], b"");
    assert_exit(&o, 8);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not installed by keyringrs"));
    assert_exit(&keyringrs(&dir.store(), &["set", "svc", "new"], b"x"), 8);
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    assert_exit(&keyringrs(&dir.store(), &["get", "svc", "u"], b""), 3);
    assert_exit(&cli_unlock(&dir.store(), "pw"), 0);
    assert_eq!(cli_get(&dir.store(), "svc", "u"), b"real");
}

/// In a process with no session keyring of its own (the `_uid_ses.N` fallback, as some init
/// systems, sandboxes and containers start processes), `init` and `unlock` refuse with one line
/// naming the remedies instead of "succeeding" into a keyring that dies with the command.
#[test]
fn init_and_unlock_refuse_without_a_session_keyring_of_their_own() {
    let dir = TempDir::new("no-session");
    let uid = libkeyring::sys::euid();
    let in_fallback = |args: &[&str], stdin: &[u8]| {
        let mut c = std::process::Command::new("keyctl");
        c.args(["session", &format!("_uid_ses.{uid}")])
            .arg(keyringrs_bin())
            .env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
            .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
            .arg("--store")
            .arg(dir.store())
            .args(args);
        run(c, stdin)
    };
    for args in [
        &["init", "--password-stdin"][..],
        &["unlock", "--password-stdin"],
    ] {
        let o = in_fallback(args, b"pw\n");
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 1, "{args:?}: {err}");
        let last = err.lines().last().unwrap();
        for remedy in ["keyctl session -", "PAM", "--scope user"] {
            assert!(last.contains(remedy), "{last}");
        }
    }
    assert!(
        !dir.store().join("header").exists(),
        "init refused before creating"
    );
    // With --scope user it works there (readable by all the user's processes, by choice).
    let o = in_fallback(&["init", "--password-stdin", "--scope", "user"], b"pw\n");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let o = in_fallback(&["lock"], b"");
    assert_eq!(code(&o), 0);
}

/// The other half of the lock/reader race, checked at every step instead of by chance: a key
/// invalidated between a reader's search and its read is no longer possessed, and the kernel
/// answers the read EACCES (or ENOKEY once it is collected); the reader gets Locked, never
/// AccessDenied. A key that is still there keeps reading.
#[test]
fn a_key_invalidated_between_the_search_and_the_read_reads_as_locked() {
    let dir = TempDir::new("invalread");
    fresh_session();
    let s = Store::init(dir.store(), b"pw", &test_opts()).unwrap();
    let mut raw_denied = 0;
    for _ in 0..20 {
        s.unlock(b"pw", &test_opts()).unwrap();
        let found = s.find_key().unwrap();
        assert!(s.kernel_key().read_found(found).is_ok(), "a live key reads");
        found.serial.invalidate().unwrap();
        if matches!(found.serial.read(), Err(Error::AccessDenied(_))) {
            raw_denied += 1;
        }
        match s.kernel_key().read_found(found) {
            Err(Error::Locked) => {}
            other => panic!(
                "a key invalidated after the search: {:?}",
                other.map(|_| "a key")
            ),
        }
    }
    eprintln!("a raw read of the invalidated key was EACCES {raw_denied} of 20 times");
}
