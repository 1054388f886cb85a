//! `keyringrs check`: a read-only verification of a store, like `fsck -n` (docs/FORMAT.md
//! "Recovering a damaged store"). [`survey`] looks at every file of the store once and says,
//! per file, what is wrong and what `repair` (crate::repair) would do about it; `check` only
//! reports. Nothing here writes, renames or removes anything.
//!
//! Without the key it checks what needs none: which files there are, their types, owners,
//! modes, links and sizes, the header's checksum, the journal's and index's magic. With the key
//! (the store unlocked) also the header MAC, every entry file (it authenticates and holds the
//! entry its name says), every journal record and the index's records and items.

use std::collections::HashSet;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crypto::{MasterKey, Purpose};
use crate::format;
use crate::format::index::{self, Index, IndexKeys, INDEX};
use crate::format::journal::{self, Stop, JOURNAL, JOURNAL_LEN};
use crate::store::files::{parse_entry_name, read_checked, refusal, TMP_PREFIX};
use crate::store::Store;
use crate::sys::fs;
use crate::{Error, Result};

/// Where files set aside by `repair` go, inside the store directory.
pub const DAMAGED: &str = "damaged";

/// Files of the store directory and the most any of them may hold.
const KNOWN: &[(&str, u64)] = &[
    ("header", format::MAX_HEADER_LEN),
    (INDEX, index::MAX_INDEX_LEN),
    (JOURNAL, JOURNAL_LEN),
    ("generation", 16),
    ("rotating", 64 << 20),
    ("slots", crate::format::slots::MAX_NAMES_LEN),
];

/// One problem: the file and what is wrong with it (never a secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub what: String,
}

/// What [`check`] found.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    /// Damage found, one line per file.
    pub problems: Vec<Problem>,
    /// What could not be verified, and why (the store is locked).
    pub unverified: Vec<String>,
    /// Things worth knowing that are not damage (a repair's `damaged/`, a crash's leftovers).
    pub notes: Vec<String>,
}

impl CheckReport {
    /// No damage among what was checked.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Where a file lives: the store directory or `entries/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Place {
    Root,
    Entries,
}

/// What `repair` does with a file found wrong.
#[derive(Debug)]
pub(crate) enum Fix {
    /// Move it into `damaged/` (nothing in it can be used).
    SetAside,
    /// Move it into `damaged/` and write these bytes (the same, authentic content) in its
    /// place as a file that is ours again: right owner, mode 0600, one link.
    Rewrite(Vec<u8>),
    /// Rebuilt from the entries: the index (derived data), set aside first.
    Rebuild,
    /// Nothing can be done: the header does not authenticate under the unlocked key.
    Refuse,
}

/// One file found wrong.
#[derive(Debug)]
pub(crate) struct Finding {
    pub place: Place,
    /// As the directory holds it (a planted name need not be UTF-8).
    pub name: OsString,
    pub what: String,
    pub fix: Fix,
}

/// The journal as found.
#[derive(Debug, Default)]
pub(crate) struct JournalFound {
    /// Entries whose newest authentic record (before any damage) the journal holds: sealed
    /// bytes, None: deleted.
    pub kept: crate::crypto::KeyedMap<journal::Name, Option<Arc<Vec<u8>>>>,
    /// The file must be replaced (damaged, cut, refused): `repair` writes `kept` into entry
    /// files, sets the file aside and starts a new journal.
    pub replace: bool,
}

/// Everything [`survey`] found.
#[derive(Debug, Default)]
pub(crate) struct Survey {
    pub findings: Vec<Finding>,
    pub journal: JournalFound,
    pub unverified: Vec<String>,
    pub notes: Vec<String>,
}

impl Survey {
    /// `name` in `dir` as it is (a symlink not followed); None, recorded as a problem, if it
    /// cannot be examined.
    fn stat(&mut self, dir: &std::fs::File, place: Place, name: &OsStr) -> Option<fs::Stat> {
        match fs::stat_at(dir, Path::new(name)) {
            Ok(m) => Some(m),
            Err(e) => {
                self.found(
                    place,
                    name,
                    format!("cannot be examined: {e}"),
                    Fix::SetAside,
                );
                None
            }
        }
    }

    fn found(&mut self, place: Place, name: impl AsRef<OsStr>, what: impl Into<String>, fix: Fix) {
        self.findings.push(Finding {
            place,
            name: name.as_ref().to_owned(),
            what: what.into(),
            fix,
        });
    }
}

/// Verify the store without changing anything: with the key if it is unlocked, else what
/// needs none.
pub fn check(store: &Store) -> Result<CheckReport> {
    let master = match store.master() {
        Ok(m) => Some(m),
        Err(Error::Locked) => None,
        Err(e) => return Err(e),
    };
    let s = survey(store, master.as_ref())?;
    let problems = s
        .findings
        .iter()
        .map(|f| Problem {
            path: path_of(store, f.place, &f.name),
            what: f.what.clone(),
        })
        .collect();
    Ok(CheckReport {
        problems,
        unverified: s.unverified,
        notes: s.notes,
    })
}

pub(crate) fn path_of(store: &Store, place: Place, name: impl AsRef<OsStr>) -> PathBuf {
    let name = name.as_ref();
    match place {
        Place::Root => store.path.join(name),
        Place::Entries => store.path.join("entries").join(name),
    }
}

/// A file's permission bits, when they are not exactly `want`.
fn odd_mode(m: &fs::Stat, want: u32) -> Option<String> {
    (m.mode() & 0o7777 != want).then(|| format!("has mode {:o}, not {want:o}", m.mode() & 0o7777))
}

/// Look at every file of the store (see the module comment); `master`: the key, if unlocked.
pub(crate) fn survey(store: &Store, master: Option<&MasterKey>) -> Result<Survey> {
    let mut s = Survey::default();
    if master.is_none() {
        s.unverified.push(
            "the store is locked: the header MAC, the entries' contents, the journal's records \
             and the index's records were not verified (keyringrs unlock, then check again)"
                .into(),
        );
    }
    if let Some(m) = master {
        let (header, mac) = Store::read_header(&store.dir, &store.path, store.owner)?;
        if !header.verify_mac(m, &mac) {
            // Nothing of the store can be trusted under this key: say so and stop.
            s.found(
                Place::Root,
                "header",
                "does not authenticate under the unlocked master key (altered, or another \
                 store's key is unlocked); restore the header from a backup",
                Fix::Refuse,
            );
            return Ok(s);
        }
    }
    survey_root(store, master, &mut s)?;
    let live = survey_entries(store, master, &mut s)?;
    if let Some(m) = master {
        survey_index(store, m, &live, &mut s);
    }
    Ok(s)
}

/// `tpm2/`, the TPM2 keyslots' sealed objects: each must read back as its slot names it (a
/// changed one is not repaired: the slot is removed and added again); files no slot names are
/// left by an interrupted `slot add` and harmless.
fn survey_tpm2(store: &Store, m: &fs::Stat, s: &mut Survey) -> Result<()> {
    if !m.is_dir() {
        s.found(Place::Root, "tpm2", "is not a directory", Fix::SetAside);
        return Ok(());
    }
    if let Some(why) = odd_mode(m, 0o700) {
        s.notes
            .push(format!("{}: {why}", store.path.join("tpm2").display()));
    }
    let (wrong, unnamed) = store.survey_tpm2()?;
    for (file, why) in wrong {
        s.found(
            Place::Root,
            format!("tpm2/{file}"),
            format!(
                "{why}; its TPM2 keyslot does not open (the passwords still do): remove the \
                 slot with `keyringrs slot remove NAME` and add it again"
            ),
            Fix::Refuse,
        );
    }
    for file in unnamed {
        s.notes.push(format!(
            "{}: no keyslot names it (left by an interrupted `slot add`; harmless)",
            store.path.join("tpm2").join(file).display()
        ));
    }
    Ok(())
}

/// The store directory: which files there are and what each is.
fn survey_root(store: &Store, master: Option<&MasterKey>, s: &mut Survey) -> Result<()> {
    let names = fs::list(&store.dir).map_err(|e| Error::from_io("list", &store.path, e))?;
    let mut leftovers = 0;
    for n in &names {
        let name = n.to_string_lossy();
        if name.starts_with(TMP_PREFIX) {
            leftovers += 1;
            continue;
        }
        if name == "entries" {
            if let Ok(m) = fs::stat(&store.entries) {
                if let Some(why) = odd_mode(&m, 0o700) {
                    s.notes
                        .push(format!("{}: {why}", store.path.join("entries").display()));
                }
            }
            continue;
        }
        let Some(m) = s.stat(&store.dir, Place::Root, n) else {
            continue;
        };
        if name == "tpm2" {
            survey_tpm2(store, &m, s)?;
            continue;
        }
        if name == DAMAGED {
            if m.is_dir() {
                s.notes.push(format!(
                    "{}: files set aside by an earlier repair (never read; remove them when \
                     you no longer need them)",
                    store.path.join(DAMAGED).display()
                ));
            } else {
                s.found(Place::Root, n, "is not a directory", Fix::SetAside);
            }
            continue;
        }
        let Some(&(_, cap)) = KNOWN.iter().find(|(k, _)| *k == name) else {
            s.found(
                Place::Root,
                n,
                "is not a file of a keyringrs store (planted or left by something else)",
                Fix::SetAside,
            );
            continue;
        };
        let refused = refusal(&m, store.owner, cap).or_else(|| odd_mode(&m, 0o600));
        match &*name {
            "header" => {
                // Opened at all, so only its mode can be off: its (authenticated) bytes are
                // written back as a file of mode 0600; never set aside, it is the store.
                if let Some(why) = refused {
                    let display = || store.path.join("header");
                    let fix = match (
                        master,
                        read_checked(&store.dir, Path::new("header"), &display, store.owner, cap),
                    ) {
                        (Some(_), Ok(Some(bytes))) => Fix::Rewrite(bytes),
                        _ => Fix::Refuse,
                    };
                    s.found(Place::Root, "header", why, fix);
                }
            }
            JOURNAL => survey_journal(store, master, &m, refused, s),
            INDEX => {
                if let Some(why) = refused {
                    s.found(Place::Root, INDEX, why, Fix::Rebuild);
                }
            }
            "generation" => {
                let why = refused.or_else(|| {
                    (m.len() != 8 && m.len() != 16)
                        .then(|| format!("is {} bytes, not 16 (two counters) or 8 (one)", m.len()))
                });
                if let Some(why) = why {
                    s.found(Place::Root, "generation", why, Fix::SetAside);
                }
            }
            "rotating" => {
                if let Some(why) = refused {
                    s.found(Place::Root, "rotating", why, Fix::SetAside);
                } else {
                    s.notes.push(format!(
                        "{}: a master-key rotation did not finish; the next unlock or rotation \
                         completes or undoes it",
                        store.path.join("rotating").display()
                    ));
                }
            }
            _ => {
                if let Some(why) = refused {
                    s.found(Place::Root, n, why, Fix::SetAside);
                }
            }
        }
    }
    if leftovers > 0 {
        s.notes.push(format!(
            "{}: {leftovers} temporary file(s) of interrupted writes (removed at the next \
             unlock)",
            store.path.display()
        ));
    }
    Ok(())
}

/// The journal: its file, its header block and, with the key, its records.
fn survey_journal(
    store: &Store,
    master: Option<&MasterKey>,
    m: &fs::Stat,
    refused: Option<String>,
    s: &mut Survey,
) {
    let refused = refused.or_else(|| {
        (m.len() != JOURNAL_LEN).then(|| format!("is {} bytes, not {JOURNAL_LEN}", m.len()))
    });
    if !m.is_file() {
        s.journal.replace = true;
        s.found(
            Place::Root,
            JOURNAL,
            refused.unwrap_or_default(),
            Fix::SetAside,
        );
        return;
    }
    // Read as a regular file of at most the journal's size (a longer one: its first 16 KiB).
    let bytes = fs::open_read(Some(&store.dir), Path::new(JOURNAL)).and_then(|f| {
        let mut buf = vec![0u8; JOURNAL_LEN as usize];
        let n = std::os::unix::fs::FileExt::read_at(&f, &mut buf, 0)?;
        buf.truncate(n);
        Ok(buf)
    });
    let bytes = match bytes {
        Ok(b) => b,
        Err(e) => {
            s.journal.replace = true;
            s.found(
                Place::Root,
                JOURNAL,
                format!("cannot be read: {e}"),
                Fix::SetAside,
            );
            return;
        }
    };
    let mut problems: Vec<String> = refused.into_iter().collect();
    match master {
        None => {
            if journal::parse_header(&bytes).is_none() {
                problems.push("is not a keyringrs journal (bad magic or version)".into());
            }
        }
        Some(master) => {
            let key = master.subkey(&store.id.0, Purpose::JournalMac);
            match journal::scan(&key, &bytes) {
                None => problems.push(
                    "is not a keyringrs journal (bad magic or version): none of its records \
                     can be read"
                        .into(),
                ),
                Some(scan) => {
                    if scan.stop == Stop::Damaged {
                        problems.push(format!(
                            "the record at offset {} does not authenticate but the next one \
                             does (damaged or altered); {} record(s) before it are whole, {} \
                             after it are not applied",
                            scan.view.tail,
                            scan.view.latest.len(),
                            scan.after
                        ));
                    }
                    s.journal.kept = scan.view.latest;
                }
            }
        }
    }
    if !problems.is_empty() {
        s.journal.replace = true;
        s.found(Place::Root, JOURNAL, problems.join("; "), Fix::SetAside);
    }
}

/// `entries/`: every file is an entry of this store that opens, under its own name. Returns
/// the names of the entries there are (files that open, with the journal's kept records).
fn survey_entries(
    store: &Store,
    master: Option<&MasterKey>,
    s: &mut Survey,
) -> Result<HashSet<journal::Name>> {
    let dir = store.path.join("entries");
    let names = fs::list(&store.entries).map_err(|e| Error::from_io("list", &dir, e))?;
    let keys = master.map(|m| store.entry_keys(m));
    let mut live = HashSet::new();
    let mut unopened = 0usize;
    for n in &names {
        let Some(id) = parse_entry_name(n.as_encoded_bytes()) else {
            s.found(
                Place::Entries,
                n,
                "is not an entry file (planted?)",
                Fix::SetAside,
            );
            continue;
        };
        let Some(m) = s.stat(&store.entries, Place::Entries, n) else {
            continue;
        };
        if !m.is_file() || m.len() > format::MAX_ENTRY_LEN {
            let why = refusal(&m, store.owner, format::MAX_ENTRY_LEN).unwrap_or_default();
            s.found(Place::Entries, n, why, Fix::SetAside);
            continue;
        }
        let meta = refusal(&m, store.owner, format::MAX_ENTRY_LEN).or_else(|| odd_mode(&m, 0o600));
        let Some([name_key, seal]) = &keys else {
            if let Some(why) = meta {
                s.found(Place::Entries, n, why, Fix::SetAside);
            }
            unopened += 1;
            continue;
        };
        // The bytes, whoever owns the file (a refused one is read here only to tell whether
        // its content is still ours).
        let bytes = fs::open_read(Some(&store.entries), Path::new(n)).and_then(|f| {
            let mut buf = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(&f, format::MAX_ENTRY_LEN),
                &mut buf,
            )?;
            Ok(buf)
        });
        let opened = match &bytes {
            Ok(b) => format::open_entry_with(seal, &store.id, &id, b, |p| p.to_data(false))
                .map_err(|e| match e {
                    format::EntryError::UnknownVersion(v) => {
                        format!("unknown entry format version {v}")
                    }
                    format::EntryError::Malformed(why) => why,
                })
                .and_then(|e| {
                    (format::entry_id(name_key, &e.service, &e.username) == id)
                        .then_some(())
                        .ok_or_else(|| "entry identity does not match its name".to_owned())
                }),
            Err(e) => Err(format!("cannot be read: {e}")),
        };
        match (opened, meta) {
            (Ok(()), None) => {
                live.insert(id);
            }
            (Ok(()), Some(why)) => {
                live.insert(id);
                let bytes = bytes.expect("read");
                s.found(
                    Place::Entries,
                    n,
                    format!("{why} (its content authenticates)"),
                    Fix::Rewrite(bytes),
                );
            }
            (Err(why), _) => s.found(Place::Entries, n, why, Fix::SetAside),
        }
    }
    if unopened > 0 {
        s.unverified.push(format!(
            "{unopened} entry file(s) not opened (the store is locked)"
        ));
    }
    for (id, v) in &s.journal.kept {
        match v {
            Some(_) => live.insert(*id),
            None => live.remove(id),
        };
    }
    Ok(live)
}

/// The index: its records authenticate and it names exactly the entries there are.
fn survey_index(store: &Store, master: &MasterKey, live: &HashSet<journal::Name>, s: &mut Survey) {
    // A damaged journal explains whatever the index says of the entries it held: one problem.
    if s.journal.replace
        || s.findings
            .iter()
            .any(|f| f.place == Place::Root && f.name == INDEX)
    {
        return;
    }
    let display = || store.path.join(INDEX);
    let bytes = match read_checked(
        &store.dir,
        Path::new(INDEX),
        &display,
        store.owner,
        index::MAX_INDEX_LEN,
    ) {
        Ok(Some(b)) => b,
        // None: rebuilt by the next search; refusals were reported above.
        Ok(None) | Err(_) => return,
    };
    let keys = IndexKeys::new(master, &store.id);
    match Index::parse(&keys, &bytes, (0, 0)) {
        Err(why) => s.found(Place::Root, INDEX, why, Fix::Rebuild),
        Ok(idx) => {
            if (idx.len as usize) < bytes.len() {
                s.found(
                    Place::Root,
                    INDEX,
                    format!("a record is cut short at offset {}", idx.len),
                    Fix::Rebuild,
                );
                return;
            }
            let named: HashSet<journal::Name> = idx.names().copied().collect();
            let missing = live.difference(&named).count();
            let ghosts = named.difference(live).count();
            // Both are states a crash leaves (docs/FORMAT.md "index"), not damage.
            if missing + ghosts > 0 {
                s.notes.push(format!(
                    "{}: lacks {missing} item(s) and names {ghosts} that do not exist (left by \
                     an interrupted write; the next search corrects it)",
                    store.path.join(INDEX).display()
                ));
            }
        }
    }
}
