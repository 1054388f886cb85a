//! A small, careful timing harness: warm-up, many single-call samples, round-robin between the
//! contenders of one comparison (so drift on a shared machine hits all of them alike), and
//! median / p99 / min from the sorted samples; and the small helpers every group uses.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

pub fn e2s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The path of a binary built next to this one (`make bench` builds the CLI too), else PATH.
pub fn sibling(name: &str) -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(name)))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

/// Spawn-per-call measurement of a whole command.
pub fn spawn_op<'a>(mut make: impl FnMut() -> Command + 'a) -> Op<'a> {
    Box::new(move || {
        let st = make()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(e2s)?;
        if st.success() {
            Ok(())
        } else {
            Err(format!("exited with {st}"))
        }
    })
}

/// Summary of one row's samples, in nanoseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub samples: usize,
    pub median: f64,
    pub p99: f64,
    pub min: f64,
    pub mean: f64,
}

impl Stats {
    pub fn from_samples(mut v: Vec<f64>) -> Option<Stats> {
        if v.is_empty() {
            return None;
        }
        v.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        Some(Stats {
            samples: v.len(),
            median: pick(0.5),
            p99: pick(0.99),
            min: v[0],
            mean: v.iter().sum::<f64>() / v.len() as f64,
        })
    }
}

/// One contender: a closure that performs one operation and reports failure as a message.
pub type Op<'a> = Box<dyn FnMut() -> Result<(), String> + 'a>;

/// Measure every contender `samples` times in `rounds` interleaved rounds, after `warmup`
/// untimed calls each. A contender that fails stops and yields its error instead of stats.
pub fn compare(
    ops: &mut [(String, Op<'_>)],
    warmup: usize,
    samples: usize,
    rounds: usize,
) -> Vec<Result<Stats, String>> {
    let rounds = rounds.clamp(1, samples.max(1));
    let mut out: Vec<Result<Vec<f64>, String>> = ops
        .iter()
        .map(|_| Ok(Vec::with_capacity(samples)))
        .collect();
    for ((_, op), res) in ops.iter_mut().zip(out.iter_mut()) {
        for _ in 0..warmup {
            if let Err(e) = op() {
                *res = Err(e);
                break;
            }
        }
    }
    for r in 0..rounds {
        let n = samples / rounds + usize::from(r < samples % rounds);
        for ((_, op), res) in ops.iter_mut().zip(out.iter_mut()) {
            let Ok(v) = res else { continue };
            for _ in 0..n {
                let t = Instant::now();
                let ok = op();
                let dt = t.elapsed().as_nanos() as f64;
                match ok {
                    Ok(()) => v.push(dt),
                    Err(e) => {
                        *res = Err(e);
                        break;
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|r| r.and_then(|v| Stats::from_samples(v).ok_or_else(|| "no samples".to_string())))
        .collect()
}

/// Human-readable duration.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}
