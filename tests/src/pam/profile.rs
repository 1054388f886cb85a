//! The machine's Debian common-* PAM stacks in the PAM tests: `CommonStacks`, the lock that keeps
//! tests logging in through them apart from a test changing them, and `PamProfile`, this
//! repository's pam-auth-update profile enabled for a test and every byte put back afterwards.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{module, repo_file, TEST_OPTIONS};

/// A lock on the machine's Debian common-* stacks (/etc/pam.d/common-*), across threads and
/// processes (flock on a file of its own): shared while a test logs in through a stack that
/// includes them, exclusive while a test changes them (`PamProfile`).
#[derive(Debug)]
pub struct CommonStacks {
    _file: std::fs::File,
}

impl CommonStacks {
    const LOCK: &'static str = "/run/lock/keyringrs-tests-common-stacks.lock";

    /// The common-* stacks as Debian has them, for as long as this lives.
    pub fn shared() -> CommonStacks {
        CommonStacks::lock(libc::LOCK_SH)
    }

    fn exclusive() -> CommonStacks {
        CommonStacks::lock(libc::LOCK_EX)
    }

    fn lock(how: libc::c_int) -> CommonStacks {
        use std::os::fd::AsRawFd;
        let _ = std::fs::create_dir_all("/run/lock");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(Self::LOCK)
            .expect("open the common stacks' lock file");
        // flock locks belong to the open file description: two guards of one process exclude
        // each other as guards of two processes do.
        #[allow(unsafe_code)]
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(f.as_raw_fd(), how) };
        assert_eq!(rc, 0, "flock: {}", std::io::Error::last_os_error());
        CommonStacks { _file: f }
    }
}

/// What `pam-auth-update --enable` writes outside /usr/share/pam-configs, snapshotted to be put
/// back byte for byte: the common-* stacks and pam-auth-update's state in /var/lib/pam.
const PROFILE_STATE: [&str; 2] = ["/etc/pam.d", "/var/lib/pam"];

/// Debconf's database, where pam-auth-update records the chosen profiles (libpam-runtime/*).
const DEBCONF_CONFIG: &str = "/var/cache/debconf/config.dat";

/// This repository's pam-auth-update profile (etc/pam-configs/keyringrs, the module's path
/// replaced by the built module's with the test options), installed as
/// /usr/share/pam-configs/keyringrs-test-PID and enabled with `pam-auth-update --enable`, as
/// docs/PAM.md tells administrators. On drop (also when the test fails): `--disable`, the profile
/// removed, and the common-* files, /var/lib/pam and debconf's libpam-runtime records restored
/// exactly as they were. Holds `CommonStacks` exclusively while it lives.
#[derive(Debug)]
pub struct PamProfile {
    pub name: String,
    files: Vec<(PathBuf, Vec<u8>, u32)>,
    debconf: Option<String>,
    _lock: CommonStacks,
}

impl PamProfile {
    pub fn enable() -> PamProfile {
        use std::os::unix::fs::MetadataExt;
        let lock = CommonStacks::exclusive();
        let name = format!("keyringrs-test-{}", std::process::id());
        let mut files = Vec::new();
        for (dir, prefix) in [(PROFILE_STATE[0], "common-"), (PROFILE_STATE[1], "")] {
            for e in std::fs::read_dir(dir).expect("read_dir").flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_file() && e.file_name().to_string_lossy().starts_with(prefix) {
                    files.push((p.clone(), std::fs::read(&p).unwrap(), meta.mode() & 0o7777));
                }
            }
        }
        let mut profile = PamProfile {
            name,
            files,
            debconf: std::fs::read_to_string(DEBCONF_CONFIG).ok(),
            _lock: lock,
        };
        let text = repo_file("etc/pam-configs/keyringrs").replace(
            "pam_keyringrs.so",
            &format!("{} {TEST_OPTIONS}", module().display()),
        );
        std::fs::write(profile.path(), text).expect("install the profile");
        profile.pam_auth_update("--enable");
        profile
    }

    fn path(&self) -> PathBuf {
        Path::new("/usr/share/pam-configs").join(&self.name)
    }

    fn pam_auth_update(&mut self, how: &str) {
        let o = Command::new("pam-auth-update")
            .args([how, &self.name])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .expect("run pam-auth-update (libpam-runtime)");
        assert!(
            o.status.success(),
            "pam-auth-update {how} {}: {}{}",
            self.name,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

impl Drop for PamProfile {
    fn drop(&mut self) {
        let _ = Command::new("pam-auth-update")
            .args(["--disable", &self.name])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output();
        let _ = std::fs::remove_file(self.path());
        // Whatever pam-auth-update left (a new file, a changed one), put back what was there.
        for (dir, prefix) in [(PROFILE_STATE[0], "common-"), (PROFILE_STATE[1], "")] {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if e.file_name().to_string_lossy().starts_with(prefix)
                    && !self.files.iter().any(|(f, _, _)| f == &p)
                {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        for (path, bytes, mode) in &self.files {
            if std::fs::read(path).ok().as_deref() != Some(bytes) {
                let _ = std::fs::write(path, bytes);
            }
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode));
        }
        if let (Some(before), Ok(now)) = (&self.debconf, std::fs::read_to_string(DEBCONF_CONFIG)) {
            let restored = restore_debconf_records(before, &now, "libpam-runtime/");
            if restored != now {
                let tmp = format!("{DEBCONF_CONFIG}.krt-{}", std::process::id());
                if std::fs::write(&tmp, &restored).is_ok() {
                    let _ = std::fs::rename(&tmp, DEBCONF_CONFIG);
                }
            }
        }
    }
}

/// `now` (a debconf config.dat: records separated by blank lines) with every record whose Name
/// starts with `prefix` as it was in `before`, and only the other records as they are now (so a
/// concurrent apt run keeps its answers).
fn restore_debconf_records(before: &str, now: &str, prefix: &str) -> String {
    let name = |r: &str| -> Option<String> {
        r.lines()
            .find_map(|l| l.strip_prefix("Name: "))
            .map(str::to_owned)
    };
    let ours = |r: &str| name(r).is_some_and(|n| n.starts_with(prefix));
    let old: Vec<&str> = before.split("\n\n").collect();
    let mut out: Vec<&str> = Vec::new();
    for r in now.split("\n\n") {
        if ours(r) {
            if let Some(o) = old.iter().find(|o| name(o) == name(r)) {
                out.push(o);
            }
        } else {
            out.push(r);
        }
    }
    // Records of ours that pam-auth-update removed: back where they were (after their
    // predecessor in `before`).
    for (i, o) in old.iter().enumerate() {
        if ours(o) && !out.iter().any(|r| name(r) == name(o)) {
            let at = i
                .checked_sub(1)
                .and_then(|j| out.iter().position(|r| *r == old[j]))
                .map_or(0, |k| k + 1);
            out.insert(at, o);
        }
    }
    out.join("\n\n")
}
