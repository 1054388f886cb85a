"""The unlock prompt on a desktop, as a person meets it: a real X server (Xvfb), the real
dialogs (gcr's gcr-prompter, pinentry-gtk-2, pinentry-gnome3, pinentry-tty, pinentry-curses
in tmux), answered by typing into them (xdotool, tmux send-keys), with a screenshot of each in
$KEYRINGRS_DESKTOP_OUT (default target/desktop).

Each test gets a locked keyringrs store with one secret, a private session bus (which can
D-Bus-activate gcr-prompter on the X display, as a desktop's bus does), and
keyringrs-secret-service on it with the environment the test gives. Run by `make prompt-tests`
under `keyctl session -`.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from waiting import wait_for  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
TARGET = pathlib.Path(os.environ.get("KEYRINGRS_TARGET", ROOT / "target" / "debug"))
KEYRINGRS = TARGET / "keyringrs"
DAEMON = TARGET / "keyringrs-secret-service"
OUT = pathlib.Path(os.environ.get("KEYRINGRS_DESKTOP_OUT", ROOT / "target" / "desktop"))
GCR_PROMPTER = "/usr/libexec/gcr-prompter"

PASSWORD = "Corr3ct-H0rse-pw"
SECRET = "the-secret-value-1"
TITLE = "Unlock your secrets"



@pytest.fixture(scope="session")
def display():
    """An X server of its own: ':N', torn down at the end."""
    for b in (KEYRINGRS, DAEMON):
        assert b.exists(), f"{b} is missing: run `cargo build` first"
    OUT.mkdir(parents=True, exist_ok=True)
    for n in range(90, 200):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    disp = f":{n}"
    xvfb = subprocess.Popen(["Xvfb", disp, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for("Xvfb", lambda: os.path.exists(f"/tmp/.X11-unix/X{n}"))
    yield disp
    xvfb.terminate()
    xvfb.wait()


class Desk:
    """A locked store with one secret, a private bus, the daemon on it."""

    def __init__(self, display, tmp, daemon_env, bus_display=True):
        self.display = display
        self.tmp = tmp
        self.store = tmp / "store"
        self.log = tmp / "daemon.log"
        self.base = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp),
            "KEYRINGRS_STORE": str(self.store),
            "KEYRINGRS_KDF_MEMORY": "256",
            "KEYRINGRS_KDF_TIME": "1",
        }
        self.cli("init", "--password-stdin", input=(PASSWORD + "\n").encode())
        self.cli("set", "app", "alice", input=SECRET.encode())
        self.cli("lock")
        services = tmp / "services"
        services.mkdir()
        # The bus starts gcr-prompter on demand, with the bus's environment (its DISPLAY), as
        # the desktop's session bus does from /usr/share/dbus-1/services.
        (services / "org.gnome.keyring.SystemPrompter.service").write_text(
            "[D-BUS Service]\nName=org.gnome.keyring.SystemPrompter\n"
            f"Exec={GCR_PROMPTER}\n")
        conf = tmp / "bus.conf"
        conf.write_text(
            (pathlib.Path(__file__).resolve().parent.parent / "private-bus.conf")
            .read_text().replace("@DIR@", str(tmp)).replace("@SERVICES@", str(services)))
        bus_env = dict(self.base, XDG_RUNTIME_DIR=str(tmp))
        if bus_display:
            bus_env["DISPLAY"] = display
        self.bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=bus_env)
        self.address = self.bus.stdout.readline().decode().strip()
        assert self.address.startswith("unix:"), self.address
        self.base["DBUS_SESSION_BUS_ADDRESS"] = self.address
        env = dict(self.base, **daemon_env)
        self.log_file = open(self.log, "wb")
        self.daemon = subprocess.Popen([str(DAEMON)], env=env, stdin=subprocess.DEVNULL,
                                       stdout=self.log_file, stderr=self.log_file)
        wait_for("the daemon on the bus", lambda: b"serving" in self.log.read_bytes())
        self.procs = []

    def restart_daemon(self, **daemon_env):
        """The daemon again, with `daemon_env`."""
        self.daemon.terminate()
        self.daemon.wait()
        starts = self.daemon_log().count("serving")
        self.daemon = subprocess.Popen([str(DAEMON)], env=dict(self.base, **daemon_env),
                                       stdin=subprocess.DEVNULL, stdout=self.log_file,
                                       stderr=self.log_file)
        wait_for("the daemon on the bus", lambda: self.daemon_log().count("serving") > starts)

    def cli(self, *args, input=b"", check=True):
        return subprocess.run([str(KEYRINGRS), *args], input=input, env=self.base,
                              capture_output=True, check=check)

    def locked(self):
        return b"state:   locked" in self.cli("status").stdout

    def client(self, argv, on_display=True, extra=None):
        """A client program started the way a desktop app is (its own session, the display)."""
        env = dict(self.base)
        if on_display:
            env["DISPLAY"] = self.display
        env.update(extra or {})
        p = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, start_new_session=True)
        self.procs.append(p)
        return p

    def lookup(self, on_display=True):
        return self.client(["secret-tool", "lookup", "service", "app", "username", "alice"],
                           on_display)

    def daemon_log(self):
        return self.log.read_text(errors="replace")

    # --- the X display -------------------------------------------------------------------

    def xdotool(self, *args, check=True):
        return subprocess.run(["xdotool", *args], env={"DISPLAY": self.display, "PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, check=check)

    def window(self, name=TITLE, timeout=30):
        """The id of the visible window named `name`, once it shows."""
        def find():
            r = self.xdotool("search", "--onlyvisible", "--name", name, check=False)
            ids = r.stdout.split()
            return ids[-1] if ids else None
        return wait_for(f"a window named {name!r}", find, timeout=timeout, step=0.25)

    def type_into(self, window, text, enter=True):
        # Xvfb runs no window manager: focus the dialog directly, then type as a keyboard does.
        self.xdotool("windowfocus", "--sync", window, check=False)
        time.sleep(0.3)
        # The text on stdin, not in xdotool's argv.
        subprocess.run(["xdotool", "type", "--delay", "30", "--file", "-"], input=text, text=True,
                       env={"DISPLAY": self.display, "PATH": "/usr/bin:/bin"}, check=True)
        if enter:
            self.xdotool("key", "Return")

    def key(self, name):
        self.xdotool("key", name)

    def screenshot(self, name):
        path = OUT / f"{name}.png"
        xwd = subprocess.run(["xwd", "-root", "-silent", "-display", self.display],
                             capture_output=True, check=True).stdout
        pnm = subprocess.run(["xwdtopnm"], input=xwd, capture_output=True, check=True).stdout
        png = subprocess.run(["pnmtopng"], input=pnm, capture_output=True, check=True).stdout
        path.write_bytes(png)
        return path

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        # Lock it again wherever it went (the user keyring is shared by every test of root).
        self.cli("lock", check=False)
        self.daemon.terminate()
        self.daemon.wait()
        self.log_file.close()
        # gcr-prompter, started by this bus, ends with it.
        self.bus.terminate()
        self.bus.wait()


@pytest.fixture
def desk(display, request):
    """desk(**daemon_env): a Desk; closed at the end of the test."""
    made = []

    def make(bus_display=True, **daemon_env):
        tmp = pathlib.Path(tempfile.mkdtemp(prefix="keyringrs-desk-"))
        d = Desk(display, tmp, daemon_env, bus_display)
        made.append((d, tmp))
        return d

    yield make
    for d, tmp in made:
        d.close()
        log = OUT / f"{request.node.name}.daemon.log"
        shutil.copy(d.log, log)
        shutil.rmtree(tmp, ignore_errors=True)
