//! The lock policies: what locks the store besides logout and `keyringrs lock` — the screen
//! lock and suspend (followed by the Secret Service daemon, docs/SECRET-SERVICE.md "Lock
//! policies"). `/etc/keyringrs/lock.conf` holds the admin's default, the user's
//! `$XDG_CONFIG_HOME/keyringrs/lock.conf` (else `~/.config/...`) wins:
//!
//! ```text
//! screen-lock = lock   # or keep (the default)
//! suspend = lock       # or keep (the default)
//! ```

use std::path::PathBuf;

pub const ADMIN_FILE: &str = "/etc/keyringrs/lock.conf";
/// The longest policy file read.
const MAX_FILE: u64 = 64 * 1024;

/// What locks the store, and which file said so.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub screen_lock: bool,
    pub suspend: bool,
    /// Where each setting came from ("default" when no file sets it).
    pub screen_lock_from: String,
    pub suspend_from: String,
}

/// The user's policy file.
pub fn user_file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("keyringrs/lock.conf"))
}

/// Apply the `key = value` lines of `text` (from `from`) to `p`; bad lines are reported.
fn apply(p: &mut Policy, text: &str, from: &str, bad: &mut Vec<String>) {
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            bad.push(format!("{from}:{}: not `key = value`", n + 1));
            continue;
        };
        let on = match v.trim() {
            "lock" => true,
            "keep" => false,
            other => {
                bad.push(format!(
                    "{from}:{}: {other:?} is neither `lock` nor `keep`",
                    n + 1
                ));
                continue;
            }
        };
        match k.trim() {
            "screen-lock" => (p.screen_lock, p.screen_lock_from) = (on, from.to_owned()),
            "suspend" => (p.suspend, p.suspend_from) = (on, from.to_owned()),
            other => bad.push(format!(
                "{from}:{}: unknown setting {other:?} (screen-lock, suspend)",
                n + 1
            )),
        }
    }
}

fn read(path: &std::path::Path) -> Option<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(MAX_FILE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The policy now: the admin's file, then the user's; the problems found in them.
pub fn current() -> (Policy, Vec<String>) {
    let mut p = Policy {
        screen_lock_from: "default".into(),
        suspend_from: "default".into(),
        ..Policy::default()
    };
    let mut bad = Vec::new();
    let admin = PathBuf::from(ADMIN_FILE);
    for f in [Some(admin), user_file()].into_iter().flatten() {
        if let Some(text) = read(&f) {
            apply(&mut p, &text, &f.display().to_string(), &mut bad);
        }
    }
    (p, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_set_each_policy_and_say_where_from() {
        let mut p = Policy::default();
        let mut bad = vec![];
        apply(
            &mut p,
            "# admin\nsuspend = lock\nscreen-lock=keep\n",
            "/etc/x",
            &mut bad,
        );
        assert!(p.suspend && !p.screen_lock && bad.is_empty());
        apply(
            &mut p,
            "screen-lock = lock  # mine\nsuspend = maybe\nfoo = lock\nnonsense\n",
            "~/x",
            &mut bad,
        );
        assert!(p.suspend && p.screen_lock);
        assert_eq!(
            (p.suspend_from.as_str(), p.screen_lock_from.as_str()),
            ("/etc/x", "~/x")
        );
        assert_eq!(bad.len(), 3, "{bad:?}");
    }
}
