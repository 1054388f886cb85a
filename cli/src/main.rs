//! `keyringrs`: the command-line face of libkeyring (DESIGN.md "CLI contract"). Thin: parse,
//! read passwords and secrets, call the library, print, map errors to exit codes.

use std::io::{IsTerminal, Read, Write};
use std::process::ExitCode;

use clap::Parser;
use libkeyring::keyring::Keyring;
use libkeyring::{Error, KdfParams, Scope, Store, UnlockOptions};
use zeroize::Zeroizing;

mod args;
mod import_secret_service;
mod repair;
use args::*;

/// A failure with its exit code, printed as one `keyringrs: ` line.
struct Failure(i32, String);

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure(e.kind().exit_code(), e.to_string())
    }
}

fn fail(msg: impl Into<String>) -> Failure {
    Failure(1, msg.into())
}

type Outcome = Result<(), Failure>;

fn main() -> ExitCode {
    harden_process();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: print as clap formats them, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // Usage errors: one line, like every other error, and exit 2.
            let text = e.to_string();
            // clap's message is its lines up to the first blank one; the usage follows.
            let message = match e.kind() {
                clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                | clap::error::ErrorKind::MissingSubcommand => "a command is required".to_string(),
                _ => text
                    .lines()
                    .take_while(|l| !l.trim().is_empty())
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("keyringrs: {message} (see keyringrs --help)");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(code, msg)) => {
            let one_line = msg.replace(['\n', '\r'], " ");
            eprintln!("keyringrs: {one_line}");
            ExitCode::from(code as u8)
        }
    }
}

/// No core dumps or ptrace by other same-uid processes while secrets are in our memory.
#[allow(unsafe_code)]
fn harden_process() {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integer arguments and only changes this process.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

fn warn(msg: &str) {
    eprintln!("keyringrs: warning: {msg}");
}

fn run(cli: Cli) -> Outcome {
    let path = match cli.store.clone() {
        Some(p) => p,
        None => libkeyring::default_path()?,
    };
    let kdf = kdf_params(&cli)?;
    match cli.command {
        Command::Init {
            password_stdin,
            scope,
            recovery_key,
        } => {
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
            let store = Store::init(&path, &pw, &opts)?;
            println!("created store {} at {}", store.id(), store.path().display());
            if recovery_key {
                print_recovery_key(&store.add_recovery_key(&pw[..])?);
            }
            Ok(())
        }
        Command::Unlock {
            password_stdin,
            timeout,
            scope,
            recovery_key,
        } => {
            let scope = scope_that_outlives_us(scope)?;
            let store = Store::open(&path)?;
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
        Command::Lock => {
            Store::open(&path)?.lock()?;
            Ok(())
        }
        Command::Status => {
            let store = Store::open(&path)?;
            let st = store.status()?;
            println!("store:   {}", st.path.display());
            println!("id:      {}", st.id);
            println!("state:   {}", if st.locked { "locked" } else { "unlocked" });
            if let Some(n) = st.entries {
                println!("entries: {n}");
            }
            if let Ok(key) = store.find_key() {
                let place = match key.scope {
                    Scope::Session => "this login's session keyring (@s): its processes only",
                    Scope::User => "the user keyring (@u): all your processes",
                };
                println!("key:     {place}, serial {}", key.serial.0);
            }
            for h in libkeyring::holders::list(store.kernel_key()).unwrap_or_default() {
                let opener = h
                    .opener
                    .map(|p| format!(", opened by pid {}", p.pid))
                    .unwrap_or_default();
                println!(
                    "held by: {} login, session keyring {}{opener}, since {}{}",
                    h.kind,
                    h.session,
                    h.since,
                    if h.alive {
                        ""
                    } else {
                        " (gone; dropped at the next logout)"
                    }
                );
            }
            Ok(())
        }
        Command::Set {
            service,
            username,
            raw,
        } => {
            let store = Store::open(&path)?;
            // Fail before reading the secret if the store is locked.
            if store.is_locked()? {
                return Err(Error::Locked.into());
            }
            let secret = read_secret(raw)?;
            store.set(&service, &username, &secret)?;
            Ok(())
        }
        Command::Get { service, username } => {
            let secret = Store::open(&path)?.get(&service, &username)?;
            let mut out = std::io::stdout().lock();
            let tty = std::io::stdout().is_terminal();
            out.write_all(&secret)
                .and_then(|()| if tty { out.write_all(b"\n") } else { Ok(()) })
                .and_then(|()| out.flush())
                .map_err(|e| fail(format!("write to stdout: {e}")))
        }
        Command::Delete { service, username } => {
            Store::open(&path)?.delete(&service, &username)?;
            Ok(())
        }
        Command::List => {
            let (good, bad) = Store::open(&path)?.list_report()?;
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
        Command::Resync {
            password_stdin,
            recovery_key,
        } => {
            let store = Store::open(&path)?;
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
        Command::Import { source } => import(&path, source),
        Command::Check => repair::check(&path),
        Command::Repair => repair::repair(&path),
        Command::RecoveryKey(RecoveryKeyCommand::Add {
            password_stdin,
            recovery_key,
        }) => {
            let store = Store::open(&path)?;
            let opener = Opener::read(password_stdin, recovery_key)?;
            print_recovery_key(&store.add_recovery_key(opener.credential())?);
            Ok(())
        }
        Command::RecoveryKey(RecoveryKeyCommand::Remove {
            password_stdin,
            recovery_key,
        }) => {
            let store = Store::open(&path)?;
            let opener = Opener::read(password_stdin, recovery_key)?;
            if !store.remove_recovery_key(opener.credential())? {
                warn("the store had no recovery key");
            }
            Ok(())
        }
        Command::Slot(SlotCommand::Add {
            name,
            pam,
            password_stdin,
            recovery_key,
        }) => {
            let store = Store::open(&path)?;
            let first = if recovery_key {
                "Recovery key: "
            } else {
                "Store password: "
            };
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
        Command::Slot(SlotCommand::Remove {
            name,
            password_stdin,
            recovery_key,
        }) => {
            let store = Store::open(&path)?;
            let opener = Opener::read(password_stdin, recovery_key)?;
            store.remove_slot(opener.credential(), &name)?;
            Ok(())
        }
        Command::Slot(SlotCommand::List) => {
            for slot in Store::open(&path)?.slots()? {
                println!(
                    "{}\t{}\t{}\tArgon2id {} KiB, t={}, p={}\t{}",
                    slot.index,
                    slot.name,
                    slot.kind.name(),
                    slot.kdf.memory_kib(),
                    slot.kdf.time(),
                    slot.kdf.lanes(),
                    slot.created.map_or("-".into(), |c| c.to_string())
                );
            }
            Ok(())
        }
        Command::Passwd {
            password_stdin,
            rotate,
        } => {
            let store = Store::open(&path)?;
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
    }
}

/// `keyringrs import ...` (docs/IMPORT.md): read and check the whole source, plan, then write
/// (all or nothing); the source is only read, except `keyutils --remove` after a success.
fn import(path: &std::path::Path, source: ImportSource) -> Outcome {
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

fn kdf_params(cli: &Cli) -> Result<KdfParams, Failure> {
    let d = KdfParams::DEFAULT;
    Ok(KdfParams::new(
        cli.kdf_memory.unwrap_or(d.memory_kib()),
        cli.kdf_time.unwrap_or(d.time()),
        d.lanes(),
    )?)
}

/// `\`, tab and newline escaped so every entry is one unambiguous line.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn scope_of(arg: ScopeArg) -> Scope {
    match arg {
        ScopeArg::Session => Scope::Session,
        ScopeArg::User => Scope::User,
    }
}

/// The scope asked for, if an unlock there outlives this command (see require_own_session).
fn scope_that_outlives_us(arg: ScopeArg) -> Result<Scope, Failure> {
    let scope = scope_of(arg);
    if scope == Scope::Session {
        require_own_session()?;
    }
    Ok(scope)
}

/// A session-scope unlock must outlive this command: refuse when this process has no session
/// keyring of its own (the `_uid_ses.N` fallback, or none), where the key would go into a
/// keyring that dies with us or that every process of the user without a session shares.
fn require_own_session() -> Outcome {
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

fn strip_newline(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&b'\n') {
        v.pop();
        if v.last() == Some(&b'\r') {
            v.pop();
        }
    }
    v
}

/// Read stdin up to `cap` bytes into a zeroize-on-drop buffer, mlocked when the limit allows.
/// Growing copies into a new buffer and wipes the old one, so no copy of a secret is left in
/// freed memory (plain `read_to_end` would leave one per reallocation). `None` if over `cap`.
fn read_stdin(cap: usize) -> Result<Option<Zeroizing<Vec<u8>>>, Failure> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = Zeroizing::new(vec![0u8; 4096]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > cap {
                return Ok(None);
            }
            let mut bigger = Zeroizing::new(vec![0u8; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        libkeyring::sys::lock_memory(&buf);
        match stdin.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(format!("read from stdin: {e}"))),
        }
    }
    if len > cap {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// Read exactly `n` lines (passwords) from stdin; the last may lack its newline.
fn read_stdin_lines(n: usize) -> Result<Vec<Zeroizing<Vec<u8>>>, Failure> {
    let all =
        read_stdin(64 * 1024)?.ok_or_else(|| fail("more than 64 KiB of passwords on stdin"))?;
    let lines: Vec<Zeroizing<Vec<u8>>> = all
        .split_inclusive(|&b| b == b'\n')
        .take(n)
        .map(|l| Zeroizing::new(strip_newline(l.to_vec())))
        .collect();
    if lines.len() < n {
        return Err(fail(format!(
            "expected {n} password line(s) on stdin, got {}",
            lines.len()
        )));
    }
    Ok(lines)
}

/// A password, wiped on drop.
type Password = Zeroizing<Vec<u8>>;

/// The store password: one line of stdin, or asked on the tty.
fn store_password(password_stdin: bool) -> Result<Password, Failure> {
    one_secret(password_stdin, "Store password: ")
}

/// A recovery key typed by the user: one line of stdin, or asked on the tty (no echo).
fn read_recovery_key(from_stdin: bool) -> Result<libkeyring::recovery::RecoveryKey, Failure> {
    let text = one_secret(from_stdin, "Recovery key: ")?;
    Ok(libkeyring::recovery::RecoveryKey::parse(&text)?)
}

/// One secret: a line of stdin, or asked on the tty without echo.
fn one_secret(from_stdin: bool, text: &str) -> Result<Password, Failure> {
    if from_stdin {
        Ok(read_stdin_lines(1)?.remove(0))
    } else {
        prompt(text)
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
        let prompt_text = if recovery_key {
            "Recovery key: "
        } else {
            "Store password: "
        };
        Opener::from_text(one_secret(from_stdin, prompt_text)?, recovery_key)
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
fn print_recovery_key(key: &libkeyring::recovery::RecoveryKey) {
    println!("{}", &*key.to_text());
    eprintln!(
        "keyringrs: this is your recovery key; it is shown only now. Write it down or print it \
         and keep it away from this computer (with your important papers, or in another \
         password manager). It opens the store when no password does."
    );
}

/// A password that opens the store and the one to set: two lines of stdin, or `ask` on the tty.
/// The new one may not be empty.
fn old_and_new(
    password_stdin: bool,
    ask: impl FnOnce() -> Result<(Password, Password), Failure>,
) -> Result<(Password, Password), Failure> {
    let (old, new) = if password_stdin {
        let mut lines = read_stdin_lines(2)?;
        let new = lines.remove(1);
        (lines.remove(0), new)
    } else {
        ask()?
    };
    if new.is_empty() {
        return Err(fail("refusing an empty password"));
    }
    Ok((old, new))
}

fn prompt(text: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            "no terminal to ask for the password: use --password-stdin",
        ));
    }
    rpassword::prompt_password(text)
        .map(|s| Zeroizing::new(s.into_bytes()))
        .map_err(|e| fail(format!("read password: {e}")))
}

fn prompt_new(text: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let a = prompt(text)?;
    let b = prompt("Repeat the password: ")?;
    if a != b {
        return Err(fail("the passwords do not match"));
    }
    Ok(a)
}

/// The secret for `set`: from stdin (a prompt without echo on a tty).
fn read_secret(raw: bool) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if std::io::stdin().is_terminal() {
        return prompt("Secret: ");
    }
    let cap = libkeyring::format::MAX_SECRET_LEN;
    // One byte of slack for the newline that is stripped.
    let mut buf = read_stdin(cap + 2)?
        .filter(|b| b.len() <= cap + 2)
        .ok_or_else(|| {
            Failure::from(Error::InvalidInput(format!(
                "secret longer than {cap} bytes"
            )))
        })?;
    if !raw && buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > cap {
        return Err(Error::InvalidInput(format!("secret longer than {cap} bytes")).into());
    }
    Ok(buf)
}
