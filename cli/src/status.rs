//! `keyringrs status`: the store's path, id and state, where its key is and who holds it.

use std::path::Path;

use libkeyring::{Scope, Store};

use crate::Outcome;

/// `keyringrs status`.
pub fn status(path: &Path) -> Outcome {
    let store = Store::open(path)?;
    let st = store.status()?;
    println!("store:   {}", st.path.display());
    println!("id:      {}", st.id);
    println!("state:   {}", if st.locked { "locked" } else { "unlocked" });
    if let Some(n) = st.entries {
        println!("entries: {n}");
    }
    if let Ok(key) = store.find_key() {
        let place = match key.scope {
            Scope::Session => "this login's session keyring (@s): its processes only",
            Scope::User => "the user keyring (@u): all your processes",
        };
        println!("key:     {place}, serial {}", key.serial.0);
    }
    for h in libkeyring::holders::list(store.kernel_key()).unwrap_or_default() {
        let opener = h
            .opener
            .map(|p| format!(", opened by pid {}", p.pid))
            .unwrap_or_default();
        let keyring = if h.session == 0 {
            "unlocked through the prompt".to_string()
        } else {
            format!("session keyring {}", h.session)
        };
        println!(
            "held by: {} login, {keyring}{opener}, since {}{}",
            h.kind,
            h.since,
            if h.alive {
                ""
            } else {
                " (gone; dropped at the next logout)"
            }
        );
    }
    Ok(())
}
