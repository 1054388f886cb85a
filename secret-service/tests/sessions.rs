//! Sessions on the daemon: secrets through plain and DH sessions, sessions owned by their client
//! and ended by Close or a disconnect, and D-Bus errors for bad object paths and malformed calls.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::*;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Value};

#[test]
fn plain_and_dh_sessions_return_correct_secrets() {
    require_tools!();
    let (mut env, c, plain) = Env::with_session("ss-algos", Client::open_plain);
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
            .create(writer, &keyed("algo", name), name, value, true)
            .unwrap();
        for (session, algorithm) in [(&plain, "plain"), (&dh, "dh")] {
            assert_eq!(
                &c.get_secret(item.as_str(), session).unwrap(),
                value,
                "{name} {algorithm}"
            );
        }
        let o = env.cli(&["get", "algo", name], b"");
        assert_exit(&o, 0);
        assert_eq!(&o.stdout, value, "{name} cli");
        // Service.GetSecrets, DH.
        let map = c.get_secrets(std::slice::from_ref(&item), &dh.0).unwrap();
        let s = &map[&item];
        assert_eq!(s.1.len(), 16, "IV in parameters");
        assert_ne!(&s.2, value, "encrypted on the wire");
        assert_eq!(&*dh.1.decrypt(&s.1, &s.2).unwrap(), value);
    }
    // SetSecret through DH.
    let item = c.search(&keyed("algo", "ascii"));
    assert_eq!(item.len(), 1);
    c.set_secret(item[0].as_str(), Client::secret(&dh.0, &dh.1, b"changed"))
        .unwrap();
    assert_eq!(c.get_secret(item[0].as_str(), &plain).unwrap(), b"changed");
    assert_eq!(env.cli(&["get", "algo", "ascii"], b"").stdout, b"changed");
    env.assert_alive();
}

#[test]
fn sessions_belong_to_their_client_and_end_with_close() {
    require_tools!();
    let (mut env, a, sa) = Env::with_session("ss-sessions", Client::open_dh);
    let b = env.client();
    let item = a.create(&sa, &keyed("S", "u"), "x", b"mine", true).unwrap();
    let close = |c: &Client, session: &OwnedObjectPath| {
        c.call::<_, ()>(session.as_str(), I_SESSION, "Close", &())
    };
    // Another client cannot use A's session, even while it is open.
    let stolen = (sa.0.clone(), sa.1.clone());
    expect_error(b.get_secret(item.as_str(), &stolen), NO_SESSION);
    let e = close(&b, &sa.0).unwrap_err();
    assert!(error_name(&e).ends_with("AccessDenied"), "{e}");
    assert_eq!(a.get_secret(item.as_str(), &sa).unwrap(), b"mine");
    // After Close nobody can use it, the owner included, and the object is gone.
    close(&a, &sa.0).unwrap();
    for c in [&a, &b] {
        expect_error(c.get_secret(item.as_str(), &stolen), NO_SESSION);
        expect_error(
            c.get_secrets(std::slice::from_ref(&item), &sa.0),
            NO_SESSION,
        );
    }
    std::thread::sleep(Duration::from_millis(100));
    let e = close(&a, &sa.0).unwrap_err();
    assert!(error_name(&e).contains("Unknown"), "{e}");
    // A client that disconnects loses its sessions too.
    let d = env.client();
    let sd = d.open_plain();
    drop(d);
    let t = Instant::now();
    loop {
        let e = close(&b, &sd.0);
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

/// `Service.OpenSession` with `args`, whatever their types.
fn open_session<B>(c: &Client, args: &B) -> zbus::Result<(OwnedValue, OwnedObjectPath)>
where
    B: serde::Serialize + DynamicType,
{
    c.call(SERVICE, I_SERVICE, "OpenSession", args)
}

#[test]
fn bad_object_paths_and_malformed_calls_get_dbus_errors() {
    require_tools!();
    let (mut env, c, s) = Env::with_session("ss-malformed", Client::open_plain);
    let item = c.create(&s, &keyed("M", "u"), "m", b"v", true).unwrap();
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
    let m = c.get_secrets(&[op(&zero), item.clone()], &s.0).unwrap();
    assert_eq!(m.len(), 1);
    for bad_session in ["/", COLLECTION, item.as_str()] {
        let r = c.call::<_, (Secret,)>(item.as_str(), I_ITEM, "GetSecret", &(op(bad_session),));
        expect_error(r, NO_SESSION);
    }
    // Wrong signatures, unknown methods and algorithms, degenerate DH keys, bad ciphertexts.
    let e = open_session(&c, &("plain", 7u32)).unwrap_err();
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
    expect_error(open_session(&c, &("rot13", Value::from(""))), NOT_SUPPORTED);
    let dh_aes = "dh-ietf1024-sha256-aes128-cbc-pkcs7";
    for pk in [
        vec![],
        vec![0u8],
        vec![1u8],
        vec![0xffu8; 128],
        vec![0x5a; 4096],
    ] {
        let e = open_session(&c, &(dh_aes, Value::from(pk.clone()))).unwrap_err();
        assert_eq!(error_name(&e), INVALID_ARGS, "{pk:?}");
    }
    expect_error(
        open_session(&c, &(dh_aes, Value::from("not bytes"))),
        INVALID_ARGS,
    );
    let e = c
        .call::<_, ()>(SERVICE, I_SERVICE, "NoSuchMethod", &())
        .unwrap_err();
    assert!(
        error_name(&e).starts_with("org.freedesktop.DBus.Error.Unknown"),
        "{e}"
    );
    let dh = c.open_dh();
    for (session, params, value) in [
        (&dh.0, vec![0u8; 15], vec![0u8; 16]),
        (&dh.0, vec![0u8; 16], vec![0u8; 17]),
        (&dh.0, vec![0u8; 16], vec![]),
        (&s.0, vec![1u8], b"x".to_vec()),
    ] {
        let secret = (session.clone(), params, value, "text/plain".into());
        expect_error(c.set_secret(item.as_str(), secret), INVALID_ARGS);
    }
    // A wrongly typed property in CreateItem.
    let mut props: HashMap<&str, Value> = HashMap::new();
    props.insert("org.freedesktop.Secret.Item.Attributes", Value::from(5u32));
    let r = c.call::<_, (OwnedObjectPath, OwnedObjectPath)>(
        COLLECTION,
        I_COLLECTION,
        "CreateItem",
        &(props, Client::secret(&s.0, &s.1, b"x"), true),
    );
    expect_error(r, INVALID_ARGS);
    // Changing an item's identity attributes is refused; other attributes change.
    let e = c
        .set(
            item.as_str(),
            I_ITEM,
            "Attributes",
            Value::from(keyed("other", "u")),
        )
        .unwrap_err();
    assert!(error_name(&e).ends_with("NotSupported"), "{e}");
    // Unsupported collection operations.
    let r = c.call::<_, OwnedObjectPath>(COLLECTION, I_COLLECTION, "Delete", &());
    expect_error(r, NOT_SUPPORTED);
    let r = c.call::<_, (OwnedObjectPath, OwnedObjectPath)>(
        SERVICE,
        I_SERVICE,
        "CreateCollection",
        &(HashMap::<&str, Value>::new(), "work"),
    );
    expect_error(r, NOT_SUPPORTED);
    // Still alive and correct.
    env.assert_alive();
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"v");
}
