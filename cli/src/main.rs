//! `keyringrs`: the command-line face of libkeyring (DESIGN.md "CLI contract"). Thin: parse,
//! read passwords and secrets, call the library, print, map errors to exit codes.

use std::process::ExitCode;

use clap::Parser;
use libkeyring::{Error, KdfParams};

mod args;
mod import;
mod import_secret_service;
mod input;
mod repair;
mod session;
mod slots;
mod status;
mod store;
mod tpm2;
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
        } => store::init(&path, kdf, password_stdin, scope, recovery_key),
        Command::Unlock {
            password_stdin,
            timeout,
            scope,
            recovery_key,
            tpm2: false,
        } => store::unlock(&path, kdf, password_stdin, timeout, scope, recovery_key),
        Command::Unlock {
            password_stdin,
            timeout,
            scope,
            tpm2: true,
            ..
        } => tpm2::unlock(&path, password_stdin, timeout, scope),
        Command::Lock => store::lock(&path),
        Command::Status => status::status(&path),
        Command::Set {
            service,
            username,
            raw,
        } => store::set(&path, &service, &username, raw),
        Command::Get { service, username } => store::get(&path, &service, &username),
        Command::Delete { service, username } => store::delete(&path, &service, &username),
        Command::List => store::list(&path),
        Command::Resync {
            password_stdin,
            recovery_key,
        } => slots::resync(&path, kdf, password_stdin, recovery_key),
        Command::Import { source } => import::import(&path, source),
        Command::Check => repair::check(&path),
        Command::Repair => repair::repair(&path),
        Command::RecoveryKey(command) => slots::recovery_key(&path, command),
        Command::Slot(command) => slots::slot(&path, kdf, command),
        Command::Passwd {
            password_stdin,
            rotate,
        } => slots::passwd(&path, kdf, password_stdin, rotate),
    }
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
