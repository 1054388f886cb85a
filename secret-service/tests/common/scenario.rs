//! The rig's scenario steps: a daemon with a client and session, the store locked or unlocked
//! through the CLI, the daemon restarted, and the Secret Service calls the tests make again and
//! again (CreateItem, GetSecrets, SetSecret, Lock, Items), with the error names they expect.

use std::collections::HashMap;

use keyringrs_secret_service::crypto::SessionKey;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::*;

/// A session of a client: its object path and the key its secrets travel under.
pub type Session = (OwnedObjectPath, SessionKey);

/// The identity attributes of a keyring entry: `service` and `username`.
pub fn keyed(service: &str, username: &str) -> HashMap<String, String> {
    attrs(&[("service", service), ("username", username)])
}

/// The output's stdout as text.
pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `o`, asserted to have succeeded (its stderr shown if not).
pub fn ok(o: std::process::Output) -> std::process::Output {
    assert!(
        o.status.success(),
        "{:?}: {}",
        o.status,
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// The Secret Service's own error names.
pub const IS_LOCKED: &str = "org.freedesktop.Secret.Error.IsLocked";
pub const NO_SESSION: &str = "org.freedesktop.Secret.Error.NoSession";

/// The error of a call that must fail with the D-Bus error `name`.
pub fn expect_error<T: std::fmt::Debug>(r: zbus::Result<T>, name: &str) -> zbus::Error {
    let e = r.unwrap_err();
    assert_eq!(error_name(&e), name, "{e}");
    e
}

impl Env {
    /// `keyringrs lock` on the store, which must succeed.
    pub fn lock_store(&self) {
        assert_exit(&self.cli(&["lock"], b""), 0);
    }

    /// `keyringrs unlock` on the store with its password "pw", which must succeed.
    pub fn unlock_store(&self) {
        assert_exit(&self.cli(&["unlock", "--password-stdin"], b"pw\n"), 0);
    }

    /// Kill the daemon the harness started (if any) and reap it.
    pub fn stop_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }

    /// Stop the daemon, start a new one with `extra` in its environment, wait for it on the bus.
    pub fn restart_daemon(&mut self, extra: &[(&str, String)]) {
        self.stop_daemon();
        self.daemon = Some(self.spawn_daemon(extra));
        self.wait_for_name();
    }
}

impl Env {
    /// `Env::start(tag)`, a client, and the session `open` (`Client::open_plain` or
    /// `Client::open_dh`) opens on it.
    pub fn with_session(tag: &str, open: fn(&Client) -> Session) -> (Env, Client, Session) {
        let env = Env::start(tag);
        let c = env.client();
        let s = open(&c);
        (env, c, s)
    }
}

impl Client {
    /// A client on a connection of its own to the bus at `address` (e.g. in another thread).
    pub fn connect(address: &str) -> Client {
        Client {
            conn: connect_to(address),
        }
    }

    /// `Collection.CreateItem` on `collection` with `secret`: (item, prompt).
    pub fn create_item(
        &self,
        collection: &str,
        attributes: &HashMap<String, String>,
        label: &str,
        secret: Secret,
        replace: bool,
    ) -> zbus::Result<(OwnedObjectPath, OwnedObjectPath)> {
        let props = HashMap::from([
            (
                "org.freedesktop.Secret.Item.Attributes",
                Value::from(attributes.clone()),
            ),
            ("org.freedesktop.Secret.Item.Label", Value::from(label)),
        ]);
        self.call(
            collection,
            I_COLLECTION,
            "CreateItem",
            &(props, secret, replace),
        )
    }

    /// `Service.GetSecrets(items, session)`: each item's secret, still encrypted.
    pub fn get_secrets(
        &self,
        items: &[OwnedObjectPath],
        session: &OwnedObjectPath,
    ) -> zbus::Result<HashMap<OwnedObjectPath, Secret>> {
        self.call(SERVICE, I_SERVICE, "GetSecrets", &(items, session))
    }

    /// `Item.SetSecret(secret)` on `item`.
    pub fn set_secret(&self, item: &str, secret: Secret) -> zbus::Result<()> {
        self.call(item, I_ITEM, "SetSecret", &(secret,))
    }

    /// `Service.Lock([collection])`: the objects it locked.
    pub fn lock(&self) -> Vec<OwnedObjectPath> {
        let (locked, _prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = self
            .call(SERVICE, I_SERVICE, "Lock", &(vec![op(COLLECTION)],))
            .expect("Service.Lock");
        locked
    }

    /// The `Items` property of `collection`.
    pub fn items(&self, collection: &str) -> Vec<OwnedObjectPath> {
        self.get(collection, I_COLLECTION, "Items")
            .expect("the Items property")
    }
}
