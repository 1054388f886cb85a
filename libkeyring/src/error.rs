//! The error kinds of the contract (DESIGN.md "Errors"): every failure of the library is one of
//! these, and each maps to one CLI exit code, one Python exception and one C error code.

use std::path::{Path, PathBuf};

/// Everything that can go wrong in libkeyring. Display texts are one line and say what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The store's key is not in the kernel keyring (never unlocked, logged out, locked, expired).
    #[error("store is locked: run `keyringrs unlock`")]
    Locked,
    /// No entry for this (service, username).
    #[error("no entry for service {service:?} and username {username:?}")]
    NoEntry { service: String, username: String },
    /// The password opens no keyslot of the store. A keyslot whose salt or parameters were
    /// altered (its checksum is not keyed, so it can be recomputed) looks the same: we cannot
    /// tell the two apart, and the message says so.
    #[error("no keyslot opened: wrong password, or the store's header was altered")]
    WrongPassword,
    /// There is no store at this path.
    #[error("no store at {}: run `keyringrs init`", .0.display())]
    NoStore(PathBuf),
    /// A file failed authentication or is malformed, or is not a file we may trust.
    #[error("{}: {reason}", path.display())]
    Corrupt { path: PathBuf, reason: String },
    /// The key exists, but this process may not use it (another uid), or a file is not ours.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The kernel key quota (EDQUOT) or the disk is full.
    #[error("quota exceeded: {0}")]
    Quota(String),
    /// The caller passed something we refuse (too long, bad characters, bad parameters).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// An I/O or system call failed for another reason.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Short alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable kind of an [`Error`], used by the CLI, Python and C bindings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    Locked,
    NoEntry,
    WrongPassword,
    NoStore,
    Corrupt,
    AccessDenied,
    Quota,
    InvalidInput,
    Io,
}

impl ErrorKind {
    /// The CLI exit code of the contract.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::Locked => 3,
            ErrorKind::NoEntry => 4,
            ErrorKind::WrongPassword => 5,
            ErrorKind::NoStore => 6,
            ErrorKind::Corrupt => 7,
            ErrorKind::AccessDenied => 8,
            ErrorKind::Quota => 9,
            ErrorKind::InvalidInput | ErrorKind::Io => 1,
        }
    }
}

impl Error {
    /// The kind of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Locked => ErrorKind::Locked,
            Error::NoEntry { .. } => ErrorKind::NoEntry,
            Error::WrongPassword => ErrorKind::WrongPassword,
            Error::NoStore(_) => ErrorKind::NoStore,
            Error::Corrupt { .. } => ErrorKind::Corrupt,
            Error::AccessDenied(_) => ErrorKind::AccessDenied,
            Error::Quota(_) => ErrorKind::Quota,
            Error::InvalidInput(_) => ErrorKind::InvalidInput,
            Error::Io { .. } => ErrorKind::Io,
        }
    }

    /// A Corrupt error naming `path` (also for the importers' foreign files).
    pub fn corrupt(path: &Path, reason: impl Into<String>) -> Error {
        Error::Corrupt {
            path: path.to_path_buf(),
            reason: reason.into(),
        }
    }

    /// Classify an I/O error on `path` by its errno, on purpose: ENOSPC/EDQUOT are Quota,
    /// EACCES/EPERM are AccessDenied, ELOOP (O_NOFOLLOW met a symlink) is a refusal.
    pub(crate) fn from_io(what: &str, path: &Path, err: std::io::Error) -> Error {
        let whatpath = format!("{what} {}", path.display());
        match err.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Error::Quota(format!("{whatpath}: {err}")),
            Some(libc::EACCES) | Some(libc::EPERM) => {
                Error::AccessDenied(format!("{whatpath}: {err}"))
            }
            Some(libc::ELOOP) => Error::corrupt(path, "is a symbolic link; refusing to follow it"),
            _ => Error::Io {
                what: whatpath,
                source: err,
            },
        }
    }
}
