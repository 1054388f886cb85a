//! Acting as another user from a root process (the PAM module): the passwd entry of a user, and
//! a per-thread switch of the filesystem uid/gid and supplementary groups, which is what the
//! kernel checks file access and key permissions with (and charges new keys to), and of the real
//! uid/gid, by which the kernel finds the user keyring `@u`.
//!
//! Only the calling thread changes: setfsuid/setfsgid are per-thread system calls, and the
//! groups and real ids are set with the raw system calls, not glibc's wrappers (which change every
//! thread of the process). The effective uid stays 0, so this is not a sandbox against code in
//! this process; it makes the kernel refuse, for us, every file and key the user could not use.

use std::ffi::{CStr, CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// A user from the passwd database (getpwnam_r): never from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Look `name` up in the passwd database.
pub fn account(name: &str) -> Result<Account> {
    let cname = CString::new(name)
        .map_err(|_| Error::InvalidInput(format!("user name {name:?} contains NUL")))?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: all-zero bytes are a valid `struct passwd` (integers and null pointers).
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: cname is NUL-terminated; pw, buf (with its true length) and result are live
        // for the call; the strings in pw point into buf, which we read before it changes.
        let rc = unsafe {
            libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 {
            return Err(Error::Io {
                what: format!("look up user {name:?}"),
                source: std::io::Error::from_raw_os_error(rc),
            });
        }
        if result.is_null() {
            return Err(Error::InvalidInput(format!("no such user {name:?}")));
        }
        // SAFETY: getpwnam_r succeeded, so pw_dir and pw_name are NUL-terminated strings
        // inside buf.
        let (home, canonical) = unsafe { (CStr::from_ptr(pw.pw_dir), CStr::from_ptr(pw.pw_name)) };
        let home = PathBuf::from(OsStr::from_bytes(home.to_bytes()));
        // An empty or relative home would make every store path relative to wherever the login
        // program runs.
        if !home.is_absolute() {
            return Err(Error::InvalidInput(format!(
                "user {name:?} has no absolute home directory in the passwd database ({:?})",
                home
            )));
        }
        // The passwd database's own spelling (case-insensitive NSS backends answer for several
        // spellings of one user): one user, one store path for `%u`.
        let canonical = canonical
            .to_str()
            .map_err(|_| Error::InvalidInput(format!("user {name:?}: name is not UTF-8")))?;
        return Ok(Account {
            name: canonical.to_owned(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home,
        });
    }
}

fn io_error(what: &str, source: std::io::Error) -> Error {
    Error::Io {
        what: what.to_owned(),
        source,
    }
}

/// The supplementary groups of `account` (getgrouplist), including its primary group.
fn group_list(account: &Account) -> Result<Vec<libc::gid_t>> {
    let cname = CString::new(account.name.as_str())
        .map_err(|_| Error::InvalidInput("user name contains NUL".into()))?;
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut n = groups.len() as libc::c_int;
        // SAFETY: groups has room for n entries; getgrouplist writes at most n and stores the
        // number it needs in n.
        let rc =
            unsafe { libc::getgrouplist(cname.as_ptr(), account.gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return Ok(groups);
        }
        if groups.len() >= 1 << 16 {
            return Err(Error::InvalidInput(format!(
                "user {:?} is in too many groups",
                account.name
            )));
        }
        let want = (n.max(0) as usize).max(groups.len() * 2);
        groups.resize(want, 0);
    }
}

/// The calling thread's supplementary groups.
fn current_groups() -> Result<Vec<libc::gid_t>> {
    // SAFETY: getgroups(0, NULL) only returns the count.
    let n = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    if n < 0 {
        return Err(io_error("getgroups", std::io::Error::last_os_error()));
    }
    let mut groups: Vec<libc::gid_t> = vec![0; n as usize];
    // SAFETY: groups has room for n entries.
    let m = unsafe { libc::getgroups(n, groups.as_mut_ptr()) };
    if m < 0 {
        return Err(io_error("getgroups", std::io::Error::last_os_error()));
    }
    groups.truncate(m as usize);
    Ok(groups)
}

/// Set the calling thread's supplementary groups only (the raw system call, not glibc's
/// process-wide wrapper).
fn set_thread_groups(groups: &[libc::gid_t]) -> std::io::Result<()> {
    // SAFETY: the pointer and length describe a live slice of gid_t, as setgroups(2) expects.
    let rc = unsafe { libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn set_fsuid(uid: u32) -> u32 {
    // SAFETY: setfsuid has no memory preconditions; it returns the previous fsuid.
    unsafe { libc::setfsuid(uid) as u32 }
}

fn set_fsgid(gid: u32) -> u32 {
    // SAFETY: setfsgid has no memory preconditions; it returns the previous fsgid.
    unsafe { libc::setfsgid(gid) as u32 }
}

/// The calling thread's real uid and gid (getuid/getgid report the calling thread's).
fn real_ids() -> (u32, u32) {
    // SAFETY: getuid/getgid have no preconditions and cannot fail.
    unsafe { (libc::getuid(), libc::getgid()) }
}

/// Set the calling thread's real uid and gid only (raw system calls: glibc's wrappers change
/// every thread). Effective and saved ids stay; the fs ids follow the effective ones, so callers
/// set those afterwards.
fn set_thread_real_ids(uid: u32, gid: u32) -> std::io::Result<()> {
    let keep = u32::MAX as libc::c_long;
    // SAFETY: setresgid/setresuid take integers only; -1 leaves an id unchanged.
    let rc = unsafe {
        match libc::syscall(libc::SYS_setresgid, gid as libc::c_long, keep, keep) {
            0 => libc::syscall(libc::SYS_setresuid, uid as libc::c_long, keep, keep),
            rc => rc,
        }
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The calling thread's capability sets (capget, version 3: two 32-bit words per set).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Caps([[u32; 3]; 2]);

const CAP_VERSION_3: u32 = 0x2008_0522;

fn cap_header() -> [u32; 2] {
    // pid 0: the calling thread.
    [CAP_VERSION_3, 0]
}

fn caps_get() -> std::io::Result<Caps> {
    let mut header = cap_header();
    let mut data = Caps::default();
    // SAFETY: header is a __user_cap_header_struct (version, pid); data has room for the two
    // __user_cap_data_struct (effective, permitted, inheritable) of version 3.
    let rc = unsafe { libc::syscall(libc::SYS_capget, header.as_mut_ptr(), data.0.as_mut_ptr()) };
    if rc == 0 {
        Ok(data)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn caps_set(caps: &Caps) -> std::io::Result<()> {
    let mut header = cap_header();
    // SAFETY: as in caps_get; capset only reads data. It changes the calling thread only.
    let rc = unsafe { libc::syscall(libc::SYS_capset, header.as_mut_ptr(), caps.0.as_ptr()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// While alive, the calling thread acts as `account` for files and keys: its filesystem uid and
/// gid (what the kernel checks file access and key permissions with, and charges new keys to)
/// and its supplementary groups. The real and effective uids stay the caller's, so the user
/// cannot signal the process meanwhile (see [`AsRealUser`] for the few calls that need the real
/// ids). Dropping it restores everything, capabilities included. Not `Send`: it must be dropped
/// on the thread that made it.
#[derive(Debug)]
pub struct AsUser {
    fsuid: u32,
    fsgid: u32,
    groups: Vec<libc::gid_t>,
    caps: Option<Caps>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AsUser {
    /// Switch the calling thread to `account`'s credentials (requires CAP_SETUID/CAP_SETGID).
    pub fn enter(account: &Account) -> Result<AsUser> {
        let groups = current_groups()?;
        let caps = caps_get().ok();
        let target = group_list(account)?;
        set_thread_groups(&target)
            .map_err(|e| io_error(&format!("set the groups of {}", account.name), e))?;
        let guard = AsUser {
            fsuid: set_fsuid(u32::MAX),
            fsgid: set_fsgid(u32::MAX),
            groups,
            caps,
            _not_send: std::marker::PhantomData,
        };
        set_fsgid(account.gid);
        set_fsuid(account.uid);
        // setfsuid/setfsgid report no errors: read the values back.
        if set_fsgid(u32::MAX) != account.gid || set_fsuid(u32::MAX) != account.uid {
            return Err(Error::AccessDenied(format!(
                "cannot act as user {} (uid {}): not permitted",
                account.name, account.uid
            )));
        }
        Ok(guard)
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        set_fsuid(self.fsuid);
        set_fsgid(self.fsgid);
        // Restoring root's groups cannot fail for root; there is nothing better to do if it does.
        let _ = set_thread_groups(&self.groups);
        // Moving the fsuid back to 0 raised every file capability of the permitted set into the
        // effective set, also ones the program had dropped from it: put back exactly what it had.
        if let Some(caps) = &self.caps {
            let _ = caps_set(caps);
        }
    }
}

/// While alive (inside an [`AsUser`]), the calling thread's real uid and gid are also the user's:
/// the kernel finds the user keyring `@u` by the real uid, and a session keyring joined now is
/// owned by it. Held only around those keyring calls: while the real uid is the user's, the user
/// may signal this (root) process. The fs ids stay the user's; dropping it restores the real ids.
#[derive(Debug)]
pub struct AsRealUser {
    ruid: u32,
    rgid: u32,
    fsuid: u32,
    fsgid: u32,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AsRealUser {
    pub fn enter(account: &Account) -> Result<AsRealUser> {
        let (ruid, rgid) = real_ids();
        let guard = AsRealUser {
            ruid,
            rgid,
            fsuid: set_fsuid(u32::MAX),
            fsgid: set_fsgid(u32::MAX),
            _not_send: std::marker::PhantomData,
        };
        set_thread_real_ids(account.uid, account.gid)
            .map_err(|e| io_error(&format!("set the real ids of {}", account.name), e))?;
        // setresuid/setresgid reset the fs ids to the effective ones: put the user's back.
        set_fsgid(guard.fsgid);
        set_fsuid(guard.fsuid);
        Ok(guard)
    }
}

impl Drop for AsRealUser {
    fn drop(&mut self) {
        let _ = set_thread_real_ids(self.ruid, self.rgid);
        set_fsgid(self.fsgid);
        set_fsuid(self.fsuid);
    }
}
