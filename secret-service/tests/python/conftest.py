"""A private dbus-daemon with keyringrs-secret-service on it, over a temp keyringrs store.

Run under `keyctl session -` (the Makefile does) so the store's key lives in a session keyring
of its own. The built binaries are taken from $KEYRINGRS_TARGET (default: target/debug).
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]
TARGET = pathlib.Path(os.environ.get("KEYRINGRS_TARGET", ROOT / "target" / "debug"))
KEYRINGRS = TARGET / "keyringrs"
DAEMON = TARGET / "keyringrs-secret-service"


class Env:
    def __init__(self, tmp: pathlib.Path):
        self.tmp = tmp
        self.store = tmp / "store"
        self.env = {
            "PATH": "/usr/bin:/bin",
            "KEYRINGRS_STORE": str(self.store),
            "KEYRINGRS_KDF_MEMORY": "256",
            "KEYRINGRS_KDF_TIME": "1",
        }

    def cli(self, *args, input=b"", check=True):
        return subprocess.run(
            [str(KEYRINGRS), *args], input=input, env=self.env, capture_output=True, check=check
        )


@pytest.fixture(scope="session", autouse=True)
def ss_env():
    for b in (KEYRINGRS, DAEMON):
        assert b.exists(), f"{b} is missing: run `cargo build --workspace` first"
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="keyringrs-ss-py-"))
    env = Env(tmp)
    env.cli("init", "--password-stdin", input=b"pw\n")
    conf = tmp / "bus.conf"
    (tmp / "services").mkdir()
    conf.write_text(
        (pathlib.Path(__file__).resolve().parent.parent / "private-bus.conf")
        .read_text()
        .replace("@DIR@", str(tmp))
        .replace("@SERVICES@", str(tmp / "services"))
    )
    bus = subprocess.Popen(
        ["dbus-daemon", f"--config-file={conf}", "--print-address", "--nofork"],
        stdout=subprocess.PIPE,
        env=env.env,
    )
    address = bus.stdout.readline().decode().strip()
    assert address.startswith("unix:"), address
    env.env["DBUS_SESSION_BUS_ADDRESS"] = address
    daemon = subprocess.Popen([str(DAEMON)], env=env.env, stdin=subprocess.DEVNULL)
    # Clients in this process (secretstorage, keyring) use the private bus.
    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
    import secretstorage

    deadline = time.time() + 20
    while True:
        with secretstorage.dbus_init() as conn:
            if secretstorage.check_service_availability(conn):
                try:
                    secretstorage.get_default_collection(conn).is_locked()
                    break
                except secretstorage.exceptions.SecretServiceNotAvailableException:
                    pass
        assert time.time() < deadline, "keyringrs-secret-service did not start"
        time.sleep(0.05)
    yield env
    daemon.terminate()
    daemon.wait()
    bus.terminate()
    bus.wait()
    shutil.rmtree(tmp, ignore_errors=True)
