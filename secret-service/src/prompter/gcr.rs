//! GNOME's system prompt: `org.gnome.keyring.SystemPrompter` (GNOME Shell, Phosh, gcr 3's
//! `gcr-prompter`), the dialog gnome-keyring and oo7 show, spoken to as gcr's own client
//! (gcr/gcr-system-prompt.c) does:
//!
//! 1. `BeginPrompting(callback)`; the prompter, once no other prompt is showing, calls our
//!    callback object's `PromptReady("", properties, exchange)`, the exchange carrying its
//!    public key (gcr's secret exchange `sx-aes-1`: DH in the 1536-bit MODP group, HKDF-SHA256,
//!    AES-128-CBC; crypto.rs).
//! 2. `PerformPrompt(callback, "password", properties, exchange)` with our public key and the
//!    texts; the prompter shows the dialog and answers `PromptReady("yes", …, exchange)` with
//!    the password encrypted for us, or `"no"` when the user cancels. The password is never on
//!    the bus in clear. A wrong password is asked again with the `warning` property set.
//! 3. `StopPrompting(callback)` closes it; `PromptDone()` says the prompter closed it.
//!
//! The prompter sends its properties back as variants inside variants (gcr's server wraps them
//! once more than its client unwraps, the quirk oo7 works around); we read none of them.
//! Only the prompter's unique name may call the callback.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use zbus::message::Header;
use zbus::zvariant::{ObjectPath, OwnedValue, Value};
use zbus::{interface, Connection};
use zeroize::Zeroizing;

use super::{Cancel, Dialog, Reply, Texts};
use crate::crypto::Exchange;

pub(crate) const BUS_NAME: &str = "org.gnome.keyring.SystemPrompter";
const PATH: &str = "/org/gnome/keyring/Prompter";
const INTERFACE: &str = "org.gnome.keyring.internal.Prompter";
const PROTOCOL: &str = "sx-aes-1";
/// The longest exchange text read.
const MAX_EXCHANGE: usize = 16 * 1024;
/// How often a wait looks at the prompt's cancel flag.
const POLL: Duration = Duration::from_millis(200);

static NEXT: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
enum Event {
    Ready {
        reply: String,
        exchange: Zeroizing<String>,
    },
    Done,
}

/// Our callback object: what the prompter calls.
struct Callback {
    prompter: Arc<Mutex<Option<String>>>,
    tx: Mutex<Sender<Event>>,
}

impl Callback {
    fn sent_by_prompter(&self, hdr: &Header<'_>) -> bool {
        let sender = hdr.sender().map(|s| s.to_string());
        let expected = self.prompter.lock().unwrap_or_else(|p| p.into_inner());
        expected.is_some() && *expected == sender
    }
}

#[interface(name = "org.gnome.keyring.internal.Prompter.Callback")]
impl Callback {
    async fn prompt_ready(
        &self,
        reply: String,
        _properties: HashMap<String, OwnedValue>,
        exchange: String,
        #[zbus(header)] hdr: Header<'_>,
    ) -> zbus::fdo::Result<()> {
        if !self.sent_by_prompter(&hdr) {
            return Err(zbus::fdo::Error::AccessDenied(
                "only the system prompter may answer this prompt".into(),
            ));
        }
        let exchange = Zeroizing::new(exchange);
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        let _ = tx.send(Event::Ready { reply, exchange });
        Ok(())
    }

    async fn prompt_done(&self, #[zbus(header)] hdr: Header<'_>) -> zbus::fdo::Result<()> {
        if self.sent_by_prompter(&hdr) {
            let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
            let _ = tx.send(Event::Done);
        }
        Ok(())
    }
}

/// base64 of the field `name` in an exchange text (`[sx-aes-1]` then `name=value` lines).
fn field(text: &str, name: &str) -> Option<Zeroizing<Vec<u8>>> {
    use base64::Engine;
    let mut lines = text.lines().map(str::trim);
    if lines.next()? != format!("[{PROTOCOL}]") {
        return None;
    }
    let value = lines.find_map(|l| l.strip_prefix(name)?.strip_prefix('='))?;
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .map(Zeroizing::new)
}

pub(crate) struct Gcr {
    conn: Connection,
    rt: tokio::runtime::Handle,
    callback: String,
    rx: Receiver<Event>,
    exchange: Exchange,
    texts: Texts,
    cancel: Arc<Cancel>,
    deadline: Instant,
}

impl std::fmt::Debug for Gcr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gcr({})", self.callback)
    }
}

impl Gcr {
    /// Whether a system prompter is on the bus or can be started by it.
    pub(crate) async fn available(conn: &Connection) -> bool {
        let Ok(dbus) = zbus::fdo::DBusProxy::new(conn).await else {
            return false;
        };
        let Ok(name) = zbus::names::BusName::try_from(BUS_NAME) else {
            return false;
        };
        if dbus.name_has_owner(name).await.unwrap_or(false) {
            return true;
        }
        dbus.list_activatable_names()
            .await
            .is_ok_and(|names| names.iter().any(|n| n.as_str() == BUS_NAME))
    }

    /// Begin prompting: wait (until the prompt's deadline) for the prompter to be ready.
    /// Blocking; runs on a thread of its own.
    pub(crate) fn start(
        conn: &Connection,
        rt: tokio::runtime::Handle,
        texts: &Texts,
        cancel: Arc<Cancel>,
    ) -> Result<Gcr, String> {
        let callback = format!(
            "/org/keyringrs/Prompt/c{}",
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let (tx, rx) = channel();
        let prompter = Arc::new(Mutex::new(None));
        let object = Callback {
            prompter: prompter.clone(),
            tx: Mutex::new(tx),
        };
        let conn = conn.clone();
        let owner: Result<String, String> = rt.block_on(async {
            conn.object_server()
                .at(callback.as_str(), object)
                .await
                .map_err(|e| e.to_string())?;
            // Start it (D-Bus activation), then learn its unique name.
            conn.call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus"),
                "StartServiceByName",
                &(BUS_NAME, 0u32),
            )
            .await
            .map_err(|e| format!("cannot start {BUS_NAME}: {e}"))?;
            let dbus = zbus::fdo::DBusProxy::new(&conn)
                .await
                .map_err(|e| e.to_string())?;
            let name = zbus::names::BusName::try_from(BUS_NAME).map_err(|e| e.to_string())?;
            dbus.get_name_owner(name)
                .await
                .map(|o| o.to_string())
                .map_err(|e| format!("{BUS_NAME} has no owner: {e}"))
        });
        let mut gcr = Gcr {
            conn,
            rt,
            callback,
            rx,
            exchange: Exchange::new(),
            texts: texts.clone(),
            deadline: Instant::now() + texts.timeout,
            cancel,
        };
        let owner = owner?;
        *prompter.lock().unwrap_or_else(|p| p.into_inner()) = Some(owner);
        let path = ObjectPath::try_from(gcr.callback.as_str()).map_err(|e| e.to_string())?;
        gcr.call("BeginPrompting", &(path,))?;
        match gcr.wait()? {
            Event::Ready { exchange, .. } => {
                let peer = field(&exchange, "public").ok_or("the prompter sent no public key")?;
                gcr.exchange
                    .agree(&peer)
                    .map_err(|e| format!("the prompter's public key: {e}"))?;
                Ok(gcr)
            }
            Event::Done => Err("the prompter closed the prompt before showing it".into()),
        }
    }

    fn call<B>(&self, method: &str, body: &B) -> Result<(), String>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        self.rt
            .block_on(
                self.conn
                    .call_method(Some(BUS_NAME), PATH, Some(INTERFACE), method, body),
            )
            .map(drop)
            .map_err(|e| format!("{BUS_NAME} {method}: {e}"))
    }

    /// The prompter's next call, until the deadline or a cancel.
    fn wait(&self) -> Result<Event, String> {
        loop {
            if self.cancel.is_cancelled() {
                return Err("cancelled".into());
            }
            if Instant::now() >= self.deadline {
                return Err("the prompt timed out".into());
            }
            match self.rx.recv_timeout(POLL) {
                Ok(e) => return Ok(e),
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err("the callback is gone".into()),
            }
        }
    }

    fn properties(&self, warning: Option<&str>) -> HashMap<&'static str, Value<'static>> {
        let t = &self.texts;
        let mut p: HashMap<&'static str, Value<'static>> = HashMap::new();
        p.insert("title", Value::from(t.title.clone()));
        p.insert("message", Value::from(t.message.clone()));
        p.insert("description", Value::from(t.description.clone()));
        p.insert("warning", Value::from(warning.unwrap_or("").to_owned()));
        p.insert("password-new", Value::from(false));
        p.insert("choice-label", Value::from(String::new()));
        p.insert("continue-label", Value::from(t.continue_label.clone()));
        p.insert("cancel-label", Value::from("Cancel".to_owned()));
        if !t.window.is_empty() {
            p.insert("caller-window", Value::from(t.window.clone()));
        }
        p
    }
}

impl Dialog for Gcr {
    fn name(&self) -> String {
        format!("the system prompt ({BUS_NAME})")
    }

    fn ask(&mut self, warning: Option<&str>) -> Result<Reply, String> {
        use base64::Engine;
        let public = base64::engine::general_purpose::STANDARD.encode(self.exchange.public());
        let sent = format!("[{PROTOCOL}]\npublic={public}\n");
        let path = ObjectPath::try_from(self.callback.as_str()).map_err(|e| e.to_string())?;
        // The prompter takes PerformPrompt only once it has our reply to its PromptReady, which
        // zbus sends after the handler that told us of the call: a PerformPrompt may overtake
        // it and be refused as "already performing". Asked again shortly, it is taken.
        let props = self.properties(warning);
        let mut tries = 0;
        while let Err(e) = self.call("PerformPrompt", &(&path, "password", &props, sent.as_str())) {
            tries += 1;
            if !e.contains("Already performing") || tries >= 50 || self.cancel.is_cancelled() {
                return Err(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let (reply, exchange) = match self.wait()? {
            Event::Ready { reply, exchange } => (reply, exchange),
            Event::Done => return Ok(Reply::Cancelled),
        };
        if reply != "yes" {
            return Ok(Reply::Cancelled);
        }
        if exchange.len() > MAX_EXCHANGE {
            return Err("the prompter's answer is too long".into());
        }
        let (Some(iv), Some(secret)) = (field(&exchange, "iv"), field(&exchange, "secret")) else {
            return Err("the prompter answered yes without a secret".into());
        };
        let key = self.exchange.key().ok_or("no transport key")?;
        let password = key
            .decrypt(&iv, &secret)
            .map_err(|e| format!("the prompter's secret: {e}"))?;
        Ok(Reply::Secret(password))
    }
}

impl Drop for Gcr {
    fn drop(&mut self) {
        if let Ok(path) = ObjectPath::try_from(self.callback.as_str()) {
            let _ = self.call("StopPrompting", &(path,));
        }
        let _ = self.rt.block_on(
            self.conn
                .object_server()
                .remove::<Callback, _>(self.callback.as_str()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_fields() {
        let t = "[sx-aes-1]\npublic=AQID\nsecret=BAU=\niv=Bg==\n";
        assert_eq!(&field(t, "public").unwrap()[..], &[1, 2, 3]);
        assert_eq!(&field(t, "secret").unwrap()[..], &[4, 5]);
        assert_eq!(&field(t, "iv").unwrap()[..], &[6]);
        assert!(field(t, "nothing").is_none());
        assert!(
            field("[sx-aes-2]\npublic=AQID\n", "public").is_none(),
            "another protocol"
        );
        assert!(
            field("[sx-aes-1]\npublic=***\n", "public").is_none(),
            "not base64"
        );
    }
}
