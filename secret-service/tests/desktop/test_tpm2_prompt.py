"""The unlock prompt and a TPM2 keyslot (`keyringrs slot add NAME --tpm2`), with swtpm as the TPM
(its TCP TCTI in TPM2TOOLS_TCTI, as a user would name one): a slot without a PIN opens the store
before any dialog, so the app reads with nothing typed and no dialog allowed at all; a changed
PCR falls back to the dialog; a PIN slot opens with the PIN typed into the dialog."""

import shutil
import socket
import subprocess
import time

import pytest

from conftest import PASSWORD, SECRET, wait_for


class Swtpm:
    """swtpm on two free TCP ports of 127.0.0.1, its state in `dir`; killed by stop()."""

    def __init__(self, dir):
        while True:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            try:
                c = socket.socket()
                c.bind(("127.0.0.1", port + 1))
                c.close()
                break
            except OSError:
                continue
        dir.mkdir()
        self.port = port
        self.tcti = f"swtpm:host=127.0.0.1,port={port}"
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={dir}",
             "--server", f"type=tcp,port={port},bindaddr=127.0.0.1",
             "--ctrl", f"type=tcp,port={port + 1},bindaddr=127.0.0.1",
             "--flags", "not-need-init,startup-clear"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for("swtpm", lambda: subprocess.run(
            ["tpm2_getrandom", "-T", self.tcti, "4"], capture_output=True).returncode == 0)

    def extend(self, pcr):
        subprocess.run(["tpm2_pcrextend", "-T", self.tcti, f"{pcr}:sha256=" + "ab" * 32],
                       check=True, capture_output=True)

    def stop(self):
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def tpm(tmp_path):
    if not shutil.which("swtpm"):
        pytest.fail("swtpm is not installed (make test-deps installs it)")
    t = Swtpm(tmp_path / "swtpm")
    yield t
    t.stop()


def tpm_desk(desk, tpm, slot_args, answer=PASSWORD):
    """A locked store with a TPM2 keyslot; the daemon asks through askpass answering `answer`
    (KEYRINGRS_PROMPTER=none when `answer` is None: no dialog at all)."""
    d = desk(bus_display=False)
    d.base["TPM2TOOLS_TCTI"] = tpm.tcti
    lines = PASSWORD + "\n" + "".join(a[4:] + "\n" for a in slot_args if a.startswith("pin:"))
    args = [a for a in slot_args if not a.startswith("pin:")]
    d.cli("slot", "add", "machine", "--tpm2", *args, "--password-stdin", input=lines.encode())
    d.cli("lock")
    if answer is None:
        d.restart_daemon(KEYRINGRS_PROMPTER="none")
    else:
        askpass = d.tmp / "askpass"
        askpass.write_text(f"#!/bin/sh\necho '{answer}'\n")
        askpass.chmod(0o700)
        d.restart_daemon(KEYRINGRS_PROMPTER="askpass", KEYRINGRS_ASKPASS=str(askpass))
    return d


def lookup(d):
    p = d.client(["secret-tool", "lookup", "service", "app", "username", "alice"], on_display=False)
    out, err = p.communicate(timeout=60)
    return p.returncode, out.decode(), err.decode()


def test_a_tpm2_slot_without_pin_unlocks_with_no_dialog(desk, tpm):
    d = tpm_desk(desk, tpm, ["--pcrs", "16"], answer=None)
    assert d.locked()
    started = time.monotonic()
    assert lookup(d)[:2] == (0, SECRET)
    assert not d.locked()
    log = d.daemon_log()
    assert "unlocked the store through its TPM2 keyslot machine (PCRs 16 at swtpm:" in log, log
    assert "no dialog could ask" not in log
    print(f"TPM2 unlock through the prompt: {time.monotonic() - started:.3f} s")


def test_a_changed_pcr_falls_back_to_the_password_dialog(desk, tpm):
    d = tpm_desk(desk, tpm, ["--pcrs", "16"])
    tpm.extend(16)
    assert lookup(d)[:2] == (0, SECRET)
    log = d.daemon_log()
    assert "the TPM2 keyslot did not open the store (the TPM's PCR values differ" in log, log
    assert "unlocked the store through the askpass program" in log, log


def test_a_pin_slot_opens_with_the_pin_typed_into_the_dialog(desk, tpm):
    d = tpm_desk(desk, tpm, ["--pin", "pin:2468"], answer="2468")
    assert lookup(d)[:2] == (0, SECRET), d.daemon_log()
    assert "unlocked the store through the askpass program" in d.daemon_log()


def test_wrong_answers_cost_the_tpm_one_pin_try_per_prompt(desk, tpm):
    """The TPM counts wrong PINs towards its dictionary-attack lockout (swtpm: 3): a prompt's
    five wrong answers try the PIN once, so a mistyped password does not lock the TPM out."""
    d = tpm_desk(desk, tpm, ["--pin", "pin:2468"], answer="not-it")
    assert lookup(d)[0] != 0
    log = d.daemon_log()
    assert log.count("not the TPM2 PIN either (wrong TPM2 PIN)") == 1, log
    assert "dictionary-attack lockout" not in log, log
    d.cli("unlock", "--tpm2", "--password-stdin", input=b"2468\n")
    assert not d.locked()


def test_a_store_a_lock_policy_locked_is_not_reopened_by_the_tpm(desk, tpm, tmp_path):
    """After the daemon's lock at screen lock (logind's Lock, from the stand-in), an app's
    lookup gets the dialog, not a silent TPM2 unlock that would undo the policy."""
    from test_lock_policy import Logind
    logind = Logind(tmp_path)
    try:
        d = tpm_desk(desk, tpm, [], answer=None)
        config = d.tmp / "config"
        (config / "keyringrs").mkdir(parents=True)
        (config / "keyringrs" / "lock.conf").write_text("screen-lock = lock\n")
        d.base["XDG_CONFIG_HOME"] = str(config)
        d.restart_daemon(DBUS_SYSTEM_BUS_ADDRESS=logind.address, KEYRINGRS_PROMPTER="none")
        d.cli("unlock", "--tpm2", "--scope", "user")
        wait_for("the daemon to see it unlocked", lambda: "now unlocked" in d.daemon_log()
                 or "(unlocked)" in d.daemon_log())
        time.sleep(0.5)
        logind.send("lock")
        wait_for("the lock", d.locked, timeout=10)
        assert b"locked:  at screen lock" in d.cli("status").stdout
        rc, _, _ = lookup(d)
        assert rc != 0
        assert d.locked()
        log = d.daemon_log()
        assert "the store was locked at screen-lock: its TPM2 keyslot does not reopen it" in log
        # The user's own `keyringrs unlock --tpm2` still opens it.
        d.cli("unlock", "--tpm2", "--scope", "user")
        assert not d.locked()
    finally:
        logind.close()
