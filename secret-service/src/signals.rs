//! What clients are told about the collections and their items: a collection's ItemCreated,
//! ItemDeleted and ItemChanged, its `Items` (invalidated) and `Locked` (changed) properties, the
//! Service's CollectionChanged.
//!
//! Emitted here by name rather than through the objects' generated signal functions, so that the
//! item objects and their registry (item.rs) need not import the collection and service objects
//! (lib.rs: dependencies point one way). The objects declare the same signals, for
//! introspection; a test in collection.rs checks that the names agree.

use std::borrow::Cow;
use std::collections::HashMap;

use zbus::fdo::Properties;
use zbus::names::InterfaceName;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::Value;
use zbus::Connection;

use crate::backend::{ItemData, Kind};
use crate::paths::SERVICE_PATH;

pub(crate) const COLLECTION_IFACE: &str = "org.freedesktop.Secret.Collection";
pub(crate) const SERVICE_IFACE: &str = "org.freedesktop.Secret.Service";
pub(crate) const ITEM_IFACE: &str = "org.freedesktop.Secret.Item";

/// What happened to an item (the collection's signal).
#[derive(Debug, Clone, Copy)]
pub(crate) enum ItemEvent {
    Created,
    Deleted,
    Changed,
}

impl ItemEvent {
    #[cfg(test)]
    pub(crate) const ALL: [ItemEvent; 3] =
        [ItemEvent::Created, ItemEvent::Deleted, ItemEvent::Changed];

    pub(crate) fn member(self) -> &'static str {
        match self {
            ItemEvent::Created => "ItemCreated",
            ItemEvent::Deleted => "ItemDeleted",
            ItemEvent::Changed => "ItemChanged",
        }
    }
}

/// Tell clients of item `id` of `kind`'s collection (on the collection's own path).
pub(crate) async fn item(
    conn: &Connection,
    kind: Kind,
    event: ItemEvent,
    id: &str,
) -> zbus::Result<()> {
    let em = SignalEmitter::new(conn, kind.info().path)?;
    em.emit(COLLECTION_IFACE, event.member(), &kind.item_path(id))
        .await
}

async fn properties_changed(
    conn: &Connection,
    at: &str,
    changed: HashMap<&str, Value<'_>>,
    invalidated: &[&str],
) {
    properties_changed_of(conn, at, COLLECTION_IFACE, changed, invalidated).await;
}

async fn properties_changed_of(
    conn: &Connection,
    at: &str,
    iface: &'static str,
    changed: HashMap<&str, Value<'_>>,
    invalidated: &[&str],
) {
    if let Ok(em) = SignalEmitter::new(conn, at) {
        let _ = Properties::properties_changed(
            &em,
            InterfaceName::from_static_str_unchecked(iface),
            changed,
            Cow::Borrowed(invalidated),
        )
        .await;
    }
}

/// The `Items` of the collection at `at` changed.
pub(crate) async fn items_invalidated(conn: &Connection, at: &str) {
    properties_changed(conn, at, HashMap::new(), &["Items"]).await;
}

/// `Items` changed, at both of `kind`'s paths.
pub(crate) async fn items_changed(conn: &Connection, kind: Kind) {
    for at in kind.paths() {
        items_invalidated(conn, at).await;
    }
}

/// The collection at `at` is now `locked`.
pub(crate) async fn locked_changed(conn: &Connection, at: &str, locked: bool) {
    let changed = HashMap::from([("Locked", Value::from(locked))]);
    properties_changed(conn, at, changed, &[]).await;
}

/// The object at `at` is now the item `data` (a locked search's result became it): each of its
/// properties changed, so that a client holding it reads them anew.
pub(crate) async fn item_became(conn: &Connection, at: &str, data: &ItemData) {
    let attributes: HashMap<String, String> = data.attributes.clone().into_iter().collect();
    let changed = HashMap::from([
        ("Locked", Value::from(false)),
        ("Attributes", Value::from(attributes)),
        ("Label", Value::from(data.label.as_str())),
        ("Created", Value::from(data.created)),
        ("Modified", Value::from(data.modified)),
    ]);
    properties_changed_of(conn, at, ITEM_IFACE, changed, &[]).await;
}

/// The Service's CollectionChanged for `kind`'s collection.
pub(crate) async fn collection_changed(conn: &Connection, kind: Kind) {
    if let Ok(em) = SignalEmitter::new(conn, SERVICE_PATH) {
        let _ = em
            .emit(SERVICE_IFACE, "CollectionChanged", &kind.path())
            .await;
    }
}
