//! `keyringrs repair` (docs/FORMAT.md "Recovering a damaged store"): keep every journal record
//! that authenticates before the damage and every entry that opens, move every damaged file
//! into `damaged/<time>/` inside the store (never delete one), rebuild the index, and report
//! what was kept and what was set aside. Idempotent: a second run finds nothing to move.
//!
//! Under the writer lock (the handle's bounded wait), with the key: only what authenticates
//! under the store's master key is kept, so a planted or altered file can never be "repaired"
//! into the store. Refused on a network filesystem, where another machine may write at the same
//! time without the lock reaching it.

use std::path::{Path, PathBuf};

use crate::check::{self, Fix, Place, DAMAGED};
use crate::format::index::INDEX;
use crate::format::journal::JOURNAL;
use crate::store::files::{busy, lock_mutex, write_atomic};
use crate::store::journal::Journal;
use crate::store::Store;
use crate::sys::fs;
use crate::{Error, Result};

/// How long repair waits for a writer to finish, when the handle sets no bound.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// One file moved into `damaged/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetAside {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now.
    pub to: PathBuf,
    /// What was wrong with it.
    pub why: String,
    /// Its authentic content was written back in its place (a file whose owner, mode or links
    /// were wrong).
    pub rewritten: bool,
}

/// What [`repair`] did.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// Entries the store holds afterwards (every one opens).
    pub entries: usize,
    /// Entries whose newest write was kept from a damaged journal (written into their files).
    pub journal_kept: usize,
    /// Files moved into `damaged/`.
    pub set_aside: Vec<SetAside>,
    /// The index was rebuilt from the entries.
    pub index_rebuilt: bool,
}

/// Repair the store (see the module comment). The store must be unlocked.
pub fn repair(store: &Store) -> Result<RepairReport> {
    if !store.local {
        return Err(Error::InvalidInput(format!(
            "{} is on a network filesystem: another machine may write it while repair works, \
             and the writer lock does not reach it there; run repair on the machine that \
             serves the files",
            store.path.display()
        )));
    }
    let master = store.master()?;
    let wait = store.wait.or(Some(LOCK_WAIT));
    let _guard = fs::flock_exclusive(&store.dir, wait).map_err(|e| busy(&store.path, e))?;
    // A rotation a crash interrupted is finished or undone first (its two sets of entry files
    // would otherwise look like damage); a `rotating` file that cannot be read is set aside,
    // and the entries that do not open under the current key with it.
    let rotation = store.recover_rotation_locked(&master);
    let mut survey = check::survey(store, Some(&master))?;
    match rotation {
        Ok(()) => {}
        Err(Error::Corrupt { reason, .. }) => {
            if !survey
                .findings
                .iter()
                .any(|f| f.place == Place::Root && f.name == "rotating")
            {
                survey.findings.push(check::Finding {
                    place: Place::Root,
                    name: "rotating".into(),
                    what: reason,
                    fix: Fix::SetAside,
                });
            }
        }
        Err(e) => return Err(e),
    }
    if let Some(f) = survey
        .findings
        .iter()
        .find(|f| matches!(f.fix, Fix::Refuse))
    {
        return Err(Error::corrupt(
            &check::path_of(store, f.place, &f.name),
            &f.what,
        ));
    }
    let mut report = RepairReport::default();
    let mut aside = Aside::new(store);
    let mut fix = |f: &check::Finding| -> Result<SetAside> {
        let from = check::path_of(store, f.place, &f.name);
        let (to, rewritten) = match &f.fix {
            // A copy set aside, then the good file renamed over the refused one: the path
            // never goes missing (the header is the store).
            // Only files of the store's own names (UTF-8) are rewritten.
            Fix::Rewrite(bytes) => {
                let name = f.name.to_string_lossy();
                let to = aside.copy_file(f.place, &name, bytes)?;
                let dir = match f.place {
                    Place::Root => &store.dir,
                    Place::Entries => &store.entries,
                };
                write_atomic(&store.dir, dir, &name, bytes, &from)?;
                (to, true)
            }
            _ => (aside.move_file(f.place, &f.name)?, false),
        };
        Ok(SetAside {
            from,
            to,
            why: f.what.clone(),
            rewritten,
        })
    };
    // Entry files first: the journal's kept records then supersede whatever was set aside.
    for f in survey.findings.iter().filter(|f| f.place == Place::Entries) {
        report.set_aside.push(fix(f)?);
    }
    // The journal: what it holds before the damage goes into entry files while the damaged
    // file is still in place (readers meanwhile see it refused, as before), then it is set
    // aside and a new one started.
    if survey.journal.replace {
        store.move_into_files(&survey.journal.kept)?;
        report.journal_kept = survey.journal.kept.len();
        *lock_mutex(&store.journal) = Journal::default();
    }
    for f in survey.findings.iter().filter(|f| f.place == Place::Root) {
        report.set_aside.push(fix(f)?);
    }
    if survey.journal.replace {
        // No room for one: the store works without a journal (docs/FORMAT.md).
        let _ = Store::create_journal(&store.dir, &store.path);
        *lock_mutex(&store.journal) = Journal::default();
    }
    store.reindex_locked(&master)?;
    report.index_rebuilt = true;
    if report.set_aside.is_empty() && !survey.journal.replace {
        // Nothing moved: the index rebuilt is all (its items are the same).
        report.entries = store.entry_names(&master)?.len();
        return Ok(report);
    }
    store.bump_generation()?;
    report.entries = store.entry_names(&master)?.len();
    Ok(report)
}

/// `damaged/<UTC time>/` for this repair, made when the first file is moved.
struct Aside<'a> {
    store: &'a Store,
    dir: Option<(String, std::fs::File)>,
    entries: Option<std::fs::File>,
}

impl<'a> Aside<'a> {
    fn new(store: &'a Store) -> Aside<'a> {
        Aside {
            store,
            dir: None,
            entries: None,
        }
    }

    fn dir(&mut self) -> Result<&(String, std::fs::File)> {
        if self.dir.is_none() {
            let s = self.store;
            let display = s.path.join(DAMAGED);
            match fs::mkdir(Some(&s.dir), Path::new(DAMAGED), 0o700) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::from_io("create", &display, e))
                }
                _ => {}
            }
            let damaged = fs::open_dir(Some(&s.dir), Path::new(DAMAGED))
                .map_err(|e| Error::from_io("open", &display, e))?;
            let stamp = utc_stamp();
            let mut name = stamp.clone();
            for n in 2.. {
                match fs::mkdir(Some(&damaged), Path::new(&name), 0o700) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => {
                        name = format!("{stamp}-{n}")
                    }
                    Err(e) => return Err(Error::from_io("create", &display.join(&name), e)),
                }
            }
            let f = fs::open_dir(Some(&damaged), Path::new(&name))
                .map_err(|e| Error::from_io("open", &display.join(&name), e))?;
            damaged
                .sync_all()
                .map_err(|e| Error::from_io("sync", &display, e))?;
            self.dir = Some((format!("{DAMAGED}/{name}"), f));
        }
        Ok(self.dir.as_ref().expect("made above"))
    }

    /// This repair's folder for files of `place`, made if needed: (its path in the store,
    /// the open directory).
    fn folder(&mut self, place: Place) -> Result<(String, std::fs::File)> {
        let s = self.store;
        let (rel, dir) = {
            let (rel, dir) = self.dir()?;
            (
                rel.clone(),
                dir.try_clone()
                    .map_err(|e| Error::from_io("open", &s.path, e))?,
            )
        };
        if place == Place::Root {
            return Ok((rel, dir));
        }
        if self.entries.is_none() {
            match fs::mkdir(Some(&dir), Path::new("entries"), 0o700) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                    return Err(Error::from_io("create", &s.path.join(&rel), e))
                }
                _ => {}
            }
            self.entries = Some(
                fs::open_dir(Some(&dir), Path::new("entries"))
                    .map_err(|e| Error::from_io("open", &s.path.join(&rel), e))?,
            );
        }
        let e = self.entries.as_ref().expect("made above");
        Ok((
            format!("{rel}/entries"),
            e.try_clone()
                .map_err(|e| Error::from_io("open", &s.path, e))?,
        ))
    }

    /// Keep a copy of `bytes`, the content of `name`, in this repair's folder; its path.
    fn copy_file(&mut self, place: Place, name: &str, bytes: &[u8]) -> Result<PathBuf> {
        let (rel, dir) = self.folder(place)?;
        let to = self.store.path.join(format!("{rel}/{name}"));
        write_atomic(&self.store.dir, &dir, name, bytes, &to)?;
        Ok(to)
    }

    /// Move `name` (in the store directory or `entries/`) into this repair's folder, without
    /// opening or following it; its new path.
    fn move_file(&mut self, place: Place, name: &std::ffi::OsStr) -> Result<PathBuf> {
        let s = self.store;
        let (rel, to_dir) = self.folder(place)?;
        let from_dir = match place {
            Place::Root => &s.dir,
            Place::Entries => &s.entries,
        };
        let to = s.path.join(&rel).join(name);
        let from = check::path_of(s, place, name);
        fs::rename_into(from_dir, Path::new(name), &to_dir, Path::new(name))
            .and_then(|()| to_dir.sync_all())
            .and_then(|()| from_dir.sync_all())
            .map_err(|e| Error::from_io("move", &from, e))?;
        // The store keeps working without it; the index is made again below.
        if place == Place::Root && name == INDEX {
            *lock_mutex(&s.index) = None;
        }
        if place == Place::Root && name == JOURNAL {
            *lock_mutex(&s.journal) = Journal::default();
        }
        Ok(to)
    }
}

/// `20261207T051500Z`: now, in UTC.
fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let [year, month, day, hour, minute, second] = crate::sys::utc(secs);
    format!("{year:04}{month:02}{day:02}T{hour:02}{minute:02}{second:02}Z")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_stamp_is_a_utc_time() {
        let s = super::utc_stamp();
        assert_eq!(s.len(), 16, "{s}");
        assert!(
            s.starts_with("20") && s.ends_with('Z') && &s[8..9] == "T",
            "{s}"
        );
    }
}
