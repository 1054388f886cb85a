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
    if st.locked {
        if let Some((why, since)) = libkeyring::lock_note::get(store.kernel_key()) {
            println!("locked:  at {} {}", why.replace('-', " "), clock(since));
        }
    }
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
    let (policy, bad) = libkeyring::lock_policy::current();
    let word = |on: bool| if on { "lock" } else { "keep" };
    println!(
        "policy:  screen-lock = {} ({}), suspend = {} ({})",
        word(policy.screen_lock),
        policy.screen_lock_from,
        word(policy.suspend),
        policy.suspend_from
    );
    for b in bad {
        eprintln!("keyringrs: lock policy: {b}");
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

/// `seconds` since the epoch as a UTC date and time (`YYYY-MM-DD HH:MM UTC`).
fn clock(seconds: i64) -> String {
    let [year, month, day, hour, minute, _] = libkeyring::sys::utc(seconds);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02} UTC")
}

#[cfg(test)]
mod tests {
    #[test]
    fn clock_reads_as_date_does() {
        assert_eq!(super::clock(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::clock(1_796_657_683), "2026-12-07 15:34 UTC");
        assert_eq!(super::clock(951_782_400), "2000-02-29 00:00 UTC");
    }
}
