//! gnome-keyring, headless and private to this run: our own `dbus-daemon --session` and
//! `gnome-keyring-daemon --foreground --unlock --components=secrets` with a throwaway HOME,
//! unlocked with a password on stdin. Both are our children and are killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of the login keyring this gnome-keyring writes.
pub const PASSWORD: &str = "bench-login-password";

#[derive(Debug)]
pub struct Daemons {
    dbus: Child,
    keyring: Child,
    pub address: String,
}

impl Drop for Daemons {
    fn drop(&mut self) {
        for c in [&mut self.keyring, &mut self.dbus] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn_err(what: &str, e: std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::NotFound {
        format!("{what} not installed")
    } else {
        format!("{what}: {e}")
    }
}

impl Daemons {
    pub fn start(dir: &Path) -> Result<Daemons, String> {
        let home = dir.join("home");
        let run = dir.join("run");
        for d in [&home, &run] {
            std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        }
        let mut dbus = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| spawn_err("dbus-daemon", e))?;
        let mut address = String::new();
        let read = dbus
            .stdout
            .take()
            .map(|o| BufReader::new(o).read_line(&mut address));
        let address = address.trim().to_string();
        if !matches!(read, Some(Ok(n)) if n > 0) || address.is_empty() {
            let _ = dbus.kill();
            let _ = dbus.wait();
            return Err("dbus-daemon printed no address".into());
        }
        let keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .env("HOME", &home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", &run)
            .env_remove("DISPLAY")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut keyring = match keyring {
            Ok(k) => k,
            Err(e) => {
                let _ = dbus.kill();
                let _ = dbus.wait();
                return Err(spawn_err("gnome-keyring-daemon", e));
            }
        };
        if let Some(mut stdin) = keyring.stdin.take() {
            let _ = stdin.write_all(PASSWORD.as_bytes());
        }
        let d = Daemons {
            dbus,
            keyring,
            address,
        };
        // Ready when our daemon owns the name (a client asking earlier would make the bus
        // start a second, locked daemon by activation) and answers: store one item.
        let start = Instant::now();
        loop {
            let owned = Command::new("dbus-send")
                .env("DBUS_SESSION_BUS_ADDRESS", &d.address)
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .stderr(Stdio::null())
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
                // Without dbus-send, fall back to asking secret-tool directly.
                .unwrap_or(true);
            let r = if owned {
                d.secret_tool_store("kbench-ready", "ready", b"ready")
            } else {
                Err("org.freedesktop.secrets not owned yet".into())
            };
            match r {
                Ok(()) => return Ok(d),
                Err(e) if start.elapsed() > Duration::from_secs(30) => {
                    return Err(format!("gnome-keyring did not come up: {e}"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// A `secret-tool` command talking to our private bus.
    pub fn secret_tool(&self) -> Command {
        let mut c = Command::new("secret-tool");
        c.env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    pub fn secret_tool_store(
        &self,
        service: &str,
        user: &str,
        secret: &[u8],
    ) -> Result<(), String> {
        let mut c = self.secret_tool();
        c.args([
            "store",
            "--label=kbench",
            "service",
            service,
            "username",
            user,
        ])
        .stdin(Stdio::piped());
        let mut child = c.spawn().map_err(|e| spawn_err("secret-tool", e))?;
        if let Some(mut i) = child.stdin.take() {
            i.write_all(secret).map_err(|e| e.to_string())?;
        }
        let st = child.wait().map_err(|e| e.to_string())?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("secret-tool store: {st}"))
        }
    }
}

/// The in-process D-Bus client: keyring-core's Secret Service store on our private bus.
#[cfg(feature = "secret-service")]
pub fn peer_store(d: &Daemons) -> Result<std::sync::Arc<keyring_core::CredentialStore>, String> {
    // libdbus reads the bus address from the environment; set before the first connection,
    // while the bench is still single-threaded.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &d.address);
    dbus_secret_service_keyring_store::Store::new()
        .map(|s| s as std::sync::Arc<keyring_core::CredentialStore>)
        .map_err(|e| format!("Secret Service connection: {e}"))
}

#[cfg(not(feature = "secret-service"))]
pub fn peer_store(_: &Daemons) -> Result<std::sync::Arc<keyring_core::CredentialStore>, String> {
    Err(
        "built without the secret-service feature (needs libdbus-1-dev); `make bench` enables it"
            .into(),
    )
}
