//! org.freedesktop.Secret.Session at `/org/freedesktop/secrets/session/s<n>`: the transfer
//! encryption one client negotiated. It belongs to that client (its unique bus name): only it
//! may use or close it, and it ends with `Close` or when the client leaves the bus.

use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;

use crate::error::Error;
use crate::state::{lock, sender, State};

#[derive(Debug)]
pub struct SessionObject {
    st: Arc<State>,
    path: String,
}

impl SessionObject {
    pub(crate) fn new(st: Arc<State>, path: String) -> SessionObject {
        SessionObject { st, path }
    }
}

#[interface(name = "org.freedesktop.Secret.Session")]
impl SessionObject {
    async fn close(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let caller = sender(&hdr)?;
        {
            let mut sessions = lock(&self.st.sessions);
            match sessions.get(&self.path) {
                Some(s) if s.owner == caller => {
                    sessions.remove(&self.path);
                }
                Some(_) => {
                    return Err(Error::AccessDenied(
                        "only the client that opened a session may close it".into(),
                    ))
                }
                None => return Err(Error::NoSession("the session is closed".into())),
            }
        }
        let st = self.st.clone();
        let p = self.path.clone();
        tokio::spawn(async move {
            let _ = st
                .conn()
                .object_server()
                .remove::<SessionObject, _>(p.as_str())
                .await;
        });
        Ok(())
    }
}
