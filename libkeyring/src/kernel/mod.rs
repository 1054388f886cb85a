//! The kernel key's lifetime, in one place: the typed kernel keyring ([`keyring`]), a store's
//! key found, installed and locked ([`StoreKey`]), and the logins holding a store open in `@u`
//! ([`holders`]), and why a policy last locked it ([`lock_note`]). Nothing here knows the store on disk: crate::store calls it, never the other
//! way round.

pub mod holders;
mod key;
pub mod keyring;
pub mod lock_note;

pub use key::{KeyRef, Scope, StoreKey};
