//! org.freedesktop.Secret.Collection: the store's collection, `login`, at
//! `/org/freedesktop/secrets/collection/login` and `/org/freedesktop/secrets/aliases/default`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zeroize::Zeroize;

use crate::error::Error;
use crate::labels;
use crate::mapping::{self, Identity};
use crate::state::{
    item_path, items_changed, list_names, log, reconcile, refresh_soon, root, search_unlocked,
    sender, serve_item, Secret, State, COLLECTION_PATH,
};

const LABEL_PROP: &str = "org.freedesktop.Secret.Item.Label";
const ATTRIBUTES_PROP: &str = "org.freedesktop.Secret.Item.Attributes";
/// What the collection is called until its label is set.
pub const DEFAULT_LABEL: &str = "Login";

#[derive(Debug)]
pub struct Collection {
    st: Arc<State>,
}

impl Collection {
    pub(crate) fn new(st: Arc<State>) -> Collection {
        Collection { st }
    }
}

/// What a CreateItem call brings: its attributes and label, and the secret decrypted with the
/// caller's session (the transport copy is wiped at once).
pub(crate) struct NewItem {
    pub attributes: HashMap<String, String>,
    pub label: Option<String>,
    pub plaintext: zeroize::Zeroizing<Vec<u8>>,
    pub content_type: String,
}

impl NewItem {
    pub(crate) fn from_call(
        st: &State,
        properties: &HashMap<String, OwnedValue>,
        mut secret: Secret,
        hdr: &Header<'_>,
    ) -> Result<NewItem, Error> {
        let key = st.session_key(secret.0.as_str(), &sender(hdr)?)?;
        let plaintext = key.decrypt(&secret.1, &secret.2);
        // A plain session's value is the secret itself.
        secret.2.zeroize();
        let plaintext = plaintext.map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let attributes = match properties.get(ATTRIBUTES_PROP) {
            Some(v) => string_map(v)?,
            None => HashMap::new(),
        };
        let label = match properties.get(LABEL_PROP) {
            Some(v) => Some(string(v, LABEL_PROP)?),
            None => None,
        };
        Ok(NewItem {
            attributes,
            label,
            plaintext,
            content_type: std::mem::take(&mut secret.3),
        })
    }
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

/// Where CreateItem writes, and whether an item is replaced there:
/// - attributes with `service` and `username` name the item (service, username): replace=true
///   replaces it (what `keyringrs set` and python-keyring's backend address); replace=false
///   creates it if it does not exist, else a second item with the same attributes;
/// - other attributes: replace=true replaces the item whose attributes are equal (the most
///   recently modified, if several are), found through the index; otherwise a new item.
fn target(
    store: &libkeyring::Store,
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
        let NewItem {
            attributes: attrs,
            label,
            plaintext,
            content_type,
        } = NewItem::from_call(&self.st, &properties, secret, &hdr)?;
        let store = self.st.store()?;
        if store.is_locked()? {
            refresh_soon(&self.st);
            return Err(Error::locked());
        }
        // One CreateItem at a time: two replacing the same item must not both miss it and
        // create two, and "existed" must hold until the write.
        let create = self.st.create.lock().await;
        let (id, existed) = target(&store, &attrs, replace)?;
        let label = label.or_else(|| (!existed).then(String::new));
        store.set_item(
            &id.service,
            &id.username,
            &plaintext,
            label.as_deref(),
            Some(&mapping::to_stored(&attrs)),
            Some(&content_type),
        )?;
        drop(plaintext);
        let name = store.entry_name(&id.service, &id.username)?;
        let p = serve_item(&self.st, &name).await;
        drop(create);
        let em = SignalEmitter::new(self.st.conn(), COLLECTION_PATH)?;
        if existed {
            Collection::item_changed(&em, p.as_ref()).await?;
        } else {
            Collection::item_created(&em, p.as_ref()).await?;
            items_changed(&self.st).await;
        }
        Ok((p, root()))
    }

    /// Empty while the store is locked (even which items exist is encrypted). A property getter
    /// runs with the object tree locked, so the items it lists are served from a task of their
    /// own (see `state`'s locking rules).
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn items(&self) -> Vec<OwnedObjectPath> {
        if self.st.is_locked() {
            refresh_soon(&self.st);
            return vec![];
        }
        match list_names(&self.st) {
            Ok(names) => {
                let v: Vec<OwnedObjectPath> = names.iter().map(|n| item_path(n)).collect();
                let st = self.st.clone();
                tokio::spawn(async move { reconcile(&st, names).await });
                v
            }
            Err(Error::IsLocked(_)) => {
                refresh_soon(&self.st);
                vec![]
            }
            Err(e) => {
                log(format!("listing items: {e}"));
                vec![]
            }
        }
    }

    /// Stored in clear in the daemon's own file (labels.rs): collection labels are not secret.
    #[zbus(property)]
    async fn label(&self) -> String {
        labels::get("login", DEFAULT_LABEL)
    }

    #[zbus(property)]
    async fn set_label(&self, label: String) -> zbus::fdo::Result<()> {
        Ok(labels::set("login", &label)?)
    }

    #[zbus(property)]
    async fn locked(&self) -> bool {
        let locked = self.st.is_locked();
        // Noticed here before the watcher did: follow it now (clients read Locked after
        // unlocking).
        if self.st.lock_state_differs(locked) {
            refresh_soon(&self.st);
        }
        locked
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
