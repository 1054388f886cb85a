//! Running: the connection, the bus name, and the watchers (the kernel key once a second,
//! prompt expiry, clients leaving the bus, logins holding the store that are gone).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use zbus::fdo::{RequestNameFlags, RequestNameReply};
use zbus::Connection;

use crate::backend::{Backend, Kind};
use crate::collection::Collection;
use crate::item::{all_items, refresh_lock_state};
use crate::item::{drop_results, expire_results};
use crate::logind;
use crate::paths::{BUS_NAME, SERVICE_PATH};
use crate::portal::{Portal, PORTAL_PATH};
use crate::prompt::{expire_prompts, PromptObject};
use crate::service::Service;
use crate::session::SessionObject;
use crate::state::{log, State, OWNER_SWEEP};

/// How often the daemon looks for a store left open in `@u` only by logins that are gone
/// (killed without a close, nobody else closed since): docs/PAM.md "Who can read the key".
const HOLDER_SWEEP: Duration = Duration::from_secs(5);

/// Lock the store if every login recorded as holding it is gone. `last_error` keeps one
/// failure from being logged every few seconds.
fn lock_if_abandoned(st: &State, last_error: &mut Option<String>) {
    let result = st.login.store().map_err(|e| e.to_string()).and_then(|s| {
        libkeyring::holders::lock_if_abandoned(s.kernel_key()).map_err(|e| e.to_string())
    });
    match result {
        Ok(true) => {
            log("locked the store: every login that held it open is gone (ended without a close)")
        }
        Ok(false) => {}
        Err(e) if last_error.as_deref() != Some(e.as_str()) => {
            log(format!("checking the logins that hold the store: {e}"));
            *last_error = Some(e);
            return;
        }
        Err(_) => return,
    }
    *last_error = None;
}

/// Who owns `name` on the bus, for the refusal message.
async fn describe_owner(conn: &Connection, name: &str) -> String {
    let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
        return "another process".into();
    };
    let Ok(bus_name) = zbus::names::BusName::try_from(name) else {
        return "another process".into();
    };
    let Ok(owner) = dbus.get_name_owner(bus_name.clone()).await else {
        return "another process".into();
    };
    match dbus.get_connection_unix_process_id(bus_name).await {
        Ok(pid) => {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{} (pid {pid}, bus name {owner})", comm.trim())
        }
        Err(_) => format!("bus name {owner}"),
    }
}

/// `owner` left the bus: its sessions (their keys wiped) and prompts go.
async fn drop_client(st: &Arc<State>, owner: &str) {
    let (sessions, prompts, results) = st.take_client(owner);
    let server = st.conn().object_server();
    for p in sessions {
        let _ = server.remove::<SessionObject, _>(p.as_str()).await;
    }
    for p in prompts {
        let _ = server.remove::<PromptObject, _>(p.as_str()).await;
    }
    drop_results(st, &results).await;
}

/// Drop the sessions and prompts of owners no longer on the bus (in case a NameOwnerChanged was
/// handled before a call the client sent just before it left).
async fn sweep_owners(st: &Arc<State>, dbus: &zbus::fdo::DBusProxy<'_>) {
    for owner in st.owners() {
        let Ok(name) = zbus::names::BusName::try_from(owner.as_str()) else {
            continue;
        };
        if let Ok(false) = dbus.name_has_owner(name).await {
            drop_client(st, &owner).await;
        }
    }
}

/// Serve the store at `store_path` on the session bus until the bus goes away.
pub async fn run(store_path: PathBuf) -> Result<(), String> {
    let st = State::new(store_path);
    let conn = zbus::connection::Builder::session()
        .and_then(|b| {
            let mut b = b.serve_at(SERVICE_PATH, Service::new(st.clone()))?;
            for kind in Kind::ALL {
                for at in kind.paths() {
                    b = b.serve_at(at, Collection::new(st.clone(), kind))?;
                }
            }
            b = b.serve_at(PORTAL_PATH, Portal::new(st.clone()))?;
            Ok(b)
        })
        .map_err(|e| format!("cannot connect to the session bus: {e}"))?
        .build()
        .await
        .map_err(|e| format!("cannot connect to the session bus: {e}"))?;
    st.set_conn(conn.clone())?;
    // Watch clients leave before taking the name, so no session outlives its client.
    let dbus = zbus::fdo::DBusProxy::new(&conn)
        .await
        .map_err(|e| e.to_string())?;
    let mut owners = dbus
        .receive_name_owner_changed()
        .await
        .map_err(|e| e.to_string())?;
    match conn
        .request_name_with_flags(BUS_NAME, RequestNameFlags::DoNotQueue.into())
        .await
    {
        Ok(RequestNameReply::PrimaryOwner | RequestNameReply::AlreadyOwner) => {}
        Ok(_) | Err(zbus::Error::NameTaken) => {
            return Err(format!(
                "{BUS_NAME} is already owned by {} on this bus: another Secret Service provider is running; stop it first (not starting)",
                describe_owner(&conn, BUS_NAME).await
            ))
        }
        Err(e) => return Err(format!("cannot request {BUS_NAME}: {e}")),
    }
    log(format!(
        "serving {BUS_NAME} from the store {} ({})",
        st.login.path().display(),
        if st.login.is_locked() {
            "locked"
        } else {
            "unlocked"
        }
    ));
    refresh_lock_state(&st).await;
    if !st.login.is_locked() {
        if let Err(e) = all_items(&st, Kind::Login).await {
            log(format!("listing items: {e}"));
        }
    }
    tokio::spawn(logind::watch(st.clone()));
    let watcher = st.clone();
    let sweeper = dbus.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut last_sweep = Instant::now();
        let mut last_holders = Instant::now();
        let mut holders_error = None;
        loop {
            tick.tick().await;
            if last_holders.elapsed() >= HOLDER_SWEEP {
                last_holders = Instant::now();
                lock_if_abandoned(&watcher, &mut holders_error);
            }
            refresh_lock_state(&watcher).await;
            expire_prompts(&watcher).await;
            expire_results(&watcher).await;
            if last_sweep.elapsed() >= OWNER_SWEEP {
                last_sweep = Instant::now();
                sweep_owners(&watcher, &sweeper).await;
            }
        }
    });
    while let Some(sig) = owners.next().await {
        let Ok(args) = sig.args() else { continue };
        if args.new_owner().is_some() || !args.name().starts_with(':') {
            continue;
        }
        drop_client(&st, args.name()).await;
    }
    log("the bus connection closed; exiting");
    Ok(())
}
