//! org.freedesktop.Secret.Item at `/org/freedesktop/secrets/collection/login/<64 hex>`: one store
//! entry. On the bus only while the store is unlocked.

use std::collections::HashMap;
use std::sync::Arc;

use libkeyring::EntryData;
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zeroize::Zeroize;

use crate::collection::Collection;
use crate::error::Error;
use crate::mapping::{self, Identity};
use crate::state::{
    content_type, encode_typed, item_deleted, item_path, refresh_soon, root, sender, Secret,
    SecretOut, State, COLLECTION_PATH,
};

/// An item object: the entry named `name` (its identity is read from the entry each time).
#[derive(Debug)]
pub struct Item {
    st: Arc<State>,
    name: String,
}

impl Item {
    pub(crate) fn new(st: Arc<State>, name: String) -> Item {
        Item { st, name }
    }

    /// This item's entry, read now (the caller drops it before returning). A deleted entry
    /// takes the object off the bus, a locked store all item objects (from tasks of their own:
    /// this also runs inside property getters, which may not wait for the item registry).
    async fn entry(&self) -> Result<EntryData, Error> {
        let store = self.st.store()?;
        match store.entry_by_name(&self.name) {
            Err(libkeyring::Error::NoEntry { .. }) => {
                // Deleted behind our back (e.g. `keyringrs delete`).
                let st = self.st.clone();
                let name = self.name.clone();
                tokio::spawn(async move { item_deleted(&st, &name).await });
                Err(Error::NoSuchObject("the item was deleted".into()))
            }
            Err(libkeyring::Error::Locked) => {
                refresh_soon(&self.st);
                Err(Error::locked())
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
        self.st
            .store()?
            .set_entry(&e.service, &e.username, &e.secret, label, stored.as_ref())?;
        drop(e);
        self.changed().await;
        Ok(())
    }
}

#[interface(name = "org.freedesktop.Secret.Item")]
impl Item {
    #[zbus(out_args("Prompt"))]
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        let e = self.entry().await?;
        self.st.store()?.delete(&e.service, &e.username)?;
        let st = self.st.clone();
        let name = self.name.clone();
        // Not from inside our own call: it may run inside the object server's dispatch.
        tokio::spawn(async move { item_deleted(&st, &name).await });
        Ok(root())
    }

    #[zbus(out_args("secret"))]
    async fn get_secret(
        &self,
        session: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(SecretOut,), Error> {
        let key = self.st.session_key(session.as_str(), &sender(&hdr)?)?;
        let e = self.entry().await?;
        Ok((encode_typed(
            &key,
            session.as_str(),
            &e.secret,
            content_type(&e),
        ),))
    }

    async fn set_secret(
        &self,
        secret: Secret,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(), Error> {
        let mut secret = secret;
        let key = self.st.session_key(secret.0.as_str(), &sender(&hdr)?)?;
        let plaintext = key.decrypt(&secret.1, &secret.2);
        // A plain session's value is the secret itself.
        secret.2.zeroize();
        let plaintext = plaintext.map_err(|e| Error::InvalidArgs(e.to_string()))?;
        // Exists still? (Also refuses a locked store with IsLocked.)
        let e = self.entry().await?;
        self.st.store()?.set_item(
            &e.service,
            &e.username,
            &plaintext,
            None,
            None,
            Some(secret.3.as_str()),
        )?;
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
        let id = Identity::of(&self.entry().await?);
        // A synthetic item's attributes are all its own; a (service, username) item keeps those.
        let same_identity = id.is_synthetic() || Identity::from_attributes(&attrs) == Some(id);
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
