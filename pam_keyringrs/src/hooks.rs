//! What each PAM hook does, as plain Rust over the [`Pam`] trait. Every problem is logged once
//! with its reason and turns into [`Outcome::Skipped`]: this module never fails or blocks a login.
//!
//! Who may read the key, and how long (docs/PAM.md has the table):
//! - a *text* login (tty, ssh; `scope=session`, the default for them) puts the key pair into its
//!   own session keyring: only that login's processes read it, and its close locks it;
//! - a *graphical* login (`scope=user`, the default for them) puts it into the user keyring `@u`,
//!   where the user's service manager and everything it starts find it, and records itself as a
//!   holder; the last holder's close locks it, and a killed login stops counting at once.

use std::time::Duration;

use libkeyring::keyring::{join_session, KeySerial, Keyring};
use libkeyring::sys::creds::{self, Account, AsRealUser, AsUser};
use libkeyring::{holders, Error, Opened, Scope, Store, UnlockOptions, UnlockReport};

use crate::handle::{Installed, Level, Pam, Stash};
use crate::options::{Options, ScopeOption};

/// `PAM_PRELIM_CHECK` and `PAM_UPDATE_AUTHTOK` (security/_pam_types.h).
pub const PAM_PRELIM_CHECK: u32 = 0x4000;
pub const PAM_UPDATE_AUTHTOK: u32 = 0x2000;

/// The longest a login waits for the store's writer lock (held by a process of the user): the
/// store is then left as it is, and the login goes on.
pub const LOCK_WAIT: Duration = Duration::from_secs(1);

/// What a hook did: `Done` → PAM_SUCCESS, `Skipped` → PAM_IGNORE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Skipped,
}

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

struct Log<'a, P: Pam> {
    pam: &'a P,
    debug: bool,
    phase: &'static str,
}

impl<P: Pam> Log<'_, P> {
    fn at(&self, level: Level, msg: &str) {
        if level != Level::Debug || self.debug {
            self.pam.log(level, &format!("{}: {msg}", self.phase));
        }
    }
    fn debug(&self, msg: &str) {
        self.at(Level::Debug, msg)
    }
    /// Log a library error with the level its kind deserves.
    fn error(&self, what: &str, err: &Error) {
        let level = match err {
            Error::WrongPassword | Error::NoStore(_) => Level::Notice,
            Error::Quota(_) | Error::Locked => Level::Warning,
            _ => Level::Error,
        };
        self.at(level, &format!("{what}: {err}"));
    }
}

/// Look the user up and act as them (fsuid, fsgid, groups) for the rest of the hook.
fn become_user<P: Pam>(log: &Log<P>, user: &str) -> Option<(Account, AsUser)> {
    let account = creds::account(user)
        .map_err(|e| log.error(&format!("user {user}"), &e))
        .ok()?;
    let guard = AsUser::enter(&account)
        .map_err(|e| log.error(&format!("acting as {user}"), &e))
        .ok()?;
    Some((account, guard))
}

/// Run `f` with the user's real ids too (for `@u` and joining a keyring), only for that call.
fn as_real_user<T>(account: &Account, f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let _real = AsRealUser::enter(account)?;
    f()
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

/// `auth`: remember the password the stack has verified, for session open.
pub fn authenticate(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "auth",
    };
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
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "session open",
    };
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
    // Text logins without a password have nothing to do; graphical ones may find the store
    // unlocked by another graphical login and hold it too.
    if stash.is_none() && scope == Scope::Session {
        log.debug(&format!(
            "no password from auth for {user} (ssh key, autologin, su from root, or \
             pam_keyringrs missing from the auth stack): store left locked"
        ));
        return Outcome::Skipped;
    }
    let Some((account, _as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
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
    let Some(stash) = stash else {
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
        return match found {
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
                Outcome::Done
            }
            Err(_) => {
                if opts.debug {
                    pam.log(
                        Level::Debug,
                        &format!(
                            "session open: no password from auth for {user} and the store is \
                             not unlocked by another login: left locked"
                        ),
                    );
                }
                own(pam);
                Outcome::Skipped
            }
        };
    };
    let Some((store, opened, created)) = open_store(&log, opts, &how, &account, &stash.password)
    else {
        own(pam);
        return Outcome::Skipped;
    };
    let installed = as_real_user(&account, || {
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
    if created {
        import_login_keyring(&log, &account, &store, &stash.password);
    }
    // After the keys are in: the upgrade (another Argon2id) and its write never wait.
    match store.upgrade_kdf(&opened, &stash.password, opts.kdf) {
        Ok(true) => log.debug("upgraded the key derivation parameters of the login keyslot"),
        Ok(false) => {}
        Err(e) => log.error("upgrading the key derivation parameters", &e),
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

/// At the first login (the store was just created): bring over the items of the user's
/// gnome-keyring login keyring if it opens with the login password (or has none: the textual
/// format), as the user, into the unlocked store. Bounded (the reader caps size, counts and
/// iterations; writes wait at most LOCK_WAIT), and never fails the login: a keyring that does
/// not open is left for `keyringrs import gnome-keyring`, with a message.
fn import_login_keyring<P: Pam>(log: &Log<P>, account: &Account, store: &Store, password: &[u8]) {
    use keyringrs_import::{self as import, gnome};
    let user = &account.name;
    // From the passwd home, never from XDG_DATA_HOME: the environment is not the user's here.
    let path = account.home.join(".local/share/keyrings/login.keyring");
    if std::fs::symlink_metadata(&path).is_err() {
        log.debug(&format!(
            "no gnome-keyring login keyring for {user}: nothing to import"
        ));
        return;
    }
    let result = gnome::read_file(&path)
        .and_then(|bytes| gnome::parse(&path, &bytes, Some(password)))
        .and_then(|keyring| {
            let items: Vec<import::Item> = keyring.items.into_iter().map(Into::into).collect();
            let plan = import::plan_for(store, &items)?;
            import::apply(store, &items, &plan)?;
            Ok(plan.summary())
        });
    match result {
        Ok(summary) => log.at(
            Level::Info,
            &format!(
                "imported the gnome-keyring login keyring {} of {user}: {summary}",
                path.display()
            ),
        ),
        Err(Error::WrongPassword) => {
            log.at(
                Level::Notice,
                &format!(
                    "the gnome-keyring login keyring {} of {user} does not open with the login \
                     password: not imported",
                    path.display()
                ),
            );
            log.pam.info(IMPORT_MESSAGE);
        }
        Err(e) => log.error(
            &format!(
                "importing the gnome-keyring login keyring {} of {user}",
                path.display()
            ),
            &e,
        ),
    }
}

/// Shown when the gnome-keyring login keyring could not be imported at the first login.
pub const IMPORT_MESSAGE: &str = "Your gnome-keyring login keyring does not open with your login \
password, so its secrets were not brought over to keyringrs. Run `keyringrs import \
gnome-keyring` and give its password.";

fn record(pam: &mut impl Pam, what: Installed) {
    pam.record_key(what);
}

/// `session` close: undo what this session's open did — invalidate its own keys, or release
/// its hold on the store in `@u` (the last live holder locks it), and revoke a session keyring
/// the module made.
pub fn close_session(pam: &mut impl Pam, opts: &Options) -> Outcome {
    let key = pam.take_key();
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "session close",
    };
    let Some(key) = key else {
        log.debug("this session unlocked no store: nothing to lock");
        return Outcome::Skipped;
    };
    let user = key.user().to_owned();
    let Some((account, _as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
    match key {
        Installed::Session {
            serial,
            description,
            ..
        } => close_own_key(&log, &account, KeySerial(serial), &description),
        Installed::Holder {
            session,
            own_keyring,
            ..
        } => {
            let outcome = release_hold(&log, opts, &account, KeySerial(session));
            if own_keyring {
                revoke_own_keyring(&log, &account, session);
            }
            outcome
        }
        Installed::OwnKeyring { session, .. } => {
            revoke_own_keyring(&log, &account, session);
            Outcome::Done
        }
    }
}

/// Invalidate this login's key, if it still is that key: a serial freed and reused since open
/// belongs to something else.
fn close_own_key<P: Pam>(
    log: &Log<P>,
    account: &Account,
    serial: KeySerial,
    description: &str,
) -> Outcome {
    let user = &account.name;
    match serial.describe() {
        Ok(d) if d.description == description && d.uid == account.uid => {
            match serial.invalidate() {
                Ok(()) => {
                    log.at(Level::Info, &format!("locked the store of {user}"));
                    Outcome::Done
                }
                Err(e) => {
                    log.error(&format!("locking the store of {user}"), &e);
                    Outcome::Skipped
                }
            }
        }
        Ok(_) | Err(Error::Locked) => {
            log.debug(&format!(
                "the key of {user} is gone already (session keyring revoked, locked or expired)"
            ));
            Outcome::Skipped
        }
        Err(e) => {
            log.error(&format!("finding the key of {user}"), &e);
            Outcome::Skipped
        }
    }
}

/// This login stops holding the store in `@u`; if no live holder remains, lock it there.
fn release_hold<P: Pam>(
    log: &Log<P>,
    opts: &Options,
    account: &Account,
    session: KeySerial,
) -> Outcome {
    let user = &account.name;
    let path = opts.store_path(&account.name, &account.home);
    let store = match Store::open(&path) {
        Ok(s) => s,
        Err(e) => {
            log.error(&format!("opening store {} of {user}", path.display()), &e);
            return Outcome::Skipped;
        }
    };
    let result = as_real_user(account, || {
        let remaining = holders::release(store.kernel_key(), session)?;
        if remaining == 0 {
            store.lock_user_scope()?;
        }
        Ok(remaining)
    });
    match result {
        Ok(0) => {
            log.at(
                Level::Info,
                &format!("locked the store of {user} (the last login holding it closed)"),
            );
            Outcome::Done
        }
        Ok(n) => {
            log.at(
                Level::Info,
                &format!(
                    "the store of {user} stays unlocked: {n} other login(s) of the user hold it"
                ),
            );
            Outcome::Done
        }
        Err(e) => {
            log.error(&format!("releasing the store of {user}"), &e);
            Outcome::Skipped
        }
    }
}

fn revoke_own_keyring<P: Pam>(log: &Log<P>, account: &Account, session: i32) {
    let serial = KeySerial(session);
    let ours =
        matches!(serial.describe(), Ok(d) if d.uid == account.uid && d.key_type == "keyring");
    if ours {
        if let Err(e) = serial.revoke() {
            log.error("revoking the session keyring made at open", &e);
        }
    }
}

/// `password`: on PAM_UPDATE_AUTHTOK, rewrap the store's master key from the old password to the
/// new one (entries are untouched).
pub fn change_password(pam: &mut impl Pam, opts: &Options, flags: u32) -> Outcome {
    let log = Log {
        pam,
        debug: opts.debug,
        phase: "password",
    };
    if flags & PAM_UPDATE_AUTHTOK == 0 {
        return Outcome::Skipped;
    }
    let Some(user) = pam.user() else {
        log.debug("no user name: nothing to rewrap");
        return Outcome::Skipped;
    };
    let (Some(old), Some(new)) = (pam.old_authtok(), pam.authtok()) else {
        log.at(
            Level::Notice,
            &format!(
                "the old or new password of {user} is not available (set by root?): the store \
                 keeps its password; the next login tells the user how to resync"
            ),
        );
        return Outcome::Skipped;
    };
    let Some((account, as_user)) = become_user(&log, &user) else {
        return Outcome::Skipped;
    };
    let path = opts.store_path(&account.name, &account.home);
    let result = Store::open(&path)
        .map(|s| s.with_lock_wait(Some(LOCK_WAIT)))
        .and_then(|s| s.passwd(&old, &new, opts.kdf));
    drop(as_user);
    match result {
        Ok(()) => {
            log.at(
                Level::Info,
                &format!(
                    "rewrapped store {} of {user} for the new password",
                    path.display()
                ),
            );
            // A password changed during login (expired): session open must use the new one.
            if let Some(stash) = pam.take_password(&user) {
                if stash.user == user {
                    pam.stash_password(Stash {
                        user: user.clone(),
                        password: new,
                    });
                }
            }
            Outcome::Done
        }
        Err(Error::NoStore(_)) => {
            log.debug(&format!(
                "no store at {} for {user}: nothing to rewrap",
                path.display()
            ));
            Outcome::Skipped
        }
        Err(e) => {
            log.error(
                &format!(
                    "rewrapping store {} of {user}, it keeps its password",
                    path.display()
                ),
                &e,
            );
            if let Error::WrongPassword = e {
                pam.info(
                    "Your keyringrs secrets keep their old password (it was not your previous \
                     login password). Run `keyringrs passwd` to change it.",
                );
            }
            Outcome::Skipped
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    /// libpam stand-in: items, data and what was logged or shown.
    #[derive(Default)]
    struct Fake {
        user: Option<String>,
        authtok: Option<Vec<u8>>,
        stash: Option<Stash>,
        key: Option<Installed>,
        tty: Option<String>,
        env: Vec<(String, String)>,
        logged: std::cell::RefCell<Vec<(Level, String)>>,
        shown: std::cell::RefCell<Vec<String>>,
    }

    impl Pam for Fake {
        fn user(&self) -> Option<String> {
            self.user.clone()
        }
        fn authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
            self.authtok.clone().map(Zeroizing::new)
        }
        fn old_authtok(&self) -> Option<Zeroizing<Vec<u8>>> {
            None
        }
        fn tty(&self) -> Option<String> {
            self.tty.clone()
        }
        fn env(&self, name: &str) -> Option<String> {
            self.env
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        }
        fn log(&self, level: Level, msg: &str) {
            self.logged.borrow_mut().push((level, msg.to_owned()));
        }
        fn info(&self, msg: &str) {
            self.shown.borrow_mut().push(msg.to_owned());
        }
        fn stash_password(&mut self, stash: Stash) {
            self.stash = Some(stash);
        }
        fn take_password(&mut self, _user: &str) -> Option<Stash> {
            self.stash.take()
        }
        fn record_key(&mut self, key: Installed) {
            self.key = Some(key);
        }
        fn take_key(&mut self) -> Option<Installed> {
            self.key.take()
        }
    }

    fn fake(user: &str, authtok: Option<&[u8]>) -> Fake {
        Fake {
            user: Some(user.into()),
            authtok: authtok.map(<[u8]>::to_vec),
            ..Fake::default()
        }
    }

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

    #[test]
    fn close_without_an_installed_key_does_nothing_and_prelim_check_changes_nothing() {
        let mut pam = fake("alice", Some(b"new"));
        assert_eq!(
            close_session(&mut pam, &Options::default()),
            Outcome::Skipped
        );
        assert_eq!(
            change_password(&mut pam, &Options::default(), PAM_PRELIM_CHECK),
            Outcome::Skipped
        );
        assert!(pam.logged.borrow().is_empty());
    }
}
