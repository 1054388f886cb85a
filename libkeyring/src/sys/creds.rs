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
        // SAFETY: getpwnam_r succeeded, so pw_dir is a NUL-terminated string inside buf.
        let home = unsafe { CStr::from_ptr(pw.pw_dir) };
        return Ok(Account {
            name: name.to_owned(),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            home: PathBuf::from(OsStr::from_bytes(home.to_bytes())),
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

/// While alive, the calling thread acts as `account`: its filesystem uid and gid (what the kernel
/// checks file access and key permissions with, and charges new keys to), its supplementary
/// groups, and its real uid and gid (which decide what `@u` is, as pam_keyinit also switches
/// them for). The effective uid stays 0. Dropping it restores everything. Not `Send`: it must be
/// dropped on the thread that made it.
#[derive(Debug)]
pub struct AsUser {
    ruid: u32,
    rgid: u32,
    fsuid: u32,
    fsgid: u32,
    groups: Vec<libc::gid_t>,
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AsUser {
    /// Switch the calling thread to `account`'s credentials (requires CAP_SETUID/CAP_SETGID).
    pub fn enter(account: &Account) -> Result<AsUser> {
        let groups = current_groups()?;
        let target = group_list(account)?;
        set_thread_groups(&target)
            .map_err(|e| io_error(&format!("set the groups of {}", account.name), e))?;
        let (ruid, rgid) = real_ids();
        let guard = AsUser {
            ruid,
            rgid,
            fsuid: set_fsuid(u32::MAX),
            fsgid: set_fsgid(u32::MAX),
            groups,
            _not_send: std::marker::PhantomData,
        };
        set_thread_real_ids(account.uid, account.gid)
            .map_err(|e| io_error(&format!("set the real ids of {}", account.name), e))?;
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
        // The fs ids first: only moving the fsuid from nonzero back to 0 gives root its file
        // capabilities (CAP_CHOWN, CAP_DAC_OVERRIDE, ...) back in the effective set; setresuid
        // would silently reset the fsuid to 0 without restoring them.
        set_fsuid(self.fsuid);
        set_fsgid(self.fsgid);
        let _ = set_thread_real_ids(self.ruid, self.rgid);
        // setresuid/setresgid reset the fs ids to the effective ones: put the saved ones back.
        set_fsuid(self.fsuid);
        set_fsgid(self.fsgid);
        // Restoring root's groups cannot fail for root; there is nothing better to do if it does.
        let _ = set_thread_groups(&self.groups);
    }
}
