//! The "secret-service" group: our daemon `keyringrs-secret-service` beside
//! `gnome-keyring-daemon`, both on a private `dbus-daemon` of their own (the same setup), driven
//! with raw Secret Service calls as libsecret makes them (docs/PERFORMANCE.md, "Secret Service").
//!
//! - Our stores are filled through libkeyring (`Store::set_entry`, exactly what the daemon's
//!   CreateItem stores) before the daemon is started on them; every size restarts the daemon.
//! - gnome-keyring is filled by writing its unencrypted textual keyring file (written by this
//!   module from the format's observed fields: `[keyring]`, `[N]` items, `[N:attributeK]`) into a
//!   fresh `$XDG_DATA_HOME/keyrings`, named as the default collection, before it starts: filling it
//!   over D-Bus is quadratic (it rewrites its file on every CreateItem).
//!
//! Rows: a lookup by an app's own attributes (SearchItems {xdg:schema, id} + GetSecrets over a
//! plain session, the answer checked), the same by service+username, CreateItem of a new item,
//! and 8 concurrent clients' lookups per second.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use keyringrs_rigs::bus::Bus;
use keyringrs_rigs::{gnome, spawn_err};
use libkeyring::mapping::Identity;
use libkeyring::{KdfParams, Store, UnlockOptions};
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value as DValue};

use crate::harness::{compare, fmt_ns, Op, Stats};
use crate::report::{Report, Row, Target, Value};
use crate::{e2s, na, time_row, Config, Scratch, PASSWORD};

const GROUP: &str = "secret-service";
const SCHEMA: &str = "org.example.App";

const DEST: &str = "org.freedesktop.secrets";
const SERVICE: &str = "/org/freedesktop/secrets";
const ALIAS: &str = "/org/freedesktop/secrets/aliases/default";
const I_SERVICE: &str = "org.freedesktop.Secret.Service";
const I_COLLECTION: &str = "org.freedesktop.Secret.Collection";

const OURS: &str = "keyringrs-secret-service";
const GK: &str = "gnome-keyring-daemon";
const LOOKUP_APP: &str = "lookup by an app's attributes (SearchItems xdg:schema+id, GetSecrets)";
const LOOKUP_SU: &str = "lookup by service+username (SearchItems, GetSecrets)";
const CREATE: &str = "CreateItem (replace=true, a new item)";
const LOAD_CLIENTS: usize = 8;

/// The sizes and sample counts of one mode.
#[derive(Debug)]
struct Plan {
    /// Store sizes of the lookup rows.
    lookup_sizes: Vec<usize>,
    /// Store sizes of the CreateItem rows (a superset of `lookup_sizes` and `load_size`).
    create_sizes: Vec<usize>,
    load_size: usize,
    /// Lookups: at most this many samples per row, within `lookup_budget` for all four rows.
    lookup_samples: usize,
    lookup_budget: Duration,
    create_samples: usize,
    create_budget: Duration,
    /// gnome-keyring's CreateItem (it rewrites its keyring file): at most this many samples,
    /// within the budget.
    gk_create_samples: usize,
    gk_create_budget: Duration,
    /// Lookups per client of the load, at most; fewer for a slow server (`load_budget`).
    load_lookups: usize,
    load_budget: Duration,
    /// The fewest samples of a row.
    min_samples: usize,
}

impl Plan {
    /// The mode's plan; `KEYRINGRS_BENCH_SS_SIZES=200,2000` measures the lookup and CreateItem
    /// rows at those store sizes instead (the load at the largest), e.g. to re-measure a table.
    fn new(quick: bool) -> Plan {
        let mut plan = Plan::for_mode(quick);
        if let Ok(v) = std::env::var("KEYRINGRS_BENCH_SS_SIZES") {
            let sizes: Vec<usize> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if let Some(&max) = sizes.iter().max() {
                plan.lookup_sizes = sizes.clone();
                plan.create_sizes = sizes;
                plan.load_size = max;
            }
        }
        plan
    }

    fn for_mode(quick: bool) -> Plan {
        if quick {
            Plan {
                lookup_sizes: vec![10, 100],
                create_sizes: vec![10, 100],
                load_size: 100,
                lookup_samples: 100,
                lookup_budget: Duration::from_millis(800),
                create_samples: 15,
                create_budget: Duration::from_millis(500),
                gk_create_samples: 10,
                gk_create_budget: Duration::from_secs(1),
                load_lookups: 25,
                load_budget: Duration::from_secs(1),
                min_samples: 5,
            }
        } else {
            Plan {
                lookup_sizes: vec![10, 1_000, 10_000],
                create_sizes: vec![10, 1_000, 2_000, 10_000],
                load_size: 2_000,
                lookup_samples: 2_000,
                lookup_budget: Duration::from_secs(8),
                create_samples: 200,
                create_budget: Duration::from_secs(4),
                gk_create_samples: 100,
                gk_create_budget: Duration::from_secs(6),
                load_lookups: 400,
                load_budget: Duration::from_secs(6),
                min_samples: 20,
            }
        }
    }
}

fn app_attrs(i: usize) -> HashMap<String, String> {
    HashMap::from([
        ("xdg:schema".to_string(), SCHEMA.to_string()),
        ("id".to_string(), i.to_string()),
    ])
}
fn su_service(i: usize) -> String {
    format!("app{i}.example.org")
}
fn su_user(i: usize) -> String {
    format!("user{i}")
}
fn su_attrs(i: usize) -> HashMap<String, String> {
    HashMap::from([
        ("service".to_string(), su_service(i)),
        ("username".to_string(), su_user(i)),
    ])
}
fn label(i: usize) -> String {
    format!("item {i}")
}
fn secret(i: usize) -> String {
    format!("secret-{i}")
}

/// Which items a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// {xdg:schema: org.example.App, id: i}, no service/username (a synthetic identity).
    App,
    /// {service: app<i>.example.org, username: user<i>}.
    ServiceUser,
}

impl Kind {
    fn attrs(self, i: usize) -> HashMap<String, String> {
        match self {
            Kind::App => app_attrs(i),
            Kind::ServiceUser => su_attrs(i),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes: a private bus, and a Secret Service daemon on it.

/// A private `dbus-daemon` with a configuration of its own (listens in `dir`, activates nothing:
/// a client asking before the daemon owns the name gets an error, not another daemon).
fn start_bus(dir: &Path) -> Result<Bus, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let conf = dir.join("bus.conf");
    // The test rig's bus (secret-service/tests/private-bus.conf), activating nothing.
    let services = dir.join("services");
    std::fs::create_dir_all(&services).map_err(e2s)?;
    let text = include_str!("../../secret-service/tests/private-bus.conf")
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

fn connect(address: &str) -> Result<Connection, String> {
    zbus::blocking::connection::Builder::address(address)
        .and_then(|b| b.build())
        .map_err(|e| format!("connect to the private bus: {e}"))
}

/// A Secret Service daemon on its own bus; both killed on drop.
#[derive(Debug)]
struct Server {
    daemon: Child,
    bus: Bus,
    log: PathBuf,
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
    fn start(dir: &Path, what: &str, mut cmd: Command, stdin: &[u8]) -> Result<Server, String> {
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
    fn exited(&mut self) -> Option<String> {
        match self.daemon.try_wait() {
            Ok(Some(st)) => Some(format!("{st}: {}", self.last_log_line())),
            _ => None,
        }
    }

    fn last_log_line(&self) -> String {
        std::fs::read_to_string(&self.log)
            .ok()
            .and_then(|s| s.lines().last().map(str::to_string))
            .unwrap_or_else(|| "no output".into())
    }
}

/// The daemon to measure: `$KEYRINGRS_SS_DAEMON`, else the one built next to this binary
/// (`make bench` builds it; a `keyringrs-secret-service` on PATH may be another version).
fn daemon_bin() -> Result<PathBuf, String> {
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
struct OursStore {
    store: Store,
    path: PathBuf,
    kind: Kind,
    /// Items 0..count are in the store (filled, or created by the CreateItem rows).
    count: usize,
}

impl OursStore {
    fn init(path: PathBuf, kind: Kind) -> Result<OursStore, String> {
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
    fn fill(&mut self, to: usize) -> Result<(), String> {
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
    fn start(&self, bin: &Path, dir: &Path) -> Result<Server, String> {
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
fn keyfile_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('\r', "\\r")
}

/// An unencrypted ("textual") gnome-keyring keyring of `n` items of `kind`.
fn textual_keyring(kind: Kind, n: usize) -> String {
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
fn gnome_start(dir: &Path, kind: Kind, n: usize) -> Result<Server, String> {
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

// ---------------------------------------------------------------------------------------------
// The client: raw calls as libsecret makes them, over a plain session.

type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

#[derive(Debug)]
struct Client {
    conn: Connection,
    session: OwnedObjectPath,
}

impl Client {
    fn new(address: &str) -> Result<Client, String> {
        let conn = connect(address)?;
        let (_, session): (OwnedValue, OwnedObjectPath) = call(
            &conn,
            SERVICE,
            I_SERVICE,
            "OpenSession",
            &("plain", DValue::from("")),
        )?;
        Ok(Client { conn, session })
    }

    /// SearchItems(attributes) then GetSecrets(found, session); exactly one item, whose secret
    /// must be `expect`.
    fn lookup(&self, attributes: &HashMap<String, String>, expect: &str) -> Result<(), String> {
        let (found, locked): (Vec<OwnedObjectPath>, Vec<OwnedObjectPath>) = call(
            &self.conn,
            SERVICE,
            I_SERVICE,
            "SearchItems",
            &(attributes,),
        )?;
        if found.len() != 1 {
            return Err(format!(
                "SearchItems found {} unlocked and {} locked items, not 1",
                found.len(),
                locked.len()
            ));
        }
        let secrets: HashMap<OwnedObjectPath, Secret> = call(
            &self.conn,
            SERVICE,
            I_SERVICE,
            "GetSecrets",
            &(&found, &self.session),
        )?;
        match secrets.get(&found[0]) {
            Some(s) if s.2 == expect.as_bytes() => Ok(()),
            Some(_) => Err("GetSecrets: a wrong secret".into()),
            None => Err("GetSecrets: no secret".into()),
        }
    }

    /// CreateItem(properties, secret, replace=true) in the default collection.
    fn create(
        &self,
        attributes: HashMap<String, String>,
        label: &str,
        secret: &str,
    ) -> Result<(), String> {
        let props: HashMap<&str, DValue> = HashMap::from([
            (
                "org.freedesktop.Secret.Item.Attributes",
                DValue::from(attributes),
            ),
            ("org.freedesktop.Secret.Item.Label", DValue::from(label)),
        ]);
        let s: Secret = (
            self.session.clone(),
            Vec::new(),
            secret.as_bytes().to_vec(),
            "text/plain".into(),
        );
        let (_item, prompt): (OwnedObjectPath, OwnedObjectPath) = call(
            &self.conn,
            ALIAS,
            I_COLLECTION,
            "CreateItem",
            &(props, s, true),
        )?;
        if prompt.as_str() == "/" {
            Ok(())
        } else {
            Err(format!(
                "CreateItem asked for a prompt ({})",
                prompt.as_str()
            ))
        }
    }
}

fn call<B, R>(
    conn: &Connection,
    path: &str,
    iface: &str,
    method: &str,
    body: &B,
) -> Result<R, String>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
    R: serde::de::DeserializeOwned + zbus::zvariant::Type,
{
    conn.call_method(Some(DEST), path, Some(iface), method, body)
        .and_then(|m| m.body().deserialize::<R>())
        .map_err(|e| format!("{method}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Measurements.

fn name(server: &str, what: &str) -> String {
    format!("{server}: {what}")
}

/// One call as a warm-up (its error is the contender's), then, unless it took over 50 ms, the
/// median of three timed calls.
fn per_call(op: &mut Op<'_>) -> Result<f64, String> {
    let t = Instant::now();
    op()?;
    let first = t.elapsed().as_nanos() as f64;
    if first > 50e6 {
        return Ok(first);
    }
    let mut v = [0f64; 3];
    for x in &mut v {
        let t = Instant::now();
        op()?;
        *x = t.elapsed().as_nanos() as f64;
    }
    v.sort_by(f64::total_cmp);
    Ok(v[1])
}

/// Samples for contenders of `per_call` ns together within `budget`, in `min..=max`.
fn samples_within(budget: Duration, per_call: f64, min: usize, max: usize) -> usize {
    ((budget.as_nanos() as f64 / per_call.max(1.0)) as usize).clamp(min, max.max(min))
}

/// A lookup of one of 64 items spread over the `n` of `kind` (as the get rows).
fn lookup_op(client: &Client, kind: Kind, n: usize) -> Op<'_> {
    let keys: Vec<(HashMap<String, String>, String)> = crate::picks(n)
        .into_iter()
        .map(|i| (kind.attrs(i), secret(i)))
        .collect();
    let mut k = 0usize;
    Box::new(move || {
        let (q, s) = &keys[k % keys.len()];
        k += 1;
        client.lookup(q, s)
    })
}

/// CreateItem of app item `next`, `next + 1`, ... (a fresh id each call).
fn create_op<'a>(client: &'a Client, next: &'a Cell<usize>) -> Op<'a> {
    Box::new(move || {
        let i = next.get();
        next.set(i + 1);
        client.create(app_attrs(i), &label(i), &secret(i))
    })
}

/// Measure the contenders that are there round-robin, within `budget`; rows in their order.
fn measure(
    contenders: Vec<(String, Result<Op<'_>, String>)>,
    n: usize,
    budget: Duration,
    min: usize,
    max: usize,
    rounds: usize,
) -> Vec<Row> {
    let mut out: Vec<(String, Option<Result<Stats, String>>)> = Vec::new();
    let mut ops: Vec<(String, Op)> = Vec::new();
    let mut cost = 0f64;
    for (name, op) in contenders {
        match op.and_then(|mut op| per_call(&mut op).map(|t| (op, t))) {
            Ok((op, t)) => {
                cost += t;
                ops.push((name.clone(), op));
                out.push((name, None));
            }
            Err(e) => out.push((name, Some(Err(e)))),
        }
    }
    let samples = samples_within(budget, cost, min, max);
    let mut res = compare(&mut ops, 0, samples, rounds).into_iter();
    out.into_iter()
        .map(|(name, r)| {
            let r = r.unwrap_or_else(|| res.next().unwrap_or_else(|| Err("not run".into())));
            time_row(GROUP, &name, Some(n), r)
        })
        .collect()
}

/// `LOAD_CLIENTS` threads, each with its own connection and plain session, each `per_client`
/// app-attribute lookups (answers checked): (lookups per second, per-lookup latency).
fn load(address: &str, n: usize, per_client: usize) -> Result<(f64, Stats), String> {
    let barrier = Arc::new(Barrier::new(LOAD_CLIENTS + 1));
    let threads: Vec<_> = (0..LOAD_CLIENTS)
        .map(|t| {
            let (address, barrier) = (address.to_string(), barrier.clone());
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let client = Client::new(&address);
                barrier.wait();
                let client = client?;
                let mut lat = Vec::with_capacity(per_client);
                for j in 0..per_client {
                    let i = (t * 31 + j * 7919 + 3) % n;
                    let t0 = Instant::now();
                    client.lookup(&app_attrs(i), &secret(i))?;
                    lat.push(t0.elapsed().as_nanos() as f64);
                }
                Ok(lat)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(LOAD_CLIENTS * per_client);
    let mut err = None;
    for t in threads {
        match t.join() {
            Ok(Ok(v)) => lat.extend(v),
            Ok(Err(e)) => err = Some(e),
            Err(_) => err = Some("a client thread panicked".into()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(e) = err {
        return Err(e);
    }
    let total = lat.len();
    let stats = Stats::from_samples(lat).ok_or("no lookups")?;
    Ok((total as f64 / elapsed, stats))
}

fn load_row(
    server: &str,
    n: usize,
    plan: &Plan,
    client: &Result<Client, String>,
    address: Result<&str, String>,
) -> Row {
    let what = name(server, &format!("load: {LOAD_CLIENTS} clients, lookups/s"));
    let r = client.as_ref().map_err(Clone::clone).and_then(|c| {
        let mut op = lookup_op(c, Kind::App, n);
        let t = per_call(&mut op)?;
        let per_client = samples_within(
            plan.load_budget,
            t * LOAD_CLIENTS as f64,
            10,
            plan.load_lookups,
        );
        let (rate, lat) = load(address?, n, per_client)?;
        Ok((rate, lat, per_client))
    });
    match r {
        Ok((rate, lat, per_client)) => Row::new(
            GROUP,
            &what,
            Some(n),
            Value::Rate {
                per_second: rate,
                count: lat.samples,
            },
        )
        .note(format!(
            "{LOAD_CLIENTS} threads × {per_client} lookups (SearchItems xdg:schema+id, GetSecrets, checked), own connections; per lookup median {}, p99 {}",
            fmt_ns(lat.median),
            fmt_ns(lat.p99)
        )),
        Err(e) => na(GROUP, &what, Some(n), e),
    }
}

fn fill(store: &mut Result<OursStore, String>, n: usize) -> Result<(), String> {
    store.as_mut().map_err(|e| e.clone())?.fill(n)
}

fn start_ours(
    store: &Result<OursStore, String>,
    filled: Result<(), String>,
    bin: &Result<PathBuf, String>,
    dir: &Path,
) -> Result<Server, String> {
    filled?;
    let bin = bin.as_ref().map_err(Clone::clone)?;
    store.as_ref().map_err(Clone::clone)?.start(bin, dir)
}

fn client(s: &Result<Server, String>) -> Result<Client, String> {
    s.as_ref()
        .map_err(Clone::clone)
        .and_then(|s| Client::new(s.bus.address()))
}

fn address(s: &Result<Server, String>) -> Result<&str, String> {
    s.as_ref().map(|s| s.bus.address()).map_err(Clone::clone)
}

/// Every row of the group, in a scratch directory of its own.
fn group_rows(plan: &Plan) -> Vec<Row> {
    let t0 = Instant::now();
    let log = |m: &str| eprintln!("[ss {:>5.1}s] {m}", t0.elapsed().as_secs_f64());
    let scratch =
        Scratch(std::env::temp_dir().join(format!("keyringrs-bench-ss-{}", std::process::id())));
    let dir = scratch.0.clone();
    let _ = std::fs::remove_dir_all(&dir);
    // Is there a dbus-daemon (and a directory to work in)?
    let bus_ok = start_bus(&dir.join("probe")).map(drop);
    let bin = bus_ok.clone().and_then(|()| daemon_bin());
    let mut app = bin
        .clone()
        .and_then(|_| OursStore::init(dir.join("store-app"), Kind::App));
    let mut su = bin
        .clone()
        .and_then(|_| OursStore::init(dir.join("store-su"), Kind::ServiceUser));
    let mut rows = Vec::new();
    for &n in &plan.create_sizes {
        let lookups = plan.lookup_sizes.contains(&n);
        log(&format!("{n} items: filling our stores"));
        // The two stores at once (their durable sets wait mostly on fsync).
        let (app_filled, su_filled) = std::thread::scope(|sc| {
            let su = &mut su;
            let su_job = lookups.then(|| sc.spawn(move || fill(su, n)));
            let a = fill(&mut app, n);
            let s = su_job.map_or(Ok(()), |h| {
                h.join()
                    .unwrap_or_else(|_| Err("the fill thread panicked".into()))
            });
            (a, s)
        });
        log(&format!("{n} items: starting the daemons"));
        let mut ours_app = start_ours(&app, app_filled, &bin, &dir.join(format!("ours-app-{n}")));
        // gnome-keyring's two (each reads its whole keyring file: seconds at 10,000) at once.
        let (mut gk_app, gk_su) = std::thread::scope(|sc| {
            let gk = |kind: Kind, tag: &str| {
                let d = dir.join(format!("gk-{tag}-{n}"));
                bus_ok.clone().and_then(|()| gnome_start(&d, kind, n))
            };
            let su_job = lookups.then(|| sc.spawn(move || gk(Kind::ServiceUser, "su")));
            let a = gk(Kind::App, "app");
            let s = su_job.map_or(Err(String::new()), |h| {
                h.join()
                    .unwrap_or_else(|_| Err("the start thread panicked".into()))
            });
            (a, s)
        });
        let ours_su = if lookups {
            start_ours(&su, su_filled, &bin, &dir.join(format!("ours-su-{n}")))
        } else {
            Err(String::new())
        };
        let (c_oa, c_ga) = (client(&ours_app), client(&gk_app));
        if lookups {
            log(&format!("{n} items: lookups"));
            let (c_os, c_gs) = (client(&ours_su), client(&gk_su));
            fn op(c: &Result<Client, String>, kind: Kind, n: usize) -> Result<Op<'_>, String> {
                c.as_ref()
                    .map(|c| lookup_op(c, kind, n))
                    .map_err(Clone::clone)
            }
            rows.extend(measure(
                vec![
                    (name(OURS, LOOKUP_APP), op(&c_oa, Kind::App, n)),
                    (name(GK, LOOKUP_APP), op(&c_ga, Kind::App, n)),
                    (name(OURS, LOOKUP_SU), op(&c_os, Kind::ServiceUser, n)),
                    (name(GK, LOOKUP_SU), op(&c_gs, Kind::ServiceUser, n)),
                ],
                n,
                plan.lookup_budget,
                plan.min_samples,
                plan.lookup_samples,
                10,
            ));
        }
        drop((ours_su, gk_su));
        if n == plan.load_size {
            log(&format!("{n} items: load"));
            rows.push(load_row(OURS, n, plan, &c_oa, address(&ours_app)));
            rows.push(load_row(GK, n, plan, &c_ga, address(&gk_app)));
            for (srv, what) in [(&mut ours_app, OURS), (&mut gk_app, GK)] {
                if let Some(e) = srv.as_mut().ok().and_then(Server::exited) {
                    eprintln!("{what} exited during the load: {e}");
                }
            }
        }
        log(&format!("{n} items: CreateItem"));
        let next_ours = Cell::new(app.as_ref().map_or(0, |s| s.count));
        let next_gk = Cell::new(n);
        rows.extend(measure(
            vec![(
                name(OURS, CREATE),
                c_oa.as_ref()
                    .map(|c| create_op(c, &next_ours))
                    .map_err(Clone::clone),
            )],
            n,
            plan.create_budget,
            plan.min_samples,
            plan.create_samples,
            5,
        ));
        rows.extend(measure(
            vec![(
                name(GK, CREATE),
                c_ga.as_ref()
                    .map(|c| create_op(c, &next_gk))
                    .map_err(Clone::clone),
            )],
            n,
            plan.gk_create_budget,
            3,
            plan.gk_create_samples,
            1,
        ));
        if let Ok(a) = &mut app {
            a.count = next_ours.get();
        }
    }
    // The stores' keys out of the session keyring (the files go with the scratch directory).
    for s in [&app, &su].into_iter().flatten() {
        let _ = s.store.lock();
    }
    log("done");
    rows
}

/// Our rows ÷ gnome-keyring's of the same measurement and size.
fn annotate(rows: &mut [Row]) {
    let snapshot = rows.to_vec();
    for r in rows.iter_mut() {
        let (Some(m), Some(what)) = (r.median(), r.name.strip_prefix(&format!("{OURS}: "))) else {
            continue;
        };
        let peer = snapshot
            .iter()
            .find(|p| p.name == name(GK, what) && p.entries == r.entries)
            .and_then(Row::median);
        r.vs_peer = peer.map(|p| ("gnome-keyring".to_string(), m / p));
    }
}

fn find<'a>(rows: &'a [Row], server: &str, what: &str, n: usize) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.name == name(server, what) && r.entries == Some(n))
}

fn med(rows: &[Row], server: &str, what: &str, n: usize) -> Option<f64> {
    find(rows, server, what, n).and_then(Row::median)
}

/// Why a row has no number (for a target that cannot be judged).
fn why(rows: &[Row], server: &str, what: &str, n: usize) -> String {
    match find(rows, server, what, n).map(|r| &r.value) {
        Some(Value::NotAvailable(w)) => format!("{server} at {n}: n/a ({w})"),
        Some(_) => String::new(),
        None => format!("{server} at {n}: not measured"),
    }
}

fn ratio_target(
    name: String,
    a: (Option<f64>, String),
    b: (Option<f64>, String),
    sep: &str,
    limit: f64,
) -> Target {
    match (a.0, b.0) {
        (Some(x), Some(y)) => Target {
            name,
            measured: format!("{}{sep}{} = {:.2}×", fmt_ns(x), fmt_ns(y), x / y),
            met: Some(x / y <= limit),
        },
        _ => Target {
            name,
            measured: format!("not measured: {}", [a.1, b.1].join(" ").trim()),
            met: None,
        },
    }
}

fn targets(rows: &[Row], plan: &Plan) -> Vec<Target> {
    let mut t = Vec::new();
    let lo = plan.lookup_sizes[0];
    let hi = *plan.lookup_sizes.last().unwrap_or(&lo);
    let get = |server: &str, what: &str, n: usize| {
        (med(rows, server, what, n), why(rows, server, what, n))
    };
    // flat: the median at the largest size ÷ the one at the smallest.
    t.push(ratio_target(
        format!("Secret Service: lookup by an app's attributes flat from {lo} to {hi} items (within 1.5×)"),
        get(OURS, LOOKUP_APP, hi),
        get(OURS, LOOKUP_APP, lo),
        " at the top vs ",
        1.5,
    ));
    t.push(ratio_target(
        format!("Secret Service: lookup by an app's attributes within 2× of a service+username lookup at {hi} items"),
        get(OURS, LOOKUP_APP, hi),
        get(OURS, LOOKUP_SU, hi),
        " vs ",
        2.0,
    ));
    {
        let mut parts = Vec::new();
        let mut slower = false;
        let mut missing = false;
        for &n in &plan.lookup_sizes {
            match (med(rows, OURS, LOOKUP_APP, n), med(rows, GK, LOOKUP_APP, n)) {
                (Some(o), Some(g)) => {
                    slower |= o >= g;
                    parts.push(format!(
                        "{n}: {} vs {} ({:.1}× faster)",
                        fmt_ns(o),
                        fmt_ns(g),
                        g / o
                    ));
                }
                _ => {
                    missing = true;
                    let w = [why(rows, OURS, LOOKUP_APP, n), why(rows, GK, LOOKUP_APP, n)];
                    parts.push(format!("{n}: not measured ({})", w.join(" ").trim()));
                }
            }
        }
        t.push(Target {
            name: "Secret Service: lookup by an app's attributes faster than gnome-keyring at every size".into(),
            measured: parts.join("; "),
            met: if slower {
                Some(false)
            } else if missing {
                None
            } else {
                Some(true)
            },
        });
    }
    let clo = plan.create_sizes[0];
    let chi = *plan.create_sizes.last().unwrap_or(&clo);
    t.push(ratio_target(
        format!("Secret Service: CreateItem flat from {clo} to {chi} items (within 1.5×)"),
        get(OURS, CREATE, chi),
        get(OURS, CREATE, clo),
        " at the top vs ",
        1.5,
    ));
    let cref = if plan.create_sizes.contains(&2_000) {
        2_000
    } else {
        plan.load_size
    };
    t.push(ratio_target(
        format!("Secret Service: CreateItem ≤ half of gnome-keyring's at {cref} items"),
        get(OURS, CREATE, cref),
        get(GK, CREATE, cref),
        " vs ",
        0.5,
    ));
    {
        let what = format!("load: {LOAD_CLIENTS} clients, lookups/s");
        let rate = |server: &str| match find(rows, server, &what, plan.load_size).map(|r| &r.value)
        {
            Some(Value::Rate { per_second, .. }) => Ok(*per_second),
            Some(Value::NotAvailable(w)) => Err(format!("{server}: n/a ({w})")),
            _ => Err(format!("{server}: not measured")),
        };
        let name = format!(
            "Secret Service: {LOAD_CLIENTS}-client load ≥ 2× gnome-keyring's lookups/s (at {} items)",
            plan.load_size
        );
        t.push(match (rate(OURS), rate(GK)) {
            (Ok(o), Ok(g)) => Target {
                name,
                measured: format!("{o:.0}/s vs {g:.0}/s = {:.2}×", o / g),
                met: Some(o >= 2.0 * g),
            },
            (a, b) => Target {
                name,
                measured: format!(
                    "not measured: {}",
                    [a.err(), b.err()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                met: None,
            },
        });
    }
    t
}

/// Measure the group and add its rows and targets to the report's.
pub fn add(cfg: &Config, rows: &mut Vec<Row>, targets: &mut Vec<Target>) {
    let plan = Plan::new(cfg.quick);
    let mut r = group_rows(&plan);
    annotate(&mut r);
    targets.extend(self::targets(&r, &plan));
    rows.extend(r);
}

/// `--only secret-service`: this group alone, in a session keyring of its own; writes
/// DIR/secret-service.{json,md} (quick: DIR/quick-secret-service.{json,md}).
pub fn run_alone(cfg: &Config) -> Result<(), String> {
    let t0 = Instant::now();
    libkeyring::keyring::join_session(None).map_err(|e| format!("join a session keyring: {e}"))?;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    add(cfg, &mut rows, &mut targets);
    let report = Report {
        mode: format!(
            "{}, secret-service only",
            if cfg.quick { "quick" } else { "full" }
        ),
        machine: crate::machine(crate::sys::is_tmpfs(&std::env::temp_dir())),
        rows,
        targets,
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    print!("{}", report.text());
    std::fs::create_dir_all(&cfg.out).map_err(e2s)?;
    let stem = if cfg.quick {
        "quick-secret-service"
    } else {
        "secret-service"
    };
    for (ext, body) in [("json", report.json()), ("md", report.markdown())] {
        let p = cfg.out.join(format!("{stem}.{ext}"));
        std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
