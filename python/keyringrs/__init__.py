"""keyringrs: the login-unlocked secret store for Linux.

Secrets are encrypted on disk and readable only while the login session holds the store's key in
the kernel session keyring (put there by pam_keyringrs at login, or by ``Store.unlock``).

>>> import keyringrs
>>> store = keyringrs.Store()            # doctest: +SKIP
>>> store.set("github.com", "alice", "token")   # doctest: +SKIP
>>> store.get("github.com", "alice")     # doctest: +SKIP
'token'

Errors are :class:`Error` subclasses, one per kind of the contract: :class:`LockedError`,
:class:`NoEntryError`, :class:`WrongPasswordError`, :class:`NoStoreError`,
:class:`CorruptError`, :class:`AccessDeniedError`, :class:`QuotaError` (and
:class:`InvalidInputError` for refused arguments).
"""

from ._keyringrs import (
    AccessDeniedError,
    CorruptError,
    Error,
    InvalidInputError,
    LockedError,
    NoEntryError,
    NoStoreError,
    QuotaError,
    Store,
    WrongPasswordError,
    init,
)

__all__ = [
    "Store",
    "init",
    "Error",
    "LockedError",
    "NoEntryError",
    "WrongPasswordError",
    "NoStoreError",
    "CorruptError",
    "AccessDeniedError",
    "QuotaError",
    "InvalidInputError",
]
