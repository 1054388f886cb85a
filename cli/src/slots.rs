//! The store's passwords and keyslots: `passwd` (and `--rotate`), `resync`, `recovery-key`
//! add/remove and `slot` add/remove/list, with what opens the store before such a change.

use std::path::Path;

use libkeyring::{KdfParams, Scope, Store, UnlockOptions};

use crate::args::{RecoveryKeyCommand, SlotCommand};
use crate::input::{old_and_new, one_secret, prompt, prompt_new, read_stdin_lines, Password};
use crate::session::require_own_session;
use crate::{warn, Failure, Outcome};

/// `keyringrs passwd`: old password, then new; `--rotate` replaces the master key too.
pub fn passwd(path: &Path, kdf: KdfParams, password_stdin: bool, rotate: bool) -> Outcome {
    let store = Store::open(path)?;
    let (old, new) = old_and_new(password_stdin, || {
        Ok((
            prompt("Current store password: ")?,
            prompt_new("New store password: ")?,
        ))
    })?;
    if rotate {
        let scope = store.find_key().map_or(Scope::Session, |k| k.scope);
        let opts = UnlockOptions {
            kdf,
            scope,
            ..Default::default()
        };
        let had_recovery_key = store
            .slots()?
            .iter()
            .any(|s| s.kind == libkeyring::SlotKind::RecoveryKey);
        store.rotate(&old, &new, &opts)?;
        if had_recovery_key {
            warn("the recovery key opened the old master key only and is gone: run `keyringrs recovery-key add` for a new one");
        }
    } else {
        store.passwd(&old, &new, kdf)?;
    }
    Ok(())
}

/// `keyringrs resync`: rewrap the store to the current login password after an admin reset.
pub fn resync(path: &Path, kdf: KdfParams, password_stdin: bool, recovery_key: bool) -> Outcome {
    let store = Store::open(path)?;
    let login = if recovery_key {
        let (text, login) = old_and_new(password_stdin, || {
            Ok((
                prompt("Recovery key: ")?,
                prompt("Current login password: ")?,
            ))
        })?;
        let key = libkeyring::recovery::RecoveryKey::parse(&text)?;
        store.resync_with_recovery_key(&key, &login, kdf)?;
        login
    } else {
        let (old, login) = old_and_new(password_stdin, || {
            Ok((
                prompt("Previous password (the one that still opens the store): ")?,
                prompt("Current login password: ")?,
            ))
        })?;
        store.passwd(&old, &login, kdf)?;
        login
    };
    // Unlocked here too, where that outlives the command (else the next login does it).
    if require_own_session().is_ok() {
        let opts = UnlockOptions {
            kdf,
            ..Default::default()
        };
        store.unlock(&login, &opts)?;
    } else {
        warn("resynced; not unlocked here (no session keyring of its own): the next login unlocks it");
    }
    Ok(())
}

/// `keyringrs recovery-key add|remove`.
pub fn recovery_key(path: &Path, command: RecoveryKeyCommand) -> Outcome {
    match command {
        RecoveryKeyCommand::Add {
            password_stdin,
            recovery_key,
        } => {
            let (store, opener) = Opener::open(path, password_stdin, recovery_key)?;
            print_recovery_key(&store.add_recovery_key(opener.credential())?);
            Ok(())
        }
        RecoveryKeyCommand::Remove {
            password_stdin,
            recovery_key,
        } => {
            let (store, opener) = Opener::open(path, password_stdin, recovery_key)?;
            if !store.remove_recovery_key(opener.credential())? {
                warn("the store had no recovery key");
            }
            Ok(())
        }
    }
}

/// `keyringrs slot add|remove|list`.
pub fn slot(path: &Path, kdf: KdfParams, command: SlotCommand) -> Outcome {
    match command {
        SlotCommand::Add {
            name,
            pam,
            tpm2: true,
            pcrs,
            pin,
            password_stdin,
            recovery_key,
        } => {
            let store = Store::open(path)?;
            let first = Opener::prompt_text(recovery_key);
            // With --password-stdin: the store password, then the PIN (one line each).
            let (old, pin) = if password_stdin {
                let mut lines = read_stdin_lines(1 + usize::from(pin))?;
                let typed = pin.then(|| lines.remove(1));
                (lines.remove(0), typed)
            } else {
                let old = prompt(first)?;
                let typed = match pin {
                    true => Some(prompt_new(&format!("TPM2 PIN of keyslot {name}: "))?),
                    false => None,
                };
                (old, typed)
            };
            let opener = Opener::from_text(old, recovery_key)?;
            crate::tpm2::add(
                &store,
                opener.credential(),
                &name,
                pcrs.as_deref(),
                pin.as_deref().map(|p| &p[..]),
                pam,
            )
        }
        SlotCommand::Add {
            name,
            pam,
            password_stdin,
            recovery_key,
            ..
        } => {
            let store = Store::open(path)?;
            let first = Opener::prompt_text(recovery_key);
            let (old, new) = old_and_new(password_stdin, || {
                Ok((
                    prompt(first)?,
                    prompt_new(&format!("Password of keyslot {name}: "))?,
                ))
            })?;
            let opener = Opener::from_text(old, recovery_key)?;
            store.add_password(opener.credential(), &name, &new, pam, kdf)?;
            Ok(())
        }
        SlotCommand::Remove {
            name,
            password_stdin,
            recovery_key,
        } => {
            let (store, opener) = Opener::open(path, password_stdin, recovery_key)?;
            store.remove_slot(opener.credential(), &name)?;
            Ok(())
        }
        SlotCommand::List => {
            for slot in Store::open(path)?.slots()? {
                let key = match (slot.kdf, slot.tpm2) {
                    (Some(k), _) => format!(
                        "Argon2id {} KiB, t={}, p={}",
                        k.memory_kib(),
                        k.time(),
                        k.lanes()
                    ),
                    (None, Some(b)) => crate::tpm2::describe(&b),
                    (None, None) => "-".into(),
                };
                println!(
                    "{}\t{}\t{}\t{key}\t{}",
                    slot.index,
                    slot.name,
                    slot.kind.name(),
                    slot.created.map_or("-".into(), |c| c.to_string())
                );
            }
            Ok(())
        }
    }
}

/// What opens the store before a keyslot change: a password or the recovery key.
enum Opener {
    Password(Password),
    RecoveryKey(libkeyring::recovery::RecoveryKey),
}

impl Opener {
    /// One line of stdin, or asked on the tty.
    fn read(from_stdin: bool, recovery_key: bool) -> Result<Opener, Failure> {
        let text = Opener::prompt_text(recovery_key);
        Opener::from_text(one_secret(from_stdin, text)?, recovery_key)
    }

    /// What the tty asks for first.
    fn prompt_text(recovery_key: bool) -> &'static str {
        if recovery_key {
            "Recovery key: "
        } else {
            "Store password: "
        }
    }

    /// The store, and what opens it (read after the store is found).
    fn open(path: &Path, from_stdin: bool, recovery_key: bool) -> Result<(Store, Opener), Failure> {
        let store = Store::open(path)?;
        Ok((store, Opener::read(from_stdin, recovery_key)?))
    }

    fn from_text(text: Password, recovery_key: bool) -> Result<Opener, Failure> {
        Ok(if recovery_key {
            Opener::RecoveryKey(libkeyring::recovery::RecoveryKey::parse(&text)?)
        } else {
            Opener::Password(text)
        })
    }

    fn credential(&self) -> libkeyring::Credential<'_> {
        match self {
            Opener::Password(p) => libkeyring::Credential::Password(p),
            Opener::RecoveryKey(k) => libkeyring::Credential::RecoveryKey(k),
        }
    }
}

/// Print a new recovery key: alone on its line on stdout, and where to keep it on stderr.
pub(crate) fn print_recovery_key(key: &libkeyring::recovery::RecoveryKey) {
    println!("{}", &*key.to_text());
    eprintln!(
        "keyringrs: this is your recovery key; it is shown only now. Write it down or print it \
         and keep it away from this computer (with your important papers, or in another \
         password manager). It opens the store when no password does."
    );
}
