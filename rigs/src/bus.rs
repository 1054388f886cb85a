//! A private `dbus-daemon`, whether a name has an owner on it, and waiting until one does.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::spawn_err;

/// The Secret Service's well-known name.
pub const SECRETS: &str = "org.freedesktop.secrets";

/// A `dbus-daemon` of our own, killed on drop.
#[derive(Debug)]
pub struct Bus {
    child: Child,
    address: String,
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Bus {
    /// `dbus-daemon --session`: the system's session configuration, on a private socket.
    pub fn session() -> Result<Bus, String> {
        let mut c = Command::new("dbus-daemon");
        c.args(["--session", "--nofork", "--print-address=1"]);
        Bus::spawn(c)
    }

    /// `cmd`, a `dbus-daemon --nofork --print-address` (its configuration and environment set by
    /// the caller); up once it has printed its address.
    pub fn spawn(mut cmd: Command) -> Result<Bus, String> {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| spawn_err("dbus-daemon", e))?;
        let mut line = String::new();
        let read = child
            .stdout
            .take()
            .map(|o| BufReader::new(o).read_line(&mut line));
        let address = line.trim().to_string();
        if !matches!(read, Some(Ok(n)) if n > 0) || !address.starts_with("unix:") {
            let _ = child.kill();
            let _ = child.wait();
            return Err("dbus-daemon printed no address".into());
        }
        Ok(Bus { child, address })
    }

    /// The address clients connect to (`DBUS_SESSION_BUS_ADDRESS`).
    pub fn address(&self) -> &str {
        &self.address
    }
}

/// Whether `name` has an owner on the bus at `address`, asked with `dbus-send`; an error when
/// `dbus-send` did not run.
pub fn name_has_owner(address: &str, name: &str) -> Result<bool, String> {
    Command::new("dbus-send")
        .env("DBUS_SESSION_BUS_ADDRESS", address)
        .args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
        ])
        .arg(format!("string:{name}"))
        .stderr(Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("boolean true"))
        .map_err(|e| spawn_err("dbus-send", e))
}

/// Ok once `name` has an owner on the bus at `address` (asked every `every`), else after
/// `timeout` why not.
pub fn wait_for_owner(
    address: &str,
    name: &str,
    timeout: Duration,
    every: Duration,
) -> Result<(), String> {
    poll(timeout, every, || match name_has_owner(address, name)? {
        true => Ok(()),
        false => Err(format!("{name} not owned yet")),
    })
}

/// Call `ready` every `every` until it succeeds; after `timeout`, its last error.
pub fn poll(
    timeout: Duration,
    every: Duration,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let start = Instant::now();
    loop {
        match ready() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() > timeout => return Err(e),
            Err(_) => std::thread::sleep(every),
        }
    }
}
