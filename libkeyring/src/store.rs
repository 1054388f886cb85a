//! The encrypted store: a directory with a header and one sealed file per entry, unlocked by a
//! kernel key `keyringrs:<store-id>`. Every operation reads that key from the kernel and keeps
//! no copy beyond the call.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::cache::{EntryCache, KeyCache};
use crate::crypto::{self, KdfParams, MasterKey, Purpose, SubKey};
use crate::error::{Error, Result};
use crate::format::{
    self, EntryData, EntryError, Header, HeaderError, Keyslot, StoreId, SLOT_EXTRA, SLOT_PASSWORD,
    SLOT_RECOVERY,
};
use crate::journal::{Overlay, KIND_DELETE, KIND_PUT};
use crate::keyring::{perm, KeySerial, Keyring};
use crate::recovery::RecoveryKey;
use crate::sys::{self, fs};

pub(crate) const HEADER: &str = "header";
/// The generation counter every writer bumps (crate::cache).
const GENERATION: &str = "generation";
const ENTRIES: &str = "entries";
pub(crate) const TMP_PREFIX: &str = ".tmp-";
/// The journal of a master-key rotation in progress (docs/FORMAT.md "Rotation").
const ROTATING: &str = "rotating";
/// The journal is bounded when read: a MAC line and one 64-hex-digit line per entry.
const MAX_JOURNAL_LEN: u64 = 64 << 20;

/// Where the unlocked key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    /// `@s`: gone when the login session ends (the default).
    #[default]
    Session,
    /// `@u`: shared by all of the user's processes, for background services (opt-in).
    User,
}

impl Scope {
    fn keyring(self) -> Keyring {
        match self {
            Scope::Session => Keyring::Session,
            Scope::User => Keyring::User,
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = Error;
    fn from_str(s: &str) -> Result<Scope> {
        match s {
            "session" => Ok(Scope::Session),
            "user" => Ok(Scope::User),
            _ => Err(Error::InvalidInput(format!(
                "scope {s:?}: expected session or user"
            ))),
        }
    }
}

/// How to unlock (and, for `init`/`passwd`, how to wrap).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnlockOptions {
    /// Argon2id parameters for new keyslots; existing weaker ones are upgraded on unlock.
    pub kdf: KdfParams,
    pub scope: Scope,
    /// Key timeout in seconds (None: until locked or the session ends).
    pub timeout: Option<u32>,
    /// How long `init` and a password change wait for the store's writer lock (None: as long as
    /// it takes; the PAM module gives a bound, so a user holding the lock cannot hang a login).
    /// The KDF upgrade and temp-file cleanup of `unlock` never wait: they skip when busy.
    pub lock_wait: fs::Wait,
}

/// What `unlock` did besides unlocking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnlockReport {
    /// The store was unlocked already (the password was still checked).
    pub already_unlocked: bool,
    /// The keyslot's KDF parameters were upgraded to the configured ones.
    pub kdf_upgraded: bool,
    /// The store was migrated from format version 1 to 2 by this unlock.
    pub migrated: bool,
    /// A non-fatal problem (e.g. the KDF upgrade could not be written).
    pub warning: Option<String>,
    /// The key this unlock put into the kernel (None: an existing one was kept).
    pub installed: Option<KeyRef>,
}

/// The kernel key of an unlocked store, `keyringrs:<id>`, as found or installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRef {
    pub serial: KeySerial,
    /// Where it was installed, told by its permissions (docs/THREAT-MODEL.md).
    pub scope: Scope,
}

/// A store whose master key was unwrapped with a password (Argon2id done), before anything is
/// put into the kernel: lets the PAM module act as the user's real uid only around the kernel
/// calls. Wiped on drop; Debug shows nothing secret.
pub struct Opened {
    pub(crate) header: Header,
    pub(crate) index: usize,
    pub(crate) master: MasterKey,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opened")
            .field("slot", &self.index)
            .finish_non_exhaustive()
    }
}

/// The identity the CLI, Python `keyring` and C use: (service, username).
pub type Identity = (String, String);

/// What `status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub path: PathBuf,
    pub id: String,
    pub locked: bool,
    /// Number of entries, when unlocked.
    pub entries: Option<usize>,
}

/// An open store. Holds the store and entries directories open (so a path swapped later cannot
/// redirect us) and the public header; never the master key.
#[derive(Debug)]
pub struct Store {
    pub(crate) path: PathBuf,
    pub(crate) dir: File,
    pub(crate) entries: File,
    pub(crate) id: StoreId,
    /// The header's format version as last seen (1 until migrated; crate::search).
    pub(crate) version: std::sync::atomic::AtomicU16,
    /// The blind attribute index as this handle last read it (crate::index, crate::search).
    pub(crate) index: std::sync::Mutex<Option<crate::index::Index>>,
    /// The write journal as this handle last read it (crate::journal).
    pub(crate) journal: std::sync::Mutex<crate::journal::View>,
    description: String,
    pub(crate) owner: u32,
    pub(crate) wait: fs::Wait,
    key_cache: KeyCache,
    entry_cache: Option<EntryCache>,
    /// On a local filesystem (every writer on this machine, flock holds): the journal and the
    /// index are used. On NFS, SMB, sshfs two machines may write at once without a common lock,
    /// so writes go to entry files and searches read every item (docs/FORMAT.md).
    pub(crate) local: bool,
}

/// The total Argon2id cost (KiB × passes, summed over the keyslots tried) one unlock may spend:
/// a header someone else wrote with many expensive slots costs at most this, not slots × cap.
pub const UNLOCK_KDF_BUDGET: u64 = KdfParams::MAX_COST;

/// The default store path: `$KEYRINGRS_STORE`, else `$XDG_DATA_HOME/keyringrs`, else
/// `~/.local/share/keyringrs` (home from `$HOME`).
pub fn default_path() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("KEYRINGRS_STORE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_DATA_HOME").filter(|p| Path::new(p).is_absolute()) {
        return Ok(PathBuf::from(p).join("keyringrs"));
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(h) => Ok(PathBuf::from(h).join(".local/share/keyringrs")),
        None => Err(Error::InvalidInput(
            "no store path: set KEYRINGRS_STORE or HOME".into(),
        )),
    }
}

/// The kernel key description of a store: `keyringrs:<store-id hex>`.
pub fn key_description(id: &StoreId) -> String {
    format!("keyringrs:{}", id.hex())
}

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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Refuse anything but a directory owned by `owner` that group/other cannot write.
fn check_dir(f: &File, path: &Path, owner: u32) -> Result<()> {
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

fn open_dir_checked(
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

fn is_entry_name(name: &[u8]) -> bool {
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
fn generation_file(dir: &File, owner: u32, create: bool) -> std::io::Result<File> {
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
fn bump_generation(dir: &File, owner: u32, files: bool) -> std::io::Result<u64> {
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
fn entry_cache(dir: &File, owner: u32) -> Option<EntryCache> {
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

impl Store {
    /// Open the store at `path` (it must exist: otherwise `NoStore`). Files must belong to the
    /// calling thread's filesystem uid.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let owner = sys::fsuid();
        let dir = match fs::open_dir(None, &path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::NoStore(path)),
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
                return Err(Error::corrupt(
                    &path,
                    "is not a directory (or is a symbolic link)",
                ))
            }
            Err(e) => return Err(Error::from_io("open", &path, e)),
            Ok(d) => d,
        };
        check_dir(&dir, &path, owner)?;
        let header = Self::read_header(&dir, &path, owner)?;
        let entries = open_dir_checked(Some(&dir), Path::new(ENTRIES), &path.join(ENTRIES), owner)?;
        let entry_cache = entry_cache(&dir, owner);
        let local = fs::is_local_filesystem(&dir);
        Ok(Store {
            description: key_description(&header.0.id),
            id: header.0.id,
            version: header.0.version.into(),
            index: std::sync::Mutex::new(None),
            journal: Default::default(),
            path,
            dir,
            entries,
            owner,
            wait: None,
            key_cache: KeyCache::default(),
            local,
            entry_cache,
        })
    }

    /// Bound how long this store's writes wait for the writer lock (None: no bound).
    pub fn with_lock_wait(mut self, wait: fs::Wait) -> Store {
        self.wait = wait;
        self
    }

    /// Create a new store at `path` protected by `password`, and leave it unlocked.
    pub fn init(path: impl AsRef<Path>, password: &[u8], opts: &UnlockOptions) -> Result<Store> {
        let (store, opened) = Store::create(path, password, opts)?;
        store.install_opened(&opened, opts)?;
        Ok(store)
    }

    /// Create a new store at `path` protected by `password`; nothing goes into the kernel yet
    /// (see [`Store::install_opened`]).
    pub fn create(
        path: impl AsRef<Path>,
        password: &[u8],
        opts: &UnlockOptions,
    ) -> Result<(Store, Opened)> {
        let path = path.as_ref().to_path_buf();
        let owner = sys::fsuid();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| Error::from_io("create directory", parent, e))?;
        }
        match fs::mkdir(None, &path, 0o700) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::from_io("create directory", &path, e)),
        }
        let dir = open_dir_checked(None, &path, &path, owner)?;
        let guard = fs::flock_exclusive(&dir, opts.lock_wait).map_err(|e| busy(&path, e))?;
        if read_checked(
            &dir,
            Path::new(HEADER),
            &|| path.join(HEADER),
            owner,
            format::MAX_HEADER_LEN,
        )?
        .is_some()
        {
            return Err(Error::InvalidInput(format!(
                "a store already exists at {}",
                path.display()
            )));
        }
        let entries_path = path.join(ENTRIES);
        match fs::mkdir(Some(&dir), Path::new(ENTRIES), 0o700) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::from_io("create directory", &entries_path, e)),
        }
        let entries = open_dir_checked(Some(&dir), Path::new(ENTRIES), &entries_path, owner)?;
        let leftovers = fs::list(&entries).map_err(|e| Error::from_io("list", &entries_path, e))?;
        if leftovers
            .iter()
            .any(|n| is_entry_name(n.as_encoded_bytes()))
        {
            return Err(Error::InvalidInput(format!(
                "{} holds entries but there is no header: refusing to overwrite them; move the directory away",
                entries_path.display()
            )));
        }
        let master = MasterKey::generate()?;
        let mut header = Header {
            version: format::VERSION,
            id: StoreId(crypto::random()?),
            slots: vec![],
        };
        header.slots.push(Keyslot::wrap(
            &header.prefix(),
            0,
            &master,
            password,
            opts.kdf,
        )?);
        // The journal (best effort: writes fall back to entry files without one), and the index
        // (empty), before the header: a store is never version 2 without an index.
        if fs::is_local_filesystem(&dir) {
            let _ = Store::create_journal(&dir, &path);
        }
        let keys = crate::index::IndexKeys::new(&master, &header.id);
        let empty = crate::index::Index::default().encode(&keys, &crypto::random()?);
        write_atomic(
            &dir,
            &dir,
            crate::index::INDEX,
            &empty,
            &path.join(crate::index::INDEX),
        )?;
        write_atomic(
            &dir,
            &dir,
            HEADER,
            &header.encode(&master),
            &path.join(HEADER),
        )?;
        bump_generation(&dir, owner, true)
            .map_err(|e| Error::from_io("write", &path.join(GENERATION), e))?;
        drop(guard);
        let entry_cache = entry_cache(&dir, owner);
        let local = fs::is_local_filesystem(&dir);
        let store = Store {
            description: key_description(&header.id),
            id: header.id,
            version: header.version.into(),
            index: std::sync::Mutex::new(None),
            journal: Default::default(),
            path,
            dir,
            entries,
            owner,
            wait: opts.lock_wait,
            key_cache: KeyCache::default(),
            local,
            entry_cache,
        };
        Ok((
            store,
            Opened {
                header,
                index: 0,
                master,
            },
        ))
    }

    pub(crate) fn read_header(dir: &File, path: &Path, owner: u32) -> Result<(Header, [u8; 32])> {
        let hpath = path.join(HEADER);
        let bytes = read_checked(
            dir,
            Path::new(HEADER),
            &|| hpath.clone(),
            owner,
            format::MAX_HEADER_LEN,
        )?
        .ok_or_else(|| Error::NoStore(path.to_path_buf()))?;
        Header::decode(&bytes).map_err(|e| match e {
            HeaderError::UnknownVersion(v) => Error::corrupt(
                &hpath,
                format!("unknown store format version {v} (this keyringrs reads version {}); upgrade keyringrs", format::VERSION),
            ),
            HeaderError::Malformed(why) => Error::corrupt(&hpath, why),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The store id as lowercase hex.
    pub fn id(&self) -> String {
        self.id.hex()
    }

    /// The description of this store's kernel key.
    pub fn key_description(&self) -> &str {
        &self.description
    }

    /// The kernel uid that owns this store (and must own its keys).
    pub fn owner(&self) -> u32 {
        self.owner
    }

    /// A key we found by name must be ours: owned by the store's owner, a `user` key, with one of
    /// the permission masks we set. Anything else was planted (another uid that possesses a
    /// keyring of ours can link a key of its own there) and is refused, never used.
    fn check_key(&self, key: KeySerial, masks: &[(u32, Scope)]) -> Result<Scope> {
        let d = key.describe()?;
        let foreign = |why: String| {
            Error::AccessDenied(format!(
                "the kernel key {:?} (serial {}) {why}: not installed by keyringrs for this \
                 user, refusing to use it (`keyringrs lock` unlinks it)",
                d.description, key.0
            ))
        };
        if d.key_type != "user" || d.uid != self.owner {
            return Err(foreign(format!(
                "is a {} key of uid {}, not of uid {}",
                d.key_type, d.uid, self.owner
            )));
        }
        masks
            .iter()
            .find(|(m, _)| *m == d.perm)
            .map(|(_, scope)| *scope)
            .ok_or_else(|| foreign(format!("has permissions {:08x}", d.perm)))
    }

    /// The key found by searching from `keyring` (which may find it in a keyring linked below).
    fn key_in(&self, keyring: Keyring) -> Result<KeyRef> {
        let serial = keyring.search_settled("user", &self.description, self.owner)?;
        let scope = self.check_key(
            serial,
            &[
                (perm::SESSION_KEY, Scope::Session),
                (perm::USER_KEY, Scope::User),
                // Installed by keyringrs 0.1 before this upgrade: used until that login ends.
                (perm::MASTER_KEY, Scope::Session),
            ],
        )?;
        Ok(KeyRef { serial, scope })
    }

    /// Find this store's key: from the session keyring (which normally links `@u`), then `@u`.
    pub fn find_key(&self) -> Result<KeyRef> {
        match self.key_in(Keyring::Session) {
            Err(Error::Locked) => self.key_in(Keyring::User),
            r => r,
        }
    }

    /// Read the master key from the kernel (Locked if absent), through the remembered serial
    /// if there is one (crate::cache); `.1` says so, for callers that retry with a search when
    /// the key opens nothing. Dropped (wiped) by the caller.
    fn master_fast(&self) -> Result<(MasterKey, bool)> {
        if let Some(serial) = self.key_cache.get() {
            let mut payload = Zeroizing::new([0u8; 2 * crypto::KEY_LEN]);
            match serial.read_into(&mut payload[..]) {
                Ok(n) if n == crypto::KEY_LEN => {
                    if let Some(m) = MasterKey::from_slice(&payload[..n]) {
                        return Ok((m, true));
                    }
                }
                _ => {}
            }
            self.key_cache.forget();
        }
        self.master().map(|m| (m, false))
    }

    /// Make this handle remember `serial` as its key's, as if a search had found it: for tests
    /// of what happens when a remembered serial dies or is reused by another key.
    #[doc(hidden)]
    pub fn remember_key_serial(&self, serial: KeySerial) {
        self.key_cache.set(serial)
    }

    /// Read the master key from the kernel by searching for it (Locked if absent).
    pub(crate) fn master(&self) -> Result<MasterKey> {
        let key = self.find_key()?;
        self.key_cache.set(key.serial);
        // Into a wiped stack buffer, as the MasterKey itself lives: no allocation per operation.
        let mut payload = Zeroizing::new([0u8; 2 * crypto::KEY_LEN]);
        let n = key.serial.read_into(&mut payload[..])?;
        // A key with our name that is not 32 bytes is not ours to use: still locked.
        if n != crypto::KEY_LEN {
            return Err(Error::Locked);
        }
        MasterKey::from_slice(&payload[..n]).ok_or(Error::Locked)
    }

    /// Is the store locked for this process? (`AccessDenied` if the key is someone else's.)
    pub fn is_locked(&self) -> Result<bool> {
        match self.master() {
            Ok(_) => Ok(false),
            Err(Error::Locked) => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// Put the master key into the kernel with the permissions of its scope.
    fn install(&self, master: &MasterKey, opts: &UnlockOptions) -> Result<KeyRef> {
        let mask = match opts.scope {
            Scope::Session => perm::SESSION_KEY,
            Scope::User => perm::USER_KEY,
        };
        // A key in @u outlives the logins recorded as its holders only by an explicit unlock:
        // forget those that are gone, so that crate::holders::lock_if_abandoned does not take
        // this unlock for theirs.
        if opts.scope == Scope::User {
            crate::holders::prune(self)?;
        }
        // Staged in the thread keyring: see KeySerial::place.
        let serial = Keyring::Thread
            .add(&self.description, master.as_bytes())?
            .place(mask, opts.scope.keyring(), opts.timeout)?;
        Ok(KeyRef {
            serial,
            scope: opts.scope,
        })
    }

    /// Unlock with `password`: derive, unwrap, install the key (owner = caller).
    /// Already unlocked: the password is still checked; a timeout, if given, is refreshed.
    pub fn unlock(&self, password: &[u8], opts: &UnlockOptions) -> Result<UnlockReport> {
        let opened = self.open_with_password(password)?;
        let mut report = self.install_opened(&opened, opts)?;
        match self.upgrade_kdf(&opened, password, opts.kdf) {
            Ok(upgraded) => report.kdf_upgraded = upgraded,
            Err(e) => {
                report.warning = Some(format!(
                    "could not upgrade the key derivation parameters: {e}"
                ))
            }
        }
        self.recover_rotation(&opened.master);
        report.migrated = self.migrate_after_unlock(&opened);
        self.remove_stale_temp_files();
        Ok(report)
    }

    /// Unwrap the master key with `password` (the Argon2id work); the kernel is not touched.
    /// Every password keyslot is tried (never a recovery key's).
    pub fn open_with_password(&self, password: &[u8]) -> Result<Opened> {
        self.open_with(&[SLOT_PASSWORD, SLOT_EXTRA], password)
    }

    /// The same with only the keyslots marked for login (the PAM module's: the login password's
    /// and those added with `slot add --pam`).
    pub fn open_with_login_password(&self, password: &[u8]) -> Result<Opened> {
        self.open_with(&[SLOT_PASSWORD], password)
    }

    /// Unwrap the master key with a recovery key (its keyslot only).
    pub fn open_with_recovery_key(&self, key: &RecoveryKey) -> Result<Opened> {
        self.open_with(&[SLOT_RECOVERY], key.as_bytes())
    }

    pub(crate) fn open_with(&self, kinds: &[u8], secret: &[u8]) -> Result<Opened> {
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header.id != self.id {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "store id changed while open",
            ));
        }
        let (index, master) = self.open_slot(&header, &mac, kinds, secret)?;
        Ok(Opened {
            header,
            index,
            master,
        })
    }

    /// Put an unwrapped master key into the kernel for `opts.scope`, unless a key of this store
    /// with the same master key is there already in that scope (and no timeout asks for a new
    /// one). A key of another scope is left alone: a text login during a desktop session gets
    /// its own.
    pub fn install_opened(&self, opened: &Opened, opts: &UnlockOptions) -> Result<UnlockReport> {
        let mut report = UnlockReport::default();
        let existing = self.find_key().and_then(|key| Ok((key, self.master()?)));
        match existing {
            Ok((key, current)) if key.scope == opts.scope => {
                if current.as_bytes() == opened.master.as_bytes() {
                    report.already_unlocked = true;
                    if opts.timeout.is_none() {
                        return Ok(report);
                    }
                }
                // Without setattr permission the timeout cannot be changed in place; a key
                // that does not match the header is replaced by the right one.
                let _ = key.serial.invalidate();
            }
            Ok((_, current)) => {
                report.already_unlocked = current.as_bytes() == opened.master.as_bytes();
            }
            Err(Error::Locked) => {}
            Err(e) => return Err(e),
        }
        report.installed = Some(self.install(&opened.master, opts)?);
        Ok(report)
    }

    /// Rewrap the slot `opened` came from if its KDF parameters are weaker than `kdf` in any
    /// dimension, to the larger of each parameter (never lower a cost). Never waits for the
    /// writer lock: busy → `Ok(false)`, next time.
    pub fn upgrade_kdf(&self, opened: &Opened, password: &[u8], kdf: KdfParams) -> Result<bool> {
        let current = opened.header.slots[opened.index].kdf;
        if !current.weaker_than(&kdf) {
            return Ok(false);
        }
        let target = current.max_with(&kdf);
        match self.rewrap(
            &opened.master,
            &opened.header,
            opened.index,
            password,
            target,
            Some(std::time::Duration::ZERO),
        ) {
            Ok(()) => Ok(true),
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::WouldBlock => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Find the keyslot `password` opens and check the header MAC with the master key. The
    /// Argon2id cost summed over the slots tried is bounded by [`UNLOCK_KDF_BUDGET`].
    fn open_slot(
        &self,
        header: &Header,
        mac: &[u8; 32],
        kinds: &[u8],
        password: &[u8],
    ) -> Result<(usize, MasterKey)> {
        let prefix = header.prefix();
        // Refused before any derivation: a header someone else wrote costs nothing then.
        let total: u64 = header
            .slots
            .iter()
            .filter(|s| kinds.contains(&s.kind))
            .map(|s| s.kdf.cost())
            .sum();
        if total > UNLOCK_KDF_BUDGET {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                format!(
                    "the keyslots' key derivations add up to {total} KiB × passes, more than the \
                     {UNLOCK_KDF_BUDGET} one unlock may spend"
                ),
            ));
        }
        for (i, slot) in header.slots.iter().enumerate() {
            if !kinds.contains(&slot.kind) {
                continue;
            }
            if let Some(master) = slot.unwrap(&prefix, i, password)? {
                if !header.verify_mac(&master, mac) {
                    return Err(Error::corrupt(
                        &self.path.join(HEADER),
                        "header MAC does not verify (altered)",
                    ));
                }
                return Ok((i, master));
            }
        }
        Err(Error::WrongPassword)
    }

    /// Replace keyslot `index` with a wrap of `master` under `password` and `kdf`, if the header
    /// on disk is still `expected` (taken under the writer lock, waiting as `wait` says). The slot
    /// keeps its kind.
    pub(crate) fn rewrap(
        &self,
        master: &MasterKey,
        expected: &Header,
        index: usize,
        password: &[u8],
        kdf: KdfParams,
        wait: fs::Wait,
    ) -> Result<()> {
        let _guard = fs::flock_exclusive(&self.dir, wait).map_err(|e| busy(&self.path, e))?;
        let (mut header, _) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if &header != expected {
            return Err(Error::InvalidInput(
                "the header changed meanwhile; not rewrapping".into(),
            ));
        }
        let kind = header.slots[index].kind;
        header.slots[index] =
            Keyslot::wrap_kind(kind, &header.prefix(), index, master, password, kdf)?;
        self.write_header(&header, master)
    }

    /// Change the password: rewrap the master key only; entries are untouched. Works whether
    /// the store is locked or not. The slot keeps the stronger of its and `kdf`'s parameters.
    pub fn passwd(&self, old: &[u8], new: &[u8], kdf: KdfParams) -> Result<()> {
        let opened = self.open_with_password(old)?;
        let target = opened.header.slots[opened.index].kdf.max_with(&kdf);
        self.rewrap(
            &opened.master,
            &opened.header,
            opened.index,
            new,
            target,
            self.wait,
        )
    }

    /// Lock: invalidate this store's keys wherever this process can find them (its session
    /// keyring, `@u`), and forget which logins held it. A key with our name that is not ours
    /// (planted) is unlinked. Locked already: Ok(false).
    pub fn lock(&self) -> Result<bool> {
        self.lock_in(&[Keyring::Session, Keyring::User])
    }

    /// Lock only what lives in `@u` (the keys and the holder records of user scope): what the
    /// PAM module does when the last login holding the store there closes.
    pub fn lock_user_scope(&self) -> Result<bool> {
        self.lock_in(&[Keyring::User])
    }

    fn lock_in(&self, keyrings: &[Keyring]) -> Result<bool> {
        self.key_cache.forget();
        let mut any = false;
        let description = &self.description;
        for &keyring in keyrings {
            // A key whose installer stopped half-way: unreadable, but not left behind.
            for key in keyring.staged("user", description, self.owner) {
                if key.unlink(keyring).is_ok() {
                    any = true;
                }
            }
            // Bounded: each round removes one key.
            for _ in 0..16 {
                let key = match keyring.search_settled("user", description, self.owner) {
                    Ok(k) => k,
                    Err(Error::Locked) => break,
                    Err(e) => return Err(e),
                };
                match key.invalidate() {
                    Ok(()) | Err(Error::Locked) => any = true,
                    Err(Error::AccessDenied(_)) => {
                        // Not ours: take it out of the keyrings we own.
                        let a = key.unlink(Keyring::Session);
                        let b = key.unlink(Keyring::User);
                        if a.is_err() && b.is_err() {
                            return Err(Error::AccessDenied(format!(
                                "a foreign key {description:?} (serial {}) is linked below a \
                                 keyring this process cannot change",
                                key.0
                            )));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if crate::holders::clear(self)? {
            any = true;
        }
        Ok(any)
    }

    /// Before a write (under the writer lock): the key from the kernel must be the one the header
    /// is authenticated with. A key left from before a rotation (another login's) or any other
    /// key would seal entries nobody can open later: such a session counts as locked.
    /// Replace the header (under the writer lock): temp file, fsync, rename, directory fsync.
    /// Every replacement moves the files generation: handles that remember the header read it
    /// again.
    pub(crate) fn write_header(&self, header: &Header, master: &MasterKey) -> Result<()> {
        write_atomic(
            &self.dir,
            &self.dir,
            HEADER,
            &header.encode(master),
            &self.path.join(HEADER),
        )?;
        self.bump_generation()
    }

    /// Under the writer lock: the master key, checked against the header MAC (a key from
    /// before a rotation is Locked), read through the remembered serial when there is one (a
    /// serial now naming another key fails the check, and the key is searched for again).
    fn writer_master(&self) -> Result<MasterKey> {
        let (master, remembered) = self.master_fast()?;
        match self.check_master(&master) {
            Err(Error::Locked) if remembered => {
                self.key_cache.forget();
                let master = self.master()?;
                self.check_master(&master)?;
                Ok(master)
            }
            r => r.map(|()| master),
        }
    }

    pub(crate) fn check_master(&self, master: &MasterKey) -> Result<()> {
        let seen = self.current_header()?;
        let (header, mac) = &*seen;
        if header.id != self.id {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "store id changed while open",
            ));
        }
        if header.verify_mac(master, mac) {
            Ok(())
        } else {
            Err(Error::Locked)
        }
    }

    /// The header as its file holds it now. A handle with a generation counter reuses the
    /// header it read last while the files generation (every replacement moves it) and the
    /// file's identity and size are unchanged: one `statx` instead of an open, a stat, a read
    /// and a close.
    fn current_header(&self) -> Result<crate::cache::HeaderAndMac> {
        let read = || Self::read_header(&self.dir, &self.path, self.owner).map(std::sync::Arc::new);
        let Some(cache) = &self.entry_cache else {
            return read();
        };
        let files = cache.files_generation();
        // Only a header that would be read now (ours, one link, not writable by others): a
        // file changed in place to be refused is read again, and refused.
        let file = fs::stat_at(&self.dir, Path::new(HEADER))
            .ok()
            .filter(|m| refusal(m, self.owner, format::MAX_HEADER_LEN).is_none())
            .map(|m| (m.dev(), m.ino(), m.len()));
        if let Some(seen) = file.and_then(|f| cache.header(files, f)) {
            return Ok(seen);
        }
        let header = read()?;
        if let Some(f) = file {
            cache.remember_header(files, f, &header);
        }
        Ok(header)
    }

    /// After a checkpoint (under the writer lock) moved the journal's entries (`moved`: their
    /// sealed bytes, None: deleted) into files: move the files generation, and keep what this
    /// handle remembers, with those entries' new bytes.
    pub(crate) fn bump_after_checkpoint(
        &self,
        moved: &crate::cache::KeyedMap<[u8; 32], Option<std::sync::Arc<Vec<u8>>>>,
    ) -> Result<()> {
        let from = self.entry_cache.as_ref().map(EntryCache::files_generation);
        self.bump_generation()?;
        if let (Some(cache), Some(from)) = (&self.entry_cache, from) {
            let to = cache.files_generation();
            cache.carry(from, to, moved.iter().map(|(id, b)| (id, b.as_ref())));
        }
        Ok(())
    }

    /// Change the password and replace the master key: every entry is resealed under a new
    /// master key, so an old header with an old password (a backup, a stolen disk image), or a
    /// master key read earlier, opens nothing written from now on. Crash-safe: the journal
    /// `rotating` lists the entries under the old key and the old header's MAC; the new header
    /// replacing the old one (one rename) is the commit; whatever a crash leaves is finished or
    /// undone by the next rotation or unlock (`recover_rotation`). Only the password's own
    /// keyslot survives: other keyslots cannot be rewrapped without their secrets. Every entry
    /// must open (else nothing changes). This session's key is replaced; other logins holding
    /// the old key count as locked until they unlock again.
    pub fn rotate(&self, old: &[u8], new: &[u8], opts: &UnlockOptions) -> Result<()> {
        let opened = self.open_with_password(old)?;
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header != opened.header {
            return Err(Error::InvalidInput(
                "the header changed meanwhile; not rotating".into(),
            ));
        }
        self.recover_rotation_locked(&opened.master)?;
        // Every entry in its file first: the rotation renames files, and the journal's records
        // are bound to the old key.
        self.checkpoint_locked(&opened.master)?;
        let [old_name, old_seal] = self.entry_keys(&opened.master);
        let ids = self.entry_names(&opened.master)?;
        let mut entries = Vec::with_capacity(ids.len());
        for id in &ids {
            let Some(e) = self.load_entry(&opened.master, &old_seal, id)? else {
                continue;
            };
            if format::entry_id(&old_name, &e.service, &e.username) != *id {
                return Err(Error::corrupt(
                    &self.entry_path(&format::hex(id)),
                    "entry identity does not match its name; not rotating",
                ));
            }
            entries.push(e);
        }
        let mut journal = format::hex(&mac);
        for id in &ids {
            journal.push('\n');
            journal.push_str(&format::hex(id));
        }
        write_atomic(
            &self.dir,
            &self.dir,
            ROTATING,
            journal.as_bytes(),
            &self.path.join(ROTATING),
        )?;
        let master = MasterKey::generate()?;
        let [new_name, new_seal] = self.entry_keys(&master);
        for e in &entries {
            let id = format::entry_id(&new_name, &e.service, &e.username);
            self.write_entry(&new_seal, &id, e)?;
        }
        let kdf = opened.header.slots[opened.index].kdf.max_with(&opts.kdf);
        let mut next = Header {
            version: format::VERSION,
            id: self.id,
            slots: vec![],
        };
        next.slots
            .push(Keyslot::wrap(&next.prefix(), 0, &master, new, kdf)?);
        // The commit.
        self.write_header(&next, &master)?;
        self.bump_generation()?;
        self.key_cache.forget();
        // Only the password's slot is left: names of the others are gone with them.
        let _ = fs::unlink(&self.dir, Path::new("slots"));
        self.recover_rotation_locked(&master)?;
        // The new header is version 2; the index is rebuilt under the new keys (until then,
        // readers find the old one does not authenticate and rebuild it themselves).
        self.version
            .store(format::VERSION, std::sync::atomic::Ordering::Relaxed);
        self.reindex_locked(&master)?;
        // This session reads with the new key from now on (the old one opens nothing). The
        // rotation has committed whatever happens here: a failure leaves the store locked.
        let _ = self.install_opened(
            &Opened {
                header: next,
                index: 0,
                master,
            },
            opts,
        );
        Ok(())
    }

    /// Finish or undo a rotation a crash interrupted, with the master key the current header
    /// opens; nothing to do without a journal. Called under the writer lock.
    pub(crate) fn recover_rotation_locked(&self, master: &MasterKey) -> Result<()> {
        let display = || self.path.join(ROTATING);
        let Some(journal) = read_checked(
            &self.dir,
            Path::new(ROTATING),
            &display,
            self.owner,
            MAX_JOURNAL_LEN,
        )?
        else {
            return Ok(());
        };
        let text = String::from_utf8(journal)
            .map_err(|_| Error::corrupt(&display(), "rotation journal is not text"))?;
        let mut lines = text.lines();
        let old_mac = lines.next().unwrap_or("");
        let listed: std::collections::HashSet<&str> = lines.collect();
        let (_, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        // The header still carries the MAC the journal recorded: the rotation did not commit,
        // the new entries are the leftovers. Otherwise it did: the listed ones are.
        let committed = format::hex(&mac) != old_mac;
        let [_, seal] = self.entry_keys(master);
        for id in self.entry_names(master)? {
            let name = format::hex(&id);
            if listed.contains(name.as_str()) != committed {
                continue;
            }
            // Only what does not open under the current key goes: an entry another login
            // wrote meanwhile opens and stays.
            if matches!(
                self.load_entry(master, &seal, &id),
                Err(Error::Corrupt { .. })
            ) {
                let _ = fs::unlink(&self.entries, Path::new(&name));
            }
        }
        self.entries
            .sync_all()
            .map_err(|e| Error::from_io("sync", &self.path.join(ENTRIES), e))?;
        self.bump_generation()?;
        fs::unlink(&self.dir, Path::new(ROTATING))
            .map_err(|e| Error::from_io("remove", &display(), e))?;
        self.dir
            .sync_all()
            .map_err(|e| Error::from_io("sync", &self.path, e))
    }

    /// After an unlock: migrate a version 1 store, if the writer lock is free now (otherwise
    /// the next write or search does). True if it was migrated now.
    pub fn migrate_after_unlock(&self, opened: &Opened) -> bool {
        self.migrate_if_free(&opened.master)
    }

    /// [`Store::migrate_after_unlock`] with the master key at hand.
    pub(crate) fn migrate_if_free(&self, master: &MasterKey) -> bool {
        if self.version.load(std::sync::atomic::Ordering::Relaxed) == format::VERSION {
            return false;
        }
        match fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) {
            Ok(_guard) => self.migrate_locked(master).unwrap_or(false),
            Err(_) => false,
        }
    }

    /// After an unlock: finish or undo an interrupted rotation, if the writer lock is free now.
    fn recover_rotation(&self, master: &MasterKey) {
        if let Ok(_guard) = fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) {
            let _ = self.recover_rotation_locked(master);
        }
    }

    pub(crate) fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(ENTRIES).join(name)
    }

    /// The entry-name and entry-seal subkeys, from one HKDF extract.
    pub(crate) fn entry_keys(&self, master: &MasterKey) -> [SubKey; 2] {
        master.subkeys(&self.id.0, [Purpose::EntryName, Purpose::EntrySeal])
    }

    /// Entry `id`, from the journal if it names it, else from its file (None: no such entry).
    pub(crate) fn load_entry(
        &self,
        master: &MasterKey,
        seal: &SubKey,
        id: &[u8; 32],
    ) -> Result<Option<EntryData>> {
        self.with_entry(master, seal, id, |p| p.to_data(true))
    }

    /// Open entry `id` (journal record, remembered bytes or file) and hand its plaintext to
    /// `f`, parsed in place in a buffer wiped after the call; None: there is no such entry.
    /// (`|p| p.to_data(false)`: the entry without its secret, what a write keeps of the old
    /// entry and what indexing reads: no copy of the secret, no mlock call.)
    pub(crate) fn with_entry<R>(
        &self,
        master: &MasterKey,
        seal: &SubKey,
        id: &[u8; 32],
        f: impl FnOnce(format::Plain<'_>) -> R,
    ) -> Result<Option<R>> {
        let name = format::hex(id);
        let display = || self.entry_path(&name);
        // Both read before anything from disk (see crate::cache).
        let files = self.entry_cache.as_ref().map(EntryCache::files_generation);
        let generation = self.entry_cache.as_ref().map(EntryCache::generation);
        let journaled = match self.journal_overlay(master, id, generation)? {
            Overlay::File => None,
            Overlay::Sealed(b) => Some(b),
            Overlay::Deleted => return Ok(None),
        };
        let cached = match (&self.entry_cache, files) {
            (Some(cache), Some(g)) => cache.lookup(g, id),
            _ => None,
        };
        let (bytes, fresh) = match journaled.or(cached) {
            Some(b) => (b, false),
            None => match read_checked(
                &self.entries,
                Path::new(&name),
                &display,
                self.owner,
                format::MAX_ENTRY_LEN,
            )? {
                Some(b) => (std::sync::Arc::new(b), true),
                None => return Ok(None),
            },
        };
        let r = format::open_entry_with(seal, &self.id, id, &bytes, f).map_err(|e| match e {
            EntryError::UnknownVersion(v) => {
                Error::corrupt(&display(), format!("unknown entry format version {v}"))
            }
            EntryError::Malformed(why) => Error::corrupt(&display(), why),
        })?;
        if let (true, Some(cache), Some(g)) = (fresh, &self.entry_cache, files) {
            cache.insert(g, id, &bytes);
        }
        Ok(Some(r))
    }

    fn entry_id(&self, master: &MasterKey, service: &str, username: &str) -> [u8; 32] {
        format::entry_id(
            &master.subkey(&self.id.0, Purpose::EntryName),
            service,
            username,
        )
    }

    /// The on-disk name of the entry (service, username): 64 lowercase hex digits of a keyed
    /// hash, so it needs the unlocked key (`Locked` otherwise). Stable for the life of the store
    /// and reveals nothing without the key; the Secret Service daemon builds item paths from it.
    pub fn entry_name(&self, service: &str, username: &str) -> Result<String> {
        let master = self.master()?;
        Ok(format::hex(&self.entry_id(&master, service, username)))
    }

    /// The whole entry for (service, username).
    pub fn entry(&self, service: &str, username: &str) -> Result<EntryData> {
        self.read_entry(service, username, |p| p.to_data(true))
    }

    /// The secret of (service, username), handed to `f` straight from the buffer it was
    /// decrypted into (wiped after the call; mlocked): no copy of it, and none of the rest of
    /// the entry. What a binding that converts the secret at once (Python's `str`) uses.
    pub fn get_with<R>(
        &self,
        service: &str,
        username: &str,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        self.read_entry(service, username, |p| f(p.secret))
    }

    /// Entry (service, username) through the remembered key serial, and if that fails as a
    /// serial now naming another key would, through a search: `f` gets its plaintext.
    fn read_entry<R>(
        &self,
        service: &str,
        username: &str,
        f: impl FnOnce(format::Plain<'_>) -> R,
    ) -> Result<R> {
        let (master, remembered) = self.master_fast()?;
        let mut f = Some(f);
        match self.entry_with(&master, service, username, &mut f) {
            // The remembered serial may now be another key: search, and try once more.
            Err(Error::Locked) | Err(Error::NoEntry { .. }) | Err(Error::Corrupt { .. })
                if remembered =>
            {
                self.key_cache.forget();
                self.entry_with(&self.master()?, service, username, &mut f)
            }
            r => r,
        }
    }

    /// `f` is taken (and called) only when the entry opened under its own name.
    fn entry_with<R>(
        &self,
        master: &MasterKey,
        service: &str,
        username: &str,
        f: &mut Option<impl FnOnce(format::Plain<'_>) -> R>,
    ) -> Result<R> {
        let [name_key, seal] = self.entry_keys(master);
        let id = format::entry_id(&name_key, service, username);
        let opened = self.with_entry(master, &seal, &id, |p| {
            if p.service != service || p.username != username {
                return None;
            }
            f.take().map(|f| f(p))
        });
        let data = match opened {
            Ok(Some(Some(data))) => data,
            Ok(Some(None)) => {
                return Err(Error::corrupt(
                    &self.entry_path(&format::hex(&id)),
                    "entry identity does not match its name",
                ))
            }
            // A key from before a rotation finds no entry and opens none: such a session is
            // locked, not missing entries or corrupt (one header read, off the hot path).
            Ok(None) => {
                self.check_master(master)?;
                return Err(Error::NoEntry {
                    service: service.into(),
                    username: username.into(),
                });
            }
            Err(e @ Error::Corrupt { .. }) => {
                self.check_master(master)?;
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        Ok(data)
    }

    /// The secret of (service, username).
    pub fn get(&self, service: &str, username: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.get_with(service, username, |secret| {
            let copy = Zeroizing::new(secret.to_vec());
            sys::lock_memory(&copy);
            copy
        })
    }

    /// Store `secret` for (service, username), keeping label, attributes and creation time of
    /// an existing entry.
    pub fn set(&self, service: &str, username: &str, secret: &[u8]) -> Result<()> {
        self.set_entry(service, username, secret, None, None)
    }

    /// Store an entry; `label`/`attributes` of None keep the existing ones (or the defaults).
    pub fn set_entry(
        &self,
        service: &str,
        username: &str,
        secret: &[u8],
        label: Option<&str>,
        attributes: Option<&BTreeMap<String, String>>,
    ) -> Result<()> {
        self.set_item(service, username, secret, label, attributes, None)
    }

    /// [`Store::set_entry`] with the secret's content type (None keeps the existing one).
    pub fn set_item(
        &self,
        service: &str,
        username: &str,
        secret: &[u8],
        label: Option<&str>,
        attributes: Option<&BTreeMap<String, String>>,
        content_type: Option<&str>,
    ) -> Result<()> {
        let empty = BTreeMap::new();
        format::check_limits_typed(
            service,
            username,
            label.unwrap_or(""),
            content_type.unwrap_or(""),
            attributes.unwrap_or(&empty),
            secret,
        )?;
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let master = self.writer_master()?;
        self.migrate_locked(&master)?;
        let [name_key, seal] = self.entry_keys(&master);
        let id = format::entry_id(&name_key, service, username);
        let old = self.with_entry(&master, &seal, &id, |p| p.to_data(false))?;
        let t = now();
        let data = EntryData {
            service: service.into(),
            username: username.into(),
            label: label
                .map(str::to_string)
                .or_else(|| old.as_ref().map(|o| o.label.clone()))
                .unwrap_or_else(|| format!("{username}@{service}")),
            content_type: content_type
                .map(str::to_string)
                .or_else(|| old.as_ref().map(|o| o.content_type.clone()))
                .unwrap_or_default(),
            attributes: attributes
                .cloned()
                .or_else(|| old.as_ref().map(|o| o.attributes.clone()))
                .unwrap_or_default(),
            created: old.as_ref().map_or(t, |o| o.created),
            modified: t,
            secret: Zeroizing::new(secret.to_vec()),
        };
        let old_attrs = old.as_ref().map(crate::mapping::item_attributes);
        self.index_item(
            &master,
            &id,
            &crate::mapping::item_attributes(&data),
            old_attrs.as_ref(),
        )?;
        let sealed = format::seal_entry(&seal, &self.id, &id, &data)?;
        if self.journal_write(&master, KIND_PUT, &id, &sealed)? {
            return self.bump_journal();
        }
        let name = format::hex(&id);
        write_atomic(
            &self.dir,
            &self.entries,
            &name,
            &sealed,
            &self.entry_path(&name),
        )?;
        self.bump_generation()
    }

    /// Seal `data` as entry `id` and write it atomically and durably (under the writer lock).
    fn write_entry(&self, seal: &SubKey, id: &[u8; 32], data: &EntryData) -> Result<()> {
        let name = format::hex(id);
        let bytes = format::seal_entry(seal, &self.id, id, data)?;
        write_atomic(
            &self.dir,
            &self.entries,
            &name,
            &bytes,
            &self.entry_path(&name),
        )
    }

    /// Tell every open store handle (any process) that entries changed: after the change is in
    /// place, under the writer lock.
    pub(crate) fn bump_generation(&self) -> Result<()> {
        self.bump(true)
    }

    /// Tell every open store handle that the journal has a new record (entry files unchanged:
    /// their cached bytes stay valid).
    pub(crate) fn bump_journal(&self) -> Result<()> {
        self.bump(false)
    }

    fn bump(&self, files: bool) -> Result<()> {
        let next = match self.entry_cache.as_ref().and_then(|c| c.bump(files)) {
            Some(next) => next,
            None => bump_generation(&self.dir, self.owner, files)
                .map_err(|e| Error::from_io("write", &self.path.join(GENERATION), e))?,
        };
        // This handle's journal view already holds its own write: current at the new
        // generation (the writer lock is still held, so nobody else wrote in between).
        let mut view = lock_mutex(&self.journal);
        if std::mem::take(&mut view.own_write) && self.entry_cache.is_some() {
            view.generation = Some(next);
        }
        Ok(())
    }

    /// Delete (service, username); `NoEntry` if it does not exist.
    pub fn delete(&self, service: &str, username: &str) -> Result<()> {
        let _guard = fs::flock_exclusive(&self.dir, self.wait).map_err(|e| busy(&self.path, e))?;
        let master = self.writer_master()?;
        let id = self.entry_id(&master, service, username);
        let name = format::hex(&id);
        self.migrate_locked(&master)?;
        let exists = match self.journal_overlay(&master, &id, None)? {
            Overlay::Sealed(_) => true,
            Overlay::Deleted => false,
            Overlay::File => match fs::open_read(Some(&self.entries), Path::new(&name)) {
                Ok(_) => true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => return Err(Error::from_io("open", &self.entry_path(&name), e)),
            },
        };
        if !exists {
            return Err(Error::NoEntry {
                service: service.into(),
                username: username.into(),
            });
        }
        let journaled = self.journal_write(&master, KIND_DELETE, &id, &[])?;
        if !journaled {
            match fs::unlink(&self.entries, Path::new(&name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Error::from_io("delete", &self.entry_path(&name), e))
                }
                _ => {}
            }
            self.entries
                .sync_all()
                .map_err(|e| Error::from_io("sync", &self.path.join(ENTRIES), e))?;
        }
        // Derived data: a lost removal only leaves a candidate that no longer opens.
        let _ = self.index_removed(&master, &id);
        if journaled {
            self.bump_journal()
        } else {
            self.bump_generation()
        }
    }

    /// The names of every entry: the entry files, with what the journal adds and deletes.
    pub(crate) fn entry_names(&self, master: &MasterKey) -> Result<Vec<[u8; 32]>> {
        // The journal before the directory: a checkpoint renames its entries into files before
        // it empties the journal, so an entry it moves meanwhile is in one or the other. (The
        // other order can miss every entry of the checkpoint: listed before their files came,
        // read after the journal emptied.)
        let (put, deleted) = self.journal_names(master)?;
        let names = fs::list(&self.entries)
            .map_err(|e| Error::from_io("list", &self.path.join(ENTRIES), e))?;
        let mut all: std::collections::HashSet<[u8; 32]> = names
            .iter()
            .filter_map(|n| parse_entry_name(n.as_encoded_bytes()))
            .collect();
        all.extend(put);
        for d in &deleted {
            all.remove(d);
        }
        Ok(all.into_iter().collect())
    }

    /// Every entry that opens, decrypted (secrets included), in no particular order, and the
    /// problem of each one that does not (a damaged, foreign or misnamed file: each error names
    /// its file). One bad entry never hides the others.
    pub fn entries_report(&self) -> Result<(Vec<EntryData>, Vec<Error>)> {
        let master = self.master()?;
        let [name_key, seal] = self.entry_keys(&master);
        let mut out = Vec::new();
        let mut bad = Vec::new();
        for id in self.entry_names(&master)? {
            match self.load_entry(&master, &seal, &id) {
                // An entry deleted between listing and reading is simply gone.
                Ok(None) => {}
                Ok(Some(e)) if format::entry_id(&name_key, &e.service, &e.username) != id => bad
                    .push(Error::corrupt(
                        &self.entry_path(&format::hex(&id)),
                        "entry identity does not match its name",
                    )),
                Ok(Some(e)) => out.push(e),
                Err(e) => bad.push(e),
            }
        }
        Ok((out, bad))
    }

    /// Every entry that opens (see [`Store::entries_report`] for the ones that do not).
    pub fn entries(&self) -> Result<Vec<EntryData>> {
        self.entries_report().map(|(good, _)| good)
    }

    /// Every (service, username) that opens, sorted, and the problems of the entries that do not.
    pub fn list_report(&self) -> Result<(Vec<Identity>, Vec<Error>)> {
        let (entries, bad) = self.entries_report()?;
        let mut v: Vec<_> = entries
            .into_iter()
            .map(|e| (e.service.clone(), e.username.clone()))
            .collect();
        v.sort();
        Ok((v, bad))
    }

    /// Every (service, username) that opens, sorted.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        self.list_report().map(|(good, _)| good)
    }

    /// Path, id, lock state, and the number of entries when unlocked.
    pub fn status(&self) -> Result<Status> {
        let locked = self.is_locked()?;
        Ok(Status {
            path: self.path.clone(),
            id: self.id(),
            locked,
            entries: if locked {
                None
            } else {
                Some(self.entry_names(&self.master()?)?.len())
            },
        })
    }

    /// Temp files left by a writer that crashed (only writers holding the lock create them).
    /// Every temp file is created in the store directory (see `write_atomic`), so this lists
    /// that small directory only, never `entries/` with its one file per entry: unlock stays
    /// Argon2id + a few syscalls at any store size.
    fn remove_stale_temp_files(&self) {
        // Never waits: a busy store is cleaned up next time.
        let Ok(_guard) = fs::flock_exclusive(&self.dir, Some(std::time::Duration::ZERO)) else {
            return;
        };
        if let Ok(names) = fs::list(&self.dir) {
            for n in names
                .iter()
                .filter(|n| n.as_encoded_bytes().starts_with(TMP_PREFIX.as_bytes()))
            {
                let _ = fs::unlink(&self.dir, Path::new(n));
            }
        }
    }
}
