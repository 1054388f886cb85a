//! Collection labels: not secret, stored in clear in a small file of the daemon's own,
//! `$XDG_DATA_HOME/keyringrs-secret-service/collections` (else `~/.local/share/...`), mode 0600,
//! written atomically (a temporary file renamed over it), read bounded. One line per collection:
//! `<collection name>\t<label>` with `\\`, `\t`, `\n` escaped.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::PathBuf;

use crate::error::Error;

/// The longest label kept (bytes).
pub const MAX_LABEL: usize = 4096;
/// The most of the file that is read.
const MAX_FILE: u64 = 64 * 1024;

/// The file, if the daemon knows where its data goes.
pub fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_DATA_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| PathBuf::from(h).join(".local/share"))
        })?;
    Some(base.join("keyringrs-secret-service").join("collections"))
}

fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => o.push_str("\\\\"),
            '\t' => o.push_str("\\t"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

fn unescape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            o.push(c);
            continue;
        }
        match it.next() {
            Some('t') => o.push('\t'),
            Some('n') => o.push('\n'),
            Some(c) => o.push(c),
            None => {}
        }
    }
    o
}

/// The stored labels (nothing if the file is missing or unreadable).
pub fn read_all() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Some(f) = file() else { return out };
    let Ok(fh) = std::fs::File::open(f) else {
        return out;
    };
    let mut text = String::new();
    if fh.take(MAX_FILE).read_to_string(&mut text).is_err() {
        return out;
    }
    for line in text.lines() {
        if let Some((name, label)) = line.split_once('\t') {
            let label = unescape(label);
            if label.len() <= MAX_LABEL {
                out.insert(name.to_string(), label);
            }
        }
    }
    out
}

/// The label of collection `name`, or `default`.
pub fn get(name: &str, default: &str) -> String {
    read_all()
        .remove(name)
        .unwrap_or_else(|| default.to_string())
}

/// Store the label of collection `name`.
pub fn set(name: &str, label: &str) -> Result<(), Error> {
    if label.len() > MAX_LABEL {
        return Err(Error::InvalidArgs(format!(
            "a collection label has at most {MAX_LABEL} bytes"
        )));
    }
    let f = file().ok_or_else(|| {
        Error::Failed(
            "cannot store the collection label: neither XDG_DATA_HOME nor HOME is set".into(),
        )
    })?;
    let dir = f.parent().expect("the file is in a directory");
    let io = |what: &str, e: std::io::Error| Error::Failed(format!("{what}: {e}"));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io(&dir.display().to_string(), e))?;
    // One writer at a time (they share the temporary file's name).
    static WRITER: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = WRITER.lock().unwrap_or_else(|p| p.into_inner());
    let mut all = read_all();
    all.insert(name.to_string(), label.to_string());
    let text: String = all
        .iter()
        .map(|(n, l)| format!("{n}\t{}\n", escape(l)))
        .collect();
    let tmp = dir.join(format!(".collections.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut fh = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        fh.write_all(text.as_bytes())?;
        fh.sync_all()?;
        std::fs::rename(&tmp, &f)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(&f.display().to_string(), e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_escape_round_trip() {
        for s in ["", "Login", "a\tb\nc\\d", "é ✓"] {
            assert_eq!(unescape(&escape(s)), s);
            assert!(!escape(s).contains('\n'));
        }
    }
}
