//! Results: rows, targets, and their text table, Markdown and JSON forms, written to the
//! results directory.

use std::fmt::Write as _;
use std::path::Path;

use crate::harness::{fmt_ns, Stats};

/// What one row measured.
#[derive(Debug, Clone)]
pub enum Value {
    Time(Stats),
    /// A size in KiB (peak RSS).
    Kib(u64),
    /// A throughput: operations per second, over `count` operations (the load rows).
    Rate {
        per_second: f64,
        count: usize,
    },
    /// Not measured, and why.
    NotAvailable(String),
}

#[derive(Debug, Clone)]
pub struct Row {
    pub group: String,
    pub name: String,
    pub entries: Option<usize>,
    pub value: Value,
    /// Median divided by the raw kernel floor of the same group and entry count.
    pub vs_raw: Option<f64>,
    /// Median divided by the named peer's median (same group and entry count).
    pub vs_peer: Option<(String, f64)>,
    pub note: String,
}

/// A timed row, or why it has no number.
pub fn time_row(group: &str, name: &str, n: Option<usize>, r: Result<Stats, String>) -> Row {
    Row::new(
        group,
        name,
        n,
        match r {
            Ok(s) => Value::Time(s),
            Err(e) => Value::NotAvailable(e),
        },
    )
}

/// A row not measured, and why.
pub fn na(group: &str, name: &str, n: Option<usize>, why: impl Into<String>) -> Row {
    Row::new(group, name, n, Value::NotAvailable(why.into()))
}

impl Row {
    pub fn new(group: &str, name: &str, entries: Option<usize>, value: Value) -> Row {
        Row {
            group: group.into(),
            name: name.into(),
            entries,
            value,
            vs_raw: None,
            vs_peer: None,
            note: String::new(),
        }
    }
    pub fn note(mut self, n: impl Into<String>) -> Row {
        self.note = n.into();
        self
    }
    pub fn median(&self) -> Option<f64> {
        match &self.value {
            Value::Time(s) => Some(s.median),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub measured: String,
    /// None: could not be judged in this run.
    pub met: Option<bool>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub mode: String,
    pub machine: String,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
    pub wall_seconds: f64,
}

fn cells(r: &Row) -> [String; 8] {
    let (median, p99, n) = match &r.value {
        Value::Time(s) => (fmt_ns(s.median), fmt_ns(s.p99), s.samples.to_string()),
        Value::Kib(k) => (
            format!("{:.1} MiB", *k as f64 / 1024.0),
            String::new(),
            "1".into(),
        ),
        Value::Rate { per_second, count } => (
            format!("{per_second:.0}/s"),
            String::new(),
            count.to_string(),
        ),
        Value::NotAvailable(why) => (format!("n/a ({why})"), String::new(), String::new()),
    };
    [
        r.group.clone(),
        r.name.clone(),
        r.entries.map(|e| e.to_string()).unwrap_or_default(),
        median,
        p99,
        n,
        r.vs_raw.map(|x| format!("{x:.2}×")).unwrap_or_default(),
        r.vs_peer
            .as_ref()
            .map(|(p, x)| format!("{x:.2}× {p}"))
            .unwrap_or_default(),
    ]
}

const HEADS: [&str; 8] = [
    "group", "what", "entries", "median", "p99", "samples", "÷ raw", "÷ peer",
];

fn met_str(m: Option<bool>) -> &'static str {
    match m {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not judged",
    }
}

impl Report {
    pub fn text(&self) -> String {
        let rows: Vec<[String; 8]> = self.rows.iter().map(cells).collect();
        let mut w = HEADS.map(|h| h.chars().count());
        for r in &rows {
            for (i, c) in r.iter().enumerate() {
                w[i] = w[i].max(c.chars().count().min(60));
            }
        }
        let mut s = String::new();
        let line = |s: &mut String, c: &[String]| {
            for (i, x) in c.iter().enumerate() {
                let pad = w[i].saturating_sub(x.chars().count());
                let _ = write!(s, "{x}{}  ", " ".repeat(pad));
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
        };
        line(&mut s, &HEADS.map(String::from));
        for (r, row) in rows.iter().zip(&self.rows) {
            line(&mut s, r);
            if !row.note.is_empty() {
                let _ = writeln!(s, "{}  ↳ {}", " ".repeat(w[0]), row.note);
            }
        }
        let _ = writeln!(s, "\ntargets (docs/PERFORMANCE.md):");
        for t in &self.targets {
            let _ = writeln!(s, "  [{}] {}: {}", met_str(t.met), t.name, t.measured);
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# keyringrs benchmark ({} run)\n", self.mode);
        let _ = writeln!(
            s,
            "{}; wall time {:.0} s.\n",
            self.machine, self.wall_seconds
        );
        let _ = writeln!(
            s,
            "## Targets\n\n| target | measured | result |\n|---|---|---|"
        );
        for t in &self.targets {
            let _ = writeln!(s, "| {} | {} | {} |", t.name, t.measured, met_str(t.met));
        }
        let _ = writeln!(s, "\n## Rows\n\n| {} | note |", HEADS.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(HEADS.len() + 1));
        for r in &self.rows {
            let c = cells(r);
            let _ = writeln!(s, "| {} | {} |", c.join(" | "), r.note.replace('|', "\\|"));
        }
        s
    }

    /// Print the text table, and write `out/STEM.json` and `out/STEM.md`.
    pub fn save(&self, out: &Path, stem: &str) -> Result<(), String> {
        print!("{}", self.text());
        std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
        for (ext, body) in [("json", self.json()), ("md", self.markdown())] {
            let p = out.join(format!("{stem}.{ext}"));
            std::fs::write(&p, body).map_err(|e| format!("{}: {e}", p.display()))?;
            eprintln!("wrote {}", p.display());
        }
        Ok(())
    }

    pub fn json(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "{{\n  \"mode\": {},\n  \"machine\": {},\n  \"wall_seconds\": {:.1},\n  \"rows\": [",
            q(&self.mode),
            q(&self.machine),
            self.wall_seconds
        );
        s.push_str(&json_list(self.rows.iter().map(row_json)));
        s.push_str("\n  ],\n  \"targets\": [");
        s.push_str(&json_list(self.targets.iter().map(|t| {
            format!(
                "{{\"target\": {}, \"measured\": {}, \"met\": {}}}",
                q(&t.name),
                q(&t.measured),
                t.met.map_or("null".into(), |m| m.to_string())
            )
        })));
        s.push_str("\n  ]\n}\n");
        s
    }
}

/// One row as a JSON object.
fn row_json(r: &Row) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{{\"group\": {}, \"what\": {}, \"entries\": {}, ",
        q(&r.group),
        q(&r.name),
        r.entries.map_or("null".into(), |e| e.to_string())
    );
    match &r.value {
        Value::Time(st) => {
            let _ = write!(
                s,
                "\"unit\": \"ns\", \"median\": {:.0}, \"p99\": {:.0}, \"min\": {:.0}, \"mean\": {:.0}, \"samples\": {}, ",
                st.median, st.p99, st.min, st.mean, st.samples
            );
        }
        Value::Kib(k) => {
            let _ = write!(s, "\"unit\": \"KiB\", \"value\": {k}, ");
        }
        Value::Rate { per_second, count } => {
            let _ = write!(
                s,
                "\"unit\": \"1/s\", \"value\": {per_second:.1}, \"samples\": {count}, "
            );
        }
        Value::NotAvailable(why) => {
            let _ = write!(s, "\"unit\": null, \"not_available\": {}, ", q(why));
        }
    }
    let _ = write!(
        s,
        "\"vs_raw\": {}, \"vs_peer\": {}, \"note\": {}}}",
        r.vs_raw.map_or("null".into(), |x| format!("{x:.3}")),
        r.vs_peer.as_ref().map_or("null".into(), |(p, x)| format!(
            "{{\"peer\": {}, \"ratio\": {x:.3}}}",
            q(p)
        )),
        q(&r.note)
    );
    s
}

/// JSON array elements, one a line.
fn json_list(items: impl Iterator<Item = String>) -> String {
    items
        .map(|x| format!("\n    {x}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// What the report was measured on.
pub fn machine(on_tmpfs: bool) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, Linux {kernel}, store on {}",
        if on_tmpfs {
            "tmpfs"
        } else {
            "disk (ext4 or similar; fsync is real)"
        }
    )
}

/// A JSON string literal.
fn q(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => {
                let _ = write!(o, "\\u{:04x}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
