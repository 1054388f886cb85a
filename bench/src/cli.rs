//! The "cli" group (one `keyringrs get` per process beside `keyctl print`, `secret-tool lookup`
//! and process start-up) and "memory" (peak RSS of the CLI, through GNU time).

use std::path::Path;
use std::process::{Command, Stdio};

use libkeyring::keyring::Keyring;
use libkeyring::Store;

use crate::fixture::{secret, service, user, Fixture, RAW_DESC};
use crate::harness::{compare, e2s, sibling, spawn_op, Op};
use crate::report::{na, time_row, Row, Value};
use crate::{gnome, Config, PASSWORD};

const GK_LOOKUP: &str = "secret-tool lookup (gnome-keyring over D-Bus)";

/// The CLI rows, over the fixture's store (filled to `max_n`).
pub fn rows(cfg: &Config, fx: &Fixture, max_n: usize) -> Result<Vec<Row>, String> {
    let cli = sibling("keyringrs");
    let raw_serial = Keyring::Session
        .search(RAW_DESC)
        .map(|k| k.0.to_string())
        .map_err(e2s)?;
    let (s0, u0) = (service(1), user(1));
    let sp = fx.store_path.clone();
    let mut ops: Vec<(String, Op)> = vec![
        (
            "process start: /bin/true".into(),
            spawn_op(|| Command::new("/bin/true")),
        ),
        (
            "keyctl print <serial> (keyutils)".into(),
            spawn_op(move || {
                let mut c = Command::new("keyctl");
                c.args(["print", &raw_serial]);
                c
            }),
        ),
        (
            format!("keyringrs get ({})", cli.display()),
            spawn_op(move || {
                let mut c = Command::new(&cli);
                c.args(["get", &s0, &u0]).env("KEYRINGRS_STORE", &sp);
                c
            }),
        ),
    ];
    if let Ok(d) = &fx.gk_daemons {
        if fx.gk_entries.len() < 2 {
            let _ = gnome::secret_tool_store(d, &service(1), &user(1), &secret(1));
        }
        let (s1, u1) = (service(1), user(1));
        ops.push((
            GK_LOOKUP.into(),
            spawn_op(move || {
                let mut c = d.secret_tool();
                c.args(["lookup", "service", &s1, "username", &u1]);
                c
            }),
        ));
    }
    let res = compare(&mut ops, 2, cfg.cli_samples, 5);
    let mut rows: Vec<Row> = ops
        .iter()
        .zip(res)
        .map(|((name, _), r)| time_row("cli", name, Some(max_n), r))
        .collect();
    if let Err(e) = &fx.gk_daemons {
        rows.push(na("cli", GK_LOOKUP, None, e.clone()));
    }
    Ok(rows)
}

/// Peak RSS of `keyringrs unlock` (default parameters) and `keyringrs get` as child processes,
/// on `store` (locked first), with GNU time's output file in `work`.
pub fn memory_rows(work: &Path, store: &Store) -> Result<Vec<Row>, String> {
    let cli = sibling("keyringrs");
    store.lock().map_err(e2s)?;
    // Through /usr/bin/time (GNU time, a small process), because a child spawned straight
    // from this process inherits this process's own high-water mark into ru_maxrss.
    let measure = |args: &[&str], stdin: &[u8]| -> Result<u64, String> {
        let out = work.join("rss.txt");
        let mut child = Command::new("/usr/bin/time")
            .arg("-f")
            .arg("%M")
            .arg("-o")
            .arg(&out)
            .arg(&cli)
            .args(args)
            .env("KEYRINGRS_STORE", store.path())
            .env_remove("KEYRINGRS_KDF_MEMORY")
            .env_remove("KEYRINGRS_KDF_TIME")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("/usr/bin/time (GNU time): {e}"))?;
        if let Some(mut i) = child.stdin.take() {
            use std::io::Write;
            i.write_all(stdin).map_err(e2s)?;
        }
        let st = child.wait().map_err(e2s)?;
        if !st.success() {
            return Err(format!("keyringrs {} exited with {st}", args.join(" ")));
        }
        std::fs::read_to_string(&out)
            .map_err(e2s)?
            .trim()
            .parse()
            .map_err(|e| format!("GNU time output: {e}"))
    };
    let mut pw = PASSWORD.to_vec();
    pw.push(b'\n');
    let mut rows = Vec::new();
    for (name, args, input) in [
        (
            "peak RSS: keyringrs unlock --password-stdin (default KDF: 64 MiB)",
            &["unlock", "--password-stdin"][..],
            &pw[..],
        ),
        (
            "peak RSS: keyringrs get (no KDF)",
            &["get", "example.org", "alice"][..],
            &b""[..],
        ),
    ] {
        rows.push(match measure(args, input) {
            Ok(k) => Row::new("memory", name, None, Value::Kib(k)),
            Err(e) => na("memory", name, None, e),
        });
    }
    Ok(rows)
}
