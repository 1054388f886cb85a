//! `keyringrs-secret-service`: owns org.freedesktop.secrets on the session bus and serves the
//! keyringrs store (`$KEYRINGRS_STORE`, else the default path, or `--store PATH`).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: keyringrs-secret-service [--store PATH]

Serves the keyringrs store as the Secret Service (org.freedesktop.secrets) on the session bus
($DBUS_SESSION_BUS_ADDRESS). Started by D-Bus activation or the systemd user unit
keyringrs-secret-service.service; see docs/SECRET-SERVICE.md.

  --store PATH   the store (default: $KEYRINGRS_STORE, else $XDG_DATA_HOME/keyringrs,
                 else ~/.local/share/keyringrs)
  --help         this text
  --version      the version";

fn fail(msg: impl std::fmt::Display, code: u8) -> ExitCode {
    eprintln!("keyringrs-secret-service: {msg}");
    ExitCode::from(code)
}

/// No core dumps, no ptrace or /proc/<pid>/mem by other processes of the user (as the CLI): the
/// daemon handles decrypted secrets and session keys.
#[allow(unsafe_code)]
fn harden_process() {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) takes integer arguments and only changes this process.
    let rc = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "keyringrs-secret-service: warning: cannot make the process non-dumpable: {}",
            std::io::Error::last_os_error()
        );
    }
}

fn main() -> ExitCode {
    harden_process();
    let mut store: Option<PathBuf> = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--help" | "-h") => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            Some("--version" | "-V") => {
                println!("keyringrs-secret-service {}", env!("CARGO_PKG_VERSION"));
                return ExitCode::SUCCESS;
            }
            Some("--store") => match args.next() {
                Some(p) => store = Some(PathBuf::from(p)),
                None => return fail("--store needs a path (see --help)", 2),
            },
            _ => return fail(format!("unknown argument {a:?} (see --help)"), 2),
        }
    }
    let store = match store.map_or_else(libkeyring::default_path, Ok) {
        Ok(p) => p,
        Err(e) => return fail(e, 1),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(format!("cannot start the runtime: {e}"), 1),
    };
    match rt.block_on(keyringrs_secret_service::daemon::run(store)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e, 1),
    }
}
