//! The module's arguments from the PAM stack line (docs/PAM.md). A bad or unknown argument is
//! reported and ignored, never fatal: the module must not break a login over a typo.

use std::path::PathBuf;
use std::time::Duration;

use keyringrs_tpm2::{Tcti, DEFAULT_TCTI};
use libkeyring::{KdfParams, Scope};

/// `tpm2_timeout=` when not given: a TPM2 that has not answered by then is not waited for.
pub const DEFAULT_TPM2_TIMEOUT: Duration = Duration::from_secs(10);
/// `tpm2_timeout=` at most: a login is never held up longer than this by a TPM.
pub const MAX_TPM2_TIMEOUT: u64 = 60;

/// `scope=`: where a login puts the key, and so who can read it and when it locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScopeOption {
    /// Graphical logins hold the store open in `@u` (for the user's service manager and its
    /// apps) until the last of them closes; text logins use their own `@s` (docs/PAM.md).
    #[default]
    Auto,
    /// Every login as `scope=user` or every login as `scope=session`.
    Fixed(Scope),
}
/// Parsed module arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `debug`: log every decision at LOG_DEBUG.
    pub debug: bool,
    /// `store=PATH`: the store, with `%u` (user), `%h` (home) and `%%` expanded.
    pub store: Option<String>,
    /// `scope=auto|session|user`.
    pub scope: ScopeOption,
    /// `timeout=SECS`.
    pub timeout: Option<u32>,
    /// `no_init`: do not create a store at the first login.
    pub no_init: bool,
    /// `kdf_memory=KiB` and `kdf_time=N`: Argon2id for new or upgraded keyslots (lanes = 1).
    pub kdf: KdfParams,
    /// `tpm2_tcti=TCTI`: the TPM2 a login without a password asks (the login's environment is
    /// not consulted: in PAM it belongs to whoever started the login program).
    pub tpm2_tcti: Tcti,
    /// `tpm2_timeout=SECS`: the longest one TPM2 operation may hold up a login.
    pub tpm2_timeout: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            debug: false,
            store: None,
            scope: ScopeOption::Auto,
            timeout: None,
            no_init: false,
            kdf: KdfParams::DEFAULT,
            tpm2_tcti: Tcti::parse(DEFAULT_TCTI).expect("the default TCTI parses"),
            tpm2_timeout: DEFAULT_TPM2_TIMEOUT,
        }
    }
}

impl Options {
    /// Parse the stack line's arguments; returns the options and one message per argument that
    /// was ignored (unknown or invalid).
    pub fn parse<'a>(args: impl IntoIterator<Item = &'a str>) -> (Options, Vec<String>) {
        let mut o = Options::default();
        let mut ignored = Vec::new();
        let (mut memory, mut time) = (o.kdf.memory_kib(), o.kdf.time());
        for arg in args {
            let (name, value) = match arg.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (arg, None),
            };
            let bad = |why: &str| format!("option {arg:?} ignored: {why}");
            match (name, value) {
                ("debug", None) => o.debug = true,
                ("no_init", None) => o.no_init = true,
                ("store", Some(v)) if v.starts_with('/') || v.starts_with("%h") => {
                    o.store = Some(v.to_owned())
                }
                ("store", Some(_)) => {
                    ignored.push(bad("the path must be absolute or start with %h"))
                }
                ("scope", Some("auto")) => o.scope = ScopeOption::Auto,
                ("scope", Some(v)) => match v.parse() {
                    Ok(s) => o.scope = ScopeOption::Fixed(s),
                    Err(_) => ignored.push(bad("expected scope=auto, session or user")),
                },
                ("timeout", Some(v)) => match v.parse::<u32>() {
                    Ok(0) => o.timeout = None,
                    Ok(t) => o.timeout = Some(t),
                    Err(_) => ignored.push(bad("expected a number of seconds")),
                },
                ("kdf_memory", Some(v)) => match v.parse() {
                    Ok(m) => memory = m,
                    Err(_) => ignored.push(bad("expected KiB")),
                },
                ("kdf_time", Some(v)) => match v.parse() {
                    Ok(t) => time = t,
                    Err(_) => ignored.push(bad("expected an iteration count")),
                },
                ("tpm2_tcti", Some(v)) => match Tcti::parse(v) {
                    Ok(t) => o.tpm2_tcti = t,
                    Err(e) => ignored.push(bad(&e.to_string())),
                },
                ("tpm2_timeout", Some(v)) => match v.parse::<u64>() {
                    Ok(t @ 1..=MAX_TPM2_TIMEOUT) => o.tpm2_timeout = Duration::from_secs(t),
                    _ => ignored.push(bad(&format!("expected 1 to {MAX_TPM2_TIMEOUT} seconds"))),
                },
                _ => ignored.push(format!("unknown option {arg:?} ignored")),
            }
        }
        match KdfParams::new(memory, time, 1) {
            Ok(k) => o.kdf = k,
            Err(e) => ignored.push(format!(
                "kdf_memory={memory} kdf_time={time} ignored ({e}); using the defaults"
            )),
        }
        (o, ignored)
    }

    /// The store path for a user: `store=` expanded, else `<home>/.local/share/keyringrs`. The
    /// environment (HOME, XDG_DATA_HOME, KEYRINGRS_STORE) is not consulted: in PAM it belongs
    /// to whoever started the login program.
    pub fn store_path(&self, user: &str, home: &std::path::Path) -> PathBuf {
        let Some(pattern) = &self.store else {
            return home.join(".local/share/keyringrs");
        };
        let home = home.to_string_lossy();
        let mut out = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            match (c, chars.clone().next()) {
                ('%', Some('u')) => out.push_str(user),
                ('%', Some('h')) => out.push_str(&home),
                ('%', Some('%')) => out.push('%'),
                _ => {
                    out.push(c);
                    continue;
                }
            }
            chars.next();
        }
        PathBuf::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_option_parses() {
        let (o, ignored) = Options::parse([
            "debug",
            "store=/var/lib/keyringrs/%u",
            "scope=user",
            "timeout=3600",
            "no_init",
            "kdf_memory=1024",
            "kdf_time=2",
            "tpm2_tcti=swtpm:host=127.0.0.1,port=2321",
            "tpm2_timeout=5",
        ]);
        assert!(ignored.is_empty(), "{ignored:?}");
        assert_eq!(o.tpm2_tcti.as_str(), "swtpm:host=127.0.0.1,port=2321");
        assert_eq!(o.tpm2_timeout, Duration::from_secs(5));
        assert!(o.debug && o.no_init);
        assert_eq!(o.scope, ScopeOption::Fixed(Scope::User));
        assert_eq!(o.timeout, Some(3600));
        assert_eq!(
            (o.kdf.memory_kib(), o.kdf.time(), o.kdf.lanes()),
            (1024, 2, 1)
        );
        assert_eq!(
            o.store_path("alice", Path::new("/home/alice")),
            Path::new("/var/lib/keyringrs/alice")
        );
    }

    #[test]
    fn defaults_and_store_expansion() {
        let (o, ignored) = Options::parse([]);
        assert!(ignored.is_empty());
        assert_eq!(o, Options::default());
        assert_eq!(
            o.store_path("bob", Path::new("/home/bob")),
            Path::new("/home/bob/.local/share/keyringrs")
        );
        let (o, _) = Options::parse(["store=%h/.keys/%u-100%%"]);
        assert_eq!(
            o.store_path("bob", Path::new("/home/bob")),
            Path::new("/home/bob/.keys/bob-100%")
        );
    }

    #[test]
    fn bad_options_are_reported_and_ignored() {
        let (o, ignored) = Options::parse([
            "frobnicate",
            "debug=yes",
            "store=relative/path",
            "scope=global",
            "timeout=soon",
            "tpm2_tcti=carrier-pigeon:",
            "tpm2_timeout=0",
            "tpm2_timeout=3600",
            "kdf_memory=8",
        ]);
        assert_eq!(ignored.len(), 9, "{ignored:?}");
        assert!(ignored[0].contains("unknown option \"frobnicate\""));
        assert!(ignored[5].contains("TCTI"), "{ignored:?}");
        assert!(ignored[6].contains("1 to 60 seconds"), "{ignored:?}");
        assert!(ignored[8].contains("using the defaults"));
        assert_eq!(o, Options::default());
    }
}
