//! org.freedesktop.Secret.Prompt at `/org/freedesktop/secrets/prompt/p<n>`: what `Unlock` returns
//! for a locked store. `Prompt` shows the unlock dialog on the caller's display or terminal
//! (prompter/) and completes: unlocked if the store is unlocked by then (by the dialog, or by
//! `keyringrs unlock`), otherwise dismissed (cancelled, or no dialog could be shown).
//!
//! A prompt belongs to the client that asked for it: another client calling it gets
//! AccessDenied. It leaves the bus when it completes (after `Completed`), when it is dismissed,
//! when its client leaves the bus, or, not completed, after the prompt timeout (then dismissed).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, Value};

use crate::backend::{Backend, Kind};
use crate::error::Error;
use crate::item::{known_objects, refresh_lock_state, resolve};
use crate::locked_result;
use crate::paths::path;
use crate::prompter;
use crate::state::{lock, log, sender, State, MAX_PROMPT_OBJECTS};

#[derive(Debug)]
pub struct PromptObject {
    st: Arc<State>,
    path: String,
    objects: Vec<OwnedObjectPath>,
    started: AtomicBool,
}

/// A new prompt of `owner` to unlock `objects`, on the bus; its path. Refused beyond the
/// limits on pending prompts.
pub(crate) async fn new_prompt(
    st: &Arc<State>,
    owner: &str,
    objects: Vec<OwnedObjectPath>,
) -> Result<OwnedObjectPath, Error> {
    let p = st.add_prompt(owner)?;
    // Keep only what can be reported back (collections and item paths), each once, a bounded
    // number of them.
    let mut seen = BTreeSet::new();
    let objects: Vec<OwnedObjectPath> = objects
        .into_iter()
        .filter(|o| {
            Kind::Login.is_collection(o.as_str())
                || Kind::Login.item_id(o.as_str()).is_some()
                || locked_result::is_result(o.as_str())
        })
        .filter(|o| seen.insert(o.as_str().to_string()))
        .take(MAX_PROMPT_OBJECTS)
        .collect();
    let prompt = PromptObject {
        st: st.clone(),
        path: p.clone(),
        objects,
        started: AtomicBool::new(false),
    };
    let server = st.conn().object_server();
    if let Err(e) = server.at(p.as_str(), prompt).await {
        lock(&st.prompts).remove(&p);
        return Err(e.into());
    }
    // Its client may have left meanwhile (and its prompts been dropped before this one was on
    // the bus): then it goes now.
    if !lock(&st.prompts).contains_key(&p) {
        let _ = server.remove::<PromptObject, _>(p.as_str()).await;
    }
    Ok(path(&p))
}

#[interface(name = "org.freedesktop.Secret.Prompt")]
impl PromptObject {
    async fn prompt(&self, window_id: &str, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        let owner = sender(&hdr)?;
        self.st.check_prompt_owner(&self.path, &owner)?;
        if self.started.swap(true, Ordering::SeqCst) {
            return Err(Error::Failed("this prompt was already used".into()));
        }
        let st = self.st.clone();
        let p = self.path.clone();
        let objects = self.objects.clone();
        let cancel = self.st.prompt_cancel(&p).unwrap_or_default();
        let window = window_id.to_owned();
        tokio::spawn(async move {
            if st.login.is_locked() {
                prompter::unlock(st.clone(), &owner, &window, cancel).await;
            }
            // Unlocked by the dialog, or meanwhile by `keyringrs unlock`.
            let unlocked = !st.login.is_locked();
            let result = if unlocked {
                refresh_lock_state(&st).await;
                let mut result = known_objects(&st, &objects);
                for m in resolve(&st, &objects).await {
                    if !result.contains(&m) {
                        result.push(m);
                    }
                }
                result
            } else {
                vec![]
            };
            complete(&st, &p, !unlocked, result).await;
        });
        Ok(())
    }

    async fn dismiss(&self, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        self.st.check_prompt_owner(&self.path, &sender(&hdr)?)?;
        self.started.store(true, Ordering::SeqCst);
        let st = self.st.clone();
        let p = self.path.clone();
        tokio::spawn(async move { complete(&st, &p, true, vec![]).await });
        Ok(())
    }

    #[zbus(signal)]
    async fn completed(
        emitter: &SignalEmitter<'_>,
        dismissed: bool,
        result: Value<'_>,
    ) -> zbus::Result<()>;
}

/// Complete the prompt at `p` (once: a prompt dropped meanwhile says nothing) and take it off
/// the bus.
pub(crate) async fn complete(
    st: &Arc<State>,
    p: &str,
    dismissed: bool,
    result: Vec<OwnedObjectPath>,
) {
    if lock(&st.prompts).remove(p).is_none() {
        return;
    }
    if let Ok(em) = SignalEmitter::new(st.conn(), p.to_string()) {
        let _ = PromptObject::completed(&em, dismissed, Value::new(result)).await;
    }
    let _ = st.conn().object_server().remove::<PromptObject, _>(p).await;
}

/// Dismiss the prompts pending for longer than the prompt timeout.
pub(crate) async fn expire_prompts(st: &Arc<State>) {
    let old: Vec<String> = lock(&st.prompts)
        .iter()
        .filter(|(_, info)| info.created.elapsed() >= st.prompt_timeout)
        .map(|(p, _)| p.clone())
        .collect();
    for p in old {
        log(format!(
            "{p} was not completed within {} s: dismissed",
            st.prompt_timeout.as_secs()
        ));
        complete(st, &p, true, vec![]).await;
    }
}
