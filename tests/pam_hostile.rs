//! Hostile files and surroundings at login, through pam_keyringrs.so and real libpam
//! (docs/THREAT-MODEL.md "planted files"): a store path symlinked to root's files, a symlink
//! swapped in while logins run, HOME and store variables in the environment, a relative home in
//! /etc/passwd, a store lock held by a user process, a full key quota. Whatever is planted, the
//! module (acting as the user) writes nowhere else and the login goes on. The harness is
//! keyringrs_tests::pam.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

#[test]
fn a_store_dir_symlinked_to_a_root_file_is_refused_and_the_target_untouched() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let l = Login::standard("symlink", "symlink-pw");
    let user = &l.user;
    let target = TempDir::new("pam-symlink-target");
    let file = target.path().join("root-file");
    std::fs::write(&file, b"root's bytes\n").unwrap();
    let share = user.home.join(".local/share");
    std::fs::create_dir_all(&share).unwrap();
    chown_tree(&user.home.join(".local"), user.uid, user.gid);
    std::os::unix::fs::symlink(&file, share.join("keyringrs")).unwrap();
    l.session(Steps::new());
    assert_eq!(std::fs::read(&file).unwrap(), b"root's bytes\n");
    assert_eq!(files_under(target.path()), vec![file.clone()]);
    assert_logged(&log, &l.svc, "symbolic link");

    // A parent directory symlinked to a directory only root may write: the store would be
    // created there if the module wrote as root; as the user it cannot.
    let rootdir = target.path().join("root-dir");
    std::fs::create_dir(&rootdir).unwrap();
    std::fs::set_permissions(&rootdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::remove_file(share.join("keyringrs")).unwrap();
    std::fs::remove_dir(&share).unwrap();
    std::os::unix::fs::symlink(&rootdir, &share).unwrap();
    l.session(Steps::new());
    assert_eq!(
        std::fs::read_dir(&rootdir).unwrap().count(),
        0,
        "written as root"
    );
    let root_owned: Vec<_> = files_under(&user.home)
        .into_iter()
        .filter(|f| {
            std::fs::symlink_metadata(f)
                .map(|m| m.uid() == 0)
                .unwrap_or(false)
        })
        // The test's own: the copy of keyringrs and the planted symlink.
        .filter(|f| f != &user.home.join("keyringrs") && f != &share)
        .collect();
    assert!(root_owned.is_empty(), "created as root: {root_owned:?}");
    assert_logged(&log, &l.svc, "Permission denied");
}

/// docs/THREAT-MODEL.md "planted files": while logins create and open the store, another
/// process keeps swapping the store's parent directory for a symlink to a directory only root may
/// write. Whatever the interleaving, the module (acting as the user) never writes there.
#[test]
fn a_symlink_swapped_in_during_logins_never_makes_the_module_write_outside() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("race", "race-pw");
    let target = TempDir::new("pam-race-target");
    let rootdir = target.path().join("root-dir");
    std::fs::create_dir(&rootdir).unwrap();
    std::fs::set_permissions(&rootdir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let local = l.user.home.join(".local");
    std::fs::create_dir_all(&local).unwrap();
    chown_tree(&local, l.user.uid, l.user.gid);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let racer = {
        let (stop, local, rootdir) = (Arc::clone(&stop), local.clone(), rootdir.clone());
        std::thread::spawn(move || {
            let share = local.join("share");
            let mut swaps = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // Move whatever is there away (the module's directory or our link), plant the
                // link, give the module a moment to meet it.
                let _ = std::fs::rename(&share, local.join(format!("moved-{swaps}")));
                let _ = std::os::unix::fs::symlink(&rootdir, &share);
                std::thread::sleep(std::time::Duration::from_micros(200));
                swaps += 1;
            }
            swaps
        })
    };
    let t = l.cycles(30);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = racer.join().unwrap();
    assert_eq!(t.codes("open"), vec![0; 30], "{t}");
    assert!(swaps > 30, "the racer swapped only {swaps} times");
    assert_eq!(
        std::fs::read_dir(&rootdir).unwrap().count(),
        0,
        "written as root"
    );
}

#[test]
fn home_and_store_variables_in_the_environment_are_ignored() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("env", "env-pw");
    let decoy = TempDir::new("pam-env-decoy");
    let planted = ["HOME", "KEYRINGRS_STORE", "XDG_DATA_HOME"]
        .iter()
        .fold(Steps::new(), |s, v| {
            s.step(&format!("putenv {v}={}/{v}", decoy.path().display()))
        });
    let t = l.drive(planted.then(l.steps()).close());
    assert_eq!(t.codes("open"), [0], "{t}");
    assert!(default_store(&l.user).join("header").exists(), "{t}");
    assert!(files_under(decoy.path()).is_empty());
}

/// A user whose passwd entry names a relative home (a broken or hand-edited /etc/passwd; usermod
/// refuses it, so the line is edited here under lckpwdf) still logs in; the module creates no
/// store anywhere and says why.
#[test]
fn a_user_with_a_relative_home_logs_in_and_no_store_is_created() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    let l = Login::standard("relhome", "relhome-pw");
    // Dropped before the user: userdel must see the absolute home again.
    let _home = PasswdHome::set(&l.user, "relative/home");
    l.session(Steps::new().get("S", "U"));
    // The driver runs in the test's directory; its commands fall back to / (no home).
    let cwd = std::env::current_dir().unwrap();
    for base in [cwd.as_path(), Path::new("/"), l.user.home.as_path()] {
        assert!(!base.join("relative").exists(), "{}", base.display());
    }
    assert!(!default_store(&l.user).exists());
    assert!(!l.user.home.join(".local").exists());
    assert_logged(&log, &l.svc, "no absolute home directory");
}

/// The home field of a user's /etc/passwd line, set to something useradd/usermod refuse and put
/// back on drop.
struct PasswdHome {
    name: String,
    home: String,
}

impl PasswdHome {
    fn set(user: &ThrowawayUser, home: &str) -> PasswdHome {
        edit_passwd_home(&user.name, home);
        PasswdHome {
            name: user.name.clone(),
            home: user.home.display().to_string(),
        }
    }
}

impl Drop for PasswdHome {
    fn drop(&mut self) {
        edit_passwd_home(&self.name, &self.home);
    }
}

/// Rewrite the home field of `name`'s /etc/passwd line, holding the lock useradd, userdel and
/// chpasswd take (lckpwdf), through a new file renamed over the old one.
fn edit_passwd_home(name: &str, home: &str) {
    #[allow(unsafe_code)]
    mod shadow {
        extern "C" {
            pub fn lckpwdf() -> libc::c_int;
            pub fn ulckpwdf() -> libc::c_int;
        }
    }
    #[allow(unsafe_code)]
    // SAFETY: glibc's lckpwdf takes no arguments; it waits up to 15 s for /etc/.pwd.lock.
    let locked = unsafe { shadow::lckpwdf() } == 0;
    assert!(locked, "lckpwdf: {}", std::io::Error::last_os_error());
    let text = std::fs::read_to_string("/etc/passwd").unwrap();
    let mut found = false;
    let lines: Vec<String> = text
        .lines()
        .map(|l| {
            let mut f: Vec<&str> = l.split(':').collect();
            if f.len() == 7 && f[0] == name {
                found = true;
                f[5] = home;
                f.join(":")
            } else {
                l.to_owned()
            }
        })
        .collect();
    let tmp = Path::new("/etc/passwd.krt-tmp");
    let written = std::fs::write(tmp, lines.join("\n") + "\n")
        .and_then(|()| std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(0o644)))
        .and_then(|()| std::fs::rename(tmp, "/etc/passwd"));
    #[allow(unsafe_code)]
    // SAFETY: releases the lock taken above.
    unsafe {
        shadow::ulckpwdf();
    }
    written.expect("rewrite /etc/passwd");
    assert!(found, "{name} not in /etc/passwd");
}

/// A process of `user` holding `dir` locked (`flock -x`) for a minute, given time to take it.
fn hold_the_lock(user: &ThrowawayUser, dir: &Path) -> std::process::Child {
    let mut holder = user.command("flock");
    holder
        .args(["-x"])
        .arg(dir)
        .args(["sleep", "60"])
        .stdin(std::process::Stdio::null());
    let holder = holder.spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    holder
}

/// A user process holding the store's lock (flock -x on the store directory) cannot hang a
/// login: session open gives up on what needs the lock within its bound, and the login goes on.
#[test]
fn a_held_store_lock_never_hangs_a_login() {
    require_root!("creates users and /etc/pam.d services");
    let l = Login::standard("held", "held-pw");
    // The first login creates the store.
    l.session(Steps::new());
    let mut holder = hold_the_lock(&l.user, &default_store(&l.user));
    let started = std::time::Instant::now();
    // kdf_memory=512 (above the store's 256) makes unlock want a KDF upgrade, which needs the lock.
    let upgrade = Service::standard("held-up", "kdf_memory=512");
    let t = drive(
        &upgrade,
        &l.user.name,
        l.steps().get("none", "x").close().end(),
    );
    let took = started.elapsed();
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("run"), [4], "unlocked, no such entry: {t}");
    // A first login whose store directory someone holds locked: init gives up, login goes on.
    let l2 = Login::standard("held2", "held2-pw");
    let dir2 = default_store(&l2.user);
    let mut mk = l2.user.command("mkdir");
    mk.arg("-p").arg(&dir2);
    assert_exit(&run(mk, b""), 0);
    let mut holder2 = hold_the_lock(&l2.user, &dir2);
    let started2 = std::time::Instant::now();
    let t2 = l2.drive(l2.steps().close());
    let took2 = started2.elapsed();
    for h in [&mut holder, &mut holder2] {
        let _ = h.kill();
        let _ = h.wait();
    }
    assert_eq!(t2.codes("open"), [0], "{t2}");
    assert!(
        took < std::time::Duration::from_secs(10) && took2 < std::time::Duration::from_secs(10),
        "logins took {took:?} and {took2:?} with the store lock held"
    );
    assert!(!dir2.join("header").exists(), "init gave up while busy");
}

#[test]
fn a_full_key_quota_leaves_the_login_working() {
    require_root!("creates users and /etc/pam.d services");
    let log = syslog();
    // Between pam_keyinit and the module, fill the user's key quota in the new session keyring.
    let filler = TempDir::new("pam-quota");
    let script = filler.path().join("fill");
    std::fs::write(
        &script,
        "#!/bin/sh\nexec setpriv --reuid=\"$PAM_USER\" --regid=\"$(id -g \"$PAM_USER\")\" \
         --clear-groups sh -c 'i=0; while keyctl add user filler$i x @s >/dev/null 2>&1; do \
         i=$((i+1)); done'\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let svc = Service::new(
        "quota",
        &format!(
            "auth     requisite pam_unix.so\n\
             auth     optional  MODULE {TEST_OPTIONS}\n\
             account  required  pam_unix.so\n\
             session  optional  pam_keyinit.so force revoke\n\
             session  required  pam_unix.so\n\
             session  optional  pam_exec.so {}\n\
             session  optional  MODULE {TEST_OPTIONS}\n",
            script.display()
        ),
    );
    let l = Login::new("quota", "quota-pw", svc);
    let t = l.session(Steps::new().get("s", "u"));
    assert_eq!(t.codes("run"), [3], "{t}");
    assert_logged(&log, &l.svc, "quota exceeded");
}
