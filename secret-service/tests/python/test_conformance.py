"""python-keyring's own backend conformance suite and secretstorage against
keyringrs-secret-service, and the identity of their items with `keyringrs` CLI entries."""

import keyring.errors
import pytest
import secretstorage
from keyring.backends import SecretService
from keyring.testing.backend import BackendBasicTests


class TestKeyringSecretServiceBackend(BackendBasicTests):
    """keyring.testing.backend.BackendBasicTests, unmodified, on keyring's SecretService backend."""

    def init_keyring(self):
        return SecretService.Keyring()


def test_the_backend_sees_the_service(ss_env):
    assert SecretService.Keyring.priority == 5


def test_keyring_items_are_keyringrs_entries(ss_env):
    kr = SecretService.Keyring()
    kr.set_password("py.example", "alice", "from-python ✓")
    assert ss_env.cli("get", "py.example", "alice").stdout == "from-python ✓".encode()
    ss_env.cli("set", "cli.example", "bob", input=b"from-cli\n")
    assert kr.get_password("cli.example", "bob") == "from-cli"
    cred = kr.get_credential("cli.example", None)
    assert (cred.username, cred.password) == ("bob", "from-cli")
    kr.delete_password("py.example", "alice")
    assert ss_env.cli("get", "py.example", "alice", check=False).returncode == 4
    kr.delete_password("cli.example", "bob")
    with pytest.raises(keyring.errors.PasswordDeleteError):
        kr.delete_password("cli.example", "bob")


def test_secretstorage_dh_session_binary_secrets_labels_attributes(ss_env):
    with secretstorage.dbus_init() as conn:
        coll = secretstorage.get_default_collection(conn)
        assert coll.collection_path == "/org/freedesktop/secrets/aliases/default"
        assert coll.get_label() == "Login"
        secret = bytes(range(256)) * 3
        item = coll.create_item(
            "binary", {"service": "ss", "username": "bin", "kind": "x"}, secret, replace=True
        )
        # secretstorage negotiates dh-ietf1024-sha256-aes128-cbc-pkcs7 when the service offers it.
        assert item.session.encrypted
        assert item.get_secret() == secret
        assert item.get_label() == "binary"
        assert item.get_attributes() == {"service": "ss", "username": "bin", "kind": "x"}
        assert ss_env.cli("get", "ss", "bin").stdout == secret
        item.set_label("relabelled")
        item.set_secret(b"new")
        assert item.get_label() == "relabelled"
        assert ss_env.cli("get", "ss", "bin").stdout == b"new"
        # Replace semantics and several matches: replace=True replaces the item with these
        # service and username attributes; replace=False (secretstorage's default) creates a
        # second item with the same attributes, which the CLI (the first) does not see.
        again = coll.create_item(
            "b2", {"service": "ss", "username": "bin", "kind": "x"}, b"n2", replace=True
        )
        assert again.item_path == item.item_path
        twin = coll.create_item("b3", {"service": "ss", "username": "bin", "kind": "x"}, b"n3")
        assert twin.item_path != item.item_path
        assert twin.get_attributes() == item.get_attributes()
        assert ss_env.cli("get", "ss", "bin").stdout == b"n2"
        found = sorted(i.get_secret() for i in coll.search_items({"username": "bin"}))
        assert found == [b"n2", b"n3"]
        twin.delete()
        coll.create_item("other", {"service": "ss", "username": "two", "kind": "x"}, b"t")
        found = sorted(i.get_secret() for i in coll.search_items({"kind": "x"}))
        assert found == [b"n2", b"t"]
        found = list(secretstorage.search_items(conn, {"service": "ss", "username": "two"}))
        assert [i.get_secret() for i in found] == [b"t"]
        assert {c.collection_path for c in secretstorage.get_all_collections(conn)} == {
            "/org/freedesktop/secrets/collection/login",
            "/org/freedesktop/secrets/collection/session",
        }
        assert secretstorage.get_collection_by_alias(conn, "default").get_label() == "Login"
        for i in coll.search_items({"kind": "x"}):
            i.delete()
        assert list(coll.search_items({"kind": "x"})) == []
        # Items without service/username attributes (a synthetic store identity).
        gen = coll.create_item("generic", {"xdg:schema": "org.example.Pw", "host": "h"}, b"g")
        assert gen.get_attributes() == {"xdg:schema": "org.example.Pw", "host": "h"}
        listed = ss_env.cli("list").stdout.decode()
        assert "org.freedesktop.Secret.Item:org.example.Pw\t" in listed
        gen.delete()


def test_locked_store_refuses_and_unlock_brings_it_back(ss_env):
    kr = SecretService.Keyring()
    kr.set_password("lock.example", "u", "v")
    ss_env.cli("lock")
    with secretstorage.dbus_init() as conn:
        coll = secretstorage.get_default_collection(conn)
        assert coll.is_locked()
        # The headless prompt is dismissed (no $KEYRINGRS_ASKPASS): keyring reports it locked.
        with pytest.raises(keyring.errors.KeyringLocked):
            kr.get_password("lock.example", "u")
    ss_env.cli("unlock", "--password-stdin", input=b"pw\n")
    assert kr.get_password("lock.example", "u") == "v"
    kr.delete_password("lock.example", "u")


def test_app_items_with_their_own_attributes_and_content_types(ss_env):
    """Items as desktop apps make them (a libsecret schema, no service/username): found by any
    subset of their attributes, replaced only when all attributes are equal, their content type
    kept; the CLI lists them and they survive a daemon-independent re-read."""
    with secretstorage.dbus_init() as conn:
        coll = secretstorage.get_default_collection(conn)
        schema = {"xdg:schema": "org.example.Mail", "e-source-uid": "acct-1"}
        a = coll.create_item("mail", schema, b"pw1", replace=True, content_type="application/x-test")
        assert a.get_secret_content_type() == "application/x-test"
        assert a.get_attributes() == schema
        # replace=True with equal attributes: the same item, new secret.
        b = coll.create_item("mail", dict(schema), b"pw2", replace=True)
        assert b.item_path == a.item_path
        assert a.get_secret() == b"pw2"
        # replace=False: a second item with the same attributes.
        c = coll.create_item("mail 2", dict(schema), b"pw3", replace=False)
        assert c.item_path != a.item_path
        # Other attributes: another item.
        d = coll.create_item("mail 3", {**schema, "e-source-uid": "acct-2"}, b"pw4", replace=True)
        assert d.item_path not in (a.item_path, c.item_path)
        by_schema = sorted(i.get_secret() for i in coll.search_items({"xdg:schema": "org.example.Mail"}))
        assert by_schema == [b"pw2", b"pw3", b"pw4"]
        by_uid = sorted(i.get_secret() for i in coll.search_items({"e-source-uid": "acct-1"}))
        assert by_uid == [b"pw2", b"pw3"]
        assert list(coll.search_items({"e-source-uid": "acct-3"})) == []
        # Changing an app item's attributes moves it in searches.
        c.set_attributes({**schema, "e-source-uid": "acct-9"})
        assert [i.item_path for i in coll.search_items({"e-source-uid": "acct-9"})] == [c.item_path]
        assert [i.item_path for i in coll.search_items({"e-source-uid": "acct-1"})] == [a.item_path]
        for i in (a, c, d):
            i.delete()
        assert list(coll.search_items({"xdg:schema": "org.example.Mail"})) == []
