//! gnome-keyring-daemon, headless and private: `--foreground --unlock --components=secrets` with
//! a throwaway HOME on a session bus of its own, unlocked with a password on stdin; items stored
//! with `secret-tool`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::bus::{name_has_owner, poll, Bus, SECRETS};
use crate::spawn_err;

/// The daemon's program name.
pub const DAEMON: &str = "gnome-keyring-daemon";

/// `c` (a `gnome-keyring-daemon` command) headless, with the secrets component only, the HOME
/// `home` (its keyrings under `.local/share/keyrings`) and the runtime directory `run`.
pub fn configure<'a>(c: &'a mut Command, home: &Path, run: &Path) -> &'a mut Command {
    c.args(["--foreground", "--unlock", "--components=secrets"])
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .env("XDG_RUNTIME_DIR", run)
        .env_remove("DISPLAY")
}

/// A private session bus and gnome-keyring-daemon with a throwaway HOME; both killed on drop.
#[derive(Debug)]
pub struct GnomeKeyring {
    daemon: Option<Child>,
    bus: Bus,
    home: PathBuf,
}

impl Drop for GnomeKeyring {
    fn drop(&mut self) {
        // The daemon first, then (as a field) its bus.
        self.stop();
    }
}

impl GnomeKeyring {
    /// Start in `dir` (`home/` and `run/` below it), unlocking its login keyring with
    /// `password`; up once it owns org.freedesktop.secrets.
    pub fn start(dir: &Path, password: &str) -> Result<GnomeKeyring, String> {
        GnomeKeyring::start_with(dir, password, |_| Ok(()))
    }

    /// [`GnomeKeyring::start`], up once it owns the name and `ready` succeeds on it (both within
    /// 30 s). Without `dbus-send`, `ready` alone says.
    pub fn start_with(
        dir: &Path,
        password: &str,
        mut ready: impl FnMut(&GnomeKeyring) -> Result<(), String>,
    ) -> Result<GnomeKeyring, String> {
        let home = dir.join("home");
        let run = dir.join("run");
        for d in [&home.join(".local/share"), &run] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let bus = Bus::session()?;
        let mut c = Command::new(DAEMON);
        configure(&mut c, &home, &run)
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut daemon = c.spawn().map_err(|e| spawn_err(DAEMON, e))?;
        if let Some(mut stdin) = daemon.stdin.take() {
            let _ = stdin.write_all(password.as_bytes());
        }
        let gk = GnomeKeyring {
            daemon: Some(daemon),
            bus,
            home,
        };
        // Nothing may ask before our daemon owns the name: the bus would start a second, locked
        // daemon by activation.
        poll(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || match name_has_owner(gk.address(), SECRETS) {
                Ok(false) => Err(format!("{SECRETS} not owned yet")),
                Ok(true) | Err(_) => ready(&gk),
            },
        )
        .map_err(|e| format!("gnome-keyring did not come up: {e}"))?;
        Ok(gk)
    }

    /// The private session bus the daemon is on (for clients); it keeps running until
    /// [`GnomeKeyring::stop`] or drop.
    pub fn address(&self) -> &str {
        self.bus.address()
    }

    /// The daemon's HOME.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The login keyring the daemon writes.
    pub fn keyring_file(&self) -> PathBuf {
        self.home.join(".local/share/keyrings/login.keyring")
    }

    /// A `secret-tool` command talking to this daemon's bus.
    pub fn secret_tool(&self) -> Command {
        let mut c = Command::new("secret-tool");
        c.env("DBUS_SESSION_BUS_ADDRESS", self.address());
        c
    }

    /// `secret-tool store --label=LABEL KEY VALUE...` with `secret` on stdin.
    pub fn store(&self, label: &str, attrs: &[(&str, &str)], secret: &[u8]) -> Result<(), String> {
        let mut c = self.secret_tool();
        c.arg("store").arg(format!("--label={label}"));
        for (k, v) in attrs {
            c.args([k, v]);
        }
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_err("secret-tool", e))?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(secret).map_err(|e| e.to_string())?;
        }
        let o = child.wait_with_output().map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "secret-tool store {label}: {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    /// Stop the daemon (its bus stays until drop); it writes nothing after this.
    pub fn stop(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}
