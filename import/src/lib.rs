//! Importing secrets from other stores (docs/IMPORT.md): readers of the sources
//! ([`gnome`]: gnome-keyring's keyring files; [`libsecret`]: libsecret's and oo7's file
//! keyrings, as Flatpak apps keep them; [`keyutils`]: python-keyring-keyutils' plaintext
//! kernel keys), and the common rules of every import:
//!
//! - items become entries by [`libkeyring::mapping`] (attributes stored whole, label kept,
//!   creation and modification times carried over where the source has them);
//! - an item whose label, attributes and secret all equal an existing entry's is skipped
//!   ("already there"), so importing the same source again adds nothing;
//! - an item that cannot take its place without overwriting (its service/username entry exists
//!   with other content, or an entry has its attributes with another secret or label) is kept as
//!   a separate entry with a synthetic identity ("conflicting"), never overwriting;
//! - all or nothing: everything is parsed and checked before the first write, and if a write
//!   fails, what this run wrote is deleted again.

pub mod gnome;
pub mod keyutils;
pub mod libsecret;
mod md5;

use std::collections::{BTreeMap, HashMap, HashSet};

use zeroize::Zeroizing;

use libkeyring::format::check_limits;
use libkeyring::mapping::{self, Identity};
use libkeyring::EntryData;
use libkeyring::Store;
use libkeyring::{Error, Result};

/// An item to import, whatever its source.
#[derive(Clone, PartialEq, Eq)]
pub struct Item {
    pub label: String,
    pub attributes: BTreeMap<String, String>,
    pub secret: Zeroizing<Vec<u8>>,
    /// Creation time in the source (Unix seconds), if it has one; None (or a time that is not
    /// sane, see [`Store::set_imported`]) becomes the time of the import.
    pub created: Option<i64>,
    /// Modification time in the source (Unix seconds), likewise.
    pub modified: Option<i64>,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Item")
            .field("label", &self.label)
            .field("attributes", &self.attributes)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("created", &self.created)
            .field("modified", &self.modified)
            .finish()
    }
}

impl From<gnome::Item> for Item {
    fn from(it: gnome::Item) -> Item {
        Item {
            label: it.label,
            attributes: it.attributes,
            secret: it.secret,
            created: Some(it.created),
            modified: Some(it.modified),
        }
    }
}

/// What happens to one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A new entry with this identity.
    New(Identity),
    /// An equal entry exists (label, attributes and secret): nothing to do.
    AlreadyThere,
    /// Its place is taken by other content: a new entry with this synthetic identity.
    Conflicting(Identity),
}

impl Action {
    /// The entry this action writes, if any.
    pub fn writes(&self) -> Option<&Identity> {
        match self {
            Action::New(id) | Action::Conflicting(id) => Some(id),
            Action::AlreadyThere => None,
        }
    }
}

/// What an import does, item by item (same order as the items).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub actions: Vec<Action>,
}

impl Plan {
    /// (new, already there, conflicting).
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for a in &self.actions {
            match a {
                Action::New(_) => c.0 += 1,
                Action::AlreadyThere => c.1 += 1,
                Action::Conflicting(_) => c.2 += 1,
            }
        }
        c
    }

    /// `n new, m already there, k conflicting`.
    pub fn summary(&self) -> String {
        let (n, m, k) = self.counts();
        format!("{n} new, {m} already there, {k} conflicting")
    }
}

/// (label, secret) of an entry or planned item.
type LabelSecret = (String, Zeroizing<Vec<u8>>);

/// Decide what to do with every item, given the store's current entries. Checks every item
/// that would be written against the store's limits (`InvalidInput` naming the item).
pub fn plan(existing: &[EntryData], items: &[Item]) -> Result<Plan> {
    // (item attributes) → [(label, secret)] of the entries and of the items planned so far.
    let mut by_attrs: HashMap<BTreeMap<String, String>, Vec<LabelSecret>> = HashMap::new();
    let mut taken: HashSet<Identity> = HashSet::new();
    for e in existing {
        by_attrs
            .entry(mapping::item_attributes(e))
            .or_default()
            .push((e.label.clone(), e.secret.clone()));
        taken.insert(Identity::of(e));
    }
    let mut actions = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let same_attrs = by_attrs.get(&it.attributes);
        let equal = same_attrs.is_some_and(|v| {
            v.iter()
                .any(|(l, s)| *l == it.label && s[..] == it.secret[..])
        });
        let action = if equal {
            Action::AlreadyThere
        } else {
            match Identity::from_attributes(&it.attributes) {
                Some(id) if !taken.contains(&id) => Action::New(id),
                Some(_) => Action::Conflicting(Identity::synthetic(&it.attributes)),
                None if same_attrs.is_some() => {
                    Action::Conflicting(Identity::synthetic(&it.attributes))
                }
                None => Action::New(Identity::synthetic(&it.attributes)),
            }
        };
        if let Some(id) = action.writes() {
            check_limits(
                &id.service,
                &id.username,
                &it.label,
                &it.attributes,
                &it.secret,
            )
            .map_err(|e| Error::InvalidInput(format!("item {} ({:?}): {e}", i + 1, it.label)))?;
            taken.insert(id.clone());
            by_attrs
                .entry(it.attributes.clone())
                .or_default()
                .push((it.label.clone(), it.secret.clone()));
        }
        actions.push(action);
    }
    Ok(Plan { actions })
}

/// The plan for importing `items` into the (unlocked) store.
pub fn plan_for(store: &Store, items: &[Item]) -> Result<Plan> {
    if store.is_locked()? {
        return Err(Error::Locked);
    }
    plan(&store.entries()?, items)
}

/// Carry out a plan: write every new and conflicting entry, with the item's times
/// ([`Store::set_imported`]). All or nothing: on a failure, the entries this call wrote are
/// deleted again and the first error is returned. An entry that appeared meanwhile where the
/// plan wanted a new one is never overwritten (the run fails).
pub fn apply(store: &Store, items: &[Item], plan: &Plan) -> Result<()> {
    if plan.actions.len() != items.len() {
        return Err(Error::InvalidInput("plan does not match the items".into()));
    }
    let mut written: Vec<&Identity> = Vec::new();
    let mut result = Ok(());
    for (it, action) in items.iter().zip(&plan.actions) {
        let Some(id) = action.writes() else { continue };
        let data = EntryData {
            service: id.service.clone(),
            username: id.username.clone(),
            label: it.label.clone(),
            content_type: String::new(),
            attributes: it.attributes.clone(),
            // 0 is never sane: set_imported puts the time of the write in its place.
            created: it.created.unwrap_or(0),
            modified: it.modified.unwrap_or(0),
            secret: it.secret.clone(),
        };
        match store.set_imported(&data) {
            Ok(()) => written.push(id),
            Err(e) => {
                result = Err(match e {
                    Error::InvalidInput(why) => {
                        Error::InvalidInput(format!("during the import: {why}"))
                    }
                    e => e,
                });
                break;
            }
        }
    }
    if result.is_err() {
        for id in written {
            let _ = store.delete(&id.service, &id.username);
        }
    }
    result
}

/// Plan and (unless `dry_run`) apply: the plan says what was (or would be) done.
pub fn import(store: &Store, items: &[Item], dry_run: bool) -> Result<Plan> {
    let plan = plan_for(store, items)?;
    if !dry_run {
        apply(store, items, &plan)?;
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(label: &str, attrs: &[(&str, &str)], secret: &[u8]) -> Item {
        Item {
            label: label.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            secret: Zeroizing::new(secret.to_vec()),
            created: None,
            modified: None,
        }
    }

    fn entry_of(it: &Item, id: &Identity) -> EntryData {
        EntryData {
            service: id.service.clone(),
            username: id.username.clone(),
            label: it.label.clone(),
            content_type: String::new(),
            attributes: it.attributes.clone(),
            created: 0,
            modified: 0,
            secret: it.secret.clone(),
        }
    }

    #[test]
    fn second_import_adds_nothing_and_conflicts_never_overwrite() {
        let items = vec![
            item("a", &[("service", "S"), ("username", "U")], b"1"),
            item("b", &[("host", "h")], b"2"),
            item("b", &[("host", "h")], b"2"),
            item("c", &[("service", "S"), ("username", "U")], b"other"),
            item("d", &[("host", "h")], b"3"),
        ];
        let p = plan(&[], &items).unwrap();
        assert_eq!(p.counts(), (2, 1, 2), "{p:?}");
        assert_eq!(
            p.actions[0],
            Action::New(Identity {
                service: "S".into(),
                username: "U".into()
            })
        );
        let entries: Vec<EntryData> = items
            .iter()
            .zip(&p.actions)
            .filter_map(|(it, a)| a.writes().map(|id| entry_of(it, id)))
            .collect();
        let again = plan(&entries, &items).unwrap();
        assert_eq!(again.counts(), (0, 5, 0), "{again:?}");
    }

    #[test]
    fn cli_entries_count_as_their_service_and_username() {
        let e = EntryData {
            service: "S".into(),
            username: "U".into(),
            label: "U@S".into(),
            content_type: String::new(),
            attributes: BTreeMap::new(),
            created: 0,
            modified: 0,
            secret: Zeroizing::new(b"x".to_vec()),
        };
        let it = item("U@S", &[("service", "S"), ("username", "U")], b"x");
        assert_eq!(plan(&[e], &[it]).unwrap().counts(), (0, 1, 0));
    }

    #[test]
    fn oversized_items_fail_the_plan() {
        let big = "x".repeat(libkeyring::format::MAX_FIELD_LEN + 1);
        let it = item(&big, &[], b"");
        assert!(matches!(plan(&[], &[it]), Err(Error::InvalidInput(_))));
    }
}
