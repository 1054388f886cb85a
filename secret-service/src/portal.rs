//! org.freedesktop.impl.portal.Secret at `/org/freedesktop/portal/desktop`: the Secret portal's
//! backend, which xdg-desktop-portal calls when a sandboxed (Flatpak) app asks
//! `org.freedesktop.portal.Secret.RetrieveSecret` for the key to its own file keyring
//! (docs/SECRET-SERVICE.md "Sandboxed apps: the Secret portal").
//!
//! Served on the daemon's own connection, under `org.freedesktop.secrets` (the name the
//! `keyringrs.portal` file declares, as gnome-keyring's does): whoever serves the Secret Service
//! serves the portal, so the two can never be split between two providers. The secrets
//! themselves are libkeyring::portal's: 64 random bytes per app id, kept as a store item.
//!
//! `RetrieveSecret(handle, app_id, fd, options)` answers `(response, results)`: 0 and the secret
//! written to `fd` (then closed); 1 when the user dismissed the unlock dialog or the frontend
//! closed the request (`org.freedesktop.impl.portal.Request.Close` at `handle`); 2 on any error
//! (an empty app id, a store that stays locked with no dialog to ask, a store that cannot be
//! read, an fd that cannot be written), each logged. Nothing is minted unless a search of the
//! unlocked store ended cleanly.

use std::collections::HashMap;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zbus::interface;
use zbus::message::Header;
use zbus::zvariant::{self, OwnedObjectPath, OwnedValue};

use crate::backend::{Backend, Kind};
use crate::item::serve;
use crate::prompter::{self, Outcome};
use crate::signals::{self, ItemEvent};
use crate::state::{log, sender, Cancel, State};

/// The portal backend's object path (fixed by xdg-desktop-portal).
pub const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";

/// The interface version xdg-desktop-portal 1.16 and libsecret 0.20 expect.
const VERSION: u32 = 1;

/// The earliest a request of a client that did not choose its request's handle is answered
/// after it came in. libsecret before 0.21.4 (Debian 12 has 0.20.5; libsecret issue 58) passes
/// no `handle_token` and subscribes to the request's `Response` signal only once the portal's
/// reply to `RetrieveSecret` has reached its main loop, so a backend that answers at once makes
/// the frontend send `Response` before the app listens, and the app waits for ever (measured: 3
/// of 15 runs of the portal tests, each ~40 requests, hung). Waiting this long costs such an app
/// one pause at startup (libsecret asks once per process). A client that passes a
/// `handle_token` (libsecret 0.21.4 and later, libportal) subscribes before it calls: it is
/// answered at once.
pub const ANSWER_NOT_BEFORE: Duration = Duration::from_millis(250);

/// Did the client choose its request's handle (`handle_token`)? xdg-desktop-portal names a
/// request `/org/freedesktop/portal/desktop/request/SENDER/TOKEN[/N]`, TOKEN `t` when the
/// client gave none. Anything else is taken as not chosen (the safe side: a pause).
fn handle_was_chosen(handle: &str) -> bool {
    let Some(rest) = handle.strip_prefix("/org/freedesktop/portal/desktop/request/") else {
        return false;
    };
    match rest.split('/').nth(1) {
        Some(token) => !token.is_empty() && token != "t",
        None => false,
    }
}

/// `response` values of the portal API.
const OK: u32 = 0;
const CANCELLED: u32 = 1;
const FAILED: u32 = 2;

#[derive(Debug)]
pub struct Portal {
    st: Arc<State>,
}

impl Portal {
    pub fn new(st: Arc<State>) -> Portal {
        Portal { st }
    }
}

/// The frontend's handle for one request, on the bus while it runs: `Close` cancels it.
#[derive(Debug)]
struct Request {
    owner: String,
    cancel: Arc<Cancel>,
}

#[interface(name = "org.freedesktop.impl.portal.Request")]
impl Request {
    async fn close(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), zbus::fdo::Error> {
        let caller = sender(&hdr).map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        if caller != self.owner {
            return Err(zbus::fdo::Error::AccessDenied(
                "only the portal that made this request may close it".into(),
            ));
        }
        self.cancel.cancel();
        Ok(())
    }
}

#[interface(name = "org.freedesktop.impl.portal.Secret")]
impl Portal {
    #[zbus(out_args("response", "results"))]
    async fn retrieve_secret(
        &self,
        handle: OwnedObjectPath,
        app_id: String,
        fd: zvariant::OwnedFd,
        _options: HashMap<String, OwnedValue>,
        #[zbus(header)] hdr: Header<'_>,
    ) -> (u32, HashMap<String, OwnedValue>) {
        let owner = match sender(&hdr) {
            Ok(o) => o,
            Err(e) => {
                log(format!("portal: a request without a sender: {e}"));
                return (FAILED, HashMap::new());
            }
        };
        let came = Instant::now();
        let fd: OwnedFd = fd.into();
        let cancel = Arc::new(Cancel::default());
        let server = self.st.conn().object_server();
        let exported = server
            .at(
                handle.as_str(),
                Request {
                    owner: owner.clone(),
                    cancel: cancel.clone(),
                },
            )
            .await
            .unwrap_or(false);
        let response = retrieve(&self.st, &owner, &app_id, fd, &cancel).await;
        if !handle_was_chosen(handle.as_str()) {
            tokio::time::sleep_until((came + ANSWER_NOT_BEFORE).into()).await;
        }
        if exported {
            let _ = server.remove::<Request, _>(handle.as_str()).await;
        }
        (response, HashMap::new())
    }

    #[zbus(property, name = "version")]
    fn version(&self) -> u32 {
        VERSION
    }
}

/// The whole request: the app id checked, the store unlocked (through the prompt), the secret
/// found or minted, written to `fd`.
async fn retrieve(
    st: &Arc<State>,
    owner: &str,
    app_id: &str,
    fd: OwnedFd,
    cancel: &Arc<Cancel>,
) -> u32 {
    let app = format!("{app_id:?}");
    if let Err(e) = libkeyring::portal::check_app_id(app_id) {
        log(format!("portal: refused a request for {app}: {e}"));
        return FAILED;
    }
    if st.login.is_locked() {
        match prompter::unlock_for_app(st.clone(), owner, app_id, cancel.clone()).await {
            Outcome::Unlocked => {}
            Outcome::Dismissed => {
                log(format!(
                    "portal: the store stays locked (the unlock was dismissed): no secret for {app}"
                ));
                return CANCELLED;
            }
            Outcome::NoDialog => {
                log(format!(
                    "portal: the store is locked and no dialog could ask for the password: no secret for {app}; run `keyringrs unlock`"
                ));
                return FAILED;
            }
        }
    }
    if cancel.is_cancelled() {
        log(format!("portal: the request for {app} was closed"));
        return CANCELLED;
    }
    // One at a time with CreateItem: two first requests of an app must not mint two secrets.
    let create = st.create.lock().await;
    let found = {
        let st = st.clone();
        let app_id = app_id.to_owned();
        tokio::task::spawn_blocking(move || {
            let store = st.login.store()?;
            let got = libkeyring::portal::secret(&store, &app_id)?;
            Ok::<_, crate::error::Error>((got.secret, got.minted.then_some(got.entry)))
        })
        .await
    };
    let (secret, minted) = match found {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            drop(create);
            log(format!("portal: no secret for {app}: {e}"));
            return FAILED;
        }
        Err(e) => {
            drop(create);
            log(format!("portal: no secret for {app}: {e}"));
            return FAILED;
        }
    };
    if let Some(id) = &minted {
        serve(st, Kind::Login, std::slice::from_ref(id)).await;
    }
    drop(create);
    if let Some(id) = &minted {
        log(format!("portal: made the secret of the app {app}"));
        let conn = st.conn();
        let _ = signals::item(conn, Kind::Login, ItemEvent::Created, id).await;
        signals::items_changed(conn, Kind::Login).await;
    }
    match write_secret(fd, &secret) {
        Ok(()) => {
            log(format!("portal: gave the app {app} its secret"));
            OK
        }
        Err(e) => {
            log(format!("portal: cannot hand the app {app} its secret: {e}"));
            FAILED
        }
    }
}

/// Write `secret` to the app's pipe (or socket) and close it. Never blocks: the fd is the
/// caller's, so a full or stalled pipe is an error, not a wait.
fn write_secret(fd: OwnedFd, secret: &[u8]) -> std::io::Result<()> {
    let raw = fd.as_raw_fd();
    let mut st = std::mem::MaybeUninit::<libc::stat>::zeroed();
    #[allow(unsafe_code)]
    // SAFETY: fstat fills `st` for the open fd `raw`, owned by `fd` for this whole function.
    let r = unsafe { libc::fstat(raw, st.as_mut_ptr()) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    #[allow(unsafe_code)]
    // SAFETY: fstat succeeded, so `st` is initialised.
    let mode = unsafe { st.assume_init() }.st_mode & libc::S_IFMT;
    if mode != libc::S_IFIFO && mode != libc::S_IFSOCK && mode != libc::S_IFREG {
        return Err(std::io::Error::other(
            "the fd is neither a pipe, a socket nor a file",
        ));
    }
    #[allow(unsafe_code)]
    // SAFETY: F_GETFL/F_SETFL on the open fd `raw`; only O_NONBLOCK is added.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFL);
        if flags < 0 || libc::fcntl(raw, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let mut file = std::fs::File::from(fd);
    file.write_all(secret)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::handle_was_chosen;

    #[test]
    fn a_handle_the_client_chose_is_told_from_the_portals_default() {
        let base = "/org/freedesktop/portal/desktop/request/1_42";
        assert!(handle_was_chosen(&format!("{base}/libsecret12345")));
        assert!(handle_was_chosen(&format!("{base}/libsecret12345/2")));
        assert!(!handle_was_chosen(&format!("{base}/t")));
        assert!(!handle_was_chosen(&format!("{base}/t/3")));
        assert!(!handle_was_chosen(base));
        assert!(!handle_was_chosen("/org/example/request/1_42/tok"));
        assert!(!handle_was_chosen("/"));
    }
}
