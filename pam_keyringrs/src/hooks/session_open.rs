//! The `session` open hook: unlock the user's store (create it at the first login) where this
//! kind of login puts it, and remember what close is to undo.

use libkeyring::keyring::{join_session, KeySerial, Keyring};
use libkeyring::sys::creds::Account;
use libkeyring::{holders, Error, Opened, Scope, Store, UnlockOptions, UnlockReport};

use crate::handle::{Installed, Level, Pam};
use crate::options::{Options, ScopeOption};

use super::first_login::import_login_keyring;
use super::{as_real_user, become_user, tpm2, Log, Outcome, LOCK_WAIT};

/// Shown to the user when the login password no longer opens the store.
pub const RESYNC_MESSAGE: &str = "Your keyringrs secrets stay locked: your login password does \
not open them (it was changed without keyringrs, e.g. reset by an administrator, or the store's \
header was altered). Run `keyringrs resync`: it asks for your previous password (or, with \
--recovery-key, your recovery key) and your current login password.";

/// The kind of login, which decides the default scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginKind {
    /// A display manager's login: `XDG_SESSION_TYPE` is x11, wayland or mir in the PAM
    /// environment (gdm, sddm, lightdm, greetd set it before session open), or PAM_TTY is an X
    /// display (`:0`: xdm, lightdm). Told by what the login is, never by the service name.
    Graphical,
    /// Anything else: tty, ssh, su, a remote shell.
    Text,
}

impl LoginKind {
    pub fn of(pam: &impl Pam) -> LoginKind {
        let typed = pam
            .env("XDG_SESSION_TYPE")
            .is_some_and(|t| matches!(t.as_str(), "x11" | "wayland" | "mir"));
        let display = pam.tty().is_some_and(|t| t.starts_with(':'));
        if typed || display {
            LoginKind::Graphical
        } else {
            LoginKind::Text
        }
    }

    fn name(self) -> &'static str {
        match self {
            LoginKind::Graphical => "graphical",
            LoginKind::Text => "text",
        }
    }

    /// The scope `opts` gives this kind of login.
    pub fn scope(self, opts: &Options) -> Scope {
        match (opts.scope, self) {
            (ScopeOption::Fixed(s), _) => s,
            (ScopeOption::Auto, LoginKind::Graphical) => Scope::User,
            (ScopeOption::Auto, LoginKind::Text) => Scope::Session,
        }
    }
}

/// The key may only go into a real per-session keyring of this user: one pam_keyinit made
/// (owned by the user), not the `_uid_ses.N` fallback and not the caller's (root's) keyring.
fn check_session_keyring(account: &Account) -> Result<KeySerial, String> {
    let d = Keyring::Session
        .describe()
        .map_err(|e| format!("no usable session keyring ({e})"))?;
    if d.description.starts_with("_uid_ses.") {
        return Err(format!(
            "the session keyring is the shared fallback {} (no pam_keyinit before \
             pam_keyringrs in this stack?)",
            d.description
        ));
    }
    if d.uid != account.uid {
        return Err(format!(
            "the session keyring {:?} belongs to uid {}, not to {} (uid {}): pam_keyinit must \
             run before pam_keyringrs in the session stack",
            d.description, d.uid, account.name, account.uid
        ));
    }
    Keyring::Session
        .serial(false)
        .map_err(|e| format!("no usable session keyring ({e})"))
}

/// Give this login a session keyring of the user's own, linking `@u` into it, as pam_keyinit
/// does: a graphical login in a stack without pam_keyinit (Debian's lightdm and xdm) still
/// needs one, both for its processes to find `@u` and as the thing that dies with the login.
fn join_own_session(account: &Account) -> Result<KeySerial, Error> {
    as_real_user(account, || {
        let session = join_session(None)?;
        Keyring::User.serial(true)?.link(Keyring::Session)?;
        Ok(session)
    })
}

/// The store for this login, opened (or created at the first login) and unwrapped with the
/// password, all as the user's fs ids: the Argon2id work happens here, with the real uid root's.
fn open_store<P: Pam>(
    log: &Log<P>,
    opts: &Options,
    how: &UnlockOptions,
    account: &Account,
    password: &[u8],
) -> Option<(Store, Opened, bool)> {
    let user = &account.name;
    let path = opts.store_path(&account.name, &account.home);
    match Store::open(&path) {
        Ok(store) => {
            let store = store.with_lock_wait(how.lock_wait);
            // Only the keyslots marked for login (docs/PAM.md "Keyslots the module tries").
            match store.open_with_login_password(password) {
                Ok(opened) => Some((store, opened, false)),
                Err(e) => {
                    log.error(
                        &format!("unlocking store {} of {user}, left locked", path.display()),
                        &e,
                    );
                    if let Error::WrongPassword = e {
                        log.pam.info(RESYNC_MESSAGE);
                    }
                    None
                }
            }
        }
        Err(Error::NoStore(_)) if opts.no_init => {
            log.debug(&format!(
                "no store at {} for {user} and no_init: nothing to unlock",
                path.display()
            ));
            None
        }
        Err(Error::NoStore(_)) => match Store::create(&path, password, how) {
            Ok((store, opened)) => {
                log.at(
                    Level::Info,
                    &format!("created store {} of {user} (first login)", path.display()),
                );
                Some((store, opened, true))
            }
            Err(e) => {
                log.error(&format!("creating store {} of {user}", path.display()), &e);
                None
            }
        },
        Err(e) => {
            log.error(&format!("opening store {} of {user}", path.display()), &e);
            None
        }
    }
}

/// `session` open: unlock the user's store with the remembered password (create it on the first
/// login unless `no_init`) where this kind of login puts it, and remember what to undo at close.
pub fn open_session(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let user = pam.user();
    // Taken (and so wiped wherever it was kept) whatever happens next.
    let stash = user.as_deref().and_then(|u| pam.take_password(u));
    let kind = LoginKind::of(pam);
    let scope = kind.scope(opts);
    let log = Log::new(pam, opts, "session open");
    let Some(user) = user else {
        log.debug("no user name: nothing to unlock");
        return Outcome::Skipped;
    };
    let stash = match stash {
        Some(s) if s.user != user => {
            log.at(
                Level::Notice,
                &format!(
                    "the password was given for {} but the session is for {user}: not used, \
                     store left locked",
                    s.user
                ),
            );
            None
        }
        s => s,
    };
    if stash.is_none() && libkeyring::sys::creds::account(&user).is_err() {
        log.debug(&format!(
            "no password from auth for {user}, who is not in the passwd database: nothing to \
             unlock"
        ));
        return Outcome::Skipped;
    }
    let Some((account, _as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
    // Without a password only a TPM2 keyslot for logins can open the store; a graphical login
    // may also find it unlocked by another graphical login and hold it too.
    let tpm2_slots = match stash {
        None => tpm2::login_slots(&log, opts, &account),
        Some(_) => None,
    };
    if stash.is_none() && tpm2_slots.is_none() && scope == Scope::Session {
        log.debug(&format!(
            "no password from auth for {user} (ssh key, autologin, su from root, or \
             pam_keyringrs missing from the auth stack) and no TPM2 keyslot for logins: store \
             left locked"
        ));
        return Outcome::Skipped;
    }
    let (session, own_keyring) = match (check_session_keyring(&account), scope) {
        (Ok(serial), _) => (serial, false),
        (Err(why), Scope::Session) => {
            log.at(
                Level::Notice,
                &format!("{why}: store of {user} left locked"),
            );
            return Outcome::Skipped;
        }
        (Err(why), Scope::User) => match join_own_session(&account) {
            Ok(serial) => {
                log.at(
                    Level::Info,
                    &format!(
                        "{why}: gave this {} login of {user} a session keyring of its own",
                        kind.name()
                    ),
                );
                (serial, true)
            }
            Err(e) => {
                log.error(
                    &format!("{why}; joining a session keyring for {user}, store left locked"),
                    &e,
                );
                return Outcome::Skipped;
            }
        },
    };
    let own = |pam: &mut _| {
        if own_keyring {
            record(
                pam,
                Installed::OwnKeyring {
                    user: account.name.clone(),
                    session: session.0,
                },
            );
        }
    };
    let how = UnlockOptions {
        kdf: opts.kdf,
        scope,
        timeout: opts.timeout,
        lock_wait: Some(LOCK_WAIT),
    };
    if stash.is_none() && scope == Scope::User {
        // A graphical login without a password (autologin, fingerprint): it holds the store if
        // another login unlocked it in @u.
        let path = opts.store_path(&account.name, &account.home);
        let found = Store::open(&path).and_then(|store| {
            let key = as_real_user(&account, || store.find_key())?;
            if key.scope != Scope::User {
                return Err(Error::Locked);
            }
            as_real_user(&account, || {
                holders::register(store.kernel_key(), session, kind.name())
            })
        });
        match found {
            Ok(()) => {
                pam.log(
                    Level::Info,
                    &format!(
                        "session open: {user} logged in without a password; the store was \
                         unlocked by another login and this one holds it too"
                    ),
                );
                record(
                    pam,
                    Installed::Holder {
                        user: account.name.clone(),
                        session: session.0,
                        own_keyring,
                    },
                );
                return Outcome::Done;
            }
            Err(_) if tpm2_slots.is_some() => {}
            Err(_) => {
                if opts.debug {
                    pam.log(
                        Level::Debug,
                        &format!(
                            "session open: no password from auth for {user}, no TPM2 keyslot \
                             for logins, and the store is not unlocked by another login: left \
                             locked"
                        ),
                    );
                }
                own(pam);
                return Outcome::Skipped;
            }
        }
    }
    let found = match (&stash, tpm2_slots) {
        (Some(stash), _) => open_store(&log, opts, &how, &account, &stash.password),
        (None, Some((store, slots))) => tpm2::open(&log, opts, &account, store, &slots)
            .map(|(store, opened)| (store, opened, false)),
        (None, None) => None,
    };
    let Some((store, opened, created)) = found else {
        own(pam);
        return Outcome::Skipped;
    };
    let installed = as_real_user(&account, || {
        // A key left in @u by logins that all ended without a close (killed) goes first: a
        // text login must not leave it readable, a graphical one must not adopt it.
        if holders::lock_if_abandoned(store.kernel_key()).unwrap_or(false) {
            pam.log(
                Level::Info,
                &format!(
                    "session open: locked the store of {user} in the user keyring: every \
                     login that held it there had ended without a close"
                ),
            );
        }
        let report = store.install_opened(&opened, &how)?;
        if scope == Scope::User {
            holders::register(store.kernel_key(), session, kind.name())?;
        }
        Ok(report)
    });
    let report: UnlockReport = match installed {
        Ok(r) => r,
        Err(e) => {
            log.error(&format!("unlocking the store of {user}"), &e);
            own(pam);
            return Outcome::Skipped;
        }
    };
    if let Some(stash) = &stash {
        if created {
            import_login_keyring(&log, &account, &store, &stash.password);
        }
        // After the keys are in: the upgrade (another Argon2id) and its write never wait.
        match store.upgrade_kdf(&opened, &stash.password, opts.kdf) {
            Ok(true) => log.debug("upgraded the key derivation parameters of the login keyslot"),
            Ok(false) => {}
            Err(e) => log.error("upgrading the key derivation parameters", &e),
        }
    }
    // A format version 1 store becomes version 2 once (its index is built: one pass over the
    // entries); a busy store is migrated by its next unlock, write or search instead.
    if store.migrate_after_unlock(&opened) {
        log.at(
            Level::Info,
            &format!(
                "migrated store {} to format version 2",
                store.path().display()
            ),
        );
    }
    drop(stash);
    drop(opened);
    let path = store.path().display().to_string();
    let done = match (scope, report.installed) {
        (Scope::User, _) => {
            log.at(
                Level::Info,
                &format!(
                    "unlocked store {path} of {user} for the user's processes (@u) while a \
                     {} login holds it",
                    kind.name()
                ),
            );
            Installed::Holder {
                user: account.name.clone(),
                session: session.0,
                own_keyring,
            }
        }
        (Scope::Session, Some(key)) => {
            log.at(
                Level::Info,
                &format!("unlocked store {path} of {user} for this login"),
            );
            log.debug(&format!(
                "key {} installed; close_session will lock it",
                key.serial.0
            ));
            Installed::Session {
                user: account.name.clone(),
                serial: key.serial.0,
                description: store.key_description().to_owned(),
            }
        }
        (Scope::Session, None) => {
            log.debug(&format!(
                "store {path} of {user} was unlocked already in this session; close leaves it"
            ));
            return Outcome::Done;
        }
    };
    record(pam, done);
    Outcome::Done
}

fn record(pam: &mut impl Pam, what: Installed) {
    pam.record_key(what);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handle::Stash;
    use crate::hooks::fake::fake;
    use zeroize::Zeroizing;

    #[test]
    fn no_password_is_a_quiet_skip() {
        let mut pam = fake("alice", None);
        assert_eq!(
            open_session(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert!(pam.logged.borrow().is_empty(), "{:?}", pam.logged.borrow());
        let (debug, _) = Options::parse(["debug"]);
        assert_eq!(open_session(&mut pam, &debug), Outcome::Skipped);
        assert_eq!(pam.logged.borrow()[0].0, Level::Debug);
    }

    #[test]
    fn a_password_for_another_user_is_not_used_and_is_wiped() {
        let mut pam = fake("alice", None);
        pam.stash = Some(Stash {
            user: "bob".into(),
            password: Zeroizing::new(b"bobs".to_vec()),
        });
        assert_eq!(
            open_session(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert!(
            pam.stash.is_none(),
            "the stash must be taken (wiped) whatever happens"
        );
        let logged = pam.logged.borrow();
        assert_eq!(logged.len(), 1);
        assert_eq!(logged[0].0, Level::Notice);
        assert!(logged[0]
            .1
            .contains("given for bob but the session is for alice"));
        assert!(!logged[0].1.contains("bobs"));
    }

    #[test]
    fn graphical_logins_are_told_by_session_type_or_display_never_by_service() {
        let text = fake("alice", None);
        assert_eq!(LoginKind::of(&text), LoginKind::Text);
        let mut x = fake("alice", None);
        x.tty = Some(":0".into());
        assert_eq!(LoginKind::of(&x), LoginKind::Graphical);
        for t in ["x11", "wayland", "mir"] {
            let mut w = fake("alice", None);
            w.env = vec![("XDG_SESSION_TYPE".into(), t.into())];
            assert_eq!(LoginKind::of(&w), LoginKind::Graphical, "{t}");
        }
        let mut tty = fake("alice", None);
        tty.tty = Some("/dev/tty1".into());
        tty.env = vec![("XDG_SESSION_TYPE".into(), "tty".into())];
        assert_eq!(LoginKind::of(&tty), LoginKind::Text);
        // The default scope follows the kind; scope= fixes it for every login.
        let auto = Options::default();
        assert_eq!(LoginKind::Graphical.scope(&auto), Scope::User);
        assert_eq!(LoginKind::Text.scope(&auto), Scope::Session);
        let (strict, _) = Options::parse(["scope=session"]);
        assert_eq!(LoginKind::Graphical.scope(&strict), Scope::Session);
    }
}
