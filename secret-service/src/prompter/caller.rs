//! Who asked for a prompt: the calling process (from the bus), its login (logind's session of
//! that pid, else the process's own session), and where it is seen: its display variables or
//! its terminal. Read from `/proc` as the same user; whatever cannot be read stays unknown.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use libkeyring::sys::process::{self, Process};
use zbus::zvariant::OwnedObjectPath;
use zbus::Connection;

/// The variables a dialog needs to reach the caller's screen; nothing else of the caller's
/// environment is read or passed on.
pub(crate) const DISPLAY_VARS: &[&str] = &[
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "XDG_RUNTIME_DIR",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_SESSION_TYPE",
    "XDG_CURRENT_DESKTOP",
    "TERM",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
];

/// How long logind may take to answer which session a pid is in.
const LOGIND_WAIT: Duration = Duration::from_secs(2);

/// The login a prompt's unlock is held by: it locks again when that login ends.
#[derive(Debug, Clone)]
pub(crate) struct Login {
    /// The process whose end ends the login (logind's session leader: the display manager's
    /// session worker, login, sshd's session process).
    pub opener: Process,
    /// `graphical` or `text`, as holders are recorded.
    pub kind: &'static str,
    /// Where this was learnt, for the log.
    pub source: String,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Caller {
    pub pid: Option<u32>,
    /// Its command name (`/proc/PID/comm`), to name it in the dialog.
    pub name: String,
    /// Its display variables (DISPLAY_VARS that it has).
    pub env: HashMap<String, String>,
    /// Its terminal, if one of its standard streams is one.
    pub tty: Option<PathBuf>,
    pub login: Option<Login>,
    /// The sandboxed app it asks for (the Secret portal's app id; the caller is the portal).
    pub app: Option<String>,
}

impl Caller {
    /// Whether the caller runs on a graphical display (X11 or Wayland).
    pub(crate) fn on_display(&self) -> bool {
        self.env.contains_key("DISPLAY") || self.env.contains_key("WAYLAND_DISPLAY")
    }
}

/// What is known of the bus client `sender`.
pub(crate) async fn of(conn: &Connection, sender: &str) -> Caller {
    let pid = match (
        zbus::fdo::DBusProxy::new(conn).await,
        zbus::names::BusName::try_from(sender),
    ) {
        (Ok(dbus), Ok(name)) => dbus.get_connection_unix_process_id(name).await.ok(),
        _ => None,
    };
    let Some(pid) = pid else {
        return Caller::default();
    };
    let env = environment(pid);
    let tty = terminal(pid);
    let graphical_env = env.contains_key("DISPLAY") || env.contains_key("WAYLAND_DISPLAY");
    let login = match tokio::time::timeout(LOGIND_WAIT, logind_login(pid)).await {
        Ok(Some(l)) => Some(l),
        _ => own_session(pid, graphical_env),
    };
    Caller {
        pid: Some(pid),
        name: std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default(),
        env,
        tty,
        login,
        app: None,
    }
}

/// The display variables of process `pid` (its environment as it started; empty when it is
/// not readable, e.g. a process that made itself non-dumpable).
fn environment(pid: u32) -> HashMap<String, String> {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return HashMap::new();
    };
    raw.split(|&b| b == 0)
        .filter_map(|kv| {
            let kv = std::str::from_utf8(kv).ok()?;
            let (k, v) = kv.split_once('=')?;
            (DISPLAY_VARS.contains(&k) && !v.is_empty()).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

/// The terminal on the caller's stdin, stdout or stderr.
fn terminal(pid: u32) -> Option<PathBuf> {
    (0..3).find_map(|fd| {
        let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        let s = target.to_str()?;
        let tty =
            s.starts_with("/dev/pts/") || (s.starts_with("/dev/tty") && s.len() > "/dev/tty".len());
        tty.then_some(target)
    })
}

/// logind's session of `pid`: its leader and type.
async fn logind_login(pid: u32) -> Option<Login> {
    let conn = Connection::system().await.ok()?;
    let reply = conn
        .call_method(
            Some("org.freedesktop.login1"),
            "/org/freedesktop/login1",
            Some("org.freedesktop.login1.Manager"),
            "GetSessionByPID",
            &(pid,),
        )
        .await
        .ok()?;
    let session: OwnedObjectPath = reply.body().deserialize().ok()?;
    let props = zbus::fdo::PropertiesProxy::builder(&conn)
        .destination("org.freedesktop.login1")
        .ok()?
        .path(session.clone())
        .ok()?
        .build()
        .await
        .ok()?;
    let iface = zbus::names::InterfaceName::try_from("org.freedesktop.login1.Session").ok()?;
    let leader: u32 = props
        .get(iface.clone(), "Leader")
        .await
        .ok()?
        .try_into()
        .ok()?;
    let kind: String = props
        .get(iface.clone(), "Type")
        .await
        .ok()?
        .try_into()
        .ok()?;
    let id: String = props.get(iface, "Id").await.ok()?.try_into().ok()?;
    let opener = process::of(i32::try_from(leader).ok()?)?;
    Some(Login {
        opener,
        kind: if matches!(kind.as_str(), "x11" | "wayland" | "mir") {
            "graphical"
        } else {
            "text"
        },
        source: format!("logind session {id} (type {kind}, leader pid {leader})"),
    })
}

/// Without logind: the leader of the caller's own session.
fn own_session(pid: u32, graphical: bool) -> Option<Login> {
    let opener = process::session_leader(&pid.to_string())?;
    Some(Login {
        source: format!(
            "the caller's session (leader pid {}; no logind session found)",
            opener.pid
        ),
        opener,
        kind: if graphical { "graphical" } else { "text" },
    })
}
