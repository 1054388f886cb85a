"""Every test runs in the session keyring `make python-tests` gives pytest (keyctl session -),
with its own store in a temporary directory (KEYRINGRS_STORE), unlocked with small Argon2id
parameters through the same options users have."""

import os
import shutil
import tempfile

import pytest

import keyringrs

# Small Argon2id for tests (the defaults are exercised by the Rust tests).
KDF = {"kdf_memory": 256, "kdf_time": 1}
PASSWORD = "test password"


def new_store():
    """A fresh unlocked store; KEYRINGRS_STORE points at it. Returns (store, its directory)."""
    root = tempfile.mkdtemp(prefix="keyringrs-py-")
    path = os.path.join(root, "store")
    os.environ["KEYRINGRS_STORE"] = path
    return keyringrs.init(PASSWORD, path, **KDF), root


@pytest.fixture
def store():
    s, root = new_store()
    yield s
    os.environ.pop("KEYRINGRS_STORE", None)
    shutil.rmtree(root, ignore_errors=True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """The conformance suite must run whole: a skipped conformance test is a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and "TestKeyringrs" in item.nodeid:
        report.outcome = "failed"
        report.longrepr = f"conformance test skipped (must run): {report.longrepr}"
