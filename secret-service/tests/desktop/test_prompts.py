"""The unlock prompt through each dialog: right password, wrong then right, cancel, none."""

import subprocess
import time

from conftest import PASSWORD, SECRET, TITLE, wait_for


def finish(p, timeout=60):
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# --- GNOME's system prompt (gcr-prompter) --------------------------------------------------

def test_gcr_prompter_right_password_unlocks_and_the_lookup_gets_its_secret(desk):
    d = desk(KEYRINGRS_PROMPTER="gcr")
    assert d.locked()
    monitor = subprocess.Popen(["dbus-monitor", "--address", d.address], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL)
    try:
        p = d.lookup()
        w = d.window()
        time.sleep(0.5)
        d.screenshot("gcr-prompter")
        d.type_into(w, PASSWORD)
        rc, out, err = finish(p)
        assert (rc, out) == (0, SECRET), err
        assert not d.locked()
    finally:
        monitor.terminate()
        seen = monitor.communicate()[0]
    assert b"PromptReady" in seen and b"sx-aes-1" in seen, "the monitor saw the prompt"
    assert PASSWORD.encode() not in seen, "the password crossed the bus in clear"
    assert "unlocked the store through the system prompt" in d.daemon_log()
