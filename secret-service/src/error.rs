//! The errors the daemon answers with: the Secret Service ones and the standard D-Bus ones.

use zbus::message::{Header, Message};
use zbus::names::ErrorName;
use zbus::DBusError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// org.freedesktop.Secret.Error.IsLocked
    IsLocked(String),
    /// org.freedesktop.Secret.Error.NoSession
    NoSession(String),
    /// org.freedesktop.Secret.Error.NoSuchObject
    NoSuchObject(String),
    /// org.freedesktop.DBus.Error.NotSupported
    NotSupported(String),
    /// org.freedesktop.DBus.Error.InvalidArgs
    InvalidArgs(String),
    /// org.freedesktop.DBus.Error.AccessDenied
    AccessDenied(String),
    /// org.freedesktop.DBus.Error.LimitsExceeded (too many sessions or prompts)
    LimitsExceeded(String),
    /// org.freedesktop.DBus.Error.Failed
    Failed(String),
}

impl Error {
    fn name_str(&self) -> &'static str {
        match self {
            Error::IsLocked(_) => "org.freedesktop.Secret.Error.IsLocked",
            Error::NoSession(_) => "org.freedesktop.Secret.Error.NoSession",
            Error::NoSuchObject(_) => "org.freedesktop.Secret.Error.NoSuchObject",
            Error::NotSupported(_) => "org.freedesktop.DBus.Error.NotSupported",
            Error::InvalidArgs(_) => "org.freedesktop.DBus.Error.InvalidArgs",
            Error::AccessDenied(_) => "org.freedesktop.DBus.Error.AccessDenied",
            Error::LimitsExceeded(_) => "org.freedesktop.DBus.Error.LimitsExceeded",
            Error::Failed(_) => "org.freedesktop.DBus.Error.Failed",
        }
    }

    fn text(&self) -> &str {
        match self {
            Error::IsLocked(s)
            | Error::NoSession(s)
            | Error::NoSuchObject(s)
            | Error::NotSupported(s)
            | Error::InvalidArgs(s)
            | Error::AccessDenied(s)
            | Error::LimitsExceeded(s)
            | Error::Failed(s) => s,
        }
    }

    pub(crate) fn locked() -> Error {
        Error::IsLocked(
            "the keyringrs store is locked: run `keyringrs unlock` in this session".into(),
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.name_str(), self.text())
    }
}

impl std::error::Error for Error {}

impl DBusError for Error {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name())?.build(&(self.text(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::from_static_str_unchecked(self.name_str())
    }

    fn description(&self) -> Option<&str> {
        Some(self.text())
    }
}

impl From<zbus::Error> for Error {
    fn from(e: zbus::Error) -> Error {
        Error::Failed(e.to_string())
    }
}

impl From<libkeyring::Error> for Error {
    fn from(e: libkeyring::Error) -> Error {
        use libkeyring::Error as E;
        match e {
            E::Locked => Error::locked(),
            E::NoStore(p) => Error::IsLocked(format!(
                "there is no keyringrs store at {}: run `keyringrs init`",
                p.display()
            )),
            E::NoEntry { .. } => Error::NoSuchObject("no such item".into()),
            E::InvalidInput(m) => Error::InvalidArgs(m),
            E::AccessDenied(m) => Error::AccessDenied(m),
            E::Quota(m) => Error::LimitsExceeded(format!("the kernel's key quota: {m}")),
            other => Error::Failed(other.to_string()),
        }
    }
}

/// Property accessors can only fail with the standard errors; the Secret Service name is kept
/// at the start of the message.
impl From<Error> for zbus::fdo::Error {
    fn from(e: Error) -> zbus::fdo::Error {
        match e {
            Error::NotSupported(m) => zbus::fdo::Error::NotSupported(m),
            Error::InvalidArgs(m) => zbus::fdo::Error::InvalidArgs(m),
            Error::AccessDenied(m) => zbus::fdo::Error::AccessDenied(m),
            Error::LimitsExceeded(m) => zbus::fdo::Error::LimitsExceeded(m),
            other => zbus::fdo::Error::Failed(other.to_string()),
        }
    }
}
