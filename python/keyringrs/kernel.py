"""The kernel keyring, high level: ``user`` keys in the special keyrings, payloads of any size.

What python-keyring-keyutils offered, with errors as exceptions (``LockedError`` for a missing,
revoked, expired or invalidated key, ``AccessDeniedError`` for a key of another uid,
``QuotaError`` for a full key quota)::

    from keyringrs import kernel
    serial = kernel.add("my:token", b"secret", kernel.SESSION)
    kernel.read(kernel.search("my:token"))      # b'secret'
    kernel.set_timeout(serial, 60)
    kernel.invalidate(serial)
"""

from typing import Optional, Union

from . import _keyringrs

#: Special keyrings (keyrings(7)).
THREAD = "@t"
PROCESS = "@p"
SESSION = "@s"
USER = "@u"
USER_SESSION = "@us"

Keyring = Union[str, int]


def add(description: str, payload: Union[bytes, bytearray, str], keyring: Keyring = SESSION) -> int:
    """Add a ``user`` key (or update the one with this description in ``keyring``); its serial."""
    return _keyringrs.kernel_add(description, payload, keyring)


def search(description: str, keyring: Keyring = SESSION) -> int:
    """The serial of the ``user`` key ``description`` in ``keyring`` or below it."""
    return _keyringrs.kernel_search(description, keyring)


def read(serial: int) -> bytes:
    """The whole payload of a key."""
    return _keyringrs.kernel_read(serial)


def get(description: str, keyring: Keyring = SESSION) -> Optional[bytes]:
    """The payload of the ``user`` key ``description``, or None if there is none."""
    try:
        return read(search(description, keyring))
    except _keyringrs.LockedError:
        return None


def invalidate(serial: int) -> None:
    """Make the key unusable everywhere at once."""
    _keyringrs.kernel_invalidate(serial)


def set_timeout(serial: int, seconds: int) -> None:
    """Expire the key after ``seconds`` (0 clears the timeout)."""
    _keyringrs.kernel_set_timeout(serial, seconds)


def describe(serial: int) -> dict:
    """``type``, ``uid``, ``gid``, ``perm`` and ``description`` of a key."""
    return _keyringrs.kernel_describe(serial)


def join_session(name: Optional[str] = None) -> int:
    """Give this thread (and the processes it starts) a new session keyring; its serial."""
    return _keyringrs.kernel_join_session(name)
