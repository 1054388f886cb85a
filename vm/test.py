#!/usr/bin/python3
"""The VM test (make vm-test): every login and desktop claim of docs/PAM.md, under a real systemd.

One boot of the image from vm/image.sh (vm/vm.py), with this project's .deb on a second disk,
installed inside with apt and enabled with pam-auth-update (vm/guest/setup.sh). Then the
scenarios, each a real login through a real program: agetty + login on the serial console,
lightdm (its Debian stack, Xvfb, a liblightdm greeter), greetd (its JSON IPC), OpenSSH reached
on 127.0.0.1. What the store gives each client is read by vm/guest/probe.sh, from inside a
login (vm/guest/agent.sh runs as the login's program) or from a fresh process of the user
(runuser: no PAM session of ours). Each check is reported as a row; a failed scenario copies
the guest's journal and auth log beside the serial log.

    vm/test.py IMAGE_DIR DEB LOG_DIR [--only 1,4] [--keep]

--only runs some scenarios (the store is still created first); --keep leaves the VM running at
the end and prints how to reach it (its control shell, ssh), until Ctrl-C.
"""
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from vm import VM, Timeout, choose_accel  # noqa: E402

USER = "alice"
LIB = "/usr/local/lib/keyringrs-vm"
DIR = "/run/keyringrs-vm"
# The clients' answers in each state, as probe.sh prints them.
READS = {"cli": "0", "secret_ok": "yes"}
DESKTOP_READS = {"cli": "0", "secret_ok": "yes", "unit": "0", "unit_secret_ok": "yes", "tool": "ok",
                 "tool_store": "ok",
                 "python": "ok"}
LOCKED = {"cli": "3"}


class Scenario(Exception):
    """A scenario could not go on (a step failed, not just a check)."""


class Run:
    def __init__(self, vm, log_dir, ssh_port):
        self.vm = vm
        self.log_dir = log_dir
        self.ssh_port = ssh_port
        self.secret = "vm-" + secrets.token_hex(12)
        self.passwords = ["first-" + secrets.token_hex(6)]
        self.rows = []
        self.scenario = None
        self.failed = set()
        self.ssh = {}

    @property
    def password(self):
        return self.passwords[-1]

    # --- reporting -------------------------------------------------------------------------

    def check(self, what, got, expected):
        """A row of the report: `expected` is a dict of probe lines, a value, or a predicate."""
        if isinstance(expected, dict):
            bad = {k: got.get(k) for k, v in expected.items() if got.get(k) != v}
            ok = not bad
            shown = " ".join(f"{k}={got.get(k)}" for k in expected) + (
                f" (expected {' '.join(f'{k}={expected[k]}' for k in bad)})" if bad else "")
        elif callable(expected):
            ok = bool(expected(got))
            shown = str(got)
        else:
            ok = got == expected
            shown = str(got) + ("" if ok else f" (expected {expected})")
        self.rows.append((self.scenario, what, shown.strip(), ok))
        print(f"  [{'ok' if ok else 'FAIL'}] {what}: {shown.strip()}", flush=True)
        if not ok:
            self.failed.add(self.scenario)
        return ok

    def note(self, what, text):
        self.rows.append((self.scenario, what, text, None))
        print(f"  [info] {what}: {text}", flush=True)

    # --- the guest -------------------------------------------------------------------------

    def root(self, command, timeout=120, ok=True):
        status, out = self.vm.control.run(command, timeout)
        if ok and status != 0:
            raise Scenario(f"{command!r} exited {status}: {out.strip()[-400:]}")
        return status, out

    def wait(self, condition, timeout, what):
        """A bounded wait inside the guest for a shell condition."""
        status, _ = self.root(f"timeout {timeout} sh -c {shlex.quote(f'until {condition}; do sleep 0.2; done')}",
                              timeout + 30, ok=False)
        if status != 0:
            raise Scenario(f"{what}: not within {timeout} s")

    def fresh_probe(self):
        """What a new process of the user gets: no login of its own, no session keyring of
        the user's logins (runuser runs no session module of ours)."""
        env = f"HOME=/home/{USER} USER={USER} LOGNAME={USER} PATH=/usr/local/bin:/usr/bin:/bin"
        _, out = self.root(f"runuser -u {USER} -- env -i {env} {LIB}/probe.sh {self.secret}", 300,
                           ok=False)
        return parse(out)

    def request(self, name):
        """A request file for an agent, owned by the user: the agent removes it when done
        (the directory is sticky, as /tmp: nobody removes another user's file). Made aside and
        renamed into place: the agent never sees it before it is the user's."""
        self.root(f": > {DIR}/.{name} && chown {USER} {DIR}/.{name} && mv {DIR}/.{name} {DIR}/{name}")

    def agent_probe(self, tag):
        self.root(f"rm -f {DIR}/{tag}.probe.out")
        self.request(f"{tag}.probe")
        self.wait(f"[ -e {DIR}/{tag}.probe.out ]", 300, f"the {tag} login's probe")
        _, out = self.root(f"cat {DIR}/{tag}.probe.out")
        return parse(out)

    def agent_env(self, tag):
        _, out = self.root(f"cat {DIR}/{tag}.env")
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def session_gone(self, session_id, what, timeout=120):
        self.wait(f"! loginctl show-session {session_id} >/dev/null 2>&1", timeout,
                  f"logind closing {what}'s session {session_id}")

    def user_gone(self, timeout=120):
        self.wait(f"! pgrep -u {USER} >/dev/null && ! loginctl show-user {USER} >/dev/null 2>&1",
                  timeout, f"every process and the logind user record of {USER} gone")

    def reset(self):
        """Between scenarios: no login of the user left, the store locked."""
        self.root(f"loginctl terminate-user {USER} 2>/dev/null; true")
        self.user_gone()
        self.root(f"rm -f {DIR}/*.env {DIR}/*.probe* {DIR}/*.end")

    # --- logins ----------------------------------------------------------------------------

    def graphical_login(self, dm, session_type="wayland"):
        """A login through the display manager `dm` (lightdm or greetd) and its greeter; the
        agent is its session's program. Returns the agent's environment."""
        self.root(f"rm -f {DIR}/{dm}.env {DIR}/{dm}/greeter.log")
        request = f"{USER}\n{self.password}\n" + (f"{session_type}\n" if dm == "greetd" else "")
        self.root(f"printf %s {shlex.quote(request)} > {DIR}/{dm}/login.tmp && "
                  f"chown {'lightdm' if dm == 'lightdm' else '_greetd'} {DIR}/{dm}/login.tmp && "
                  f"mv {DIR}/{dm}/login.tmp {DIR}/{dm}/login")
        other = "greetd" if dm == "lightdm" else "lightdm"
        self.root(f"systemctl stop {other}.service; systemctl start {dm}.service")
        try:
            self.wait(f"[ -e {DIR}/{dm}.env ]", 240, f"{dm}'s session (its agent)")
        finally:
            _, greeter = self.root(f"cat {DIR}/{dm}/greeter.log 2>/dev/null", ok=False)
            self.greeter_log = greeter.strip()
        env = self.agent_env(dm)
        self.note(f"{dm} session", f"XDG_SESSION_ID={env.get('XDG_SESSION_ID')} "
                  f"XDG_SESSION_TYPE={env.get('XDG_SESSION_TYPE')} DISPLAY={env.get('DISPLAY', '')}")
        return env

    def end_agent(self, tag, env):
        self.request(f"{tag}.end")
        if tag in self.ssh:
            proc = self.ssh.pop(tag)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise Scenario(f"the ssh login {tag} did not end within 120 s")
        self.session_gone(env["XDG_SESSION_ID"], tag)

    def ssh_command(self, command, password=None):
        return ["sshpass", "-p", password or self.password, "ssh", "-q",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "PubkeyAuthentication=no", "-o", "PreferredAuthentications=password",
                "-o", "ConnectTimeout=60", "-p", str(self.ssh_port), f"{USER}@127.0.0.1", command]

    def ssh_login(self, tag):
        """An ssh login (password through PAM) that stays open, its agent as the command."""
        self.root(f"rm -f {DIR}/{tag}.env")
        self.ssh[tag] = subprocess.Popen(self.ssh_command(f"{LIB}/agent.sh {tag}"),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        self.wait(f"[ -e {DIR}/{tag}.env ]", 180, f"the ssh login {tag}")
        return self.agent_env(tag)

    def ssh_once(self, command):
        done = subprocess.run(self.ssh_command(command), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=300)
        return done.returncode, done.stdout

    def serial_login(self, password=None):
        said = self.vm.login(USER, password or self.password)
        return said

    def serial_logout(self):
        self.vm.serial.discard()
        self.vm.logout()
        self.vm.serial.expect("login: ", 120, "the login prompt after logout")
        # agetty has printed its prompt again: the next login starts there.
        self.vm.serial.buf = b"login: " + self.vm.serial.buf

    # --- failure output --------------------------------------------------------------------

    def collect(self, name):
        for what, command in (("journal", "journalctl -b --no-pager -o short-precise"),
                              ("auth", "journalctl -b --no-pager -o short-precise "
                                       "SYSLOG_FACILITY=4 SYSLOG_FACILITY=10")):
            try:
                _, out = self.vm.control.run(command, 300)
            except Timeout as e:
                out = f"(not collected: {e})\n"
            path = os.path.join(self.log_dir, f"{name}.{what}.log")
            with open(path, "w") as f:
                f.write(out)
            print(f"  {what} log: {path}")


def parse(out):
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


# --- the scenarios -----------------------------------------------------------------------------

def random_hex(shown):
    """tpm2_getrandom --hex 8's answer: exit 0 and 16 hex digits."""
    return re.fullmatch(r"rc=0 [0-9a-f]{16}", shown)


# The name of the owner hierarchy's ECC primary key: made again from the TPM's storage seed, the
# same only if the TPM's state is (/run: a tmpfs, root's).
PRIMARY_NAME = ("tpm2_createprimary -Q -C o -G ecc -c /run/primary.ctx && "
                "tpm2_readpublic -c /run/primary.ctx | sed -n 's/^name: //p'; rm -f /run/primary.ctx")


def tpm_checks(r):
    """The VM's TPM2 (swtpm, vm/vm.py): the device as Debian's tpm-udev makes it, usable by
    the test user (group tss, setup.sh) and by root."""
    if not r.vm.tpm:
        r.note("TPM", "none (KEYRINGRS_VM_TPM=0): no TPM checks")
        return
    # What the TPM2 keyslot's .deb will depend on, in the image already (no network here).
    libs = ("libtss2-esys-3.0.2-0 libtss2-tctildr0 libtss2-mu0 libtss2-rc0 libtss2-tcti-device0 "
            "tpm-udev")
    _, out = r.root(f"dpkg-query -W -f '${{Package}}=${{db:Status-Status}} ' {libs}", ok=False)
    r.check("the libtss2 libraries of the keyslot (ESAPI, TCTI loader and device TCTI, MU, RC) "
            "and tpm-udev are installed", " ".join(out.split()),
            " ".join(f"{lib}=installed" for lib in sorted(libs.split())))  # dpkg-query sorts
    # Debian's tpm-udev: /dev/tpmrm0 tss:tss 0660, for the members of the group tss.
    _, dev = r.root("stat -c '%U:%G %a' /dev/tpmrm0", ok=False)
    r.check("the guest has a TPM2: /dev/tpmrm0 is tss:tss 0660 (tpm-udev)", dev.strip(),
            "tss:tss 660")
    _, version = r.root("cat /sys/class/tpm/tpm0/tpm_version_major", ok=False)
    st, out = r.root(f"runuser -u {USER} -- tpm2_getrandom --hex 8", ok=False)
    r.check(f"tpm2_getrandom --hex 8 as {USER} (group tss)", f"rc={st} {out.strip()}",
            random_hex)
    st, out = r.root("tpm2_pcrread sha256:7", ok=False)
    r.check("tpm2_pcrread sha256:7", f"rc={st} {' '.join(out.split())}",
            lambda t: t.startswith("rc=0 ") and re.search(r"7 ?: ?0x[0-9A-F]{64}", t))
    _, maker = r.root("tpm2_getcap properties-fixed 2>/dev/null | "
                      "grep -A2 -E 'TPM2_PT_MANUFACTURER|TPM2_PT_FAMILY_INDICATOR' | "
                      "grep value: | tr -s ' '", ok=False)
    r.note("TPM", f"TPM {version.strip()}.0 (swtpm, tpm-tis), /dev/tpmrm0 {dev.strip()}; "
           f"{' '.join(maker.split())}")


def s1_text_login(r):
    """agetty + login on ttyS0: the first login creates the store; strict text scope."""
    tpm_checks(r)
    r.serial_login()
    st, out = r.vm.serial.run("keyringrs status")
    r.check("first login created the store, unlocked in that login",
            f"rc={st} {'unlocked' if 'unlocked' in out else 'locked' if 'locked' in out else '?'}",
            "rc=0 unlocked")
    st, _ = r.vm.serial.run(f"printf %s {r.secret} | keyringrs set vm-test {USER}")
    r.check("keyringrs set in the login", st, 0)
    st, out = r.vm.serial.run(f"keyringrs get vm-test {USER}")
    r.check("keyringrs get in the login", (st, out.strip() == r.secret), (0, True))
    st, out = r.vm.serial.run(f"{LIB}/probe.sh {r.secret}", 300)
    p = parse(out)
    r.check("user manager unit (systemd-run --user) gets exit 3", p, {"unit": "3"})
    r.note("in-login probe", " ".join(f"{k}={v}" for k, v in p.items()))
    r.serial_logout()
    r.check("after logout, a new process of the user (runuser) gets 3", r.fresh_probe(), LOCKED)


def desktop(r, dm, session_type="wayland"):
    env = r.graphical_login(dm, session_type)
    r.check(f"{dm}: the session is graphical for logind (XDG_SESSION_TYPE)",
            env.get("XDG_SESSION_TYPE"), "x11" if dm == "lightdm" else session_type)
    p = r.agent_probe(dm)
    r.check(f"{dm}: in the session: CLI, user unit, secret-tool store+lookup, python keyring", p,
            DESKTOP_READS)
    r.check(f"{dm}: the Secret Service daemon was activated under user@UID.service",
            p.get("daemon", ""), lambda d: "/user@" in d and "keyringrs-secret-service" in d)
    r.note(f"{dm}: python backend", p.get("python_backend", "?"))
    if dm == "lightdm":
        flatpak(r, dm)
    r.check(f"{dm}: a new process of the user reads it (@u)", r.fresh_probe(), READS)
    r.end_agent(dm, env)
    p = r.fresh_probe()
    r.check(f"{dm}: after the session closed, a new process gets locked / nothing",
            p, {"cli": "3", "python": "KeyringLocked"})
    r.check(f"{dm}: after the session closed, no unit and no Secret Service client reads it",
            f"unit={p.get('unit')} tool={p.get('tool')}",
            lambda got: "unit=0" not in got and "tool=ok" not in got)
    return env


def flatpak(r, tag):
    """A Flatpak-style sandboxed app of the login (vm/guest/flatpak-app.sh) through the real
    chain: the user's bus starts xdg-desktop-portal (its systemd user unit), which finds
    keyringrs.portal as the .deb installed it and calls org.freedesktop.secrets."""
    r.root(f"rm -f {DIR}/{tag}.flatpak.out")
    _, since = r.root("date +%s")
    r.request(f"{tag}.flatpak")
    r.wait(f"[ -e {DIR}/{tag}.flatpak.out ]", 300, f"the {tag} login's sandboxed app")
    _, out = r.root(f"cat {DIR}/{tag}.flatpak.out")
    r.check(f"{tag}: a sandboxed app stores and reads its secret through the Secret portal, "
            "its file keyring without plaintext, one portal item in the store", parse(out),
            {"store": "0", "lookup": "ok", "file": "yes", "plaintext": "no", "portal_items": "1"})
    _, how = r.root(f"journalctl --since=@{since.strip()} --no-pager -o cat "
                    "-g 'portal: |Using keyringrs.portal|Falling back to keyringrs.portal' "
                    "| tail -n 3", ok=False)
    r.check(f"{tag}: keyringrs-secret-service made and gave the app's secret", how,
            lambda t: "portal: made the secret of the app \"org.keyringrs.VmApp\"" in t
            and "portal: gave the app" in t)
    _, unit = r.root(f"runuser -u {USER} -- env XDG_RUNTIME_DIR=/run/user/$(id -u {USER}) "
                     "systemctl --user is-active xdg-desktop-portal.service", ok=False)
    r.note(f"{tag}: xdg-desktop-portal.service (user)", unit.strip())


def s2_lightdm(r):
    """lightdm (its own stack, no pam_keyinit), Xvfb, a liblightdm greeter."""
    desktop(r, "lightdm")
    r.note("lightdm greeter's conversation", r.greeter_log.replace("\n", " | ")[:300])


def s3_greetd(r):
    """greetd (its stack includes login), the JSON IPC, a session announced as wayland; then
    the same greeter announcing no session type."""
    desktop(r, "greetd", "wayland")
    env = r.graphical_login("greetd", "")
    p = r.agent_probe("greetd")
    r.check("greetd, no XDG_SESSION_TYPE: a text login (its own @s key): the login reads, "
            "its user manager's units get 3", p, {"cli": "0", "unit": "3"})
    r.end_agent("greetd", env)
    r.check("greetd, no XDG_SESSION_TYPE: after the session, 3", r.fresh_probe(), LOCKED)


def s4_overlap(r):
    """A graphical and an ssh login in both closing orders; a killed graphical login."""
    g = r.graphical_login("lightdm")
    s = r.ssh_login("ssh")
    r.check("graphical+ssh: the ssh login reads", r.agent_probe("ssh"), READS)
    r.end_agent("lightdm", g)
    r.check("graphical closed first: a new process gets 3 (the desktop's key is gone)",
            r.fresh_probe(), LOCKED)
    r.check("graphical closed first: the ssh login still reads (its own key)",
            r.agent_probe("ssh"), READS)
    r.end_agent("ssh", s)
    r.check("then ssh closed: a new process gets 3", r.fresh_probe(), LOCKED)

    s = r.ssh_login("ssh")
    g = r.graphical_login("lightdm")
    r.end_agent("ssh", s)
    r.check("ssh closed first: the desktop session still reads", r.agent_probe("lightdm"),
            {"cli": "0", "tool": "ok"})
    r.check("ssh closed first: a new process still reads (@u)", r.fresh_probe(), READS)
    r.end_agent("lightdm", g)
    r.check("then the desktop closed: a new process gets 3", r.fresh_probe(), LOCKED)

    g = r.graphical_login("lightdm")
    r.check("before the kill: a new process reads", r.fresh_probe(), READS)
    _, since = r.root("date +%s")
    r.root(f"loginctl kill-session {g['XDG_SESSION_ID']} --signal=KILL")
    r.session_gone(g["XDG_SESSION_ID"], "the killed lightdm login")
    st, out = r.ssh_once(f"keyringrs get vm-test {USER} >/dev/null; echo rc=$?")
    r.check("a login after the kill (ssh) reads", out.strip(), "rc=0")
    r.wait(f"! loginctl list-sessions --no-legend | grep -q ' {USER} '", 60,
           "the ssh login's session closing")
    r.check("killed graphical login, then another login and logout: a new process gets 3",
            r.fresh_probe(), LOCKED)
    _, who = r.root(f"journalctl --since=@{since.strip()} --no-pager -o cat "
                    "-g 'every login that held it open is gone|locked the store' | tail -n 3",
                    ok=False)
    r.note("who locked after the kill", " / ".join(who.strip().splitlines()) or "nobody logged it")


def s6_lock(r):
    """keyringrs lock in one login locks the desktop's apps; terminate-user leaves nothing."""
    g = r.graphical_login("lightdm")
    r.check("desktop reads", r.agent_probe("lightdm"), {"cli": "0", "tool": "ok"})
    st, out = r.ssh_once("keyringrs lock; echo rc=$?")
    r.check("keyringrs lock in an ssh login", out.strip(), "rc=0")
    after = r.agent_probe("lightdm")
    r.check("after the lock: the desktop's CLI and units see it locked", after,
            {"cli": "3", "unit": "3"})
    # python's keyring asks to unlock the collection: the desktop's dialog (pinentry) shows and
    # nobody answers it here, so the probe's python gives up (timeout) without the secret.
    r.check("after the lock: python's keyring reads nothing (its unlock shows the dialog)",
            after.get("python"), lambda p: p != "ok")
    r.check("after the lock: secret-tool finds nothing", r.agent_probe("lightdm").get("tool"),
            lambda t: t != "ok")
    st, out = r.ssh_once(f"keyringrs get vm-test {USER} >/dev/null; echo rc=$?")
    r.check("a new ssh login unlocks it again for itself", out.strip(), "rc=0")
    r.root(f"loginctl terminate-user {USER}")
    r.user_gone()
    r.check("terminate-user: no process of the user left, a new one gets 3", r.fresh_probe(),
            LOCKED)
    r.session_gone(g["XDG_SESSION_ID"], "the terminated lightdm login")


def s5_passwords(r):
    """passwd, a reboot, the new password; an admin reset, then resync."""
    old = r.password
    r.serial_login()
    r.passwords.append("second-" + secrets.token_hex(6))
    r.vm.serial.send("passwd\n")
    r.vm.serial.expect("Current password: ", 60, "passwd's current password prompt")
    r.vm.serial.send(old + "\n")
    r.vm.serial.expect("New password: ", 60, "passwd's new password prompt")
    r.vm.serial.send(r.password + "\n")
    r.vm.serial.expect("Retype new password: ", 60, "passwd's retype prompt")
    r.vm.serial.send(r.password + "\n")
    out = r.vm.serial.expect("@vm@ ", 120, "passwd's end")
    r.check("passwd in a text login", "updated successfully" in out, True)
    r.serial_logout()
    _, boot1 = r.root("cat /proc/sys/kernel/random/boot_id")
    if r.vm.tpm:
        _, name1 = r.root(PRIMARY_NAME, ok=False)
    t = time.time()
    r.vm.serial.discard()
    r.vm.control.send("systemctl reboot\n")
    r.vm.serial.expect("Linux version", 300, "the kernel of the next boot")
    r.vm.control.discard()
    r.vm.wait_control()
    _, boot2 = r.root("cat /proc/sys/kernel/random/boot_id")
    r.check("the VM rebooted", boot1.strip() != boot2.strip(), True)
    st, out = r.root("tpm2_getrandom --hex 8", ok=False)
    if r.vm.tpm:
        r.check("after the reboot: the TPM answers (tpm2_getrandom --hex 8 as root)",
                f"rc={st} {out.strip()}", random_hex)
        _, name2 = r.root(PRIMARY_NAME, ok=False)
        r.check("after the reboot: the same TPM state (the owner's ECC primary key's name)",
                name2.strip(), lambda n: re.fullmatch(r"000b[0-9a-f]{64}", n)
                and n == name1.strip())
    r.serial_login()
    r.note("reboot to login", f"{time.time() - t:.0f} s")
    st, out = r.vm.serial.run(f"keyringrs get vm-test {USER}")
    r.check("after passwd and a reboot: a login with the new password reads",
            (st, out.strip() == r.secret), (0, True))
    r.serial_logout()

    before = r.password
    r.passwords.append("reset-" + secrets.token_hex(6))
    r.root(f"echo {USER}:{r.password} | chpasswd")
    said = r.serial_login()
    r.check("admin reset (chpasswd): the login says why the store stays locked",
            "Your keyringrs secrets stay locked" in said, True)
    st, _ = r.vm.serial.run(f"keyringrs get vm-test {USER}")
    r.check("admin reset: keyringrs get gets 3", st, 3)
    st, out = r.vm.serial.run(f"printf '%s\\n%s\\n' {before} {r.password} | "
                              "keyringrs resync --password-stdin")
    r.check("keyringrs resync (old password, then the current one)", st, 0)
    st, out = r.vm.serial.run(f"keyringrs get vm-test {USER}")
    r.check("after resync: keyringrs get in that login", (st, out.strip() == r.secret), (0, True))
    r.serial_logout()
    r.serial_login()
    st, out = r.vm.serial.run(f"keyringrs get vm-test {USER}")
    r.check("the next login with the reset password unlocks", (st, out.strip() == r.secret),
            (0, True))
    r.serial_logout()


def as_user(command):
    """`command` as the user, from root's control shell: a clean environment, no login."""
    return (f"runuser -u {USER} -- env -i HOME=/home/{USER} USER={USER} "
            f"PATH=/usr/local/bin:/usr/bin:/bin {command}")


def tpm2_autologin(r, conf):
    """lightdm autologin with a TPM2 keyslot added `--pam` (the guest's /dev/tpmrm0, backed by
    swtpm on the host): the store opens at the login with no password typed and the session's
    apps read with no prompt; when the autologin ends it locks; then the slot is removed."""
    pw = shlex.quote(r.password)
    st, out = r.root(f"printf '%s\\n' {pw} | " + as_user(
        "keyringrs slot add machine --tpm2 --pcrs 7 --pam --password-stdin"), 120, ok=False)
    r.check("keyringrs slot add machine --tpm2 --pcrs 7 --pam, as the user (group tss)",
            (st, out.strip()[-300:]), lambda v: v[0] == 0)
    _, slots = r.root(as_user("keyringrs slot list"), ok=False)
    r.note("keyringrs slot list", " | ".join(slots.strip().splitlines()))
    _, since = r.root("date +%s")
    r.root("systemctl stop greetd.service; systemctl restart lightdm.service")
    r.wait(f"[ -e {DIR}/lightdm.env ]", 240, "lightdm's autologin session (its agent)")
    env = r.agent_env("lightdm")
    r.check("TPM2 autologin: every client of the session reads, no password typed",
            r.agent_probe("lightdm"), DESKTOP_READS)
    _, how = r.root(f"journalctl --since=@{since.strip()} --no-pager -o cat "
                    "-g 'logged in without a password' | tail -n 1", ok=False)
    r.check("the module opened the store with the TPM2 keyslot at the autologin", how.strip(),
            lambda t: "TPM2 keyslot machine (PCRs 7 at device:/dev/tpmrm0 in " in t)
    r.request("lightdm.app")
    r.wait(f"[ -e {DIR}/lightdm.app.out ]", 120, "the app's lookup")
    _, app = r.root(f"cat {DIR}/lightdm.app.out")
    r.check("an app of the autologin reads its secret", app.strip(),
            lambda t: r.secret in t and t.endswith("rc=0"))
    x = (f"runuser -u {USER} -- env DISPLAY={env.get('DISPLAY', ':0')} "
         f"XAUTHORITY={env.get('XAUTHORITY', '')} xdotool")
    st, _ = r.root(f"{x} search --onlyvisible --name 'Unlock your secrets'", 60, ok=False)
    r.check("no unlock dialog was shown", st, 1)
    _, log = r.root(f"journalctl --since=@{since.strip()} --no-pager -o short "
                    "-g 'keyringrs' | tail -n 12", ok=False)
    r.note("journal of the TPM2 autologin", " | ".join(log.strip().splitlines()))
    # The session ends as a person's does (its program exits, lightdm closes the PAM session);
    # without the autologin line lightdm then shows its greeter instead of logging in again.
    r.root(f"mv {conf} {conf}.off")
    r.end_agent("lightdm", env)
    r.root("systemctl stop lightdm.service")
    r.root(f"mv {conf}.off {conf}")
    # The CLI alone: an app's lookup now would reopen it through the TPM2 slot (the daemon's
    # prompt asks the TPM first), which is the slot's point, not a leak.
    st, _ = r.root(as_user(f"keyringrs get vm-test {USER}"), ok=False)
    r.check("after the autologin ended: locked (keyringrs get)", st, 3)
    st, _ = r.root(f"printf '%s\\n' {pw} | " + as_user(
        "keyringrs slot remove machine --password-stdin"), 120, ok=False)
    r.check("keyringrs slot remove machine", st, 0)
    r.root(as_user("keyringrs lock"))
    r.check("without the slot, a new process of the user gets locked / nothing",
            r.fresh_probe(), LOCKED)
    r.root(f"rm -f {DIR}/lightdm.env {DIR}/lightdm.app.out {DIR}/lightdm.probe.out")


def s7_autologin(r):
    """lightdm autologin (no password): with a TPM2 keyslot `--pam` the store opens and apps
    read with no prompt; without it, locked, and an app's unlock prompts (pinentry-gtk-2 on the
    session's display, typed into); then the lock policy at `loginctl lock-session`."""
    conf = "/etc/lightdm/lightdm.conf.d/60-keyringrs-vm-autologin.conf"
    r.root(f"printf '[Seat:*]\\nautologin-user={USER}\\nautologin-session=keyringrs-vm\\n' > {conf}")
    r.root(f"rm -f {DIR}/lightdm.env {DIR}/lightdm.app.out")
    try:
        tpm2_autologin(r, conf)
        r.root("systemctl stop greetd.service; systemctl restart lightdm.service")
        r.wait(f"[ -e {DIR}/lightdm.env ]", 240, "lightdm's autologin session (its agent)")
        env = r.agent_env("lightdm")
        r.note("autologin session", f"XDG_SESSION_ID={env.get('XDG_SESSION_ID')} "
               f"DISPLAY={env.get('DISPLAY', '')}")
        r.check("autologin: the store stays locked (no password)", r.agent_probe("lightdm"),
                {"cli": "3"})
        _, since = r.root("date +%s")
        r.request("lightdm.app")
        x = (f"runuser -u {USER} -- env DISPLAY={env.get('DISPLAY', ':0')} "
             f"XAUTHORITY={env.get('XAUTHORITY', '')} xdotool")
        st, win = r.root(f"timeout 90 {x} search --sync --onlyvisible --name 'Unlock your secrets'",
                         120, ok=False)
        r.check("an app's lookup shows pinentry's dialog on the session's display", st, 0)
        if st == 0:
            w = win.split()[-1]
            r.root(f"{x} windowfocus --sync {w}; sleep 0.5", ok=False)
            r.root(f"printf %s {shlex.quote(r.password)} | {x} type --delay 20 --file -; "
                   f"{x} key Return", 60, ok=False)
        r.wait(f"[ -e {DIR}/lightdm.app.out ]", 120, "the app's lookup")
        _, app = r.root(f"cat {DIR}/lightdm.app.out")
        r.check("after the dialog the app reads its secret", app.strip(),
                lambda t: r.secret in t and t.endswith("rc=0"))
        _, how = r.root(f"journalctl --since=@{since.strip()} --no-pager -o cat "
                        "-g 'unlocked the store through' | tail -n 1", ok=False)
        r.check("unlocked through pinentry, held by the autologin's logind session",
                how.strip(), lambda t: "pinentry" in t
                and f"logind session {env.get('XDG_SESSION_ID')} " in t)
        r.check("a new process reads (@u, held by the autologin)", r.fresh_probe(), READS)
        # The lock policy, the user's choice: the screen lock locks.
        home = f"/home/{USER}"
        status_cmd = f"runuser -u {USER} -- env -i HOME={home} PATH=/usr/bin:/bin keyringrs status"
        r.root(f"runuser -u {USER} -- sh -c 'mkdir -p {home}/.config/keyringrs && "
               f"echo \"screen-lock = lock\" > {home}/.config/keyringrs/lock.conf'")
        r.root(f"loginctl lock-session {env['XDG_SESSION_ID']}")
        r.wait(f"{status_cmd} | grep -q '^state: *locked'", 30, "the lock at the screen lock")
        _, status = r.root(status_cmd)
        r.check("loginctl lock-session with screen-lock = lock: locked, and status says why",
                status, lambda s: "locked:  at screen lock" in s
                and "screen-lock = lock (/home/" in s)
        r.check("after the screen lock: the session's clients see it locked",
                r.agent_probe("lightdm"), {"cli": "3"})
    finally:
        r.root(f"rm -f {conf} /home/{USER}/.config/keyringrs/lock.conf; "
               "systemctl stop lightdm.service", ok=False)


SCENARIOS = [("1", "text login (agetty + login)", s1_text_login),
             ("2", "lightdm + Xvfb + liblightdm greeter", s2_lightdm),
             ("3", "greetd + JSON IPC greeter", s3_greetd),
             ("4", "overlap: graphical + ssh, killed session", s4_overlap),
             ("6", "keyringrs lock, loginctl terminate-user", s6_lock),
             ("7", "lightdm autologin: a TPM2 keyslot, then the unlock prompt, the screen-lock policy",
              s7_autologin),
             ("5", "passwd + reboot, chpasswd + resync", s5_passwords)]


def host_state():
    """What the VM test must leave as it was on the host: PAM, users, groups, services."""
    import hashlib
    h = hashlib.sha256()
    paths = ["/etc/passwd", "/etc/group", "/etc/shadow"]
    for root in ("/etc/pam.d", "/usr/share/pam-configs", "/etc/systemd/system"):
        for base, _, files in sorted(os.walk(root)):
            paths += sorted(os.path.join(base, f) for f in files)
    for path in paths:
        h.update(path.encode())
        try:
            with open(path, "rb") as f:
                h.update(f.read())
        except OSError:
            h.update(b"-")
    return h.hexdigest()[:16]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def report(r, log_dir, times):
    lines = ["| scenario | check | result | |", "|---|---|---|---|"]
    for scenario, what, shown, ok in r.rows:
        mark = "info" if ok is None else "ok" if ok else "FAIL"
        cell = shown.replace('|', '/').replace('\n', ' ⏎ ')
        lines.append(f"| {scenario} | {what} | {cell} | {mark} |")
    lines.append("")
    lines += [f"- {k}: {v}" for k, v in times.items()]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(log_dir, "report.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    # CI shows the tail of the output: the failed rows come last, with where their logs are.
    failed = [row for row in r.rows if row[3] is False]
    for scenario, what, shown, _ in failed:
        print(f"FAILED scenario {scenario}: {what}: {shown}")
    for scenario in sorted(r.failed):
        journal = os.path.join(log_dir, f"scenario-{scenario}.journal.log")
        print(f"  logs: {journal}, .auth.log, vm-serial.log; its last keyringrs lines:")
        try:
            with open(journal, errors="replace") as f:
                lines = [line.rstrip() for line in f if "keyringrs" in line]
        except OSError:
            lines = ["  (no journal)"]
        for line in lines[-12:]:
            print(f"    {line[:200]}")


def main(argv):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    args = [a for a in argv if not a.startswith("--")]
    keep = "--keep" in argv
    only = None
    if "--only" in argv:
        only = argv[argv.index("--only") + 1].split(",")
        args.remove(argv[argv.index("--only") + 1])
    if len(args) != 3:
        print(__doc__)
        return 2
    image, deb, log_dir = args
    os.makedirs(log_dir, exist_ok=True)
    here = os.path.dirname(os.path.abspath(__file__))
    data = tempfile.mkdtemp(prefix="keyringrs-vm-data-")
    ssh_port = free_port()
    times = {}
    vm = r = None
    before = host_state()
    try:
        shutil.copy(deb, data)
        shutil.copytree(os.path.join(here, "guest"), os.path.join(data, "guest"))
        t = time.time()
        accel = choose_accel(image, log_dir)
        times["accelerator"] = (f"{'KVM' if accel == 'kvm' else 'TCG'} (qemu -accel {accel}, "
                                f"2 vCPUs, 2 GiB; chosen in {time.time() - t:.0f} s)")
        vm = VM(image, log_dir, data_dir=data, accel=accel, ssh_port=ssh_port)
        vm.wait_control()
        times["boot to control shell"] = (f"{vm.elapsed():.0f} s "
                                          f"({'with' if vm.tpm else 'without'} a TPM)")
        r = Run(vm, log_dir, ssh_port)
        r.scenario = "setup"
        t = time.time()
        try:
            r.root("systemctl is-system-running --wait", 300, ok=False)
            r.root("mkdir -p /mnt/data && mount -o ro /dev/vdb /mnt/data")
            st, out = r.root(f"/mnt/data/guest/setup.sh /mnt/data {USER} {r.password} {r.secret}",
                             600, ok=False)
            r.check("the .deb installed with apt, pam-auth-update --enable keyringrs", st, 0)
            if st != 0:
                print(out[-2000:])
                raise Scenario("setup failed")
            times["setup (apt install of the .deb, users, configs)"] = f"{time.time() - t:.0f} s"
            for number, title, scenario in SCENARIOS:
                if only and number not in only and number != "1":
                    continue
                r.scenario = number
                print(f"scenario {number}: {title}", flush=True)
                t = time.time()
                try:
                    scenario(r)
                except (Scenario, Timeout, subprocess.TimeoutExpired) as e:
                    r.check("the scenario ran to its end", str(e), "")
                if r.scenario in r.failed:
                    r.collect(f"scenario-{number}")
                times[f"scenario {number}"] = f"{time.time() - t:.0f} s"
                if number not in ("5",):
                    try:
                        r.reset()
                    except (Scenario, Timeout) as e:
                        r.check("no login of the user left after the scenario", str(e), "")
        except (Scenario, Timeout) as e:
            r.check("the VM test ran to its end", str(e), "")
            r.collect("setup")
        if keep:
            vm.sock.close()  # qemu's socket takes one client: now the person's
            print(f"\nThe VM is running. Its control shell: socat - UNIX-CONNECT:{vm.tmp}/control.sock"
                  f"\nssh: ssh -p {ssh_port} {USER}@127.0.0.1 (password {r.password})"
                  f"\nCtrl-C ends it.", flush=True)
            try:
                vm.proc.wait()
            except KeyboardInterrupt:
                pass
        else:
            t = time.time()
            vm.poweroff()
            times["poweroff"] = f"{time.time() - t:.0f} s"
        times["total"] = f"{vm.elapsed():.0f} s"
        vm.close()
        r.scenario = "host"
        r.check("qemu and swtpm are gone, the overlay, disks and TPM state removed",
                (vm.gone(), os.path.exists(vm.tmp)), (True, False))
        r.check("the host's PAM stacks, users, groups and units are as they were",
                host_state(), before)
        report(r, log_dir, times)
        return 1 if r.failed else 0
    except Timeout as e:
        print(f"vm test: {e}")
        return 1
    finally:
        for proc in (r.ssh.values() if r else []):
            proc.kill()
        if vm:
            vm.close()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
