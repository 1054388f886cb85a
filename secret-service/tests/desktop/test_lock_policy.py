"""Lock policies: the daemon locks the store at a screen lock or at suspend when the user's
lock.conf says so, and never otherwise; `keyringrs status` says why. logind is a stand-in on a
private system bus here (logind_standin.py); the VM test drives the real one."""

import os
import pathlib
import subprocess
import time

import pytest

from conftest import PASSWORD, wait_for

HERE = pathlib.Path(__file__).resolve().parent


class Logind:
    def __init__(self, tmp, kind="x11", uid=None):
        conf = tmp / "system-bus.conf"
        (tmp / "sys").mkdir()
        conf.write_text((HERE.parent / "private-bus.conf").read_text()
                        .replace("@DIR@", str(tmp / "sys")).replace("@SERVICES@", str(tmp / "sys")))
        self.bus = subprocess.Popen(["dbus-daemon", f"--config-file={conf}", "--print-address",
                                     "--nofork"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.address = self.bus.stdout.readline().decode().strip()
        self.proc = subprocess.Popen(
            ["/usr/bin/python3", str(HERE / "logind_standin.py"), self.address,
             str(os.getuid() if uid is None else uid), kind],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "ready"

    def send(self, what):
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == f"sent {what}"

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)
        self.bus.terminate()
        self.bus.wait()


@pytest.fixture
def policy_desk(desk, tmp_path):
    made = []

    def make(conf, kind="x11", uid=None):
        logind = Logind(tmp_path, kind, uid)
        made.append(logind)
        d = desk(bus_display=False)
        config = d.tmp / "config"
        (config / "keyringrs").mkdir(parents=True)
        (config / "keyringrs" / "lock.conf").write_text(conf)
        d.base["XDG_CONFIG_HOME"] = str(config)
        d.restart_daemon(DBUS_SYSTEM_BUS_ADDRESS=logind.address)
        # Unlocked where the daemon reads it, as a desktop login leaves it.
        d.cli("unlock", "--scope", "user", "--password-stdin", input=(PASSWORD + "\n").encode())
        wait_for("the daemon to see it unlocked", lambda: "now unlocked" in d.daemon_log()
                 or "(unlocked)" in d.daemon_log())
        time.sleep(0.5)
        return d, logind

    yield make
    for logind in made:
        logind.close()


def status(d):
    return d.cli("status").stdout.decode()


def test_screen_lock_policy_locks_at_the_sessions_lock_signal(policy_desk):
    d, logind = policy_desk("screen-lock = lock\n")
    assert not d.locked()
    assert "policy:  screen-lock = lock (" in status(d)
    logind.send("lock")
    wait_for("the lock", d.locked, timeout=10)
    s = status(d)
    assert "locked:  at screen lock " in s, s
    assert "locked the store at screen-lock (policy screen-lock = lock, from" in d.daemon_log()


def test_screen_lock_policy_locks_at_the_locked_hint(policy_desk):
    d, logind = policy_desk("screen-lock = lock\n")
    logind.send("hint")
    wait_for("the lock", d.locked, timeout=10)


def test_suspend_policy_locks_at_prepare_for_sleep_and_not_at_wake(policy_desk):
    d, logind = policy_desk("suspend = lock\n")
    logind.send("wake")
    time.sleep(1.5)
    assert not d.locked(), "PrepareForSleep(false) is the wake-up"
    logind.send("lock")
    time.sleep(1.5)
    assert not d.locked(), "screen-lock is keep"
    logind.send("sleep")
    wait_for("the lock", d.locked, timeout=10)
    assert "locked:  at suspend " in status(d)


def test_by_default_nothing_locks(policy_desk):
    d, logind = policy_desk("# nothing set\n")
    assert "policy:  screen-lock = keep (default), suspend = keep (default)" in status(d)
    for what in ("lock", "hint", "sleep"):
        logind.send(what)
    time.sleep(2)
    assert not d.locked()


def test_another_users_session_or_a_text_session_does_not_lock(policy_desk):
    d, logind = policy_desk("screen-lock = lock\n", uid=os.getuid() + 4242)
    logind.send("lock")
    time.sleep(2)
    assert not d.locked(), "another user's session"


def test_a_text_sessions_lock_does_not_lock(policy_desk):
    d, logind = policy_desk("screen-lock = lock\n", kind="tty")
    logind.send("lock")
    time.sleep(2)
    assert not d.locked()


def test_a_lock_signal_not_from_logind_is_ignored(policy_desk):
    d, logind = policy_desk("screen-lock = lock\nsuspend = lock\n")
    # Anyone on the bus can send a signal; only logind's name counts.
    subprocess.run(["gdbus", "emit", "--address", logind.address, "--object-path",
                    "/org/freedesktop/login1", "--signal",
                    "org.freedesktop.login1.Manager.PrepareForSleep", "true"], check=True)
    time.sleep(2)
    assert not d.locked()


def test_the_next_use_after_a_policy_lock_prompts(policy_desk):
    d, logind = policy_desk("screen-lock = lock\n")
    logind.send("lock")
    wait_for("the lock", d.locked, timeout=10)
    askpass = d.tmp / "askpass"
    askpass.write_text(f"#!/bin/sh\necho '{PASSWORD}'\n")
    askpass.chmod(0o700)
    d.restart_daemon(DBUS_SYSTEM_BUS_ADDRESS=logind.address, KEYRINGRS_PROMPTER="askpass",
                     KEYRINGRS_ASKPASS=str(askpass))
    p = d.lookup(on_display=False)
    out, _ = p.communicate(timeout=60)
    assert out.decode() == "the-secret-value-1"
    assert "locked:" not in status(d), "the note goes with the unlock"
