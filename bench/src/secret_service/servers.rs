//! The servers of the secret-service group: a private bus, our daemon over a store filled
//! through libkeyring, and gnome-keyring-daemon over a textual keyring written before it starts.

use super::*;

// ---------------------------------------------------------------------------------------------
// Processes: a private bus, and a Secret Service daemon on it.

/// A private `dbus-daemon` with a configuration of its own (listens in `dir`, activates nothing:
/// a client asking before the daemon owns the name gets an error, not another daemon).
pub(super) fn start_bus(dir: &Path) -> Result<Bus, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let conf = dir.join("bus.conf");
    // The test rig's bus (secret-service/tests/private-bus.conf), activating nothing.
    let services = dir.join("services");
    std::fs::create_dir_all(&services).map_err(e2s)?;
    let text = include_str!("../../../secret-service/tests/private-bus.conf")
        .replace("@DIR@", &dir.display().to_string())
        .replace("@SERVICES@", &services.display().to_string());
    std::fs::write(&conf, text).map_err(e2s)?;
    let mut c = Command::new("dbus-daemon");
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .arg(format!("--config-file={}", conf.display()))
        .args(["--print-address", "--nofork"]);
    Bus::spawn(c)
}

pub(super) fn connect(address: &str) -> Result<Connection, String> {
    zbus::blocking::connection::Builder::address(address)
        .and_then(|b| b.build())
        .map_err(|e| format!("connect to the private bus: {e}"))
}

/// A Secret Service daemon on its own bus; both killed on drop.
#[derive(Debug)]
pub(super) struct Server {
    pub(super) daemon: Child,
    pub(super) bus: Bus,
    pub(super) log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl Server {
    /// Start `cmd` (its environment already set, but the bus address) on a new bus in `dir`;
    /// ready when it owns org.freedesktop.secrets.
    pub(super) fn start(
        dir: &Path,
        what: &str,
        mut cmd: Command,
        stdin: &[u8],
    ) -> Result<Server, String> {
        let bus = start_bus(&dir.join("bus"))?;
        let log = dir.join(format!("{what}.log"));
        let logf = std::fs::File::create(&log).map_err(e2s)?;
        let mut daemon = cmd
            .env("DBUS_SESSION_BUS_ADDRESS", bus.address())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .map_err(|e| spawn_err(what, e))?;
        if let Some(mut i) = daemon.stdin.take() {
            let _ = i.write_all(stdin);
        }
        let mut s = Server { daemon, bus, log };
        let conn = connect(s.bus.address())?;
        let dbus = zbus::blocking::fdo::DBusProxy::new(&conn).map_err(e2s)?;
        let name = zbus::names::BusName::try_from(DEST).map_err(e2s)?;
        let t = Instant::now();
        loop {
            if dbus.name_has_owner(name.clone()).map_err(e2s)? {
                eprintln!(
                    "    {what} took the name in {}",
                    fmt_ns(t.elapsed().as_nanos() as f64)
                );
                return Ok(s);
            }
            if let Ok(Some(st)) = s.daemon.try_wait() {
                return Err(format!("{what} exited ({st}): {}", s.last_log_line()));
            }
            if t.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{what} did not take {DEST} in 60 s: {}",
                    s.last_log_line()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// If the daemon has exited: how, and its last words.
    pub(super) fn exited(&mut self) -> Option<String> {
        match self.daemon.try_wait() {
            Ok(Some(st)) => Some(format!("{st}: {}", self.last_log_line())),
            _ => None,
        }
    }

    pub(super) fn last_log_line(&self) -> String {
        std::fs::read_to_string(&self.log)
            .ok()
            .and_then(|s| s.lines().last().map(str::to_string))
            .unwrap_or_else(|| "no output".into())
    }
}

/// The daemon to measure: `$KEYRINGRS_SS_DAEMON`, else the one built next to this binary
/// (`make bench` builds it; a `keyringrs-secret-service` on PATH may be another version).
pub(super) fn daemon_bin() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("KEYRINGRS_SS_DAEMON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        return if p.exists() {
            Ok(p)
        } else {
            Err(format!(
                "KEYRINGRS_SS_DAEMON={} does not exist",
                p.display()
            ))
        };
    }
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(OURS)))
        .filter(|p| p.exists())
        .ok_or_else(|| {
            format!("{OURS} not built next to the bench (cargo build -p {OURS}, or set KEYRINGRS_SS_DAEMON)")
        })
}

// ---------------------------------------------------------------------------------------------
// Our store, filled through libkeyring while its daemon is stopped.

#[derive(Debug)]
pub(super) struct OursStore {
    pub(super) store: Store,
    pub(super) path: PathBuf,
    pub(super) kind: Kind,
    /// Items 0..count are in the store (filled, or created by the CreateItem rows).
    pub(super) count: usize,
}

impl OursStore {
    pub(super) fn init(path: PathBuf, kind: Kind) -> Result<OursStore, String> {
        // Minimal KDF parameters, as the other rows: nothing here unlocks.
        let opts = UnlockOptions {
            kdf: KdfParams::new(KdfParams::MIN_MEMORY_KIB, 1, 1).map_err(e2s)?,
            ..Default::default()
        };
        let store = Store::init(&path, PASSWORD, &opts).map_err(e2s)?;
        Ok(OursStore {
            store,
            path,
            kind,
            count: 0,
        })
    }

    /// Items count..to, each exactly as the daemon's CreateItem stores it (durable sets).
    pub(super) fn fill(&mut self, to: usize) -> Result<(), String> {
        let none = BTreeMap::new();
        for i in self.count..to {
            let (l, s) = (label(i), secret(i));
            match self.kind {
                Kind::App => {
                    let attrs: BTreeMap<String, String> = app_attrs(i).into_iter().collect();
                    let id = Identity::synthetic(&attrs);
                    self.store
                        .set_entry(
                            &id.service,
                            &id.username,
                            s.as_bytes(),
                            Some(&l),
                            Some(&attrs),
                        )
                        .map_err(e2s)?;
                }
                Kind::ServiceUser => self
                    .store
                    .set_entry(
                        &su_service(i),
                        &su_user(i),
                        s.as_bytes(),
                        Some(&l),
                        Some(&none),
                    )
                    .map_err(e2s)?,
            }
            self.count = i + 1;
        }
        Ok(())
    }

    /// The daemon on this store, on a bus of its own; it inherits the session keyring that
    /// holds the store's key.
    pub(super) fn start(&self, bin: &Path, dir: &Path) -> Result<Server, String> {
        let mut c = Command::new(bin);
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("KEYRINGRS_STORE", &self.path);
        Server::start(dir, OURS, c, b"")
    }
}

// ---------------------------------------------------------------------------------------------
// gnome-keyring, filled by writing its unencrypted textual keyring before it starts.

/// One value of a key file line: `\` and line breaks escaped.
pub(super) fn keyfile_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// An unencrypted ("textual") gnome-keyring keyring of `n` items of `kind`.
pub(super) fn textual_keyring(kind: Kind, n: usize) -> String {
    use std::fmt::Write as _;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut s = String::with_capacity(n * 260 + 200);
    let _ = write!(
        s,
        "[keyring]\ndisplay-name=bench\nctime={now}\nmtime={now}\nlock-on-idle=false\nlock-after=false\n"
    );
    for i in 0..n {
        let no = i + 1;
        let _ = write!(
            s,
            "\n[{no}]\nitem-type=generic-secret\ndisplay-name={}\nsecret={}\nmtime={now}\nctime={now}\n",
            keyfile_value(&label(i)),
            keyfile_value(&secret(i))
        );
        let attrs: BTreeMap<String, String> = kind.attrs(i).into_iter().collect();
        for (k, (name, value)) in attrs.iter().enumerate() {
            let _ = write!(
                s,
                "\n[{no}:attribute{k}]\nname={}\ntype=string\nvalue={}\n",
                keyfile_value(name),
                keyfile_value(value)
            );
        }
    }
    s
}

/// gnome-keyring-daemon with a fresh HOME in `dir` whose default collection holds `n` items of
/// `kind` (and an empty login keyring, unlocked with a password on stdin).
pub(super) fn gnome_start(dir: &Path, kind: Kind, n: usize) -> Result<Server, String> {
    let _ = std::fs::remove_dir_all(dir);
    let home = dir.join("home");
    let run = dir.join("run");
    let keyrings = home.join(".local/share/keyrings");
    for d in [&keyrings, &run] {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700)).map_err(e2s)?;
    }
    std::fs::write(keyrings.join("bench.keyring"), textual_keyring(kind, n)).map_err(e2s)?;
    std::fs::write(keyrings.join("default"), "bench").map_err(e2s)?;
    let mut c = Command::new(gnome::DAEMON);
    c.env_clear().env("PATH", "/usr/bin:/bin");
    gnome::configure(&mut c, &home, &run);
    let server = Server::start(dir, GK, c, crate::gnome::PASSWORD.as_bytes())?;
    // A textual keyring is loaded locked; it unlocks without a password (no prompt).
    let conn = connect(server.bus.address())?;
    let (_, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = call(
        &conn,
        SERVICE,
        I_SERVICE,
        "Unlock",
        &(vec![OwnedObjectPath::try_from(ALIAS).map_err(e2s)?],),
    )?;
    if prompt.as_str() != "/" {
        return Err("unlocking the textual keyring asked for a prompt".into());
    }
    Ok(server)
}
