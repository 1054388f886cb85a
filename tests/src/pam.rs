//! The PAM harness shared by the end-to-end tests of pam_keyringrs.so (tests/pam_*.rs,
//! tests/sshd.rs, tests/stacks.rs): the built module and test PAM application
//! (tests/pam/pam-driver.c), throwaway /etc/pam.d services, login users, the driver's
//! transcripts, logins held open step by step (`Live`), the user-manager stand-in, and the
//! /dev/log collector for the module's syslog lines. Login scenarios (`Login`, `Steps`,
//! `Desktop`) are in pam/login.rs, the machine's common-* stacks (`CommonStacks`,
//! `PamProfile`) in pam/profile.rs.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use crate::*;

mod login;
mod profile;
pub use login::*;
pub use profile::{CommonStacks, PamProfile};

pub fn module() -> PathBuf {
    let p = target_dir().join("libpam_keyringrs.so");
    assert!(
        p.exists(),
        "{} missing: cargo build --workspace first",
        p.display()
    );
    p
}

/// tests/pam/pam-driver.c, built once per test run.
pub fn driver() -> &'static Path {
    static DRIVER: OnceLock<PathBuf> = OnceLock::new();
    DRIVER.get_or_init(|| {
        // Built under a private name, then renamed: a concurrent run never sees half a file.
        let tmp = target_dir().join(format!("pam-driver.{}", std::process::id()));
        build_c(
            "pam/pam-driver.c",
            &tmp,
            &["-O1", "-Wall", "-Werror", "-lpam"],
        );
        let out = target_dir().join("pam-driver");
        std::fs::rename(&tmp, &out).expect("install pam-driver");
        out
    })
}

pub fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A throwaway /etc/pam.d service, removed on drop.
#[derive(Debug)]
pub struct Service {
    pub name: String,
}

/// The module's options in every test service: small Argon2id through the options users have.
pub const TEST_OPTIONS: &str = "debug kdf_memory=256 kdf_time=1";

impl Service {
    pub fn new(tag: &str, text: &str) -> Service {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("krt-{tag}-{}-{n}", std::process::id());
        let text = text.replace("MODULE", &module().display().to_string());
        std::fs::write(Path::new("/etc/pam.d").join(&name), text).expect("write /etc/pam.d file");
        Service { name }
    }

    /// A stack like Debian's common-* files with the module where docs/PAM.md puts it.
    pub fn standard(tag: &str, session_options: &str) -> Service {
        Service::new(tag, &standard_stack(session_options))
    }

    /// A stack without pam_keyinit (as Debian's lightdm and xdm have, or a hand-written one):
    /// the standard stack's auth, account and session lines but pam_keyinit's.
    pub fn without_keyinit(tag: &str) -> Service {
        let text: String = standard_stack("")
            .lines()
            .filter(|l| !l.starts_with("password") && !l.contains("pam_keyinit"))
            .map(|l| format!("{}\n", l.trim_end()))
            .collect();
        Service::new(tag, &text)
    }
}

/// The text of `Service::standard`.
fn standard_stack(session_options: &str) -> String {
    format!(
        "auth     requisite pam_unix.so\n\
         auth     optional  MODULE {TEST_OPTIONS}\n\
         account  required  pam_unix.so\n\
         password requisite pam_unix.so\n\
         password optional  MODULE {TEST_OPTIONS}\n\
         session  optional  pam_keyinit.so force revoke\n\
         session  required  pam_unix.so\n\
         session  optional  MODULE {TEST_OPTIONS} {session_options}\n"
    )
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(Path::new("/etc/pam.d").join(&self.name));
    }
}

/// A throwaway user with a login password and a copy of `keyringrs` in their home.
pub fn login_user(tag: &str, password: &str) -> ThrowawayUser {
    let user = ThrowawayUser::new(tag);
    set_password(&user, password);
    let _ = user.keyringrs();
    user
}

/// What an administrator's `chpasswd` does.
pub fn set_password(user: &ThrowawayUser, password: &str) {
    let o = run(
        Command::new("chpasswd"),
        format!("{}:{password}\n", user.name).as_bytes(),
    );
    assert_exit(&o, 0);
}

/// The driver's transcript.
#[derive(Debug)]
pub struct Transcript {
    pub out: String,
}

impl Transcript {
    /// Return codes of every `@@ STEP rc` line of `step`, in order.
    pub fn codes(&self, step: &str) -> Vec<i32> {
        let prefix = format!("@@ {step} ");
        self.out
            .lines()
            .filter_map(|l| l.find(&prefix).map(|i| &l[i + prefix.len()..]))
            .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
            .collect()
    }
    pub fn has(&self, text: &str) -> bool {
        self.out.contains(text)
    }
}

impl std::fmt::Display for Transcript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.out)
    }
}

/// Run the driver for `service` and `user` with `steps` (one per line).
pub fn drive(service: &Service, user: &str, steps: impl Into<String>) -> Transcript {
    let steps = steps.into();
    let mut c = Command::new(driver());
    c.args([&service.name, user])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
    let o = run(c, steps.as_bytes());
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "pam-driver failed:\n{out}");
    Transcript { out }
}

/// Run the driver for `service` as `user` itself (not root): what a screen locker does, whose
/// PAM stack runs in the user's own process.
pub fn drive_as_user(
    service: &Service,
    user: &ThrowawayUser,
    steps: impl Into<String>,
) -> Transcript {
    use std::os::unix::process::CommandExt;
    let steps = steps.into();
    let mut c = Command::new(driver());
    c.args([&service.name, &user.name])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", &user.home)
        .uid(user.uid)
        .gid(user.gid);
    let o = run(c, steps.as_bytes());
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "pam-driver failed:\n{out}");
    Transcript { out }
}

/// Steps of a login: environment for the commands (small Argon2id for `keyringrs` too), auth,
/// open.
pub fn login(password: &str) -> String {
    Steps::login(password).into()
}

/// A `run` step printing `value=<secret>` of (service, username) and exiting with get's code.
pub fn get_step(service: &str, username: &str) -> String {
    format!("run v=$(./keyringrs get {service} {username}); rc=$?; echo \"value=$v\"; exit $rc\n")
}

/// The store's key id, `keyringrs:<id>`, seen from inside a session (by `keyringrs status`).
pub const KEY_ID: &str = "keyringrs:$(./keyringrs status | sed -n 's/^id: *//p')";

pub fn default_store(user: &ThrowawayUser) -> PathBuf {
    user.home.join(".local/share/keyringrs")
}

/// Syslog lines received on /dev/log while the returned guard lives (shared by the tests of
/// this binary; the socket is removed when the last guard goes). None: a system logger owns
/// /dev/log, so log assertions are skipped (said loudly).
pub fn syslog() -> Option<Arc<Syslog>> {
    static SHARED: Mutex<std::sync::Weak<Syslog>> = Mutex::new(std::sync::Weak::new());
    let mut shared = SHARED.lock().unwrap();
    if let Some(s) = shared.upgrade() {
        return Some(s);
    }
    let path = Path::new("/dev/log");
    if path.exists() {
        eprintln!("NOTE: /dev/log belongs to a system logger here; log assertions skipped");
        return None;
    }
    let sock = UnixDatagram::bind(path).expect("bind /dev/log");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let reader = sock.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = reader.recv(&mut buf) {
            sink.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    let s = Arc::new(Syslog { lines, sock });
    *shared = Arc::downgrade(&s);
    Some(s)
}

#[derive(Debug)]
pub struct Syslog {
    lines: Arc<Mutex<Vec<String>>>,
    sock: UnixDatagram,
}

impl Syslog {
    /// The lines pam_keyringrs logged for `service`.
    pub fn lines(&self, service: &Service) -> Vec<String> {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let tag = format!("pam_keyringrs({}:", service.name);
        let all = self.lines.lock().unwrap();
        all.iter().filter(|l| l.contains(&tag)).cloned().collect()
    }
}

impl Drop for Syslog {
    fn drop(&mut self) {
        let _ = std::fs::remove_file("/dev/log");
        let _ = self.sock.shutdown(std::net::Shutdown::Both);
    }
}

pub fn assert_logged(log: &Option<Arc<Syslog>>, service: &Service, text: &str) {
    if let Some(log) = log {
        let lines = log.lines(service);
        assert!(
            lines.iter().any(|l| l.contains(text)),
            "no log line with {text:?}; got {lines:#?}"
        );
    }
}

/// One login held open by a pam-driver process that takes its steps one at a time, so several
/// logins of one user can overlap in any order. Killed (with its whole session) on drop.
#[derive(Debug)]
pub struct Live {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: std::io::BufReader<std::process::ChildStdout>,
    pub pid: i32,
}

impl Live {
    pub fn start(service: &Service, user: &str) -> Live {
        let mut child = Command::new(driver())
            .args([&service.name, user])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start pam-driver");
        let stdin = child.stdin.take().unwrap();
        let out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut live = Live {
            pid: child.id() as i32,
            child,
            stdin,
            out,
        };
        live.send("pid");
        live
    }

    /// Run one step (or several lines) and return everything it printed.
    pub fn step(&mut self, line: &str) -> Transcript {
        self.send(&format!("{line}\npid"))
    }

    /// Send lines ending with a `pid` step; read up to its `@@ pid` line.
    pub fn send(&mut self, lines: &str) -> Transcript {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{lines}").expect("write to pam-driver");
        self.stdin.flush().unwrap();
        let mut out = String::new();
        loop {
            let mut l = String::new();
            let n = self.out.read_line(&mut l).expect("read pam-driver");
            assert!(n > 0, "pam-driver ended after:\n{out}");
            if l.starts_with("@@ pid ") {
                return Transcript { out };
            }
            out.push_str(&l);
        }
    }

    /// A password login: test KDF for the CLI, then auth and open. `graphical`: the display
    /// manager's PAM environment says so (XDG_SESSION_TYPE=x11), as gdm, sddm and lightdm do.
    pub fn login(&mut self, password: &str, graphical: bool) -> Transcript {
        let mut steps = Steps::new().kdf().auth(password);
        if graphical {
            steps = steps.step("putenv XDG_SESSION_TYPE=x11");
        }
        let t = self.step(String::from(steps.open()).trim_end());
        assert_eq!(t.codes("auth"), [0], "{t}");
        assert_eq!(t.codes("open"), [0], "{t}");
        t
    }

    /// `keyringrs get S U` inside this login: (exit code, value).
    pub fn get(&mut self, service: &str, username: &str) -> (i32, String) {
        let t = self.step(get_step(service, username).trim_end());
        let value = t
            .out
            .lines()
            .find_map(|l| l.strip_prefix("value="))
            .unwrap_or("")
            .to_owned();
        (*t.codes("run").last().expect("run code"), value)
    }

    /// `keyringrs set S U` of `value` inside this login; it must succeed.
    pub fn set(&mut self, service: &str, username: &str, value: &str) {
        let t = self.step(&format!(
            "run printf {value} | ./keyringrs set {service} {username}"
        ));
        assert_eq!(t.codes("run"), [0], "{t}");
    }

    /// What `keyringrs status` says inside this login.
    pub fn status(&mut self) -> Transcript {
        self.step("run ./keyringrs status")
    }

    pub fn close(&mut self) {
        let t = self.step("close");
        assert_eq!(t.codes("close"), [0], "{t}");
    }

    /// SIGKILL the login's whole session (the driver and everything it started), as a crashed
    /// display manager or a `kill -9` of sshd's session process leaves it: no close runs.
    pub fn kill(mut self) {
        // SAFETY-free: kill(1) on the process group (the driver did setsid).
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .status();
        let _ = self.child.wait();
    }
}

impl Live {
    /// [`Live::kill`] without reaping the driver: it stays a zombie (its pid still taken, as
    /// under a parent that has not waited yet) until this value is dropped.
    pub fn kill_unreaped(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pid)])
            .status();
        // Dead but not waited for: the state in /proc/PID/stat turns to Z.
        let stat = format!("/proc/{}/stat", self.pid);
        for _ in 0..200 {
            let zombie = std::fs::read_to_string(&stat).ok().and_then(|t| {
                t.rsplit_once(')')
                    .map(|(_, r)| r.trim_start().starts_with('Z'))
            });
            if zombie == Some(true) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("pam-driver {} did not become a zombie", self.pid);
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's `systemd-user` session stack, as the user manager (`systemd --user`) opens it: a
/// session keyring of its own (`pam_keyinit force revoke`), no pam_keyringrs line. Desktop apps,
/// terminals and the D-Bus-activated Secret Service run here, not in the display manager's login.
pub fn user_manager_service(tag: &str) -> Service {
    Service::new(
        tag,
        "session  optional  pam_keyinit.so force revoke\n\
         session  required  pam_unix.so\n",
    )
}

/// The user manager stand-in, opened (no password: systemd starts it for the user).
pub fn user_manager(service: &Service, user: &ThrowawayUser) -> Live {
    let mut m = Live::start(service, &user.name);
    let t = m.step(String::from(Steps::new().kdf().open()).trim_end());
    assert_eq!(t.codes("open"), [0], "{t}");
    m
}

/// A fresh session keyring of the user after every login is gone: locked (exit 3).
pub fn fresh_user_session_get(user: &ThrowawayUser) -> i32 {
    let mut c = user.command("keyctl");
    c.args(["session", "-"])
        .arg(user.home.join("keyringrs"))
        .args(["get", "S", "U"]);
    code(&run(c, b""))
}

/// The repository's copy of a file (etc/pam.d/NAME, etc/pam-configs/NAME, ...).
pub fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A shipped stack (etc/pam.d/NAME of this repository) as a `Service` text: only the module's
/// name replaced by MODULE (the built module) with the test options appended.
pub fn shipped_stack(name: &str) -> String {
    let text = repo_file(&format!("etc/pam.d/{name}"));
    assert!(text.contains("pam_keyringrs.so"), "etc/pam.d/{name}");
    text.replace("pam_keyringrs.so", &format!("MODULE {TEST_OPTIONS}"))
}
