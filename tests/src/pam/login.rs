//! Login scenarios for the PAM tests: the steps of one pam-driver run written in order
//! (`Steps`), a throwaway user who logs in through a throwaway service (`Login`: one whole
//! login, a secret stored, a password changed or reset), the desktop setting (`Desktop`:
//! display-manager logins beside the user manager's session), and the shell that runs
//! keyringrs-secret-service inside a login.

use super::{drive, Live, Service, Transcript};
use super::{get_step, hex, login_user, set_password, user_manager, user_manager_service};
use crate::*;

/// The steps of one pam-driver run (tests/pam/pam-driver.c), one a line, in the order given.
#[derive(Debug, Clone, Default)]
pub struct Steps(String);

impl Steps {
    pub fn new() -> Steps {
        Steps::default()
    }

    /// A password login: the test KDF for the commands, auth, open.
    pub fn login(password: &str) -> Steps {
        Steps::new().kdf().auth(password).open()
    }

    /// Any driver step (`putenv`, `runas`, `scan`, `tty`, ...).
    pub fn step(mut self, line: &str) -> Steps {
        self.0.push_str(line);
        self.0.push('\n');
        self
    }

    /// Small Argon2id for the `keyringrs` commands the login runs, as the test services give the
    /// module (`TEST_OPTIONS`).
    pub fn kdf(self) -> Steps {
        self.step(&format!("env KEYRINGRS_KDF_MEMORY={TEST_KDF_MEMORY}"))
            .step(&format!("env KEYRINGRS_KDF_TIME={TEST_KDF_TIME}"))
    }

    /// pam_authenticate (and pam_acct_mgmt) answering `password`.
    pub fn auth(self, password: &str) -> Steps {
        self.step(&format!("auth {}", hex(password)))
    }

    pub fn open(self) -> Steps {
        self.step("open")
    }

    pub fn close(self) -> Steps {
        self.step("close")
    }

    /// pam_end: the next step starts a new PAM handle.
    pub fn end(self) -> Steps {
        self.step("end")
    }

    /// The user's own `passwd`: real uid the user's (so pam_unix asks for the old password),
    /// then pam_chauthtok from `old` to `new`.
    pub fn passwd(self, old: &str, new: &str) -> Steps {
        self.step("ruid")
            .step(&format!("chauthtok {} {}", hex(old), hex(new)))
    }

    /// A shell command as the user inside the session.
    pub fn run(self, shell: &str) -> Steps {
        self.step(&format!("run {shell}"))
    }

    /// A shell command as `who` (another user) inside the session: the driver's session keyring.
    pub fn runas(self, who: &str, shell: &str) -> Steps {
        self.step(&format!("runas {who} {shell}"))
    }

    /// `keyringrs set SERVICE USERNAME` of `value` (a word for printf).
    pub fn set(self, service: &str, username: &str, value: &str) -> Steps {
        self.run(&format!(
            "printf {value} | ./keyringrs set {service} {username}"
        ))
    }

    /// `keyringrs get SERVICE USERNAME`, printing `value=<secret>` and exiting with get's code.
    pub fn get(mut self, service: &str, username: &str) -> Steps {
        self.0.push_str(&get_step(service, username));
        self
    }

    /// These steps, then `more`.
    pub fn then(mut self, more: Steps) -> Steps {
        self.0.push_str(&more.0);
        self
    }

    /// These steps `n` times over.
    pub fn repeat(self, n: usize) -> Steps {
        Steps(self.0.repeat(n))
    }
}

impl From<Steps> for String {
    fn from(steps: Steps) -> String {
        steps.0
    }
}

/// A throwaway user with a login password, and the /etc/pam.d service they log in through: the
/// setting of a text-login scenario.
#[derive(Debug)]
pub struct Login {
    pub user: ThrowawayUser,
    /// The password the next logins give (changed by `passwd` and `reset_password`).
    pub password: String,
    pub svc: Service,
}

impl Login {
    /// User `tag` with `password` (see `login_user`), logging in through `svc`.
    pub fn new(tag: &str, password: &str, svc: Service) -> Login {
        Login {
            user: login_user(tag, password),
            password: password.to_owned(),
            svc,
        }
    }

    /// User `tag` with `password` through a standard stack of the same tag (`Service::standard`).
    pub fn standard(tag: &str, password: &str) -> Login {
        Login::new(tag, password, Service::standard(tag, ""))
    }

    /// One pam-driver run of `steps` for this user through this service (with a last `end`).
    pub fn drive(&self, steps: Steps) -> Transcript {
        let steps = if steps.0.ends_with("end\n") {
            steps
        } else {
            steps.end()
        };
        drive(&self.svc, &self.user.name, &steps.0)
    }

    /// The first steps of a login with the user's password: test KDF, auth, open.
    pub fn steps(&self) -> Steps {
        Steps::login(&self.password)
    }

    /// One whole login with the user's password: auth, open, `inside` (steps in the session),
    /// close. Auth, open and close must succeed.
    pub fn session(&self, inside: Steps) -> Transcript {
        let t = self.drive(self.steps().then(inside).close());
        assert_eq!(t.codes("auth"), [0], "{t}");
        assert_eq!(t.codes("open"), [0], "{t}");
        assert_eq!(t.codes("close"), [0], "{t}");
        t
    }

    /// A whole login that stores `value` for (service, username): `keyringrs set` must succeed.
    pub fn store(&self, service: &str, username: &str, value: &str) {
        let t = self.session(Steps::new().set(service, username, value));
        assert_eq!(t.codes("run"), [0], "{t}");
    }

    /// A whole login whose `keyringrs get` of (service, username) must give `value`.
    pub fn assert_reads(&self, service: &str, username: &str, value: &str) -> Transcript {
        let t = self.session(Steps::new().get(service, username));
        assert_eq!(t.codes("run"), [0], "{t}");
        assert!(t.has(&format!("value={value}")), "{t}");
        t
    }

    /// `n` whole logins in one pam-driver process (auth, open, close, end each; the commands get
    /// no test KDF, none runs). The caller checks the codes.
    pub fn cycles(&self, n: usize) -> Transcript {
        self.drive(
            Steps::new()
                .auth(&self.password)
                .open()
                .close()
                .end()
                .repeat(n),
        )
    }

    /// The user's own `passwd` through this service, from the current password to `new`
    /// (which must succeed); the next logins give `new`.
    pub fn passwd(&mut self, new: &str) -> Transcript {
        let t = self.drive(Steps::new().passwd(&self.password, new));
        assert_eq!(t.codes("chauthtok"), [0], "{t}");
        self.password = new.to_owned();
        t
    }

    /// An administrator's reset (`chpasswd`) to `password`; the next logins give it.
    pub fn reset_password(&mut self, password: &str) {
        set_password(&self.user, password);
        self.password = password.to_owned();
    }
}

/// A user with a display-manager-like service and the user manager's session opened: the
/// setting of every desktop test.
#[derive(Debug)]
pub struct Desktop {
    pub user: ThrowawayUser,
    pub password: String,
    gdm: Service,
    _um: Service,
    /// A process of the user manager's session (an app, a terminal, the Secret Service).
    pub m: Live,
}

impl Desktop {
    pub fn new(tag: &str) -> Desktop {
        let password = format!("{tag}-pw");
        let user = login_user(tag, &password);
        let gdm = Service::standard(tag, "");
        let um = user_manager_service(&format!("{tag}-um"));
        let m = user_manager(&um, &user);
        Desktop {
            user,
            password,
            gdm,
            _um: um,
            m,
        }
    }

    /// A graphical login of the user, open.
    pub fn login(&self) -> Live {
        let mut g = Live::start(&self.gdm, &self.user.name);
        g.login(&self.password, true);
        g
    }

    /// A graphical login that stores `value` for (S, U).
    pub fn login_and_set(&self, value: &str) -> Live {
        let mut g = self.login();
        g.set("S", "U", value);
        g
    }
}

/// Shell for a `run` step in a login: start a session bus and keyringrs-secret-service (a copy
/// in the user's home, see `copy_secret_service`), wait until it owns org.freedesktop.secrets
/// (at most 60 s, so that a debug daemon starting on a loaded machine is waited for: a
/// fresh-clone run beside four builds looked up nothing after the 10 s it waited before).
pub const START_SECRET_SERVICE: &str = "dbus-daemon --session --fork --print-address=3 \
    --print-pid=4 3>bus-addr 4>bus-pid >/dev/null 2>&1 && \
    (DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) ./keyringrs-secret-service >ss.log 2>&1 &) && \
    for i in $(seq 600); do DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) dbus-send --session \
    --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
    org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null \
    | grep -q true && break; sleep 0.1; done";

/// `secret-tool lookup service S username U` on that bus, in `$(...)`.
pub const LOOKUP: &str =
    "DBUS_SESSION_BUS_ADDRESS=$(cat bus-addr) timeout 20 secret-tool lookup service S username U";

/// ... and stop that bus and daemon.
pub const STOP_SECRET_SERVICE: &str =
    "kill $(cat bus-pid) 2>/dev/null; pkill -u $(id -u) keyringrs-secre; true";

/// A copy of the built keyringrs-secret-service in the user's home, for `START_SECRET_SERVICE`.
pub fn copy_secret_service(user: &ThrowawayUser) {
    let daemon = target_dir().join("keyringrs-secret-service");
    assert!(
        daemon.exists(),
        "{} missing: cargo build --workspace",
        daemon.display()
    );
    std::fs::copy(&daemon, user.home.join("keyringrs-secret-service")).unwrap();
}
