//! The secret-service group's ratios to gnome-keyring and its targets (docs/PERFORMANCE.md).

use super::*;

pub(super) fn annotate(rows: &mut [Row]) {
    let snapshot = rows.to_vec();
    for r in rows.iter_mut() {
        let (Some(m), Some(what)) = (r.median(), r.name.strip_prefix(&format!("{OURS}: "))) else {
            continue;
        };
        let peer = snapshot
            .iter()
            .find(|p| p.name == name(GK, what) && p.entries == r.entries)
            .and_then(Row::median);
        r.vs_peer = peer.map(|p| ("gnome-keyring".to_string(), m / p));
    }
}

pub(super) fn find<'a>(rows: &'a [Row], server: &str, what: &str, n: usize) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.name == name(server, what) && r.entries == Some(n))
}

pub(super) fn med(rows: &[Row], server: &str, what: &str, n: usize) -> Option<f64> {
    find(rows, server, what, n).and_then(Row::median)
}

/// Why a row has no number (for a target that cannot be judged).
pub(super) fn why(rows: &[Row], server: &str, what: &str, n: usize) -> String {
    match find(rows, server, what, n).map(|r| &r.value) {
        Some(Value::NotAvailable(w)) => format!("{server} at {n}: n/a ({w})"),
        Some(_) => String::new(),
        None => format!("{server} at {n}: not measured"),
    }
}

pub(super) fn ratio_target(
    name: String,
    a: (Option<f64>, String),
    b: (Option<f64>, String),
    sep: &str,
    limit: f64,
) -> Target {
    match (a.0, b.0) {
        (Some(x), Some(y)) => Target {
            name,
            measured: format!("{}{sep}{} = {:.2}×", fmt_ns(x), fmt_ns(y), x / y),
            met: Some(x / y <= limit),
        },
        _ => Target {
            name,
            measured: format!("not measured: {}", [a.1, b.1].join(" ").trim()),
            met: None,
        },
    }
}

pub(super) fn targets(rows: &[Row], plan: &Plan) -> Vec<Target> {
    let mut t = Vec::new();
    let lo = plan.lookup_sizes[0];
    let hi = *plan.lookup_sizes.last().unwrap_or(&lo);
    let get = |server: &str, what: &str, n: usize| {
        (med(rows, server, what, n), why(rows, server, what, n))
    };
    // flat: the median at the largest size ÷ the one at the smallest.
    t.push(ratio_target(
        format!("Secret Service: lookup by an app's attributes flat from {lo} to {hi} items (within 1.5×)"),
        get(OURS, LOOKUP_APP, hi),
        get(OURS, LOOKUP_APP, lo),
        " at the top vs ",
        1.5,
    ));
    t.push(ratio_target(
        format!("Secret Service: lookup by an app's attributes within 2× of a service+username lookup at {hi} items"),
        get(OURS, LOOKUP_APP, hi),
        get(OURS, LOOKUP_SU, hi),
        " vs ",
        2.0,
    ));
    {
        let mut parts = Vec::new();
        let mut slower = false;
        let mut missing = false;
        for &n in &plan.lookup_sizes {
            match (med(rows, OURS, LOOKUP_APP, n), med(rows, GK, LOOKUP_APP, n)) {
                (Some(o), Some(g)) => {
                    slower |= o >= g;
                    parts.push(format!(
                        "{n}: {} vs {} ({:.1}× faster)",
                        fmt_ns(o),
                        fmt_ns(g),
                        g / o
                    ));
                }
                _ => {
                    missing = true;
                    let w = [why(rows, OURS, LOOKUP_APP, n), why(rows, GK, LOOKUP_APP, n)];
                    parts.push(format!("{n}: not measured ({})", w.join(" ").trim()));
                }
            }
        }
        t.push(Target {
            name: "Secret Service: lookup by an app's attributes faster than gnome-keyring at every size".into(),
            measured: parts.join("; "),
            met: if slower {
                Some(false)
            } else if missing {
                None
            } else {
                Some(true)
            },
        });
    }
    let clo = plan.create_sizes[0];
    let chi = *plan.create_sizes.last().unwrap_or(&clo);
    t.push(ratio_target(
        format!("Secret Service: CreateItem flat from {clo} to {chi} items (within 1.5×)"),
        get(OURS, CREATE, chi),
        get(OURS, CREATE, clo),
        " at the top vs ",
        1.5,
    ));
    let cref = if plan.create_sizes.contains(&2_000) {
        2_000
    } else {
        plan.load_size
    };
    t.push(ratio_target(
        format!("Secret Service: CreateItem ≤ half of gnome-keyring's at {cref} items"),
        get(OURS, CREATE, cref),
        get(GK, CREATE, cref),
        " vs ",
        0.5,
    ));
    {
        let what = format!("load: {LOAD_CLIENTS} clients, lookups/s");
        let rate = |server: &str| match find(rows, server, &what, plan.load_size).map(|r| &r.value)
        {
            Some(Value::Rate { per_second, .. }) => Ok(*per_second),
            Some(Value::NotAvailable(w)) => Err(format!("{server}: n/a ({w})")),
            _ => Err(format!("{server}: not measured")),
        };
        let name = format!(
            "Secret Service: {LOAD_CLIENTS}-client load ≥ 2× gnome-keyring's lookups/s (at {} items)",
            plan.load_size
        );
        t.push(match (rate(OURS), rate(GK)) {
            (Ok(o), Ok(g)) => Target {
                name,
                measured: format!("{o:.0}/s vs {g:.0}/s = {:.2}×", o / g),
                met: Some(o >= 2.0 * g),
            },
            (a, b) => Target {
                name,
                measured: format!(
                    "not measured: {}",
                    [a.err(), b.err()]
                        .into_iter()
                        .flatten()
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
                met: None,
            },
        });
    }
    t
}
