//! Harness: a private `dbus-daemon` (its own config: no system bus, no other services), a fresh
//! session keyring, a temp store with small Argon2 parameters, and the daemon on that bus.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyringrs_secret_service::crypto::{self, ClientDh, SessionKey};
pub use keyringrs_tests::*;
use zbus::zvariant::{DynamicType, OwnedObjectPath, OwnedValue, Value};

pub const DEST: &str = "org.freedesktop.secrets";
pub const SERVICE: &str = "/org/freedesktop/secrets";
pub const COLLECTION: &str = "/org/freedesktop/secrets/collection/login";
pub const ALIAS: &str = "/org/freedesktop/secrets/aliases/default";
pub const I_SERVICE: &str = "org.freedesktop.Secret.Service";
pub const I_COLLECTION: &str = "org.freedesktop.Secret.Collection";
pub const I_ITEM: &str = "org.freedesktop.Secret.Item";
pub const I_SESSION: &str = "org.freedesktop.Secret.Session";
pub const I_PROMPT: &str = "org.freedesktop.Secret.Prompt";
/// What SearchItems answers in `locked` for a locked store (locked_result.rs).
pub const LOCKED_RESULT_PREFIX: &str = "/org/freedesktop/secrets/collection/login/locked_";

pub type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

mod scenario;
pub use scenario::*;

/// The daemon under test: the one cargo built for these tests, or `$KEYRINGRS_SS_DAEMON` (e.g. a
/// release build, to measure it).
pub fn daemon_bin() -> PathBuf {
    std::env::var_os("KEYRINGRS_SS_DAEMON")
        .filter(|p| !p.is_empty())
        .map_or_else(
            || PathBuf::from(env!("CARGO_BIN_EXE_keyringrs-secret-service")),
            PathBuf::from,
        )
}

/// Are the tools there? `make test` installs them; a bare `cargo test` without them skips loudly.
pub fn have_tools() -> bool {
    let ok = ["dbus-daemon", "secret-tool"].iter().all(|t| {
        Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if !ok {
        if std::env::var_os("KEYRINGRS_REQUIRE_DBUS").is_some() {
            panic!("dbus-daemon or secret-tool missing (make test-deps installs them)");
        }
        eprintln!("SKIPPED: dbus-daemon or secret-tool missing (make test-deps installs them)");
    }
    ok
}

#[macro_export]
macro_rules! require_tools {
    () => {
        if !$crate::common::have_tools() {
            return;
        }
    };
}

/// The private bus's configuration (secret-service/tests/private-bus.conf): listening in `dir`,
/// activating only what `services` holds.
pub fn bus_conf(dir: &Path, services: &Path) -> String {
    include_str!("../private-bus.conf")
        .replace("@DIR@", &dir.display().to_string())
        .replace("@SERVICES@", &services.display().to_string())
}

/// A new connection to the bus at `address` (one connection = one D-Bus client).
pub fn connect_to(address: &str) -> zbus::blocking::Connection {
    zbus::blocking::connection::Builder::address(address)
        .unwrap()
        .build()
        .expect("connect to the test bus")
}

/// A private session bus, killed on drop.
#[derive(Debug)]
pub struct Bus {
    child: Child,
    pub address: String,
}

impl Bus {
    /// Start `dbus-daemon` with a config that activates only from `dir/services` and listens in
    /// `dir`. `env` is the bus's environment (what activated services inherit).
    pub fn start(dir: &Path, env: &[(&str, String)]) -> Bus {
        let services = dir.join("services");
        std::fs::create_dir_all(&services).unwrap();
        let conf = dir.join("bus.conf");
        std::fs::write(&conf, bus_conf(dir, &services)).unwrap();
        let mut c = Command::new("dbus-daemon");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .arg(format!("--config-file={}", conf.display()))
            .args(["--print-address", "--nofork"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().expect("start dbus-daemon");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("bus address");
        let address = line.trim().to_string();
        assert!(address.starts_with("unix:"), "bus address {address:?}");
        Bus { child, address }
    }

    pub fn connect(&self) -> zbus::blocking::Connection {
        connect_to(&self.address)
    }

    pub fn name_has_owner(&self, name: &str) -> bool {
        let c = self.connect();
        zbus::blocking::fdo::DBusProxy::new(&c)
            .unwrap()
            .name_has_owner(name.try_into().unwrap())
            .unwrap()
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A store, a bus and the daemon on it, in a fresh session keyring of the calling thread.
#[derive(Debug)]
pub struct Env {
    pub daemon: Option<Child>,
    pub bus: Bus,
    pub dir: TempDir,
}

impl Env {
    pub fn kdf_env(store: &Path) -> Vec<(&'static str, String)> {
        vec![
            ("KEYRINGRS_STORE", store.display().to_string()),
            ("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string()),
            ("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string()),
        ]
    }

    /// Store initialised with password "pw" (unlocked), bus, daemon started and on the bus.
    pub fn start(tag: &str) -> Env {
        Self::start_with(tag, &[])
    }

    pub fn start_with(tag: &str, daemon_env: &[(&str, String)]) -> Env {
        let env = Self::start_bus(tag);
        let mut env = env;
        env.daemon = Some(env.spawn_daemon(daemon_env));
        env.wait_for_name();
        env
    }

    /// Store and bus, no daemon.
    pub fn start_bus(tag: &str) -> Env {
        fresh_session();
        let dir = TempDir::new(tag);
        assert_exit(
            &keyringrs(&dir.store(), &["init", "--password-stdin"], b"pw\n"),
            0,
        );
        let bus = Bus::start(dir.path(), &Self::kdf_env(&dir.store()));
        Env {
            daemon: None,
            bus,
            dir,
        }
    }

    pub fn daemon_command(&self, extra: &[(&str, String)]) -> Command {
        let mut c = Command::new(daemon_bin());
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address);
        for (k, v) in Self::kdf_env(&self.dir.store()).iter().chain(extra) {
            c.env(k, v);
        }
        c
    }

    pub fn spawn_daemon(&self, extra: &[(&str, String)]) -> Child {
        self.daemon_command(extra)
            .stdin(Stdio::null())
            .spawn()
            .expect("start keyringrs-secret-service")
    }

    pub fn wait_for_name(&self) {
        let t = Instant::now();
        while !self.bus.name_has_owner(DEST) {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the daemon did not take {DEST}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.store()
    }

    pub fn cli(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        keyringrs(&self.store(), args, stdin)
    }

    /// `secret-tool args...` on this bus.
    pub fn secret_tool(&self, args: &[&str], stdin: &[u8]) -> std::process::Output {
        let mut c = Command::new("secret-tool");
        c.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("DBUS_SESSION_BUS_ADDRESS", &self.bus.address)
            .args(args);
        run(c, stdin)
    }

    pub fn client(&self) -> Client {
        Client {
            conn: self.bus.connect(),
        }
    }

    /// The daemon is still there and answers.
    pub fn assert_alive(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            assert!(d.try_wait().unwrap().is_none(), "the daemon exited");
        }
        let c = self.client();
        let v: Vec<OwnedObjectPath> = c.get(SERVICE, I_SERVICE, "Collections").unwrap();
        assert_eq!(v.len(), 2, "login and session: {v:?}");
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        self.stop_daemon();
    }
}

/// The D-Bus error name of a failed call.
pub fn error_name(e: &zbus::Error) -> String {
    match e {
        zbus::Error::MethodError(name, _, _) => name.to_string(),
        other => format!("(not a method error) {other}"),
    }
}

pub fn attrs(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn op(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p.to_string()).unwrap()
}

/// A client of the Secret Service with raw calls (one connection = one D-Bus client).
#[derive(Debug)]
pub struct Client {
    pub conn: zbus::blocking::Connection,
}

impl Client {
    pub fn call<B, R>(&self, path: &str, iface: &str, method: &str, body: &B) -> zbus::Result<R>
    where
        B: serde::Serialize + DynamicType,
        R: serde::de::DeserializeOwned + zbus::zvariant::Type,
    {
        let msg = self
            .conn
            .call_method(Some(DEST), path, Some(iface), method, body)?;
        msg.body().deserialize::<R>()
    }

    pub fn get<T>(&self, path: &str, iface: &str, prop: &str) -> zbus::Result<T>
    where
        T: TryFrom<OwnedValue>,
        <T as TryFrom<OwnedValue>>::Error: std::fmt::Debug,
    {
        let v: OwnedValue = self.call(
            path,
            "org.freedesktop.DBus.Properties",
            "Get",
            &(iface, prop),
        )?;
        Ok(T::try_from(v).expect("property type"))
    }

    pub fn set<'a>(
        &self,
        path: &str,
        iface: &str,
        prop: &str,
        value: Value<'a>,
    ) -> zbus::Result<()> {
        self.call::<_, ()>(
            path,
            "org.freedesktop.DBus.Properties",
            "Set",
            &(iface, prop, value),
        )
    }

    pub fn open_plain(&self) -> Session {
        let (_out, path): (OwnedValue, OwnedObjectPath) = self
            .call(
                SERVICE,
                I_SERVICE,
                "OpenSession",
                &("plain", Value::from("")),
            )
            .expect("OpenSession plain");
        (path, SessionKey::plain())
    }

    pub fn open_dh(&self) -> Session {
        let dh = ClientDh::new();
        let (out, path): (OwnedValue, OwnedObjectPath) = self
            .call(
                SERVICE,
                I_SERVICE,
                "OpenSession",
                &(crypto::DH_AES, Value::from(dh.public())),
            )
            .expect("OpenSession dh");
        let server: Vec<u8> = Vec::try_from(out).expect("ay output");
        (path, dh.finish(&server).expect("server public key"))
    }

    pub fn secret(session: &OwnedObjectPath, key: &SessionKey, value: &[u8]) -> Secret {
        let (params, ct) = key.encrypt(value);
        (session.clone(), params, ct, "text/plain".into())
    }

    pub fn create(
        &self,
        session: &Session,
        attributes: &HashMap<String, String>,
        label: &str,
        value: &[u8],
        replace: bool,
    ) -> zbus::Result<OwnedObjectPath> {
        let secret = Self::secret(&session.0, &session.1, value);
        let (item, prompt) = self.create_item(COLLECTION, attributes, label, secret, replace)?;
        assert_eq!(prompt.as_str(), "/");
        Ok(item)
    }

    /// SearchItems' unlocked items (its `locked` answer may only be the one locked result a
    /// locked store answers: see search_both).
    pub fn search(&self, query: &HashMap<String, String>) -> Vec<OwnedObjectPath> {
        let (unlocked, locked) = self.search_both(query);
        assert!(locked.len() <= 1, "{locked:?}");
        assert!(
            locked
                .iter()
                .all(|p| p.as_str().starts_with(LOCKED_RESULT_PREFIX)),
            "{locked:?}"
        );
        unlocked
    }

    /// SearchItems: (unlocked, locked).
    pub fn search_both(
        &self,
        query: &HashMap<String, String>,
    ) -> (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) {
        self.call(SERVICE, I_SERVICE, "SearchItems", &(query,))
            .expect("SearchItems")
    }

    /// GetSecret, decrypted with `session`'s key.
    pub fn get_secret(&self, item: &str, session: &Session) -> zbus::Result<Vec<u8>> {
        let (s,): (Secret,) = self.call(item, I_ITEM, "GetSecret", &(&session.0,))?;
        assert_eq!(s.0, session.0);
        Ok(session.1.decrypt(&s.1, &s.2).expect("decrypt").to_vec())
    }
}

/// The D-Bus error names of the limits and ownership checks.
pub const LIMITS_EXCEEDED: &str = "org.freedesktop.DBus.Error.LimitsExceeded";
pub const ACCESS_DENIED: &str = "org.freedesktop.DBus.Error.AccessDenied";
pub const UNKNOWN_OBJECT: &str = "org.freedesktop.DBus.Error.UnknownObject";
pub const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";
pub const NOT_SUPPORTED: &str = "org.freedesktop.DBus.Error.NotSupported";

impl Env {
    /// The daemon's pid (started by the harness).
    pub fn daemon_pid(&self) -> u32 {
        self.daemon
            .as_ref()
            .expect("a daemon started by the harness")
            .id()
    }

    /// The daemon's resident set size in KiB (`VmRSS` of /proc/<pid>/status).
    pub fn daemon_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.daemon_pid()))
            .expect("the daemon's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }
}

impl Client {
    /// `Service.OpenSession("plain")`, the error kept.
    pub fn try_open_plain(&self) -> zbus::Result<OwnedObjectPath> {
        let (_out, path): (OwnedValue, OwnedObjectPath) = self.call(
            SERVICE,
            I_SERVICE,
            "OpenSession",
            &("plain", Value::from("")),
        )?;
        Ok(path)
    }

    /// `Service.Unlock([collection])`: (unlocked objects, prompt).
    pub fn unlock(&self) -> zbus::Result<(Vec<OwnedObjectPath>, OwnedObjectPath)> {
        self.call(SERVICE, I_SERVICE, "Unlock", &(vec![op(COLLECTION)],))
    }

    /// Introspection XML of `path` (empty for a path with no object at or below it, which zbus
    /// answers with UnknownObject).
    pub fn introspect(&self, path: &str) -> String {
        match self.call(
            path,
            "org.freedesktop.DBus.Introspectable",
            "Introspect",
            &(),
        ) {
            Ok(xml) => xml,
            Err(e) if error_name(&e) == UNKNOWN_OBJECT => String::new(),
            Err(e) => panic!("Introspect {path}: {e}"),
        }
    }

    /// Does `path` serve `iface`? (Asked through introspection, which never has side effects.)
    pub fn serves(&self, path: &str, iface: &str) -> bool {
        self.introspect(path)
            .contains(&format!("<interface name=\"{iface}\""))
    }

    /// A watcher of `member` signals of `iface` (any path); read with `MessageIterator::next`.
    pub fn signals(&self, iface: &str, member: &str) -> zbus::blocking::MessageIterator {
        let rule = zbus::MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(iface.to_string())
            .unwrap()
            .member(member.to_string())
            .unwrap()
            .build();
        zbus::blocking::MessageIterator::for_match_rule(rule, &self.conn, Some(4096)).unwrap()
    }
}

/// Wait up to `limit` for `cond`; false if it never held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let t = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if t.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
