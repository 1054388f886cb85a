//! The seam between the D-Bus objects and what keeps the items: the `Backend` trait, with two
//! implementations, the keyringrs store (the `login` collection, store_backend.rs) and the kernel
//! keys of the session keyring (the `session` collection, session_backend.rs); and `Kind`, which
//! of the two collections an object serves, with what differs between them as data (paths,
//! label, whether it locks).
//!
//! A trait of plain blocking calls rather than an async one or an enum: both backends answer at
//! once (a file read and decrypt, a kernel key read), and what has to await (the object server,
//! signals) is the same for both and stays in the objects. The objects hold a `Kind` and reach
//! their backend through the shared state (`State::backend`, a `&dyn Backend`), so `Collection`
//! and `Item` stay plain, non-generic types as zbus's `#[interface]` wants, one implementation
//! each serving both collections.

use std::collections::{BTreeMap, HashMap};

use zbus::zvariant::OwnedObjectPath;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::paths::{
    path, ALIAS_PATH, COLLECTION_PATH, ITEM_PREFIX, SESSION_ALIAS_PATH, SESSION_COLLECTION_PATH,
    SESSION_ITEM_PREFIX,
};

/// Which collection: `login` (the store) or `session` (kernel keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Login,
    Session,
}

/// What a collection is, beside its backend.
#[derive(Debug)]
pub(crate) struct Info {
    /// Its name: the key of its label (labels.rs), and what SetAlias's refusal calls it.
    pub name: &'static str,
    pub path: &'static str,
    pub alias: &'static str,
    /// Its items' paths: this and the item's id.
    pub item_prefix: &'static str,
    pub is_id: fn(&str) -> bool,
    /// What the collection is called until its label is set.
    pub default_label: &'static str,
    /// Delete's refusal.
    pub undeletable: &'static str,
    /// Does it lock with the store? (Then the daemon follows its lock state, item.rs.)
    pub lockable: bool,
}

fn is_hex(s: &str, digits: usize) -> bool {
    s.len() == digits && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Is `name` a store entry's name (64 hex digits)?
fn is_entry_name(name: &str) -> bool {
    is_hex(name, 64)
}

/// Is `id` a session item's id (32 hex digits)?
pub(crate) fn is_session_item_id(id: &str) -> bool {
    is_hex(id, 32)
}

static LOGIN: Info = Info {
    name: "login",
    path: COLLECTION_PATH,
    alias: ALIAS_PATH,
    item_prefix: ITEM_PREFIX,
    is_id: is_entry_name,
    default_label: "Login",
    undeletable: "the login collection cannot be deleted (it is the keyringrs store)",
    lockable: true,
};

static SESSION: Info = Info {
    name: "session",
    path: SESSION_COLLECTION_PATH,
    alias: SESSION_ALIAS_PATH,
    item_prefix: SESSION_ITEM_PREFIX,
    is_id: is_session_item_id,
    default_label: "Session",
    undeletable:
        "the session collection cannot be deleted (its items go at logout; delete them one by one)",
    lockable: false,
};

impl Kind {
    pub(crate) const ALL: [Kind; 2] = [Kind::Login, Kind::Session];

    pub(crate) fn info(self) -> &'static Info {
        match self {
            Kind::Login => &LOGIN,
            Kind::Session => &SESSION,
        }
    }

    /// The collection an alias names (`default` and `login`: the store; `session`).
    pub(crate) fn of_alias(alias: &str) -> Option<Kind> {
        match alias {
            "default" | "login" => Some(Kind::Login),
            "session" => Some(Kind::Session),
            _ => None,
        }
    }

    pub(crate) fn path(self) -> OwnedObjectPath {
        path(self.info().path)
    }

    /// The collection's paths: its own and its alias's.
    pub(crate) fn paths(self) -> [&'static str; 2] {
        [self.info().path, self.info().alias]
    }

    pub(crate) fn is_collection(self, p: &str) -> bool {
        self.paths().contains(&p)
    }

    pub(crate) fn item_path(self, id: &str) -> OwnedObjectPath {
        path(&format!("{}{id}", self.info().item_prefix))
    }

    /// The item id of `p`, if it is the path of an item of this collection.
    pub(crate) fn item_id(self, p: &str) -> Option<&str> {
        p.strip_prefix(self.info().item_prefix)
            .filter(|id| (self.info().is_id)(id))
    }
}

/// A secret, decrypted (wiped on drop).
pub(crate) type Plaintext = Zeroizing<Vec<u8>>;

/// An item as a backend reads it (its secret wiped on drop); a session item's key holds one
/// (kernel_items.rs).
#[derive(Debug, Clone, Default)]
pub struct ItemData {
    pub label: String,
    pub content_type: String,
    pub created: u64,
    pub modified: u64,
    pub attributes: BTreeMap<String, String>,
    pub secret: Zeroizing<Vec<u8>>,
}

/// What a CreateItem call brings: its attributes and label, and the secret, decrypted.
pub(crate) struct NewItem {
    pub attributes: HashMap<String, String>,
    pub label: Option<String>,
    pub plaintext: Plaintext,
    pub content_type: String,
}

/// What a search found: the matching ids, best (most recently modified) first; and, if it read
/// every item to find them, their complete listing (the item objects are made to match it).
#[derive(Debug)]
pub(crate) struct Found {
    pub matches: Vec<String>,
    pub listing: Option<Vec<String>>,
}

/// Why an item call failed.
#[derive(Debug)]
pub(crate) enum Miss {
    /// The item is gone (deleted behind the daemon's back): its object goes; the answer.
    Gone(Error),
    /// The store is locked: the daemon follows the lock state, the answer is IsLocked.
    Locked,
    /// Anything else: the answer as is.
    Failed(Error),
}

impl From<Error> for Miss {
    fn from(e: Error) -> Miss {
        Miss::Failed(e)
    }
}

impl From<libkeyring::Error> for Miss {
    fn from(e: libkeyring::Error) -> Miss {
        Miss::Failed(e.into())
    }
}

/// What a collection and its items need of what keeps them. Items are named by their id (the
/// store entry's file name, the session item's key id).
pub(crate) trait Backend: Send + Sync + std::fmt::Debug {
    /// Locked now? (Unreadable counts as locked.)
    fn is_locked(&self) -> bool;
    /// May items be written now? `Miss::Locked` if not.
    fn check_open(&self) -> Result<(), Miss>;
    /// Every item's id (nothing decrypted).
    fn list(&self) -> Result<Vec<String>, Error>;
    /// The items whose attributes contain all of `query`.
    fn search(&self, query: &HashMap<String, String>) -> Result<Found, Error>;
    /// Is item `id` surely gone? (False when it cannot tell: then it is kept.)
    fn is_gone(&self, id: &str) -> bool;
    /// Write a new item, or replace one (`replace`, as CreateItem says): its id, and whether it
    /// existed.
    fn create(&self, new: NewItem, replace: bool) -> Result<(String, bool), Error>;
    /// The collection's times (Unix seconds).
    fn created(&self) -> u64;
    fn modified(&self) -> u64;
    fn read(&self, id: &str) -> Result<ItemData, Miss>;
    fn delete(&self, id: &str) -> Result<(), Miss>;
    fn set_secret(&self, id: &str, secret: Plaintext, content_type: String) -> Result<(), Miss>;
    fn set_label(&self, id: &str, label: String) -> Result<(), Miss>;
    fn set_attributes(&self, id: &str, attrs: HashMap<String, String>) -> Result<(), Miss>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn item_paths_are_recognised() {
        let login = Kind::Login;
        assert!(login
            .item_id(&format!("{ITEM_PREFIX}{}", "ab".repeat(32)))
            .is_some());
        assert!(login
            .item_id(&format!("{ITEM_PREFIX}{}", "ab".repeat(31)))
            .is_none());
        assert!(login
            .item_id(&format!("{ITEM_PREFIX}{}", "zz".repeat(32)))
            .is_none());
        assert!(login.item_id(COLLECTION_PATH).is_none());
    }
}
