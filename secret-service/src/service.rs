//! org.freedesktop.Secret.Service at `/org/freedesktop/secrets`.
//!
//! Paths (see docs/SECRET-SERVICE.md):
//! - `/org/freedesktop/secrets`                          Service (this file)
//! - `/org/freedesktop/secrets/collection/login`         Collection (also at `aliases/default`),
//!   collection.rs
//! - `/org/freedesktop/secrets/collection/login/<hex>`   Item; `<hex>` is the entry's file name;
//!   item.rs; on the bus only while the store is unlocked
//! - `/org/freedesktop/secrets/session/s<n>`             Session (owned by the client that opened
//!   it), session.rs
//! - `/org/freedesktop/secrets/prompt/p<n>`              Prompt (unlock; owned by the client that
//!   asked), prompt.rs
//!
//! Every call opens what it needs from the store and the kernel key; nothing decrypted is kept
//! past the call. The daemon remembers only which items it serves (their service and username,
//! to answer calls on their paths), the open sessions' transfer keys and the pending prompts,
//! each session and prompt tied to its client and bounded in number (state.rs).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::crypto::{self, SessionKey};
use crate::error::Error;
use crate::kernel_items;
use crate::prompt::new_prompt;
use crate::session::SessionObject;
use crate::session_collection::{
    is_session_collection, is_session_object, search_session, session_item_id,
    SESSION_COLLECTION_PATH,
};
use crate::state::{
    content_type, encode_typed, is_collection, known_objects, lock, path, refresh_lock_state,
    refresh_soon, root, search_unlocked, sender, SecretOut, State, COLLECTION_PATH,
};

pub use crate::state::{ALIAS_PATH, BUS_NAME, SERVICE_PATH};

#[derive(Debug)]
pub struct Service {
    st: Arc<State>,
}

impl Service {
    pub(crate) fn new(st: Arc<State>) -> Service {
        Service { st }
    }
}

#[interface(name = "org.freedesktop.Secret.Service")]
impl Service {
    #[zbus(out_args("output", "result"))]
    async fn open_session(
        &self,
        algorithm: &str,
        input: OwnedValue,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(OwnedValue, OwnedObjectPath), Error> {
        let owner = sender(&hdr)?;
        // Refuse beyond the limits before doing any work (the key agreement costs a modpow);
        // add_session checks again, atomically.
        self.st.check_session_room(&owner)?;
        let (output, key) = match algorithm {
            crypto::PLAIN => (Value::from(""), SessionKey::plain()),
            crypto::DH_AES => {
                let client: Vec<u8> = Vec::try_from(input).map_err(|_| {
                    Error::InvalidArgs(format!(
                        "{} takes the client's public key as ay",
                        crypto::DH_AES
                    ))
                })?;
                let (public, key) = SessionKey::server_dh(&client)
                    .map_err(|e| Error::InvalidArgs(e.to_string()))?;
                (Value::from(public), key)
            }
            other => {
                return Err(Error::NotSupported(format!(
                    "algorithm {other:?} is not supported (use {:?} or {:?})",
                    crypto::PLAIN,
                    crypto::DH_AES
                )))
            }
        };
        let output = OwnedValue::try_from(output).map_err(|e| Error::Failed(e.to_string()))?;
        let p = self.st.add_session(&owner, key)?;
        let server = self.st.conn().object_server();
        if let Err(e) = server
            .at(p.as_str(), SessionObject::new(self.st.clone(), p.clone()))
            .await
        {
            lock(&self.st.sessions).remove(&p);
            return Err(e.into());
        }
        // Its client may have left meanwhile (and its sessions been dropped before this one was
        // on the bus): then it goes now.
        if !lock(&self.st.sessions).contains_key(&p) {
            let _ = server.remove::<SessionObject, _>(p.as_str()).await;
        }
        Ok((output, path(&p)))
    }

    #[zbus(out_args("collection", "prompt"))]
    async fn create_collection(
        &self,
        _properties: HashMap<String, OwnedValue>,
        alias: &str,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), Error> {
        match alias {
            "default" | "login" => Ok((path(COLLECTION_PATH), root())),
            "session" => Ok((path(SESSION_COLLECTION_PATH), root())),
            _ => Err(Error::NotSupported(
                "keyringrs serves two collections, `login` (alias `default`) and `session`; it cannot create others"
                    .into(),
            )),
        }
    }

    #[zbus(out_args("unlocked", "locked"))]
    async fn search_items(
        &self,
        attributes: HashMap<String, String>,
    ) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>), Error> {
        // Locked: nothing of the store is readable, not even which items exist. Session items
        // are never locked.
        let mut found = search_unlocked(&self.st, &attributes).await?;
        found.extend(search_session(&self.st, &attributes).await);
        Ok((found, vec![]))
    }

    #[zbus(out_args("unlocked", "prompt"))]
    async fn unlock(
        &self,
        objects: Vec<OwnedObjectPath>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Vec<OwnedObjectPath>, OwnedObjectPath), Error> {
        // The session collection and its items are never locked.
        let (session, objects): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) =
            objects.into_iter().partition(|p| {
                is_session_collection(p.as_str()) || session_item_id(p.as_str()).is_some()
            });
        let mut unlocked: Vec<OwnedObjectPath> = session
            .into_iter()
            .filter(|p| is_session_object(p.as_str()))
            .collect();
        if !self.st.is_locked() {
            // Unlocked behind the daemon's back (keyringrs unlock): serve the items first.
            if self.st.lock_state_differs(false) {
                refresh_lock_state(&self.st).await;
            }
            unlocked.extend(known_objects(&self.st, &objects));
            return Ok((unlocked, root()));
        }
        if objects.is_empty() {
            return Ok((unlocked, root()));
        }
        let p = new_prompt(&self.st, &sender(&hdr)?, objects).await?;
        Ok((unlocked, p))
    }

    #[zbus(out_args("locked", "Prompt"))]
    async fn lock(
        &self,
        objects: Vec<OwnedObjectPath>,
    ) -> Result<(Vec<OwnedObjectPath>, OwnedObjectPath), Error> {
        let known = known_objects(&self.st, &objects);
        if !known.is_empty() {
            self.st.store()?.lock()?;
            // The item objects leave the bus before the answer.
            refresh_lock_state(&self.st).await;
        }
        Ok((known, root()))
    }

    #[zbus(out_args("secrets"))]
    async fn get_secrets(
        &self,
        items: Vec<OwnedObjectPath>,
        session: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<HashMap<OwnedObjectPath, SecretOut>, Error> {
        let key = self.st.session_key(session.as_str(), &sender(&hdr)?)?;
        let mut out = HashMap::new();
        // Session items first: they are never locked.
        let (session_items, items): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = items
            .into_iter()
            .partition(|p| session_item_id(p.as_str()).is_some());
        for p in session_items {
            let Some(item) = session_item_id(p.as_str()).and_then(kernel_items::read) else {
                continue;
            };
            let secret = encode_typed(&key, session.as_str(), &item.secret, &item.content_type);
            out.insert(p, secret);
        }
        if items.is_empty() {
            return Ok(out);
        }
        let store = self.st.store()?;
        // Locked: no item is served, but the answer is IsLocked, not an empty map.
        if store.is_locked()? {
            refresh_soon(&self.st);
            return Err(Error::locked());
        }
        for p in items {
            // Unknown paths are skipped, as other providers do.
            let Some(name) = self.st.served_item(p.as_str()) else {
                continue;
            };
            match store.entry_by_name(&name) {
                Ok(e) => {
                    out.insert(
                        p,
                        encode_typed(&key, session.as_str(), &e.secret, content_type(&e)),
                    );
                }
                Err(libkeyring::Error::NoEntry { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    #[zbus(out_args("collection"))]
    async fn read_alias(&self, name: &str) -> OwnedObjectPath {
        match name {
            "default" | "login" => path(COLLECTION_PATH),
            "session" => path(SESSION_COLLECTION_PATH),
            _ => root(),
        }
    }

    /// The aliases are fixed: `default` and `login` name the login collection (the store),
    /// `session` the session collection. Setting one to what it names already succeeds.
    async fn set_alias(&self, name: &str, collection: ObjectPath<'_>) -> Result<(), Error> {
        let c = collection.as_str();
        let ok = match name {
            "default" | "login" => is_collection(c),
            "session" => is_session_collection(c),
            _ => {
                return Err(Error::NotSupported(format!(
                    "keyringrs has the aliases `default`, `login` and `session` only, not {name:?}"
                )))
            }
        };
        if ok {
            return Ok(());
        }
        let known = is_collection(c) || is_session_collection(c);
        Err(Error::NotSupported(format!(
            "the alias {name:?} names the {} collection and cannot be moved{}",
            if name == "session" {
                "session"
            } else {
                "login"
            },
            if known {
                String::new()
            } else {
                format!(" (and {c} is no collection of ours)")
            }
        )))
    }

    #[zbus(property)]
    async fn collections(&self) -> Vec<OwnedObjectPath> {
        vec![path(COLLECTION_PATH), path(SESSION_COLLECTION_PATH)]
    }

    #[zbus(signal)]
    async fn collection_created(
        emitter: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn collection_deleted(
        emitter: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn collection_changed(
        emitter: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;
}
