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
//! Each belongs to the client that searched, bounded in number like prompts, and goes with the
//! client, after the prompt timeout, or (once it became an item) when the store locks again.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use crate::backend::{Found, Kind};
use crate::error::Error;
use crate::item::{self, Item};
use crate::paths::{path, RESULT_PREFIX};
use crate::signals;
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

/// The store is open: the items matching the results `objects` (all of them, once each),
/// each result made the newest of its matches (or taken off the bus).
pub(crate) async fn resolve(st: &Arc<State>, objects: &[OwnedObjectPath]) -> Vec<OwnedObjectPath> {
    let mut out: Vec<OwnedObjectPath> = Vec::new();
    for p in objects.iter().filter(|p| is_result(p.as_str())) {
        for m in resolve_one(st, p.as_str()).await {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    out
}

/// Resolve every pending result (the store was unlocked).
pub(crate) async fn resolve_all(st: &Arc<State>) {
    let pending: Vec<String> = lock(&st.results)
        .iter()
        .filter(|(_, r)| !r.resolved)
        .map(|(p, _)| p.clone())
        .collect();
    for p in pending {
        resolve_one(st, &p).await;
    }
}

async fn resolve_one(st: &Arc<State>, p: &str) -> Vec<OwnedObjectPath> {
    let Some(attributes) = lock(&st.results).get(p).map(|r| r.attributes.clone()) else {
        return vec![];
    };
    let kind = Kind::Login;
    let Ok(Found { matches, .. }) = st.backend(kind).search(&attributes) else {
        return vec![];
    };
    item::serve(st, kind, &matches).await;
    let newest = matches
        .iter()
        .filter_map(|id| Some((st.backend(kind).read(id).ok()?.modified, id)))
        .max()
        .map(|(_, id)| id.clone());
    let newest_data = newest
        .as_ref()
        .and_then(|id| st.backend(kind).read(id).ok());
    let server = st.conn().object_server();
    let was_locked = match lock(&st.results).get_mut(p) {
        Some(r) if !r.resolved => {
            r.resolved = true;
            true
        }
        Some(_) => false,
        None => return vec![],
    };
    if was_locked {
        let _ = server.remove::<LockedResult, _>(p).await;
        if let (Some(id), Some(data)) = (&newest, &newest_data) {
            let _ = server.at(p, Item::new(st.clone(), kind, id.clone())).await;
            signals::item_became(st.conn(), p, data).await;
        }
        if let Some(r) = lock(&st.results).get_mut(p) {
            r.target = newest;
        }
    }
    // The result itself first (the newest match now: libsecret unlocks the objects it loaded
    // and reads those the answer names), then every match at its own path.
    let target = lock(&st.results).get(p).and_then(|r| r.target.clone());
    target
        .map(|_| path(p))
        .into_iter()
        .chain(matches.iter().map(|id| kind.item_path(id)))
        .collect()
}

/// The item the result at `p` became (the store was opened since), if it is one.
pub(crate) fn target(st: &State, p: &str) -> Option<String> {
    lock(&st.results).get(p).and_then(|r| r.target.clone())
}

/// Take the results at `paths` off the bus (their client left, or they expired).
pub(crate) async fn drop_results(st: &Arc<State>, paths: &[String]) {
    let server = st.conn().object_server();
    for p in paths {
        let _ = server.remove::<LockedResult, _>(p.as_str()).await;
        let _ = server.remove::<Item, _>(p.as_str()).await;
    }
}

/// The store is locked again: the results that became items go (their items leave the bus
/// as every item does).
pub(crate) async fn drop_resolved(st: &Arc<State>) {
    let resolved: Vec<String> = {
        let mut results = lock(&st.results);
        let resolved: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.resolved)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &resolved {
            results.remove(p);
        }
        resolved
    };
    drop_results(st, &resolved).await;
}

/// Take the results older than the prompt timeout off the bus.
pub(crate) async fn expire_results(st: &Arc<State>) {
    let old: Vec<String> = {
        let mut results = lock(&st.results);
        let old: Vec<String> = results
            .iter()
            .filter(|(_, r)| r.created.elapsed() >= st.prompt_timeout)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &old {
            results.remove(p);
        }
        old
    };
    drop_results(st, &old).await;
}
