//! How Secret Service items map to keyringrs store entries (docs/SECRET-SERVICE.md). The rule
//! lives in `libkeyring::mapping` (the importers use it too); this adds what the D-Bus side
//! needs: attributes as a `HashMap` (the `a{ss}` of the wire) and matching a query.
//!
//! - An item whose attributes hold both `service` and `username` IS the entry (service,
//!   username): what python-keyring's SecretService backend and `keyringrs set S U` both use.
//! - Any other item gets a synthetic identity: service `org.freedesktop.Secret.Item:<xdg:schema>`
//!   (empty schema if none), username a random UUID. Its attributes are exactly those given.

use std::collections::{BTreeMap, HashMap};

pub use libkeyring::mapping::{Identity, SYNTHETIC_PREFIX};
use libkeyring::EntryData;

/// The Secret Service attributes of an entry.
pub fn item_attributes(entry: &EntryData) -> HashMap<String, String> {
    libkeyring::mapping::item_attributes(entry)
        .into_iter()
        .collect()
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

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_query_matches_the_items_holding_all_its_pairs() {
        let e = EntryData {
            service: "S".into(),
            username: "U".into(),
            label: String::new(),
            content_type: String::new(),
            attributes: to_stored(&map(&[("extra", "1")])),
            created: 0,
            modified: 0,
            secret: Default::default(),
        };
        let attrs = item_attributes(&e);
        assert_eq!(
            attrs,
            map(&[("service", "S"), ("username", "U"), ("extra", "1")])
        );
        assert!(matches(&attrs, &map(&[("service", "S")])));
        assert!(matches(&attrs, &map(&[])));
        assert!(!matches(&attrs, &map(&[("service", "T")])));
    }
}
