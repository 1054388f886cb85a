//! The daemon's names on the bus: its bus name and the paths of its objects, and the helpers
//! that make object paths.

use zbus::zvariant::OwnedObjectPath;

pub const BUS_NAME: &str = "org.freedesktop.secrets";
pub const SERVICE_PATH: &str = "/org/freedesktop/secrets";
pub const COLLECTION_PATH: &str = "/org/freedesktop/secrets/collection/login";
pub const ALIAS_PATH: &str = "/org/freedesktop/secrets/aliases/default";
pub(crate) const ITEM_PREFIX: &str = "/org/freedesktop/secrets/collection/login/";
pub const SESSION_COLLECTION_PATH: &str = "/org/freedesktop/secrets/collection/session";
pub const SESSION_ALIAS_PATH: &str = "/org/freedesktop/secrets/aliases/session";
pub(crate) const SESSION_ITEM_PREFIX: &str = "/org/freedesktop/secrets/collection/session/";
pub(crate) const SESSION_PREFIX: &str = "/org/freedesktop/secrets/session/s";
pub(crate) const PROMPT_PREFIX: &str = "/org/freedesktop/secrets/prompt/p";
/// A search made while the store is locked (locked_result.rs): under the collection, as items.
pub(crate) const RESULT_PREFIX: &str = "/org/freedesktop/secrets/collection/login/locked_";

pub(crate) fn path(s: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(s.to_string()).expect("valid object path")
}

pub(crate) fn root() -> OwnedObjectPath {
    path("/")
}
