//! `keyringrs import gnome-keyring|libsecret-file|secret-service|keyutils` (the Secret Service
//! reader is import_secret_service.rs).

use std::io::Write;
use std::path::Path;

use libkeyring::{Error, Store};

use crate::args::ImportSource;
use crate::input::{prompt, read_stdin_lines};
use crate::{escape, fail, import_secret_service, warn, Failure, Outcome};

/// `keyringrs import ...` (docs/IMPORT.md): read and check the whole source, plan, then write
/// (all or nothing); the source is only read, except `keyutils --remove` after a success.
pub fn import(path: &Path, source: ImportSource) -> Outcome {
    use keyringrs_import::{self as import, gnome, keyutils, Action};
    let store = Store::open(path)?;
    if store.is_locked()? {
        return Err(Error::Locked.into());
    }
    let (what, items, dry_run, remove) = match source {
        ImportSource::GnomeKeyring {
            file,
            password_stdin,
            dry_run,
        } => {
            let file = match file {
                Some(f) => f,
                None => gnome::default_path()
                    .ok_or_else(|| fail("no HOME to find ~/.local/share/keyrings/login.keyring"))?,
            };
            let bytes = gnome::read_file(&file)?;
            let password = match gnome::format_of(&bytes) {
                gnome::Format::Textual => None,
                gnome::Format::Binary if password_stdin => Some(read_stdin_lines(1)?.remove(0)),
                gnome::Format::Binary => Some(prompt(&format!(
                    "Password of the gnome-keyring keyring {}: ",
                    file.display()
                ))?),
            };
            let keyring = match gnome::parse(&file, &bytes, password.as_deref().map(|p| &p[..])) {
                Err(Error::WrongPassword) => {
                    return Err(Failure(
                        libkeyring::ErrorKind::WrongPassword.exit_code(),
                        format!(
                            "wrong password for the gnome-keyring keyring {} (or its encrypted part is damaged); nothing imported",
                            file.display()
                        ),
                    ))
                }
                r => r?,
            };
            let items: Vec<import::Item> = keyring.items.into_iter().map(Into::into).collect();
            (file.display().to_string(), items, dry_run, None)
        }
        ImportSource::LibsecretFile {
            file,
            app_id,
            password_stdin,
            dry_run,
        } => {
            let (what, items) =
                read_libsecret_file(&store, file, app_id.as_deref(), password_stdin)?;
            (what, items, dry_run, None)
        }
        ImportSource::SecretService {
            collection,
            dry_run,
        } => {
            let (what, items) = import_secret_service::read(collection.as_deref())?;
            (what, items, dry_run, None)
        }
        ImportSource::Keyutils { remove, dry_run } => {
            let (found, problems) = keyutils::scan()?;
            for p in &problems {
                warn(&format!("skipped an unreadable key: {p}"));
            }
            let items = found.iter().map(keyutils::Found::item).collect();
            let serials: Vec<_> = found.iter().map(|f| (f.serial, f.place.clone())).collect();
            (
                "the kernel keyrings @s and @u".to_string(),
                items,
                dry_run,
                remove.then_some(serials),
            )
        }
    };
    let plan = import::import(&store, &items, dry_run)?;
    let mut out = std::io::stdout().lock();
    let mut say =
        |line: String| writeln!(out, "{line}").map_err(|e| fail(format!("write to stdout: {e}")));
    if dry_run {
        for (it, action) in items.iter().zip(&plan.actions) {
            let how = match action {
                Action::New(_) => "new",
                Action::AlreadyThere => "already there",
                Action::Conflicting(_) => "conflicting, kept separately",
            };
            let names: Vec<&str> = it.attributes.keys().map(String::as_str).collect();
            say(format!(
                "{how}: {} (attributes: {})",
                escape(&format!("{:?}", it.label)),
                escape(&names.join(", "))
            ))?;
        }
        return say(format!(
            "dry run, nothing written: {} from {what}",
            plan.summary()
        ));
    }
    say(format!("imported from {what}: {}", plan.summary()))?;
    if let Some(keys) = remove {
        let mut failed = 0;
        for (serial, place) in &keys {
            if let Err(e) = serial.invalidate() {
                warn(&format!(
                    "could not remove key {} in {place}: {e}",
                    serial.0
                ));
                failed += 1;
            }
        }
        say(format!("removed {} plaintext key(s)", keys.len() - failed))?;
        if failed > 0 {
            return Err(fail(format!(
                "{failed} imported key(s) could not be removed (listed above)"
            )));
        }
    }
    Ok(())
}

/// A libsecret/oo7 file keyring's items (docs/IMPORT.md "libsecret file keyrings"): the file
/// is parsed and checked before any password is asked (a damaged file is exit 7 at once); the
/// password is the app's Secret portal secret from `store` with `app_id`, else asked.
fn read_libsecret_file(
    store: &Store,
    file: Option<std::path::PathBuf>,
    app_id: Option<&str>,
    password_stdin: bool,
) -> Result<(String, Vec<keyringrs_import::Item>), Failure> {
    use keyringrs_import::libsecret;
    let file = match file {
        Some(f) => f,
        None => libsecret::default_path(app_id)?,
    };
    let bytes = libsecret::read_file(&file)?;
    let locked = libsecret::parse_locked(&file, &bytes)?;
    if locked.is_empty() {
        warn(&format!(
            "the libsecret keyring {} holds no items: nothing to import (and no way to check its password)",
            file.display()
        ));
        return Ok((file.display().to_string(), Vec::new()));
    }
    let (password, whose) = match app_id {
        Some(id) => match libkeyring::portal::find(store, id)? {
            Some((_, entry)) => (entry.secret, format!("the Secret portal secret of {id}")),
            None => {
                return Err(fail(format!(
                    "the Secret portal secret of the app {id} is not in the store (import gnome-keyring's login keyring first with `keyringrs import gnome-keyring`, or the app never used the portal); nothing imported from {}",
                    file.display()
                )))
            }
        },
        None if password_stdin => (read_stdin_lines(1)?.remove(0), "the password".to_string()),
        None => (
            prompt(&format!(
                "Password of the libsecret keyring {}: ",
                file.display()
            ))?,
            "the password".to_string(),
        ),
    };
    let key = locked.derive_key(&password);
    drop(password);
    let keyring = match locked.unlock(&key) {
        Err(Error::WrongPassword) => {
            return Err(Failure(
                libkeyring::ErrorKind::WrongPassword.exit_code(),
                format!(
                    "{whose} does not open the libsecret keyring {} (wrong password or key, or every item in it is damaged); nothing imported",
                    file.display()
                ),
            ))
        }
        r => r?,
    };
    Ok((file.display().to_string(), keyring.items))
}
