#!/usr/bin/python3
"""A Debian 12 VM under qemu, driven over its serial console (the VM test's machine).

The base image (vm/image.sh) is never written: each VM boots from a qcow2 overlay of its own
in a temporary directory, removed with the VM. KVM if a probe boot works there, else TCG. Every
wait is bounded and names what did not appear; on any failure the serial log is kept beside
the caller's output. The qemu process is killed on every path (also on SIGTERM).

    vm/vm.py check IMAGE_DIR      boot, log in on ttyS0 as root, check systemd and logind,
                                  power off; prints the timings
"""
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time


class Timeout(Exception):
    pass


class VM:
    def __init__(self, image, log_dir, accel="tcg,thread=multi", memory=2048, ssh_port=None):
        self.t0 = time.time()
        self.tmp = tempfile.mkdtemp(prefix="keyringrs-vm-")
        overlay = os.path.join(self.tmp, "overlay.qcow2")
        made = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", os.path.join(image, "disk.img"),
             "-F", "raw", overlay],
        )
        if made.returncode != 0:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise Timeout(f"no overlay of {image}/disk.img could be made (qemu-img failed)")
        net = "user,id=n0,restrict=off"
        if ssh_port:
            net += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
        self.log_path = os.path.join(log_dir, "vm-serial.log")
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            ["qemu-system-x86_64", "-accel", accel, "-smp", "2", "-m", str(memory),
             "-kernel", os.path.join(image, "vmlinuz"), "-initrd", os.path.join(image, "initrd.img"),
             "-append", "root=/dev/vda rw console=ttyS0 systemd.show_status=0",
             "-drive", f"file={overlay},format=qcow2,if=virtio",
             "-netdev", net, "-device", "virtio-net-pci,netdev=n0",
             "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self.buf = b""

    def elapsed(self):
        return time.time() - self.t0

    def expect(self, text, timeout, what):
        """Read the console until `text`; the output before it is returned."""
        end = time.time() + timeout
        needle = text.encode()
        while True:
            at = self.buf.find(needle)
            if at >= 0:
                before, self.buf = self.buf[:at], self.buf[at + len(needle):]
                return before.decode(errors="replace")
            left = end - time.time()
            if left <= 0:
                raise Timeout(f"{what}: {text!r} did not appear within {timeout} s "
                              f"(serial log: {self.log_path})")
            ready, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if ready:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    raise Timeout(f"{what}: qemu exited before {text!r} (serial log: {self.log_path})")
                self.log.write(chunk)
                self.log.flush()
                self.buf += chunk

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def login(self, user, password, timeout=300):
        self.expect("login: ", timeout, "the serial console's login prompt")
        self.send(user + "\n")
        self.expect("Password: ", 60, "login's password prompt")
        self.send(password + "\n")
        # A prompt we set, so that command output is told from the shell's.
        self.expect("$ " if user != "root" else "# ", 120, f"{user}'s shell after login")
        # Quoted apart, so that the echo of this line is not taken for the prompt it sets.
        self.send("stty -echo; bind 'set enable-bracketed-paste off' 2>/dev/null; "
                  "export PS1='@v''m@ ' SYSTEMD_PAGER=cat PAGER=cat TERM=dumb\n")
        self.expect("@vm@ ", 60, "the shell's new prompt")

    def run(self, command, timeout=120):
        """Run `command` in the logged-in shell: (exit status, output)."""
        marker = f"@end{int(time.time() * 1000)}@"
        self.send(f"{command}; echo {marker}$?\n")
        out = self.expect(marker, timeout, f"the end of {command!r}")
        status = self.expect("\n", 10, f"the status of {command!r}").strip()
        self.expect("@vm@ ", 30, f"the prompt after {command!r}")
        return int(status or "255"), out.replace("\r", "")

    def poweroff(self, timeout=120):
        self.send("systemctl poweroff\n")
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Timeout(f"the VM did not power off within {timeout} s")

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def check(image, log_dir):
    vm = VM(image, log_dir)
    try:
        vm.login("root", "root")
        t_login = vm.elapsed()
        st, state = vm.run("systemctl is-system-running --wait", 300)
        st2, sessions = vm.run("loginctl list-sessions --no-legend")
        _, kernel = vm.run("uname -r")
        vm.poweroff()
        print(f"vm check: logged in after {t_login:.1f} s, system {state.strip()!r}, "
              f"sessions {sessions.strip()!r}, kernel {kernel.strip()}, "
              f"powered off after {vm.elapsed():.1f} s")
        return 0 if state.strip() == "running" and "root" in sessions else 1
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
