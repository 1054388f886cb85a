"""The Python API of DESIGN.md: Store, init, the exceptions, the backend's error mapping and
priority, the entry point, and interoperation with the CLI."""

import os
import subprocess
import sys

import keyring
import keyring.backend
import keyring.errors
import pytest

import keyringrs
from conftest import KDF, PASSWORD
from keyringrs.backend import KeyringrsBackend

CLI = os.path.join(os.environ.get("KEYRINGRS_TARGET", "target/debug"), "keyringrs")


def test_round_trips_of_str_bytes_empty_unicode_and_1_mib(store):
    cases = {
        ("s", "str"): "hunter2",
        ("s", "empty"): "",
        ("s", "unicode"): "пароль 🔑 パスワード",
    }
    for (svc, user), value in cases.items():
        store.set(svc, user, value)
        assert store.get(svc, user) == value
    big = os.urandom(1 << 20)
    store.set("s", "big", big)
    assert bytes(store.get_bytes("s", "big")) == big
    every_byte = bytes(range(256))
    store.set("s", "binary", bytearray(every_byte))
    assert store.get_bytes("s", "binary") == bytearray(every_byte)
    with pytest.raises(ValueError):
        store.get("s", "binary")  # not UTF-8: get_bytes is the way
    with pytest.raises(TypeError):
        store.set("s", "x", 42)


def test_get_bytes_is_a_bytearray_the_caller_can_zero(store):
    store.set("s", "u", b"secret")
    value = store.get_bytes("s", "u")
    assert isinstance(value, bytearray)
    value[:] = bytes(len(value))
    assert value == bytearray(6)
    assert store.get_bytes("s", "u") == bytearray(b"secret")


def test_missing_entries_list_and_delete(store):
    assert store.get("nobody", "x") is None
    assert store.get_bytes("nobody", "x") is None
    with pytest.raises(keyringrs.NoEntryError):
        store.delete("nobody", "x")
    store.set("a:b", "c", "1")
    store.set("a", "b:c", "2")
    assert store.list() == [("a", "b:c"), ("a:b", "c")]
    store.delete("a", "b:c")
    assert store.list() == [("a:b", "c")]


def test_lock_unlock_and_wrong_password(store):
    store.set("s", "u", "v")
    assert store.locked is False
    store.lock()
    store.lock()  # a locked store stays locked, no error
    assert store.locked is True
    with pytest.raises(keyringrs.LockedError):
        store.get("s", "u")
    with pytest.raises(keyringrs.LockedError):
        store.set("s", "u", "w")
    with pytest.raises(keyringrs.WrongPasswordError):
        store.unlock("not the password", **KDF)
    assert store.locked is True
    store.unlock(PASSWORD.encode(), timeout=60, **KDF)
    assert store.get("s", "u") == "v"
    assert issubclass(keyringrs.LockedError, keyringrs.Error)


def test_locked_store_makes_the_backend_raise_keyring_locked(store):
    backend = KeyringrsBackend()
    backend.set_password("s", "u", "v")
    assert KeyringrsBackend.priority == 9
    store.lock()
    assert KeyringrsBackend.priority == 1
    for call in (
        lambda: backend.get_password("s", "u"),
        lambda: backend.set_password("s", "u", "w"),
        lambda: backend.delete_password("s", "u"),
    ):
        with pytest.raises(keyring.errors.KeyringLocked):
            call()


def test_no_store_raises_no_store_error_and_the_backend_is_not_viable(tmp_path, monkeypatch):
    monkeypatch.setenv("KEYRINGRS_STORE", str(tmp_path / "none"))
    with pytest.raises(keyringrs.NoStoreError):
        keyringrs.Store()
    assert KeyringrsBackend.viable is False
    with pytest.raises(keyring.errors.KeyringError):
        KeyringrsBackend().get_password("s", "u")
    # Probing every backend's priority must not fail because of us.
    assert KeyringrsBackend not in keyring.backend.KeyringBackend.get_viable_backends()


def test_a_corrupt_entry_is_corrupt_error_naming_the_file(store):
    store.set("s", "u", "v")
    store.checkpoint()  # out of the journal into its entry file
    entries = os.path.join(store.path, "entries")
    (name,) = [n for n in os.listdir(entries) if not n.startswith(".")]
    path = os.path.join(entries, name)
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 1
    with open(path, "wb") as f:
        f.write(data)
    # A fresh handle: the hand edit moves no generation, and the handle that checkpointed
    # remembers the bytes it wrote.
    with pytest.raises(keyringrs.CorruptError, match=name):
        keyringrs.Store(store.path).get("s", "u")


def test_an_existing_store_is_not_overwritten_by_init(store):
    with pytest.raises(keyringrs.InvalidInputError):
        keyringrs.init("pw", store.path, **KDF)


def test_the_entry_point_and_keyring_get_password(store):
    names = [ep.name for ep in keyring.backend.metadata.entry_points(group="keyring.backends")]
    assert "keyringrs" in names
    keyring.backend._load_plugins()
    assert KeyringrsBackend in keyring.backend.KeyringBackend.get_viable_backends()
    store.set("example.org", "alice", "from-store")
    env = dict(os.environ, PYTHON_KEYRING_BACKEND="keyringrs.backend.KeyringrsBackend")
    out = subprocess.run(
        [sys.executable, "-c", "import keyring; print(keyring.get_password('example.org', 'alice'))"],
        env=env, capture_output=True, text=True, check=True,
    )
    assert out.stdout.strip() == "from-store"
    keyring.set_keyring(KeyringrsBackend())
    keyring.set_password("example.org", "bob", "via-keyring")
    assert store.get("example.org", "bob") == "via-keyring"
    assert keyring.get_credential("example.org", None).username == "alice"


def test_the_backend_keeps_its_handle_but_follows_every_change(store, tmp_path):
    """The backend keeps one open handle per store path: it must still see writes by other
    processes, a store removed and made anew at the same path, and another KEYRINGRS_STORE."""
    import shutil

    backend = KeyringrsBackend()
    path = str(store.path)
    env = dict(os.environ, KEYRINGRS_STORE=path)
    backend.set_password("s", "u", "one")
    assert backend.get_password("s", "u") == "one"
    assert backend.get_password("s", "u") == "one"  # now through the kept handle
    subprocess.run([CLI, "set", "s", "u"], input=b"from-cli\n", env=env, check=True)
    assert backend.get_password("s", "u") == "from-cli"
    subprocess.run([CLI, "delete", "s", "u"], env=env, check=True)
    assert backend.get_password("s", "u") is None
    # The same path, a new store (another directory, another key).
    backend.set_password("s", "u", "old store")
    store.lock()
    shutil.rmtree(path)
    keyringrs.init(PASSWORD, path, **KDF).set("s", "u", "new store")
    assert backend.get_password("s", "u") == "new store"
    # Another store path.
    other = str(tmp_path / "other")
    keyringrs.init(PASSWORD, other, **KDF).set("s", "u", "other store")
    os.environ["KEYRINGRS_STORE"] = other
    try:
        assert backend.get_password("s", "u") == "other store"
    finally:
        os.environ["KEYRINGRS_STORE"] = path
    assert backend.get_password("s", "u") == "new store"


def test_the_cli_and_python_share_entries(store):
    env = dict(os.environ, KEYRINGRS_STORE=store.path)
    subprocess.run([CLI, "set", "cli", "u"], input=b"from-cli\n", env=env, check=True)
    assert store.get("cli", "u") == "from-cli"
    store.set("py", "u", "from-python")
    out = subprocess.run([CLI, "get", "py", "u"], env=env, capture_output=True, check=True)
    assert out.stdout == b"from-python"


def test_unlock_with_the_recovery_key_and_the_slot_list(store):
    env = dict(os.environ, KEYRINGRS_STORE=store.path)
    out = subprocess.run(
        [CLI, "recovery-key", "add", "--password-stdin"],
        input=(PASSWORD + "\n").encode(),
        env=env,
        capture_output=True,
        check=True,
    )
    key = out.stdout.decode().strip()
    assert len(key) == 71
    store.set("s", "u", "kept")
    store.lock()
    with pytest.raises(keyringrs.WrongPasswordError):
        store.unlock(recovery_key="c" * 64)
    with pytest.raises(keyringrs.Error):
        store.unlock(recovery_key="not a key")
    with pytest.raises(keyringrs.Error):
        store.unlock()
    store.unlock(recovery_key=key.upper().replace("-", " "))
    assert store.get("s", "u") == "kept"
    slots = store.slots()
    assert [(name, kind) for _, name, kind, _, _ in slots] == [
        ("login", "login-password"),
        ("recovery-key", "recovery-key"),
    ]
