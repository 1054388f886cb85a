//! The `login` collection's backend: the keyringrs store (libkeyring's `Store`), opened on
//! first use. What CreateItem writes where, and how items map to entries (mapping.rs).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use libkeyring::{EntryData, Store};

use crate::backend::{Backend, Found, ItemData, Miss, NewItem, Plaintext};
use crate::error::Error;
use crate::mapping::{self, Identity};

/// What GetSecret reports for an entry written without a content type (e.g. by the CLI).
const CONTENT_TYPE: &str = "text/plain";

#[derive(Debug)]
pub struct StoreBackend {
    path: PathBuf,
    store: Mutex<Option<Arc<Store>>>,
}

impl StoreBackend {
    pub(crate) fn new(path: PathBuf) -> StoreBackend {
        StoreBackend {
            path,
            store: Mutex::new(None),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The store, opened on first use (it may be created after the daemon starts).
    pub(crate) fn store(&self) -> Result<Arc<Store>, Error> {
        let mut g = self.store.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = g.as_ref() {
            return Ok(s.clone());
        }
        let s = Arc::new(Store::open(&self.path)?);
        *g = Some(s.clone());
        Ok(s)
    }

    /// The entry named `name`, read now (the caller drops it before returning).
    fn entry(&self, name: &str) -> Result<EntryData, Miss> {
        match self.store()?.entry_by_name(name) {
            Err(libkeyring::Error::NoEntry { .. }) => Err(Miss::Gone(Error::NoSuchObject(
                "the item was deleted".into(),
            ))),
            Err(libkeyring::Error::Locked) => Err(Miss::Locked),
            r => Ok(r?),
        }
    }

    /// Rewrite an entry with a new label or attributes (the secret stays as it is).
    fn rewrite(
        &self,
        e: &EntryData,
        label: Option<&str>,
        attrs: Option<&HashMap<String, String>>,
    ) -> Result<(), Miss> {
        let stored = attrs.map(mapping::to_stored);
        self.store()?
            .set_entry(&e.service, &e.username, &e.secret, label, stored.as_ref())?;
        Ok(())
    }
}

/// Where CreateItem writes, and whether an item is replaced there:
/// - attributes with `service` and `username` name the item (service, username): replace=true
///   replaces it (what `keyringrs set` and python-keyring's backend address); replace=false
///   creates it if it does not exist, else a second item with the same attributes;
/// - other attributes: replace=true replaces the item whose attributes are equal (the most
///   recently modified, if several are), found through the index; otherwise a new item.
fn target(
    store: &Store,
    attrs: &HashMap<String, String>,
    replace: bool,
) -> Result<(Identity, bool), Error> {
    if let Some(id) = Identity::from_attributes(attrs) {
        let exists = match store.entry(&id.service, &id.username) {
            Ok(_) => true,
            Err(libkeyring::Error::NoEntry { .. }) => false,
            Err(e) => return Err(e.into()),
        };
        return Ok(if exists && !replace {
            (Identity::synthetic(attrs), false)
        } else {
            (id, exists)
        });
    }
    if replace {
        let same = store
            .search(&mapping::to_stored(attrs))?
            .into_iter()
            .find(|(_, e)| Identity::of(e).is_synthetic() && mapping::item_attributes(e) == *attrs);
        if let Some((_, e)) = same {
            return Ok((Identity::of(&e), true));
        }
    }
    Ok((Identity::synthetic(attrs), false))
}

fn file_time(p: PathBuf) -> u64 {
    std::fs::metadata(p)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

impl Backend for StoreBackend {
    fn is_locked(&self) -> bool {
        self.store()
            .and_then(|s| s.is_locked().map_err(Error::from))
            .unwrap_or(true)
    }

    fn check_open(&self) -> Result<(), Miss> {
        if self.store()?.is_locked()? {
            return Err(Miss::Locked);
        }
        Ok(())
    }

    /// A directory listing: nothing is decrypted.
    fn list(&self) -> Result<Vec<String>, Error> {
        Ok(self.store()?.entry_names_hex()?)
    }

    /// Through the store's blind index, so only matching items are read; most recently
    /// modified first (libsecret's lookup takes the first).
    fn search(&self, query: &HashMap<String, String>) -> Result<Found, Error> {
        let found = self.store()?.search(&mapping::to_stored(query))?;
        Ok(Found {
            matches: found.into_iter().map(|(n, _)| n).collect(),
            listing: None,
        })
    }

    fn is_gone(&self, id: &str) -> bool {
        self.store()
            .is_ok_and(|s| matches!(s.entry_by_name(id), Err(libkeyring::Error::NoEntry { .. })))
    }

    fn create(&self, new: NewItem, replace: bool) -> Result<(String, bool), Error> {
        let NewItem {
            attributes,
            label,
            plaintext,
            content_type,
        } = new;
        let store = self.store()?;
        let (id, existed) = target(&store, &attributes, replace)?;
        let label = label.or_else(|| (!existed).then(String::new));
        store.set_item(
            &id.service,
            &id.username,
            &plaintext,
            label.as_deref(),
            Some(&mapping::to_stored(&attributes)),
            Some(&content_type),
        )?;
        drop(plaintext);
        Ok((store.entry_name(&id.service, &id.username)?, existed))
    }

    fn created(&self) -> u64 {
        file_time(self.path.join("header"))
    }

    fn modified(&self) -> u64 {
        file_time(self.path.join("entries"))
    }

    fn read(&self, id: &str) -> Result<ItemData, Miss> {
        let e = self.entry(id)?;
        let attributes = libkeyring::mapping::item_attributes(&e);
        let EntryData {
            label,
            content_type,
            created,
            modified,
            secret,
            ..
        } = e;
        Ok(ItemData {
            label,
            content_type: if content_type.is_empty() {
                CONTENT_TYPE.to_string()
            } else {
                content_type
            },
            created: created.max(0) as u64,
            modified: modified.max(0) as u64,
            attributes,
            secret,
        })
    }

    fn delete(&self, id: &str) -> Result<(), Miss> {
        let e = self.entry(id)?;
        self.store()?.delete(&e.service, &e.username)?;
        Ok(())
    }

    fn set_secret(&self, id: &str, secret: Plaintext, content_type: String) -> Result<(), Miss> {
        // Exists still? (Also refuses a locked store.)
        let e = self.entry(id)?;
        self.store()?.set_item(
            &e.service,
            &e.username,
            &secret,
            None,
            None,
            Some(content_type.as_str()),
        )?;
        Ok(())
    }

    fn set_label(&self, id: &str, label: String) -> Result<(), Miss> {
        self.rewrite(&self.entry(id)?, Some(&label), None)
    }

    fn set_attributes(&self, id: &str, attrs: HashMap<String, String>) -> Result<(), Miss> {
        let e = self.entry(id)?;
        let identity = Identity::of(&e);
        // A synthetic item's attributes are all its own; a (service, username) item keeps those.
        let same_identity =
            identity.is_synthetic() || Identity::from_attributes(&attrs) == Some(identity);
        if !same_identity {
            return Err(Miss::Failed(Error::NotSupported(
                "an item's service and username attributes are its identity in the keyringrs store and cannot be changed: delete it and create a new one".into(),
            )));
        }
        self.rewrite(&e, None, Some(&attrs))
    }
}
