//! The Secret portal's per-app secrets (docs/SECRET-SERVICE.md "Sandboxed apps: the Secret
//! portal"): what `org.freedesktop.impl.portal.Secret.RetrieveSecret` hands a sandboxed app, and
//! what `keyringrs import libsecret-file --app-id` opens an app's file keyring with.
//!
//! libsecret inside a Flatpak sandbox keeps the app's secrets in a file keyring of its own and
//! takes that file's password from the portal: exactly [`SECRET_LEN`] bytes, per app id. The
//! secret is an ordinary store item, kept the way gnome-keyring's backend keeps it (attributes
//! `app_id` and `xdg:schema` = [`SCHEMA`], label "Application key for ID") and found the way
//! gnome-keyring's and oo7's backends find theirs (by `app_id` alone), so that the items
//! imported from either give each app back the same bytes.
//!
//! Rules that keep an app's data readable:
//! - an app's secret is minted only when a search of the unlocked store found none (never
//!   after an error, never while locked);
//! - when several items carry the same `app_id` (an import beside a minted one), the same one is
//!   chosen every time: one with the portal schema before one without, then the oldest, then the
//!   lowest entry name.

use std::collections::BTreeMap;

use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::format::EntryData;
use crate::mapping::{Attributes, Identity};
use crate::store::search::Found;
use crate::Store;

/// The attribute naming the app.
pub const APP_ID: &str = "app_id";
/// The `xdg:schema` of the items this backend (and gnome-keyring's) writes.
pub const SCHEMA: &str = "org.freedesktop.portal.Secret";
/// How many bytes an app's secret has (libsecret's file backend reads exactly this many).
pub const SECRET_LEN: usize = 64;
/// The content type of a minted secret (random bytes).
pub const CONTENT_TYPE: &str = "application/octet-stream";

/// The label of the item keeping `app_id`'s secret (gnome-keyring's wording).
pub fn label(app_id: &str) -> String {
    format!("Application key for {app_id}")
}

/// The attributes of a minted item.
pub fn attributes(app_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (APP_ID.to_string(), app_id.to_string()),
        ("xdg:schema".to_string(), SCHEMA.to_string()),
    ])
}

/// Refuse an app id this backend does not serve: empty (a caller outside any sandbox: docs say
/// why) or not one line of printable text.
pub fn check_app_id(app_id: &str) -> Result<()> {
    if app_id.is_empty() {
        return Err(Error::InvalidInput(
            "an empty app id (a caller outside a sandbox) has no portal secret: host apps use the Secret Service itself".into(),
        ));
    }
    if app_id.len() > 255 || app_id.chars().any(char::is_control) {
        return Err(Error::InvalidInput(format!(
            "not an app id: {:?}",
            app_id.chars().take(64).collect::<String>()
        )));
    }
    Ok(())
}

/// Of the items found for one app id, the one that is its secret (see the module doc).
pub fn choose(found: Vec<Found>) -> Option<Found> {
    found.into_iter().min_by(|(an, a), (bn, b)| {
        let key = |e: &EntryData| (e.attributes.attr("xdg:schema") != Some(SCHEMA), e.created);
        key(a).cmp(&key(b)).then_with(|| an.cmp(bn))
    })
}

/// The item keeping `app_id`'s secret in the (unlocked) store, if there is one.
pub fn find(store: &Store, app_id: &str) -> Result<Option<Found>> {
    check_app_id(app_id)?;
    let query = BTreeMap::from([(APP_ID.to_string(), app_id.to_string())]);
    let found = store.search(&query)?;
    Ok(choose(
        found
            .into_iter()
            .filter(|(_, e)| e.attributes.attr(APP_ID) == Some(app_id))
            .collect(),
    ))
}

/// What [`secret`] gives: the app's secret and the entry keeping it.
pub struct AppSecret {
    pub secret: Zeroizing<Vec<u8>>,
    /// The entry's name (64 hex digits).
    pub entry: String,
    /// Made by this call.
    pub minted: bool,
}

/// `app_id`'s secret, minted and stored if the store has none. The caller serializes calls
/// (two racing first requests would mint two).
pub fn secret(store: &Store, app_id: &str) -> Result<AppSecret> {
    if let Some((entry, e)) = find(store, app_id)? {
        return Ok(AppSecret {
            secret: e.secret,
            entry,
            minted: false,
        });
    }
    let mut fresh = Zeroizing::new(vec![0u8; SECRET_LEN]);
    getrandom::fill(&mut fresh[..]).map_err(|e| Error::Io {
        what: "read random bytes".into(),
        source: std::io::Error::from_raw_os_error(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let attrs = attributes(app_id);
    let id = Identity::synthetic(&attrs);
    store.set_item(
        &id.service,
        &id.username,
        &fresh,
        Some(&label(app_id)),
        Some(&attrs),
        Some(CONTENT_TYPE),
    )?;
    Ok(AppSecret {
        secret: fresh,
        entry: store.entry_name(&id.service, &id.username)?,
        minted: true,
    })
}

impl std::fmt::Debug for AppSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSecret")
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("entry", &self.entry)
            .field("minted", &self.minted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(attrs: &[(&str, &str)], created: i64) -> EntryData {
        EntryData {
            service: "s".into(),
            username: "u".into(),
            label: String::new(),
            content_type: String::new(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            created,
            modified: created,
            secret: Default::default(),
        }
    }

    #[test]
    fn the_same_item_is_chosen_whatever_the_order() {
        let oo7 = ("b".to_string(), entry(&[(APP_ID, "a")], 10));
        let old = (
            "c".to_string(),
            entry(&[(APP_ID, "a"), ("xdg:schema", SCHEMA)], 20),
        );
        let new = (
            "a".to_string(),
            entry(&[(APP_ID, "a"), ("xdg:schema", SCHEMA)], 30),
        );
        let twin = (
            "0".to_string(),
            entry(&[(APP_ID, "a"), ("xdg:schema", SCHEMA)], 20),
        );
        let all = vec![oo7.clone(), old.clone(), new.clone(), twin.clone()];
        let mut rev = all.clone();
        rev.reverse();
        assert_eq!(choose(all).unwrap().0, "0");
        assert_eq!(choose(rev).unwrap().0, "0");
        assert_eq!(choose(vec![oo7.clone(), new]).unwrap().0, "a");
        assert_eq!(choose(vec![oo7]).unwrap().0, "b");
        assert!(choose(vec![]).is_none());
    }

    #[test]
    fn empty_and_odd_app_ids_are_refused() {
        assert!(check_app_id("org.example.App").is_ok());
        assert!(matches!(check_app_id(""), Err(Error::InvalidInput(_))));
        assert!(matches!(check_app_id("a\nb"), Err(Error::InvalidInput(_))));
        assert!(matches!(
            check_app_id(&"a".repeat(256)),
            Err(Error::InvalidInput(_))
        ));
    }
}
