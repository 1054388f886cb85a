//! The `session` collection's backend: items kept in the kernel as keys of the daemon's session
//! keyring (kernel_items.rs), never locked. Every call reads the keys; the daemon keeps nothing.

use std::collections::HashMap;

use crate::backend::{Backend, Found, ItemData, Miss, NewItem, Plaintext};
use crate::error::Error;
use crate::kernel_items::{self, gone, now, KernelItem};
use crate::mapping;

#[derive(Debug)]
pub struct SessionBackend {
    /// When the daemon started (the collection's `Created`).
    started: u64,
}

impl SessionBackend {
    pub(crate) fn new() -> SessionBackend {
        SessionBackend { started: now() }
    }

    fn item(&self, id: &str) -> Result<KernelItem, Miss> {
        kernel_items::read(id).ok_or_else(|| Miss::Gone(gone()))
    }

    /// Change the item `id` with `f` (now its modification time).
    fn rewrite(&self, id: &str, f: impl FnOnce(&mut KernelItem)) -> Result<(), Miss> {
        let mut item = self.item(id)?;
        f(&mut item);
        item.modified = now();
        kernel_items::update(id, &item)?;
        Ok(())
    }
}

impl Backend for SessionBackend {
    fn is_locked(&self) -> bool {
        false
    }

    fn check_open(&self) -> Result<(), Miss> {
        Ok(())
    }

    fn list(&self) -> Result<Vec<String>, Error> {
        let mut ids = kernel_items::list();
        ids.sort();
        Ok(ids)
    }

    /// Reads every item: the listing comes with the matches, newest first.
    fn search(&self, query: &HashMap<String, String>) -> Result<Found, Error> {
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
        found.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        Ok(Found {
            matches: found.into_iter().map(|(_, id)| id).collect(),
            listing: Some(ids),
        })
    }

    fn is_gone(&self, id: &str) -> bool {
        kernel_items::read(id).is_none()
    }

    /// replace=true replaces the item whose attributes are equal; otherwise a new item.
    fn create(&self, new: NewItem, replace: bool) -> Result<(String, bool), Error> {
        let attributes = mapping::to_stored(&new.attributes);
        let same = if replace {
            kernel_items::all()
                .into_iter()
                .find(|(_, i)| i.attributes == attributes)
        } else {
            None
        };
        let t = now();
        let (id, label, created) = match same {
            Some((id, old)) => (
                Some(id),
                new.label.unwrap_or(old.label.clone()),
                old.created,
            ),
            None => (None, new.label.unwrap_or_default(), t),
        };
        let item = KernelItem {
            label,
            content_type: new.content_type,
            created,
            modified: t,
            attributes,
            secret: new.plaintext,
        };
        match id {
            Some(id) => {
                kernel_items::update(&id, &item)?;
                Ok((id, true))
            }
            None => Ok((kernel_items::add(&item)?, false)),
        }
    }

    fn created(&self) -> u64 {
        self.started
    }

    fn modified(&self) -> u64 {
        kernel_items::all()
            .iter()
            .map(|(_, i)| i.modified)
            .max()
            .unwrap_or(self.started)
            .max(self.started)
    }

    fn read(&self, id: &str) -> Result<ItemData, Miss> {
        self.item(id)
    }

    /// A key already gone is answered as such (its object stays until a listing drops it).
    fn delete(&self, id: &str) -> Result<(), Miss> {
        Ok(kernel_items::delete(id)?)
    }

    fn set_secret(&self, id: &str, secret: Plaintext, content_type: String) -> Result<(), Miss> {
        self.rewrite(id, move |i| {
            i.secret = secret;
            i.content_type = content_type;
        })
    }

    fn set_label(&self, id: &str, label: String) -> Result<(), Miss> {
        self.rewrite(id, move |i| i.label = label)
    }

    fn set_attributes(&self, id: &str, attrs: HashMap<String, String>) -> Result<(), Miss> {
        self.rewrite(id, move |i| i.attributes = attrs.into_iter().collect())
    }
}
