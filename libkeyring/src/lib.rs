//! libkeyring: the login-unlocked encrypted secret store of keyringrs.
//!
//! - [`keyring`]: typed access to the kernel keyring (`sys/` holds the raw calls).
//! - [`Store`]: the encrypted store on disk, unlocked by the kernel key `keyringrs:<store-id>`.
//! - [`Error`]: the error kinds of the contract, each with its CLI exit code.
//!
//! ```no_run
//! use libkeyring::{Store, UnlockOptions};
//! let store = Store::open("/home/alice/.local/share/keyringrs")?;
//! store.unlock(b"password", &UnlockOptions::default())?;
//! store.set("github.com", "alice", b"token")?;
//! assert_eq!(&*store.get("github.com", "alice")?, b"token");
//! store.lock()?;
//! # Ok::<(), libkeyring::Error>(())
//! ```

pub mod check;
#[cfg(feature = "keyring-core")]
pub mod credential_store;
pub mod crypto;
pub mod error;
pub mod format;
pub mod kernel;
pub mod lock_policy;
pub mod mapping;
pub mod portal;
pub mod recovery;
pub mod repair;
pub mod store;
pub mod sys;

pub use crypto::KdfParams;
pub use error::{Error, ErrorKind, Result};
pub use format::EntryData;
/// The typed kernel keyring and the logins holding a store, as `libkeyring::keyring` and
/// `libkeyring::holders` (they live in crate::kernel).
pub use kernel::{holders, keyring, lock_note};
pub use store::search::Found;
pub use store::{
    default_path, key_description, KeyRef, Opened, Scope, Status, Store, UnlockOptions,
    UnlockReport,
};
pub use store::{Credential, SlotInfo, SlotKind, Tpm2Slot};
