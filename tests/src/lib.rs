//! Harness for the end-to-end tests: a fresh session keyring per test, throwaway stores, the
//! built `keyringrs` binary, and loud skips for tests that need root.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use libkeyring::{KdfParams, UnlockOptions};

pub mod fixtures;
pub mod gnome;
pub mod pam;
pub mod sshd;

/// Small Argon2id parameters for tests, passed through the same options users have
/// (`KEYRINGRS_KDF_MEMORY` / `KEYRINGRS_KDF_TIME`, `UnlockOptions::kdf`).
pub const TEST_KDF_MEMORY: u32 = 256;
pub const TEST_KDF_TIME: u32 = 1;

pub fn test_kdf() -> KdfParams {
    KdfParams::new(TEST_KDF_MEMORY, TEST_KDF_TIME, 1).expect("test KDF params in bounds")
}

pub fn test_opts() -> UnlockOptions {
    UnlockOptions {
        kdf: test_kdf(),
        ..Default::default()
    }
}

/// Give the calling test thread (and every process it starts) a new anonymous session keyring,
/// like `keyctl session -`: tests never see each other's keys or the caller's.
pub fn fresh_session() {
    libkeyring::keyring::join_session(None).expect("join a new session keyring");
}

pub fn is_root() -> bool {
    libkeyring::sys::euid() == 0
}

/// Skip (loudly, with the reason) unless running as root.
#[macro_export]
macro_rules! require_root {
    ($why:expr) => {
        if !$crate::is_root() {
            eprintln!("SKIPPED (not root): {}", $why);
            return;
        }
    };
}

/// A unique temporary directory, removed on drop (also when the test panics).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "keyringrs-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir(&p).expect("create temp dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// The store path inside this directory.
    pub fn store(&self) -> PathBuf {
        self.0.join("store")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// target/<profile>/ of the running test binary (tests live in target/<profile>/deps/).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The built `keyringrs` binary (the Makefile builds the workspace before testing).
pub fn keyringrs_bin() -> PathBuf {
    let p = target_dir().join("keyringrs");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --workspace` (or `make test`) first",
        p.display()
    );
    p
}

/// `keyringrs --store <store> args...` with test KDF parameters and a clean environment.
pub fn cli(store: &Path) -> Command {
    let mut c = Command::new(keyringrs_bin());
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
        .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
        .arg("--store")
        .arg(store);
    c
}

/// Compile the C file `tests/<src>` with gcc into `out` (the fault library, the PAM driver), with
/// extra arguments such as `-shared` or `-lpam`.
pub fn build_c(src: &str, out: &Path, args: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(src);
    let st = Command::new("gcc")
        .arg("-o")
        .arg(out)
        .arg(&src)
        .args(args)
        .status()
        .expect("run gcc (installed by make test)");
    assert!(st.success(), "gcc {} failed", src.display());
    out.to_path_buf()
}

/// Run a command with `stdin` bytes; collect its output.
pub fn run(mut c: Command, stdin: &[u8]) -> Output {
    use std::io::Write;
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A binary just copied for another uid can be briefly "busy" (ETXTBSY) while a concurrent
    // test's fork still holds the copy's write descriptor: retry, as the kernel requires.
    let mut tries = 0;
    let mut child = loop {
        match c.spawn() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 100 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            r => break r.expect("spawn"),
        }
    };
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("stdin writer");
    out
}

/// Run `keyringrs --store <store> <args>` with `stdin`.
pub fn keyringrs(store: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = cli(store);
    c.args(args);
    run(c, stdin)
}

/// Exit code of an output (panics if killed by a signal).
pub fn code(o: &Output) -> i32 {
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {o:?}"))
}

/// Assert `o` exited with `want` and (if failing) printed exactly one `keyringrs: ` line.
pub fn assert_exit(o: &Output, want: i32) {
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(o), want, "stderr: {stderr}");
    if want != 0 {
        let lines: Vec<_> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected: {stderr:?}");
        assert!(lines[0].starts_with("keyringrs: "), "{stderr:?}");
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if e.file_type().expect("file type").is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Recursively copy a store directory (for test vectors and copies owned by another uid).
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let dst = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_tree(&e.path(), &dst);
        } else {
            std::fs::copy(e.path(), &dst).expect("copy");
        }
    }
}

/// chown -R
pub fn chown_tree(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::lchown(p, Some(uid), Some(gid)).expect("chown");
    if p.is_dir() {
        for e in std::fs::read_dir(p).expect("read_dir").flatten() {
            chown_tree(&e.path(), uid, gid);
        }
    }
}

/// A throwaway local user (useradd), deleted with its home on drop — also when the test fails.
#[derive(Debug)]
pub struct ThrowawayUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

impl ThrowawayUser {
    /// Needs root. `tag` makes the name recognisable (names are `krt<tag><pid><n>`, ≤ 32 chars).
    pub fn new(tag: &str) -> ThrowawayUser {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "krt{tag}{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let home = PathBuf::from("/tmp").join(format!("{name}-home"));
        let st = Command::new("useradd")
            .args(["-m", "-s", "/bin/sh", "-d"])
            .arg(&home)
            .arg(&name)
            .status()
            .expect("run useradd");
        assert!(st.success(), "useradd {name} failed");
        // From here on Drop removes the user, even if a later step panics.
        let mut user = ThrowawayUser {
            name,
            uid: 0,
            gid: 0,
            home,
        };
        let id = |flag: &str| -> u32 {
            let o = Command::new("id")
                .arg(flag)
                .arg(&user.name)
                .output()
                .expect("id");
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse()
                .expect("numeric id")
        };
        user.uid = id("-u");
        user.gid = id("-g");
        // useradd reuses the uids of deleted users, and the kernel reaps the keys of their last
        // processes asynchronously: start from a uid whose key usage has settled.
        wait_for_key_usage_at_most(user.uid, 2);
        user
    }

    /// A command run as this user (uid, gid, no supplementary groups, HOME set, clean env).
    /// It inherits the calling thread's session keyring.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.home)
            .env("USER", &self.name)
            .current_dir(&self.home)
            .uid(self.uid)
            .gid(self.gid);
        c
    }

    /// `keyringrs` (a copy this user can execute) with the test KDF parameters, run as this user.
    pub fn keyringrs(&self) -> Command {
        let bin = self.home.join("keyringrs");
        if !bin.exists() {
            std::fs::copy(keyringrs_bin(), &bin).expect("copy keyringrs");
            // A concurrent test's fork may briefly hold the copy's write descriptor, and then
            // executing it fails with ETXTBSY. `run` retries that; once one run of the copy has
            // worked, later ones (also through keyctl or sh, which do not retry) can too.
            let mut probe = Command::new(&bin);
            probe.arg("--version");
            let o = run(probe, b"");
            assert!(o.status.success(), "the copy of keyringrs does not run");
        }
        let mut c = self.command(bin);
        c.env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
            .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string());
        c
    }

    /// Create a store at `store` as this user, in a session keyring of the user's own (`keyctl
    /// session -`: the CLI refuses to unlock where the unlock would not outlive it). The key dies
    /// with that session: the store is left locked.
    pub fn init_store(&self, store: &Path) {
        let bin = self.home.join("keyringrs");
        let _ = self.keyringrs();
        let mut c = self.command("keyctl");
        c.env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
            .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
            .args(["session", "-"])
            .arg(&bin)
            .arg("--store")
            .arg(store)
            .args(["init", "--password-stdin"]);
        let o = run(c, b"pw\n");
        assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    }

    /// (keys, bytes) this user is charged for, from /proc/key-users.
    pub fn key_usage(&self) -> (u64, u64) {
        key_usage(self.uid)
    }
}

impl Drop for ThrowawayUser {
    fn drop(&mut self) {
        // Processes of the user may still hold keys; userdel -r removes the home directory.
        let _ = Command::new("pkill")
            .args(["-KILL", "-u", &self.name])
            .status();
        // The uid's user keyring `@u` outlives the user while the kernel keeps its user_struct,
        // and the next throwaway user may get the same uid: empty it.
        let _ = self
            .command("keyctl")
            .args(["clear", "@u"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

/// Wait (up to 10 s) until `uid` is charged for at most `keys` kernel keys.
pub fn wait_for_key_usage_at_most(uid: u32, keys: u64) {
    for _ in 0..200 {
        if key_usage(uid).0 <= keys {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    eprintln!(
        "warning: uid {uid} still holds {:?} (keys, bytes) of kernel key quota",
        key_usage(uid)
    );
}

/// (qnkeys, qnbytes) of `uid` in /proc/key-users (0, 0 if the uid has no keys).
pub fn key_usage(uid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/key-users").expect("read /proc/key-users");
    for line in text.lines() {
        let mut f = line.split_whitespace();
        if f.next()
            .and_then(|u| u.trim_end_matches(':').parse::<u32>().ok())
            == Some(uid)
        {
            let fields: Vec<&str> = f.collect();
            // usage  nkeys/nikeys  qnkeys/maxkeys  qnbytes/maxbytes
            let q = |s: &str| {
                s.split('/')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0)
            };
            return (q(fields[2]), q(fields[3]));
        }
    }
    (0, 0)
}

/// Sleep until the clock's Unix second is past `t` (a source item's time): a store time set at
/// the write instead of carried over then differs from it.
pub fn wait_past(t: i64) {
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs() as i64;
        if now > t {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
