//! The store's files as the store reads and writes them: a directory or file is used only if it
//! is the owner's and nobody else can write it; every replacement is atomic and durable; the
//! generation counter (docs/FORMAT.md "generation") tells other handles that something changed.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::cache::EntryCache;
use crate::crypto;
use crate::error::{Error, Result};
use crate::format;
use crate::sys::fs;

pub(crate) const HEADER: &str = "header";
/// The generation counter every writer bumps (crate::store::cache).
pub(crate) const GENERATION: &str = "generation";
pub(crate) const ENTRIES: &str = "entries";
pub(crate) const TMP_PREFIX: &str = ".tmp-";
/// The journal of a master-key rotation in progress (docs/FORMAT.md "Rotation").
pub(crate) const ROTATING: &str = "rotating";
/// The journal is bounded when read: a MAC line and one 64-hex-digit line per entry.
pub(crate) const MAX_JOURNAL_LEN: u64 = 64 << 20;

pub(crate) fn busy(path: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::WouldBlock {
        Error::Io {
            what: format!(
                "{} is busy: another process holds its writer lock (gave up waiting)",
                path.display()
            ),
            source: e,
        }
    } else {
        Error::from_io("lock", path, e)
    }
}

/// Lock a mutex, whatever a panicking holder left in it (the data is only a cache).
pub(crate) fn lock_mutex<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Refuse anything but a directory owned by `owner` that group/other cannot write.
pub(crate) fn check_dir(f: &File, path: &Path, owner: u32) -> Result<()> {
    let m = fs::stat(f).map_err(|e| Error::from_io("stat", path, e))?;
    if !m.is_dir() {
        return Err(Error::corrupt(path, "is not a directory"));
    }
    if m.uid() != owner {
        return Err(Error::corrupt(
            path,
            format!("is owned by uid {}, not {owner}; refusing it", m.uid()),
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(Error::corrupt(
            path,
            format!(
                "mode {:o} is group- or world-writable; refusing it (chmod 700)",
                m.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

pub(crate) fn open_dir_checked(
    parent: Option<&File>,
    name: &Path,
    display: &Path,
    owner: u32,
) -> Result<File> {
    let f = fs::open_dir(parent, name).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOTDIR) => {
            Error::corrupt(display, "is not a directory (or is a symbolic link)")
        }
        _ => Error::from_io("open", display, e),
    })?;
    check_dir(&f, display, owner)?;
    Ok(f)
}

/// Read a regular file we own, at most `cap` bytes, refusing links, FIFOs, devices and foreign
/// files. `Ok(None)` if it does not exist.
/// `display` builds the path for error messages (only when there is an error).
pub(crate) fn read_checked(
    dir: &File,
    name: &Path,
    display: &dyn Fn() -> PathBuf,
    owner: u32,
    cap: u64,
) -> Result<Option<Vec<u8>>> {
    let f = match fs::open_read(Some(dir), name) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::from_io("open", &display(), e)),
    };
    let m = fs::stat(&f).map_err(|e| Error::from_io("stat", &display(), e))?;
    if let Some(why) = refusal(&m, owner, cap) {
        return Err(Error::corrupt(&display(), why));
    }
    // Exactly the size fstat gave (≤ cap), normally in one read(2) and no probe for EOF:
    // writers never change a file in place (they rename a new one over it), and a file cut
    // short meanwhile gives a short buffer, which then fails authentication.
    let mut buf = vec![0u8; m.len() as usize];
    let mut filled = 0;
    while filled < buf.len() {
        match (&f).read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::from_io("read", &display(), e)),
        }
    }
    buf.truncate(filled);
    Ok(Some(buf))
}

/// Why a file of the store is refused, if it is: not a regular file of `owner` with at most one
/// link, writable only by the owner, of at most `cap` bytes.
pub(crate) fn refusal(m: &fs::Stat, owner: u32, cap: u64) -> Option<String> {
    if !m.is_file() {
        return Some("is not a regular file; refusing it".into());
    }
    if m.uid() != owner {
        return Some(format!(
            "is owned by uid {}, not {owner}; refusing it",
            m.uid()
        ));
    }
    // 0 links: replaced or deleted by a writer after we opened it; what we read is still one
    // whole, authenticated version. More than one: a hard link planted from elsewhere.
    if m.nlink() > 1 {
        return Some(format!("has {} hard links; refusing it", m.nlink()));
    }
    if m.mode() & 0o022 != 0 {
        return Some("is group- or world-writable; refusing it".into());
    }
    if m.len() > cap {
        return Some(format!(
            "is {} bytes, more than the limit of {cap}",
            m.len()
        ));
    }
    None
}

/// Atomically and durably replace `name` in `dir`: temp file in `tmp_dir` (the store
/// directory, always: so unlock finds a crashed writer's temp file without listing `entries/`,
/// which holds one file per entry), fsync, rename into `dir` (one atomic, journaled operation on
/// the same filesystem), fsync `dir`.
pub(crate) fn write_atomic(
    tmp_dir: &File,
    dir: &File,
    name: &str,
    bytes: &[u8],
    display: &Path,
) -> Result<()> {
    let tmp = format!("{TMP_PREFIX}{}", format::hex(&crypto::random::<8>()?));
    let tmp_path = Path::new(&tmp);
    let result = (|| -> std::io::Result<()> {
        let mut f = fs::create_new(tmp_dir, tmp_path, 0o600)?;
        fs::fchmod(&f, 0o600)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename_into(tmp_dir, tmp_path, dir, Path::new(name))?;
        dir.sync_all()
    })();
    result.map_err(|e| {
        let _ = fs::unlink(tmp_dir, tmp_path);
        Error::from_io("write", display, e)
    })
}

pub(crate) fn is_entry_name(name: &[u8]) -> bool {
    name.len() == 64 && name.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn parse_entry_name(name: &[u8]) -> Option<[u8; 32]> {
    if !is_entry_name(name) {
        return None;
    }
    let mut id = [0u8; 32];
    for (i, pair) in name.chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        id[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(id)
}

/// The generation counter's file, if it is a regular file of `owner` of at least 8 bytes.
pub(crate) fn generation_file(dir: &File, owner: u32, create: bool) -> std::io::Result<File> {
    let f = if create {
        fs::open_rw_create(dir, Path::new(GENERATION), 0o600)?
    } else {
        fs::open_read(Some(dir), Path::new(GENERATION))?
    };
    let m = fs::stat(&f)?;
    if !m.is_file() || m.uid() != owner || m.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(
            "not a regular file of the store's owner",
        ));
    }
    Ok(f)
}

/// Bump the generation counter (under the writer lock, after a change is in place).
pub(crate) fn bump_generation(dir: &File, owner: u32, files: bool) -> std::io::Result<u64> {
    let f = generation_file(dir, owner, true)?;
    let mut now = [0u8; 16];
    let n = std::os::unix::fs::FileExt::read_at(&f, &mut now, 0)?;
    let word = |i: usize| u64::from_le_bytes(now[i..i + 8].try_into().expect("8 bytes"));
    let generation = if n >= 8 { word(0) } else { 0 };
    // A file from before the files generation: it starts as the generation.
    let files_now = if n == 16 { word(8) } else { generation };
    let next = generation.wrapping_add(1);
    fs::write_counters(&f, next, files_now.wrapping_add(u64::from(files)))?;
    Ok(next)
}

/// The entry cache of a store on a local filesystem with a generation counter (else None:
/// entries are read from disk every time).
pub(crate) fn entry_cache(dir: &File, owner: u32) -> Option<EntryCache> {
    if !fs::is_local_filesystem(dir) {
        return None;
    }
    // Writable if we may (writers then bump it without a system call), else read-only.
    let (f, writable) = match fs::open_rw(dir, Path::new(GENERATION)) {
        Ok(f) => (f, true),
        Err(_) => (generation_file(dir, owner, false).ok()?, false),
    };
    let m = fs::stat(&f).ok()?;
    if !m.is_file() || m.uid() != owner || m.mode() & 0o022 != 0 || m.nlink() != 1 || m.len() < 8 {
        return None;
    }
    fs::Counter::map(&f, writable).ok().map(EntryCache::new)
}
