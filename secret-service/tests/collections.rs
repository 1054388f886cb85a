//! The collections: `session` (items as `user` keys in the daemon's session keyring), the stored
//! collection labels, and the `default` alias with the items' properties and signals.

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::time::Duration;

use common::*;
use libkeyring::keyring::{perm, Keyring};
use zbus::zvariant::{OwnedObjectPath, Value};

const SESSION_COLLECTION: &str = "/org/freedesktop/secrets/collection/session";

/// CreateItem in `collection`, labelled "a label", the secret of type `content_type`.
fn create_in(
    c: &Client,
    collection: &str,
    session: &Session,
    attributes: &HashMap<String, String>,
    value: &[u8],
    content_type: &str,
    replace: bool,
) -> zbus::Result<OwnedObjectPath> {
    let mut secret = Client::secret(&session.0, &session.1, value);
    secret.3 = content_type.into();
    let (item, _prompt) = c.create_item(collection, attributes, "a label", secret, replace)?;
    Ok(item)
}

/// `Service.ReadAlias(name)`.
fn read_alias(c: &Client, name: &str) -> OwnedObjectPath {
    c.call(SERVICE, I_SERVICE, "ReadAlias", &(name,))
        .expect("ReadAlias")
}

/// `Service.SetAlias(name, target)`.
fn set_alias(c: &Client, name: &str, target: &str) -> zbus::Result<()> {
    c.call(SERVICE, I_SERVICE, "SetAlias", &(name, op(target)))
}

/// The session items' keys in this thread's (and the daemon's) session keyring.
fn session_item_keys() -> Vec<(i32, u32)> {
    let Ok(ring) = Keyring::Session.serial(false) else {
        return vec![];
    };
    ring.members()
        .unwrap_or_default()
        .into_iter()
        .filter_map(|k| k.describe().ok().map(|d| (k.0, d)))
        .filter(|(_, d)| d.description.starts_with("keyringrs-ss:session:"))
        .map(|(k, d)| (k, d.perm))
        .collect()
}

#[test]
fn session_items_live_in_the_session_keyring_and_go_with_it() {
    require_tools!();
    let (mut env, c, s) = Env::with_session("ss-session-coll", Client::open_dh);
    let q = attrs(&[("app", "session-test"), ("k", "1")]);

    // The alias and the collections.
    assert_eq!(read_alias(&c, "session").as_str(), SESSION_COLLECTION);
    let cols: Vec<OwnedObjectPath> = c.get(SERVICE, I_SERVICE, "Collections").unwrap();
    assert_eq!(cols, vec![op(COLLECTION), op(SESSION_COLLECTION)]);

    // An item, with its content type kept.
    let item = create_in(
        &c,
        SESSION_COLLECTION,
        &s,
        &q,
        b"s3cret",
        "application/x-t",
        false,
    )
    .unwrap();
    assert!(item.as_str().starts_with(SESSION_COLLECTION), "{item}");
    let (got,): (Secret,) = c
        .call(item.as_str(), I_ITEM, "GetSecret", &(&s.0,))
        .unwrap();
    assert_eq!(&s.1.decrypt(&got.1, &got.2).unwrap()[..], b"s3cret");
    assert_eq!(got.3, "application/x-t");
    assert_eq!(c.search(&q), vec![item.clone()]);
    let found: Vec<OwnedObjectPath> = c
        .call(SESSION_COLLECTION, I_COLLECTION, "SearchItems", &(&q,))
        .unwrap();
    assert_eq!(found, vec![item.clone()]);
    let none: Vec<OwnedObjectPath> = c
        .call(COLLECTION, I_COLLECTION, "SearchItems", &(&q,))
        .unwrap();
    assert!(none.is_empty());

    // One key, possessor view/read/write/search only.
    let keys = session_item_keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(
        keys[0].1,
        perm::POS_VIEW | perm::POS_READ | perm::POS_WRITE | perm::POS_SEARCH
    );
    // Another session of the same user cannot read it (not even root: no user permissions).
    let out = Command::new("keyctl")
        .args(["session", "-", "keyctl", "print", &keys[0].0.to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");

    // replace=true: the item with the same attributes; replace=false: a new one.
    let again = create_in(&c, SESSION_COLLECTION, &s, &q, b"two", "text/plain", true).unwrap();
    assert_eq!(again, item);
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"two");
    let other = create_in(
        &c,
        SESSION_COLLECTION,
        &s,
        &q,
        b"three",
        "text/plain",
        false,
    )
    .unwrap();
    assert_ne!(other, item);
    assert_eq!(c.search(&q).len(), 2);

    // Too big for a user key: refused, clearly.
    let e = create_in(
        &c,
        SESSION_COLLECTION,
        &s,
        &q,
        &vec![7u8; 40_000],
        "text/plain",
        false,
    )
    .unwrap_err();
    assert_eq!(error_name(&e), LIMITS_EXCEEDED, "{e}");
    assert!(e.to_string().contains("32767"), "{e}");

    // Locking the store leaves session items alone.
    env.lock_store();
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"two");
    let locked: bool = c.get(SESSION_COLLECTION, I_COLLECTION, "Locked").unwrap();
    assert!(!locked);
    env.unlock_store();

    // Delete one.
    let _: OwnedObjectPath = c.call(other.as_str(), I_ITEM, "Delete", &()).unwrap();
    assert_eq!(c.search(&q), vec![item.clone()]);
    assert_eq!(session_item_keys().len(), 1);

    // Another session of the same user (its own bus, daemon and session keyring) sees none.
    let other_session = std::thread::spawn(move || {
        let env2 = Env::start("ss-session-coll-2");
        let c2 = env2.client();
        let items = c2.items(SESSION_COLLECTION);
        (items, c2.search(&attrs(&[("app", "session-test")])))
    })
    .join()
    .unwrap();
    assert_eq!(other_session, (vec![], vec![]));

    // The session keyring revoked (logout): the items are gone.
    Keyring::Session.serial(false).unwrap().revoke().unwrap();
    assert!(c.search(&q).is_empty());
    let items = c.items(SESSION_COLLECTION);
    assert!(items.is_empty(), "{items:?}");
    assert!(wait_until(Duration::from_secs(4), || c
        .get_secret(item.as_str(), &s)
        .is_err()));
    env.assert_alive();
}

#[test]
fn collection_labels_are_stored_in_clear_and_survive_a_restart() {
    require_tools!();
    let mut env = Env::start_bus("ss-labels");
    let xdg = env.dir.path().join("xdg-data");
    let daemon_env = [("XDG_DATA_HOME", xdg.display().to_string())];
    env.daemon = Some(env.spawn_daemon(&daemon_env));
    env.wait_for_name();
    let c = env.client();
    let label: String = c.get(COLLECTION, I_COLLECTION, "Label").unwrap();
    assert_eq!(label, "Login");
    // Setting it to what it is (SecretStorage's tests do) and to something else.
    c.set(COLLECTION, I_COLLECTION, "Label", Value::from("Login"))
        .unwrap();
    c.set(COLLECTION, I_COLLECTION, "Label", Value::from("Mine\t✓\nx"))
        .unwrap();
    c.set(
        SESSION_COLLECTION,
        I_COLLECTION,
        "Label",
        Value::from("Until logout"),
    )
    .unwrap();
    assert_eq!(
        c.get::<String>(ALIAS, I_COLLECTION, "Label").unwrap(),
        "Mine\t✓\nx"
    );
    let e = c
        .set(
            COLLECTION,
            I_COLLECTION,
            "Label",
            Value::from("x".repeat(5000)),
        )
        .unwrap_err();
    assert!(error_name(&e).ends_with("InvalidArgs"), "{e}");

    let file = xdg.join("keyringrs-secret-service/collections");
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("Until logout"), "{text}");

    // A restart keeps them.
    drop(c);
    env.restart_daemon(&daemon_env);
    let c = env.client();
    assert_eq!(
        c.get::<String>(COLLECTION, I_COLLECTION, "Label").unwrap(),
        "Mine\t✓\nx"
    );
    assert_eq!(
        c.get::<String>(SESSION_COLLECTION, I_COLLECTION, "Label")
            .unwrap(),
        "Until logout"
    );

    // Aliases: fixed, setting one to what it names succeeds, anything else is refused.
    set_alias(&c, "default", COLLECTION).unwrap();
    set_alias(&c, "session", SESSION_COLLECTION).unwrap();
    for (name, target) in [
        ("session", COLLECTION),
        ("default", SESSION_COLLECTION),
        ("other", COLLECTION),
        ("default", "/org/freedesktop/secrets/collection/nope"),
    ] {
        let e = set_alias(&c, name, target).unwrap_err();
        assert!(
            error_name(&e).ends_with("NotSupported"),
            "{name} {target}: {e}"
        );
    }
    assert_eq!(read_alias(&c, "login").as_str(), COLLECTION);
    env.assert_alive();
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
    assert_eq!(read_alias(&c, "default").as_str(), COLLECTION);
    assert_eq!(read_alias(&c, "nope").as_str(), "/");
    set_alias(&c, "default", COLLECTION).unwrap();
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
    assert_eq!(c.items(COLLECTION), vec![item.clone()]);
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
