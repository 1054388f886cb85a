//! What the daemon gives away: while the store is locked (secrets refused, item objects off the
//! bus, unlocking only through a prompt or the CLI) and to other processes (its memory: the
//! daemon is not dumpable).

mod common;

use std::time::Duration;

use common::*;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

#[test]
fn lock_makes_the_collection_locked_and_secrets_refused_unlock_brings_them_back() {
    require_tools!();
    let (mut env, c, s) = Env::with_session("ss-lock", Client::open_dh);
    let item = c.create(&s, &keyed("L", "u"), "l", b"v", true).unwrap();
    assert!(!c.get::<bool>(COLLECTION, I_COLLECTION, "Locked").unwrap());

    env.lock_store();
    for p in [COLLECTION, ALIAS] {
        assert!(c.get::<bool>(p, I_COLLECTION, "Locked").unwrap());
    }
    // The item answers Locked/IsLocked until the daemon notices the lock (within a second) and
    // takes it off the bus (see item_objects_leave_the_bus_while_the_store_is_locked); then its
    // path is unknown.
    match c.get::<bool>(item.as_str(), I_ITEM, "Locked") {
        Ok(locked) => assert!(locked),
        Err(e) => assert_eq!(error_name(&e), UNKNOWN_OBJECT),
    }
    let e = c.get_secret(item.as_str(), &s).unwrap_err();
    assert!(
        [UNKNOWN_OBJECT, IS_LOCKED].contains(&error_name(&e).as_str()),
        "{e}"
    );
    expect_error(c.get_secrets(std::slice::from_ref(&item), &s.0), IS_LOCKED);
    expect_error(c.create(&s, &keyed("L", "w"), "l", b"v", true), IS_LOCKED);
    // A search finds nothing unlocked, and one locked result: locked, holding only the
    // attributes searched for, every read refused IsLocked.
    let (unlocked, locked) = c.search_both(&attrs(&[("service", "L")]));
    assert!(unlocked.is_empty());
    assert_eq!(locked.len(), 1, "{locked:?}");
    assert!(locked[0].as_str().starts_with(LOCKED_RESULT_PREFIX));
    assert!(c.get::<bool>(locked[0].as_str(), I_ITEM, "Locked").unwrap());
    assert_eq!(
        c.get::<std::collections::HashMap<String, String>>(
            locked[0].as_str(),
            I_ITEM,
            "Attributes"
        )
        .unwrap(),
        attrs(&[("service", "L")])
    );
    expect_error(c.get_secret(locked[0].as_str(), &s), IS_LOCKED);
    assert!(
        c.items(COLLECTION).is_empty(),
        "nothing is listed while locked"
    );
    let o = env.secret_tool(&["lookup", "service", "L", "username", "u"], b"");
    assert!(!o.status.success() && o.stdout.is_empty());

    // Unlock through the API: a prompt; with no askpass program it is dismissed.
    let (unlocked, prompt) = c.unlock().unwrap();
    assert!(unlocked.is_empty());
    assert_ne!(prompt.as_str(), "/");
    let (dismissed, result) = run_prompt(&c, prompt.as_str());
    assert!(dismissed);
    assert!(result.is_empty());

    // `keyringrs unlock` in the session: everything back.
    env.unlock_store();
    assert!(!c.get::<bool>(COLLECTION, I_COLLECTION, "Locked").unwrap());
    // The item is back on the bus once the daemon notices (within a second).
    assert!(wait_until(Duration::from_secs(3), || c.serves(item.as_str(), I_ITEM)));
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"v");
    let (unlocked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = c
        .call(
            SERVICE,
            I_SERVICE,
            "Unlock",
            &(vec![op(COLLECTION), item.clone()],),
        )
        .unwrap();
    assert_eq!(prompt.as_str(), "/");
    assert_eq!(unlocked, vec![op(COLLECTION), item.clone()]);
    let o = ok(env.secret_tool(&["lookup", "service", "L", "username", "u"], b""));
    assert_eq!(stdout(&o), "v");

    // Service.Lock locks the store for the whole session (the CLI sees it).
    assert_eq!(c.lock(), vec![op(COLLECTION)]);
    assert_exit(&env.cli(&["get", "L", "u"], b""), 3);
    env.assert_alive();
}

/// Call Prompt and wait for Completed: (dismissed, result object paths).
fn run_prompt(c: &Client, prompt: &str) -> (bool, Vec<OwnedObjectPath>) {
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(I_PROMPT)
        .unwrap()
        .member("Completed")
        .unwrap()
        .path(prompt.to_string())
        .unwrap()
        .build();
    let mut it = zbus::blocking::MessageIterator::for_match_rule(rule, &c.conn, Some(16)).unwrap();
    c.call::<_, ()>(prompt, I_PROMPT, "Prompt", &("",)).unwrap();
    let msg = it.next().expect("Completed").unwrap();
    let (dismissed, result): (bool, OwnedValue) = msg.body().deserialize().unwrap();
    let paths: Vec<OwnedObjectPath> = Vec::try_from(result).unwrap_or_default();
    (dismissed, paths)
}

#[test]
fn an_unlock_prompt_asks_the_askpass_program() {
    require_tools!();
    let dir = TempDir::new("ss-askpass-prog");
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, "#!/bin/sh\necho pw\n").unwrap();
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let mut env = Env::start_with(
        "ss-askpass",
        &[("KEYRINGRS_ASKPASS", askpass.display().to_string())],
    );
    assert_exit(&env.cli(&["set", "A", "u"], b"sec"), 0);
    env.lock_store();
    let c = env.client();
    let (_, prompt) = c.unlock().unwrap();
    let (dismissed, result) = run_prompt(&c, prompt.as_str());
    assert!(!dismissed);
    assert_eq!(result, vec![op(COLLECTION)]);
    // Unlocked in the daemon's session keyring, which is this test's: the CLI reads it too.
    let o = env.cli(&["get", "A", "u"], b"");
    assert_exit(&o, 0);
    assert_eq!(o.stdout, b"sec");
    env.assert_alive();
}

#[test]
fn item_objects_leave_the_bus_while_the_store_is_locked() {
    require_tools!();
    let (mut env, c, s) = Env::with_session("ss-locked-items", Client::open_plain);
    let items: Vec<OwnedObjectPath> = (0..3)
        .map(|i| {
            c.create(
                &s,
                &attrs(&[("service", "hidden"), ("username", &format!("u{i}"))]),
                "h",
                format!("v{i}").as_bytes(),
                true,
            )
            .unwrap()
        })
        .collect();
    for p in &items {
        assert!(c.serves(p.as_str(), I_ITEM), "{p}");
    }
    let children = |c: &Client| c.introspect(COLLECTION).matches("<node name=").count();
    assert_eq!(children(&c), 3);

    // Locked by the CLI: the daemon notices within a second and takes the items off the bus.
    env.lock_store();
    let hidden = wait_until(Duration::from_secs(4), || {
        items.iter().all(|p| !c.serves(p.as_str(), I_ITEM))
    });
    assert!(hidden, "item objects stayed on the bus while locked");
    assert_eq!(children(&c), 0, "{}", c.introspect(COLLECTION));
    assert!(c.items(COLLECTION).is_empty());
    let (unlocked, locked) = c.search_both(&attrs(&[("service", "hidden")]));
    assert!(unlocked.is_empty() && locked.len() == 1, "{locked:?}");
    expect_error(c.get_secret(items[0].as_str(), &s), UNKNOWN_OBJECT);
    expect_error(c.get_secrets(&items, &s.0), IS_LOCKED);

    // Unlocked: back at the same paths, and the locked search's result is the newest of them.
    env.unlock_store();
    assert!(wait_until(Duration::from_secs(4), || items
        .iter()
        .all(|p| c.serves(p.as_str(), I_ITEM))));
    for (i, p) in items.iter().enumerate() {
        assert_eq!(
            c.get_secret(p.as_str(), &s).unwrap(),
            format!("v{i}").as_bytes()
        );
    }
    assert_eq!(children(&c), 4, "{}", c.introspect(COLLECTION));
    // (Written within one second: any of them is the newest.)
    let newest = c.get_secret(locked[0].as_str(), &s).unwrap();
    assert!(
        [&b"v0"[..], b"v1", b"v2"].contains(&&newest[..]),
        "{newest:?}"
    );

    // Service.Lock takes them off before it answers (the result too).
    assert_eq!(c.lock(), vec![op(COLLECTION)]);
    assert_eq!(children(&c), 0, "{}", c.introspect(COLLECTION));

    // A daemon started on a locked store shows none.
    drop(c);
    env.restart_daemon(&[]);
    let c = env.client();
    assert_eq!(children(&c), 0, "{}", c.introspect(COLLECTION));
    env.unlock_store();
    assert!(wait_until(Duration::from_secs(4), || children(&c) == 3));
    env.assert_alive();
}

/// As root, the processes of this check run without CAP_SYS_PTRACE (in the bounding set, so
/// also after exec): root keeps access to any process through it, and the kernel's capability
/// check (a reader needs a superset of its target's capabilities) must not be what refuses.
const NO_PTRACE: [&str; 3] = ["--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", "--"];

/// `program args` as the check runs its processes (see NO_PTRACE).
fn without_ptrace(program: &std::path::Path, args: &[&str]) -> std::process::Command {
    if is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(NO_PTRACE).arg(program).args(args);
        c
    } else {
        let mut c = std::process::Command::new(program);
        c.args(args);
        c
    }
}

/// Can another process of the same uid open `/proc/<pid>/mem` (what ptrace access allows)? The
/// kernel refuses it for a process that is not dumpable.
fn mem_openable(pid: u32) -> bool {
    without_ptrace(
        std::path::Path::new("/bin/sh"),
        &["-c", &format!("exec 3</proc/{pid}/mem")],
    )
    .stderr(std::process::Stdio::null())
    .status()
    .expect("run sh (under setpriv, util-linux, as root)")
    .success()
}

#[test]
fn the_daemon_is_not_dumpable() {
    require_tools!();
    let mut env = Env::start_bus("ss-dumpable");
    let mut daemon = without_ptrace(&daemon_bin(), &[]);
    daemon
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SESSION_BUS_ADDRESS", &env.bus.address);
    for (k, v) in Env::kdf_env(&env.store()) {
        daemon.env(k, v);
    }
    // setpriv execs the daemon: same pid.
    env.daemon = Some(daemon.stdin(std::process::Stdio::null()).spawn().unwrap());
    env.wait_for_name();
    // The check itself works: an ordinary process started the same way is open to it.
    let mut control = without_ptrace(std::path::Path::new("/bin/sleep"), &["30"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let control_open = mem_openable(control.id());
    let _ = control.kill();
    let _ = control.wait();
    assert!(
        control_open,
        "the check cannot open an ordinary process's memory"
    );
    assert!(
        !mem_openable(env.daemon_pid()),
        "another process of the user can open the daemon's /proc/<pid>/mem (it is dumpable)"
    );
    env.assert_alive();
}
