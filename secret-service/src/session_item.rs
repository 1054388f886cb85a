//! org.freedesktop.Secret.Item at `/org/freedesktop/secrets/collection/session/<32 hex>`: one
//! session item, a `user` key in the daemon's session keyring (kernel_items.rs). Every call
//! reads the key; a key gone (deleted, or its session keyring revoked) takes the object off the
//! bus.

use std::collections::HashMap;
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zeroize::Zeroize;

use crate::error::Error;
use crate::kernel_items::{self, gone, now, KernelItem};
use crate::session_collection::{
    session_item_gone, session_item_path, SessionCollection, SESSION_COLLECTION_PATH,
};
use crate::state::{encode_typed, root, sender, Secret, SecretOut, State};

#[derive(Debug)]
pub struct SessionItem {
    st: Arc<State>,
    id: String,
}

impl SessionItem {
    pub(crate) fn new(st: Arc<State>, id: String) -> SessionItem {
        SessionItem { st, id }
    }

    /// The item, read now; gone: off the bus (from a task of its own: this also runs in
    /// property getters).
    fn item(&self) -> Result<KernelItem, Error> {
        kernel_items::read(&self.id).ok_or_else(|| {
            let st = self.st.clone();
            let id = self.id.clone();
            tokio::spawn(async move { session_item_gone(&st, &id).await });
            gone()
        })
    }

    async fn rewrite(&self, f: impl FnOnce(&mut KernelItem)) -> Result<(), Error> {
        let mut item = self.item()?;
        f(&mut item);
        item.modified = now();
        kernel_items::update(&self.id, &item)?;
        drop(item);
        if let Ok(em) = SignalEmitter::new(self.st.conn(), SESSION_COLLECTION_PATH) {
            let _ =
                SessionCollection::item_changed(&em, session_item_path(&self.id).as_ref()).await;
        }
        Ok(())
    }
}

#[interface(name = "org.freedesktop.Secret.Item")]
impl SessionItem {
    #[zbus(out_args("Prompt"))]
    async fn delete(&self) -> Result<OwnedObjectPath, Error> {
        kernel_items::delete(&self.id)?;
        let st = self.st.clone();
        let id = self.id.clone();
        tokio::spawn(async move { session_item_gone(&st, &id).await });
        Ok(root())
    }

    #[zbus(out_args("secret"))]
    async fn get_secret(
        &self,
        session: ObjectPath<'_>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> Result<(SecretOut,), Error> {
        let key = self.st.session_key(session.as_str(), &sender(&hdr)?)?;
        let item = self.item()?;
        Ok((encode_typed(
            &key,
            session.as_str(),
            &item.secret,
            &item.content_type,
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
        secret.2.zeroize();
        let plaintext = plaintext.map_err(|e| Error::InvalidArgs(e.to_string()))?;
        let content_type = std::mem::take(&mut secret.3);
        self.rewrite(move |i| {
            i.secret = plaintext;
            i.content_type = content_type;
        })
        .await
    }

    #[zbus(property)]
    async fn locked(&self) -> bool {
        false
    }

    #[zbus(property)]
    async fn attributes(&self) -> zbus::fdo::Result<HashMap<String, String>> {
        Ok(self.item()?.attributes.clone().into_iter().collect())
    }

    #[zbus(property)]
    async fn set_attributes(&self, attrs: HashMap<String, String>) -> zbus::fdo::Result<()> {
        Ok(self
            .rewrite(move |i| i.attributes = attrs.into_iter().collect())
            .await?)
    }

    #[zbus(property)]
    async fn label(&self) -> zbus::fdo::Result<String> {
        Ok(self.item()?.label.clone())
    }

    #[zbus(property)]
    async fn set_label(&self, label: String) -> zbus::fdo::Result<()> {
        Ok(self.rewrite(move |i| i.label = label).await?)
    }

    #[zbus(property)]
    async fn created(&self) -> zbus::fdo::Result<u64> {
        Ok(self.item()?.created)
    }

    #[zbus(property)]
    async fn modified(&self) -> zbus::fdo::Result<u64> {
        Ok(self.item()?.modified)
    }
}
