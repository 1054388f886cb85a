"""The Secret portal as a Flatpak app meets it: the real xdg-desktop-portal (Debian 12: 1.16) on
a private session bus, keyringrs-secret-service (or the real gnome-keyring-daemon) behind it as
the backend its .portal file names, and a sandboxed client: Debian's own libsecret
(`secret-tool`) in a bubblewrap sandbox set up as Flatpak sets one up:

- a `/.flatpak-info` with `[Application] name=APP_ID` (what xdg-desktop-portal reads, through
  /proc/PID/root, to learn the caller's app id);
- only the app's own `~/.var/app/APP_ID` of the home directory, with XDG_DATA_HOME,
  XDG_CONFIG_HOME and XDG_CACHE_HOME inside it (where libsecret's file backend keeps
  `keyrings/default.keyring`);
- no session bus of its own: an xdg-dbus-proxy, in a sandbox of its own with the same
  `/.flatpak-info` (as flatpak runs it), that lets it talk to `org.freedesktop.portal.*` only
  (so the app cannot reach org.freedesktop.secrets, and libsecret must use the portal);
- its own pid namespace, a private /tmp.

Run by `make portal-tests` (as root: bubblewrap needs no user namespace then) under
`keyctl session -`.
"""

import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))
from waiting import wait_for  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[3]
TARGET = pathlib.Path(os.environ.get("KEYRINGRS_TARGET", ROOT / "target" / "debug"))
KEYRINGRS = TARGET / "keyringrs"
DAEMON = TARGET / "keyringrs-secret-service"
PORTAL = "/usr/libexec/xdg-desktop-portal"
OUR_PORTAL_FILE = ROOT / "etc" / "xdg-desktop-portal" / "portals" / "keyringrs.portal"
GNOME_PORTAL_FILE = pathlib.Path("/usr/share/xdg-desktop-portal/portals/gnome-keyring.portal")

PASSWORD = "Corr3ct-H0rse-pw"
GNOME_PASSWORD = "gnome-login-pw"



class Desktop:
    """A home directory, a private session bus, a keyringrs store; providers and the portal
    started on demand; sandboxed apps run in it."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.home = tmp / "home"
        self.home.mkdir()
        self.store = self.home / ".local" / "share" / "keyringrs"
        self.base = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "XDG_RUNTIME_DIR": str(tmp),
            "KEYRINGRS_STORE": str(self.store),
            "KEYRINGRS_KDF_MEMORY": "256",
            "KEYRINGRS_KDF_TIME": "1",
            # Nothing may ask for a password on a display these tests do not have.
            "KEYRINGRS_PROMPTER": "none",
        }
        self.busdir = tmp / "bus"
        self.busdir.mkdir()
        services = tmp / "services"
        services.mkdir()
        conf = tmp / "bus.conf"
        conf.write_text(
            (ROOT / "secret-service" / "tests" / "private-bus.conf").read_text()
            .replace("@DIR@", str(self.busdir)).replace("@SERVICES@", str(services)))
        self.bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=self.base)
        self.address = self.bus.stdout.readline().decode().strip()
        assert self.address.startswith("unix:path="), self.address
        self.socket = pathlib.Path(self.address.split("=", 1)[1].split(",")[0])
        self.base["DBUS_SESSION_BUS_ADDRESS"] = self.address
        self.procs = {}
        self.logs = {}
        self.hangs = 0

    # --- the host side -------------------------------------------------------------------

    def cli(self, *args, input=b"", check=True):
        return subprocess.run([str(KEYRINGRS), *args], input=input, env=self.base,
                              capture_output=True, check=check)

    def init_store(self):
        self.cli("init", "--password-stdin", input=(PASSWORD + "\n").encode())

    def start(self, name, argv, ready, stdin=None, env=None):
        log = self.tmp / f"{name}.log"
        f = open(log, "ab")
        p = subprocess.Popen(argv, env=dict(self.base, **(env or {})),
                             stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                             stdout=f, stderr=f)
        if stdin is not None:
            p.stdin.write(stdin)
            p.stdin.close()
        self.procs[name] = p
        self.logs[name] = log
        wait_for(f"{name} to be ready ({log})", lambda: ready(log.read_text(errors="replace")),
                 timeout=30)
        return p

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p is not None and p.poll() is None:
            p.terminate()
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        # The name it owned is free again once the bus says so.
        wait_for(f"{name} to leave the bus", lambda: p is None or p.poll() is not None)

    def log(self, name):
        return self.logs[name].read_text(errors="replace")

    def start_keyringrs(self, **env):
        starts = self.log("keyringrs").count("serving") if "keyringrs" in self.logs else 0
        self.start("keyringrs", [str(DAEMON)],
                   lambda text: text.count("serving") > starts, env=env)

    def start_gnome_keyring(self):
        """The real gnome-keyring-daemon, its login keyring unlocked with GNOME_PASSWORD (made on
        first start), serving org.freedesktop.secrets and its portal backend."""
        self.start("gnome-keyring",
                   ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                   lambda text: self.has_owner("org.freedesktop.secrets"),
                   stdin=GNOME_PASSWORD.encode())

    def start_portal(self, portal_file):
        """xdg-desktop-portal with only `portal_file` in its portal directory (as a desktop
        with that backend installed)."""
        portals = self.tmp / "portals"
        shutil.rmtree(portals, ignore_errors=True)
        portals.mkdir()
        shutil.copy(portal_file, portals / portal_file.name)
        self.stop("portal")
        self.start("portal", [PORTAL, "--verbose"],
                   lambda text: self.has_owner("org.freedesktop.portal.Desktop"),
                   env={"XDG_DESKTOP_PORTAL_DIR": str(portals), "XDG_CURRENT_DESKTOP": "GNOME",
                        "GIO_USE_VFS": "local"})

    def has_owner(self, name):
        r = subprocess.run(["dbus-send", "--session", "--print-reply", "--dest=org.freedesktop.DBus",
                            "/org/freedesktop/DBus", "org.freedesktop.DBus.NameHasOwner",
                            f"string:{name}"], env=self.base, capture_output=True, text=True)
        return "boolean true" in r.stdout

    def host_secret_tool(self, *args, input=None):
        return subprocess.run(["secret-tool", *args], env=self.base, input=input,
                              capture_output=True, timeout=60)

    # --- the sandbox ---------------------------------------------------------------------

    def app_dir(self, app_id):
        return self.home / ".var" / "app" / app_id

    def keyring_file(self, app_id):
        return self.app_dir(app_id) / "data" / "keyrings" / "default.keyring"

    def _bwrap(self, app_id):
        info = self.tmp / f"{app_id}.flatpak-info"
        info.write_text(f"[Application]\nname={app_id}\nruntime=runtime/org.example.Platform/x86_64/1\n\n"
                        f"[Instance]\ninstance-id={abs(hash(app_id)) % 10**9}\n")
        return ["bwrap", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin",
                "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
                "--symlink", "usr/sbin", "/sbin", "--ro-bind", "/etc", "/etc",
                "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
                "--ro-bind", str(info), "/.flatpak-info",
                "--unshare-pid", "--unshare-ipc", "--die-with-parent"]

    def app(self, app_id, argv, input=None, timeout=60, attempts=1):
        """`argv` in app_id's sandbox; the CompletedProcess. With attempts > 1, a run that hangs
        for `timeout` s is counted in self.hangs and tried again: only for gnome-keyring's
        backend, which answers at once and so meets libsecret 0.20.5's race (libsecret issue
        58: the app subscribes to the portal's Response only after the reply; keyringrs's
        backend waits 250 ms for it, portal.rs)."""
        for attempt in range(attempts):
            try:
                return self._app(app_id, argv, input, timeout)
            except subprocess.TimeoutExpired:
                if attempt + 1 == attempts:
                    raise
                self.hangs += 1

    def _app(self, app_id, argv, input, timeout):
        d = self.app_dir(app_id)
        for sub in ("data", "config", "cache"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        proxy_dir = self.tmp / f"proxy-{app_id}"
        shutil.rmtree(proxy_dir, ignore_errors=True)
        proxy_dir.mkdir()
        proxy = subprocess.Popen(
            self._bwrap(app_id) + [
                "--bind", str(self.socket.parent), "/run/host-bus",
                "--bind", str(proxy_dir), "/run/app-bus",
                "--", "xdg-dbus-proxy", f"unix:path=/run/host-bus/{self.socket.name}",
                "/run/app-bus/bus", "--filter", "--talk=org.freedesktop.portal.*",
                "--broadcast=org.freedesktop.portal.*=@/org/freedesktop/portal/*"],
            env=self.base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for("the app's D-Bus proxy", lambda: (proxy_dir / "bus").exists())
            run = "/run/user/1000"
            argv = self._bwrap(app_id) + [
                "--dir", str(self.home), "--bind", str(d), str(d),
                "--dir", run, "--ro-bind", str(proxy_dir / "bus"), f"{run}/bus",
                "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                "--setenv", "HOME", str(self.home),
                "--setenv", "XDG_RUNTIME_DIR", run,
                "--setenv", "DBUS_SESSION_BUS_ADDRESS", f"unix:path={run}/bus",
                "--setenv", "XDG_DATA_HOME", str(d / "data"),
                "--setenv", "XDG_CONFIG_HOME", str(d / "config"),
                "--setenv", "XDG_CACHE_HOME", str(d / "cache"),
                "--setenv", "FLATPAK_ID", app_id,
                "--", *argv]
            return subprocess.run(argv, input=input, capture_output=True, timeout=timeout)
        finally:
            proxy.terminate()
            proxy.wait()

    def store_secret(self, app_id, secret, *attrs, **how):
        r = self.app(app_id, ["secret-tool", "store", "--label", f"{app_id} secret", *attrs],
                     input=secret, **how)
        assert r.returncode == 0, (r.returncode, r.stderr.decode(errors="replace"))

    def lookup(self, app_id, *attrs, **how):
        return self.app(app_id, ["secret-tool", "lookup", *attrs], **how)

    def close(self):
        for name in list(self.procs):
            self.stop(name)
        self.cli("lock", check=False)
        self.bus.terminate()
        self.bus.wait()


@pytest.fixture
def desktop():
    for b in (KEYRINGRS, DAEMON):
        assert b.exists(), f"{b} is missing: run `cargo build` first"
    for tool in ("bwrap", "xdg-dbus-proxy", "secret-tool", "dbus-daemon", "gnome-keyring-daemon"):
        assert shutil.which(tool), f"{tool} is missing: `make test-deps` installs it"
    assert os.path.exists(PORTAL), f"{PORTAL} is missing: `make test-deps` installs xdg-desktop-portal"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="keyringrs-portal-"))
    d = Desktop(tmp)
    try:
        yield d
    finally:
        d.close()
        shutil.rmtree(tmp, ignore_errors=True)
