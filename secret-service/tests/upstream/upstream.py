"""Upstream Secret Service test suites, unmodified, against gnome-keyring and keyringrs.

    upstream.py run PROVIDER OUTDIR   (under `keyctl session -`: a session keyring of its own)
        PROVIDER is `gnome-keyring` or `keyringrs`. Starts a private session bus (its own config:
        type session, no service directories, so nothing is activated behind our back), with its
        own HOME/XDG dirs, and on it the provider, unlocked:
          gnome-keyring: `gnome-keyring-daemon --foreground --unlock --components=secrets`, the
          password on stdin (as bench/src/gnome.rs does);
          keyringrs: a store created with `keyringrs init` (unlocked in this session keyring) and
          $KEYRINGRS_TARGET/keyringrs-secret-service.
        Then runs each suite with pytest --junitxml=OUTDIR/PROVIDER-SUITE.xml.
    upstream.py compare OUTDIR KNOWN_FAILURES
        Prints a table; fails if a test that passes against gnome-keyring does not pass against
        keyringrs (unless it is a known failure), or if a known failure now passes (or is gone).

Environment: UPSTREAM_SRC (the unpacked sdists), KEYRINGRS_TARGET (the debug build).
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

# suite name -> (sdist directory, pytest arguments)
SUITES = {
    "SecretStorage": ("secretstorage-3.5.0", ["tests"]),
    "keyring": ("keyring-25.7.0", ["tests/backends/test_SecretService.py"]),
}
PROVIDERS = ("gnome-keyring", "keyringrs")
SUITE_TIMEOUT = 150

# The test rig's private bus (secret-service/tests/private-bus.conf), activating nothing.
BUS_CONF = (pathlib.Path(__file__).resolve().parent.parent / "private-bus.conf").read_text()


def die(msg):
    print(f"upstream: {msg}", file=sys.stderr)
    sys.exit(1)


def ready(address, deadline):
    """Wait until org.freedesktop.secrets is owned and its default collection is unlocked."""
    import secretstorage

    os.environ["DBUS_SESSION_BUS_ADDRESS"] = address
    last = None
    while time.time() < deadline:
        try:
            with secretstorage.dbus_init() as conn:
                if secretstorage.check_service_availability(conn):
                    if not secretstorage.get_default_collection(conn).is_locked():
                        return
                    last = "the default collection is locked"
        except Exception as e:  # noqa: BLE001 - anything: try again
            last = repr(e)
        time.sleep(0.1)
    die(f"the Secret Service did not come up unlocked: {last}")


def run(provider, outdir):
    if provider not in PROVIDERS:
        die(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})")
    src = pathlib.Path(os.environ["UPSTREAM_SRC"])
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f"upstream-{provider}-"))
    home = tmp / "home"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(tmp / "run"),
        "LANG": "C.UTF-8",
    }
    for k in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        pathlib.Path(env[k]).mkdir(parents=True, exist_ok=True, mode=0o700)
    (tmp / "services").mkdir()
    (tmp / "bus.conf").write_text(
        BUS_CONF.replace("@DIR@", str(tmp)).replace("@SERVICES@", str(tmp / "services"))
    )
    procs = []
    try:
        bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={tmp / 'bus.conf'}", "--print-address", "--nofork"],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env,
        )
        procs.append(bus)
        address = bus.stdout.readline().decode().strip()
        if not address.startswith("unix:"):
            die(f"dbus-daemon printed {address!r}")
        env["DBUS_SESSION_BUS_ADDRESS"] = address
        log = open(outdir / f"{provider}-daemon.log", "wb")
        if provider == "gnome-keyring":
            d = subprocess.Popen(
                ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE, stdout=log, stderr=log, env=env,
            )
            d.stdin.write(b"upstream-login-password")
            d.stdin.close()
        else:
            target = pathlib.Path(os.environ["KEYRINGRS_TARGET"])
            env["KEYRINGRS_STORE"] = str(tmp / "store")
            env["KEYRINGRS_KDF_MEMORY"] = "256"
            env["KEYRINGRS_KDF_TIME"] = "1"
            subprocess.run(
                [str(target / "keyringrs"), "init", "--password-stdin"],
                input=b"upstream-login-password\n", env=env, check=True, capture_output=True,
            )
            d = subprocess.Popen(
                [str(target / "keyringrs-secret-service")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
            )
        procs.append(d)
        ready(address, time.time() + 30)
        for suite, (sdist, args) in SUITES.items():
            xml = outdir / f"{provider}-{suite}.xml"
            xml.unlink(missing_ok=True)
            cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs",
                   f"--junitxml={xml}", *args]
            print(f"== {suite} against {provider}: {' '.join(cmd[1:])}", flush=True)
            try:
                subprocess.run(cmd, cwd=src / sdist, env=env, timeout=SUITE_TIMEOUT)
            except subprocess.TimeoutExpired:
                die(f"{suite} against {provider} took more than {SUITE_TIMEOUT} s")
            if not xml.exists():
                die(f"{suite} against {provider} wrote no {xml}")
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


def outcomes(xml):
    """test id (class::name) -> passed | failed | error | skipped."""
    out = {}
    for tc in ET.parse(xml).getroot().iter("testcase"):
        tid = f"{tc.get('classname')}::{tc.get('name')}"
        kinds = {child.tag for child in tc}
        if "error" in kinds:
            out[tid] = "error"
        elif "failure" in kinds:
            out[tid] = "failed"
        elif "skipped" in kinds:
            out[tid] = "skipped"
        else:
            out[tid] = "passed"
    return out


def read_known(path):
    """`SUITE::class::name  # reason` lines -> {id: reason}."""
    known = {}
    for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tid, sep, reason = line.partition("#")
        tid, reason = tid.strip(), reason.strip()
        if not sep or not reason:
            die(f"{path}:{n}: {tid}: give the reason as a `# comment`")
        if tid.split("::", 1)[0] not in SUITES:
            die(f"{path}:{n}: {tid}: not a test of {', '.join(SUITES)}")
        known[tid] = reason
    return known


def counts(res):
    return tuple(sum(1 for v in res.values() if v == k) for k in ("passed", "failed", "error"))


def compare(outdir, known_path):
    outdir = pathlib.Path(outdir)
    known = read_known(known_path)
    problems = []
    rows = []
    seen = set()
    for suite in SUITES:
        res = {p: outcomes(outdir / f"{p}-{suite}.xml") for p in PROVIDERS}
        gk, ours = res["gnome-keyring"], res["keyringrs"]
        rows.append((suite, counts(gk), counts(ours)))
        for t in sorted(set(gk) | set(ours)):
            tid = f"{suite}::{t}"
            seen.add(tid)
            o = ours.get(t, "missing")
            if tid in known:
                if o == "passed":
                    problems.append(f"{tid} now passes: remove it from {known_path}")
                continue
            if gk.get(t) == "passed" and o != "passed":
                problems.append(f"{tid}: passes against gnome-keyring, {o} against keyringrs")
    for tid in sorted(set(known) - seen):
        problems.append(f"{tid} (in {known_path}) is not a test of these suites any more")
    print()
    print(f"{'suite':<14} {'gnome-keyring p/f/e':>20} {'keyringrs p/f/e':>17}")
    for suite, g, o in rows:
        print(f"{suite:<14} {'%d/%d/%d' % g:>20} {'%d/%d/%d' % o:>17}")
    print(f"known failures (needing the item model): {len(known)}")
    if problems:
        print()
        for p in problems:
            print(f"FAIL: {p}")
        sys.exit(1)
    print("upstream Secret Service suites: keyringrs passes everything gnome-keyring passes "
          "(but the known failures)")


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "run":
        run(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        die(__doc__)


if __name__ == "__main__":
    main()
