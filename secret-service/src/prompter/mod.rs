//! The unlock prompt: which dialog asks for the store's password, where, and what the answer
//! unlocks (docs/SECRET-SERVICE.md, "The unlock prompt").
//!
//! The dialog follows the caller (caller.rs): on a display, GNOME's system prompt if one is on
//! the bus or can be started (gcr.rs), else pinentry (pinentry.rs) on that display; on a
//! terminal (an ssh login), pinentry-tty or -curses on that terminal; the askpass program of
//! `$KEYRINGRS_ASKPASS` (askpass.rs) last. `$KEYRINGRS_PROMPTER` names one of them to use only
//! (`gcr`, `pinentry`, `askpass`, or `none`). With none available the prompt is dismissed at
//! once and the log says why. One dialog shows at a time.
//!
//! A store with a TPM2 keyslot without a PIN (`slot add --tpm2`) opens with the TPM before
//! any dialog shows, unless a lock policy locked it (tpm2.rs). An answer is checked against the
//! store's password slots, and if it reads as a recovery key, against that, else (once a
//! prompt) as the PIN of a TPM2 keyslot that has one. A wrong one is asked again with a
//! warning, up to [`MAX_TRIES`]. It unlocks the
//! store where the daemon can read it, the user keyring `@u`, held by the caller's login
//! (libkeyring's holders): the store locks again when that login ends, as a graphical login's
//! does (docs/PAM.md). `$KEYRINGRS_SCOPE=session` keeps the key in the daemon's own session
//! keyring instead (tests, and a daemon run by hand in a login of its own).

mod askpass;
mod caller;
pub(crate) mod gcr;
mod pinentry;
mod tpm2;

use std::sync::Arc;
use std::time::Duration;

use libkeyring::recovery::RecoveryKey;
use libkeyring::{holders, KdfParams, Scope, UnlockOptions};
use zeroize::Zeroizing;

use crate::backend::Backend;
pub(crate) use crate::state::Cancel;
use crate::state::{lock, log, State};
use caller::Caller;

/// Wrong answers before the prompt is dismissed.
pub(crate) const MAX_TRIES: usize = 5;

/// What a dialog answered.
pub(crate) enum Reply {
    Secret(Zeroizing<Vec<u8>>),
    Cancelled,
}

/// One dialog, open until dropped.
pub(crate) trait Dialog {
    fn name(&self) -> String;
    /// Ask once; `warning` says why the last answer was refused. Blocking.
    fn ask(&mut self, warning: Option<&str>) -> Result<Reply, String>;
}

/// What a dialog says.
#[derive(Debug, Clone)]
pub(crate) struct Texts {
    pub title: String,
    pub message: String,
    pub description: String,
    pub prompt: String,
    pub continue_label: String,
    /// The caller's window (Prompt's `window-id`), for dialogs that can sit above it.
    pub window: String,
    /// How long the dialog may stay open.
    pub timeout: Duration,
}

impl Texts {
    fn for_caller(caller: &Caller, window: &str, timeout: Duration) -> Texts {
        let who = match (&caller.app, caller.name.as_str(), caller.pid) {
            (Some(app), _, _) => format!("The sandboxed app {app} (through the Secret portal)"),
            (None, "", Some(pid)) => format!("A program (pid {pid})"),
            (None, name, Some(pid)) => format!("{name} (pid {pid})"),
            _ => "A program".into(),
        };
        Texts {
            title: "Unlock your secrets".into(),
            message: "Your keyringrs store is locked".into(),
            description: format!(
                "{who} wants to use your secrets. Type your login password (or the store's \
                 password, or its recovery key) to unlock them until this login ends."
            ),
            prompt: "Password:".into(),
            continue_label: "Unlock".into(),
            window: window.to_owned(),
            timeout,
        }
    }

    /// The texts on one line, for an askpass program.
    fn prompt_line(&self) -> String {
        format!("{}. {} {}", self.message, self.description, self.prompt)
    }
}

/// What the prompt ends with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Unlocked,
    /// Cancelled in the dialog, given up after wrong answers, or ended from outside.
    Dismissed,
    /// No dialog could be shown (each reason logged).
    NoDialog,
}

/// Where a dialog can go for this caller, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Gcr,
    PinentryDisplay,
    PinentryTerminal,
    Askpass,
}

impl Choice {
    fn word(self) -> &'static str {
        match self {
            Choice::Gcr => "gcr",
            Choice::PinentryDisplay | Choice::PinentryTerminal => "pinentry",
            Choice::Askpass => "askpass",
        }
    }
}

/// The daemon's own display variables (those of the desktop session that started it, as
/// imported by dbus-update-activation-environment).
fn own_display() -> Vec<(String, String)> {
    caller::DISPLAY_VARS
        .iter()
        .filter_map(|k| {
            Some((
                k.to_string(),
                std::env::var(k).ok().filter(|v| !v.is_empty())?,
            ))
        })
        .collect()
}

/// The dialogs to try for `caller`, best first, as `$KEYRINGRS_PROMPTER` allows.
fn plan(caller: &mut Caller, gcr: bool) -> Vec<Choice> {
    if !caller.on_display() && caller.tty.is_none() {
        // A caller whose environment cannot be read, or a desktop program started without one:
        // the session's display, if the daemon was given it.
        caller.env.extend(own_display());
    }
    let mut plan = Vec::new();
    if caller.on_display() {
        if gcr {
            plan.push(Choice::Gcr);
        }
        plan.push(Choice::PinentryDisplay);
    } else if caller.tty.is_some() {
        plan.push(Choice::PinentryTerminal);
    }
    plan.push(Choice::Askpass);
    match std::env::var("KEYRINGRS_PROMPTER")
        .ok()
        .filter(|v| !v.is_empty())
    {
        Some(only) => plan.into_iter().filter(|c| c.word() == only).collect(),
        None => plan,
    }
}

fn env_kdf() -> KdfParams {
    let num = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u32>().ok());
    let d = KdfParams::DEFAULT;
    match (num("KEYRINGRS_KDF_MEMORY"), num("KEYRINGRS_KDF_TIME")) {
        (None, None) => d,
        (m, t) => KdfParams::new(m.unwrap_or(64 * 1024), t.unwrap_or(3), 1).unwrap_or(d),
    }
}

/// Ask for the password for the bus client `owner` and unlock with it. Never waits for a
/// dialog longer than `timeout`, or after `cancel`.
pub(crate) async fn unlock(
    st: Arc<State>,
    owner: &str,
    window: &str,
    cancel: Arc<Cancel>,
) -> Outcome {
    let caller = caller::of(st.conn(), owner).await;
    ask(st, caller, window, cancel).await
}

/// [`unlock`] for a sandboxed app asking through the Secret portal (portal.rs): the bus client
/// `owner` is xdg-desktop-portal, the dialog names the app.
pub(crate) async fn unlock_for_app(
    st: Arc<State>,
    owner: &str,
    app_id: &str,
    cancel: Arc<Cancel>,
) -> Outcome {
    let mut caller = caller::of(st.conn(), owner).await;
    caller.app = Some(app_id.to_owned());
    ask(st, caller, "", cancel).await
}

async fn ask(st: Arc<State>, mut caller: Caller, window: &str, cancel: Arc<Cancel>) -> Outcome {
    let texts = Texts::for_caller(&caller, window, st.prompt_timeout);
    let gcr = caller.on_display() && gcr::Gcr::available(st.conn()).await;
    let rt = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let plan = plan(&mut caller, gcr);
        run(&st, &caller, &plan, &texts, &rt, &cancel)
    })
    .await
    .unwrap_or(Outcome::NoDialog)
}

fn open(
    choice: Choice,
    st: &State,
    caller: &Caller,
    texts: &Texts,
    rt: &tokio::runtime::Handle,
    cancel: &Arc<Cancel>,
) -> Result<Box<dyn Dialog>, String> {
    let env: Vec<(String, String)> = caller.env.clone().into_iter().collect();
    Ok(match choice {
        Choice::Gcr => Box::new(gcr::Gcr::start(
            st.conn(),
            rt.clone(),
            texts,
            cancel.clone(),
        )?),
        Choice::PinentryDisplay => {
            let mut p =
                pinentry::Pinentry::start(&pinentry::Target::Display(&caller.env), cancel.clone())?;
            p.texts(texts)?;
            Box::new(p)
        }
        Choice::PinentryTerminal => {
            let tty = caller.tty.as_deref().ok_or("the caller has no terminal")?;
            let term = caller.env.get("TERM").map_or("vt100", String::as_str);
            let mut p =
                pinentry::Pinentry::start(&pinentry::Target::Terminal(tty, term), cancel.clone())?;
            p.texts(texts)?;
            Box::new(p)
        }
        Choice::Askpass => Box::new(askpass::Askpass::from_env(texts, env, cancel.clone())?),
    })
}

fn run(
    st: &State,
    caller: &Caller,
    plan: &[Choice],
    texts: &Texts,
    rt: &tokio::runtime::Handle,
    cancel: &Arc<Cancel>,
) -> Outcome {
    let _one_at_a_time = lock(&st.dialog);
    if !st.login.is_locked() {
        return Outcome::Unlocked;
    }
    if cancel.is_cancelled() {
        return Outcome::Dismissed;
    }
    // A TPM2 keyslot without a PIN opens the store with no dialog at all.
    if tpm2::without_dialog(st, caller) {
        return Outcome::Unlocked;
    }
    let mut tried = Vec::new();
    for &choice in plan {
        match open(choice, st, caller, texts, rt, cancel) {
            Ok(dialog) => return converse(st, caller, dialog, cancel),
            Err(why) => tried.push(format!("{}: {why}", choice.word())),
        }
    }
    let who = caller.pid.map_or(String::new(), |p| format!(" (pid {p})"));
    log(format!(
        "an application{who} asked to unlock the store and no dialog could ask for the password \
         ({}): the prompt is dismissed; run `keyringrs unlock` in this login",
        if tried.is_empty() {
            "none allowed by $KEYRINGRS_PROMPTER".to_string()
        } else {
            tried.join("; ")
        }
    ));
    Outcome::NoDialog
}

fn converse(st: &State, caller: &Caller, mut dialog: Box<dyn Dialog>, cancel: &Cancel) -> Outcome {
    let name = dialog.name();
    let mut warning: Option<String> = None;
    for attempt in 0..MAX_TRIES {
        let answer = match dialog.ask(warning.as_deref()) {
            Ok(Reply::Secret(a)) => a,
            Ok(Reply::Cancelled) => {
                log(format!("the unlock was cancelled in {name}"));
                return Outcome::Dismissed;
            }
            Err(e) => {
                if !cancel.is_cancelled() {
                    log(format!("{name} failed: {e}; the prompt is dismissed"));
                }
                return Outcome::Dismissed;
            }
        };
        if cancel.is_cancelled() {
            return Outcome::Dismissed;
        }
        // The TPM counts wrong PINs towards its dictionary-attack lockout: one PIN try a prompt.
        match unlock_with(st, caller, &answer, attempt == 0) {
            Ok(how) => {
                log(format!("unlocked the store through {name}{how}"));
                return Outcome::Unlocked;
            }
            Err(Refused::Wrong) => {
                log(format!("a wrong password in {name}: asked again"));
                warning = Some("That did not unlock the store. Try again.".into());
            }
            Err(Refused::Failed(e)) => {
                log(format!(
                    "unlocking through {name}: {e}; the prompt is dismissed"
                ));
                return Outcome::Dismissed;
            }
        }
    }
    log(format!(
        "{MAX_TRIES} wrong passwords in {name}: the prompt is dismissed"
    ));
    Outcome::Dismissed
}

/// Why an answer did not unlock.
enum Refused {
    /// Neither a password of the store nor its recovery key.
    Wrong,
    Failed(String),
}

impl From<libkeyring::Error> for Refused {
    fn from(e: libkeyring::Error) -> Refused {
        match e {
            libkeyring::Error::WrongPassword => Refused::Wrong,
            e => Refused::Failed(e.to_string()),
        }
    }
}

/// Where an unlock puts the key: `@u` unless `$KEYRINGRS_SCOPE=session`.
fn unlock_options() -> UnlockOptions {
    let scope = match std::env::var("KEYRINGRS_SCOPE").as_deref() {
        Ok("session") => Scope::Session,
        _ => Scope::User,
    };
    UnlockOptions {
        kdf: env_kdf(),
        scope,
        ..UnlockOptions::default()
    }
}

/// Unlock with `answer` (a password, else a recovery key, else, with `pin`, the PIN of a TPM2
/// keyslot that has one); where the key went, for the log.
fn unlock_with(st: &State, caller: &Caller, answer: &[u8], pin: bool) -> Result<String, Refused> {
    let store = st
        .login
        .store()
        .map_err(|e| Refused::Failed(e.to_string()))?;
    let opts = unlock_options();
    match store.unlock(answer, &opts) {
        Err(libkeyring::Error::WrongPassword) => {
            let opened = match RecoveryKey::parse(answer) {
                Ok(key) => store.open_with_recovery_key(&key)?,
                Err(_) if pin => tpm2::with_pin(&store, answer).ok_or(Refused::Wrong)?,
                Err(_) => return Err(Refused::Wrong),
            };
            store.unlock_opened(&opened, &opts)?;
        }
        r => {
            r?;
        }
    }
    Ok(hold(&store, caller, &opts)?)
}

/// After an unlock into `@u`: the caller's login holds the store (it locks when that login
/// ends); where the key went, for the log.
fn hold(
    store: &libkeyring::Store,
    caller: &Caller,
    opts: &UnlockOptions,
) -> libkeyring::Result<String> {
    if opts.scope == Scope::Session {
        return Ok(" (in the daemon's session keyring)".into());
    }
    match &caller.login {
        Some(login) => {
            holders::register_opener(store.kernel_key(), &login.opener, login.kind)?;
            Ok(format!(", held by {}", login.source))
        }
        None => {
            Ok(" (no login of the caller found: it stays unlocked until `keyringrs lock`)".into())
        }
    }
}
