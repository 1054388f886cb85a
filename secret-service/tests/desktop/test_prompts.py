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


def test_gcr_prompter_wrong_then_right_password(desk):
    d = desk(KEYRINGRS_PROMPTER="gcr")
    p = d.lookup()
    w = d.window()
    d.type_into(w, "not-the-password")
    wait_for("the wrong password noticed", lambda: "a wrong password in" in d.daemon_log())
    # The same dialog asks again, with the warning.
    time.sleep(1)
    d.screenshot("gcr-prompter-wrong-password")
    assert d.locked()
    d.type_into(d.window(), PASSWORD)
    rc, out, err = finish(p)
    assert (rc, out) == (0, SECRET), err


def test_gcr_prompter_cancel_dismisses_and_the_store_stays_locked(desk):
    d = desk(KEYRINGRS_PROMPTER="gcr")
    p = d.lookup()
    w = d.window()
    d.xdotool("windowfocus", "--sync", w, check=False)
    d.key("Escape")
    rc, out, err = finish(p)
    assert out == "" and rc != 0, (rc, out, err)
    assert d.locked()
    assert "the unlock was cancelled in the system prompt" in d.daemon_log()


# --- pinentry on the display ---------------------------------------------------------------

def pinentry_desk(desk, program):
    return desk(KEYRINGRS_PROMPTER="pinentry", KEYRINGRS_PINENTRY=program)


def test_pinentry_gtk2_right_password(desk):
    d = pinentry_desk(desk, "/usr/bin/pinentry-gtk-2")
    p = d.lookup()
    w = d.window()
    time.sleep(0.5)
    d.screenshot("pinentry-gtk-2")
    d.type_into(w, PASSWORD)
    rc, out, err = finish(p)
    assert (rc, out) == (0, SECRET), err
    assert "unlocked the store through pinentry (/usr/bin/pinentry-gtk-2)" in d.daemon_log()


def test_pinentry_gtk2_wrong_then_right_and_nothing_cached(desk):
    d = pinentry_desk(desk, "/usr/bin/pinentry-gtk-2")
    p = d.lookup()
    d.type_into(d.window(), "not-the-password")
    wait_for("the wrong password noticed", lambda: "a wrong password in" in d.daemon_log())
    time.sleep(1)
    d.screenshot("pinentry-gtk-2-wrong-password")
    assert d.locked()
    d.type_into(d.window(), PASSWORD)
    rc, out, err = finish(p)
    assert (rc, out) == (0, SECRET), err
    # pinentry's own cache is never offered: nothing was stored beside the one secret.
    assert d.cli("list").stdout.decode().splitlines() == ["app\talice"]


def test_pinentry_gtk2_cancel(desk):
    d = pinentry_desk(desk, "/usr/bin/pinentry-gtk-2")
    p = d.lookup()
    w = d.window()
    d.xdotool("windowfocus", "--sync", w, check=False)
    d.key("Escape")
    rc, out, err = finish(p)
    assert out == "" and rc != 0
    assert d.locked()
    assert "the unlock was cancelled in pinentry" in d.daemon_log()


def test_pinentry_gnome3_right_password(desk):
    # pinentry-gnome3 shows its dialog through the same system prompter (gcr) on the bus.
    d = pinentry_desk(desk, "/usr/bin/pinentry-gnome3")
    p = d.lookup()
    w = d.window("")
    time.sleep(1)
    d.screenshot("pinentry-gnome3")
    d.type_into(w, PASSWORD)
    rc, out, err = finish(p)
    assert (rc, out) == (0, SECRET), err
    assert d.cli("list").stdout.decode().splitlines() == ["app\talice"]


# --- no dialog -----------------------------------------------------------------------------

def test_no_dialog_at_all_dismisses_at_once_with_the_reason_logged(desk):
    d = desk(bus_display=False)
    t = time.time()
    p = d.lookup(on_display=False)
    rc, out, err = finish(p, timeout=20)
    took = time.time() - t
    assert out == "" and rc != 0
    assert took < 5, took
    assert d.locked()
    log = d.daemon_log()
    assert "no dialog could ask for the password" in log
    assert "askpass: no $KEYRINGRS_ASKPASS is set" in log


# --- a terminal caller: pinentry on its own terminal (tmux) ---------------------------------

class Tmux:
    """A terminal of its own (a tmux server on a private socket) running `argv`."""

    def __init__(self, d, argv, name):
        self.sock = str(d.tmp / "tmux.sock")
        self.d = d
        self.name = name
        env = dict(d.base, TERM="xterm-256color")
        self.env = env
        inner = " ".join(argv) + f" > {d.tmp}/out.txt 2> {d.tmp}/err.txt; echo $? > {d.tmp}/rc.txt"
        subprocess.run(["tmux", "-S", self.sock, "-f", "/dev/null", "new-session", "-d", "-x", "100",
                        "-y", "30", "sh", "-c", inner + "; sleep 600"], env=env, check=True)

    def screen(self):
        return subprocess.run(["tmux", "-S", self.sock, "capture-pane", "-p"], env=self.env,
                              capture_output=True, text=True).stdout

    def keys(self, *keys):
        subprocess.run(["tmux", "-S", self.sock, "send-keys", *keys], env=self.env, check=True)

    def type(self, text):
        # -l: literally, not as key names.
        self.keys("-l", text)
        self.keys("Enter")

    def wait_screen(self, text, timeout=30):
        return wait_for(f"{text!r} on the terminal", lambda: text in self.screen(), timeout)

    def result(self, timeout=60):
        rc = wait_for("the command's end", lambda: (self.d.tmp / "rc.txt").exists()
                      and (self.d.tmp / "rc.txt").read_text().strip(), timeout)
        return int(rc), (self.d.tmp / "out.txt").read_text()

    def save(self):
        from conftest import OUT
        (OUT / f"{self.name}.txt").write_text(self.screen())

    def close(self):
        subprocess.run(["tmux", "-S", self.sock, "kill-server"], env=self.env, check=False)


LOOKUP = ["secret-tool", "lookup", "service", "app", "username", "alice"]


def terminal_case(desk, program, name, answers):
    d = desk(bus_display=False, KEYRINGRS_PROMPTER="pinentry", KEYRINGRS_PINENTRY=program)
    t = Tmux(d, LOOKUP, name)
    try:
        for i, answer in enumerate(answers):
            t.wait_screen("Password", timeout=30)
            time.sleep(0.3)
            if i == 0:
                t.save()
            if answer is None:
                # To the Cancel button (past OK) and press it, as a person would.
                t.keys("Tab")
                t.keys("Tab")
                time.sleep(0.3)
                t.keys("Enter")
                break
            t.type(answer)
            if i + 1 < len(answers):
                wait_for("the wrong password noticed",
                         lambda: "a wrong password in" in d.daemon_log())
                time.sleep(0.5)
        return d, t.result()
    finally:
        t.close()


def test_pinentry_tty_on_the_callers_terminal(desk):
    d, (rc, out) = terminal_case(desk, "/usr/bin/pinentry-tty", "pinentry-tty", [PASSWORD])
    assert (rc, out) == (0, SECRET)
    assert "unlocked the store through pinentry (/usr/bin/pinentry-tty)" in d.daemon_log()


def test_pinentry_tty_wrong_then_right(desk):
    d, (rc, out) = terminal_case(desk, "/usr/bin/pinentry-tty", "pinentry-tty-wrong",
                                 ["not-the-password", PASSWORD])
    assert (rc, out) == (0, SECRET)


def test_pinentry_curses_on_the_callers_terminal(desk):
    d, (rc, out) = terminal_case(desk, "/usr/bin/pinentry-curses", "pinentry-curses", [PASSWORD])
    assert (rc, out) == (0, SECRET)


def test_pinentry_curses_cancel(desk):
    d, (rc, out) = terminal_case(desk, "/usr/bin/pinentry-curses", "pinentry-curses-cancel",
                                 [None])
    assert out == "" and rc != 0
    assert d.locked()


# --- keyringrs unlock without a terminal, in a graphical session ----------------------------

def test_keyringrs_unlock_without_a_terminal_shows_the_desktops_dialog(desk):
    from conftest import KEYRINGRS
    d = desk(KEYRINGRS_PROMPTER="gcr")
    p = d.client([str(KEYRINGRS), "unlock"])
    w = d.window()
    time.sleep(0.5)
    d.screenshot("keyringrs-unlock-gcr")
    d.type_into(w, PASSWORD)
    rc, out, err = finish(p)
    assert rc == 0, err
    assert not d.locked()


def test_keyringrs_unlock_without_a_terminal_cancelled(desk):
    from conftest import KEYRINGRS
    d = desk(KEYRINGRS_PROMPTER="gcr")
    p = d.client([str(KEYRINGRS), "unlock"])
    w = d.window()
    d.xdotool("windowfocus", "--sync", w, check=False)
    d.key("Escape")
    rc, out, err = finish(p)
    assert rc == 1 and "prompt was dismissed; the store stays locked" in err, (rc, err)
    assert d.locked()
