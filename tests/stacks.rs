//! Whole PAM stacks through real libpam (tests/pam/pam-driver.c), as administrators get them:
//! this repository's etc/pam.d/{login,sshd,xdm} (docs/PAM.md "By hand"), its pam-auth-update
//! profile applied to the machine's Debian common-* stacks (docs/PAM.md "Debian:
//! pam-auth-update"), and Debian 12's own display-manager stacks (gdm3, sddm, lightdm, greetd,
//! xdm, from the packages' .debs) on top of that profile. The machine's /etc/pam.d is changed
//! only by `PamProfile`, which puts every byte back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

/// One text login through `service`: create (or unlock) the store, use it, log out; then the
/// same session and a fresh session keyring of the user find it locked.
fn text_login_unlocks_and_logout_locks(service: &Service, user: &ThrowawayUser, password: &str) {
    let t = drive(
        service,
        &user.name,
        Steps::login(password)
            .set("S", "U", "v")
            .get("S", "U")
            .close()
            .get("S", "U")
            .run("keyctl session - ./keyringrs get S U")
            .end(),
    );
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert_eq!(t.codes("open"), [0], "{t}");
    assert_eq!(t.codes("close"), [0], "{t}");
    assert!(t.has("value=v"), "{t}");
    assert_eq!(t.codes("run"), [0, 0, 3, 3], "{t}");
    assert!(default_store(user).join("header").exists(), "{t}");
    assert_eq!(fresh_user_session_get(user), 3);
}

/// A graphical login through `service` (made graphical by `how`: driver steps before auth, or
/// the XDG_SESSION_TYPE the display manager puts in the PAM environment): the user-manager
/// session stand-in reads the secret while the login is open, and gets Locked after its close.
fn graphical_login_unlocks_for_the_user_manager(
    service: &Service,
    user: &ThrowawayUser,
    password: &str,
    how: Graphical,
) {
    let um = user_manager_service("stacks-um");
    let mut m = user_manager(&um, user);
    let mut g = Live::start(service, &user.name);
    if how == Graphical::Display {
        let t = g.step("tty :0");
        assert_eq!(t.codes("tty"), [0], "{t}");
    }
    g.login(password, how == Graphical::SessionType);
    g.set("S", "U", "desk");
    assert_eq!(m.get("S", "U"), (0, "desk".into()));
    let t = m.status();
    assert!(t.has("held by: graphical login"), "{t}");
    g.close();
    assert_eq!(m.get("S", "U").0, 3, "the graphical logout must lock it");
    assert_eq!(fresh_user_session_get(user), 3);
}

/// How a display manager's login tells that it is graphical.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Graphical {
    /// XDG_SESSION_TYPE=x11 in the PAM environment (gdm, sddm, greetd).
    SessionType,
    /// PAM_TTY is the X display ":0" (xdm, lightdm).
    Display,
}

// ---- This repository's etc/pam.d files, by hand ----

/// A login through this repository's etc/pam.d/NAME (the machine's common-* stacks as Debian
/// has them): a text login, or a graphical one told by `how`.
fn shipped_stack_login(name: &str, how: Option<Graphical>) {
    let _common = CommonStacks::shared();
    let password = format!("stacks-{name}-pw");
    let user = login_user(&format!("st{name}"), &password);
    let svc = Service::new(&format!("st-{name}"), &shipped_stack(name));
    match how {
        None => text_login_unlocks_and_logout_locks(&svc, &user, &password),
        Some(how) => graphical_login_unlocks_for_the_user_manager(&svc, &user, &password, how),
    }
}

#[test]
fn the_shipped_login_stack_unlocks_and_its_logout_locks() {
    require_root!("creates users and /etc/pam.d services");
    shipped_stack_login("login", None);
}

#[test]
fn the_shipped_sshd_stack_unlocks_and_its_logout_locks() {
    require_root!("creates users and /etc/pam.d services");
    shipped_stack_login("sshd", None);
}

#[test]
fn the_shipped_xdm_stack_unlocks_for_the_user_manager_until_logout() {
    require_root!("creates users and /etc/pam.d services");
    shipped_stack_login("xdm", Some(Graphical::Display));
}

// ---- The pam-auth-update profile on the machine's common-* stacks ----

/// The machine's common-* files and pam-auth-update's state, byte for byte.
fn common_state() -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for (dir, prefix) in [("/etc/pam.d", "common-"), ("/var/lib/pam", "")] {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            if e.file_name().to_string_lossy().starts_with(prefix) {
                files.push((e.path(), std::fs::read(e.path()).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_profile_puts_the_lines_into_debians_common_stacks_and_a_login_through_them_unlocks() {
    require_root!("creates users and runs pam-auth-update");
    let before = {
        let _common = CommonStacks::shared();
        common_state()
    };
    let user = login_user("stprofile", "stacks-profile-pw");
    {
        let _profile = PamProfile::enable();
        let module = module().display().to_string();
        let has = |f: &str| {
            let text = std::fs::read_to_string(Path::new("/etc/pam.d").join(f)).unwrap();
            text.lines()
                .filter(|l| l.contains(&module))
                .map(|l| l.split_whitespace().next().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(has("common-auth"), ["auth"]);
        assert_eq!(has("common-session"), ["session"]);
        assert_eq!(has("common-password"), ["password"]);
        assert!(
            has("common-session-noninteractive").is_empty(),
            "cron jobs must get no unlock"
        );
        assert!(has("common-account").is_empty());
        let svc = Service::new(
            "st-profile",
            "@include common-auth\n\
             @include common-account\n\
             session optional pam_keyinit.so force revoke\n\
             @include common-session\n\
             @include common-password\n",
        );
        text_login_unlocks_and_logout_locks(&svc, &user, "stacks-profile-pw");
    }
    let _common = CommonStacks::shared();
    assert!(
        common_state() == before,
        "pam-auth-update's changes were not undone"
    );
}

// ---- Debian 12's display-manager stacks, with the profile ----

/// etc/pam.d/FILE of Debian's package PACKAGE (its .deb downloaded once into target/debs, so
/// reruns need no network).
fn debian_stack(package: &str, file: &str) -> String {
    static DOWNLOAD: Mutex<()> = Mutex::new(());
    let _one_at_a_time = DOWNLOAD.lock().unwrap_or_else(|e| e.into_inner());
    let debs = target_dir().parent().expect("target dir").join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    let find = || {
        std::fs::read_dir(&debs).unwrap().flatten().find_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            (n.starts_with(&format!("{package}_")) && n.ends_with(".deb")).then(|| e.path())
        })
    };
    let deb = find().or_else(|| {
        let download = || {
            Command::new("apt-get")
                .args(["download", "-qq", package])
                .current_dir(&debs)
                .output()
                .expect("run apt-get")
        };
        if !download().status.success() {
            // A fresh machine has no package lists yet.
            let _ = Command::new("apt-get").args(["update", "-qq"]).status();
            let o = download();
            assert!(
                o.status.success(),
                "apt-get download {package} failed (the test needs Debian's {package} package \
                 to read its PAM stack): {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        find()
    });
    let deb = deb.unwrap_or_else(|| panic!("no {package}_*.deb in {}", debs.display()));
    let tree = TempDir::new(&format!("deb-{package}"));
    let st = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(tree.path())
        .status()
        .expect("dpkg-deb");
    assert!(st.success(), "dpkg-deb -x {}", deb.display());
    let p = tree.path().join("etc/pam.d").join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Where libpam finds modules named without a path.
fn pam_module_dir() -> PathBuf {
    [
        "/lib/x86_64-linux-gnu/security",
        "/usr/lib/x86_64-linux-gnu/security",
        "/lib/security",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|d| d.join("pam_unix.so").exists())
    .expect("pam_unix.so not found")
}

/// `stack` without the lines of modules this machine lacks (gnome-keyring's, kwallet's);
/// `@include` lines and everything else stay.
fn without_missing_modules(stack: &str) -> String {
    let dir = pam_module_dir();
    stack
        .lines()
        .filter(|l| {
            let t = l.trim();
            if t.is_empty() || t.starts_with('#') || t.starts_with('@') {
                return true;
            }
            // TYPE CONTROL MODULE ARGS; CONTROL may be [a=b c=d] with spaces.
            let mut words = t.split_whitespace().skip(1);
            let mut control = words.next().unwrap_or("");
            if control.starts_with('[') {
                while !control.ends_with(']') {
                    match words.next() {
                        Some(w) => control = w,
                        None => break,
                    }
                }
            }
            let module = words.next().unwrap_or("");
            let present =
                module.starts_with('/') && Path::new(module).exists() || dir.join(module).exists();
            if !present {
                eprintln!("dropped (module not on this machine): {t}");
            }
            present
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

fn display_manager_login(package: &str, file: &str, how: Graphical) {
    let stack = without_missing_modules(&debian_stack(package, file));
    let _profile = PamProfile::enable();
    let password = format!("{package}-Pw-4711");
    let user = login_user(&format!("dm{}", &package[..3]), &password);
    let svc = Service::new(&format!("dm-{file}"), &stack);
    graphical_login_unlocks_for_the_user_manager(&svc, &user, &password, how);
}

#[test]
fn debians_gdm_password_stack_with_the_profile_unlocks_for_the_desktop_until_logout() {
    require_root!("creates users, /etc/pam.d services and runs pam-auth-update");
    display_manager_login("gdm3", "gdm-password", Graphical::SessionType);
}

#[test]
fn debians_sddm_stack_with_the_profile_unlocks_for_the_desktop_until_logout() {
    require_root!("creates users, /etc/pam.d services and runs pam-auth-update");
    display_manager_login("sddm", "sddm", Graphical::SessionType);
}

#[test]
fn debians_greetd_stack_with_the_profile_unlocks_for_the_desktop_until_logout() {
    require_root!("creates users, /etc/pam.d services and runs pam-auth-update");
    display_manager_login("greetd", "greetd", Graphical::SessionType);
}

/// lightdm's stack has no pam_keyinit: the module gives the graphical login a session keyring.
#[test]
fn debians_lightdm_stack_without_pam_keyinit_with_the_profile_unlocks_until_logout() {
    require_root!("creates users, /etc/pam.d services and runs pam-auth-update");
    display_manager_login("lightdm", "lightdm", Graphical::Display);
}

/// Debian's stock xdm stack has no pam_keyinit either.
#[test]
fn debians_xdm_stack_without_pam_keyinit_with_the_profile_unlocks_until_logout() {
    require_root!("creates users, /etc/pam.d services and runs pam-auth-update");
    display_manager_login("xdm", "xdm", Graphical::Display);
}
