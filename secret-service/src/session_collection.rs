//! org.freedesktop.Secret.Collection `session` at `/org/freedesktop/secrets/collection/session`
//! (alias `session`, also served at `/org/freedesktop/secrets/aliases/session`): items that live
//! until logout, kept in the kernel (kernel_items.rs), never locked.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

use crate::collection::NewItem;
use crate::error::Error;
use crate::kernel_items::{self, now, KernelItem};
use crate::labels;
use crate::mapping;
use crate::session_item::SessionItem;
use crate::state::{lock, log, path, root, Secret, State};

pub const SESSION_COLLECTION_PATH: &str = "/org/freedesktop/secrets/collection/session";
pub const SESSION_ALIAS_PATH: &str = "/org/freedesktop/secrets/aliases/session";
pub(crate) const SESSION_ITEM_PREFIX: &str = "/org/freedesktop/secrets/collection/session/";
/// What the collection is called until its label is set.
pub const DEFAULT_LABEL: &str = "Session";

pub(crate) fn session_item_path(id: &str) -> OwnedObjectPath {
    path(&format!("{SESSION_ITEM_PREFIX}{id}"))
}

/// The session item id of `p`, if it is a session item's path.
pub(crate) fn session_item_id(p: &str) -> Option<&str> {
    p.strip_prefix(SESSION_ITEM_PREFIX)
        .filter(|id| kernel_items::is_id(id))
}

pub(crate) fn is_session_collection(p: &str) -> bool {
    p == SESSION_COLLECTION_PATH || p == SESSION_ALIAS_PATH
}

/// Is `p` the session collection or one of its items that exists?
pub(crate) fn is_session_object(p: &str) -> bool {
    is_session_collection(p)
        || session_item_id(p).is_some_and(|id| kernel_items::read(id).is_some())
}

/// Put the session items `ids` on the bus (those not there yet).
pub(crate) async fn serve_session_items(st: &Arc<State>, ids: &[String]) {
    {
        let served = lock(&st.session_items);
        if ids.iter().all(|id| served.contains(id)) {
            return;
        }
    }
    let _registry = st.registry.lock().await;
    let new: Vec<String> = {
        let mut served = lock(&st.session_items);
        ids.iter()
            .filter(|id| served.insert((*id).clone()))
            .cloned()
            .collect()
    };
    let server = st.conn().object_server();
    for id in new {
        let p = session_item_path(&id);
        if let Err(e) = server
            .at(p.as_ref(), SessionItem::new(st.clone(), id.clone()))
            .await
        {
            log(format!("cannot serve {p}: {e}"));
        }
    }
}

/// The session item `id` is gone: off the bus, ItemDeleted (once).
pub(crate) async fn session_item_gone(st: &Arc<State>, id: &str) {
    {
        let _registry = st.registry.lock().await;
        if !lock(&st.session_items).remove(id) {
            return;
        }
        let _ = st
            .conn()
            .object_server()
            .remove::<SessionItem, _>(session_item_path(id).as_ref())
            .await;
    }
    if let Ok(em) = SignalEmitter::new(st.conn(), SESSION_COLLECTION_PATH) {
        let _ = SessionCollection::item_deleted(&em, session_item_path(id).as_ref()).await;
    }
    session_items_changed(st).await;
}

/// Invalidate the session collection's `Items`.
pub(crate) async fn session_items_changed(st: &Arc<State>) {
    let server = st.conn().object_server();
    for cp in [SESSION_COLLECTION_PATH, SESSION_ALIAS_PATH] {
        if let Ok(iref) = server.interface::<_, SessionCollection>(cp).await {
            let _ = iref
                .get()
                .await
                .items_invalidate(iref.signal_emitter())
                .await;
        }
    }
}

/// Drop the served session items whose keys are gone (the session keyring was revoked, or
/// another process removed them).
pub(crate) async fn forget_vanished(st: &Arc<State>, present: &[String]) {
    let vanished: Vec<String> = lock(&st.session_items)
        .iter()
        .filter(|id| !present.contains(id))
        .cloned()
        .collect();
    for id in vanished {
        if kernel_items::read(&id).is_none() {
            session_item_gone(st, &id).await;
        }
    }
}

/// Session items whose attributes contain all of `query`, served; newest first.
pub(crate) async fn search_session(
    st: &Arc<State>,
    query: &HashMap<String, String>,
) -> Vec<OwnedObjectPath> {
    let all = kernel_items::all();
    let ids: Vec<String> = all.iter().map(|(id, _)| id.clone()).collect();
    let mut found: Vec<(u64, String)> = all
        .into_iter()
        .filter(|(_, i)| {
            let attrs: HashMap<String, String> = i.attributes.clone().into_iter().collect();
            mapping::matches(&attrs, query)
        })
        .map(|(id, i)| (i.modified, id))
        .collect();
    serve_session_items(st, &ids).await;
    forget_vanished(st, &ids).await;
    found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    found
        .into_iter()
        .map(|(_, id)| session_item_path(&id))
        .collect()
}

#[derive(Debug)]
pub struct SessionCollection {
    st: Arc<State>,
}

impl SessionCollection {
    pub(crate) fn new(st: Arc<State>) -> SessionCollection {
        SessionCollection { st }
    }
}

#[interface(name = "org.freedesktop.Secret.Collection")]
impl SessionCollection {
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        Err(Error::NotSupported(
            "the session collection cannot be deleted (its items go at logout; delete them one by one)".into(),
        ))
    }

    #[zbus(out_args("results"))]
    async fn search_items(&self, attributes: HashMap<String, String>) -> Vec<OwnedObjectPath> {
        search_session(&self.st, &attributes).await
    }

    #[zbus(out_args("item", "prompt"))]
    async fn create_item(
        &self,
        properties: HashMap<String, OwnedValue>,
        secret: Secret,
        replace: bool,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), Error> {
        let NewItem {
            attributes,
            label,
            plaintext,
            content_type,
        } = NewItem::from_call(&self.st, &properties, secret, &hdr)?;
        let attributes = mapping::to_stored(&attributes);
        let _create = self.st.create.lock().await;
        let same = if replace {
            kernel_items::all()
                .into_iter()
                .find(|(_, i)| i.attributes == attributes)
        } else {
            None
        };
        let t = now();
        let (id, existed) = match same {
            Some((id, old)) => {
                let item = KernelItem {
                    label: label.unwrap_or_else(|| old.label.clone()),
                    content_type,
                    created: old.created,
                    modified: t,
                    attributes,
                    secret: plaintext,
                };
                kernel_items::update(&id, &item)?;
                (id, true)
            }
            None => {
                let item = KernelItem {
                    label: label.unwrap_or_default(),
                    content_type,
                    created: t,
                    modified: t,
                    attributes,
                    secret: plaintext,
                };
                (kernel_items::add(&item)?, false)
            }
        };
        serve_session_items(&self.st, std::slice::from_ref(&id)).await;
        let p = session_item_path(&id);
        let em = SignalEmitter::new(self.st.conn(), SESSION_COLLECTION_PATH)?;
        if existed {
            SessionCollection::item_changed(&em, p.as_ref()).await?;
        } else {
            SessionCollection::item_created(&em, p.as_ref()).await?;
            session_items_changed(&self.st).await;
        }
        Ok((p, root()))
    }

    /// Items are put on the bus from a task of their own (a getter may not wait for the item
    /// registry, see `state`).
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn items(&self) -> Vec<OwnedObjectPath> {
        let mut ids = kernel_items::list();
        ids.sort();
        let st = self.st.clone();
        let listed = ids.clone();
        tokio::spawn(async move {
            serve_session_items(&st, &listed).await;
            forget_vanished(&st, &listed).await;
        });
        ids.iter().map(|id| session_item_path(id)).collect()
    }

    #[zbus(property)]
    async fn label(&self) -> String {
        labels::get("session", DEFAULT_LABEL)
    }

    #[zbus(property)]
    async fn set_label(&self, label: String) -> zbus::fdo::Result<()> {
        Ok(labels::set("session", &label)?)
    }

    /// Never locked: locking the store leaves the session items alone.
    #[zbus(property)]
    async fn locked(&self) -> bool {
        false
    }

    #[zbus(property)]
    async fn created(&self) -> u64 {
        self.st.started
    }

    #[zbus(property)]
    async fn modified(&self) -> u64 {
        kernel_items::all()
            .iter()
            .map(|(_, i)| i.modified)
            .max()
            .unwrap_or(self.st.started)
            .max(self.st.started)
    }

    #[zbus(signal)]
    pub(crate) async fn item_created(
        emitter: &SignalEmitter<'_>,
        item: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn item_deleted(
        emitter: &SignalEmitter<'_>,
        item: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    pub(crate) async fn item_changed(
        emitter: &SignalEmitter<'_>,
        item: ObjectPath<'_>,
    ) -> zbus::Result<()>;
}
