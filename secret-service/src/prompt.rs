//! org.freedesktop.Secret.Prompt at `/org/freedesktop/secrets/prompt/p<n>`: what `Unlock` returns
//! for a locked store. `Prompt` completes it: unlocked if the store is unlocked by then (the user
//! ran `keyringrs unlock`) or if `$KEYRINGRS_ASKPASS` names a program that prints the password;
//! otherwise dismissed.
//!
//! A prompt belongs to the client that asked for it: another client calling it gets
//! AccessDenied. It leaves the bus when it completes (after `Completed`), when it is dismissed,
//! when its client leaves the bus, or, not completed, after the prompt timeout (then dismissed).

use std::collections::BTreeSet;
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use libkeyring::{KdfParams, Scope, UnlockOptions};
use zbus::interface;
use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedObjectPath, Value};
use zeroize::Zeroizing;

use crate::backend::{Backend, Kind};
use crate::error::Error;
use crate::item::{known_objects, refresh_lock_state};
use crate::paths::path;
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
            Kind::Login.is_collection(o.as_str()) || Kind::Login.item_id(o.as_str()).is_some()
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

fn env_kdf() -> KdfParams {
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let d = KdfParams::DEFAULT;
    match (num("KEYRINGRS_KDF_MEMORY"), num("KEYRINGRS_KDF_TIME")) {
        (None, None) => d,
        (m, t) => KdfParams::new(m.unwrap_or(64 * 1024), t.unwrap_or(3), 1).unwrap_or(d),
    }
}

/// The longest password line read from the askpass program.
const ASKPASS_MAX: u64 = 4096;

/// Try to unlock through `$KEYRINGRS_ASKPASS` (blocking; one dialog at a time). True if the
/// store is unlocked after.
fn unlock_with_askpass(st: &State) -> bool {
    let _one_at_a_time = lock(&st.askpass);
    if !st.login.is_locked() {
        return true;
    }
    let Some(program) = std::env::var_os("KEYRINGRS_ASKPASS").filter(|p| !p.is_empty()) else {
        log("an application asked to unlock the store; no $KEYRINGRS_ASKPASS is set, so the prompt is dismissed: run `keyringrs unlock` in this session");
        return false;
    };
    let child = std::process::Command::new(&program)
        .arg(format!(
            "Password to unlock the keyringrs store {}:",
            st.login.path().display()
        ))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            log(format!("cannot run {program:?}: {e}"));
            return false;
        }
    };
    // Read into one buffer allocated up front, so no copy of the password is left behind by a
    // reallocation; wiped on drop.
    let mut pw = Zeroizing::new(Vec::with_capacity(ASKPASS_MAX as usize + 1));
    let read = child
        .stdout
        .take()
        .map(|out| out.take(ASKPASS_MAX).read_to_end(&mut pw));
    let status = child.wait();
    match (read, status) {
        (Some(Ok(_)), Ok(s)) if s.success() => {}
        (_, Ok(s)) if !s.success() => {
            log(format!("{program:?} ended with {s}: unlock dismissed"));
            return false;
        }
        (_, Err(e)) | (Some(Err(e)), _) => {
            log(format!("reading from {program:?}: {e}"));
            return false;
        }
        _ => return false,
    }
    if let Some(end) = pw.iter().position(|&b| b == b'\n') {
        pw.truncate(end);
    }
    let scope = match std::env::var("KEYRINGRS_SCOPE").as_deref() {
        Ok("user") => Scope::User,
        _ => Scope::Session,
    };
    let opts = UnlockOptions {
        kdf: env_kdf(),
        scope,
        ..UnlockOptions::default()
    };
    match st
        .login
        .store()
        .and_then(|s| s.unlock(&pw, &opts).map_err(Error::from))
    {
        Ok(_) => true,
        Err(e) => {
            log(format!("unlock through {program:?} failed: {e}"));
            false
        }
    }
}

#[interface(name = "org.freedesktop.Secret.Prompt")]
impl PromptObject {
    async fn prompt(&self, _window_id: &str, #[zbus(header)] hdr: Header<'_>) -> Result<(), Error> {
        self.st.check_prompt_owner(&self.path, &sender(&hdr)?)?;
        if self.started.swap(true, Ordering::SeqCst) {
            return Err(Error::Failed("this prompt was already used".into()));
        }
        let st = self.st.clone();
        let p = self.path.clone();
        let objects = self.objects.clone();
        tokio::spawn(async move {
            let st2 = st.clone();
            let unlocked = tokio::task::spawn_blocking(move || unlock_with_askpass(&st2))
                .await
                .unwrap_or(false);
            let result = if unlocked {
                refresh_lock_state(&st).await;
                known_objects(&st, &objects)
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
