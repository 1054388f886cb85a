//! Desktop logins through pam_keyringrs.so and real libpam (docs/PAM.md "Lifetime"): graphical
//! logins that unlock for the user manager's session (`systemd --user`, where desktop apps and
//! the Secret Service run), logins that overlap in either order, a text login beside a desktop,
//! killed logins that must stop holding the store, `keyringrs lock`, and a stack without
//! pam_keyinit. The harness (logins held open step by step, the user-manager stand-in) is
//! keyringrs_tests::pam.

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

/// The kernel reaps a dead login's session keyring once the last reference to it (the exited
/// processes' credentials, freed after an RCU grace period) is gone: `keyringrs status` then
/// shows that holder as gone.
fn wait_until_a_holder_is_gone(m: &mut Live) {
    for _ in 0..100 {
        let s = m.status();
        if s.has("(gone;") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("the killed login's session keyring was never reaped");
}

#[test]
fn a_graphical_login_unlocks_for_the_user_manager_session_until_it_closes() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("gdm");
    let mut g = d.login_and_set("desk");
    assert_eq!(d.m.get("S", "U"), (0, "desk".into()));
    let t = d.m.status();
    assert!(t.has("held by: graphical login"), "{t}");
    assert!(t.has("the user keyring (@u)"), "{t}");
    g.close();
    assert_eq!(d.m.get("S", "U").0, 3, "the last graphical logout locks it");
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

#[test]
fn overlapping_graphical_logins_lock_only_when_the_last_closes_in_either_order() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("overlap");
    for first_closes_first in [true, false] {
        let mut a = d.login_and_set("v");
        let mut b = d.login();
        let (first, second) = if first_closes_first {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        first.close();
        assert_eq!(
            d.m.get("S", "U"),
            (0, "v".into()),
            "one login still holds it"
        );
        assert_eq!(second.get("S", "U"), (0, "v".into()));
        second.close();
        assert_eq!(d.m.get("S", "U").0, 3, "the last close locks it");
    }
}

#[test]
fn a_text_login_during_a_desktop_session_reads_and_its_logout_leaves_the_desktop_unlocked() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("mixed");
    let ssh = Service::standard("mixed-t", "");
    let mut g = d.login_and_set("v");
    let mut t = Live::start(&ssh, &d.user.name);
    t.login(&d.password, false);
    assert_eq!(t.get("S", "U"), (0, "v".into()));
    let s = t.status();
    assert!(s.has("this login's session keyring (@s)"), "{s}");
    t.close();
    assert_eq!(
        d.m.get("S", "U"),
        (0, "v".into()),
        "the desktop stays unlocked"
    );
    // The other order: the text login outlives the desktop and keeps its own key.
    let mut t = Live::start(&ssh, &d.user.name);
    t.login(&d.password, false);
    g.close();
    assert_eq!(d.m.get("S", "U").0, 3, "the desktop's close locked @u");
    assert_eq!(
        t.get("S", "U"),
        (0, "v".into()),
        "the text login has its own key"
    );
    t.close();
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

#[test]
fn a_killed_graphical_login_stops_holding_the_store_at_the_next_logout() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("killed");
    // Killed while another login holds it too: the other's logout locks.
    let a = d.login_and_set("v");
    let mut b = d.login();
    a.kill();
    wait_until_a_holder_is_gone(&mut d.m);
    assert_eq!(d.m.get("S", "U"), (0, "v".into()));
    b.close();
    assert_eq!(
        d.m.get("S", "U").0,
        3,
        "a dead holder must not keep it open"
    );
    // Killed alone, the store stays open (nobody closed); the next login's logout locks it.
    d.login().kill();
    wait_until_a_holder_is_gone(&mut d.m);
    assert_eq!(d.m.get("S", "U"), (0, "v".into()));
    d.login().close();
    assert_eq!(d.m.get("S", "U").0, 3);
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

/// Killed alone, then a text login (ssh) opens and closes: the key the killed login left in `@u`
/// is locked by that login, at its open, not read by the user's next process (found by the VM
/// test: the daemon's sweep came seconds too late).
#[test]
fn a_killed_graphical_login_is_locked_by_the_next_text_login() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("killed-t");
    let ssh = Service::standard("killed-t-s", "");
    d.login_and_set("v").kill();
    wait_until_a_holder_is_gone(&mut d.m);
    assert_eq!(d.m.get("S", "U"), (0, "v".into()), "nobody closed yet");
    let mut t = Live::start(&ssh, &d.user.name);
    t.login(&d.password, false);
    assert_eq!(
        t.get("S", "U"),
        (0, "v".into()),
        "the text login reads with its own key"
    );
    assert_eq!(
        d.m.get("S", "U").0,
        3,
        "the text login's open locked what the killed one left in @u"
    );
    t.close();
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

/// A graphical login that stores `v` and starts a process outside its process group
/// (`setsid`, as a daemon or a `nohup` job does), which keeps its session keyring alive for good.
fn a_login_with_an_escaped_process(d: &Desktop) -> Live {
    let mut a = d.login_and_set("v");
    let t = a.step("run setsid sleep 600 </dev/null >/dev/null 2>&1 &");
    assert_eq!(t.codes("run"), [0], "{t}");
    a
}

/// A killed login stops holding the store at the next close of any login, at once, however long
/// its session keyring lives on: here a process it started outside its process group (`setsid`,
/// as a daemon or a `nohup` job does) keeps that keyring alive for good, so only the dead opener
/// (the process that ran the PAM session, killed; also while still an unreaped zombie) tells.
#[test]
fn a_killed_graphical_login_stops_holding_the_store_at_once_whatever_keeps_its_keyring() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("escaped");
    for reaped in [true, false] {
        let mut a = a_login_with_an_escaped_process(&d);
        // Unreaped, the driver stays a zombie until this is dropped.
        let _zombie = if reaped {
            a.kill();
            None
        } else {
            a.kill_unreaped();
            Some(a)
        };
        let s = d.m.status();
        assert!(
            s.has("(gone;"),
            "its opener is dead, its keyring alive: {s}"
        );
        // Another login opens and closes at once, before any reaping could have helped.
        d.login().close();
        assert_eq!(
            d.m.get("S", "U").0,
            3,
            "a login killed without close kept the store open (reaped: {reaped})"
        );
    }
    assert_eq!(fresh_user_session_get(&d.user), 3);
}

/// Nobody closes after the only holder is killed: the Secret Service daemon of the user's
/// session notices within its sweep (5 s) that no live login holds the store, and locks it.
#[test]
fn the_secret_service_daemon_locks_a_store_whose_only_holder_was_killed() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("abandon");
    copy_secret_service(&d.user);
    let a = a_login_with_an_escaped_process(&d);
    let t = d.m.step(&format!(
        "run {START_SECRET_SERVICE}; echo \"open=[$({LOOKUP})]\"; cat ss.log"
    ));
    assert!(t.has("open=[v]"), "{t}");
    a.kill();
    let mut locked = false;
    for _ in 0..150 {
        if d.m.get("S", "U").0 == 3 {
            locked = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let t = d.m.step(&format!("run cat ss.log; {STOP_SECRET_SERVICE}"));
    assert!(locked, "the store stayed open with no live holder: {t}");
    assert!(t.has("every login that held it open is gone"), "{t}");
}

#[test]
fn keyringrs_lock_from_one_session_locks_every_login() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("lockall");
    let mut a = d.login_and_set("v");
    let mut b = d.login();
    assert_eq!(d.m.step("run ./keyringrs lock").codes("run"), [0]);
    assert_eq!(d.m.get("S", "U").0, 3);
    assert_eq!(a.get("S", "U").0, 3);
    assert_eq!(b.get("S", "U").0, 3);
    let s = d.m.status();
    assert!(!s.has("held by:"), "{s}");
    a.close();
    b.close();
}

/// Debian's lightdm and xdm stacks have no pam_keyinit: a graphical login there gets a session
/// keyring of its own from the module and still unlocks for the user manager.
#[test]
fn a_graphical_login_in_a_stack_without_pam_keyinit_still_unlocks() {
    require_root!("creates users and /etc/pam.d services");
    let user = login_user("nokeyinit", "nokeyinit-pw");
    let xdm = Service::without_keyinit("nokeyinit");
    let um = user_manager_service("nokeyinit-um");
    let mut m = user_manager(&um, &user);
    let mut x = Live::start(&xdm, &user.name);
    // xdm tells only by PAM_TTY: the X display.
    assert_eq!(x.step("tty :0").codes("tty"), [0]);
    x.login("nokeyinit-pw", false);
    x.set("S", "U", "v");
    assert_eq!(m.get("S", "U"), (0, "v".into()));
    x.close();
    assert_eq!(m.get("S", "U").0, 3);
}

/// `secret-tool` from the user manager's session (where desktop apps and the D-Bus-activated
/// daemon live) finds the secret while the display-manager login is open, nothing after.
#[test]
fn secret_tool_in_the_user_manager_session_follows_the_graphical_login() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("dmss");
    copy_secret_service(&d.user);
    let mut g = d.login_and_set("tok");
    let t = d.m.step(&format!(
        "run {START_SECRET_SERVICE}; echo \"open=[$({LOOKUP})]\""
    ));
    assert!(t.has("open=[tok]"), "{t}");
    g.close();
    let t = d.m.step(&format!(
        "run echo \"after=[$({LOOKUP} 2>/dev/null)]\"; {STOP_SECRET_SERVICE}"
    ));
    assert!(t.has("after=[]"), "{t}");
}

/// A screen locker's PAM authentication, run as the user (swaylock, i3lock: `auth include
/// login`): a store that a lock policy locked (noted as such) reopens in `@u` with the password,
/// held by the locker's login; a store the user locked by hand stays locked.
#[test]
fn a_screen_unlock_reopens_a_store_a_lock_policy_locked_and_only_that() {
    require_root!("creates users and /etc/pam.d services");
    let mut d = Desktop::new("locker");
    let locker = Service::standard("locker-l", "");
    let mut g = d.login_and_set("v");
    // A policy's lock, as the Secret Service daemon makes it: the lock, then its note.
    let note = "id=$(./keyringrs status | sed -n 's/^id: *//p'); ./keyringrs lock && \
                k=$(keyctl add user keyringrs-locked:$id 'screen-lock 1796657683' @u) && \
                keyctl setperm $k 0x000b0000";
    let t = g.step(&format!("run {note}"));
    assert_eq!(t.codes("run"), [0], "{t}");
    assert_eq!(d.m.get("S", "U").0, 3, "locked");
    assert!(g.status().has("locked:  at screen lock"), "{}", g.status());
    let t = drive_as_user(
        &locker,
        &d.user,
        Steps::new().auth("not-the-password").end(),
    );
    assert_eq!(
        d.m.get("S", "U").0,
        3,
        "a wrong password reopens nothing: {t}"
    );
    let t = drive_as_user(&locker, &d.user, Steps::new().auth(&d.password).end());
    assert_eq!(t.codes("auth"), [0], "{t}");
    assert_eq!(d.m.get("S", "U"), (0, "v".into()), "reopened: {t}");
    // Locked by the user (no note): a screen unlock leaves it locked.
    let t = g.step("run ./keyringrs lock");
    assert_eq!(t.codes("run"), [0], "{t}");
    drive_as_user(&locker, &d.user, Steps::new().auth(&d.password).end());
    assert_eq!(d.m.get("S", "U").0, 3, "the user's own lock stays");
    g.close();
}
