//! A search while the store is locked: org.freedesktop.Secret.Item at
//! `/org/freedesktop/secrets/collection/login/locked_<n>`, what `SearchItems` returns in
//! `locked` instead of nothing (a locked store cannot be searched: its index is keyed by the
//! master key). So a client asked to unlock what it searched for unlocks it, and is answered
//! with exactly the items that match once it is open (docs/SECRET-SERVICE.md, "Searching a
//! locked store"):
//!
//! - until then the object is locked: `Locked` true, `Attributes` the ones searched for (the
//!   client's own; nothing of the store), every read IsLocked;
//! - when the store unlocks, by any way, the object becomes the newest matching item, at the
//!   same path (what libsecret's search and SecretStorage read next), or leaves the bus when
//!   nothing matches;
//! - `Unlock` of it, and its prompt's `Completed`, answer its path (when it became an item)
//!   and then every matching item's own path: libsecret's lookup (`secret-tool lookup`, git's
//!   helper, `secret_password_lookup`) reads the first, libsecret's search (Chromium) reads
//!   the objects it loaded that the answer names; `GetSecrets` takes its path too.
//!
//! What becomes of a result when the store opens (and when it locks again, expires or its client
//! leaves) is item.rs's: the registry of the item objects on the bus.
//!
//! Each belongs to the client that searched, bounded in number like prompts, and goes with the
//! client, after the prompt timeout, or (once it became an item) when the store locks again.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use crate::error::Error;
use crate::paths::{path, RESULT_PREFIX};
use crate::state::{lock, Secret, State};

#[derive(Debug)]
pub struct LockedResult {
    attributes: HashMap<String, String>,
}

#[interface(name = "org.freedesktop.Secret.Item")]
impl LockedResult {
    #[zbus(out_args("Prompt"))]
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        Err(Error::locked())
    }

    #[zbus(out_args("secret"))]
    async fn get_secret(&self, _session: ObjectPath<'_>) -> Result<(Secret,), Error> {
        Err(Error::locked())
    }

    async fn set_secret(&self, _secret: Secret) -> Result<(), Error> {
        Err(Error::locked())
    }

    #[zbus(property)]
    async fn locked(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn attributes(&self) -> HashMap<String, String> {
        self.attributes.clone()
    }

    #[zbus(property)]
    async fn set_attributes(&self, _attrs: HashMap<String, String>) -> zbus::fdo::Result<()> {
        Err(Error::locked().into())
    }

    #[zbus(property)]
    async fn label(&self) -> String {
        String::new()
    }

    #[zbus(property)]
    async fn set_label(&self, _label: String) -> zbus::fdo::Result<()> {
        Err(Error::locked().into())
    }

    #[zbus(property)]
    async fn created(&self) -> u64 {
        0
    }

    #[zbus(property)]
    async fn modified(&self) -> u64 {
        0
    }
}

/// Is `p` a locked search result's path?
pub(crate) fn is_result(p: &str) -> bool {
    p.strip_prefix(RESULT_PREFIX)
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// A locked result of `owner`'s search for `attributes`, on the bus; its path.
pub(crate) async fn new_result(
    st: &Arc<State>,
    owner: &str,
    attributes: HashMap<String, String>,
) -> Result<OwnedObjectPath, Error> {
    let p = st.add_result(owner, attributes.clone())?;
    let server = st.conn().object_server();
    if let Err(e) = server.at(p.as_str(), LockedResult { attributes }).await {
        lock(&st.results).remove(&p);
        return Err(e.into());
    }
    if !lock(&st.results).contains_key(&p) {
        let _ = server.remove::<LockedResult, _>(p.as_str()).await;
    }
    Ok(path(&p))
}
