//! Following logind (the lock policies of libkeyring's lock_policy; docs/SECRET-SERVICE.md,
//! "Lock policies"): on the system bus, the daemon locks the store
//! - with `screen-lock = lock`, when one of this user's graphical sessions is locked (logind's
//!   `Session.Lock` signal, what `loginctl lock-session` and idle timers send, or the session's
//!   `LockedHint` turning true, what GNOME Shell and other lockers set);
//! - with `suspend = lock`, when the machine is about to sleep (`Manager.PrepareForSleep(true)`).
//!
//! The policy is read at each event: a change needs no restart. The lock is one kernel key
//! invalidation; why it happened is noted (libkeyring's lock_note) for `keyringrs status` and
//! the screen locker's PAM authentication (pam_keyringrs reopens a store a policy locked); else
//! the next use of a secret shows the unlock prompt. Only logind's own signals count (the match
//! rules name its bus name as sender).

use std::collections::HashMap;
use std::sync::Arc;

use futures_lite::StreamExt;
use libkeyring::lock_policy::current;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, MessageStream};

use crate::item::refresh_lock_state;
use crate::state::{log, State};

const LOGIND: &str = "org.freedesktop.login1";

/// Lock the store because of `why` (`screen-lock`, `suspend`), if it is open.
async fn lock_for(st: &Arc<State>, why: &str, from: &str) {
    let store = match st.login.store() {
        Ok(s) => s,
        Err(e) => return log(format!("{why}: cannot open the store to lock it: {e}")),
    };
    match store.lock() {
        Ok(true) => {
            let _ = libkeyring::lock_note::set(store.kernel_key(), why);
            log(format!(
                "locked the store at {why} (policy {why} = lock, from {from})"
            ));
        }
        Ok(false) => {}
        Err(e) => log(format!("{why}: locking the store failed: {e}")),
    }
    refresh_lock_state(st).await;
}

/// Is logind's session at `path` a graphical session of this user?
async fn ours(conn: &Connection, path: &OwnedObjectPath) -> bool {
    let Ok(props) = zbus::fdo::PropertiesProxy::builder(conn)
        .destination(LOGIND)
        .and_then(|b| b.path(path.clone()))
    else {
        return false;
    };
    let Ok(props) = props.build().await else {
        return false;
    };
    let Ok(iface) = zbus::names::InterfaceName::try_from("org.freedesktop.login1.Session") else {
        return false;
    };
    let Ok(all) = props.get_all(iface).await else {
        return false;
    };
    let uid = all
        .get("User")
        .and_then(|v| <(u32, OwnedObjectPath)>::try_from(v.try_clone().ok()?).ok())
        .map(|(u, _)| u);
    let kind = all
        .get("Type")
        .and_then(|v| String::try_from(v.try_clone().ok()?).ok());
    uid == Some(libkeyring::sys::euid())
        && matches!(kind.as_deref(), Some("x11" | "wayland" | "mir"))
}

async fn stream(conn: &Connection, rule: MatchRule<'static>) -> zbus::Result<MessageStream> {
    MessageStream::for_match_rule(rule, conn, Some(64)).await
}

fn rule(iface: &'static str, member: &'static str) -> zbus::Result<MatchRule<'static>> {
    Ok(MatchRule::builder()
        .msg_type(zbus::message::Type::Signal)
        .sender(LOGIND)?
        .interface(iface)?
        .member(member)?
        .build())
}

/// Follow logind until the daemon ends. Without a system bus or logind, nothing to follow
/// (logged once).
pub async fn watch(st: Arc<State>) {
    let (p, bad) = current();
    for b in &bad {
        log(format!("lock policy: {b}"));
    }
    let conn = match Connection::system().await {
        Ok(c) => c,
        Err(e) => {
            if p.screen_lock || p.suspend {
                log(format!(
                    "no system bus ({e}): the lock policies (screen-lock, suspend) are not followed"
                ));
            }
            return;
        }
    };
    let streams = async {
        let sleep = stream(
            &conn,
            rule("org.freedesktop.login1.Manager", "PrepareForSleep")?,
        )
        .await?;
        let lock = stream(&conn, rule("org.freedesktop.login1.Session", "Lock")?).await?;
        let hint = stream(
            &conn,
            MatchRule::builder()
                .msg_type(zbus::message::Type::Signal)
                .sender(LOGIND)?
                .interface("org.freedesktop.DBus.Properties")?
                .member("PropertiesChanged")?
                .path_namespace("/org/freedesktop/login1/session")?
                .build(),
        )
        .await?;
        Ok::<_, zbus::Error>((sleep, lock, hint))
    };
    let (mut sleep, mut lock, mut hint) = match streams.await {
        Ok(s) => s,
        Err(e) => return log(format!("cannot follow logind: {e}")),
    };
    loop {
        tokio::select! {
            Some(Ok(m)) = sleep.next() => {
                let going: bool = m.body().deserialize().unwrap_or(false);
                let (p, _) = current();
                if going && p.suspend {
                    lock_for(&st, "suspend", &p.suspend_from).await;
                }
            }
            Some(Ok(m)) = lock.next() => {
                let Some(path) = m.header().path().map(|p| OwnedObjectPath::from(p.to_owned())) else { continue };
                let (p, _) = current();
                if p.screen_lock && ours(&conn, &path).await {
                    lock_for(&st, "screen-lock", &p.screen_lock_from).await;
                }
            }
            Some(Ok(m)) = hint.next() => {
                let Ok((iface, changed, _)) =
                    m.body().deserialize::<(String, HashMap<String, OwnedValue>, Vec<String>)>()
                else { continue };
                let locked = changed.get("LockedHint").and_then(|v| bool::try_from(v).ok());
                if iface != "org.freedesktop.login1.Session" || locked != Some(true) {
                    continue;
                }
                let Some(path) = m.header().path().map(|p| OwnedObjectPath::from(p.to_owned())) else { continue };
                let (p, _) = current();
                if p.screen_lock && ours(&conn, &path).await {
                    lock_for(&st, "screen-lock", &p.screen_lock_from).await;
                }
            }
            else => return,
        }
    }
}
