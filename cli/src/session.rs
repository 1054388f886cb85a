//! Whether an unlock here outlives the command: the scope asked for, and the rule that a
//! session-scope unlock needs a session keyring of this process's own.

use libkeyring::keyring::Keyring;
use libkeyring::Scope;

use crate::args::ScopeArg;
use crate::{fail, Failure, Outcome};

fn scope_of(arg: ScopeArg) -> Scope {
    match arg {
        ScopeArg::Session => Scope::Session,
        ScopeArg::User => Scope::User,
    }
}

/// The scope asked for, if an unlock there outlives this command (see require_own_session).
pub(crate) fn scope_that_outlives_us(arg: ScopeArg) -> Result<Scope, Failure> {
    let scope = scope_of(arg);
    if scope == Scope::Session {
        require_own_session()?;
    }
    Ok(scope)
}

/// A session-scope unlock must outlive this command: refuse when this process has no session
/// keyring of its own (the `_uid_ses.N` fallback, or none), where the key would go into a
/// keyring that dies with us or that every process of the user without a session shares.
pub(crate) fn require_own_session() -> Outcome {
    let own = match Keyring::Session.describe() {
        Ok(d) => !d.description.starts_with("_uid_ses."),
        Err(_) => false,
    };
    if own {
        Ok(())
    } else {
        Err(fail(
            "this process has no session keyring of its own, so the unlock would not outlive              this command: run `keyctl session -` first (a shell with a keyring of its own), log              in through PAM (pam_keyinit), or use `--scope user` (readable by all your processes)",
        ))
    }
}
