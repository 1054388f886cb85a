"""A locked store must not look empty: each client's search while locked leads to the unlock
prompt and then to exactly the items that match. The dialog here is an askpass program (the
dialogs themselves are test_prompts.py's); what is tested is the clients' own call sequences:
libsecret's lookup (secret-tool, git's helper), libsecret's search with UNLOCK|LOAD_SECRETS|ALL
(what Chromium calls), SecretStorage's search_items + unlock. Also: whose login holds the unlock."""

import os
import subprocess
import sys
import time

from conftest import PASSWORD, SECRET, wait_for

GI_SEARCH = """
import gi, sys
gi.require_version("Secret", "1")
from gi.repository import Secret
svc = Secret.Service.get_sync(Secret.ServiceFlags.OPEN_SESSION, None)
flags = Secret.SearchFlags.ALL | Secret.SearchFlags.UNLOCK | Secret.SearchFlags.LOAD_SECRETS
items = svc.search_sync(None, dict(a.split("=") for a in sys.argv[1:]), flags, None)
for i in items:
    v = i.get_secret()
    print(i.get_attributes().get("username"), v.get_text() if v else None, i.get_locked())
"""

SECRETSTORAGE = """
import secretstorage, sys
conn = secretstorage.dbus_init()
items = list(secretstorage.search_items(conn, {"service": "app", "username": "alice"}))
print(len(items), items[0].is_locked(), items[0].get_attributes() == {"service": "app", "username": "alice"})
dismissed = items[0].unlock()
print(dismissed, items[0].is_locked(), items[0].get_secret().decode())
"""


def askpass_desk(desk, answer=PASSWORD, before=None):
    """A desk whose daemon asks through an askpass program that answers `answer`; `before(d)`
    runs on the store before the daemon starts again with it."""
    d = desk(bus_display=False)
    if before:
        answer = before(d) or answer
    askpass = d.tmp / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{answer}'\n")
    askpass.chmod(0o700)
    d.restart_daemon(KEYRINGRS_PROMPTER="askpass", KEYRINGRS_ASKPASS=str(askpass))
    return d


def run(d, argv):
    p = d.client(argv, on_display=False)
    out, err = p.communicate(timeout=60)
    return p.returncode, out.decode(), err.decode()


def test_libsecret_lookup_of_a_locked_store_prompts_then_reads_the_match(desk):
    d = askpass_desk(desk)
    assert d.locked()
    assert run(d, ["secret-tool", "lookup", "service", "app", "username", "alice"])[:2] == (0, SECRET)
    assert not d.locked()


def test_a_lookup_that_matches_nothing_unlocks_and_answers_nothing_never_another_item(desk):
    d = askpass_desk(desk)
    rc, out, _ = run(d, ["secret-tool", "lookup", "service", "app", "username", "nobody"])
    assert (rc, out) == (1, "")
    assert not d.locked(), "the prompt ran"


def test_libsecret_search_all_unlock_load_secrets_as_chromium_calls_it(desk):
    d = askpass_desk(desk)
    rc, out, err = run(d, ["/usr/bin/python3", "-c", GI_SEARCH, "service=app", "username=alice"])
    assert rc == 0, err
    assert out.splitlines() == [f"alice {SECRET} False"]


def test_secretstorage_search_items_unlock_get_secret(desk):
    d = askpass_desk(desk)
    rc, out, err = run(d, [sys.executable, "-c", SECRETSTORAGE])
    assert rc == 0, err
    assert out.splitlines() == ["1 True True", f"False False {SECRET}"]


def test_the_unlock_is_held_by_the_callers_login_and_ends_with_it(desk):
    # The client is a login of its own (its own session; no logind here: the session leader
    # stands for the login). While it runs, status names it; when it ends, the daemon locks.
    d = askpass_desk(desk)
    p = d.client(["sh", "-c", "secret-tool lookup service app username alice; sleep 4"],
                 on_display=False)
    wait_for("the unlock", lambda: not d.locked(), timeout=30)
    status = d.cli("status").stdout.decode()
    assert "key:     the user keyring (@u)" in status, status
    assert f"unlocked through the prompt, opened by pid {p.pid}" in status, status
    p.wait(timeout=30)
    wait_for("the lock when the login ended", d.locked, timeout=15)
    assert "every login that held it open is gone" in d.daemon_log()


def test_a_recovery_key_typed_into_the_dialog_unlocks(desk):
    def add_recovery_key(d):
        d.cli("unlock", "--password-stdin", input=(PASSWORD + "\n").encode())
        key = d.cli("recovery-key", "add", "--password-stdin",
                    input=(PASSWORD + "\n").encode()).stdout.decode().strip()
        d.cli("lock")
        return key

    d = askpass_desk(desk, before=add_recovery_key)
    assert d.locked()
    assert run(d, ["secret-tool", "lookup", "service", "app", "username", "alice"])[:2] == (0, SECRET)


def test_a_locked_search_with_several_matches_answers_only_matches(desk):
    def more(d):
        d.cli("unlock", "--password-stdin", input=(PASSWORD + "\n").encode())
        time.sleep(1.1)  # modification times count seconds: bob is the newer one
        d.cli("set", "app", "bob", input=b"bob-secret")
        d.cli("set", "other", "carol", input=b"carol-secret")
        d.cli("lock")

    d = askpass_desk(desk, before=more)
    rc, out, err = run(d, ["/usr/bin/python3", "-c", GI_SEARCH, "service=app"])
    assert rc == 0, err
    # While locked nothing tells how many match: the search made then answers the newest of
    # them (docs/SECRET-SERVICE.md); never one that does not match. (libsecret keeps the
    # attributes it loaded from the locked result, the ones searched for: no username.)
    assert [line.split()[1:] for line in out.splitlines()] == [["bob-secret", "False"]], out
    # A search once the store is open answers them all.
    rc, out, err = run(d, ["/usr/bin/python3", "-c", GI_SEARCH, "service=app"])
    assert sorted(out.splitlines()) == [f"alice {SECRET} False", "bob bob-secret False"], out
