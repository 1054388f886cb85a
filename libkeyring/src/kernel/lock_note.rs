//! Why the store was last locked by a policy (the Secret Service daemon's lock at screen lock or
//! at suspend), for `keyringrs status` and for a screen locker's PAM authentication, which
//! reopens only a store a policy locked: a small
//! `user` key `keyringrs-locked:<store-id>` in `@u`, owner-only, holding `WHY SINCE` (WHY one
//! word: `screen-lock`, `suspend`). Dropped by every lock (a policy's sets it after) and every
//! unlock.
//! Nothing here is secret; a process of the user can write a false note, which only changes
//! what status says and lets a screen unlock reopen a store locked by hand (with the password).

use super::key::StoreKey;
use super::keyring::{perm, Keyring};
use crate::error::{Error, Result};

/// The longest note read.
const MAX: usize = 128;

fn description(key: &StoreKey) -> String {
    format!("keyringrs-locked:{}", key.id())
}

/// Note that `key`'s store was locked now because of `why` (one word).
pub fn set(key: &StoreKey, why: &str) -> Result<()> {
    clear(key)?;
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let note = Keyring::Thread.add(&description(key), format!("{why} {since}").as_bytes())?;
    note.place(perm::HOLDER, Keyring::User, None).map(drop)
}

/// The note of `key`'s store: (why, since in seconds since the epoch).
pub fn get(key: &StoreKey) -> Option<(String, i64)> {
    let k = Keyring::User
        .search_settled("user", &description(key), key.owner())
        .ok()?;
    let d = k.describe().ok()?;
    if d.uid != key.owner() {
        return None;
    }
    let payload = k.read().ok()?;
    let text = std::str::from_utf8(payload.get(..payload.len().min(MAX))?).ok()?;
    parse(text)
}

fn parse(text: &str) -> Option<(String, i64)> {
    let (why, since) = text.split_once(' ')?;
    if why.is_empty() || !why.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
        return None;
    }
    Some((why.to_owned(), since.trim().parse().ok()?))
}

/// Drop the note (the store unlocked). Ok even if there was none.
pub fn clear(key: &StoreKey) -> Result<()> {
    // One note is the rule; a few left by racing writers go too.
    for _ in 0..8 {
        match Keyring::User.search_settled("user", &description(key), key.owner()) {
            Ok(k) => match k.invalidate() {
                Ok(()) | Err(Error::Locked) => continue,
                Err(e) => return Err(e),
            },
            Err(Error::Locked) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_note_is_a_word_and_a_time() {
        assert_eq!(
            parse("suspend 1796657683"),
            Some(("suspend".into(), 1796657683))
        );
        assert_eq!(parse("screen-lock 5\n"), Some(("screen-lock".into(), 5)));
        assert_eq!(parse("Suspend 5"), None);
        assert_eq!(parse("suspend"), None);
        assert_eq!(parse("suspend x"), None);
        assert_eq!(parse(" 5"), None);
    }
}
