"""python-keyring backend: ``keyring.get_password(service, username)`` from the keyringrs store.

Select it with ``PYTHON_KEYRING_BACKEND=keyringrs.backend.KeyringrsBackend`` or in keyringrc.cfg
(``[backend] default-keyring=keyringrs.backend.KeyringrsBackend``); it is registered under the
entry point group ``keyring.backends`` as ``keyringrs``. The store is the one of
``KEYRINGRS_STORE`` (default ``~/.local/share/keyringrs``). Its open handle is kept between
calls (it holds no secret: descriptors, the key's serial, sealed bytes) while the store path,
the process and the store directory are the same; a store removed or replaced is opened afresh.
"""

import os
from typing import Dict, Optional, Tuple

from jaraco.classes import properties
from keyring.backend import KeyringBackend
from keyring.credentials import SimpleCredential
from keyring.errors import KeyringError, KeyringLocked, PasswordDeleteError, PasswordSetError

from . import Error, LockedError, NoEntryError, Store


# What decides the store's path (see keyringrs.Store), with the process id: a child after
# fork opens its own handle.
_Where = Tuple[int, Optional[str], Optional[str], Optional[str]]
# The store path learnt for each _Where, and the handle kept with its directory's identity.
_paths: Dict[_Where, str] = {}
_kept: Dict[_Where, Tuple[Store, Tuple[int, int]]] = {}


def _identity(path: str) -> Optional[Tuple[int, int]]:
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _store() -> Store:
    """The store of KEYRINGRS_STORE (or the default path); KeyringError if it cannot be opened.

    The handle is kept while the path names the same directory: one stat per call instead of
    opening the store (its header, and the journal read afresh). The identity is taken before
    the store is opened and checked again after, so a directory swapped in meanwhile is never
    remembered under the wrong handle.
    """
    env = os.environ
    where = (os.getpid(), env.get("KEYRINGRS_STORE"), env.get("XDG_DATA_HOME"), env.get("HOME"))
    try:
        path = _paths.get(where)
        if path is None:
            store = Store()
            # A relative KEYRINGRS_STORE depends on the working directory: opened every time.
            if os.path.isabs(store.path):
                _paths[where] = store.path
            return store
        before = _identity(path)
        kept = _kept.get(where)
        if kept is not None and before is not None and kept[1] == before:
            return kept[0]
        _kept.pop(where, None)
        store = Store(path)
        if before is not None and _identity(path) == before:
            _kept[where] = (store, before)
        return store
    except Error as e:
        raise KeyringError(f"keyringrs: {e}") from e


class KeyringrsBackend(KeyringBackend):
    """The keyringrs store: encrypted at rest, unlocked by login, locked by logout."""

    @properties.classproperty
    def priority(cls) -> float:
        """9 while the store is unlocked in this session (preferred over the Secret Service's
        5), 1 when it exists but is locked; not viable without a store or kernel keyrings."""
        try:
            store = Store()
            locked = store.locked
        except Exception as e:  # noqa: BLE001 - any failure makes the backend not viable
            raise RuntimeError(f"keyringrs store not usable: {e}") from e
        return 1 if locked else 9

    def get_password(self, service: str, username: str) -> Optional[str]:
        try:
            return _store().get(service, username)
        except LockedError as e:
            raise KeyringLocked(str(e)) from e

    def set_password(self, service: str, username: str, password: str) -> None:
        try:
            _store().set(service, username, password)
        except LockedError as e:
            raise KeyringLocked(str(e)) from e
        except Exception as e:  # noqa: BLE001 - keyring's contract: PasswordSetError
            raise PasswordSetError(str(e)) from e

    def delete_password(self, service: str, username: str) -> None:
        try:
            _store().delete(service, username)
        except LockedError as e:
            raise KeyringLocked(str(e)) from e
        except NoEntryError as e:
            raise PasswordDeleteError(str(e)) from e

    def get_credential(self, service: str, username: Optional[str]) -> Optional[SimpleCredential]:
        """The credential for (service, username), or with no username the first of service."""
        try:
            store = _store()
            if username is None:
                names = [u for s, u in store.list() if s == service]
                if not names:
                    return None
                username = names[0]
            password = store.get(service, username)
        except LockedError as e:
            raise KeyringLocked(str(e)) from e
        return None if password is None else SimpleCredential(username, password)
