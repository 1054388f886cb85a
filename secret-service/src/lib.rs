//! keyringrs-secret-service: the freedesktop.org Secret Service API (org.freedesktop.secrets,
//! version 0.2) served from the keyringrs store, so that every desktop application's secrets
//! are unlocked by login and locked by logout. See docs/SECRET-SERVICE.md.
//!
//! One file per D-Bus object: service.rs, collection.rs (both collections), item.rs (both
//! collections' items, and the registry of item objects), session.rs, prompt.rs, portal.rs
//! (org.freedesktop.impl.portal.Secret, the Secret portal's backend, and its requests). The
//! collections differ only in their backend (backend.rs): the store (store_backend.rs) or kernel
//! keys (session_backend.rs over kernel_items.rs). What the objects share is in state.rs; their
//! names on the bus in paths.rs; signals sent on their behalf in signals.rs; collection labels
//! in labels.rs; the main loop in daemon.rs. The dialogs that ask the user for the password
//! (for prompt.rs) are in prompter/, one file each: gcr.rs (GNOME's system prompt), pinentry.rs,
//! askpass.rs, and caller.rs (who asked, on which display or terminal, in which login).
//!
//! Dependencies point one way, objects -> backend/state -> libkeyring; an object imports
//! another only to create it. The `use crate::...` graph (each also uses error):
//! - daemon        -> service, collection, portal, prompt, session, item, backend, state, paths
//! - portal        -> prompter (unlocking for the app), item (serving a minted secret),
//!   signals, backend, state
//! - service       -> prompt, session (it creates them), item (SearchItems and Unlock serve
//!   items), backend, state, paths, crypto
//! - prompt        -> prompter (its dialog), item (completing an unlock serves the store's
//!   items), backend, state, paths
//! - prompter      -> state, crypto (gcr's secret exchange)
//! - logind        -> item (following the lock it made), state
//! - locked_result -> state, paths (what it becomes once the store opens is item.rs's)
//! - collection    -> item (it creates its items), backend, signals, labels, state, paths
//! - item          -> locked_result (the results it turns into items), backend, signals, state,
//!   paths
//! - session       -> state
//! - state         -> store_backend, session_backend, backend, crypto, paths
//! - signals       -> backend, paths
//! - store_backend -> backend, mapping
//! - session_backend -> backend, kernel_items, mapping
//! - kernel_items  -> backend (its item type)
//! - backend       -> paths

pub mod backend;
pub mod collection;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod item;
pub mod kernel_items;
pub mod labels;
pub mod locked_result;
pub mod logind;
pub mod mapping;
pub mod paths;
pub mod portal;
pub mod prompt;
pub mod prompter;
pub mod service;
pub mod session;
pub mod session_backend;
pub mod signals;
pub mod state;
pub mod store_backend;
