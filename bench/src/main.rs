//! `keyringrs-bench`: libkeyring beside the raw kernel keyring and its peers, in one run.
//!
//! Everything runs in a fresh anonymous session keyring with throwaway stores, a private D-Bus
//! and a private gnome-keyring. See docs/PERFORMANCE.md for what each row measures. One module
//! per group (get, set, unlock, cli, python, pam, secret_service); this file parses the
//! arguments, runs the groups in order and writes the report.
//!
//! Usage: keyringrs-bench [--quick] [--out DIR] [--only secret-service]

mod cli;
mod fixture;
mod get;
mod gnome;
mod harness;
mod pam;
mod python;
mod report;
mod secret_service;
mod set;
mod sys;
mod targets;
mod unlock;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fixture::Fixture;
use harness::{e2s, Scratch};
use report::{Report, Row};

const PASSWORD: &[u8] = b"correct horse battery staple";

#[derive(Debug, Clone)]
pub struct Config {
    pub quick: bool,
    pub counts: Vec<usize>,
    pub get_samples: usize,
    pub set_samples: usize,
    pub dbus_samples: usize,
    pub cli_samples: usize,
    pub unlock_samples: usize,
    /// Wall-clock budget for filling gnome-keyring over D-Bus (it rewrites its file per item).
    pub gnome_fill_budget: Duration,
    pub out: PathBuf,
    /// `--only secret-service`: that group alone.
    pub only_secret_service: bool,
}

impl Config {
    fn parse() -> Result<Config, String> {
        let mut quick = false;
        let mut out = None;
        let mut only_secret_service = false;
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => quick = true,
                "--loop-get" => {
                    // For profiling (perf record): fill N entries, then loop Store::get.
                    let n = args
                        .next()
                        .and_then(|x| x.parse().ok())
                        .ok_or("--loop-get N SECONDS")?;
                    let secs = args
                        .next()
                        .and_then(|x| x.parse().ok())
                        .ok_or("--loop-get N SECONDS")?;
                    get::loop_get(n, secs)?;
                    std::process::exit(0);
                }
                "--only" => match args.next().as_deref() {
                    Some("secret-service") => only_secret_service = true,
                    other => return Err(format!("--only {other:?}: only secret-service")),
                },
                "--out" => out = Some(PathBuf::from(args.next().ok_or("--out needs a directory")?)),
                "-h" | "--help" => {
                    println!("usage: keyringrs-bench [--quick] [--out DIR] [--only secret-service]\n\nWrites DIR/latest.{{json,md}} (quick: DIR/quick.{{json,md}}; --only secret-service: DIR/[quick-]secret-service.{{json,md}}); DIR defaults to bench/results.");
                    std::process::exit(0);
                }
                _ => return Err(format!("unknown argument {a:?} (try --help)")),
            }
        }
        let out = out.unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("results"));
        Ok(if quick {
            Config {
                quick,
                counts: vec![10, 300],
                get_samples: 400,
                set_samples: 20,
                dbus_samples: 20,
                cli_samples: 8,
                unlock_samples: 2,
                gnome_fill_budget: Duration::from_secs(20),
                out,
                only_secret_service,
            }
        } else {
            Config {
                quick,
                counts: vec![10, 1_000, 10_000, 100_000],
                get_samples: 20_000,
                set_samples: 300,
                dbus_samples: 300,
                cli_samples: 100,
                unlock_samples: 9,
                gnome_fill_budget: Duration::from_secs(60),
                out,
                only_secret_service,
            }
        })
    }
}

fn main() {
    let cfg = match Config::parse() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("keyringrs-bench: {e}");
            std::process::exit(2);
        }
    };
    let r = if cfg.only_secret_service {
        run_secret_service_alone(&cfg)
    } else {
        run(&cfg)
    };
    if let Err(e) = r {
        eprintln!("keyringrs-bench: {e}");
        std::process::exit(1);
    }
}

fn mode(cfg: &Config) -> &'static str {
    if cfg.quick {
        "quick"
    } else {
        "full"
    }
}

fn run(cfg: &Config) -> Result<(), String> {
    let t0 = Instant::now();
    let log = |m: &str| eprintln!("[{:>5.1}s] {m}", t0.elapsed().as_secs_f64());
    libkeyring::keyring::join_session(None).map_err(|e| format!("join a session keyring: {e}"))?;
    let scratch =
        Scratch(std::env::temp_dir().join(format!("keyringrs-bench-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    std::fs::create_dir_all(&scratch.0).map_err(e2s)?;
    let work = scratch.0.clone();
    let mut rows: Vec<Row> = Vec::new();

    let mut fx = Fixture::new(&work)?;
    for &n in &cfg.counts {
        log(&format!("filling to {n} entries"));
        fx.fill_to(cfg, n)?;
        log(&format!("get at {n}"));
        rows.extend(get::rows(cfg, &fx, n)?);
        log(&format!("set at {n}"));
        rows.extend(set::rows(cfg, &fx, n)?);
        log(&format!("unlock at {n}"));
        rows.extend(unlock::minimal_rows(cfg, &fx, n));
    }
    let max_n = fx.filled();

    log("tmpfs set");
    rows.extend(set::tmpfs_rows(cfg, &fx)?);

    log("unlock (default KDF)");
    let ustore = unlock::default_store(&work.join("store-default-kdf"))?;
    rows.extend(unlock::default_rows(cfg, &ustore));
    rows.extend(unlock::tpm2_rows(cfg, &ustore, &work));

    // CLI per call, and process start-up for scale.
    log("CLI");
    rows.extend(cli::rows(cfg, &fx, max_n)?);

    log("Python");
    rows.extend(python::rows(cfg, &fx.store_path, max_n));

    log("PAM");
    rows.extend(pam::rows(cfg));

    // Memory: peak RSS of `keyringrs unlock` with the default parameters, as a child process.
    log("memory");
    rows.extend(cli::memory_rows(&work, &ustore)?);

    let _ = ustore.lock();
    let on_tmpfs = fx.on_tmpfs;
    fx.clean_up();

    let mut targets = targets::ratios_and_targets(&mut rows, cfg, max_n);
    // Our Secret Service daemon beside gnome-keyring-daemon (bench/src/secret_service/).
    log("Secret Service");
    secret_service::add(cfg, &mut rows, &mut targets);
    let report = Report {
        mode: mode(cfg).into(),
        machine: report::machine(on_tmpfs),
        rows,
        targets,
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    let stem = if cfg.quick { "quick" } else { "latest" };
    report.save(&cfg.out, stem)
}

/// `--only secret-service`: that group alone, in a session keyring of its own; writes
/// DIR/secret-service.{json,md} (quick: DIR/quick-secret-service.{json,md}).
fn run_secret_service_alone(cfg: &Config) -> Result<(), String> {
    let t0 = Instant::now();
    libkeyring::keyring::join_session(None).map_err(|e| format!("join a session keyring: {e}"))?;
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    secret_service::add(cfg, &mut rows, &mut targets);
    let report = Report {
        mode: format!("{}, secret-service only", mode(cfg)),
        machine: report::machine(sys::is_tmpfs(&std::env::temp_dir())),
        rows,
        targets,
        wall_seconds: t0.elapsed().as_secs_f64(),
    };
    let stem = if cfg.quick {
        "quick-secret-service"
    } else {
        "secret-service"
    };
    report.save(&cfg.out, stem)
}
