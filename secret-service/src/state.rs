//! What all D-Bus objects share: the store, the open sessions and pending prompts (each owned by
//! the client that made it, within limits), and the item objects on the bus (only while the
//! store is unlocked).
//!
//! Locking rules (zbus holds its object tree's read lock while it runs a property getter, and
//! registering or removing an object needs the write lock):
//! - the item registry (`State::registry`, an async mutex) is held while item objects are added
//!   to or removed from the object server; a property getter must never wait for it (getters
//!   spawn what needs it instead);
//! - `State::create` serializes `CreateItem`'s look-up-then-write, `State::refresh` the following
//!   of the lock state; each is taken before `registry`, never after, and never together.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use libkeyring::{EntryData, Store};
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, Type};
use zbus::Connection;
use zeroize::Zeroizing;

use crate::collection::Collection;
use crate::crypto::SessionKey;
use crate::error::Error;
use crate::item::Item;
use crate::mapping;
use crate::service::Service;

pub const BUS_NAME: &str = "org.freedesktop.secrets";
pub const SERVICE_PATH: &str = "/org/freedesktop/secrets";
pub const COLLECTION_PATH: &str = "/org/freedesktop/secrets/collection/login";
pub const ALIAS_PATH: &str = "/org/freedesktop/secrets/aliases/default";
pub(crate) const ITEM_PREFIX: &str = "/org/freedesktop/secrets/collection/login/";
pub(crate) const SESSION_PREFIX: &str = "/org/freedesktop/secrets/session/s";
pub(crate) const PROMPT_PREFIX: &str = "/org/freedesktop/secrets/prompt/p";
/// What GetSecret reports: the store keeps no content type.
pub(crate) const CONTENT_TYPE: &str = "text/plain";

// Limits (docs/SECRET-SERVICE.md, "Limits"). A client is a unique bus name (one connection).

/// Open sessions one client may have; `OpenSession` beyond it answers LimitsExceeded.
pub const MAX_SESSIONS_PER_CLIENT: usize = 64;
/// Open sessions of all clients together.
pub const MAX_SESSIONS: usize = 4096;
/// Pending (not completed) prompts one client may have; `Unlock` beyond it answers
/// LimitsExceeded.
pub const MAX_PROMPTS_PER_CLIENT: usize = 16;
/// Pending prompts of all clients together.
pub const MAX_PROMPTS: usize = 256;
/// Object paths a prompt keeps to report in `Completed` (the rest are unlocked all the same:
/// the store unlocks as a whole).
pub const MAX_PROMPT_OBJECTS: usize = 256;
/// A prompt not completed by then is dismissed and dropped (`$KEYRINGRS_PROMPT_TIMEOUT`
/// seconds overrides it).
pub const PROMPT_TIMEOUT: Duration = Duration::from_secs(300);
/// How often owners of sessions and prompts are checked to still be on the bus (besides
/// NameOwnerChanged, which may be processed before a call its client sent just before leaving).
pub const OWNER_SWEEP: Duration = Duration::from_secs(30);

/// A secret on the wire: (session, parameters, value, content_type), signature `(oayays)`.
pub type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

/// A secret the daemon sends: its value is wiped when the reply has been built.
pub type SecretOut = (OwnedObjectPath, Vec<u8>, WipedBytes, String);

/// Bytes sent as `ay` and wiped on drop.
#[derive(Debug, Default)]
pub struct WipedBytes(pub Zeroizing<Vec<u8>>);

impl serde::Serialize for WipedBytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl Type for WipedBytes {
    const SIGNATURE: &'static zbus::zvariant::Signature = <Vec<u8> as Type>::SIGNATURE;
}

pub(crate) fn path(s: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(s.to_string()).expect("valid object path")
}

pub(crate) fn root() -> OwnedObjectPath {
    path("/")
}

pub(crate) fn log(msg: impl std::fmt::Display) {
    eprintln!("keyringrs-secret-service: {msg}");
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn sender(hdr: &Header<'_>) -> Result<String, Error> {
    hdr.sender()
        .map(|s| s.to_string())
        .ok_or_else(|| Error::AccessDenied("a call without a sender".into()))
}

pub(crate) fn item_path(name: &str) -> OwnedObjectPath {
    path(&format!("{ITEM_PREFIX}{name}"))
}

/// Is `p` the path of an item (the collection's prefix and a 64-hex entry name)?
pub(crate) fn is_item_path(p: &str) -> bool {
    p.strip_prefix(ITEM_PREFIX)
        .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()))
}

pub(crate) fn is_collection(p: &str) -> bool {
    p == COLLECTION_PATH || p == ALIAS_PATH
}

/// An entry's content type (entries written without one, e.g. by the CLI: text/plain).
pub(crate) fn content_type(e: &EntryData) -> &str {
    if e.content_type.is_empty() {
        CONTENT_TYPE
    } else {
        &e.content_type
    }
}

/// `encode` with the item's content type.
pub(crate) fn encode_typed(
    key: &SessionKey,
    session: &str,
    secret: &[u8],
    content_type: &str,
) -> SecretOut {
    let (params, value) = key.encrypt(secret);
    (
        path(session),
        params,
        WipedBytes(Zeroizing::new(value)),
        content_type.into(),
    )
}

#[derive(Debug)]
pub(crate) struct SessionInfo {
    pub owner: String,
    pub key: SessionKey,
}

#[derive(Debug)]
pub(crate) struct PromptInfo {
    pub owner: String,
    pub created: Instant,
}

fn session_room(sessions: &HashMap<String, SessionInfo>, owner: &str) -> Result<(), Error> {
    let mine = sessions.values().filter(|s| s.owner == owner).count();
    if mine >= MAX_SESSIONS_PER_CLIENT {
        return Err(Error::LimitsExceeded(format!(
            "this client has {mine} open sessions, the most one client may have ({MAX_SESSIONS_PER_CLIENT}): close the ones it no longer uses (Session.Close)"
        )));
    }
    if sessions.len() >= MAX_SESSIONS {
        return Err(Error::LimitsExceeded(format!(
            "the daemon has {MAX_SESSIONS} open sessions, its limit: try again when clients have closed some"
        )));
    }
    Ok(())
}

/// What all objects share.
#[derive(Debug)]
pub struct State {
    pub(crate) store_path: PathBuf,
    store: Mutex<Option<Arc<Store>>>,
    pub(crate) sessions: Mutex<HashMap<String, SessionInfo>>,
    pub(crate) prompts: Mutex<HashMap<String, PromptInfo>>,
    /// Item objects on the bus, by entry name (hex). Empty while locked.
    items: Mutex<HashSet<String>>,
    /// Session items (kernel_items.rs) on the bus, by id.
    pub(crate) session_items: Mutex<HashSet<String>>,
    /// Held while item objects are added to or removed from the object server.
    pub(crate) registry: tokio::sync::Mutex<()>,
    /// Serializes following the lock state (so a stale look can never undo a newer one).
    refresh: tokio::sync::Mutex<()>,
    /// Serializes CreateItem (a look-up of the item to replace, then the write).
    pub(crate) create: tokio::sync::Mutex<()>,
    /// One askpass dialog at a time.
    pub(crate) askpass: Mutex<()>,
    counter: AtomicU64,
    last_locked: Mutex<Option<bool>>,
    pub(crate) prompt_timeout: Duration,
    /// When the daemon started (the session collection's `Created`).
    pub(crate) started: u64,
    conn: OnceLock<Connection>,
}

impl State {
    pub fn new(store_path: PathBuf) -> Arc<State> {
        let prompt_timeout = std::env::var("KEYRINGRS_PROMPT_TIMEOUT")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|s| *s > 0)
            .map_or(PROMPT_TIMEOUT, Duration::from_secs);
        Arc::new(State {
            store_path,
            store: Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            prompts: Mutex::new(HashMap::new()),
            items: Mutex::new(HashSet::new()),
            session_items: Mutex::new(HashSet::new()),
            registry: tokio::sync::Mutex::new(()),
            refresh: tokio::sync::Mutex::new(()),
            create: tokio::sync::Mutex::new(()),
            askpass: Mutex::new(()),
            counter: AtomicU64::new(1),
            last_locked: Mutex::new(None),
            prompt_timeout,
            started: crate::kernel_items::now(),
            conn: OnceLock::new(),
        })
    }

    pub(crate) fn set_conn(&self, conn: Connection) -> Result<(), String> {
        self.conn
            .set(conn)
            .map_err(|_| "connection set twice".to_string())
    }

    pub(crate) fn conn(&self) -> &Connection {
        self.conn.get().expect("connection set before serving")
    }

    /// The store, opened on first use (it may be created after the daemon starts).
    pub(crate) fn store(&self) -> Result<Arc<Store>, Error> {
        let mut g = lock(&self.store);
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Store::open(&self.store_path)?);
        *g = Some(s.clone());
        Ok(s)
    }

    pub(crate) fn is_locked(&self) -> bool {
        self.store()
            .and_then(|s| s.is_locked().map_err(Error::from))
            .unwrap_or(true)
    }

    /// Is `locked` not what the daemon last acted on?
    pub(crate) fn lock_state_differs(&self, locked: bool) -> bool {
        lock(&self.last_locked).is_some_and(|last| last != locked)
    }

    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The transfer key of `session` if `caller` opened it.
    pub(crate) fn session_key(&self, session: &str, caller: &str) -> Result<SessionKey, Error> {
        match lock(&self.sessions).get(session) {
            Some(s) if s.owner == caller => Ok(s.key.clone()),
            _ => Err(Error::NoSession(format!(
                "{session} is not a session open by this client"
            ))),
        }
    }

    /// May `owner` open one more session?
    pub(crate) fn check_session_room(&self, owner: &str) -> Result<(), Error> {
        session_room(&lock(&self.sessions), owner)
    }

    /// A new session of `owner` (its path), within the limits.
    pub(crate) fn add_session(&self, owner: &str, key: SessionKey) -> Result<String, Error> {
        let mut sessions = lock(&self.sessions);
        session_room(&sessions, owner)?;
        let p = format!("{SESSION_PREFIX}{}", self.next_id());
        sessions.insert(
            p.clone(),
            SessionInfo {
                owner: owner.to_string(),
                key,
            },
        );
        Ok(p)
    }

    /// A new pending prompt of `owner` (its path), within the limits.
    pub(crate) fn add_prompt(&self, owner: &str) -> Result<String, Error> {
        let mut prompts = lock(&self.prompts);
        let mine = prompts.values().filter(|p| p.owner == owner).count();
        if mine >= MAX_PROMPTS_PER_CLIENT {
            return Err(Error::LimitsExceeded(format!(
                "this client has {mine} pending prompts, the most one client may have ({MAX_PROMPTS_PER_CLIENT}): complete them (Prompt) or dismiss them (Dismiss)"
            )));
        }
        if prompts.len() >= MAX_PROMPTS {
            return Err(Error::LimitsExceeded(format!(
                "the daemon has {MAX_PROMPTS} pending prompts, its limit: try again later"
            )));
        }
        let p = format!("{PROMPT_PREFIX}{}", self.next_id());
        prompts.insert(
            p.clone(),
            PromptInfo {
                owner: owner.to_string(),
                created: Instant::now(),
            },
        );
        Ok(p)
    }

    /// Is `caller` the owner of the pending prompt `p`?
    pub(crate) fn check_prompt_owner(&self, p: &str, caller: &str) -> Result<(), Error> {
        match lock(&self.prompts).get(p) {
            Some(info) if info.owner == caller => Ok(()),
            Some(_) => Err(Error::AccessDenied(
                "only the client that asked for a prompt may use it".into(),
            )),
            None => Err(Error::NoSuchObject("the prompt is completed".into())),
        }
    }

    /// The distinct owners of sessions and prompts.
    pub(crate) fn owners(&self) -> HashSet<String> {
        let mut owners: HashSet<String> = lock(&self.sessions)
            .values()
            .map(|s| s.owner.clone())
            .collect();
        owners.extend(lock(&self.prompts).values().map(|p| p.owner.clone()));
        owners
    }

    /// The entry name of the item served at `p`.
    pub(crate) fn served_item(&self, p: &str) -> Option<String> {
        let name = p.strip_prefix(ITEM_PREFIX)?;
        lock(&self.items).contains(name).then(|| name.to_string())
    }

    #[cfg(test)]
    fn served_items(&self) -> usize {
        lock(&self.items).len()
    }
}

/// Remove the objects of the sessions and prompts at `paths` (already out of the maps).
async fn remove_objects(st: &Arc<State>, sessions: &[String], prompts: &[String]) {
    let server = st.conn().object_server();
    for p in sessions {
        let _ = server
            .remove::<crate::session::SessionObject, _>(p.as_str())
            .await;
    }
    for p in prompts {
        let _ = server
            .remove::<crate::prompt::PromptObject, _>(p.as_str())
            .await;
    }
}

/// `owner` left the bus: its sessions (their keys wiped) and prompts go.
pub(crate) async fn drop_client(st: &Arc<State>, owner: &str) {
    let sessions: Vec<String> = {
        let mut g = lock(&st.sessions);
        let mine: Vec<String> = g
            .iter()
            .filter(|(_, s)| s.owner == owner)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &mine {
            g.remove(p);
        }
        mine
    };
    let prompts: Vec<String> = {
        let mut g = lock(&st.prompts);
        let mine: Vec<String> = g
            .iter()
            .filter(|(_, p)| p.owner == owner)
            .map(|(p, _)| p.clone())
            .collect();
        for p in &mine {
            g.remove(p);
        }
        mine
    };
    remove_objects(st, &sessions, &prompts).await;
}

/// Close the session at `p` (out of the map first: its key is wiped at once).
pub(crate) async fn close_session(st: &Arc<State>, p: &str) {
    lock(&st.sessions).remove(p);
    remove_objects(st, &[p.to_string()], &[]).await;
}

// ---------------------------------------------------------------------------------------------
// Item objects

/// Serve the items named `names` as item objects (those not served yet). Nothing is served if
/// the store is locked by now (the read that found them raced with a lock). Never call this
/// from a property getter (see the module's locking rules).
pub(crate) async fn serve_items(st: &Arc<State>, names: &[String]) {
    // The usual case (every lookup): all served already.
    {
        let served = lock(&st.items);
        if names.iter().all(|name| served.contains(name)) {
            return;
        }
    }
    let _registry = st.registry.lock().await;
    if st.is_locked() {
        return;
    }
    let new: Vec<String> = {
        let mut served = lock(&st.items);
        names
            .iter()
            .filter(|name| served.insert((*name).clone()))
            .cloned()
            .collect()
    };
    let server = st.conn().object_server();
    for name in new {
        let p = item_path(&name);
        let item = Item::new(st.clone(), name);
        if let Err(e) = server.at(p.as_ref(), item).await {
            log(format!("cannot serve {p}: {e}"));
        }
    }
}

/// Serve one item; its path.
pub(crate) async fn serve_item(st: &Arc<State>, name: &str) -> OwnedObjectPath {
    serve_items(st, &[name.to_string()]).await;
    item_path(name)
}

/// Take every item object off the bus (the store is locked): no ItemDeleted, the items are
/// not deleted; they come back at the same paths on unlock.
pub(crate) async fn hide_items(st: &Arc<State>) {
    let _registry = st.registry.lock().await;
    let names: Vec<String> = lock(&st.items).drain().collect();
    if names.is_empty() {
        return;
    }
    let server = st.conn().object_server();
    for name in &names {
        let _ = server.remove::<Item, _>(item_path(name).as_ref()).await;
    }
    log(format!(
        "the store is locked: {} item objects taken off the bus",
        names.len()
    ));
}

/// The entry of item `name` is gone: stop serving it, tell clients.
pub(crate) async fn item_deleted(st: &Arc<State>, name: &str) {
    {
        let _registry = st.registry.lock().await;
        if !lock(&st.items).remove(name) {
            return;
        }
        let _ = st
            .conn()
            .object_server()
            .remove::<Item, _>(item_path(name).as_ref())
            .await;
    }
    if let Ok(em) = SignalEmitter::new(st.conn(), COLLECTION_PATH) {
        let _ = Collection::item_deleted(&em, item_path(name).as_ref()).await;
    }
    items_changed(st).await;
}

/// Invalidate the collections' `Items`.
pub(crate) async fn items_changed(st: &Arc<State>) {
    let server = st.conn().object_server();
    for cp in [COLLECTION_PATH, ALIAS_PATH] {
        if let Ok(iref) = server.interface::<_, Collection>(cp).await {
            let _ = iref
                .get()
                .await
                .items_invalidate(iref.signal_emitter())
                .await;
        }
    }
}

/// The names of every item of the store (a directory listing: nothing is decrypted).
pub(crate) fn list_names(st: &State) -> Result<Vec<String>, Error> {
    Ok(st.store()?.entry_names_hex()?)
}

/// Make the item objects match a complete listing of the store: serve the new ones; drop the
/// served ones the listing lacks, once a direct look-up confirms their entry is gone (so that
/// an incomplete listing can never make the daemon report an item deleted).
pub(crate) async fn reconcile(st: &Arc<State>, listing: Vec<String>) {
    serve_items(st, &listing).await;
    let listed: HashSet<&str> = listing.iter().map(String::as_str).collect();
    let missing: Vec<String> = lock(&st.items)
        .iter()
        .filter(|n| !listed.contains(n.as_str()))
        .cloned()
        .collect();
    if missing.is_empty() {
        return;
    }
    let Ok(store) = st.store() else { return };
    for name in missing {
        match store.entry_by_name(&name) {
            Err(libkeyring::Error::NoEntry { .. }) => item_deleted(st, &name).await,
            // Written after the listing was taken (or the listing was incomplete): kept.
            Ok(_) => {}
            // Locked meanwhile, or unreadable: decide on a later listing.
            Err(_) => {}
        }
    }
}

/// Every item, served (method calls only: this waits for the item registry).
pub(crate) async fn all_items(st: &Arc<State>) -> Result<Vec<OwnedObjectPath>, Error> {
    let names = list_names(st)?;
    reconcile(st, names.clone()).await;
    Ok(names.iter().map(|n| item_path(n)).collect())
}

/// Items whose attributes contain all of `query`, most recently modified first (libsecret's
/// lookup takes the first): through the store's blind index, so only matching items are read.
pub(crate) async fn search(
    st: &Arc<State>,
    query: &HashMap<String, String>,
) -> Result<Vec<OwnedObjectPath>, Error> {
    let store = st.store()?;
    let found = store.search(&mapping::to_stored(query))?;
    let names: Vec<String> = found.into_iter().map(|(n, _)| n).collect();
    serve_items(st, &names).await;
    Ok(names.iter().map(|n| item_path(n)).collect())
}

/// `search`, with a locked store (or none yet) finding nothing.
pub(crate) async fn search_unlocked(
    st: &Arc<State>,
    query: &HashMap<String, String>,
) -> Result<Vec<OwnedObjectPath>, Error> {
    match search(st, query).await {
        Err(Error::IsLocked(_)) => {
            refresh_soon(st);
            Ok(vec![])
        }
        r => r,
    }
}

/// Look at the lock state now, from a task of its own (for calls that found the store locked,
/// and property getters, which may not wait for the item registry).
pub(crate) fn refresh_soon(st: &Arc<State>) {
    let st = st.clone();
    tokio::spawn(async move { refresh_lock_state(&st).await });
}

/// Follow the kernel key: while the store is locked no item object is on the bus; when it
/// comes or goes, emit the changes (and serve the items again on unlock).
pub async fn refresh_lock_state(st: &Arc<State>) {
    let _one_at_a_time = st.refresh.lock().await;
    let locked = st.is_locked();
    if locked {
        hide_items(st).await;
    }
    let changed = {
        let mut g = lock(&st.last_locked);
        let changed = g.is_some_and(|old| old != locked);
        *g = Some(locked);
        changed
    };
    if !changed {
        return;
    }
    log(if locked {
        "the store is now locked"
    } else {
        "the store is now unlocked"
    });
    let server = st.conn().object_server();
    for cp in [COLLECTION_PATH, ALIAS_PATH] {
        if let Ok(iref) = server.interface::<_, Collection>(cp).await {
            let c = iref.get().await;
            let _ = c.locked_changed(iref.signal_emitter()).await;
            let _ = c.items_invalidate(iref.signal_emitter()).await;
        }
    }
    if let Ok(em) = SignalEmitter::new(st.conn(), SERVICE_PATH) {
        let _ = Service::collection_changed(&em, path(COLLECTION_PATH).as_ref()).await;
    }
    if !locked {
        if let Err(e) = all_items(st).await {
            log(format!("listing items after unlock: {e}"));
        }
    }
}

/// The objects of `objects` that exist (collections and served items).
pub(crate) fn known_objects(st: &State, objects: &[OwnedObjectPath]) -> Vec<OwnedObjectPath> {
    objects
        .iter()
        .filter(|p| is_collection(p.as_str()) || st.served_item(p.as_str()).is_some())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_per_owner_and_global() {
        let st = State::new(PathBuf::from("/nonexistent"));
        for _ in 0..MAX_SESSIONS_PER_CLIENT {
            st.add_session(":1.1", SessionKey::plain()).unwrap();
        }
        let e = st.add_session(":1.1", SessionKey::plain()).unwrap_err();
        assert!(matches!(e, Error::LimitsExceeded(_)), "{e}");
        st.add_session(":1.2", SessionKey::plain()).unwrap();
        for _ in 0..MAX_PROMPTS_PER_CLIENT {
            st.add_prompt(":1.1").unwrap();
        }
        assert!(matches!(
            st.add_prompt(":1.1"),
            Err(Error::LimitsExceeded(_))
        ));
        let p = st.add_prompt(":1.3").unwrap();
        st.check_prompt_owner(&p, ":1.3").unwrap();
        assert!(matches!(
            st.check_prompt_owner(&p, ":1.1"),
            Err(Error::AccessDenied(_))
        ));
        // The global caps.
        let mut n = 0;
        let err = loop {
            match st.add_session(&format!(":2.{n}"), SessionKey::plain()) {
                Ok(_) => n += 1,
                Err(e) => break e,
            }
        };
        assert!(matches!(err, Error::LimitsExceeded(_)));
        assert_eq!(lock(&st.sessions).len(), MAX_SESSIONS);
        assert_eq!(st.served_items(), 0);
    }

    #[test]
    fn item_paths_are_recognised() {
        assert!(is_item_path(&format!("{ITEM_PREFIX}{}", "ab".repeat(32))));
        assert!(!is_item_path(&format!("{ITEM_PREFIX}{}", "ab".repeat(31))));
        assert!(!is_item_path(&format!("{ITEM_PREFIX}{}", "zz".repeat(32))));
        assert!(!is_item_path(COLLECTION_PATH));
    }
}
