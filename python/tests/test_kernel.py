"""keyringrs.kernel on the real kernel keyring (the session keyring of the pytest process)."""

import os

import pytest

import keyringrs
from keyringrs import kernel


def test_add_search_read_any_size_describe_invalidate():
    payload = os.urandom(30_000)  # beyond a page, near the 32 KiB cap of user keys: the read loop sizes it
    serial = kernel.add(f"krs-test:{os.getpid()}", payload, kernel.SESSION)
    assert kernel.search(f"krs-test:{os.getpid()}") == serial
    assert kernel.read(serial) == payload
    d = kernel.describe(serial)
    assert d["type"] == "user" and d["uid"] == os.getuid()
    assert d["description"] == f"krs-test:{os.getpid()}"
    kernel.set_timeout(serial, 60)
    kernel.invalidate(serial)
    assert kernel.get(f"krs-test:{os.getpid()}") is None
    # By serial: gone (ENOKEY) or, until the kernel reaps it, no longer possessed (EACCES).
    with pytest.raises((keyringrs.LockedError, keyringrs.AccessDeniedError)):
        kernel.read(serial)


def test_update_in_place_and_errors():
    a = kernel.add("krs-test:update", b"one")
    b = kernel.add("krs-test:update", "two")
    assert a == b and kernel.read(a) == b"two"
    kernel.invalidate(a)
    with pytest.raises(keyringrs.LockedError):
        kernel.search("krs-test:absent")
    with pytest.raises(ValueError):
        kernel.add("x", b"y", "@nowhere")
