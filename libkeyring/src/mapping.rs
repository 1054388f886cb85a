//! How an item (a label, a string→string attribute map and a secret: a Secret Service item, or
//! one imported from gnome-keyring) becomes a store entry, and back (docs/SECRET-SERVICE.md,
//! docs/IMPORT.md).
//!
//! - An item whose attributes hold both `service` and `username` IS the entry (service,
//!   username): what python-keyring's SecretService backend and `keyringrs set S U` both use.
//! - Any other item gets a synthetic identity: service `org.freedesktop.Secret.Item:<xdg:schema>`
//!   (empty schema if none), username a random UUID (version 4).
//! - Attributes are stored whole, exactly as given; the label is kept.
//! - An entry's item attributes are its stored attributes with `service` and `username` of its
//!   identity merged in (except for synthetic entries, whose attributes are exactly the stored
//!   ones).

use std::collections::{BTreeMap, HashMap};

use crate::format::EntryData;

/// Service name prefix of the entries of items without service/username attributes.
pub const SYNTHETIC_PREFIX: &str = "org.freedesktop.Secret.Item:";

/// Read access to an attribute map, whatever map type the caller holds.
pub trait Attributes {
    /// The value of attribute `name`, if present.
    fn attr(&self, name: &str) -> Option<&str>;
}

impl<S: std::hash::BuildHasher> Attributes for HashMap<String, String, S> {
    fn attr(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Attributes for BTreeMap<String, String> {
    fn attr(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// (service, username) of a store entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    pub service: String,
    pub username: String,
}

impl Identity {
    /// Is this a synthetic identity (an item without service/username attributes)?
    pub fn is_synthetic(&self) -> bool {
        is_synthetic(&self.service)
    }

    /// The identity the attributes name directly, if they hold both `service` and `username`.
    pub fn from_attributes(attrs: &impl Attributes) -> Option<Identity> {
        Some(Identity {
            service: attrs.attr("service")?.to_string(),
            username: attrs.attr("username")?.to_string(),
        })
    }

    /// A new synthetic identity for an item with these attributes (a fresh UUID each call).
    pub fn synthetic(attrs: &impl Attributes) -> Identity {
        let schema = attrs.attr("xdg:schema").unwrap_or("");
        Identity {
            service: format!("{SYNTHETIC_PREFIX}{schema}"),
            username: uuid_v4(),
        }
    }

    /// The identity of a stored entry.
    pub fn of(entry: &EntryData) -> Identity {
        Identity {
            service: entry.service.clone(),
            username: entry.username.clone(),
        }
    }
}

/// Is `service` the service of a synthetic identity?
pub fn is_synthetic(service: &str) -> bool {
    service.starts_with(SYNTHETIC_PREFIX)
}

/// The identity of a new item: the one its attributes name, else a new synthetic one.
pub fn identity_for(attrs: &impl Attributes) -> Identity {
    Identity::from_attributes(attrs).unwrap_or_else(|| Identity::synthetic(attrs))
}

/// A random RFC 4122 version-4 UUID, lowercase, from the OS random number generator.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = crate::format::hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The item attributes of an entry: its stored attributes, plus `service` and `username` of its
/// identity unless it is synthetic.
pub fn item_attributes(entry: &EntryData) -> BTreeMap<String, String> {
    let mut attrs = entry.attributes.clone();
    if !is_synthetic(&entry.service) {
        attrs.insert("service".into(), entry.service.clone());
        attrs.insert("username".into(), entry.username.clone());
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn entry(service: &str, username: &str, attrs: &[(&str, &str)]) -> EntryData {
        EntryData {
            service: service.into(),
            username: username.into(),
            label: String::new(),
            content_type: String::new(),
            attributes: map(attrs),
            created: 0,
            modified: 0,
            secret: Default::default(),
        }
    }

    #[test]
    fn service_and_username_name_the_entry() {
        let a = map(&[("service", "S"), ("username", "U"), ("x", "1")]);
        assert_eq!(
            identity_for(&a),
            Identity {
                service: "S".into(),
                username: "U".into()
            }
        );
        let h: HashMap<String, String> = a.clone().into_iter().collect();
        assert_eq!(Identity::from_attributes(&h), Identity::from_attributes(&a));
        assert_eq!(Identity::from_attributes(&map(&[("service", "S")])), None);
    }

    #[test]
    fn other_items_get_a_synthetic_identity() {
        let a = map(&[("xdg:schema", "org.example.Pw"), ("host", "h")]);
        let id = identity_for(&a);
        assert!(id.is_synthetic());
        assert_eq!(id.service, "org.freedesktop.Secret.Item:org.example.Pw");
        assert_eq!(id.username.len(), 36);
        assert_eq!(&id.username[14..15], "4");
        assert_ne!(identity_for(&a).username, id.username);
        assert_eq!(
            identity_for(&map(&[("host", "h")])).service,
            SYNTHETIC_PREFIX
        );
        let e = entry(
            &id.service,
            &id.username,
            &[("xdg:schema", "org.example.Pw"), ("host", "h")],
        );
        assert_eq!(item_attributes(&e), a);
    }

    #[test]
    fn plain_entries_get_service_and_username_attributes() {
        let e = entry("S", "U", &[("extra", "1")]);
        assert_eq!(
            item_attributes(&e),
            map(&[("service", "S"), ("username", "U"), ("extra", "1")])
        );
    }
}
