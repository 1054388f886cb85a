//! keyringrs-secret-service end to end: a private dbus-daemon, the daemon on it, a fresh session
//! keyring and a temp store; libsecret's `secret-tool`, raw D-Bus clients (zbus) and the
//! `keyringrs` CLI against the same store.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn ok(o: std::process::Output) -> std::process::Output {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

#[test]
fn secret_tool_store_lookup_search_clear_and_the_cli_share_entries() {
    require_tools!();
    let mut env = Env::start("ss-tool");
    // secret-tool store → keyringrs get, and back.
    ok(env.secret_tool(
        &[
            "store",
            "--label=GitHub",
            "service",
            "github.com",
            "username",
            "alice",
        ],
        b"tok-1",
    ));
    let o = env.cli(&["get", "github.com", "alice"], b"");
    assert_exit(&o, 0);
    assert_eq!(o.stdout, b"tok-1");
    assert_exit(&env.cli(&["set", "example.org", "bob"], b"from-cli\n"), 0);
    let o = ok(env.secret_tool(
        &["lookup", "service", "example.org", "username", "bob"],
        b"",
    ));
    assert_eq!(stdout(&o), "from-cli");

    // Replace semantics: same service+username → same item, new secret, one entry.
    ok(env.secret_tool(
        &[
            "store",
            "--label=GitHub 2",
            "service",
            "github.com",
            "username",
            "alice",
        ],
        b"tok-2",
    ));
    let o = ok(env.secret_tool(
        &["lookup", "service", "github.com", "username", "alice"],
        b"",
    ));
    assert_eq!(stdout(&o), "tok-2");
    let list = stdout(&env.cli(&["list"], b""));
    assert_eq!(list.matches("github.com\talice").count(), 1, "{list}");

    // Several matches for an attribute search.
    for (u, s) in [("u1", "p1"), ("u2", "p2"), ("u3", "p3")] {
        ok(env.secret_tool(
            &[
                "store",
                "--label=multi",
                "service",
                "multi.example",
                "username",
                u,
                "team",
                "x",
            ],
            s.as_bytes(),
        ));
    }
    let o = ok(env.secret_tool(&["search", "--all", "team", "x"], b""));
    let text = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
    for (u, s) in [("u1", "p1"), ("u2", "p2"), ("u3", "p3")] {
        assert!(
            text.contains(&format!("attribute.username = {u}")),
            "{text}"
        );
        assert!(text.contains(&format!("secret = {s}")), "{text}");
    }
    assert_eq!(text.matches("label = multi").count(), 3, "{text}");
    // A lookup with only the shared attribute finds one of them.
    let o = ok(env.secret_tool(&["lookup", "team", "x"], b""));
    assert!(["p1", "p2", "p3"].contains(&stdout(&o).as_str()));

    // Items without service/username: a synthetic identity, exact attributes, replace by equality.
    ok(env.secret_tool(
        &["store", "--label=generic", "app", "foo", "host", "h1"],
        b"g1",
    ));
    ok(env.secret_tool(
        &["store", "--label=generic", "app", "foo", "host", "h1"],
        b"g2",
    ));
    let o = ok(env.secret_tool(&["lookup", "app", "foo"], b""));
    assert_eq!(stdout(&o), "g2");
    let list = stdout(&env.cli(&["list"], b""));
    assert_eq!(
        list.matches("org.freedesktop.Secret.Item:").count(),
        1,
        "replaced, not added: {list}"
    );
    let o = ok(env.secret_tool(&["search", "app", "foo"], b""));
    let text = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
    assert!(!text.contains("attribute.username"), "{text}");

    // clear removes every match; the CLI sees them gone.
    ok(env.secret_tool(&["clear", "team", "x"], b""));
    let list = stdout(&env.cli(&["list"], b""));
    assert!(!list.contains("multi.example"), "{list}");
    let o = env.secret_tool(&["lookup", "team", "x"], b"");
    assert!(!o.status.success() && o.stdout.is_empty());
    ok(env.secret_tool(
        &["clear", "service", "github.com", "username", "alice"],
        b"",
    ));
    assert_exit(&env.cli(&["get", "github.com", "alice"], b""), 4);
    // Deleted through the CLI: the item disappears from the Secret Service.
    assert_exit(&env.cli(&["delete", "example.org", "bob"], b""), 0);
    let o = env.secret_tool(
        &["lookup", "service", "example.org", "username", "bob"],
        b"",
    );
    assert!(!o.status.success() && o.stdout.is_empty());
    env.assert_alive();
}

#[test]
fn plain_and_dh_sessions_return_correct_secrets() {
    require_tools!();
    let mut env = Env::start("ss-algos");
    let c = env.client();
    let plain = c.open_plain();
    let dh = c.open_dh();
    let big: Vec<u8> = (0..(1 << 20)).map(|i: u32| (i * 7 % 251) as u8).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("ascii", b"hunter2".to_vec()),
        ("binary", (0..=255u8).collect()),
        ("block", vec![b'x'; 16]),
        ("utf8", "pässwörd ✓".as_bytes().to_vec()),
        ("mib", big),
    ];
    for (i, (name, value)) in cases.iter().enumerate() {
        // Written through one algorithm, read through both (and the CLI).
        let writer = if i % 2 == 0 { &plain } else { &dh };
        let item = c
            .create(
                writer,
                &attrs(&[("service", "algo"), ("username", name)]),
                name,
                value,
                true,
            )
            .unwrap();
        assert_eq!(
            &c.get_secret(item.as_str(), &plain).unwrap(),
            value,
            "{name} plain"
        );
        assert_eq!(
            &c.get_secret(item.as_str(), &dh).unwrap(),
            value,
            "{name} dh"
        );
        let o = env.cli(&["get", "algo", name], b"");
        assert_exit(&o, 0);
        assert_eq!(&o.stdout, value, "{name} cli");
        // Service.GetSecrets, DH.
        let map: HashMap<OwnedObjectPath, Secret> = c
            .call(
                SERVICE,
                I_SERVICE,
                "GetSecrets",
                &(vec![item.clone()], &dh.0),
            )
            .unwrap();
        let s = &map[&item];
        assert_eq!(s.1.len(), 16, "IV in parameters");
        assert_ne!(&s.2, value, "encrypted on the wire");
        assert_eq!(&*dh.1.decrypt(&s.1, &s.2).unwrap(), value);
    }
    // SetSecret through DH.
    let item = c.search(&attrs(&[("service", "algo"), ("username", "ascii")]));
    assert_eq!(item.len(), 1);
    let s = Client::secret(&dh.0, &dh.1, b"changed");
    c.call::<_, ()>(item[0].as_str(), I_ITEM, "SetSecret", &(s,))
        .unwrap();
    assert_eq!(c.get_secret(item[0].as_str(), &plain).unwrap(), b"changed");
    assert_eq!(env.cli(&["get", "algo", "ascii"], b"").stdout, b"changed");
    env.assert_alive();
}

#[test]
fn lock_makes_the_collection_locked_and_secrets_refused_unlock_brings_them_back() {
    require_tools!();
    let mut env = Env::start("ss-lock");
    let c = env.client();
    let s = c.open_dh();
    let item = c
        .create(
            &s,
            &attrs(&[("service", "L"), ("username", "u")]),
            "l",
            b"v",
            true,
        )
        .unwrap();
    assert!(!c.get::<bool>(COLLECTION, I_COLLECTION, "Locked").unwrap());

    assert_exit(&env.cli(&["lock"], b""), 0);
    for p in [COLLECTION, ALIAS] {
        assert!(c.get::<bool>(p, I_COLLECTION, "Locked").unwrap());
    }
    // The item answers Locked/IsLocked until the daemon notices the lock (within a second) and
    // takes it off the bus (tests/limits.rs); then its path is unknown.
    match c.get::<bool>(item.as_str(), I_ITEM, "Locked") {
        Ok(locked) => assert!(locked),
        Err(e) => assert_eq!(error_name(&e), UNKNOWN_OBJECT),
    }
    let e = c.get_secret(item.as_str(), &s).unwrap_err();
    assert!(
        [UNKNOWN_OBJECT, "org.freedesktop.Secret.Error.IsLocked"]
            .contains(&error_name(&e).as_str()),
        "{e}"
    );
    let e = c
        .call::<_, HashMap<OwnedObjectPath, Secret>>(
            SERVICE,
            I_SERVICE,
            "GetSecrets",
            &(vec![item.clone()], &s.0),
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.Secret.Error.IsLocked");
    let e = c
        .create(
            &s,
            &attrs(&[("service", "L"), ("username", "w")]),
            "l",
            b"v",
            true,
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.Secret.Error.IsLocked");
    assert!(c.search(&attrs(&[("service", "L")])).is_empty());
    let items: Vec<OwnedObjectPath> = c.get(COLLECTION, I_COLLECTION, "Items").unwrap();
    assert!(items.is_empty(), "nothing is listed while locked");
    let o = env.secret_tool(&["lookup", "service", "L", "username", "u"], b"");
    assert!(!o.status.success() && o.stdout.is_empty());

    // Unlock through the API: a prompt; with no askpass program it is dismissed.
    let (unlocked, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = c
        .call(SERVICE, I_SERVICE, "Unlock", &(vec![op(COLLECTION)],))
        .unwrap();
    assert!(unlocked.is_empty());
    assert_ne!(prompt.as_str(), "/");
    let (dismissed, result) = run_prompt(&c, prompt.as_str());
    assert!(dismissed);
    assert!(result.is_empty());

    // `keyringrs unlock` in the session: everything back.
    assert_exit(&env.cli(&["unlock", "--password-stdin"], b"pw\n"), 0);
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
    let (locked, _): (Vec<OwnedObjectPath>, OwnedObjectPath) = c
        .call(SERVICE, I_SERVICE, "Lock", &(vec![op(COLLECTION)],))
        .unwrap();
    assert_eq!(locked, vec![op(COLLECTION)]);
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
    assert_exit(&env.cli(&["lock"], b""), 0);
    let c = env.client();
    let (_, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = c
        .call(SERVICE, I_SERVICE, "Unlock", &(vec![op(COLLECTION)],))
        .unwrap();
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
fn sessions_belong_to_their_client_and_end_with_close() {
    require_tools!();
    let mut env = Env::start("ss-sessions");
    let a = env.client();
    let b = env.client();
    let sa = a.open_dh();
    let item = a
        .create(
            &sa,
            &attrs(&[("service", "S"), ("username", "u")]),
            "x",
            b"mine",
            true,
        )
        .unwrap();
    // Another client cannot use A's session, even while it is open.
    let stolen = (sa.0.clone(), sa.1.clone());
    let e = b.get_secret(item.as_str(), &stolen).unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.Secret.Error.NoSession");
    let e = b
        .call::<_, ()>(sa.0.as_str(), I_SESSION, "Close", &())
        .unwrap_err();
    assert!(error_name(&e).ends_with("AccessDenied"), "{e}");
    assert_eq!(a.get_secret(item.as_str(), &sa).unwrap(), b"mine");
    // After Close nobody can use it, the owner included, and the object is gone.
    a.call::<_, ()>(sa.0.as_str(), I_SESSION, "Close", &())
        .unwrap();
    for c in [&a, &b] {
        let e = c.get_secret(item.as_str(), &stolen).unwrap_err();
        assert_eq!(error_name(&e), "org.freedesktop.Secret.Error.NoSession");
        let e = c
            .call::<_, HashMap<OwnedObjectPath, Secret>>(
                SERVICE,
                I_SERVICE,
                "GetSecrets",
                &(vec![item.clone()], &sa.0),
            )
            .unwrap_err();
        assert_eq!(error_name(&e), "org.freedesktop.Secret.Error.NoSession");
    }
    std::thread::sleep(Duration::from_millis(100));
    let e = a
        .call::<_, ()>(sa.0.as_str(), I_SESSION, "Close", &())
        .unwrap_err();
    assert!(error_name(&e).contains("Unknown"), "{e}");
    // A client that disconnects loses its sessions too.
    let d = env.client();
    let sd = d.open_plain();
    drop(d);
    let t = Instant::now();
    loop {
        let e = b.call::<_, ()>(sd.0.as_str(), I_SESSION, "Close", &());
        if matches!(&e, Err(e) if error_name(e).contains("Unknown")) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "session outlived its client: {e:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    env.assert_alive();
}

#[test]
fn bad_object_paths_and_malformed_calls_get_dbus_errors() {
    require_tools!();
    let mut env = Env::start("ss-malformed");
    let c = env.client();
    let s = c.open_plain();
    let item = c
        .create(
            &s,
            &attrs(&[("service", "M"), ("username", "u")]),
            "m",
            b"v",
            true,
        )
        .unwrap();
    let zero = format!("{COLLECTION}/{}", "0".repeat(64));
    // Bad object paths.
    for p in [
        zero.as_str(),
        "/org/freedesktop/secrets/collection/other",
        "/org/freedesktop/secrets/session/s999999",
        "/nowhere",
    ] {
        let e = c
            .call::<_, (Secret,)>(p, I_ITEM, "GetSecret", &(&s.0,))
            .unwrap_err();
        assert!(
            error_name(&e).starts_with("org.freedesktop.DBus.Error."),
            "{p}: {e}"
        );
    }
    // Unknown paths in GetSecrets are skipped; a non-session path is NoSession.
    let m: HashMap<OwnedObjectPath, Secret> = c
        .call(
            SERVICE,
            I_SERVICE,
            "GetSecrets",
            &(vec![op(&zero), item.clone()], &s.0),
        )
        .unwrap();
    assert_eq!(m.len(), 1);
    for bad_session in ["/", COLLECTION, item.as_str()] {
        let e = c
            .call::<_, (Secret,)>(item.as_str(), I_ITEM, "GetSecret", &(op(bad_session),))
            .unwrap_err();
        assert_eq!(error_name(&e), "org.freedesktop.Secret.Error.NoSession");
    }
    // Wrong signatures, unknown methods and algorithms, degenerate DH keys, bad ciphertexts.
    let e = c
        .call::<_, (OwnedValue, OwnedObjectPath)>(
            SERVICE,
            I_SERVICE,
            "OpenSession",
            &("plain", 7u32),
        )
        .unwrap_err();
    // zbus answers argument type mismatches with its own error name.
    let bad_args = |e: &zbus::Error| {
        let n = error_name(e);
        n == "org.freedesktop.zbus.Error" || n.starts_with("org.freedesktop.DBus.Error.")
    };
    assert!(bad_args(&e), "{e}");
    let e = c
        .call::<_, ()>(SERVICE, I_SERVICE, "OpenSession", &(1u8, 2u8, 3u8))
        .unwrap_err();
    assert!(bad_args(&e), "{e}");
    let e = c
        .call::<_, ()>(COLLECTION, I_COLLECTION, "CreateItem", &("x",))
        .unwrap_err();
    assert!(bad_args(&e), "{e}");
    let e = c
        .call::<_, ()>(SERVICE, I_SERVICE, "GetSecrets", &(vec!["not-a-path"], "/"))
        .unwrap_err();
    assert!(bad_args(&e), "{e}");
    let e = c
        .call::<_, (OwnedValue, OwnedObjectPath)>(
            SERVICE,
            I_SERVICE,
            "OpenSession",
            &("rot13", Value::from("")),
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.NotSupported");
    for pk in [
        vec![],
        vec![0u8],
        vec![1u8],
        vec![0xffu8; 128],
        vec![0x5a; 4096],
    ] {
        let e = c
            .call::<_, (OwnedValue, OwnedObjectPath)>(
                SERVICE,
                I_SERVICE,
                "OpenSession",
                &(
                    "dh-ietf1024-sha256-aes128-cbc-pkcs7",
                    Value::from(pk.clone()),
                ),
            )
            .unwrap_err();
        assert_eq!(
            error_name(&e),
            "org.freedesktop.DBus.Error.InvalidArgs",
            "{pk:?}"
        );
    }
    let e = c
        .call::<_, (OwnedValue, OwnedObjectPath)>(
            SERVICE,
            I_SERVICE,
            "OpenSession",
            &(
                "dh-ietf1024-sha256-aes128-cbc-pkcs7",
                Value::from("not bytes"),
            ),
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.InvalidArgs");
    let e = c
        .call::<_, ()>(SERVICE, I_SERVICE, "NoSuchMethod", &())
        .unwrap_err();
    assert!(
        error_name(&e).starts_with("org.freedesktop.DBus.Error.Unknown"),
        "{e}"
    );
    let dh = c.open_dh();
    for (params, value) in [
        (vec![0u8; 15], vec![0u8; 16]),
        (vec![0u8; 16], vec![0u8; 17]),
        (vec![0u8; 16], vec![]),
    ] {
        let e = c
            .call::<_, ()>(
                item.as_str(),
                I_ITEM,
                "SetSecret",
                &((dh.0.clone(), params, value, "text/plain"),),
            )
            .unwrap_err();
        assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.InvalidArgs");
    }
    let e = c
        .call::<_, ()>(
            item.as_str(),
            I_ITEM,
            "SetSecret",
            &((s.0.clone(), vec![1u8], b"x".to_vec(), "text/plain"),),
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.InvalidArgs");
    // A wrongly typed property in CreateItem.
    let mut props: HashMap<&str, Value> = HashMap::new();
    props.insert("org.freedesktop.Secret.Item.Attributes", Value::from(5u32));
    let e = c
        .call::<_, (OwnedObjectPath, OwnedObjectPath)>(
            COLLECTION,
            I_COLLECTION,
            "CreateItem",
            &(props, Client::secret(&s.0, &s.1, b"x"), true),
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.InvalidArgs");
    // Changing an item's identity attributes is refused; other attributes change.
    let e = c
        .set(
            item.as_str(),
            I_ITEM,
            "Attributes",
            Value::from(attrs(&[("service", "other"), ("username", "u")])),
        )
        .unwrap_err();
    assert!(error_name(&e).ends_with("NotSupported"), "{e}");
    // Unsupported collection operations.
    let e = c
        .call::<_, OwnedObjectPath>(COLLECTION, I_COLLECTION, "Delete", &())
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.NotSupported");
    let e = c
        .call::<_, (OwnedObjectPath, OwnedObjectPath)>(
            SERVICE,
            I_SERVICE,
            "CreateCollection",
            &(HashMap::<&str, Value>::new(), "work"),
        )
        .unwrap_err();
    assert_eq!(error_name(&e), "org.freedesktop.DBus.Error.NotSupported");
    // Still alive and correct.
    env.assert_alive();
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"v");
}

#[test]
fn aliases_properties_and_signals() {
    require_tools!();
    let mut env = Env::start("ss-props");
    let c = env.client();
    let watcher = env.client();
    let rule = zbus::MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .interface(I_COLLECTION)
        .unwrap()
        .path(COLLECTION)
        .unwrap()
        .build();
    let mut signals =
        zbus::blocking::MessageIterator::for_match_rule(rule, &watcher.conn, Some(64)).unwrap();
    let read_alias: OwnedObjectPath = c
        .call(SERVICE, I_SERVICE, "ReadAlias", &("default",))
        .unwrap();
    assert_eq!(read_alias.as_str(), COLLECTION);
    let none: OwnedObjectPath = c.call(SERVICE, I_SERVICE, "ReadAlias", &("nope",)).unwrap();
    assert_eq!(none.as_str(), "/");
    c.call::<_, ()>(SERVICE, I_SERVICE, "SetAlias", &("default", op(COLLECTION)))
        .unwrap();
    let label: String = c.get(ALIAS, I_COLLECTION, "Label").unwrap();
    assert_eq!(label, "Login");

    let s = c.open_plain();
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let a = attrs(&[
        ("service", "P"),
        ("username", "u"),
        ("application", "Python keyring library"),
    ]);
    let item = c
        .create(&s, &a, "Password for 'u' on 'P'", b"1", true)
        .unwrap();
    assert!(item.as_str().starts_with(&format!("{COLLECTION}/")));
    let next = |it: &mut zbus::blocking::MessageIterator| -> (String, String) {
        let m = it.next().unwrap().unwrap();
        let h = m.header();
        let member = h.member().unwrap().to_string();
        let p: OwnedObjectPath = m.body().deserialize().unwrap();
        (member, p.to_string())
    };
    assert_eq!(next(&mut signals), ("ItemCreated".into(), item.to_string()));
    assert_eq!(
        c.get::<HashMap<String, String>>(item.as_str(), I_ITEM, "Attributes")
            .unwrap(),
        a
    );
    assert_eq!(
        c.get::<String>(item.as_str(), I_ITEM, "Label").unwrap(),
        "Password for 'u' on 'P'"
    );
    let created: u64 = c.get(item.as_str(), I_ITEM, "Created").unwrap();
    assert!(created >= before && created <= before + 60);
    // The path is stable: the same entry, created again or found by search, has it.
    let again = c
        .create(&s, &a, "Password for 'u' on 'P'", b"2", true)
        .unwrap();
    assert_eq!(again, item);
    assert_eq!(next(&mut signals), ("ItemChanged".into(), item.to_string()));
    assert_eq!(c.search(&attrs(&[("service", "P")])), vec![item.clone()]);
    let items: Vec<OwnedObjectPath> = c.get(COLLECTION, I_COLLECTION, "Items").unwrap();
    assert_eq!(items, vec![item.clone()]);
    let coll_search: Vec<OwnedObjectPath> = c
        .call(
            ALIAS,
            I_COLLECTION,
            "SearchItems",
            &(attrs(&[("application", "Python keyring library")]),),
        )
        .unwrap();
    assert_eq!(coll_search, vec![item.clone()]);

    // Label and attributes are stored in the entry.
    c.set(item.as_str(), I_ITEM, "Label", Value::from("relabelled"))
        .unwrap();
    assert_eq!(next(&mut signals), ("ItemChanged".into(), item.to_string()));
    let mut a2 = a.clone();
    a2.insert("extra".into(), "yes".into());
    c.set(item.as_str(), I_ITEM, "Attributes", Value::from(a2.clone()))
        .unwrap();
    assert_eq!(next(&mut signals), ("ItemChanged".into(), item.to_string()));
    assert_eq!(
        c.get::<String>(item.as_str(), I_ITEM, "Label").unwrap(),
        "relabelled"
    );
    assert_eq!(
        c.get::<HashMap<String, String>>(item.as_str(), I_ITEM, "Attributes")
            .unwrap(),
        a2
    );
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"2");
    let modified: u64 = c.get(item.as_str(), I_ITEM, "Modified").unwrap();
    assert!(modified >= created);

    let prompt: OwnedObjectPath = c.call(item.as_str(), I_ITEM, "Delete", &()).unwrap();
    assert_eq!(prompt.as_str(), "/");
    assert_eq!(next(&mut signals), ("ItemDeleted".into(), item.to_string()));
    assert_exit(&env.cli(&["get", "P", "u"], b""), 4);
    env.assert_alive();
}

#[test]
fn a_second_provider_refuses_to_start() {
    require_tools!();
    let env = Env::start("ss-second");
    let o = env
        .daemon_command(&[])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("org.freedesktop.secrets is already owned by keyringrs-secre")
            && err.contains("not starting"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn dbus_activation_starts_the_daemon_on_first_use() {
    require_tools!();
    let env = Env::start_bus("ss-activation");
    // The shipped service file, with Exec pointing at the built binary.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../etc/dbus-1/services/org.freedesktop.secrets.service"),
    )
    .unwrap();
    assert!(shipped.contains("Name=org.freedesktop.secrets"));
    let service = shipped
        .lines()
        .map(|l| {
            if l.starts_with("Exec=") {
                format!("Exec={}", daemon_bin().display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        env.dir
            .path()
            .join("services/org.freedesktop.secrets.service"),
        service,
    )
    .unwrap();
    c_reload(&env);
    assert!(!env.bus.name_has_owner(DEST));
    assert_exit(&env.cli(&["set", "act", "u"], b"activated"), 0);
    let o = ok(env.secret_tool(&["lookup", "service", "act", "username", "u"], b""));
    assert_eq!(stdout(&o), "activated");
    assert!(env.bus.name_has_owner(DEST));
    // The activated daemon is the bus's child: stop it through its pid.
    let conn = env.bus.connect();
    let pid = zbus::blocking::fdo::DBusProxy::new(&conn)
        .unwrap()
        .get_connection_unix_process_id(DEST.try_into().unwrap())
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert!(comm.starts_with("keyringrs-secre"), "{comm}");
    // Killed with the bus when `env` drops (it exits when its bus connection closes).
}

fn c_reload(env: &Env) {
    let conn = env.bus.connect();
    zbus::blocking::fdo::DBusProxy::new(&conn)
        .unwrap()
        .reload_config()
        .unwrap();
}

const LOAD_CLIENTS: usize = 8;
const LOAD_LOOKUPS: usize = 500;
const LOAD_ENTRIES: usize = 50;

/// 8 clients (own connections; half plain, half DH sessions) × 500 lookups as libsecret does
/// them (SearchItems with service and username, then GetSecrets), every answer checked.
/// Prints and returns (lookups/s, median).
fn load(name: &str, address: &str) -> (f64, Duration) {
    let start = Instant::now();
    let handles: Vec<_> = (0..LOAD_CLIENTS)
        .map(|t| {
            let address = address.to_string();
            std::thread::spawn(move || {
                let conn = zbus::blocking::connection::Builder::address(address.as_str())
                    .unwrap()
                    .build()
                    .unwrap();
                let c = Client { conn };
                let s = if t % 2 == 0 {
                    c.open_plain()
                } else {
                    c.open_dh()
                };
                let mut lat = Vec::with_capacity(LOAD_LOOKUPS);
                for n in 0..LOAD_LOOKUPS {
                    let i = (t * 31 + n * 7) % LOAD_ENTRIES;
                    let t0 = Instant::now();
                    let found = c.search(&attrs(&[
                        ("service", "load.example"),
                        ("username", &format!("user{i}")),
                    ]));
                    assert_eq!(found.len(), 1);
                    let m: HashMap<OwnedObjectPath, Secret> = c
                        .call(SERVICE, I_SERVICE, "GetSecrets", &(found.clone(), &s.0))
                        .unwrap();
                    let sec = &m[&found[0]];
                    let plain = s.1.decrypt(&sec.1, &sec.2).unwrap();
                    lat.push(t0.elapsed());
                    assert_eq!(&*plain, format!("secret-{i}").as_bytes(), "wrong answer");
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let elapsed = start.elapsed();
    lat.sort();
    let total = LOAD_CLIENTS * LOAD_LOOKUPS;
    assert_eq!(lat.len(), total);
    let median = lat[total / 2];
    let p99 = lat[total * 99 / 100];
    let rate = total as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{name} load: {LOAD_CLIENTS} clients x {LOAD_LOOKUPS} lookups = {total} lookups in {:.2} s: {rate:.0} lookups/s, median {:.2} ms, p99 {:.2} ms (all answers correct)",
        elapsed.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (rate, median)
}

#[test]
fn load_8_clients_x_500_lookups() {
    require_tools!();
    let mut env = Env::start("ss-load");
    for i in 0..LOAD_ENTRIES {
        assert_exit(
            &env.cli(
                &["set", "load.example", &format!("user{i}")],
                format!("secret-{i}").as_bytes(),
            ),
            0,
        );
    }
    load("secret-service", &env.bus.address);
    env.assert_alive();
    gnome_keyring_beside();
}

/// The same load against gnome-keyring-daemon on the same kind of private bus, for comparison
/// (printed only; skipped when gnome-keyring is not installed).
fn gnome_keyring_beside() {
    let Ok(bin) = which("gnome-keyring-daemon") else {
        eprintln!("gnome-keyring load: skipped (gnome-keyring-daemon not installed)");
        return;
    };
    let dir = TempDir::new("ss-gk");
    let home = dir.path().join("home");
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&run_dir).unwrap();
    let bus = Bus::start(dir.path(), &[]);
    let mut gk = std::process::Command::new(bin)
        .args(["--unlock", "--foreground", "--components=secrets"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = gk.stdin.take().unwrap();
        stdin.write_all(b"pw").unwrap();
    }
    let t = Instant::now();
    while !bus.name_has_owner(DEST) {
        if t.elapsed() > Duration::from_secs(10) {
            eprintln!("gnome-keyring load: skipped (gnome-keyring-daemon did not take the name)");
            let _ = gk.kill();
            let _ = gk.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = Client {
        conn: bus.connect(),
    };
    let s = c.open_plain();
    for i in 0..LOAD_ENTRIES {
        let a = attrs(&[
            ("service", "load.example"),
            ("username", &format!("user{i}")),
        ]);
        let created: zbus::Result<(OwnedObjectPath, OwnedObjectPath)> = c.call(
            ALIAS,
            I_COLLECTION,
            "CreateItem",
            &(
                HashMap::from([
                    ("org.freedesktop.Secret.Item.Attributes", Value::from(a)),
                    ("org.freedesktop.Secret.Item.Label", Value::from("load")),
                ]),
                Client::secret(&s.0, &s.1, format!("secret-{i}").as_bytes()),
                true,
            ),
        );
        if let Err(e) = created {
            eprintln!("gnome-keyring load: skipped (CreateItem: {e})");
            let _ = gk.kill();
            let _ = gk.wait();
            return;
        }
    }
    load("gnome-keyring", &bus.address);
    let _ = gk.kill();
    let _ = gk.wait();
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.exists())
        .ok_or(())
}
