//! The D-Bus objects of the Secret Service API 0.2, served from a keyringrs store.
//!
//! Paths:
//! - `/org/freedesktop/secrets`                          Service
//! - `/org/freedesktop/secrets/collection/login`         Collection (also at `aliases/default`)
//! - `/org/freedesktop/secrets/collection/login/<hex>`   Item; `<hex>` is the entry's file name
//! - `/org/freedesktop/secrets/session/s<n>`             Session (owned by the client that opened it)
//! - `/org/freedesktop/secrets/prompt/p<n>`              Prompt (unlock)
//!
//! Every call opens what it needs from the store and the kernel key; nothing decrypted is kept
//! past the call. The daemon remembers only which items it has served (their service and
//! username, to answer calls on their paths) and the open sessions' transfer keys.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use futures_lite::StreamExt;
use libkeyring::{EntryData, KdfParams, Scope, Store, UnlockOptions};
use zbus::fdo::{RequestNameFlags, RequestNameReply};
use zbus::message::{Header, Message};
use zbus::names::ErrorName;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zbus::{interface, Connection, DBusError};
use zeroize::Zeroizing;

use crate::crypto::{self, SessionKey};
use crate::mapping::{self, Identity};

pub const BUS_NAME: &str = "org.freedesktop.secrets";
pub const SERVICE_PATH: &str = "/org/freedesktop/secrets";
pub const COLLECTION_PATH: &str = "/org/freedesktop/secrets/collection/login";
pub const ALIAS_PATH: &str = "/org/freedesktop/secrets/aliases/default";
const ITEM_PREFIX: &str = "/org/freedesktop/secrets/collection/login/";
const SESSION_PREFIX: &str = "/org/freedesktop/secrets/session/s";
const PROMPT_PREFIX: &str = "/org/freedesktop/secrets/prompt/p";
const LABEL_PROP: &str = "org.freedesktop.Secret.Item.Label";
const ATTRIBUTES_PROP: &str = "org.freedesktop.Secret.Item.Attributes";
/// What GetSecret reports: the store keeps no content type.
const CONTENT_TYPE: &str = "text/plain";

/// A secret on the wire: (session, parameters, value, content_type), signature `(oayays)`.
pub type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

fn path(s: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(s.to_string()).expect("valid object path")
}

fn root() -> OwnedObjectPath {
    path("/")
}

fn log(msg: impl std::fmt::Display) {
    eprintln!("keyringrs-secret-service: {msg}");
}

// ---------------------------------------------------------------------------------------------
// Errors

/// The errors the daemon answers with: the Secret Service ones and the standard D-Bus ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// org.freedesktop.Secret.Error.IsLocked
    IsLocked(String),
    /// org.freedesktop.Secret.Error.NoSession
    NoSession(String),
    /// org.freedesktop.Secret.Error.NoSuchObject
    NoSuchObject(String),
    /// org.freedesktop.DBus.Error.NotSupported
    NotSupported(String),
    /// org.freedesktop.DBus.Error.InvalidArgs
    InvalidArgs(String),
    /// org.freedesktop.DBus.Error.AccessDenied
    AccessDenied(String),
    /// org.freedesktop.DBus.Error.Failed
    Failed(String),
}

impl Error {
    fn name_str(&self) -> &'static str {
        match self {
            Error::IsLocked(_) => "org.freedesktop.Secret.Error.IsLocked",
            Error::NoSession(_) => "org.freedesktop.Secret.Error.NoSession",
            Error::NoSuchObject(_) => "org.freedesktop.Secret.Error.NoSuchObject",
            Error::NotSupported(_) => "org.freedesktop.DBus.Error.NotSupported",
            Error::InvalidArgs(_) => "org.freedesktop.DBus.Error.InvalidArgs",
            Error::AccessDenied(_) => "org.freedesktop.DBus.Error.AccessDenied",
            Error::Failed(_) => "org.freedesktop.DBus.Error.Failed",
        }
    }

    fn text(&self) -> &str {
        match self {
            Error::IsLocked(s)
            | Error::NoSession(s)
            | Error::NoSuchObject(s)
            | Error::NotSupported(s)
            | Error::InvalidArgs(s)
            | Error::AccessDenied(s)
            | Error::Failed(s) => s,
        }
    }

    fn locked() -> Error {
        Error::IsLocked(
            "the keyringrs store is locked: run `keyringrs unlock` in this session".into(),
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name_str(), self.text())
    }
}

impl std::error::Error for Error {}

impl DBusError for Error {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name())?.build(&(self.text(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(self.name_str())
    }

    fn description(&self) -> Option<&str> {
        Some(self.text())
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Error {
        Error::Failed(e.to_string())
    }
}

impl From<libkeyring::Error> for Error {
    fn from(e: libkeyring::Error) -> Error {
        use libkeyring::Error as E;
        match e {
            E::Locked => Error::locked(),
            E::NoStore(p) => Error::IsLocked(format!(
                "there is no keyringrs store at {}: run `keyringrs init`",
                p.display()
            )),
            E::NoEntry { .. } => Error::NoSuchObject("no such item".into()),
            E::InvalidInput(m) => Error::InvalidArgs(m),
            E::AccessDenied(m) => Error::AccessDenied(m),
            other => Error::Failed(other.to_string()),
        }
    }
}

/// Property accessors can only fail with the standard errors; the Secret Service name is kept
/// at the start of the message.
impl From<Error> for zbus::fdo::Error {
    fn from(e: Error) -> zbus::fdo::Error {
        match e {
            Error::NotSupported(m) => zbus::fdo::Error::NotSupported(m),
            Error::InvalidArgs(m) => zbus::fdo::Error::InvalidArgs(m),
            Error::AccessDenied(m) => zbus::fdo::Error::AccessDenied(m),
            other => zbus::fdo::Error::Failed(other.to_string()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shared state

#[derive(Debug)]
struct SessionInfo {
    owner: String,
    key: SessionKey,
}

/// What all objects share.
#[derive(Debug)]
pub struct State {
    store_path: PathBuf,
    store: Mutex<Option<Arc<Store>>>,
    sessions: Mutex<HashMap<String, SessionInfo>>,
    /// Items served so far: entry name (hex) → identity.
    items: Mutex<HashMap<String, Identity>>,
    counter: AtomicU64,
    last_locked: Mutex<Option<bool>>,
    conn: OnceLock<Connection>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sender(hdr: &Header<'_>) -> Result<String, Error> {
    hdr.sender()
        .map(|s| s.to_string())
        .ok_or_else(|| Error::AccessDenied("a call without a sender".into()))
}

impl State {
    pub fn new(store_path: PathBuf) -> Arc<State> {
        Arc::new(State {
            store_path,
            store: Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            items: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(1),
            last_locked: Mutex::new(None),
            conn: OnceLock::new(),
        })
    }

    fn conn(&self) -> &Connection {
        self.conn.get().expect("connection set before serving")
    }

    /// The store, opened on first use (it may be created after the daemon starts).
    fn store(&self) -> Result<Arc<Store>, Error> {
        let mut g = lock(&self.store);
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Store::open(&self.store_path)?);
        *g = Some(s.clone());
        Ok(s)
    }

    fn is_locked(&self) -> bool {
        self.store()
            .and_then(|s| s.is_locked().map_err(Error::from))
            .unwrap_or(true)
    }

    fn next_id(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The transfer key of `session` if `caller` opened it.
    fn session_key(&self, session: &str, caller: &str) -> Result<SessionKey, Error> {
        match lock(&self.sessions).get(session) {
            Some(s) if s.owner == caller => Ok(s.key.clone()),
            _ => Err(Error::NoSession(format!(
                "{session} is not a session open by this client"
            ))),
        }
    }

    fn identity_of_path(&self, p: &str) -> Option<(String, Identity)> {
        let name = p.strip_prefix(ITEM_PREFIX)?;
        lock(&self.items)
            .get(name)
            .map(|id| (name.to_string(), id.clone()))
    }
}

fn item_path(name: &str) -> OwnedObjectPath {
    path(&format!("{ITEM_PREFIX}{name}"))
}

fn encode(key: &SessionKey, session: &str, secret: &[u8]) -> Secret {
    let (params, value) = key.encrypt(secret);
    (path(session), params, value, CONTENT_TYPE.into())
}

/// Serve `name` as an item (once).
async fn register(st: &Arc<State>, name: &str, id: &Identity) -> OwnedObjectPath {
    let p = item_path(name);
    let new = lock(&st.items)
        .insert(name.to_string(), id.clone())
        .is_none();
    if new {
        let item = Item {
            st: st.clone(),
            name: name.to_string(),
            id: id.clone(),
        };
        if let Err(e) = st.conn().object_server().at(p.as_ref(), item).await {
            log(format!("cannot serve {p}: {e}"));
        }
    }
    p
}

/// Stop serving `name`; tell clients it is gone.
async fn unregister(st: &Arc<State>, name: &str) {
    if lock(&st.items).remove(name).is_none() {
        return;
    }
    let p = item_path(name);
    let server = st.conn().object_server();
    let _ = server.remove::<Item, _>(p.as_ref()).await;
    if let Ok(em) = SignalEmitter::new(st.conn(), COLLECTION_PATH) {
        let _ = Collection::item_deleted(&em, p.as_ref()).await;
    }
    items_changed(st).await;
}

async fn items_changed(st: &Arc<State>) {
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

/// Every entry as an item (registering new ones, dropping vanished ones).
async fn all_items(st: &Arc<State>) -> Result<Vec<(OwnedObjectPath, EntryData)>, Error> {
    let store = st.store()?;
    let entries = store.entries()?;
    let mut out = Vec::with_capacity(entries.len());
    let mut seen = std::collections::HashSet::new();
    for e in entries {
        let name = store.entry_name(&e.service, &e.username)?;
        let p = register(st, &name, &Identity::of(&e)).await;
        seen.insert(name);
        out.push((p, e));
    }
    let gone: Vec<String> = lock(&st.items)
        .keys()
        .filter(|n| !seen.contains(*n))
        .cloned()
        .collect();
    for n in gone {
        unregister(st, &n).await;
    }
    Ok(out)
}

/// Items whose attributes contain all of `query`. A query naming service and username looks
/// the entry up directly; anything else decrypts the store once.
async fn search(
    st: &Arc<State>,
    query: &HashMap<String, String>,
) -> Result<Vec<OwnedObjectPath>, Error> {
    if let Some(id) = Identity::from_attributes(query) {
        let store = st.store()?;
        return match store.entry(&id.service, &id.username) {
            Ok(e) if mapping::matches(&mapping::item_attributes(&e), query) => {
                let name = store.entry_name(&id.service, &id.username)?;
                Ok(vec![register(st, &name, &id).await])
            }
            Ok(_) => Ok(vec![]),
            Err(libkeyring::Error::NoEntry { .. }) => Ok(vec![]),
            Err(e) => Err(e.into()),
        };
    }
    let mut found: Vec<(i64, OwnedObjectPath)> = all_items(st)
        .await?
        .into_iter()
        .filter(|(_, e)| mapping::matches(&mapping::item_attributes(e), query))
        .map(|(p, e)| (e.modified, p))
        .collect();
    // Most recently modified first, as libsecret's lookup takes the first.
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.as_str().cmp(b.1.as_str())));
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// `search`, with a locked store (or none yet) finding nothing.
async fn search_unlocked(
    st: &Arc<State>,
    query: &HashMap<String, String>,
) -> Result<Vec<OwnedObjectPath>, Error> {
    match search(st, query).await {
        Err(Error::IsLocked(_)) => Ok(vec![]),
        r => r,
    }
}

/// Emit Locked changes if the kernel key came or went since we last looked.
pub async fn refresh_lock_state(st: &Arc<State>) {
    let locked = st.is_locked();
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

fn is_collection(p: &str) -> bool {
    p == COLLECTION_PATH || p == ALIAS_PATH
}

/// The objects of `objects` that exist (collections and served items).
fn known_objects(st: &State, objects: &[OwnedObjectPath]) -> Vec<OwnedObjectPath> {
    objects
        .iter()
        .filter(|p| is_collection(p.as_str()) || st.identity_of_path(p.as_str()).is_some())
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// org.freedesktop.Secret.Service

#[derive(Debug)]
pub struct Service {
    st: Arc<State>,
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
        let p = format!("{SESSION_PREFIX}{}", self.st.next_id());
        lock(&self.st.sessions).insert(p.clone(), SessionInfo { owner, key });
        let obj = SessionObject {
            st: self.st.clone(),
            path: p.clone(),
        };
        self.st.conn().object_server().at(p.as_str(), obj).await?;
        let output = OwnedValue::try_from(output).map_err(|e| Error::Failed(e.to_string()))?;
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
            _ => Err(Error::NotSupported(
                "keyringrs serves one collection, `login` (alias `default`); it cannot create others"
                    .into(),
            )),
        }
    }

    #[zbus(out_args("unlocked", "locked"))]
    async fn search_items(
        &self,
        attributes: HashMap<String, String>,
    ) -> Result<(Vec<OwnedObjectPath>, Vec<OwnedObjectPath>), Error> {
        // Locked: nothing is readable, not even which items exist.
        Ok((search_unlocked(&self.st, &attributes).await?, vec![]))
    }

    #[zbus(out_args("unlocked", "prompt"))]
    async fn unlock(
        &self,
        objects: Vec<OwnedObjectPath>,
    ) -> Result<(Vec<OwnedObjectPath>, OwnedObjectPath), Error> {
        if !self.st.is_locked() {
            return Ok((known_objects(&self.st, &objects), root()));
        }
        let p = format!("{PROMPT_PREFIX}{}", self.st.next_id());
        let prompt = PromptObject {
            st: self.st.clone(),
            path: p.clone(),
            objects,
            started: AtomicBool::new(false),
        };
        self.st
            .conn()
            .object_server()
            .at(p.as_str(), prompt)
            .await?;
        Ok((vec![], path(&p)))
    }

    #[zbus(out_args("locked", "Prompt"))]
    async fn lock(
        &self,
        objects: Vec<OwnedObjectPath>,
    ) -> Result<(Vec<OwnedObjectPath>, OwnedObjectPath), Error> {
        let known = known_objects(&self.st, &objects);
        if !known.is_empty() {
            self.st.store()?.lock()?;
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
    ) -> Result<HashMap<OwnedObjectPath, Secret>, Error> {
        let key = self.st.session_key(session.as_str(), &sender(&hdr)?)?;
        let store = self.st.store()?;
        let mut out = HashMap::new();
        for p in items {
            // Unknown paths are skipped, as other providers do.
            let Some((_, id)) = self.st.identity_of_path(p.as_str()) else {
                continue;
            };
            match store.get(&id.service, &id.username) {
                Ok(secret) => {
                    out.insert(p, encode(&key, session.as_str(), &secret));
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
            _ => root(),
        }
    }

    async fn set_alias(&self, name: &str, collection: ObjectPath<'_>) -> Result<(), Error> {
        if name == "default" && is_collection(collection.as_str()) {
            return Ok(());
        }
        Err(Error::NotSupported(
            "the only alias is `default`, for the `login` collection".into(),
        ))
    }

    #[zbus(property)]
    async fn collections(&self) -> Vec<OwnedObjectPath> {
        vec![path(COLLECTION_PATH)]
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
    async fn collection_changed(
        emitter: &SignalEmitter<'_>,
        collection: ObjectPath<'_>,
    ) -> zbus::Result<()>;
}

// ---------------------------------------------------------------------------------------------
// org.freedesktop.Secret.Collection

#[derive(Debug)]
pub struct Collection {
    st: Arc<State>,
}

fn string_map(v: &OwnedValue) -> Result<HashMap<String, String>, Error> {
    let v = v
        .try_clone()
        .map_err(|e| Error::InvalidArgs(e.to_string()))?;
    HashMap::<String, String>::try_from(v)
        .map_err(|_| Error::InvalidArgs(format!("{ATTRIBUTES_PROP} must be a{{ss}}")))
}

fn string(v: &OwnedValue, what: &str) -> Result<String, Error> {
    match &**v {
        Value::Str(s) => Ok(s.to_string()),
        _ => Err(Error::InvalidArgs(format!("{what} must be a string"))),
    }
}

fn file_time(p: PathBuf) -> u64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

#[interface(name = "org.freedesktop.Secret.Collection")]
impl Collection {
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        Err(Error::NotSupported(
            "the login collection cannot be deleted (it is the keyringrs store)".into(),
        ))
    }

    #[zbus(out_args("results"))]
    async fn search_items(
        &self,
        attributes: HashMap<String, String>,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        search_unlocked(&self.st, &attributes).await
    }

    #[zbus(out_args("item", "prompt"))]
    async fn create_item(
        &self,
        properties: HashMap<String, OwnedValue>,
        secret: Secret,
        replace: bool,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), Error> {
        let key = self.st.session_key(secret.0.as_str(), &sender(&hdr)?)?;
        let attrs = match properties.get(ATTRIBUTES_PROP) {
            Some(v) => string_map(v)?,
            None => HashMap::new(),
        };
        let label = match properties.get(LABEL_PROP) {
            Some(v) => Some(string(v, LABEL_PROP)?),
            None => None,
        };
        let plaintext = key
            .decrypt(&secret.1, &secret.2)
            .map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let store = self.st.store()?;
        if store.is_locked()? {
            return Err(Error::locked());
        }
        let id = match Identity::from_attributes(&attrs) {
            Some(id) => id,
            None => {
                let mut same = None;
                if replace {
                    same = all_items(&self.st)
                        .await?
                        .into_iter()
                        .find(|(_, e)| {
                            Identity::of(e).is_synthetic() && mapping::item_attributes(e) == attrs
                        })
                        .map(|(_, e)| Identity::of(&e));
                }
                same.unwrap_or_else(|| Identity::synthetic(&attrs))
            }
        };
        let existed = match store.entry(&id.service, &id.username) {
            Ok(_) => true,
            Err(libkeyring::Error::NoEntry { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        let label = label.or_else(|| (!existed).then(String::new));
        store.set_entry(
            &id.service,
            &id.username,
            &plaintext,
            label.as_deref(),
            Some(&mapping::to_stored(&attrs)),
        )?;
        drop(plaintext);
        let name = store.entry_name(&id.service, &id.username)?;
        let p = register(&self.st, &name, &id).await;
        let em = SignalEmitter::new(self.st.conn(), COLLECTION_PATH)?;
        if existed {
            Collection::item_changed(&em, p.as_ref()).await?;
        } else {
            Collection::item_created(&em, p.as_ref()).await?;
            items_changed(&self.st).await;
        }
        Ok((p, root()))
    }

    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn items(&self) -> Vec<OwnedObjectPath> {
        if self.st.is_locked() {
            return vec![];
        }
        match all_items(&self.st).await {
            Ok(v) => {
                let mut v: Vec<_> = v.into_iter().map(|(p, _)| p).collect();
                v.sort_by(|a, b| a.as_str().cmp(b.as_str()));
                v
            }
            Err(e) => {
                log(format!("listing items: {e}"));
                vec![]
            }
        }
    }

    #[zbus(property)]
    async fn label(&self) -> String {
        "Login".into()
    }

    #[zbus(property)]
    async fn set_label(&self, _label: String) -> zbus::fdo::Result<()> {
        Err(zbus::fdo::Error::NotSupported(
            "the login collection's label cannot be changed".into(),
        ))
    }

    #[zbus(property)]
    async fn locked(&self) -> bool {
        self.st.is_locked()
    }

    #[zbus(property)]
    async fn created(&self) -> u64 {
        file_time(self.st.store_path.join("header"))
    }

    #[zbus(property)]
    async fn modified(&self) -> u64 {
        file_time(self.st.store_path.join("entries"))
    }

    #[zbus(signal)]
    async fn item_created(emitter: &SignalEmitter<'_>, item: ObjectPath<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn item_deleted(emitter: &SignalEmitter<'_>, item: ObjectPath<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn item_changed(emitter: &SignalEmitter<'_>, item: ObjectPath<'_>) -> zbus::Result<()>;
}

// ---------------------------------------------------------------------------------------------
// org.freedesktop.Secret.Item

#[derive(Debug)]
pub struct Item {
    st: Arc<State>,
    name: String,
    id: Identity,
}

impl Item {
    /// This item's entry, read now (the caller drops it before returning).
    async fn entry(&self) -> Result<EntryData, Error> {
        let store = self.st.store()?;
        match store.entry(&self.id.service, &self.id.username) {
            Err(libkeyring::Error::NoEntry { .. }) => {
                // Deleted behind our back (e.g. `keyringrs delete`).
                let st = self.st.clone();
                let name = self.name.clone();
                tokio::spawn(async move { unregister(&st, &name).await });
                Err(Error::NoSuchObject("the item was deleted".into()))
            }
            r => Ok(r?),
        }
    }

    async fn changed(&self) {
        if let Ok(em) = SignalEmitter::new(self.st.conn(), COLLECTION_PATH) {
            let _ = Collection::item_changed(&em, item_path(&self.name).as_ref()).await;
        }
    }

    /// Rewrite the entry with a new label or attributes (the secret stays as it is).
    async fn rewrite(
        &self,
        label: Option<&str>,
        attrs: Option<&HashMap<String, String>>,
    ) -> Result<(), Error> {
        let e = self.entry().await?;
        let stored = attrs.map(mapping::to_stored);
        self.st.store()?.set_entry(
            &self.id.service,
            &self.id.username,
            &e.secret,
            label,
            stored.as_ref(),
        )?;
        drop(e);
        self.changed().await;
        Ok(())
    }
}

#[interface(name = "org.freedesktop.Secret.Item")]
impl Item {
    #[zbus(out_args("Prompt"))]
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        self.st
            .store()?
            .delete(&self.id.service, &self.id.username)?;
        let st = self.st.clone();
        let name = self.name.clone();
        // Not from inside our own call: the object server is busy dispatching it.
        tokio::spawn(async move { unregister(&st, &name).await });
        Ok(root())
    }

    #[zbus(out_args("secret"))]
    async fn get_secret(
        &self,
        session: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(Secret,), Error> {
        let key = self.st.session_key(session.as_str(), &sender(&hdr)?)?;
        let e = self.entry().await?;
        Ok((encode(&key, session.as_str(), &e.secret),))
    }

    async fn set_secret(
        &self,
        secret: Secret,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let key = self.st.session_key(secret.0.as_str(), &sender(&hdr)?)?;
        let plaintext = key
            .decrypt(&secret.1, &secret.2)
            .map_err(|e| Error::InvalidArgs(e.to_string()))?;
        // Exists still? (Also refuses a locked store with IsLocked.)
        drop(self.entry().await?);
        self.st
            .store()?
            .set(&self.id.service, &self.id.username, &plaintext)?;
        drop(plaintext);
        self.changed().await;
        Ok(())
    }

    #[zbus(property)]
    async fn locked(&self) -> bool {
        self.st.is_locked()
    }

    #[zbus(property)]
    async fn attributes(&self) -> zbus::fdo::Result<HashMap<String, String>> {
        Ok(mapping::item_attributes(&self.entry().await?))
    }

    #[zbus(property)]
    async fn set_attributes(&self, attrs: HashMap<String, String>) -> zbus::fdo::Result<()> {
        let same_identity = match Identity::from_attributes(&attrs) {
            Some(id) => id == self.id,
            None => self.id.is_synthetic(),
        };
        if !same_identity {
            return Err(zbus::fdo::Error::NotSupported(
                "an item's service and username attributes are its identity in the keyringrs store and cannot be changed: delete it and create a new one".into(),
            ));
        }
        Ok(self.rewrite(None, Some(&attrs)).await?)
    }

    #[zbus(property)]
    async fn label(&self) -> zbus::fdo::Result<String> {
        Ok(self.entry().await?.label.clone())
    }

    #[zbus(property)]
    async fn set_label(&self, label: String) -> zbus::fdo::Result<()> {
        Ok(self.rewrite(Some(&label), None).await?)
    }

    #[zbus(property)]
    async fn created(&self) -> zbus::fdo::Result<u64> {
        Ok(self.entry().await?.created.max(0) as u64)
    }

    #[zbus(property)]
    async fn modified(&self) -> zbus::fdo::Result<u64> {
        Ok(self.entry().await?.modified.max(0) as u64)
    }
}

// ---------------------------------------------------------------------------------------------
// org.freedesktop.Secret.Session

#[derive(Debug)]
pub struct SessionObject {
    st: Arc<State>,
    path: String,
}

async fn close_session(st: &Arc<State>, p: &str) {
    lock(&st.sessions).remove(p);
    let _ = st
        .conn()
        .object_server()
        .remove::<SessionObject, _>(p)
        .await;
}

#[interface(name = "org.freedesktop.Secret.Session")]
impl SessionObject {
    async fn close(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let caller = sender(&hdr)?;
        {
            let mut sessions = lock(&self.st.sessions);
            match sessions.get(&self.path) {
                Some(s) if s.owner == caller => {
                    sessions.remove(&self.path);
                }
                Some(_) => {
                    return Err(Error::AccessDenied(
                        "only the client that opened a session may close it".into(),
                    ))
                }
                None => return Err(Error::NoSession("the session is closed".into())),
            }
        }
        let st = self.st.clone();
        let p = self.path.clone();
        tokio::spawn(async move { close_session(&st, &p).await });
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// org.freedesktop.Secret.Prompt

/// The prompt `Unlock` returns for a locked store. `Prompt` completes it: unlocked if the store
/// is unlocked by then (the user ran `keyringrs unlock`) or if `$KEYRINGRS_ASKPASS` names a
/// program that prints the password; otherwise dismissed.
#[derive(Debug)]
pub struct PromptObject {
    st: Arc<State>,
    path: String,
    objects: Vec<OwnedObjectPath>,
    started: AtomicBool,
}

fn env_kdf() -> KdfParams {
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let d = KdfParams::DEFAULT;
    match (num("KEYRINGRS_KDF_MEMORY"), num("KEYRINGRS_KDF_TIME")) {
        (None, None) => d,
        (m, t) => KdfParams::new(m.unwrap_or(64 * 1024), t.unwrap_or(3), 1).unwrap_or(d),
    }
}

/// Try to unlock through `$KEYRINGRS_ASKPASS` (blocking). True if the store is unlocked after.
fn unlock_with_askpass(st: &State) -> bool {
    if !st.is_locked() {
        return true;
    }
    let Some(program) = std::env::var_os("KEYRINGRS_ASKPASS").filter(|p| !p.is_empty()) else {
        log("an application asked to unlock the store; no $KEYRINGRS_ASKPASS is set, so the prompt is dismissed: run `keyringrs unlock` in this session");
        return false;
    };
    let out = std::process::Command::new(&program)
        .arg(format!(
            "Password to unlock the keyringrs store {}:",
            st.store_path.display()
        ))
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            log(format!(
                "{program:?} ended with {}: unlock dismissed",
                o.status
            ));
            return false;
        }
        Err(e) => {
            log(format!("cannot run {program:?}: {e}"));
            return false;
        }
    };
    let mut pw = Zeroizing::new(out.stdout);
    if pw.last() == Some(&b'\n') {
        pw.pop();
    }
    let scope = match std::env::var("KEYRINGRS_SCOPE").as_deref() {
        Ok("user") => Scope::User,
        _ => Scope::Session,
    };
    let opts = UnlockOptions {
        kdf: env_kdf(),
        scope,
        ..UnlockOptions::default()
    };
    match st
        .store()
        .and_then(|s| s.unlock(&pw, &opts).map_err(Error::from))
    {
        Ok(_) => true,
        Err(e) => {
            log(format!("unlock through {program:?} failed: {e}"));
            false
        }
    }
}

#[interface(name = "org.freedesktop.Secret.Prompt")]
impl PromptObject {
    async fn prompt(&self, _window_id: &str) -> Result<(), Error> {
        if self.started.swap(true, Ordering::SeqCst) {
            return Err(Error::Failed("this prompt was already used".into()));
        }
        let st = self.st.clone();
        let p = self.path.clone();
        let objects = self.objects.clone();
        tokio::spawn(async move {
            let st2 = st.clone();
            let unlocked = tokio::task::spawn_blocking(move || unlock_with_askpass(&st2))
                .await
                .unwrap_or(false);
            let result = if unlocked {
                refresh_lock_state(&st).await;
                known_objects(&st, &objects)
            } else {
                vec![]
            };
            complete(&st, &p, !unlocked, result).await;
        });
        Ok(())
    }

    async fn dismiss(&self) -> Result<(), Error> {
        self.started.store(true, Ordering::SeqCst);
        let st = self.st.clone();
        let p = self.path.clone();
        tokio::spawn(async move { complete(&st, &p, true, vec![]).await });
        Ok(())
    }

    #[zbus(signal)]
    async fn completed(
        emitter: &SignalEmitter<'_>,
        dismissed: bool,
        result: Value<'_>,
    ) -> zbus::Result<()>;
}

async fn complete(st: &Arc<State>, p: &str, dismissed: bool, result: Vec<OwnedObjectPath>) {
    if let Ok(em) = SignalEmitter::new(st.conn(), p.to_string()) {
        let _ = PromptObject::completed(&em, dismissed, Value::new(result)).await;
    }
    let _ = st.conn().object_server().remove::<PromptObject, _>(p).await;
}

// ---------------------------------------------------------------------------------------------
// Running

/// Who owns `name` on the bus, for the refusal message.
async fn describe_owner(conn: &Connection, name: &str) -> String {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return "another process".into();
    };
    let Ok(bus_name) = zbus::names::BusName::try_from(name) else {
        return "another process".into();
    };
    let Ok(owner) = dbus.get_name_owner(bus_name.clone()).await else {
        return "another process".into();
    };
    match dbus.get_connection_unix_process_id(bus_name).await {
        Ok(pid) => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{} (pid {pid}, bus name {owner})", comm.trim())
        }
        Err(_) => format!("bus name {owner}"),
    }
}

/// Serve the store at `store_path` on the session bus until the bus goes away.
pub async fn run(store_path: PathBuf) -> Result<(), String> {
    let st = State::new(store_path);
    let conn = zbus::connection::Builder::session()
        .and_then(|b| {
            b.serve_at(SERVICE_PATH, Service { st: st.clone() })?
                .serve_at(COLLECTION_PATH, Collection { st: st.clone() })?
                .serve_at(ALIAS_PATH, Collection { st: st.clone() })
        })
        .map_err(|e| format!("cannot connect to the session bus: {e}"))?
        .build()
        .await
        .map_err(|e| format!("cannot connect to the session bus: {e}"))?;
    st.conn
        .set(conn.clone())
        .map_err(|_| "connection set twice".to_string())?;
    // Watch clients leave before taking the name, so no session outlives its client.
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut owners = dbus
        .receive_name_owner_changed()
        .await
        .map_err(|e| e.to_string())?;
    match conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
    {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => {}
        Ok(_) | Err(zbus::Error::NameTaken) => {
            return Err(format!(
                "{BUS_NAME} is already owned by {} on this bus: another Secret Service provider is running; stop it first (not starting)",
                describe_owner(&conn, BUS_NAME).await
            ))
        }
        Err(e) => return Err(format!("cannot request {BUS_NAME}: {e}")),
    }
    log(format!(
        "serving {BUS_NAME} from the store {} ({})",
        st.store_path.display(),
        if st.is_locked() { "locked" } else { "unlocked" }
    ));
    refresh_lock_state(&st).await;
    if !st.is_locked() {
        if let Err(e) = all_items(&st).await {
            log(format!("listing items: {e}"));
        }
    }
    let watcher = st.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tick.tick().await;
            refresh_lock_state(&watcher).await;
        }
    });
    while let Some(sig) = owners.next().await {
        let Ok(args) = sig.args() else { continue };
        if args.new_owner().is_some() || !args.name().starts_with(':') {
            continue;
        }
        let gone = args.name().to_string();
        let closed: Vec<String> = lock(&st.sessions)
            .iter()
            .filter(|(_, s)| s.owner == gone)
            .map(|(p, _)| p.clone())
            .collect();
        for p in closed {
            close_session(&st, &p).await;
        }
    }
    log("the bus connection closed; exiting");
    Ok(())
}
