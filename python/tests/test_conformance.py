"""python-keyring's own conformance tests (keyring.testing.backend.BackendBasicTests) against
KeyringrsBackend, each on a fresh unlocked store. Skips count as failures (conftest.py)."""

import os
import shutil

from keyring.testing.backend import BackendBasicTests

from conftest import new_store
from keyringrs.backend import KeyringrsBackend


class TestKeyringrs(BackendBasicTests):
    def init_keyring(self):
        self._store, self._root = new_store()
        return KeyringrsBackend()

    def teardown_method(self, method):
        os.environ.pop("KEYRINGRS_STORE", None)
        shutil.rmtree(getattr(self, "_root", ""), ignore_errors=True)
