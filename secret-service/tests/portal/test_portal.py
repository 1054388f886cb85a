"""The Secret portal with keyringrs as its backend, called by Debian's libsecret in a
Flatpak-style sandbox (conftest.py), and the switch from gnome-keyring's backend.
The closing lines of each test print what they saw (`pytest -s`)."""

import pathlib
import subprocess

import pytest

from conftest import GNOME_PASSWORD, GNOME_PORTAL_FILE, OUR_PORTAL_FILE, PASSWORD, wait_for

APP = "org.example.App"
OTHER = "org.example.Other"
SECRET = b"sandboxed-app-secret-1"
HERE = pathlib.Path(__file__).resolve().parent


def portal_items(d):
    """(username, label) of the store's portal items, from `keyringrs list` and the store."""
    out = d.cli("list").stdout.decode().splitlines()
    return [line.split("\t") for line in out
            if line.startswith("org.freedesktop.Secret.Item:org.freedesktop.portal.Secret\t")]


def describe(d, app_id):
    r = subprocess.run(["/usr/bin/python3", str(HERE / "lookup_key.py"), app_id, "--describe"],
                       env=d.base, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def app_key(d, app_id):
    """The app's portal secret (random bytes, which secret-tool will not print): from the store,
    or from gnome-keyring through libsecret (lookup_key.py)."""
    r = subprocess.run(["/usr/bin/python3", str(HERE / "lookup_key.py"), app_id], env=d.base,
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def ours(d):
    d.init_store()
    d.start_keyringrs()
    d.start_portal(OUR_PORTAL_FILE)


def test_a_sandboxed_app_keeps_and_reads_its_secrets_through_the_portal(desktop):
    d = desktop
    ours(d)
    d.store_secret(APP, SECRET, "account", "alice")
    r = d.lookup(APP, "account", "alice")
    assert (r.returncode, r.stdout) == (0, SECRET), r.stderr
    # libsecret kept it in the app's own file keyring, encrypted with the portal's secret.
    f = d.keyring_file(APP)
    raw = f.read_bytes()
    assert raw.startswith(b"GnomeKeyring\n\r\0\n"), raw[:16]
    assert SECRET not in raw and b"alice" not in raw
    # Our store holds one item for the app: its key, as gnome-keyring keeps it; not the
    # app's secret (the host never sees that).
    items = portal_items(d)
    assert len(items) == 1, items
    key = app_key(d, APP)
    assert len(key) == 64
    search = describe(d, APP)
    assert f"label: 'Application key for {APP}'" in search, search
    assert f"attributes: {{'app_id': '{APP}', 'xdg:schema': 'org.freedesktop.portal.Secret'}}" in search, search
    assert d.host_secret_tool("lookup", "account", "alice").stdout == b""
    assert "portal: made the secret of the app" in d.log("keyringrs")
    # The app's own file keyring opens with the secret the portal gave it (keyringrs import
    # libsecret-file --app-id reads it with the store's item).
    imp = d.cli("import", "libsecret-file", "--app-id", APP, "--dry-run")
    assert b"dry run, nothing written: 1 new, 0 already there, 0 conflicting" in imp.stdout, imp
    print(f"\nfile {f}: {len(raw)} bytes, no plaintext; store item: {search.strip()}; "
          f"import --dry-run: {imp.stdout.decode().strip()!r}")


def test_two_apps_get_different_secrets_and_cannot_open_each_others_files(desktop):
    d = desktop
    ours(d)
    d.store_secret(APP, SECRET, "account", "alice")
    d.store_secret(OTHER, b"other-secret", "account", "alice")
    assert app_key(d, APP) != app_key(d, OTHER)
    assert d.lookup(OTHER, "account", "alice").stdout == b"other-secret"
    # The other app given this app's file: libsecret cannot open it with its own key.
    mine = d.keyring_file(APP).read_bytes()
    d.keyring_file(OTHER).write_bytes(mine)
    r = d.lookup(OTHER, "account", "alice")
    assert SECRET not in r.stdout and r.stdout == b"", (r.returncode, r.stdout, r.stderr)
    assert d.lookup(APP, "account", "alice").stdout == SECRET
    print(f"\nother app on this app's file: exit {r.returncode}, {r.stderr.decode().strip()!r}")


def test_the_secret_survives_a_daemon_restart_and_a_password_change(desktop):
    d = desktop
    ours(d)
    d.store_secret(APP, SECRET, "account", "alice")
    key = app_key(d, APP)
    d.stop("keyringrs")
    d.start_keyringrs()
    assert d.lookup(APP, "account", "alice").stdout == SECRET
    d.cli("passwd", "--password-stdin", input=f"{PASSWORD}\nN3w-pass-word\n".encode())
    d.cli("lock")
    d.cli("unlock", "--password-stdin", input=b"N3w-pass-word\n")
    d.stop("keyringrs")
    d.start_keyringrs()
    assert d.lookup(APP, "account", "alice").stdout == SECRET
    assert app_key(d, APP) == key
    assert len(portal_items(d)) == 1
    assert d.log("keyringrs").count("portal: made the secret") == 1


def test_a_locked_store_fails_the_request_cleanly_and_mints_nothing(desktop):
    d = desktop
    ours(d)
    d.store_secret(APP, SECRET, "account", "alice")
    d.cli("lock")
    wait_for("the daemon to see the lock", lambda: "locked" in d.cli("status").stdout.decode())
    for app in (APP, OTHER):
        r = d.lookup(app, "account", "alice")
        assert r.returncode != 0 and r.stdout == b"", (app, r.returncode, r.stdout, r.stderr)
    log = d.log("keyringrs")
    assert "no dialog could ask for the password: no secret for \"org.example.Other\"" in log, log
    d.cli("unlock", "--password-stdin", input=(PASSWORD + "\n").encode())
    assert len(portal_items(d)) == 1, "a secret was minted while the store was locked"
    assert d.lookup(APP, "account", "alice").stdout == SECRET
    print(f"\nlocked: exit {r.returncode}, {r.stderr.decode().strip()!r}")


def askpass(d, name, body):
    p = d.tmp / name
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return str(p)


def test_a_locked_store_asks_for_the_password_naming_the_app(desktop):
    d = desktop
    ours(d)
    d.store_secret(APP, SECRET, "account", "alice")
    d.cli("lock")
    seen = d.tmp / "asked"
    # Cancelled first: the request answers "cancelled", the store stays locked.
    cancel = askpass(d, "cancel", f'printf "%s" "$1" > {seen}; exit 1\n')
    d.stop("keyringrs")
    d.start_keyringrs(KEYRINGRS_PROMPTER="askpass", KEYRINGRS_ASKPASS=cancel)
    r = d.lookup(APP, "account", "alice")
    assert r.stdout == b"" and r.returncode != 0
    assert f"The sandboxed app {APP} (through the Secret portal)" in seen.read_text()
    assert "the unlock was dismissed" in d.log("keyringrs")
    assert b"locked" in d.cli("status").stdout
    # Answered: the store opens, the app reads.
    answer = askpass(d, "answer", f'printf "%s\\n" "{PASSWORD}"\n')
    d.stop("keyringrs")
    d.start_keyringrs(KEYRINGRS_PROMPTER="askpass", KEYRINGRS_ASKPASS=answer)
    r = d.lookup(APP, "account", "alice")
    assert (r.returncode, r.stdout) == (0, SECRET), r.stderr
    print(f"\nthe dialog said: {seen.read_text()!r}")


def test_a_caller_without_an_app_id_gets_an_error_and_no_shared_secret(desktop):
    d = desktop
    ours(d)
    r = subprocess.run(["/usr/bin/python3", str(HERE / "retrieve_secret.py"), "20"],
                       env=d.base, capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "response=2 bytes=0", (r.stdout, r.stderr)
    assert "an empty app id" in d.log("keyringrs")
    assert portal_items(d) == []


@pytest.mark.parametrize("how", ["secret-service", "gnome-keyring-file"])
def test_switching_from_gnome_keyring_keeps_the_apps_secrets(desktop, how):
    d = desktop
    # Under gnome-keyring: its own portal backend makes the app's key.
    d.start_gnome_keyring()
    d.start_portal(GNOME_PORTAL_FILE)
    racy = {"timeout": 15, "attempts": 4}
    d.store_secret(APP, SECRET, "account", "alice", **racy)
    assert d.lookup(APP, "account", "alice", **racy).stdout == SECRET
    # gnome-keyring 42's own Secret Service cannot read the item its portal just made ("No
    # such secret item") until it loads its keyring file again: at the next login.
    d.stop("gnome-keyring")
    d.start_gnome_keyring()
    assert d.lookup(APP, "account", "alice", **racy).stdout == SECRET
    gnome_hangs = d.hangs
    gnome_key = app_key(d, APP)
    what = describe(d, APP)
    # The switch: our store, gnome-keyring's items imported, gnome-keyring gone.
    d.init_store()
    if how == "secret-service":
        imp = d.cli("import", "secret-service", check=False)
    else:
        d.stop("gnome-keyring")
        login = d.home / ".local" / "share" / "keyrings" / "login.keyring"
        imp = d.cli("import", "gnome-keyring", str(login), "--password-stdin",
                    input=(GNOME_PASSWORD + "\n").encode(), check=False)
    assert imp.returncode == 0, imp.stderr
    d.stop("gnome-keyring")
    d.start_keyringrs()
    d.start_portal(OUR_PORTAL_FILE)
    assert app_key(d, APP) == gnome_key
    r = d.lookup(APP, "account", "alice")
    assert (r.returncode, r.stdout) == (0, SECRET), r.stderr
    assert "portal: made the secret" not in d.log("keyringrs")
    assert d.hangs == gnome_hangs
    print(f"\nlibsecret 0.20.5 hung on gnome-keyring's backend {gnome_hangs} time(s) of 3")
    print(f"\ngnome-keyring's item for {APP}:\n{what.strip()}\nimport: {imp.stdout.decode().strip()}")
