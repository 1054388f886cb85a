//! python-keyring-keyutils' secrets: its `KeyutilsKeyringBackend` stores each password in
//! plaintext as a `user` key described `<service>:<username>`, in a keyring named
//! `python-keyring-keyutils` linked into the session keyring (or, with other setups, straight
//! in `@s` or `@u`).
//!
//! Recognised (docs/IMPORT.md): `user` keys linked directly in `@s` or `@u`, or in a keyring
//! named `python-keyring-keyutils` linked there, whose description
//! - contains a `:`, and is split at the **last** one: service `a:b`, username `c` for
//!   `a:b:c` (services are often URLs with ports or schemes; usernames rarely hold a colon);
//! - has a non-empty service (an empty username is allowed);
//! - does not start with `keyringrs:` or `keyringrs-` (our own keys: the store's key, the
//!   holders keyring, a lock policy's note), `_` or `.` (kernel and system keys such as
//!   `_ses`, `_uid.N`, `.fscrypt`), nor `fscrypt:`, `ecryptfs:` or `invocation_id:`;
//! - has no control characters.
//!
//! Keys that cannot be read (another owner, no read permission) are reported and skipped.

use std::collections::{BTreeMap, HashSet};

use zeroize::Zeroizing;

use super::Item;
use libkeyring::keyring::{KeySerial, Keyring};
use libkeyring::{Error, Result};

/// The keyring python-keyring-keyutils creates in the session keyring.
pub const BACKEND_KEYRING: &str = "python-keyring-keyutils";

/// Description prefixes that are never python-keyring-keyutils secrets.
pub const FOREIGN_PREFIXES: &[&str] = &[
    "keyringrs:",
    "keyringrs-",
    "_",
    ".",
    "fscrypt:",
    "ecryptfs:",
    "invocation_id:",
];

/// (service, username) of a recognised description, or None.
pub fn parse_description(desc: &str) -> Option<(String, String)> {
    if FOREIGN_PREFIXES.iter().any(|p| desc.starts_with(p)) {
        return None;
    }
    if desc.chars().any(char::is_control) {
        return None;
    }
    let (service, username) = desc.rsplit_once(':')?;
    if service.is_empty() {
        return None;
    }
    Some((service.to_string(), username.to_string()))
}

/// One key found.
#[derive(Clone)]
pub struct Found {
    pub serial: KeySerial,
    /// Where it was found (`@s`, `@u`, `@s/python-keyring-keyutils`, ...).
    pub place: String,
    pub service: String,
    pub username: String,
    pub secret: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Found")
            .field("serial", &self.serial)
            .field("place", &self.place)
            .field("service", &self.service)
            .field("username", &self.username)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .finish()
    }
}

impl Found {
    /// The item to import: attributes `service` and `username`, the label `keyringrs set`
    /// gives (`<username>@<service>`).
    pub fn item(&self) -> Item {
        let mut attributes = BTreeMap::new();
        attributes.insert("service".to_string(), self.service.clone());
        attributes.insert("username".to_string(), self.username.clone());
        Item {
            label: format!("{}@{}", self.username, self.service),
            attributes,
            secret: self.secret.clone(),
            // Kernel keys have no creation time we could trust as the secret's.
            created: None,
            modified: None,
        }
    }
}

/// Every recognised key in `@s` and `@u` (and their `python-keyring-keyutils` keyrings), and a
/// message for each recognised key that could not be read.
pub fn scan() -> Result<(Vec<Found>, Vec<String>)> {
    let mut found = Vec::new();
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for (ring, name) in [(Keyring::Session, "@s"), (Keyring::User, "@u")] {
        let Ok(serial) = ring.serial(false) else {
            continue;
        };
        scan_ring(serial, name, 0, &mut seen, &mut found, &mut problems)?;
    }
    Ok((found, problems))
}

fn scan_ring(
    ring: KeySerial,
    place: &str,
    depth: u32,
    seen: &mut HashSet<i32>,
    found: &mut Vec<Found>,
    problems: &mut Vec<String>,
) -> Result<()> {
    let members = match ring.members() {
        Ok(m) => m,
        Err(Error::Locked) | Err(Error::AccessDenied(_)) => return Ok(()),
        Err(e) => return Err(e),
    };
    for key in members {
        if !seen.insert(key.0) {
            continue;
        }
        // A key that went away or that we may not even describe is none of ours.
        let Ok(d) = key.describe() else { continue };
        if d.key_type == "keyring" && d.description == BACKEND_KEYRING && depth == 0 {
            scan_ring(
                key,
                &format!("{place}/{BACKEND_KEYRING}"),
                depth + 1,
                seen,
                found,
                problems,
            )?;
            continue;
        }
        if d.key_type != "user" {
            continue;
        }
        let Some((service, username)) = parse_description(&d.description) else {
            continue;
        };
        match key.read() {
            Ok(secret) => found.push(Found {
                serial: key,
                place: place.to_string(),
                service,
                username,
                secret,
            }),
            Err(e) => problems.push(format!("key {} {:?} in {place}: {e}", key.0, d.description)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_description;

    #[test]
    fn descriptions() {
        let p = |d: &str| parse_description(d);
        assert_eq!(p("svc A:user X"), Some(("svc A".into(), "user X".into())));
        assert_eq!(
            p("https://h:443:bob"),
            Some(("https://h:443".into(), "bob".into()))
        );
        assert_eq!(p("svc:"), Some(("svc".into(), String::new())));
        for bad in [
            ":u",
            "nocolon",
            "keyringrs:0123",
            "keyringrs-locked:0123",
            "keyringrs-holders:0123",
            "_ses:x",
            ".fscrypt:x",
            "a\n:b",
            "invocation_id:x",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
