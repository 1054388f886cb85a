//! The store's life and its entries: `init`, `unlock`, `lock`, `set`, `get`, `delete`, `list`.

use std::io::{IsTerminal, Write};
use std::path::Path;

use libkeyring::{Error, KdfParams, Store, UnlockOptions};

use crate::args::ScopeArg;
use crate::input::{prompt_new, read_recovery_key, read_secret, read_stdin_lines, store_password};
use crate::session::scope_that_outlives_us;
use crate::slots::print_recovery_key;
use crate::{escape, fail, warn, Failure, Outcome};

/// `keyringrs init`: create the store and leave it unlocked.
pub fn init(
    path: &Path,
    kdf: KdfParams,
    password_stdin: bool,
    scope: ScopeArg,
    recovery_key: bool,
) -> Outcome {
    let scope = scope_that_outlives_us(scope)?;
    let pw = if password_stdin {
        read_stdin_lines(1)?.remove(0)
    } else {
        prompt_new("New store password: ")?
    };
    if pw.is_empty() {
        return Err(fail("refusing an empty password"));
    }
    let opts = UnlockOptions {
        kdf,
        scope,
        ..Default::default()
    };
    let store = Store::init(path, &pw, &opts)?;
    println!("created store {} at {}", store.id(), store.path().display());
    if recovery_key {
        print_recovery_key(&store.add_recovery_key(&pw[..])?);
    }
    Ok(())
}

/// `keyringrs unlock`: with the password, or the recovery key.
pub fn unlock(
    path: &Path,
    kdf: KdfParams,
    password_stdin: bool,
    timeout: Option<u32>,
    scope: ScopeArg,
    recovery_key: bool,
) -> Outcome {
    if !password_stdin && !recovery_key && !std::io::stdin().is_terminal() && on_display() {
        // A script or a desktop launcher in a graphical session: the desktop's own dialog,
        // through the Secret Service daemon, which serves this store.
        crate::import_secret_service::unlock_through_daemon()?;
        if Store::open(path)?.is_locked()? {
            return Err(fail(
                "the Secret Service daemon's prompt completed, but this store is still locked (the daemon serves another store: use --store as it does, or --password-stdin)",
            ));
        }
        return Ok(());
    }
    let scope = scope_that_outlives_us(scope)?;
    let store = Store::open(path)?;
    let opts = UnlockOptions {
        kdf,
        scope,
        timeout,
        ..Default::default()
    };
    if recovery_key {
        let key = read_recovery_key(password_stdin)?;
        let opened = store.open_with_recovery_key(&key)?;
        store.install_opened(&opened, &opts)?;
        if store.migrate_after_unlock(&opened) {
            eprintln!("keyringrs: migrated the store to format version 2");
        }
        return Ok(());
    }
    let report = store.unlock(&store_password(password_stdin)?, &opts)?;
    if let Some(w) = report.warning {
        warn(&w);
    }
    if report.migrated {
        eprintln!("keyringrs: migrated the store to format version 2");
    }
    Ok(())
}

/// A graphical session: DISPLAY or WAYLAND_DISPLAY set.
fn on_display() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

/// `keyringrs lock`.
pub fn lock(path: &Path) -> Outcome {
    Store::open(path)?.lock()?;
    Ok(())
}

/// `keyringrs set`: the secret from stdin, or asked on the tty.
pub fn set(path: &Path, service: &str, username: &str, raw: bool) -> Outcome {
    let store = Store::open(path)?;
    // Fail before reading the secret if the store is locked.
    if store.is_locked()? {
        return Err(Error::Locked.into());
    }
    let secret = read_secret(raw)?;
    store.set(service, username, &secret)?;
    Ok(())
}

/// `keyringrs get`: the secret exactly on stdout (a newline only on a tty).
pub fn get(path: &Path, service: &str, username: &str) -> Outcome {
    let secret = Store::open(path)?.get(service, username)?;
    let mut out = std::io::stdout().lock();
    let tty = std::io::stdout().is_terminal();
    out.write_all(&secret)
        .and_then(|()| if tty { out.write_all(b"\n") } else { Ok(()) })
        .and_then(|()| out.flush())
        .map_err(|e| fail(format!("write to stdout: {e}")))
}

/// `keyringrs delete`.
pub fn delete(path: &Path, service: &str, username: &str) -> Outcome {
    Store::open(path)?.delete(service, username)?;
    Ok(())
}

/// `keyringrs list`: every entry that opens, and each one that does not named.
pub fn list(path: &Path) -> Outcome {
    let (good, bad) = Store::open(path)?.list_report()?;
    let mut out = std::io::stdout().lock();
    for (s, u) in good {
        writeln!(out, "{}\t{}", escape(&s), escape(&u))
            .map_err(|e| fail(format!("write to stdout: {e}")))?;
    }
    // Every entry that opens is listed; each one that does not is named, and the exit
    // code says the store needs attention.
    for e in &bad {
        warn(&format!("skipped an entry: {e}"));
    }
    match bad.len() {
        0 => Ok(()),
        n => Err(Failure(
            libkeyring::ErrorKind::Corrupt.exit_code(),
            format!(
                "{n} entr{} could not be read (listed above)",
                if n == 1 { "y" } else { "ies" }
            ),
        )),
    }
}
