//! The `auth` hook: remember the password the stack has verified, for session open.

use crate::handle::{Pam, Stash};
use crate::options::Options;

use super::{Log, Outcome};

/// `auth`: remember the password the stack has verified, for session open.
pub fn authenticate(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let log = Log::new(pam, opts, "auth");
    let Some(user) = pam.user() else {
        log.debug("no user name: nothing to remember");
        return Outcome::Skipped;
    };
    let Some(password) = pam.authtok() else {
        log.debug(&format!(
            "no password for {user} (key or password-less authentication): nothing to remember"
        ));
        return Outcome::Skipped;
    };
    log.debug(&format!(
        "remembering the password of {user} for session open"
    ));
    pam.stash_password(Stash { user, password });
    Outcome::Skipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::fake::fake;

    #[test]
    fn auth_remembers_the_password_tagged_with_the_user_and_never_decides() {
        let mut pam = fake("alice", Some(b"pw"));
        assert_eq!(
            authenticate(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        let stash = pam.stash.expect("stashed");
        assert_eq!(
            (stash.user.as_str(), &stash.password[..]),
            ("alice", &b"pw"[..])
        );
        assert!(!format!("{stash:?}").contains("pw\""), "Debug must redact");

        let mut pam = fake("alice", None);
        assert_eq!(
            authenticate(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert!(pam.stash.is_none());
    }
}
