//! org.freedesktop.Secret.Collection: either collection over its backend (backend.rs): `login`
//! (the store) at `/org/freedesktop/secrets/collection/login` and `.../aliases/default`, and
//! `session` (kernel keys, until logout, never locked) at `.../collection/session` and
//! `.../aliases/session`. Its items are item objects (item.rs).

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};

use crate::backend::{Backend, Kind, NewItem};
use crate::error::Error;
use crate::item::{answer, locked_now, reconcile, refresh_soon, search, serve};
use crate::labels;
use crate::paths::root;
use crate::signals::{self, ItemEvent};
use crate::state::{log, open_secret, Secret, State};

const LABEL_PROP: &str = "org.freedesktop.Secret.Item.Label";
const ATTRIBUTES_PROP: &str = "org.freedesktop.Secret.Item.Attributes";

#[derive(Debug)]
pub struct Collection {
    st: Arc<State>,
    kind: Kind,
}

impl Collection {
    pub(crate) fn new(st: Arc<State>, kind: Kind) -> Collection {
        Collection { st, kind }
    }

    fn backend(&self) -> &dyn Backend {
        self.st.backend(self.kind)
    }
}

/// What a CreateItem call brings, its secret decrypted with the caller's session.
fn new_item(
    st: &State,
    properties: &HashMap<String, OwnedValue>,
    mut secret: Secret,
    hdr: &Header<'_>,
) -> Result<NewItem, Error> {
    let plaintext = open_secret(st, &mut secret, hdr)?;
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

#[interface(name = "org.freedesktop.Secret.Collection")]
impl Collection {
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        Err(Error::NotSupported(self.kind.info().undeletable.into()))
    }

    #[zbus(out_args("results"))]
    async fn search_items(
        &self,
        attributes: HashMap<String, String>,
    ) -> Result<Vec<OwnedObjectPath>, Error> {
        search(&self.st, self.kind, &attributes).await
    }

    #[zbus(out_args("item", "prompt"))]
    async fn create_item(
        &self,
        properties: HashMap<String, OwnedValue>,
        secret: Secret,
        replace: bool,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(OwnedObjectPath, OwnedObjectPath), Error> {
        let new = new_item(&self.st, &properties, secret, &hdr)?;
        answer(&self.st, self.backend().check_open())?;
        // One CreateItem at a time: two replacing the same item must not both miss it and
        // create two, and "existed" must hold until the write.
        let create = self.st.create.lock().await;
        let (id, existed) = self.backend().create(new, replace)?;
        serve(&self.st, self.kind, std::slice::from_ref(&id)).await;
        drop(create);
        let conn = self.st.conn();
        if existed {
            signals::item(conn, self.kind, ItemEvent::Changed, &id).await?;
        } else {
            signals::item(conn, self.kind, ItemEvent::Created, &id).await?;
            signals::items_changed(conn, self.kind).await;
        }
        Ok((self.kind.item_path(&id), root()))
    }

    /// Empty while the store is locked (even which items exist is encrypted). A property getter
    /// runs with the object tree locked, so the items it lists are served from a task of their
    /// own (see state.rs's locking rules).
    #[zbus(property(emits_changed_signal = "invalidates"))]
    async fn items(&self) -> Vec<OwnedObjectPath> {
        if self.backend().is_locked() {
            refresh_soon(&self.st);
            return vec![];
        }
        match self.backend().list() {
            Ok(ids) => {
                let v: Vec<OwnedObjectPath> =
                    ids.iter().map(|id| self.kind.item_path(id)).collect();
                let (st, kind) = (self.st.clone(), self.kind);
                tokio::spawn(async move { reconcile(&st, kind, ids).await });
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
        let info = self.kind.info();
        labels::get(info.name, info.default_label)
    }

    #[zbus(property)]
    async fn set_label(&self, label: String) -> zbus::fdo::Result<()> {
        Ok(labels::set(self.kind.info().name, &label)?)
    }

    /// The session collection is never locked: locking the store leaves its items alone.
    #[zbus(property)]
    async fn locked(&self) -> bool {
        locked_now(&self.st, self.kind)
    }

    #[zbus(property)]
    async fn created(&self) -> u64 {
        self.backend().created()
    }

    #[zbus(property)]
    async fn modified(&self) -> u64 {
        self.backend().modified()
    }

    // Emitted through signals.rs (by these names: see the test below).

    #[zbus(signal)]
    async fn item_created(e: &SignalEmitter<'_>, item: ObjectPath<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn item_deleted(e: &SignalEmitter<'_>, item: ObjectPath<'_>) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn item_changed(e: &SignalEmitter<'_>, item: ObjectPath<'_>) -> zbus::Result<()>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use zbus::object_server::Interface;

    #[test]
    fn the_signals_emitted_by_name_are_the_declared_ones() {
        assert_eq!(Collection::name().as_str(), signals::COLLECTION_IFACE);
        let c = Collection::new(State::new("/nonexistent".into()), Kind::Login);
        let mut xml = String::new();
        c.introspect_to_writer(&mut xml, 0);
        for e in ItemEvent::ALL {
            assert!(
                xml.contains(&format!("<signal name=\"{}\">", e.member())),
                "{xml}"
            );
        }
        for p in ["Items", "Locked"] {
            assert!(xml.contains(&format!("<property name=\"{p}\"")), "{xml}");
        }
    }
}
