//! A [keyring-core](https://crates.io/crates/keyring-core) credential store backed by the
//! keyringrs store (cargo feature `keyring-core`), so Rust applications that use the `keyring`
//! crate (v4) or keyring-core directly can keep their secrets here:
//!
//! ```no_run
//! use libkeyring::credential_store::Store;
//! keyring_core::set_default_store(Store::new()?);
//! let entry = keyring_core::Entry::new("github.com", "alice")?;
//! entry.set_password("token")?;
//! # Ok::<(), keyring_core::Error>(())
//! ```
//!
//! Each entry is the store entry (service, username); errors map to keyring-core's kinds:
//! Locked, WrongPassword, NoStore and AccessDenied → `NoStorageAccess` (the store cannot be used
//! now), NoEntry → `NoEntry`, Corrupt → `BadStoreFormat` (the header) or `BadDataFormat` (an
//! entry), InvalidInput → `Invalid`, Quota and I/O → `PlatformFailure`.

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use keyring_core::api::{CredentialApi, CredentialPersistence, CredentialStoreApi};
use keyring_core::{Credential, CredentialStore, Entry};

use crate::error::{Error, ErrorKind};

const VENDOR: &str = "keyringrs, the login-unlocked secret store";

fn map(e: Error) -> keyring_core::Error {
    match e.kind() {
        ErrorKind::NoEntry => keyring_core::Error::NoEntry,
        ErrorKind::Locked
        | ErrorKind::WrongPassword
        | ErrorKind::NoStore
        | ErrorKind::AccessDenied => keyring_core::Error::NoStorageAccess(Box::new(e)),
        ErrorKind::Corrupt => match &e {
            Error::Corrupt { path, .. } if path.file_name() == Some("header".as_ref()) => {
                keyring_core::Error::BadStoreFormat(e.to_string())
            }
            _ => keyring_core::Error::BadDataFormat(Vec::new(), Box::new(e)),
        },
        ErrorKind::InvalidInput => keyring_core::Error::Invalid("input".into(), e.to_string()),
        _ => keyring_core::Error::PlatformFailure(Box::new(e)),
    }
}

/// The keyring-core credential store over one keyringrs store.
#[derive(Debug)]
pub struct Store {
    inner: Arc<crate::Store>,
}

impl Store {
    /// The default store (`KEYRINGRS_STORE`, `$XDG_DATA_HOME/keyringrs`, `~/.local/share/keyringrs`).
    pub fn new() -> keyring_core::Result<Arc<Store>> {
        Store::open(crate::default_path().map_err(map)?)
    }

    /// The store at `path`.
    pub fn open(path: impl AsRef<Path>) -> keyring_core::Result<Arc<Store>> {
        let inner = Arc::new(crate::Store::open(path).map_err(map)?);
        Ok(Arc::new(Store { inner }))
    }

    fn entry(&self, service: &str, user: &str) -> Entry {
        Entry::new_with_credential(Arc::new(Cred {
            store: Arc::clone(&self.inner),
            service: service.to_owned(),
            user: user.to_owned(),
        }))
    }
}

impl CredentialStoreApi for Store {
    fn vendor(&self) -> String {
        VENDOR.into()
    }

    fn id(&self) -> String {
        format!(
            "keyringrs {} store {}",
            env!("CARGO_PKG_VERSION"),
            self.inner.id()
        )
    }

    fn build(
        &self,
        service: &str,
        user: &str,
        modifiers: Option<&HashMap<&str, &str>>,
    ) -> keyring_core::Result<Entry> {
        if let Some(key) = modifiers.and_then(|m| m.keys().next()) {
            return Err(keyring_core::Error::NotSupportedByStore(format!(
                "modifier {key:?}: keyringrs entries take none"
            )));
        }
        Ok(self.entry(service, user))
    }

    /// Search by `service` and/or `user` (exact match); other keys are invalid.
    fn search(&self, spec: &HashMap<&str, &str>) -> keyring_core::Result<Vec<Entry>> {
        if let Some(key) = spec.keys().find(|k| !matches!(**k, "service" | "user")) {
            return Err(keyring_core::Error::Invalid(
                (*key).into(),
                "keyringrs searches by service and user only".into(),
            ));
        }
        let found = self.inner.list().map_err(map)?;
        Ok(found
            .into_iter()
            .filter(|(s, u)| {
                spec.get("service").is_none_or(|v| v == s)
                    && spec.get("user").is_none_or(|v| v == u)
            })
            .map(|(s, u)| self.entry(&s, &u))
            .collect())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn persistence(&self) -> CredentialPersistence {
        CredentialPersistence::UntilDelete
    }
}

/// One (service, username) entry of the store.
#[derive(Debug)]
struct Cred {
    store: Arc<crate::Store>,
    service: String,
    user: String,
}

impl CredentialApi for Cred {
    fn set_secret(&self, secret: &[u8]) -> keyring_core::Result<()> {
        self.store
            .set(&self.service, &self.user, secret)
            .map_err(map)
    }

    fn get_secret(&self) -> keyring_core::Result<Vec<u8>> {
        // keyring-core's API hands out a plain Vec; our copy is wiped.
        let secret = self.store.get(&self.service, &self.user).map_err(map)?;
        Ok(secret.to_vec())
    }

    fn get_attributes(&self) -> keyring_core::Result<HashMap<String, String>> {
        let entry = self.store.entry(&self.service, &self.user).map_err(map)?;
        Ok(entry.attributes.into_iter().collect())
    }

    fn delete_credential(&self) -> keyring_core::Result<()> {
        self.store.delete(&self.service, &self.user).map_err(map)
    }

    fn get_credential(&self) -> keyring_core::Result<Option<Arc<Credential>>> {
        // A specifier and a wrapper at once: it exists iff its entry does.
        self.store
            .entry(&self.service, &self.user)
            .map(|_| None)
            .map_err(map)
    }

    fn get_specifiers(&self) -> Option<(String, String)> {
        Some((self.service.clone(), self.user.clone()))
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Make it keyring-core's default store (`Entry::new` then uses it).
pub fn set_default() -> keyring_core::Result<()> {
    keyring_core::set_default_store(Store::new()? as Arc<CredentialStore>);
    Ok(())
}
