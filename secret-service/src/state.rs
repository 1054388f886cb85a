//! What all D-Bus objects share: the two backends (the store, the session keys), the open
//! sessions and pending prompts (each owned by the client that made it, within limits), and
//! which item objects are on the bus (the registry's data; its code is in item.rs).
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::zvariant::{OwnedObjectPath, Type};
use zbus::Connection;
use zeroize::{Zeroize, Zeroizing};

use crate::backend::{Backend, Kind};
use crate::crypto::SessionKey;
use crate::error::Error;
use crate::paths::{path, PROMPT_PREFIX, RESULT_PREFIX, SESSION_PREFIX};
use crate::session_backend::SessionBackend;
use crate::store_backend::StoreBackend;

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

/// `secret` encrypted for `session` with its transfer key.
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

/// The secret a call brings, decrypted with the caller's session (the transport copy is wiped
/// at once).
pub(crate) fn open_secret(
    st: &State,
    secret: &mut Secret,
    hdr: &Header<'_>,
) -> Result<Zeroizing<Vec<u8>>, Error> {
    let key = st.session_key(secret.0.as_str(), &sender(hdr)?)?;
    let plaintext = key.decrypt(&secret.1, &secret.2);
    // A plain session's value is the secret itself.
    secret.2.zeroize();
    plaintext.map_err(|e| Error::InvalidArgs(e.to_string()))
}

/// What a client owns (a session, a prompt).
trait Owned {
    fn owner(&self) -> &str;
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
    /// Set when the prompt goes (completed, dismissed, its client gone, expired): its dialog, if
    /// one is open, closes.
    pub cancel: Arc<Cancel>,
}

/// Set when the prompt ends before its dialog does (dismissed, its client gone, expired): a
/// waiting dialog gives up, a running dialog program is ended.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    flag: AtomicBool,
    child: Mutex<Option<u32>>,
}

impl Cancel {
    pub(crate) fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        if let Some(pid) = lock(&self.child).take() {
            terminate(pid);
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// The dialog program now running (not yet waited for: its pid cannot be reused).
    pub(crate) fn watch_child(&self, pid: u32) {
        *lock(&self.child) = Some(pid);
        if self.is_cancelled() {
            self.cancel();
        }
    }

    /// Before waiting for the program: its pid is no longer ours to signal after that.
    pub(crate) fn unwatch_child(&self) {
        lock(&self.child).take();
    }
}

#[allow(unsafe_code)]
fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill takes two integers; `pid` is a child of ours not yet waited for.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
}

/// A search made while the store was locked (locked_result.rs).
#[derive(Debug)]
pub(crate) struct ResultInfo {
    pub owner: String,
    pub created: Instant,
    pub attributes: HashMap<String, String>,
    /// The store was open since: the object is the newest match now (or gone).
    pub resolved: bool,
    /// The item it became then.
    pub target: Option<String>,
}

impl Owned for ResultInfo {
    fn owner(&self) -> &str {
        &self.owner
    }
}

impl Drop for PromptInfo {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl Owned for SessionInfo {
    fn owner(&self) -> &str {
        &self.owner
    }
}

impl Owned for PromptInfo {
    fn owner(&self) -> &str {
        &self.owner
    }
}

fn owned_by<V: Owned>(m: &HashMap<String, V>, owner: &str) -> usize {
    m.values().filter(|v| v.owner() == owner).count()
}

/// Take what `owner` has out of `m`: their paths.
fn take_owned<V: Owned>(m: &Mutex<HashMap<String, V>>, owner: &str) -> Vec<String> {
    let mut g = lock(m);
    let mine: Vec<String> = g
        .iter()
        .filter(|(_, v)| v.owner() == owner)
        .map(|(p, _)| p.clone())
        .collect();
    for p in &mine {
        g.remove(p);
    }
    mine
}

fn session_room(sessions: &HashMap<String, SessionInfo>, owner: &str) -> Result<(), Error> {
    let mine = owned_by(sessions, owner);
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
    /// The `login` collection's backend.
    pub(crate) login: StoreBackend,
    /// The `session` collection's backend.
    pub(crate) session_keys: SessionBackend,
    pub(crate) sessions: Mutex<HashMap<String, SessionInfo>>,
    pub(crate) prompts: Mutex<HashMap<String, PromptInfo>>,
    /// Searches made while the store was locked, by path (locked_result.rs).
    pub(crate) results: Mutex<HashMap<String, ResultInfo>>,
    /// The store's item objects on the bus, by entry name (hex). Empty while locked.
    items: Mutex<HashSet<String>>,
    /// The session items on the bus, by id.
    session_items: Mutex<HashSet<String>>,
    /// Held while item objects are added to or removed from the object server.
    pub(crate) registry: tokio::sync::Mutex<()>,
    /// Serializes following the lock state (so a stale look can never undo a newer one).
    pub(crate) refresh: tokio::sync::Mutex<()>,
    /// Serializes CreateItem (a look-up of the item to replace, then the write).
    pub(crate) create: tokio::sync::Mutex<()>,
    /// One unlock dialog at a time (prompter/).
    pub(crate) dialog: Mutex<()>,
    counter: AtomicU64,
    last_locked: Mutex<Option<bool>>,
    pub(crate) prompt_timeout: Duration,
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
            login: StoreBackend::new(store_path),
            session_keys: SessionBackend::new(),
            sessions: Mutex::new(HashMap::new()),
            prompts: Mutex::new(HashMap::new()),
            items: Mutex::new(HashSet::new()),
            session_items: Mutex::new(HashSet::new()),
            registry: tokio::sync::Mutex::new(()),
            refresh: tokio::sync::Mutex::new(()),
            create: tokio::sync::Mutex::new(()),
            dialog: Mutex::new(()),
            results: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(1),
            last_locked: Mutex::new(None),
            prompt_timeout,
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

    /// The backend of `kind`'s collection.
    pub(crate) fn backend(&self, kind: Kind) -> &dyn Backend {
        match kind {
            Kind::Login => &self.login,
            Kind::Session => &self.session_keys,
        }
    }

    /// The ids of `kind`'s item objects on the bus.
    pub(crate) fn served(&self, kind: Kind) -> &Mutex<HashSet<String>> {
        match kind {
            Kind::Login => &self.items,
            Kind::Session => &self.session_items,
        }
    }

    /// Is `locked` not what the daemon last acted on?
    pub(crate) fn lock_state_differs(&self, locked: bool) -> bool {
        lock(&self.last_locked).is_some_and(|last| last != locked)
    }

    /// The daemon acts on `locked` now: was it another state before?
    pub(crate) fn note_lock_state(&self, locked: bool) -> bool {
        let mut g = lock(&self.last_locked);
        let changed = g.is_some_and(|old| old != locked);
        *g = Some(locked);
        changed
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
        let mine = owned_by(&prompts, owner);
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
                cancel: Arc::new(Cancel::default()),
            },
        );
        Ok(p)
    }

    /// The cancel flag of the pending prompt `p`.
    pub(crate) fn prompt_cancel(&self, p: &str) -> Option<Arc<Cancel>> {
        lock(&self.prompts).get(p).map(|i| i.cancel.clone())
    }

    /// Record a search of `owner` made while the store is locked; its path. Refused beyond the
    /// limits on pending prompts (each such result leads to one).
    pub(crate) fn add_result(
        &self,
        owner: &str,
        attributes: HashMap<String, String>,
    ) -> Result<String, Error> {
        let mut results = lock(&self.results);
        if owned_by(&results, owner) >= MAX_PROMPTS_PER_CLIENT || results.len() >= MAX_PROMPTS {
            return Err(Error::LimitsExceeded(format!(
                "too many searches of a locked store are pending (at most {MAX_PROMPTS_PER_CLIENT} per client, {MAX_PROMPTS} in all): unlock the store, or wait {} s",
                self.prompt_timeout.as_secs()
            )));
        }
        let p = format!("{RESULT_PREFIX}{}", self.next_id());
        results.insert(
            p.clone(),
            ResultInfo {
                owner: owner.to_string(),
                created: Instant::now(),
                attributes,
                resolved: false,
                target: None,
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

    /// `owner` left the bus: its sessions (their keys wiped), prompts and locked search results
    /// are dropped; their paths, for their objects to go.
    pub(crate) fn take_client(&self, owner: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
        (
            take_owned(&self.sessions, owner),
            take_owned(&self.prompts, owner),
            take_owned(&self.results, owner),
        )
    }

    #[cfg(test)]
    fn served_items(&self) -> usize {
        lock(&self.items).len()
    }
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
}
