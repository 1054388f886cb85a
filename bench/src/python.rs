//! The "python" group: `keyringrs.Store.get`, `keyring.get_password` through our backend, and a
//! ctypes raw keyctl read, each timed inside one interpreter (bench/python_bench.py).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::fixture::{service, user, RAW_DESC};
use crate::harness::Stats;
use crate::report::{na, Row, Value};
use crate::Config;

const PY_BENCH: &str = include_str!("../python_bench.py");

/// Python: `keyringrs.Store.get`, `keyring.get_password` through our backend, and a ctypes raw
/// keyctl read, each timed inside one interpreter (issue 5's package, when installed).
pub fn rows(cfg: &Config, store_path: &Path, n: usize) -> Vec<Row> {
    let names = [
        "ctypes raw keyctl search + read",
        "keyringrs.Store.get",
        "keyring.get_password (keyringrs backend)",
    ];
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .args(["-c", PY_BENCH])
        .arg(cfg.cli_samples.max(10).saturating_mul(20).to_string())
        .arg(RAW_DESC)
        .arg(service(1))
        .arg(user(1))
        .env("KEYRINGRS_STORE", store_path)
        .stdin(Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return names
                .iter()
                .map(|m| na("python", m, Some(n), format!("{python}: {e}")))
                .collect()
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    let mut results: BTreeMap<String, Result<Vec<f64>, String>> = BTreeMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(kind), Some(name), Some(rest)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        match kind {
            "ok" => {
                let v: Vec<f64> = rest.split(',').filter_map(|x| x.parse().ok()).collect();
                results.insert(name.into(), Ok(v));
            }
            "na" => {
                results.insert(name.into(), Err(rest.to_string()));
            }
            _ => {}
        }
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.lines().last().unwrap_or("no output").to_string();
    names
        .iter()
        .map(|name| match results.remove(*name) {
            Some(Ok(v)) => match Stats::from_samples(v) {
                Some(s) => Row::new("python", name, Some(n), Value::Time(s)),
                None => na("python", name, Some(n), "no samples"),
            },
            Some(Err(why)) => na("python", name, Some(n), why),
            None => na(
                "python",
                name,
                Some(n),
                format!("python bench failed: {err}"),
            ),
        })
        .collect()
}
