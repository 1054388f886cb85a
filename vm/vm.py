#!/usr/bin/python3
"""A Debian 12 VM under qemu, driven over two consoles (the VM test's machine).

The base image (vm/image.sh) is never written: each VM boots from a qcow2 overlay of its own in
a temporary directory, removed with the VM, with an optional second disk (/dev/vdb, ext4) made
from a host directory. Two consoles reach the guest:
- `serial`, the guest's ttyS0 (qemu's stdio): the kernel console, where agetty + login run a
  real login, driven as a person would (login, password, a shell);
- `control`, a root shell on the virtio console hvc0 (a unix socket here), started by the
  image's keyringrs-vm-control.service without a login: the driver's own channel, which no
  PAM stack sees.
A TPM2 too: every VM gets one of its own, a swtpm process (its state in the VM's temporary
directory, so it lasts as long as the VM, across reboots in the guest) behind qemu's TPM
emulator backend and a TIS device; the guest's kernel finds it in ACPI and makes /dev/tpm0 and
/dev/tpmrm0. KEYRINGRS_VM_TPM=0 boots without it (to compare).
KVM if a probe boot works there, else TCG. Every wait is bounded and names what did not appear;
both consoles and swtpm are logged beside the caller's output. qemu and swtpm are killed on
every path.

    vm/vm.py check IMAGE_DIR      boot, check the control shell, systemd and logind, the TPM,
                                  log in on ttyS0 as root, power off; prints the timings
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time


class Timeout(Exception):
    pass


class Console:
    """One console of the guest: bounded expect(), send(), and a shell's run().

    A thread of its own drains the console all the time (into the log and a buffer): a console
    nobody reads fills qemu's pipe, and then the guest's writes to it block.
    """

    def __init__(self, name, read_fd, write, log_path):
        self.name = name
        self.write = write
        self.log_path = log_path
        self.buf = b""
        self.closed = False
        self.count = 0
        self.cond = threading.Condition()
        self.reader = threading.Thread(target=self._drain, args=(read_fd, log_path), daemon=True)
        self.reader.start()

    def _drain(self, read_fd, log_path):
        with open(log_path, "ab") as log:
            while True:
                try:
                    chunk = os.read(read_fd, 65536)
                except OSError:
                    chunk = b""
                if chunk:
                    log.write(chunk)
                    log.flush()
                with self.cond:
                    if not chunk:
                        self.closed = True
                    else:
                        self.buf += chunk
                    self.cond.notify_all()
                if not chunk:
                    return

    def expect(self, text, timeout, what):
        """Wait for `text` on the console; the output before it is returned."""
        end = time.time() + timeout
        needle = text.encode()
        with self.cond:
            while True:
                at = self.buf.find(needle)
                if at >= 0:
                    before, self.buf = self.buf[:at], self.buf[at + len(needle):]
                    return before.decode(errors="replace")
                left = end - time.time()
                if left <= 0:
                    raise Timeout(f"{what}: {text!r} did not appear on {self.name} within "
                                  f"{timeout} s (log: {self.log_path})")
                if self.closed:
                    raise Timeout(f"{what}: {self.name} closed before {text!r} "
                                  f"(log: {self.log_path})")
                self.cond.wait(min(left, 1.0))

    def discard(self):
        """Forget what the console said so far (a new boot, a new login)."""
        with self.cond:
            self.buf = b""

    def send(self, text):
        self.write(text.encode())

    def shell(self, what, timeout=60):
        """Make the shell on this console scriptable: no echo, a prompt of ours."""
        # Quoted apart, so that the echo of this line is not taken for the prompt it sets.
        self.send("stty -echo; bind 'set enable-bracketed-paste off' 2>/dev/null; "
                  "export PS1='@v''m@ ' SYSTEMD_PAGER=cat PAGER=cat TERM=dumb\n")
        self.expect("@vm@ ", timeout, what)

    def run(self, command, timeout=120):
        """Run `command` in the shell on this console: (exit status, output)."""
        self.count += 1
        marker = f"@end{self.count}x{int(time.time())}@"
        with open(self.log_path + ".commands", "a") as trace:
            trace.write(f"{time.strftime('%H:%M:%S')} {self.count} {command}\n")
        self.send(f"{command}; echo {marker}$?\n")
        out = self.expect(marker, timeout, f"the end of {command!r}")
        status = self.expect("\n", 10, f"the status of {command!r}").strip()
        self.expect("@vm@ ", 30, f"the prompt after {command!r}")
        return int(status or "255"), out.replace("\r", "")

class VM:
    def __init__(self, image, log_dir, data_dir=None, accel="tcg,thread=multi", memory=2048,
                 ssh_port=None, tpm=None):
        self.t0 = time.time()
        self.tmp = tempfile.mkdtemp(prefix="keyringrs-vm-")
        self.proc = None
        self.swtpm = None
        self.consoles = []
        if tpm is None:
            tpm = os.environ.get("KEYRINGRS_VM_TPM", "1") != "0"
        self.tpm = tpm
        try:
            self._start(image, log_dir, data_dir, accel, memory, ssh_port)
        except BaseException:
            self.close()
            raise

    def _start_swtpm(self, log_dir):
        """swtpm, a TPM2 for qemu's emulator backend: qemu connects to its control socket and
        hands it the data channel. No --flags startup-*: the firmware (SeaBIOS, which runs
        before -kernel's kernel too) sends TPM2_Startup, at every boot of the guest; qemu sends
        swtpm CMD_INIT at every reset of the machine (a reboot in the guest), so the one swtpm
        serves every boot of the VM, its state (in self.tmp) kept. It ends by itself when
        qemu's connection goes; close() makes sure."""
        state = os.path.join(self.tmp, "tpm")
        os.mkdir(state, 0o700)
        sock = os.path.join(self.tmp, "swtpm.sock")
        log_path = os.path.join(log_dir, "vm-swtpm.log")
        # Errors only (level 1): from level 2 on, swtpm dumps every command and response in
        # hex (the firmware's measurements, the kernel's reads of the TPM's random generator).
        command = ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                   "--ctrl", f"type=unixio,path={sock}", "--log", f"file={log_path},level=1"]
        with open(log_path, "w") as log:
            log.write(f"{time.strftime('%H:%M:%S')} {' '.join(command)}\n")
        # Its log and its stderr (what it says before its log is open) both appended there.
        with open(log_path, "ab") as log:
            self.swtpm = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=log)
        end = time.time() + 30
        while not os.path.exists(sock):
            if self.swtpm.poll() is not None:
                raise Timeout(f"swtpm exited {self.swtpm.returncode} before it made its socket "
                              f"(log: {log_path})")
            if time.time() > end:
                raise Timeout(f"swtpm made no control socket within 30 s (log: {log_path})")
            time.sleep(0.05)
        return ["-chardev", f"socket,id=chrtpm,path={sock}",
                "-tpmdev", "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"]

    def _start(self, image, log_dir, data_dir, accel, memory, ssh_port):
        tpm = self._start_swtpm(log_dir) if self.tpm else []
        overlay = os.path.join(self.tmp, "overlay.qcow2")
        made = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.join(image, "disk.img"),
             "-F", "raw", overlay],
        )
        if made.returncode != 0:
            raise Timeout(f"no overlay of {image}/disk.img could be made (qemu-img failed)")
        drives = ["-drive", f"file={overlay},format=qcow2,if=virtio"]
        if data_dir:
            data = os.path.join(self.tmp, "data.img")
            made = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "keyringrs-data", "-d",
                                   data_dir, data, "256M"])
            if made.returncode != 0:
                raise Timeout(f"no data disk could be made from {data_dir} (mkfs.ext4 failed)")
            drives += ["-drive", f"file={data},format=raw,if=virtio"]
        # User-mode network, restricted: the guest reaches nothing outside; the host reaches the
        # guest's sshd only on 127.0.0.1.
        net = "user,id=n0,restrict=on"
        if ssh_port:
            net += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
        control_sock = os.path.join(self.tmp, "control.sock")
        for name in ("vm-serial.log", "vm-control.log"):
            open(os.path.join(log_dir, name), "wb").close()
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", accel, "-smp", "2", "-m", str(memory),
             "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
             "-append", "root=/dev/vda rw console=ttyS0 systemd.show_status=0",
             *drives, *tpm,
             "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
             "-chardev", f"socket,id=control,path={control_sock},server=on,wait=off",
             "-device", "virtio-serial-pci", "-device", "virtconsole,chardev=control",
             "-display", "none", "-serial", "stdio", "-monitor", "none"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )

        def write_serial(data):
            self.proc.stdin.write(data)
            self.proc.stdin.flush()

        self.serial = Console("ttyS0", self.proc.stdout.fileno(), write_serial,
                              os.path.join(log_dir, "vm-serial.log"))
        self.consoles.append(self.serial)
        end = time.time() + 30
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        while True:
            try:
                sock.connect(control_sock)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.time() > end or self.proc.poll() is not None:
                    raise Timeout("qemu did not open the control console's socket within 30 s")
                time.sleep(0.1)
        self.sock = sock
        self.control = Console("hvc0", sock.fileno(), sock.sendall,
                               os.path.join(log_dir, "vm-control.log"))
        self.consoles.append(self.control)

    def gone(self):
        """qemu and swtpm both ended and reaped."""
        return self.proc.poll() is not None and (self.swtpm is None
                                                 or self.swtpm.poll() is not None)

    def elapsed(self):
        return time.time() - self.t0

    def wait_control(self, timeout=300):
        """Wait for the control shell of this boot and make it scriptable."""
        end = time.time() + timeout
        attempt = 0
        while True:
            attempt += 1
            # Answered only by a running shell; quoted apart so that an echo is not the answer.
            self.control.send(f"\necho @ready''{attempt}@\n")
            try:
                self.control.expect(f"@ready{attempt}@", 5, "the control shell")
                break
            except Timeout:
                if time.time() > end:
                    raise Timeout(f"the control shell on hvc0 did not answer within {timeout} s "
                                  f"(serial log: {self.serial.log_path})")
        self.control.shell("the control shell's prompt")

    def login(self, user, password, timeout=300):
        """A login on ttyS0 through agetty and login; returns what login printed."""
        self.serial.expect("login: ", timeout, "the serial console's login prompt")
        self.serial.send(user + "\n")
        self.serial.expect("Password: ", 60, "login's password prompt")
        self.serial.send(password + "\n")
        said = self.serial.expect("$ " if user != "root" else "# ", 120,
                                  f"{user}'s shell after login")
        self.serial.shell(f"{user}'s shell")
        return said.replace("\r", "")

    def logout(self):
        self.serial.send("exit\n")

    def poweroff(self, timeout=120):
        self.control.send("systemctl poweroff\n")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Timeout(f"the VM did not power off within {timeout} s")

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.swtpm is not None and self.swtpm.poll() is None:
            # Gone with qemu's connection already, as a rule; else asked, then killed.
            self.swtpm.terminate()
            try:
                self.swtpm.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.swtpm.kill()
                self.swtpm.wait()
        for console in self.consoles:
            console.reader.join(timeout=5)
        if getattr(self, "sock", None):
            self.sock.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def choose_accel(image, log_dir, cache_dir=None):
    """KVM if a probe boot under it reaches the kernel's banner within 30 s, else TCG. On
    machines where nested virtualisation does not work, a KVM guest prints nothing after
    "Probing EDD" (measured here). The answer is kept in `cache_dir` per host kernel and qemu
    version, so only the first run pays the probe. KEYRINGRS_VM_ACCEL=kvm|tcg skips it."""
    tcg, kvm = "tcg,thread=multi", "kvm"
    forced = os.environ.get("KEYRINGRS_VM_ACCEL")
    if forced:
        return kvm if forced == "kvm" else tcg
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return tcg
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True, text=True)
    key = f"{os.uname().release} {qemu.stdout.splitlines()[0] if qemu.stdout else '?'}"
    memo = os.path.join(cache_dir or image, "accel")
    try:
        with open(memo) as f:
            known, answer = f.read().rsplit("\n", 2)[:2]
        if known == key:
            return kvm if answer == "kvm" else tcg
    except (OSError, ValueError):
        pass
    answer = "tcg"
    probe_dir = tempfile.mkdtemp(prefix="keyringrs-vm-probe-", dir=log_dir)
    vm = None
    try:
        vm = VM(image, probe_dir, accel=kvm, tpm=False)
        vm.serial.expect("Linux version", 30, "the kernel's banner under KVM")
        answer = "kvm"
    except Timeout:
        pass
    finally:
        if vm:
            vm.close()
        shutil.rmtree(probe_dir, ignore_errors=True)
    try:
        with open(memo, "w") as f:
            f.write(f"{key}\n{answer}\n")
    except OSError:
        pass
    return kvm if answer == "kvm" else tcg


def check(image, log_dir):
    vm = VM(image, log_dir)
    try:
        vm.wait_control()
        t_control = vm.elapsed()
        _, state = vm.control.run("systemctl is-system-running --wait", 300)
        vm.login("root", "root")
        t_login = vm.elapsed()
        _, sessions = vm.control.run("loginctl list-sessions --no-legend")
        _, kernel = vm.control.run("uname -r")
        tpm_ok = True
        if vm.tpm:
            st, tpm = vm.control.run("cat /sys/class/tpm/tpm0/tpm_version_major && "
                                     "stat -c '%U:%G %a' /dev/tpmrm0 && tpm2_getrandom --hex 8")
            tpm = " ".join(tpm.split())
            tpm_ok = st == 0
        else:
            tpm = "none (KEYRINGRS_VM_TPM=0)"
        vm.poweroff()
        print(f"vm check: control shell after {t_control:.1f} s, serial login after "
              f"{t_login:.1f} s, system {state.strip()!r}, sessions {sessions.strip()!r}, "
              f"kernel {kernel.strip()}, TPM {tpm!r}, powered off after {vm.elapsed():.1f} s")
        return 0 if state.strip() == "running" and "root" in sessions and tpm_ok else 1
    finally:
        vm.close()


def main(argv):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    if len(argv) == 2 and argv[0] == "check":
        try:
            return check(argv[1], os.getcwd())
        except Timeout as e:
            print(f"vm check: {e}")
            return 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
