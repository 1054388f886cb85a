//! Opening a store and creating one (docs/FORMAT.md "Layout").

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::cache::KeyCache;
use super::files::{
    bump_generation, busy, check_dir, entry_cache, is_entry_name, open_dir_checked, read_checked,
    write_atomic, ENTRIES, GENERATION, HEADER,
};
use super::{Opened, Store, UnlockOptions};
use crate::crypto::{self, MasterKey};
use crate::error::{Error, Result};
use crate::format::{self, Header, HeaderError, Keyslot, StoreId};
use crate::kernel::StoreKey;
use crate::sys::{self, fs};

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
        Ok(Store::with_files(
            path, dir, entries, &header.0, owner, None,
        ))
    }

    /// A handle on the store whose directories are open and whose header is `header`.
    fn with_files(
        path: std::path::PathBuf,
        dir: File,
        entries: File,
        header: &Header,
        owner: u32,
        wait: fs::Wait,
    ) -> Store {
        Store {
            key: StoreKey::new(&header.id.hex(), owner),
            id: header.id,
            version: header.version.into(),
            index: std::sync::Mutex::new(None),
            journal: Default::default(),
            entry_cache: entry_cache(&dir, owner),
            local: fs::is_local_filesystem(&dir),
            path,
            dir,
            entries,
            owner,
            wait,
            key_cache: KeyCache::default(),
        }
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
        let keys = crate::format::index::IndexKeys::new(&master, &header.id);
        let empty = crate::format::index::Index::default().encode(&keys, &crypto::random()?);
        write_atomic(
            &dir,
            &dir,
            crate::format::index::INDEX,
            &empty,
            &path.join(crate::format::index::INDEX),
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
        let store = Store::with_files(path, dir, entries, &header, owner, opts.lock_wait);
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
}
