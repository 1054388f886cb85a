//! org.freedesktop.Secret.Item: one item of either collection, over its backend (backend.rs),
//! at `<collection path>/<id>`: the store's at `.../collection/login/<64 hex>` (on the bus only
//! while the store is unlocked), the session's at `.../collection/session/<32 hex>`. Every call
//! reads the item now; one gone takes its object off the bus.
//!
//! Also the registry of the item objects on the bus (which are served: `State::served`):
//! serving them, dropping the gone ones, and following the store's lock state (its items hidden
//! while locked, served again on unlock). It is here because an item removes itself when it
//! finds its entry gone, and the registry creates items: one file, no import cycle.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use crate::backend::{Backend, Found, ItemData, Kind, Miss};
use crate::error::Error;
use crate::locked_result::{is_result, LockedResult};
use crate::paths::{path, root};
use crate::signals::{self, ItemEvent};
use crate::state::{encode_typed, lock, log, open_secret, sender, Secret, SecretOut, State};

/// An item object: the item `id` of `kind`'s collection.
#[derive(Debug)]
pub struct Item {
    st: Arc<State>,
    kind: Kind,
    id: String,
}

impl Item {
    /// The item `id` of `kind` (served at its own path, or at a locked search's result path).
    pub(crate) fn new(st: Arc<State>, kind: Kind, id: String) -> Item {
        Item { st, kind, id }
    }

    fn backend(&self) -> &dyn Backend {
        self.st.backend(self.kind)
    }

    /// A backend's answer about this item. A gone item takes the object off the bus, a locked
    /// store all the store's (from tasks of their own: this also runs inside property getters,
    /// which may not wait for the item registry).
    fn settle<T>(&self, r: Result<T, Miss>) -> Result<T, Error> {
        if let Err(Miss::Gone(_)) = &r {
            self.gone_soon();
        }
        answer(&self.st, r)
    }

    fn gone_soon(&self) {
        let st = self.st.clone();
        let (kind, id) = (self.kind, self.id.clone());
        tokio::spawn(async move { gone(&st, kind, &id).await });
    }

    /// The item, read now (the caller drops it before returning).
    fn read(&self) -> Result<ItemData, Error> {
        self.settle(self.backend().read(&self.id))
    }

    /// A change made by the backend; then ItemChanged.
    async fn changed(&self, r: Result<(), Miss>) -> Result<(), Error> {
        self.settle(r)?;
        let _ = signals::item(self.st.conn(), self.kind, ItemEvent::Changed, &self.id).await;
        Ok(())
    }
}

#[interface(name = "org.freedesktop.Secret.Item")]
impl Item {
    #[zbus(out_args("Prompt"))]
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        self.settle(self.backend().delete(&self.id))?;
        // Not from inside our own call: it may run inside the object server's dispatch.
        self.gone_soon();
        Ok(root())
    }

    #[zbus(out_args("secret"))]
    async fn get_secret(
        &self,
        session: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(SecretOut,), Error> {
        let key = self.st.session_key(session.as_str(), &sender(&hdr)?)?;
        let item = self.read()?;
        Ok((encode_typed(
            &key,
            session.as_str(),
            &item.secret,
            &item.content_type,
        ),))
    }

    async fn set_secret(
        &self,
        mut secret: Secret,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let plaintext = open_secret(&self.st, &mut secret, &hdr)?;
        let content_type = std::mem::take(&mut secret.3);
        let r = self.backend().set_secret(&self.id, plaintext, content_type);
        self.changed(r).await
    }

    #[zbus(property)]
    async fn locked(&self) -> bool {
        self.backend().is_locked()
    }

    #[zbus(property)]
    async fn attributes(&self) -> zbus::fdo::Result<HashMap<String, String>> {
        Ok(self.read()?.attributes.clone().into_iter().collect())
    }

    #[zbus(property)]
    async fn set_attributes(&self, attrs: HashMap<String, String>) -> zbus::fdo::Result<()> {
        let r = self.backend().set_attributes(&self.id, attrs);
        Ok(self.changed(r).await?)
    }

    #[zbus(property)]
    async fn label(&self) -> zbus::fdo::Result<String> {
        Ok(self.read()?.label.clone())
    }

    #[zbus(property)]
    async fn set_label(&self, label: String) -> zbus::fdo::Result<()> {
        let r = self.backend().set_label(&self.id, label);
        Ok(self.changed(r).await?)
    }

    #[zbus(property)]
    async fn created(&self) -> zbus::fdo::Result<u64> {
        Ok(self.read()?.created)
    }

    #[zbus(property)]
    async fn modified(&self) -> zbus::fdo::Result<u64> {
        Ok(self.read()?.modified)
    }
}

/// A backend's answer for the client: a locked store is followed now (from a task of its own)
/// and answered IsLocked.
pub(crate) fn answer<T>(st: &Arc<State>, r: Result<T, Miss>) -> Result<T, Error> {
    r.map_err(|m| match m {
        Miss::Locked => {
            refresh_soon(st);
            Error::locked()
        }
        Miss::Gone(e) | Miss::Failed(e) => e,
    })
}

// ---------------------------------------------------------------------------------------------
// The registry

/// Serve the items `ids` of `kind` as item objects (those not served yet). Nothing is served if
/// the collection is locked by now (the read that found them raced with a lock). Never call
/// this from a property getter (see state.rs's locking rules).
pub(crate) async fn serve(st: &Arc<State>, kind: Kind, ids: &[String]) {
    // The usual case (every lookup): all served already.
    {
        let served = lock(st.served(kind));
        if ids.iter().all(|id| served.contains(id)) {
            return;
        }
    }
    let _registry = st.registry.lock().await;
    if st.backend(kind).is_locked() {
        return;
    }
    let new: Vec<String> = {
        let mut served = lock(st.served(kind));
        ids.iter()
            .filter(|id| served.insert((*id).clone()))
            .cloned()
            .collect()
    };
    let server = st.conn().object_server();
    for id in new {
        let p = kind.item_path(&id);
        let item = Item {
            st: st.clone(),
            kind,
            id,
        };
        if let Err(e) = server.at(p.as_ref(), item).await {
            log(format!("cannot serve {p}: {e}"));
        }
    }
}

/// The item `id` of `kind` is gone: stop serving it, tell clients (once).
pub(crate) async fn gone(st: &Arc<State>, kind: Kind, id: &str) {
    {
        let _registry = st.registry.lock().await;
        if !lock(st.served(kind)).remove(id) {
            return;
        }
        let _ = st
            .conn()
            .object_server()
            .remove::<Item, _>(kind.item_path(id).as_ref())
            .await;
    }
    let _ = signals::item(st.conn(), kind, ItemEvent::Deleted, id).await;
    signals::items_changed(st.conn(), kind).await;
}

/// Make `kind`'s item objects match a complete listing: serve the new ones; drop the served
/// ones the listing lacks, once the backend confirms they are gone (so that an incomplete
/// listing can never make the daemon report an item deleted).
pub(crate) async fn reconcile(st: &Arc<State>, kind: Kind, listing: Vec<String>) {
    serve(st, kind, &listing).await;
    let listed: HashSet<&str> = listing.iter().map(String::as_str).collect();
    let missing: Vec<String> = lock(st.served(kind))
        .iter()
        .filter(|id| !listed.contains(id.as_str()))
        .cloned()
        .collect();
    for id in missing {
        // Written after the listing was taken, locked meanwhile, or unreadable: kept (decided
        // on a later listing).
        if st.backend(kind).is_gone(&id) {
            gone(st, kind, &id).await;
        }
    }
}

/// Every item of `kind`, served (method calls only: this waits for the item registry).
pub(crate) async fn all_items(st: &Arc<State>, kind: Kind) -> Result<Vec<OwnedObjectPath>, Error> {
    let ids = st.backend(kind).list()?;
    reconcile(st, kind, ids.clone()).await;
    Ok(ids.iter().map(|id| kind.item_path(id)).collect())
}

/// The items of `kind` whose attributes contain all of `query`, served; a locked store (or
/// none yet) finds nothing.
pub(crate) async fn search(
    st: &Arc<State>,
    kind: Kind,
    query: &HashMap<String, String>,
) -> Result<Vec<OwnedObjectPath>, Error> {
    match st.backend(kind).search(query) {
        Ok(Found { matches, listing }) => {
            match listing {
                Some(all) => reconcile(st, kind, all).await,
                None => serve(st, kind, &matches).await,
            }
            Ok(matches.iter().map(|id| kind.item_path(id)).collect())
        }
        Err(Error::IsLocked(_)) => {
            refresh_soon(st);
            Ok(vec![])
        }
        Err(e) => Err(e),
    }
}

/// The id of the item of `kind` served at `p`.
pub(crate) fn served_id(st: &State, kind: Kind, p: &str) -> Option<String> {
    let id = kind.item_id(p)?;
    lock(st.served(kind)).contains(id).then(|| id.to_string())
}

/// The objects of `objects` that exist in the store's collection (it, and its served items).
pub(crate) fn known_objects(st: &State, objects: &[OwnedObjectPath]) -> Vec<OwnedObjectPath> {
    let kind = Kind::Login;
    objects
        .iter()
        .filter(|p| kind.is_collection(p.as_str()) || served_id(st, kind, p.as_str()).is_some())
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Following the store's lock state

/// Is `kind`'s collection locked now? A store lock state the daemon has not followed yet is
/// followed now, from a task of its own (clients read Locked after unlocking).
pub(crate) fn locked_now(st: &Arc<State>, kind: Kind) -> bool {
    let locked = st.backend(kind).is_locked();
    if kind.info().lockable && st.lock_state_differs(locked) {
        refresh_soon(st);
    }
    locked
}

/// Look at the lock state now, from a task of its own (for calls that found the store locked,
/// and property getters, which may not wait for the item registry).
pub(crate) fn refresh_soon(st: &Arc<State>) {
    let st = st.clone();
    tokio::spawn(async move { refresh_lock_state(&st).await });
}

/// Take every store item object off the bus (the store is locked): no ItemDeleted, the items
/// are not deleted; they come back at the same paths on unlock.
async fn hide_items(st: &Arc<State>) {
    drop_resolved(st).await;
    let _registry = st.registry.lock().await;
    let names: Vec<String> = lock(st.served(Kind::Login)).drain().collect();
    if names.is_empty() {
        return;
    }
    let server = st.conn().object_server();
    for name in &names {
        let _ = server
            .remove::<Item, _>(Kind::Login.item_path(name).as_ref())
            .await;
    }
    log(format!(
        "the store is locked: {} item objects taken off the bus",
        names.len()
    ));
}

/// Follow the kernel key: while the store is locked no item object of it is on the bus; when
/// it comes or goes, emit the changes (and serve the items again on unlock).
pub async fn refresh_lock_state(st: &Arc<State>) {
    let _one_at_a_time = st.refresh.lock().await;
    let kind = Kind::Login;
    let locked = st.backend(kind).is_locked();
    if locked {
        hide_items(st).await;
    }
    if !st.note_lock_state(locked) {
        return;
    }
    log(if locked {
        "the store is now locked"
    } else {
        "the store is now unlocked"
    });
    for at in kind.paths() {
        signals::locked_changed(st.conn(), at, locked_now(st, kind)).await;
        signals::items_invalidated(st.conn(), at).await;
    }
    signals::collection_changed(st.conn(), kind).await;
    if !locked {
        if let Err(e) = all_items(st, kind).await {
            log(format!("listing items after unlock: {e}"));
        }
        resolve_all(st).await;
        // A policy's lock is over: its note goes.
        if let Ok(store) = st.login.store() {
            let _ = libkeyring::lock_note::clear(store.kernel_key());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Locked search results (locked_result.rs) once the store opens

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
    serve(st, kind, &matches).await;
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
pub(crate) fn result_target(st: &State, p: &str) -> Option<String> {
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
