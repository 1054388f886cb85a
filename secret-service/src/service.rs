//! org.freedesktop.Secret.Service at `/org/freedesktop/secrets`.
//!
//! Paths (see docs/SECRET-SERVICE.md):
//! - `/org/freedesktop/secrets`                          Service (this file)
//! - `/org/freedesktop/secrets/collection/login`         Collection (also at `aliases/default`),
//!   collection.rs, over the store (store_backend.rs)
//! - `/org/freedesktop/secrets/collection/login/<hex>`   Item; `<hex>` is the entry's file name;
//!   item.rs; on the bus only while the store is unlocked
//! - `/org/freedesktop/secrets/collection/session`       Collection (also at `aliases/session`),
//!   collection.rs, over kernel keys (session_backend.rs); its items at `.../session/<32 hex>`
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

use crate::backend::{Backend, Kind, Miss};
use crate::crypto::{self, SessionKey};
use crate::error::Error;
use crate::item::{answer, known_objects, refresh_lock_state, search, served_id};
use crate::item::{resolve, result_target};
use crate::locked_result::new_result;
use crate::paths::{path, root};
use crate::prompt::new_prompt;
use crate::session::SessionObject;
use crate::state::{encode_typed, lock, sender, SecretOut, State};

pub use crate::paths::{ALIAS_PATH, BUS_NAME, SERVICE_PATH};

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
        match Kind::of_alias(alias) {
            Some(kind) => Ok((kind.path(), root())),
            None => Err(Error::NotSupported(
                "keyringrs serves two collections, `login` (alias `default`) and `session`; it cannot create others"
                    .into(),
            )),
        }
    }

    #[zbus(out_args("unlocked", "locked"))]
    async fn search_items(
        &self,
        attributes: HashMap<String, String>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>), Error> {
        // Session items are never locked. A locked store cannot be searched, not even for which
        // items exist: its answer is one locked result that unlocking turns into the matches
        // (locked_result.rs).
        let mut found = search(&self.st, Kind::Session, &attributes).await?;
        if self.st.login.is_locked() && self.st.login.store().is_ok() {
            let result = new_result(&self.st, &sender(&hdr)?, attributes).await?;
            return Ok((found, vec![result]));
        }
        found.extend(search(&self.st, Kind::Login, &attributes).await?);
        Ok((found, vec![]))
    }

    #[zbus(out_args("unlocked", "prompt"))]
    async fn unlock(
        &self,
        objects: Vec<OwnedObjectPath>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Vec<OwnedObjectPath>, OwnedObjectPath), Error> {
        // The session collection and its items are never locked.
        let kind = Kind::Session;
        let (session, objects): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = objects
            .into_iter()
            .partition(|p| kind.is_collection(p.as_str()) || kind.item_id(p.as_str()).is_some());
        // Those that exist.
        let mut unlocked: Vec<OwnedObjectPath> = session
            .into_iter()
            .filter(|p| {
                kind.is_collection(p.as_str())
                    || kind
                        .item_id(p.as_str())
                        .is_some_and(|id| !self.st.session_keys.is_gone(id))
            })
            .collect();
        if !self.st.login.is_locked() {
            // Unlocked behind the daemon's back (keyringrs unlock): serve the items first.
            if self.st.lock_state_differs(false) {
                refresh_lock_state(&self.st).await;
            }
            unlocked.extend(known_objects(&self.st, &objects));
            unlocked.extend(resolve(&self.st, &objects).await);
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
            self.st.login.store()?.lock()?;
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
        let session_kind = Kind::Session;
        let (session_items, items): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = items
            .into_iter()
            .partition(|p| session_kind.item_id(p.as_str()).is_some());
        for p in session_items {
            let Some(Ok(item)) = session_kind
                .item_id(p.as_str())
                .map(|id| self.st.session_keys.read(id))
            else {
                continue;
            };
            let secret = encode_typed(&key, session.as_str(), &item.secret, &item.content_type);
            out.insert(p, secret);
        }
        if items.is_empty() {
            return Ok(out);
        }
        // Locked: no item is served, but the answer is IsLocked, not an empty map.
        answer(&self.st, self.st.login.check_open())?;
        for p in items {
            // Unknown paths are skipped, as other providers do.
            let id = served_id(&self.st, Kind::Login, p.as_str())
                .or_else(|| result_target(&self.st, p.as_str()));
            let Some(id) = id else {
                continue;
            };
            match self.st.login.read(&id) {
                Ok(e) => {
                    out.insert(
                        p,
                        encode_typed(&key, session.as_str(), &e.secret, &e.content_type),
                    );
                }
                Err(Miss::Gone(_)) => continue,
                Err(Miss::Locked) => return Err(Error::locked()),
                Err(Miss::Failed(e)) => return Err(e),
            }
        }
        Ok(out)
    }

    #[zbus(out_args("collection"))]
    async fn read_alias(&self, name: &str) -> OwnedObjectPath {
        Kind::of_alias(name).map_or_else(root, Kind::path)
    }

    /// The aliases are fixed: `default` and `login` name the login collection (the store),
    /// `session` the session collection. Setting one to what it names already succeeds.
    async fn set_alias(&self, name: &str, collection: ObjectPath<'_>) -> Result<(), Error> {
        let c = collection.as_str();
        let Some(kind) = Kind::of_alias(name) else {
            return Err(Error::NotSupported(format!(
                "keyringrs has the aliases `default`, `login` and `session` only, not {name:?}"
            )));
        };
        if kind.is_collection(c) {
            return Ok(());
        }
        let known = Kind::ALL.iter().any(|k| k.is_collection(c));
        Err(Error::NotSupported(format!(
            "the alias {name:?} names the {} collection and cannot be moved{}",
            kind.info().name,
            if known {
                String::new()
            } else {
                format!(" (and {c} is no collection of ours)")
            }
        )))
    }

    #[zbus(property)]
    async fn collections(&self) -> Vec<OwnedObjectPath> {
        Kind::ALL.map(Kind::path).to_vec()
    }

    #[zbus(signal)]
    async fn collection_created(
        e: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn collection_deleted(
        e: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn collection_changed(
        e: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;
}
