//! How Secret Service items map to keyringrs store entries (docs/SECRET-SERVICE.md).
//!
//! - An item whose attributes hold both `service` and `username` IS the entry (service,
//!   username): what python-keyring's SecretService backend and `keyringrs set S U` both use.
//! - Any other item gets a synthetic identity: service `org.freedesktop.Secret.Item:<xdg:schema>`
//!   (empty schema if none), username a random UUID. Its attributes are exactly those given.
//! - An entry's item attributes are its stored attributes with `service` and `username` of its
//!   identity merged in (except for synthetic entries, whose attributes are stored whole).

use std::collections::{BTreeMap, HashMap};

use libkeyring::EntryData;

/// Service name prefix of the entries of items without service/username attributes.
pub const SYNTHETIC_PREFIX: &str = "org.freedesktop.Secret.Item:";

/// (service, username) of a store entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub service: String,
    pub username: String,
}

impl Identity {
    pub fn is_synthetic(&self) -> bool {
        self.service.starts_with(SYNTHETIC_PREFIX)
    }

    /// The identity attributes name directly, if they hold both `service` and `username`.
    pub fn from_attributes<S: std::hash::BuildHasher>(
        attrs: &HashMap<String, String, S>,
    ) -> Option<Identity> {
        Some(Identity {
            service: attrs.get("service")?.clone(),
            username: attrs.get("username")?.clone(),
        })
    }

    /// A new synthetic identity for an item with these attributes.
    pub fn synthetic<S: std::hash::BuildHasher>(attrs: &HashMap<String, String, S>) -> Identity {
        let schema = attrs.get("xdg:schema").map_or("", String::as_str);
        Identity {
            service: format!("{SYNTHETIC_PREFIX}{schema}"),
            username: uuid_v4(),
        }
    }

    pub fn of(entry: &EntryData) -> Identity {
        Identity {
            service: entry.service.clone(),
            username: entry.username.clone(),
        }
    }
}

/// A random RFC 4122 version-4 UUID, lowercase.
pub fn uuid_v4() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the OS random number generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The Secret Service attributes of an entry.
pub fn item_attributes(entry: &EntryData) -> HashMap<String, String> {
    let mut attrs: HashMap<String, String> = entry
        .attributes
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !entry.service.starts_with(SYNTHETIC_PREFIX) {
        attrs.insert("service".into(), entry.service.clone());
        attrs.insert("username".into(), entry.username.clone());
    }
    attrs
}

/// Do `attrs` contain every (key, value) of `query`? (An empty query matches everything.)
pub fn matches<S1: std::hash::BuildHasher, S2: std::hash::BuildHasher>(
    attrs: &HashMap<String, String, S1>,
    query: &HashMap<String, String, S2>,
) -> bool {
    query.iter().all(|(k, v)| attrs.get(k) == Some(v))
}

/// Attributes as stored in an entry.
pub fn to_stored<S: std::hash::BuildHasher>(
    attrs: &HashMap<String, String, S>,
) -> BTreeMap<String, String> {
    attrs.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(service: &str, username: &str, attrs: &[(&str, &str)]) -> EntryData {
        EntryData {
            service: service.into(),
            username: username.into(),
            label: String::new(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created: 0,
            modified: 0,
            secret: Default::default(),
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keyring_items_are_their_service_and_username() {
        let a = map(&[
            ("service", "S"),
            ("username", "U"),
            ("application", "Python keyring library"),
        ]);
        assert_eq!(
            Identity::from_attributes(&a),
            Some(Identity {
                service: "S".into(),
                username: "U".into()
            })
        );
        assert_eq!(Identity::from_attributes(&map(&[("service", "S")])), None);
    }

    #[test]
    fn cli_entries_get_service_and_username_attributes() {
        let e = entry("S", "U", &[("extra", "1")]);
        assert_eq!(
            item_attributes(&e),
            map(&[("service", "S"), ("username", "U"), ("extra", "1")])
        );
        assert!(matches(&item_attributes(&e), &map(&[("service", "S")])));
        assert!(matches(&item_attributes(&e), &map(&[])));
        assert!(!matches(&item_attributes(&e), &map(&[("service", "T")])));
    }

    #[test]
    fn synthetic_items_keep_exactly_their_attributes() {
        let a = map(&[("xdg:schema", "org.example.Pw"), ("host", "h")]);
        let id = Identity::synthetic(&a);
        assert!(id.is_synthetic());
        assert_eq!(id.service, "org.freedesktop.Secret.Item:org.example.Pw");
        assert_eq!(id.username.len(), 36);
        assert_ne!(Identity::synthetic(&a).username, id.username);
        let e = entry(
            &id.service,
            &id.username,
            &[("xdg:schema", "org.example.Pw"), ("host", "h")],
        );
        assert_eq!(item_attributes(&e), a);
    }
}
