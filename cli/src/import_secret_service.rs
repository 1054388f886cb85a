//! `keyringrs import secret-service` (docs/IMPORT.md): read every item of the provider that owns
//! `org.freedesktop.secrets` on the session bus (gnome-keyring, KWallet's bridge, KeePassXC,
//! oo7...), through a `plain` session, unlocking locked collections through the provider's own
//! prompt; each item's label, attributes, `Created`/`Modified` times and secret. Only reading calls are made on the provider (properties, `GetSecrets`; `Unlock` and
//! its prompt change nothing stored); never `Delete`, `SetSecret` or `CreateItem`. Refuses when
//! the provider is keyringrs-secret-service itself.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use keyringrs_import::Item;
use zbus::blocking::{fdo::DBusProxy, proxy, Connection, Proxy};
use zbus::names::{BusName, OwnedUniqueName};
use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue, Value};
use zeroize::Zeroizing;

use crate::{fail, warn, Failure};

const NAME: &str = "org.freedesktop.secrets";
const SERVICE: &str = "/org/freedesktop/secrets";
const I_SERVICE: &str = "org.freedesktop.Secret.Service";
const I_COLLECTION: &str = "org.freedesktop.Secret.Collection";
const I_ITEM: &str = "org.freedesktop.Secret.Item";
const I_SESSION: &str = "org.freedesktop.Secret.Session";
const I_PROMPT: &str = "org.freedesktop.Secret.Prompt";
/// Our own daemon's executable name, and its first 15 bytes (what /proc/PID/comm holds).
const OUR_DAEMON: &str = "keyringrs-secret-service";
/// How long the provider's unlock prompt may take.
const PROMPT_TIMEOUT: Duration = Duration::from_secs(120);
/// How long any other call to the provider may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// (session, parameters, value, content type): the Secret Service's `Secret` struct.
type Secret = (OwnedObjectPath, Vec<u8>, Vec<u8>, String);

/// A D-Bus failure as a one-line error.
fn dbus(what: &str) -> impl Fn(zbus::Error) -> Failure + '_ {
    move |e| match e {
        zbus::Error::MethodError(name, msg, _) => fail(format!(
            "Secret Service provider: {what}: {name}{}",
            msg.map(|m| format!(": {m}")).unwrap_or_default()
        )),
        e => fail(format!("Secret Service provider: {what}: {e}")),
    }
}

/// Who provides the Secret Service: its pid, executable and command name, as far as known.
struct Provider {
    pid: Option<u32>,
    exe: Option<PathBuf>,
    comm: Option<String>,
}

impl Provider {
    fn of(dbus_proxy: &DBusProxy<'_>, owner: &OwnedUniqueName) -> Provider {
        let pid = dbus_proxy
            .get_connection_unix_process_id(BusName::Unique(owner.as_ref()))
            .ok()
            .filter(|p| *p > 0);
        let exe = pid.and_then(|p| std::fs::read_link(format!("/proc/{p}/exe")).ok());
        let comm = pid.and_then(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm"))
                .ok()
                .map(|c| c.trim_end_matches('\n').to_string())
        });
        Provider { pid, exe, comm }
    }

    /// Is it keyringrs-secret-service? By the executable's file name (` (deleted)` when the
    /// binary was replaced meanwhile), else (when /proc/PID/exe cannot be read, e.g. another
    /// user's non-dumpable process) by its command name, which the kernel cuts to 15 bytes.
    fn is_ours(&self) -> bool {
        if let Some(exe) = &self.exe {
            let name = exe
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return name.strip_suffix(" (deleted)").unwrap_or(&name) == OUR_DAEMON;
        }
        self.comm
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c == &OUR_DAEMON[..OUR_DAEMON.len().min(15)])
    }

    fn describe(&self) -> String {
        let name = self
            .exe
            .as_ref()
            .and_then(|e| e.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .or_else(|| self.comm.clone());
        match (name, self.pid) {
            (Some(n), Some(p)) => format!("{n} (pid {p})"),
            (None, Some(p)) => format!("pid {p}"),
            (Some(n), None) => n,
            (None, None) => "unknown program".into(),
        }
    }
}

/// A proxy on the provider (its unique name, so every call goes to the process checked).
fn proxy_on(
    conn: &Connection,
    dest: &OwnedUniqueName,
    path: &str,
    iface: &'static str,
) -> Result<Proxy<'static>, Failure> {
    proxy::Builder::<Proxy<'static>>::new(conn)
        .destination(dest.clone())
        .and_then(|b| b.path(path.to_string()))
        .and_then(|b| b.interface(iface))
        .map(|b| b.cache_properties(CacheProperties::No))
        .and_then(|b| b.build())
        .map_err(dbus("proxy"))
}

/// The provider's label, last path element and aliases of collections, for messages and
/// `--collection`.
fn last_element(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn connect() -> Result<Connection, Failure> {
    zbus::blocking::connection::Builder::session()
        .map(|b| b.method_timeout(CALL_TIMEOUT))
        .and_then(|b| b.build())
        .map_err(|e| {
            fail(format!(
                "cannot connect to the session bus (DBUS_SESSION_BUS_ADDRESS): {e}"
            ))
        })
}

/// `keyringrs unlock` without a terminal in a graphical session: the unlock prompt of
/// keyringrs-secret-service (the desktop's dialog, docs/SECRET-SERVICE.md), started by the bus
/// if it is not running. Ok once its prompt completed unlocked.
pub fn unlock_through_daemon() -> Result<(), Failure> {
    let conn = connect()?;
    let bus = DBusProxy::new(&conn).map_err(dbus("org.freedesktop.DBus"))?;
    let name = BusName::try_from(NAME).expect("valid name");
    let _ = bus.start_service_by_name(name.as_ref().try_into().expect("well-known name"), 0);
    let owner = bus.get_name_owner(name).map_err(|e| {
        fail(format!(
            "no terminal to ask for the password, and no Secret Service daemon to show the desktop's dialog ({e}): use --password-stdin"
        ))
    })?;
    let provider = Provider::of(&bus, &owner);
    if !provider.is_ours() {
        return Err(fail(format!(
            "no terminal to ask for the password, and the Secret Service provider on the session bus is {}, not keyringrs-secret-service: use --password-stdin",
            provider.describe()
        )));
    }
    let service = proxy_on(&conn, &owner, SERVICE, I_SERVICE)?;
    let login =
        OwnedObjectPath::try_from("/org/freedesktop/secrets/collection/login").expect("valid path");
    unlock(
        &conn,
        &owner,
        &service,
        vec![login],
        "the store stays locked",
    )
}

/// Read every item (of `collection` only, if given): (description of the source, items).
pub fn read(collection: Option<&str>) -> Result<(String, Vec<Item>), Failure> {
    let conn = connect()?;
    let bus = DBusProxy::new(&conn).map_err(dbus("org.freedesktop.DBus"))?;
    // GetNameOwner never starts an activatable provider: we import only from a running one.
    let owner = match bus.get_name_owner(BusName::try_from(NAME).expect("valid name")) {
        Ok(o) => o,
        Err(zbus::fdo::Error::NameHasNoOwner(_)) => {
            return Err(fail(format!(
                "no Secret Service provider is running on the session bus (nothing owns {NAME})"
            )))
        }
        Err(e) => return Err(fail(format!("cannot find the owner of {NAME}: {e}"))),
    };
    let provider = Provider::of(&bus, &owner);
    if provider.is_ours() {
        return Err(fail(format!(
            "the Secret Service provider on the session bus is keyringrs-secret-service itself ({}): nothing to import; start the provider to import from (e.g. gnome-keyring-daemon) in its place",
            provider.describe()
        )));
    }
    if provider.pid.is_none() {
        warn(&format!(
            "cannot tell which program owns {NAME} (no process id from the bus); importing from it"
        ));
    }

    let service = proxy_on(&conn, &owner, SERVICE, I_SERVICE)?;
    let all: Vec<OwnedObjectPath> = service
        .get_property("Collections")
        .map_err(dbus("Collections"))?;
    let mut labels = Vec::with_capacity(all.len());
    for c in &all {
        let p = proxy_on(&conn, &owner, c.as_str(), I_COLLECTION)?;
        let label: String = p.get_property("Label").map_err(dbus("collection Label"))?;
        labels.push(label);
    }
    let chosen: Vec<(OwnedObjectPath, String)> = match collection {
        None => all.into_iter().zip(labels).collect(),
        Some(name) => {
            let alias: Option<OwnedObjectPath> = service
                .call::<_, _, OwnedObjectPath>("ReadAlias", &(name,))
                .ok()
                .filter(|p| p.as_str() != "/");
            let found: Vec<_> = all
                .iter()
                .zip(&labels)
                .filter(|(p, l)| {
                    l.as_str() == name
                        || last_element(p.as_str()) == name
                        || alias.as_ref() == Some(*p)
                })
                .map(|(p, l)| (p.clone(), l.clone()))
                .collect();
            if found.is_empty() {
                let names: Vec<String> = all
                    .iter()
                    .zip(&labels)
                    .map(|(p, l)| format!("{l:?} ({})", last_element(p.as_str())))
                    .collect();
                return Err(fail(format!(
                    "no collection {name:?} at the Secret Service provider {} (it has: {})",
                    provider.describe(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                )));
            }
            found
        }
    };

    // Locked collections first (a locked collection may not list its items), then locked items.
    let mut locked = Vec::new();
    for (c, _) in &chosen {
        let p = proxy_on(&conn, &owner, c.as_str(), I_COLLECTION)?;
        if p.get_property::<bool>("Locked").unwrap_or(false) {
            locked.push(c.clone());
        }
    }
    unlock(&conn, &owner, &service, locked, "nothing imported")?;
    let mut paths: Vec<OwnedObjectPath> = Vec::new();
    for (c, label) in &chosen {
        let p = proxy_on(&conn, &owner, c.as_str(), I_COLLECTION)?;
        let items: Vec<OwnedObjectPath> = p
            .get_property("Items")
            .map_err(dbus(&format!("Items of collection {label:?}")))?;
        paths.extend(items);
    }
    // The same item listed twice (through two collections' views) is read once.
    let mut seen = std::collections::HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    let mut meta = Vec::with_capacity(paths.len());
    let mut locked = Vec::new();
    for path in &paths {
        let p = proxy_on(&conn, &owner, path.as_str(), I_ITEM)?;
        let label: String = p
            .get_property("Label")
            .map_err(dbus(&format!("Label of {path}")))?;
        let attributes: HashMap<String, String> = p
            .get_property("Attributes")
            .map_err(dbus(&format!("Attributes of {label:?}")))?;
        if p.get_property::<bool>("Locked").unwrap_or(false) {
            locked.push(path.clone());
        }
        // Unix seconds; a provider without them (or with an absurd value) leaves the store to
        // stamp the import's time.
        let time = |name: &str| {
            p.get_property::<u64>(name)
                .ok()
                .and_then(|t| i64::try_from(t).ok())
        };
        let times = (time("Created"), time("Modified"));
        meta.push((
            label,
            attributes.into_iter().collect::<BTreeMap<_, _>>(),
            times,
        ));
    }
    unlock(&conn, &owner, &service, locked, "nothing imported")?;

    // A plain session: the secrets travel unencrypted over the local session bus.
    let (_, session): (OwnedValue, OwnedObjectPath) = service
        .call("OpenSession", &("plain", Value::from("")))
        .map_err(dbus("OpenSession(\"plain\")"))?;
    let secrets = if paths.is_empty() {
        Ok(HashMap::new())
    } else {
        let refs: Vec<ObjectPath<'_>> = paths.iter().map(|p| p.as_ref()).collect();
        service
            .call::<_, _, HashMap<OwnedObjectPath, Secret>>("GetSecrets", &(refs, &session))
            .map_err(dbus("GetSecrets"))
    };
    if let Ok(s) = proxy_on(&conn, &owner, session.as_str(), I_SESSION) {
        let _ = s.call::<_, _, ()>("Close", &());
    }
    let mut secrets = secrets?;
    let mut items = Vec::with_capacity(paths.len());
    for (path, (label, attributes, (created, modified))) in paths.iter().zip(meta) {
        // The content type (4th field) is read but not kept: a store entry has no place for it.
        let Some((_, _, value, _content_type)) = secrets.remove(path) else {
            return Err(fail(format!(
                "the Secret Service provider gave no secret for item {label:?} ({path}), still locked?; nothing imported"
            )));
        };
        items.push(Item {
            label,
            attributes,
            secret: Zeroizing::new(value),
            created,
            modified,
        });
    }
    for (_, (_, _, mut v, _)) in secrets.drain() {
        zeroize::Zeroize::zeroize(&mut v);
    }
    let names: Vec<String> = chosen
        .iter()
        .map(|(p, l)| {
            if l.is_empty() {
                last_element(p.as_str()).to_string()
            } else {
                format!("{l:?}")
            }
        })
        .collect();
    Ok((
        format!(
            "the Secret Service provider {} (collections {})",
            provider.describe(),
            names.join(", ")
        ),
        items,
    ))
}

/// `Unlock` these objects, through the provider's prompt if it returns one.
fn unlock(
    conn: &Connection,
    owner: &OwnedUniqueName,
    service: &Proxy<'_>,
    objects: Vec<OwnedObjectPath>,
    otherwise: &str,
) -> Result<(), Failure> {
    if objects.is_empty() {
        return Ok(());
    }
    let (_, prompt): (Vec<OwnedObjectPath>, OwnedObjectPath) = service
        .call("Unlock", &(objects,))
        .map_err(dbus("Unlock"))?;
    if prompt.as_str() == "/" {
        return Ok(());
    }
    let p = proxy_on(conn, owner, prompt.as_str(), I_PROMPT)?;
    // Subscribed before Prompt is called, so the Completed signal cannot be missed.
    let mut completed = p
        .receive_signal("Completed")
        .map_err(dbus("Prompt.Completed"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let got = completed
            .next()
            .map(|m| m.body().deserialize::<(bool, OwnedValue)>());
        let _ = tx.send(got);
    });
    p.call::<_, _, ()>("Prompt", &("",))
        .map_err(dbus("Prompt"))?;
    match rx.recv_timeout(PROMPT_TIMEOUT) {
        Ok(Some(Ok((false, _)))) => Ok(()),
        Ok(Some(Ok((true, _)))) => Err(fail(format!(
            "the Secret Service provider's unlock prompt was dismissed; {otherwise}"
        ))),
        Ok(Some(Err(e))) => Err(fail(format!(
            "the Secret Service provider's unlock prompt: bad Completed signal: {e}; {otherwise}"
        ))),
        Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => Err(fail(format!(
            "the session bus closed while waiting for the unlock prompt; {otherwise}"
        ))),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            let _ = p.call::<_, _, ()>("Dismiss", &());
            Err(fail(format!(
                "no answer to the Secret Service provider's unlock prompt within {} s; {otherwise}",
                PROMPT_TIMEOUT.as_secs()
            )))
        }
    }
}
