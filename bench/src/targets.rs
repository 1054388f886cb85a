//! The ratios of the get, set, unlock, cli, python and pam rows to their floors and peers, and
//! the targets of docs/PERFORMANCE.md they are judged by (the secret-service group judges its own).

use crate::get::{ROW_GK_GET, ROW_KU_GET, ROW_OURS_GET, ROW_RAW_GET};
use crate::harness;
use crate::report::{Row, Target, Value};
use crate::set::{ROW_FLOOR_SET, ROW_GK_SET, ROW_KU_SET, ROW_OURS_SET, ROW_RAW_SET};
use crate::Config;

const KU: &str = "keyutils store";

fn find<'a>(rows: &'a [Row], group: &str, name: &str, n: Option<usize>) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.group == group && r.name.starts_with(name) && (n.is_none() || r.entries == n))
}

fn med(rows: &[Row], group: &str, name: &str, n: Option<usize>) -> Option<f64> {
    find(rows, group, name, n).and_then(Row::median)
}

/// Each row's ratio to its group's raw floor and to its peer; then the targets, judged on the
/// rows.
pub fn ratios_and_targets(rows: &mut [Row], cfg: &Config, max_n: usize) -> Vec<Target> {
    // Ratios per (group, entries).
    let snapshot: Vec<Row> = rows.to_vec();
    for r in rows.iter_mut() {
        let Some(m) = r.median() else { continue };
        let raw = match r.group.as_str() {
            "get" => med(&snapshot, "get", ROW_RAW_GET, r.entries),
            "set" => med(&snapshot, "set", ROW_RAW_SET, r.entries),
            "set-tmpfs" => med(&snapshot, "set-tmpfs", "raw kernel", r.entries),
            "cli" => med(&snapshot, "cli", "keyctl print", r.entries),
            "python" => med(&snapshot, "python", "ctypes raw", r.entries),
            _ => None,
        };
        if !r.name.starts_with("raw kernel")
            && !r.name.starts_with("keyctl print")
            && !r.name.starts_with("ctypes raw")
        {
            r.vs_raw = raw.map(|x| m / x);
        }
        let peer = match (r.group.as_str(), r.name.as_str()) {
            ("get", ROW_OURS_GET) => med(&snapshot, "get", ROW_KU_GET, r.entries).map(|p| (KU, p)),
            ("set", ROW_OURS_SET) => med(&snapshot, "set", ROW_KU_SET, r.entries).map(|p| (KU, p)),
            ("get", ROW_GK_GET) => {
                med(&snapshot, "get", ROW_OURS_GET, r.entries).map(|p| ("libkeyring", p))
            }
            ("set", ROW_GK_SET) => {
                med(&snapshot, "set", ROW_OURS_SET, r.entries).map(|p| ("libkeyring", p))
            }
            ("cli", n) if n.starts_with("keyringrs get") => {
                med(&snapshot, "cli", "secret-tool", None).map(|p| ("secret-tool", p))
            }
            _ => None,
        };
        r.vs_peer = peer.map(|(p, x)| (p.to_string(), m / x));
    }

    let rows = &snapshot;
    let ref_n = if cfg.counts.contains(&10_000) {
        10_000
    } else {
        max_n
    };
    let min_n = cfg.counts[0];
    let mut t = Vec::new();
    let ours = med(rows, "get", ROW_OURS_GET, Some(ref_n));
    let raw = med(rows, "get", ROW_RAW_GET, Some(ref_n));
    let ku = med(rows, "get", ROW_KU_GET, Some(ref_n));
    let fmt = harness::fmt_ns;
    match (ours, raw) {
        (Some(o), Some(r)) => t.push(Target {
            name: format!(
                "get at {ref_n} entries ≤ 2.5× raw keyctl_search+keyctl_read (fast-path target; DESIGN: ≤ 4×)"
            ),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(r), o / r),
            met: Some(o / r <= 2.5),
        }),
        _ => t.push(Target {
            name: "get ≤ 2.5× raw".into(),
            measured: "not measured".into(),
            met: None,
        }),
    }
    if let (Some(o), Some(k)) = (ours, ku) {
        t.push(Target {
            name: format!("get at {ref_n} entries no slower than keyring-core's keyutils store"),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(k), o / k),
            met: Some(o <= k),
        });
    }
    if let (Some(a), Some(b)) = (
        med(rows, "get", ROW_OURS_GET, Some(min_n)),
        med(rows, "get", ROW_OURS_GET, Some(max_n)),
    ) {
        t.push(Target {
            name: format!("get flat from {min_n} to {max_n} entries (median within 1.5×)"),
            measured: format!("{} → {} = {:.2}×", fmt(a), fmt(b), b / a),
            met: Some(b / a <= 1.5),
        });
    }
    let gk_n = cfg
        .counts
        .iter()
        .rev()
        .copied()
        .find(|&n| med(rows, "get", ROW_GK_GET, Some(n)).is_some());
    match gk_n {
        Some(n) => {
            let g = med(rows, "get", ROW_GK_GET, Some(n)).unwrap_or(f64::NAN);
            let o = med(rows, "get", ROW_OURS_GET, Some(n)).unwrap_or(f64::NAN);
            t.push(Target {
                name: format!("get ≥ 100× faster than gnome-keyring over D-Bus (at {n} entries)"),
                measured: format!("{} vs {} = {:.0}× faster", fmt(o), fmt(g), g / o),
                met: Some(g / o >= 100.0),
            });
        }
        None => t.push(Target {
            name: "get ≥ 100× faster than gnome-keyring over D-Bus".into(),
            measured: find(rows, "get", ROW_GK_GET, None)
                .map(|r| match &r.value {
                    Value::NotAvailable(w) => format!("not measured: {w}"),
                    _ => String::new(),
                })
                .unwrap_or_default(),
            met: None,
        }),
    }
    if let (Some(o), Some(r)) = (
        med(rows, "set", ROW_OURS_SET, Some(ref_n)),
        med(rows, "set", ROW_RAW_SET, Some(ref_n)),
    ) {
        // A kernel key is not durable: the set's own work is compared on tmpfs (where fsync
        // costs nothing); the durable set has its own target against the fdatasync floor.
        let tmpfs = match (
            med(rows, "set-tmpfs", "libkeyring", Some(10)),
            med(rows, "set-tmpfs", "raw kernel", Some(10)),
        ) {
            (Some(a), Some(b)) => Some((a, b)),
            _ => None,
        };
        t.push(Target {
            name: "set ≤ 10× raw: the set's work on tmpfs vs a kernel read + add_key (durability: next target)"
                .into(),
            measured: match tmpfs {
                Some((a, b)) => format!(
                    "{} vs {} = {:.1}×; durable at {ref_n} entries {} vs add_key {} = {:.0}× (one fdatasync)",
                    fmt(a),
                    fmt(b),
                    a / b,
                    fmt(o),
                    fmt(r),
                    o / r
                ),
                None => "not measured (no tmpfs)".into(),
            },
            met: tmpfs.map(|(a, b)| a / b <= 10.0),
        });
    }
    if let (Some(o), Some(f)) = (
        med(rows, "set", ROW_OURS_SET, Some(ref_n)),
        med(rows, "set", ROW_FLOOR_SET, Some(ref_n)),
    ) {
        t.push(Target {
            name: format!(
                "durable set at {ref_n} entries ≤ 1.5× the floor (one pwrite + fdatasync of 4 KiB)"
            ),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(f), o / f),
            met: Some(o / f <= 1.5),
        });
    }
    if let (Some(o), Some(r)) = (
        med(rows, "python", "keyringrs.Store.get", None),
        med(rows, "python", "ctypes raw", None),
    ) {
        t.push(Target {
            name: "Python keyringrs.Store.get ≤ 1.5× a ctypes raw keyctl search + read".into(),
            measured: format!("{} vs {} = {:.2}×", fmt(o), fmt(r), o / r),
            met: Some(o / r <= 1.5),
        });
    }
    if let (Some(u), Some(a)) = (
        med(rows, "unlock", "Store::lock + Store::unlock", Some(max_n)),
        med(rows, "unlock", "Argon2id alone, minimal", Some(max_n)),
    ) {
        let dflt = match (
            med(rows, "unlock", "Store::unlock, default", None),
            med(rows, "unlock", "Argon2id alone, default", None),
        ) {
            (Some(u), Some(a)) => format!(
                "; default parameters: unlock {} vs Argon2id {}",
                fmt(u),
                fmt(a)
            ),
            _ => String::new(),
        };
        t.push(Target {
            name: format!("unlock = Argon2id + ≤ 5 ms (at {max_n} entries)"),
            measured: format!(
                "lock+unlock {} − Argon2id {} = {}{dflt}",
                fmt(u),
                fmt(a),
                fmt(u - a)
            ),
            met: Some(u - a <= 5e6),
        });
    }
    match (
        med(rows, "pam", "session open with pam_keyringrs", None),
        med(rows, "pam", "session open without pam_keyringrs", None),
        med(rows, "unlock", "Argon2id alone, default", None),
    ) {
        (Some(w), Some(wo), Some(a)) => t.push(Target {
            name: "PAM session open adds Argon2id + ≤ 5 ms".into(),
            measured: format!(
                "{} − {} − Argon2id {} = {}",
                fmt(w),
                fmt(wo),
                fmt(a),
                fmt(w - wo - a)
            ),
            met: Some(w - wo - a <= 5e6),
        }),
        _ => t.push(Target {
            name: "PAM session open adds Argon2id + ≤ 5 ms".into(),
            measured: find(rows, "pam", "", None)
                .map(|r| match &r.value {
                    Value::NotAvailable(w) => format!("not measured: {w}"),
                    _ => "incomplete".into(),
                })
                .unwrap_or_default(),
            met: None,
        }),
    }
    t
}
