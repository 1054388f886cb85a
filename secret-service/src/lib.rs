//! keyringrs-secret-service: the freedesktop.org Secret Service API (org.freedesktop.secrets,
//! version 0.2) served from the keyringrs store, so that every desktop application's secrets
//! are unlocked by login and locked by logout. See docs/SECRET-SERVICE.md.

pub mod crypto;
pub mod mapping;
pub mod service;
