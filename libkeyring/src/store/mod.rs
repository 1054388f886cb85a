//! The encrypted store: a directory with a header and one sealed file per entry, unlocked by a
//! kernel key `keyringrs:<store-id>`. Every operation reads that key from the kernel and keeps
//! no copy beyond the call.
//!
//! One file per operation family: [`open`] (open, create), [`unlock`], [`key`] (the kernel
//! key), [`read`], [`write`], [`search`] (the index), [`journal`] (its IO half), [`slots`],
//! [`migrate`] (rotation, version 1), [`cache`] (what a long-lived handle remembers) and
//! [`files`] (checked reads, atomic writes, the generation counter).

pub(crate) mod cache;
pub(crate) mod files;
pub(crate) mod journal;
mod key;
mod migrate;
mod open;
mod read;
pub(crate) mod search;
mod slots;
mod tpm2;
mod unlock;
mod write;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::crypto::{KdfParams, MasterKey};
use crate::error::{Error, Result};
use crate::format::{Header, StoreId};
use crate::kernel::StoreKey;
pub use crate::kernel::{KeyRef, Scope};
use crate::sys::fs;

pub use cache::HeaderAndMac;
pub(crate) use cache::{EntryCache, KeyCache};
pub use slots::{Credential, SlotInfo, SlotKind};
pub use tpm2::{Tpm2Slot, MAX_SEALED_LEN};

/// How to unlock (and, for `init`/`passwd`, how to wrap).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnlockOptions {
    /// Argon2id parameters for new keyslots; existing weaker ones are upgraded on unlock.
    pub kdf: KdfParams,
    pub scope: Scope,
    /// Key timeout in seconds (None: until locked or the session ends).
    pub timeout: Option<u32>,
    /// How long `init` and a password change wait for the store's writer lock (None: as long as
    /// it takes; the PAM module gives a bound, so a user holding the lock cannot hang a login).
    /// The KDF upgrade and temp-file cleanup of `unlock` never wait: they skip when busy.
    pub lock_wait: fs::Wait,
}

/// What `unlock` did besides unlocking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnlockReport {
    /// The store was unlocked already (the password was still checked).
    pub already_unlocked: bool,
    /// The keyslot's KDF parameters were upgraded to the configured ones.
    pub kdf_upgraded: bool,
    /// The store was migrated from format version 1 to 2 by this unlock.
    pub migrated: bool,
    /// A non-fatal problem (e.g. the KDF upgrade could not be written).
    pub warning: Option<String>,
    /// The key this unlock put into the kernel (None: an existing one was kept).
    pub installed: Option<KeyRef>,
}

/// A store whose master key was unwrapped with a password (Argon2id done), before anything is
/// put into the kernel: lets the PAM module act as the user's real uid only around the kernel
/// calls. Wiped on drop; Debug shows nothing secret.
pub struct Opened {
    pub(crate) header: Header,
    pub(crate) index: usize,
    pub(crate) master: MasterKey,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("slot", &self.index)
            .finish_non_exhaustive()
    }
}

/// The identity the CLI, Python `keyring` and C use: (service, username).
pub type Identity = (String, String);

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub path: PathBuf,
    pub id: String,
    pub locked: bool,
    /// Number of entries, when unlocked.
    pub entries: Option<usize>,
}

/// An open store. Holds the store and entries directories open (so a path swapped later cannot
/// redirect us) and the public header; never the master key.
#[derive(Debug)]
pub struct Store {
    pub(crate) path: PathBuf,
    pub(crate) dir: File,
    pub(crate) entries: File,
    pub(crate) id: StoreId,
    /// The header's format version as last seen (1 until migrated; crate::store::search).
    pub(crate) version: std::sync::atomic::AtomicU16,
    /// The blind attribute index as this handle last read it (crate::format::index, crate::store::search).
    pub(crate) index: std::sync::Mutex<Option<crate::format::index::Index>>,
    /// The write journal as this handle last read it (crate::format::journal).
    pub(crate) journal: std::sync::Mutex<journal::Journal>,
    pub(crate) key: StoreKey,
    pub(crate) owner: u32,
    pub(crate) wait: fs::Wait,
    key_cache: KeyCache,
    entry_cache: Option<EntryCache>,
    /// On a local filesystem (every writer on this machine, flock holds): the journal and the
    /// index are used. On NFS, SMB, sshfs two machines may write at once without a common lock,
    /// so writes go to entry files and searches read every item (docs/FORMAT.md).
    pub(crate) local: bool,
}

/// The total Argon2id cost (KiB × passes, summed over the keyslots tried) one unlock may spend:
/// a header someone else wrote with many expensive slots costs at most this, not slots × cap.
pub const UNLOCK_KDF_BUDGET: u64 = KdfParams::MAX_COST;

/// The default store path: `$KEYRINGRS_STORE`, else `$XDG_DATA_HOME/keyringrs`, else
/// `~/.local/share/keyringrs` (home from `$HOME`).
pub fn default_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KEYRINGRS_STORE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| Path::new(p).is_absolute()) {
        return Ok(PathBuf::from(p).join("keyringrs"));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/keyringrs")),
        None => Err(Error::InvalidInput(
            "no store path: set KEYRINGRS_STORE or HOME".into(),
        )),
    }
}

/// The kernel key description of a store: `keyringrs:<store-id hex>`.
pub fn key_description(id: &StoreId) -> String {
    format!("keyringrs:{}", id.hex())
}

impl Store {
    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store id as lowercase hex.
    pub fn id(&self) -> String {
        self.id.hex()
    }

    /// The description of this store's kernel key.
    pub fn key_description(&self) -> &str {
        self.key.description()
    }

    /// The kernel uid that owns this store (and must own its keys).
    pub fn owner(&self) -> u32 {
        self.owner
    }
}
