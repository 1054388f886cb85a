//! File calls relative to a pinned directory descriptor (`openat` family) with O_NOFOLLOW, so
//! that once the store directory is open, nothing swapped into the path later can redirect us.
//! Errors stay `std::io::Error` here; the store layer names the file and classifies them.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

fn cstr(name: &Path) -> io::Result<CString> {
    CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn dirfd(dir: Option<&File>) -> libc::c_int {
    dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd())
}

fn openat(
    dir: Option<&File>,
    name: &Path,
    flags: libc::c_int,
    mode: libc::mode_t,
) -> io::Result<File> {
    let c = cstr(name)?;
    let flags = flags | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY;
    loop {
        // SAFETY: c is a NUL-terminated path; the returned fd is owned by the File below.
        let r = unsafe { libc::openat(dirfd(dir), c.as_ptr(), flags, mode as libc::c_uint) };
        match check(r) {
            // SAFETY: r is a freshly opened descriptor that nothing else owns.
            Ok(fd) => return Ok(unsafe { File::from_raw_fd(fd) }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Open a directory without following a symlink in its last component.
pub fn open_dir(dir: Option<&File>, name: &Path) -> io::Result<File> {
    openat(dir, name, libc::O_RDONLY | libc::O_DIRECTORY, 0)
}

/// Open a file for reading without following a symlink and without blocking on a FIFO.
pub fn open_read(dir: Option<&File>, name: &Path) -> io::Result<File> {
    openat(dir, name, libc::O_RDONLY | libc::O_NONBLOCK, 0)
}

/// Open an existing file for reading and writing in place, without following a symlink or
/// blocking on a FIFO.
pub fn open_rw(dir: &File, name: &Path) -> io::Result<File> {
    openat(Some(dir), name, libc::O_RDWR | libc::O_NONBLOCK, 0)
}

/// Open an existing file for reading and appending, without following a symlink or blocking on a FIFO.
pub fn open_append(dir: &File, name: &Path) -> io::Result<File> {
    openat(
        Some(dir),
        name,
        libc::O_RDWR | libc::O_APPEND | libc::O_NONBLOCK,
        0,
    )
}

/// Create a new file exclusively (never an existing one, never through a symlink).
pub fn create_new(dir: &File, name: &Path, mode: u32) -> io::Result<File> {
    openat(
        Some(dir),
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL,
        mode as libc::mode_t,
    )
}

/// mkdirat with a mode (the umask still applies; callers fchmod if they need exact bits).
pub fn mkdir(dir: Option<&File>, name: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c is a NUL-terminated path.
    check(unsafe { libc::mkdirat(dirfd(dir), c.as_ptr(), mode as libc::mode_t) }).map(drop)
}

/// renameat within one directory: atomically replaces `to`.
pub fn rename(dir: &File, from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both are NUL-terminated paths relative to a live directory descriptor.
    check(unsafe { libc::renameat(dir.as_raw_fd(), f.as_ptr(), dir.as_raw_fd(), t.as_ptr()) })
        .map(drop)
}

/// renameat from one pinned directory into another (same filesystem): atomically replaces `to`.
pub fn rename_into(from_dir: &File, from: &Path, to_dir: &File, to: &Path) -> io::Result<()> {
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both are NUL-terminated paths relative to live directory descriptors.
    check(unsafe {
        libc::renameat(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
        )
    })
    .map(drop)
}

/// unlinkat a file.
pub fn unlink(dir: &File, name: &Path) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: c is a NUL-terminated path relative to a live directory descriptor.
    check(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
}

/// What the store checks of a file: type, permissions, owner, links, size and identity, and
/// never its times.
///
/// Asking for a file's ctime or mtime (as `File::metadata`, a full `statx`, does) tells a
/// multigrain-timestamp filesystem (ext4, xfs, btrfs, tmpfs since Linux 6.13) that someone
/// looks: its next write then takes a fine-grained timestamp, which dirties the inode, and the
/// `fdatasync` after it writes the inode too. A journal record written after a full stat of
/// its file cost ~45 µs more per write here (docs/PERFORMANCE.md, "set").
#[derive(Clone, Copy, Debug)]
pub struct Stat(libc::statx);

impl Stat {
    pub fn is_file(&self) -> bool {
        u32::from(self.0.stx_mode) & libc::S_IFMT == libc::S_IFREG
    }
    pub fn is_dir(&self) -> bool {
        u32::from(self.0.stx_mode) & libc::S_IFMT == libc::S_IFDIR
    }
    /// Type and permission bits, as `st_mode`.
    pub fn mode(&self) -> u32 {
        u32::from(self.0.stx_mode)
    }
    pub fn uid(&self) -> u32 {
        self.0.stx_uid
    }
    pub fn nlink(&self) -> u64 {
        u64::from(self.0.stx_nlink)
    }
    /// Size in bytes.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u64 {
        self.0.stx_size
    }
    pub fn dev(&self) -> u64 {
        libc::makedev(self.0.stx_dev_major, self.0.stx_dev_minor)
    }
    pub fn ino(&self) -> u64 {
        self.0.stx_ino
    }
}

/// `statx` of an open file asking for no times (see [`Stat`]).
pub fn stat(file: &File) -> io::Result<Stat> {
    statx(file.as_raw_fd(), c"", libc::AT_EMPTY_PATH)
}

/// `statx` of `name` in `dir` without following a symlink, asking for no times (see [`Stat`]).
pub fn stat_at(dir: &File, name: &Path) -> io::Result<Stat> {
    statx(dir.as_raw_fd(), &cstr(name)?, libc::AT_SYMLINK_NOFOLLOW)
}

fn statx(fd: libc::c_int, name: &std::ffi::CStr, flags: libc::c_int) -> io::Result<Stat> {
    let mask = libc::STATX_TYPE
        | libc::STATX_MODE
        | libc::STATX_NLINK
        | libc::STATX_UID
        | libc::STATX_INO
        | libc::STATX_SIZE;
    // SAFETY: all-zero bytes are a valid statx (plain integers).
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is live, the path is NUL-terminated and `buf` is writable.
    check(unsafe { libc::statx(fd, name.as_ptr(), flags, mask, &mut buf) })?;
    let want = libc::STATX_TYPE | libc::STATX_MODE | libc::STATX_UID | libc::STATX_SIZE;
    if buf.stx_mask & want != want {
        return Err(io::Error::other(
            "the filesystem did not report type, mode, owner and size",
        ));
    }
    Ok(Stat(buf))
}

/// fchmod to exact permission bits.
pub fn fchmod(file: &File, mode: u32) -> io::Result<()> {
    // SAFETY: the descriptor is live for the duration of the call.
    check(unsafe { libc::fchmod(file.as_raw_fd(), mode as libc::mode_t) }).map(drop)
}

/// An advisory lock held until dropped: flock on a descriptor of its own for the directory.
///
/// flock belongs to an open file description, so every lock opens the directory afresh: two
/// threads of one process (sharing one `Store`) then exclude each other as two processes do, and
/// one thread's unlock never releases another's lock. Closing the descriptor releases the lock.
#[derive(Debug)]
pub struct Flock {
    _own: File,
}

/// How long to wait for the lock: `None` waits as long as it takes; `Some(d)` gives up after `d`
/// with `ErrorKind::WouldBlock` (`Some(Duration::ZERO)`: only if free right now).
pub type Wait = Option<std::time::Duration>;

/// Take an exclusive flock on the directory `dir`, waiting as `wait` says.
pub fn flock_exclusive(dir: &File, wait: Wait) -> io::Result<Flock> {
    let own = open_dir(Some(dir), Path::new("."))?;
    let deadline = wait.map(|d| std::time::Instant::now() + d);
    let mut pause = std::time::Duration::from_micros(200);
    loop {
        let op = if deadline.is_some() {
            libc::LOCK_EX | libc::LOCK_NB
        } else {
            libc::LOCK_EX
        };
        // SAFETY: the descriptor is live; flock has no memory arguments.
        match check(unsafe { libc::flock(own.as_raw_fd(), op) }) {
            Ok(_) => return Ok(Flock { _own: own }),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let Some(deadline) = deadline else {
                    return Err(e);
                };
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The names in a directory (without "." and ".."), read through the pinned descriptor.
pub fn list(dir: &File) -> io::Result<Vec<OsString>> {
    // A descriptor of its own (not a dup, which would share the file offset with `dir` and with
    // every other thread listing through it at the same time).
    let fd = std::os::fd::IntoRawFd::into_raw_fd(open_dir(Some(dir), Path::new("."))?);
    // SAFETY: fd is a directory descriptor we own; fdopendir takes ownership on success.
    let stream = unsafe { libc::fdopendir(fd) };
    if stream.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so fd is still ours to close.
        unsafe { libc::close(fd) };
        return Err(e);
    }
    let mut names = Vec::new();
    let result = loop {
        // SAFETY: errno is thread-local; reset it to tell end-of-directory from an error.
        unsafe { *libc::__errno_location() = 0 };
        // SAFETY: stream is a valid DIR* until closedir below.
        let ent = unsafe { libc::readdir64(stream) };
        if ent.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: d_name of a returned dirent is a NUL-terminated string valid until the next
        // readdir call; we copy it out at once.
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) };
        let bytes = name.to_bytes();
        if bytes != b"." && bytes != b".." {
            names.push(OsString::from_vec(bytes.to_vec()));
        }
    };
    // SAFETY: stream is valid and closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| names)
}

/// syncfs(2): write out everything dirty on `file`'s filesystem and wait; errors of that
/// writeback are reported (Linux ≥ 5.8).
pub fn sync_filesystem(file: &File) -> io::Result<()> {
    // SAFETY: a live descriptor.
    check(unsafe { libc::syncfs(file.as_raw_fd()) }).map(drop)
}

/// Bytes available to an unprivileged writer on the filesystem of `file` (None: unknown).
pub fn free_bytes(file: &File) -> Option<u64> {
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: fstatvfs fills the buffer on success; we read it only then.
    let r = unsafe { libc::fstatvfs(file.as_raw_fd(), st.as_mut_ptr()) };
    if r != 0 {
        return None;
    }
    // SAFETY: initialised by the successful call above.
    let st = unsafe { st.assume_init() };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Is the filesystem of `file` a local one, where every writer of the store runs on this
/// machine (so a shared mapping sees every write)? NFS, CIFS/SMB, FUSE (sshfs) and 9p are not:
/// two workstations may write one store there, and nothing may rely on local state.
pub fn is_local_filesystem(file: &File) -> bool {
    // SAFETY: statfs is plain data; all-zero is a valid value.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is live and `s` is a valid out-pointer.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &mut s) } != 0 {
        return false;
    }
    const LOCAL: [i64; 7] = [
        0xEF53,      // ext2/3/4
        0x5846_5342, // xfs
        0x9123_683E, // btrfs
        0x0102_1994, // tmpfs
        0xF2F5_2010, // f2fs
        0x2FC1_2FC1, // zfs
        0x794C_7630, // overlayfs
    ];
    LOCAL.contains(&(s.f_type as i64))
}

/// A shared mapping of the first 16 bytes of a file: two counters (the store's generation and
/// its files generation, docs/FORMAT.md "generation") that writers in any process change
/// (through a writable mapping, or [`write_counters`]), seen here without a system call.
#[derive(Debug)]
pub struct Counter {
    ptr: std::ptr::NonNull<[std::sync::atomic::AtomicU64; 2]>,
    writable: bool,
    /// The file had both counters when mapped (else the second reads as the first).
    wide: bool,
}

// SAFETY: the mapping is read through an AtomicU64 only; it lives until Drop unmaps it.
unsafe impl Send for Counter {}
// SAFETY: as above: shared reads of an atomic.
unsafe impl Sync for Counter {}

impl Counter {
    /// Map `file` (at least 8 bytes long) shared: writable if `file` was opened for writing
    /// (then [`Counter::bump`] works), else read-only.
    pub fn map(file: &File, writable: bool) -> io::Result<Counter> {
        let wide = stat(file)?.len() >= 16;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping of 8 bytes of a live descriptor; the kernel picks the
        // (page-aligned, so AtomicU64-aligned) address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                16,
                prot,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        std::ptr::NonNull::new(p.cast())
            .map(|ptr| Counter {
                ptr,
                writable: writable && wide,
                wide,
            })
            .ok_or_else(|| io::Error::other("mmap returned NULL"))
    }

    /// Add one to the generation, and to the files generation if `files`, through a writable
    /// mapping (no system call); the new generation. None: read-only. Callers hold the store's
    /// writer lock, so bumps never race each other. The files generation moves first: a reader
    /// that sees the new generation sees it too.
    pub fn bump(&self, files: bool) -> Option<u64> {
        if !self.writable {
            return None;
        }
        use std::sync::atomic::Ordering::{Acquire, Release};
        // SAFETY: ptr is a live, aligned, writable 16-byte mapping of a 16-byte file (`map`).
        let [g, f] = unsafe { self.ptr.as_ref() };
        if files {
            f.store(
                (u64::from_le(f.load(Acquire)).wrapping_add(1)).to_le(),
                Release,
            );
        }
        let next = u64::from_le(g.load(Acquire)).wrapping_add(1);
        g.store(next.to_le(), Release);
        Some(next)
    }

    /// The files generation: moves only when entry files change (not for journal records).
    pub fn files(&self) -> u64 {
        if !self.wide {
            return self.get();
        }
        // SAFETY: ptr is a live, aligned 16-byte mapping of a file of at least 16 bytes.
        u64::from_le(unsafe { self.ptr.as_ref() }[1].load(std::sync::atomic::Ordering::Acquire))
    }

    /// The counter's current value (little-endian on disk; an acquire load).
    pub fn get(&self) -> u64 {
        // SAFETY: ptr is a live, aligned mapping of at least 8 bytes of the file (see `map`).
        u64::from_le(unsafe { self.ptr.as_ref() }[0].load(std::sync::atomic::Ordering::Acquire))
    }
}

impl Drop for Counter {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `map`, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), 16) };
    }
}

/// Set the two counters in `file` (pwrite of 16 bytes at offset 0: mappings of the file in
/// every process see them at once, through the page cache).
pub fn write_counters(file: &File, generation: u64, files: u64) -> io::Result<()> {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&generation.to_le_bytes());
    bytes[8..].copy_from_slice(&files.to_le_bytes());
    // SAFETY: 16 readable bytes at a live descriptor.
    let n = unsafe { libc::pwrite(file.as_raw_fd(), bytes.as_ptr().cast(), 16, 0) };
    match n {
        16 => Ok(()),
        n if n < 0 => Err(io::Error::last_os_error()),
        _ => Err(io::Error::other("short write of the generation counters")),
    }
}

/// Open a file for reading and writing without following a symlink, creating it (mode) if
/// missing.
pub fn open_rw_create(dir: &File, name: &Path, mode: u32) -> io::Result<File> {
    openat(
        Some(dir),
        name,
        libc::O_RDWR | libc::O_CREAT,
        mode as libc::mode_t,
    )
}
