//! The encrypted store: a directory with a header and one sealed file per entry, unlocked by a
//! kernel key `keyringrs:<store-id>`. Every operation reads that key from the kernel and keeps
//! no copy beyond the call.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::crypto::{self, KdfParams, MasterKey, Purpose, SubKey};
use crate::error::{Error, Result};
use crate::format::{self, EntryData, EntryError, Header, HeaderError, Keyslot, StoreId};
use crate::keyring::{perm, KeySerial, Keyring};
use crate::sys::{self, fs};

const HEADER: &str = "header";
const ENTRIES: &str = "entries";
const TMP_PREFIX: &str = ".tmp-";

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
}

/// What `unlock` did besides unlocking.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnlockReport {
    /// The store was unlocked already (the password was still checked).
    pub already_unlocked: bool,
    /// The keyslot's KDF parameters were upgraded to the configured ones.
    pub kdf_upgraded: bool,
    /// A non-fatal problem (e.g. the KDF upgrade could not be written).
    pub warning: Option<String>,
}

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
    path: PathBuf,
    dir: File,
    entries: File,
    id: StoreId,
    description: String,
    owner: u32,
}

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

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Refuse anything but a directory owned by `owner` that group/other cannot write.
fn check_dir(f: &File, path: &Path, owner: u32) -> Result<()> {
    let m = f.metadata().map_err(|e| Error::from_io("stat", path, e))?;
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
fn read_checked(
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
    let m = f
        .metadata()
        .map_err(|e| Error::from_io("stat", &display(), e))?;
    if !m.file_type().is_file() {
        return Err(Error::corrupt(
            &display(),
            "is not a regular file; refusing it",
        ));
    }
    if m.uid() != owner {
        return Err(Error::corrupt(
            &display(),
            format!("is owned by uid {}, not {owner}; refusing it", m.uid()),
        ));
    }
    // 0 links: replaced or deleted by a writer after we opened it; what we read is still one
    // whole, authenticated version. More than one: a hard link planted from elsewhere.
    if m.nlink() > 1 {
        return Err(Error::corrupt(
            &display(),
            format!("has {} hard links; refusing it", m.nlink()),
        ));
    }
    if m.mode() & 0o022 != 0 {
        return Err(Error::corrupt(
            &display(),
            "is group- or world-writable; refusing it",
        ));
    }
    if m.len() > cap {
        return Err(Error::corrupt(
            &display(),
            format!("is {} bytes, more than the limit of {cap}", m.len()),
        ));
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

/// Atomically and durably replace `name` in `dir`: temp file in `tmp_dir` (the store
/// directory, always: so unlock finds a crashed writer's temp file without listing `entries/`,
/// which holds one file per entry), fsync, rename into `dir` (one atomic, journaled operation on
/// the same filesystem), fsync `dir`.
fn write_atomic(
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

fn parse_entry_name(name: &[u8]) -> Option<[u8; 32]> {
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
        Ok(Store {
            description: key_description(&header.0.id),
            id: header.0.id,
            path,
            dir,
            entries,
            owner,
        })
    }

    /// Create a new store at `path` protected by `password`, and leave it unlocked.
    pub fn init(path: impl AsRef<Path>, password: &[u8], opts: &UnlockOptions) -> Result<Store> {
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
        let guard = fs::flock_exclusive(&dir).map_err(|e| Error::from_io("lock", &path, e))?;
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
        write_atomic(
            &dir,
            &dir,
            HEADER,
            &header.encode(&master),
            &path.join(HEADER),
        )?;
        drop(guard);
        let store = Store {
            description: key_description(&header.id),
            id: header.id,
            path,
            dir,
            entries,
            owner,
        };
        store.install(&master, opts)?;
        Ok(store)
    }

    fn read_header(dir: &File, path: &Path, owner: u32) -> Result<(Header, [u8; 32])> {
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

    /// Find this store's key: in the session keyring (which normally links `@u`), then in `@u`.
    pub fn find_key(&self) -> Result<KeySerial> {
        match Keyring::Session.search(&self.description) {
            Err(Error::Locked) => Keyring::User.search(&self.description),
            r => r,
        }
    }

    /// Read the master key from the kernel (Locked if absent). Dropped (wiped) by the caller.
    fn master(&self) -> Result<MasterKey> {
        let key = self.find_key()?;
        // Into a wiped stack buffer, as the MasterKey itself lives: no allocation per operation.
        let mut payload = Zeroizing::new([0u8; 2 * crypto::KEY_LEN]);
        let n = key.read_into(&mut payload[..])?;
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

    /// Put the master key into the kernel with the DESIGN permissions. The key is staged in the
    /// thread keyring, which no other process possesses, so nobody else can see it before its
    /// permissions are final: add there, set the timeout (needs setattr, so first), restrict to
    /// the DESIGN mask plus owner link/setattr, link into the target keyring (which needs link
    /// permission), drop the extra owner bits, and unlink it from the thread keyring. Possession
    /// through the thread keyring also makes this work for `@u`, which a session created by
    /// `keyctl session` does not link. (KEYCTL_UPDATE is never used: it clears the timeout.)
    fn install(&self, master: &MasterKey, opts: &UnlockOptions) -> Result<KeySerial> {
        let key = Keyring::Thread.add(&self.description, master.as_bytes())?;
        let placed = (|| -> Result<()> {
            if let Some(t) = opts.timeout {
                key.set_timeout(t)?;
            }
            key.set_perm(perm::MASTER_KEY | perm::USR_LINK | perm::USR_SETATTR)?;
            key.link(opts.scope.keyring())?;
            key.set_perm(perm::MASTER_KEY)
        })();
        let unlinked = key.unlink(Keyring::Thread);
        if let Err(e) = placed.and(unlinked) {
            let _ = key.invalidate();
            return Err(e);
        }
        Ok(key)
    }

    /// Unlock with `password`: derive, unwrap, install the key (owner = caller, DESIGN mask).
    /// Already unlocked: the password is still checked; a timeout, if given, is refreshed.
    pub fn unlock(&self, password: &[u8], opts: &UnlockOptions) -> Result<UnlockReport> {
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if header.id != self.id {
            return Err(Error::corrupt(
                &self.path.join(HEADER),
                "store id changed while open",
            ));
        }
        let (index, master) = self.open_slot(&header, &mac, password)?;
        let mut report = UnlockReport::default();
        match self.find_key().and_then(|k| Ok((k, k.read()?))) {
            Ok((key, payload)) if payload.as_slice() == master.as_bytes() => {
                report.already_unlocked = true;
                if opts.timeout.is_some() {
                    // Without setattr permission the timeout cannot be changed in place.
                    key.invalidate()?;
                    self.install(&master, opts)?;
                }
            }
            Ok((key, _)) => {
                key.invalidate()?;
                self.install(&master, opts)?;
            }
            Err(Error::Locked) => {
                self.install(&master, opts)?;
            }
            Err(e) => return Err(e),
        }
        if header.slots[index].kdf.weaker_than(&opts.kdf) {
            match self.rewrap(&master, &header, index, password, opts.kdf) {
                Ok(()) => report.kdf_upgraded = true,
                Err(e) => {
                    report.warning = Some(format!(
                        "could not upgrade the key derivation parameters: {e}"
                    ))
                }
            }
        }
        self.remove_stale_temp_files();
        Ok(report)
    }

    /// Find the keyslot `password` opens and check the header MAC with the master key.
    fn open_slot(
        &self,
        header: &Header,
        mac: &[u8; 32],
        password: &[u8],
    ) -> Result<(usize, MasterKey)> {
        let prefix = header.prefix();
        for (i, slot) in header.slots.iter().enumerate() {
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
    /// on disk is still `expected` (taken under the writer lock).
    fn rewrap(
        &self,
        master: &MasterKey,
        expected: &Header,
        index: usize,
        password: &[u8],
        kdf: KdfParams,
    ) -> Result<()> {
        let _guard =
            fs::flock_exclusive(&self.dir).map_err(|e| Error::from_io("lock", &self.path, e))?;
        let (mut header, _) = Self::read_header(&self.dir, &self.path, self.owner)?;
        if &header != expected {
            return Err(Error::InvalidInput(
                "the header changed meanwhile; not rewrapping".into(),
            ));
        }
        header.slots[index] = Keyslot::wrap(&header.prefix(), index, master, password, kdf)?;
        write_atomic(
            &self.dir,
            &self.dir,
            HEADER,
            &header.encode(master),
            &self.path.join(HEADER),
        )
    }

    /// Change the password: rewrap the master key only; entries are untouched. Works whether
    /// the store is locked or not.
    pub fn passwd(&self, old: &[u8], new: &[u8], kdf: KdfParams) -> Result<()> {
        let (header, mac) = Self::read_header(&self.dir, &self.path, self.owner)?;
        let (index, master) = self.open_slot(&header, &mac, old)?;
        self.rewrap(&master, &header, index, new, kdf)
    }

    /// Lock: invalidate this store's key wherever it is linked. Locked already: Ok(false).
    pub fn lock(&self) -> Result<bool> {
        let mut any = false;
        // Bounded: each round invalidates one key; there can be one in @s and one in @u.
        for _ in 0..16 {
            match self.find_key() {
                Ok(k) => match k.invalidate() {
                    Ok(()) | Err(Error::Locked) => any = true,
                    Err(e) => return Err(e),
                },
                Err(Error::Locked) => return Ok(any),
                Err(e) => return Err(e),
            }
        }
        Ok(any)
    }

    fn entry_path(&self, name: &str) -> PathBuf {
        self.path.join(ENTRIES).join(name)
    }

    /// The entry-name and entry-seal subkeys, from one HKDF extract.
    fn entry_keys(&self, master: &MasterKey) -> [SubKey; 2] {
        master.subkeys(&self.id.0, [Purpose::EntryName, Purpose::EntrySeal])
    }

    fn load_entry(&self, seal: &SubKey, id: &[u8; 32]) -> Result<Option<EntryData>> {
        let name = format::hex(id);
        let display = || self.entry_path(&name);
        let Some(bytes) = read_checked(
            &self.entries,
            Path::new(&name),
            &display,
            self.owner,
            format::MAX_ENTRY_LEN,
        )?
        else {
            return Ok(None);
        };
        format::open_entry(seal, &self.id, id, &bytes)
            .map(Some)
            .map_err(|e| match e {
                EntryError::UnknownVersion(v) => {
                    Error::corrupt(&display(), format!("unknown entry format version {v}"))
                }
                EntryError::Malformed(why) => Error::corrupt(&display(), why),
            })
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
        let [name_key, seal] = self.entry_keys(&self.master()?);
        let id = format::entry_id(&name_key, service, username);
        let data = self.load_entry(&seal, &id)?.ok_or_else(|| Error::NoEntry {
            service: service.into(),
            username: username.into(),
        })?;
        if data.service != service || data.username != username {
            return Err(Error::corrupt(
                &self.entry_path(&format::hex(&id)),
                "entry identity does not match its name",
            ));
        }
        Ok(data)
    }

    /// The secret of (service, username).
    pub fn get(&self, service: &str, username: &str) -> Result<Zeroizing<Vec<u8>>> {
        self.entry(service, username)
            .map(|mut e| std::mem::take(&mut e.secret))
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
        let empty = BTreeMap::new();
        format::check_limits(
            service,
            username,
            label.unwrap_or(""),
            attributes.unwrap_or(&empty),
            secret,
        )?;
        let [name_key, seal] = self.entry_keys(&self.master()?);
        let id = format::entry_id(&name_key, service, username);
        let name = format::hex(&id);
        let _guard =
            fs::flock_exclusive(&self.dir).map_err(|e| Error::from_io("lock", &self.path, e))?;
        let old = self.load_entry(&seal, &id)?;
        let t = now();
        let data = EntryData {
            service: service.into(),
            username: username.into(),
            label: label
                .map(str::to_string)
                .or_else(|| old.as_ref().map(|o| o.label.clone()))
                .unwrap_or_else(|| format!("{username}@{service}")),
            attributes: attributes
                .cloned()
                .or_else(|| old.as_ref().map(|o| o.attributes.clone()))
                .unwrap_or_default(),
            created: old.as_ref().map_or(t, |o| o.created),
            modified: t,
            secret: Zeroizing::new(secret.to_vec()),
        };
        let bytes = format::seal_entry(&seal, &self.id, &id, &data)?;
        write_atomic(
            &self.dir,
            &self.entries,
            &name,
            &bytes,
            &self.entry_path(&name),
        )
    }

    /// Delete (service, username); `NoEntry` if it does not exist.
    pub fn delete(&self, service: &str, username: &str) -> Result<()> {
        let master = self.master()?;
        let name = format::hex(&self.entry_id(&master, service, username));
        let _guard =
            fs::flock_exclusive(&self.dir).map_err(|e| Error::from_io("lock", &self.path, e))?;
        match fs::unlink(&self.entries, Path::new(&name)) {
            Ok(()) => self
                .entries
                .sync_all()
                .map_err(|e| Error::from_io("sync", &self.path.join(ENTRIES), e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::NoEntry {
                service: service.into(),
                username: username.into(),
            }),
            Err(e) => Err(Error::from_io("delete", &self.entry_path(&name), e)),
        }
    }

    fn entry_names(&self) -> Result<Vec<[u8; 32]>> {
        let names = fs::list(&self.entries)
            .map_err(|e| Error::from_io("list", &self.path.join(ENTRIES), e))?;
        Ok(names
            .iter()
            .filter_map(|n| parse_entry_name(n.as_encoded_bytes()))
            .collect())
    }

    /// Every entry, decrypted (secrets included), in no particular order.
    pub fn entries(&self) -> Result<Vec<EntryData>> {
        let [name_key, seal] = self.entry_keys(&self.master()?);
        let mut out = Vec::new();
        for id in self.entry_names()? {
            // An entry deleted between listing and reading is simply gone.
            if let Some(e) = self.load_entry(&seal, &id)? {
                if format::entry_id(&name_key, &e.service, &e.username) != id {
                    return Err(Error::corrupt(
                        &self.entry_path(&format::hex(&id)),
                        "entry identity does not match its name",
                    ));
                }
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Every (service, username), sorted.
    pub fn list(&self) -> Result<Vec<(String, String)>> {
        let mut v: Vec<_> = self
            .entries()?
            .into_iter()
            .map(|e| (e.service.clone(), e.username.clone()))
            .collect();
        v.sort();
        Ok(v)
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
                Some(self.entry_names()?.len())
            },
        })
    }

    /// Temp files left by a writer that crashed (only writers holding the lock create them).
    /// Every temp file is created in the store directory (see `write_atomic`), so this lists
    /// that small directory only, never `entries/` with its one file per entry: unlock stays
    /// Argon2id + a few syscalls at any store size.
    fn remove_stale_temp_files(&self) {
        let Ok(_guard) = fs::flock_exclusive(&self.dir) else {
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
