//! keyringrs-secret-service: the freedesktop.org Secret Service API (org.freedesktop.secrets,
//! version 0.2) served from the keyringrs store, so that every desktop application's secrets
//! are unlocked by login and locked by logout. See docs/SECRET-SERVICE.md.
//!
//! One file per D-Bus object (service, collection, item, session, prompt, and the `session`
//! collection and its items); what they share in state.rs; session items in the kernel in
//! kernel_items.rs, collection labels in labels.rs; the main loop in daemon.rs.

pub mod collection;
pub mod crypto;
pub mod daemon;
pub mod error;
pub mod item;
pub mod kernel_items;
pub mod labels;
pub mod mapping;
pub mod prompt;
pub mod service;
pub mod session;
pub mod session_collection;
pub mod session_item;
pub mod state;
