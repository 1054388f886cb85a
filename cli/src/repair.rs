//! `keyringrs check` and `keyringrs repair` (docs/FORMAT.md "Recovering a damaged store").

use std::path::Path;

use libkeyring::{check, repair, ErrorKind, Store};

use crate::{Failure, Outcome};

/// One line per problem on stdout; what was not checked and notes on stderr; exit 7 if any.
pub fn check(path: &Path) -> Outcome {
    let store = Store::open(path)?;
    let report = check::check(&store)?;
    for p in &report.problems {
        println!("{}: {}", p.path.display(), p.what);
    }
    for n in &report.notes {
        eprintln!("keyringrs: note: {n}");
    }
    for u in &report.unverified {
        eprintln!("keyringrs: not checked: {u}");
    }
    if report.is_clean() {
        eprintln!(
            "keyringrs: {}: no problem found{}",
            path.display(),
            if report.unverified.is_empty() {
                ""
            } else {
                " in what could be checked"
            }
        );
        Ok(())
    } else {
        Err(Failure(
            ErrorKind::Corrupt.exit_code(),
            format!(
                "{}: {} problem(s) found; `keyringrs repair` sets the damaged files aside",
                path.display(),
                report.problems.len()
            ),
        ))
    }
}

/// What was set aside, one line each, then a summary.
pub fn repair(path: &Path) -> Outcome {
    let store = Store::open(path)?;
    let report = repair::repair(&store)?;
    for a in &report.set_aside {
        println!(
            "set aside: {} -> {}: {}{}",
            a.from.display(),
            a.to.display(),
            a.why,
            if a.rewritten {
                " (its content written back as a file of yours, mode 0600)"
            } else {
                ""
            }
        );
    }
    if report.journal_kept > 0 {
        println!(
            "kept: the newest writes of {} entr{} from the damaged journal, now in their files",
            report.journal_kept,
            if report.journal_kept == 1 { "y" } else { "ies" }
        );
    }
    println!(
        "kept: {} entr{}, every one opens; index rebuilt; {}",
        report.entries,
        if report.entries == 1 { "y" } else { "ies" },
        if report.set_aside.is_empty() {
            "nothing was damaged".to_owned()
        } else {
            format!("{} file(s) set aside", report.set_aside.len())
        }
    );
    Ok(())
}
