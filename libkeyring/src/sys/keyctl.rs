//! Raw kernel keyring calls. linux-keyutils is used where it fits (describe, setperm, timeout,
//! invalidate, update, chown); it is bypassed where it has gaps: KEYCTL_READ into a fixed buffer
//! (we loop until the buffer is big enough, for any payload size), joining a session keyring,
//! and add/search/link on special keyring ids without an extra KEYCTL_GET_KEYRING_ID round trip.

use std::ffi::{CStr, CString};

use linux_keyutils::{Key, KeyError, KeySerialId};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// What we were doing, for the error text.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    Add,
    Search,
    Read,
    Update,
    Describe,
    SetPerm,
    SetTimeout,
    Chown,
    Invalidate,
    Link,
    Unlink,
    GetKeyring,
    JoinSession,
    Revoke,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add key",
            Op::Search => "search key",
            Op::Read => "read key",
            Op::Update => "update key",
            Op::Describe => "describe key",
            Op::SetPerm => "set key permissions",
            Op::SetTimeout => "set key timeout",
            Op::Chown => "change key owner",
            Op::Invalidate => "invalidate key",
            Op::Link => "link key",
            Op::Unlink => "unlink key",
            Op::GetKeyring => "get keyring",
            Op::JoinSession => "join session keyring",
            Op::Revoke => "revoke key",
        }
    }

    /// Does a missing/revoked/expired key here mean "the store is locked"? For operations on the
    /// key itself, yes; for operations that need a keyring to write into, it means that keyring
    /// is gone, which is a different problem.
    fn missing_means_locked(self) -> bool {
        !matches!(self, Op::Add | Op::Link | Op::GetKeyring | Op::JoinSession)
    }
}

/// Map one errno from a keyring call to the contract's error kinds (DESIGN.md "Errors").
pub fn map_errno(op: Op, errno: i32) -> Error {
    let name = op.name();
    match errno {
        libc::ENOKEY | libc::EKEYREVOKED | libc::EKEYEXPIRED if op.missing_means_locked() => {
            Error::Locked
        }
        libc::ENOKEY | libc::EKEYREVOKED | libc::EKEYEXPIRED => Error::Io {
            what: format!("{name}: the target keyring does not exist or was revoked"),
            source: std::io::Error::from_raw_os_error(errno),
        },
        libc::EACCES | libc::EPERM => Error::AccessDenied(format!(
            "{name}: the key belongs to another user or its permissions forbid this"
        )),
        libc::EDQUOT => Error::Quota(format!(
            "{name}: kernel key quota exceeded (see /proc/key-users and kernel.keys.maxkeys, maxbytes)"
        )),
        libc::E2BIG | libc::EINVAL => Error::InvalidInput(format!(
            "{name}: the kernel refused the arguments ({})",
            std::io::Error::from_raw_os_error(errno)
        )),
        libc::ENOSYS | libc::EOPNOTSUPP => Error::Io {
            what: format!("{name}: this kernel has no key management (CONFIG_KEYS)"),
            source: std::io::Error::from_raw_os_error(errno),
        },
        _ => Error::Io {
            what: name.to_string(),
            source: std::io::Error::from_raw_os_error(errno),
        },
    }
}

fn map_key_error(op: Op, e: KeyError) -> Error {
    let errno = match e {
        KeyError::AccessDenied => libc::EACCES,
        KeyError::PermissionDenied => libc::EPERM,
        KeyError::QuotaExceeded => libc::EDQUOT,
        KeyError::BadAddress => libc::EFAULT,
        KeyError::InvalidArguments | KeyError::InvalidDescription => libc::EINVAL,
        KeyError::KeyExpired => libc::EKEYEXPIRED,
        KeyError::KeyRevoked => libc::EKEYREVOKED,
        KeyError::KeyRejected => libc::EKEYREJECTED,
        KeyError::KeyringDoesNotExist | KeyError::KeyDoesNotExist => libc::ENOKEY,
        KeyError::OutOfMemory => libc::ENOMEM,
        KeyError::OperationNotSupported => libc::EOPNOTSUPP,
        KeyError::MissingFileOrDirectory => libc::ENOENT,
        KeyError::Unknown(n) => n,
        _ => libc::EIO,
    };
    map_errno(op, errno)
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

/// Issue `keyctl(cmd, a2, a3, a4, a5)`, returning its non-negative result or the errno.
fn keyctl(cmd: u32, a2: u64, a3: u64, a4: u64, a5: u64) -> std::result::Result<i64, i32> {
    // SAFETY: keyctl takes integer arguments; where they are pointers the callers below pass
    // pointers to live, correctly sized buffers or NUL-terminated strings.
    let r = unsafe { libc::syscall(libc::SYS_keyctl, cmd, a2, a3, a4, a5) };
    if r < 0 {
        Err(last_errno())
    } else {
        Ok(r)
    }
}

const USER: &CStr = c"user";
const KEYRING: &CStr = c"keyring";

/// The two key types we create: `user` keys (payloads) and `keyring`s (lists of keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    User,
    Keyring,
}

impl KeyType {
    fn name(self) -> &'static CStr {
        match self {
            KeyType::User => USER,
            KeyType::Keyring => KEYRING,
        }
    }
}

fn c_string(op: Op, s: &str) -> Result<CString> {
    CString::new(s)
        .map_err(|_| Error::InvalidInput(format!("{}: description contains a NUL byte", op.name())))
}

/// `add_key("user", description, payload, keyring)`: create (or update in place) a user key.
pub fn add_user_key(description: &str, payload: &[u8], keyring: i32) -> Result<i32> {
    add_key(KeyType::User, description, payload, keyring)
}

/// `add_key(type, description, payload, keyring)` (a keyring takes an empty payload).
pub fn add_key(kind: KeyType, description: &str, payload: &[u8], keyring: i32) -> Result<i32> {
    let desc = c_string(Op::Add, description)?;
    let (ptr, len) = if payload.is_empty() {
        (std::ptr::null(), 0)
    } else {
        (payload.as_ptr(), payload.len())
    };
    // SAFETY: type and description are NUL-terminated; payload points to payload.len() bytes.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            kind.name().as_ptr(),
            desc.as_ptr(),
            ptr,
            len,
            keyring,
        )
    };
    if r < 0 {
        return Err(map_errno(Op::Add, last_errno()));
    }
    Ok(r as i32)
}

/// KEYCTL_SEARCH for a `user` key with this description under `keyring` (recursively).
pub fn search_user_key(keyring: i32, description: &str) -> Result<i32> {
    search(keyring, KeyType::User, description)
}

/// KEYCTL_SEARCH for a key of `kind` with this description under `keyring` (recursively).
pub fn search(keyring: i32, kind: KeyType, description: &str) -> Result<i32> {
    let desc = c_string(Op::Search, description)?;
    keyctl(
        libc::KEYCTL_SEARCH,
        keyring as i64 as u64,
        kind.name().as_ptr() as u64,
        desc.as_ptr() as u64,
        0,
    )
    .map(|s| s as i32)
    .map_err(|e| map_errno(Op::Search, e))
}

/// KEYCTL_READ the whole payload, whatever its size: the kernel returns the payload length,
/// and if that is more than the buffer we grow the buffer and read again (the key may have been
/// updated in between, so loop). Every discarded buffer is zeroized.
pub fn read(serial: i32) -> Result<Zeroizing<Vec<u8>>> {
    let mut buf = Zeroizing::new(vec![0u8; 64]);
    loop {
        super::lock_memory(&buf);
        let cap = buf.len();
        let n = keyctl(
            libc::KEYCTL_READ,
            serial as i64 as u64,
            buf.as_mut_ptr() as u64,
            cap as u64,
            0,
        )
        .map_err(|e| map_errno(Op::Read, e))? as usize;
        if n <= cap {
            buf.truncate(n);
            return Ok(buf);
        }
        // Zeroizing drops (and wipes) the old buffer when replaced.
        buf = Zeroizing::new(vec![0u8; n]);
    }
}

/// One KEYCTL_READ into `buf` (the caller's, e.g. a wiped stack buffer): returns the payload's
/// full length, which may exceed `buf.len()` (then only a prefix was copied). The hot path of
/// every store operation: no allocation, no extra call.
pub fn read_into(serial: i32, buf: &mut [u8]) -> Result<usize> {
    keyctl(
        libc::KEYCTL_READ,
        serial as i64 as u64,
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
        0,
    )
    .map(|n| n as usize)
    .map_err(|e| map_errno(Op::Read, e))
}

fn key(serial: i32) -> Key {
    Key::from_id(KeySerialId::new(serial))
}

/// KEYCTL_UPDATE: replace the payload (needs write permission).
pub fn update(serial: i32, payload: &[u8]) -> Result<()> {
    key(serial)
        .update(&payload)
        .map_err(|e| map_key_error(Op::Update, e))
}

/// KEYCTL_DESCRIBE: (type, uid, gid, perm, description).
pub fn describe(serial: i32) -> Result<(String, u32, u32, u32, String)> {
    let m = key(serial)
        .metadata()
        .map_err(|e| map_key_error(Op::Describe, e))?;
    Ok((
        format!("{:?}", m.get_type()).to_lowercase(),
        m.get_uid(),
        m.get_gid(),
        m.get_perms().bits(),
        m.get_description().to_string(),
    ))
}

/// KEYCTL_SETPERM (needs setattr permission).
pub fn set_perm(serial: i32, perm: u32) -> Result<()> {
    key(serial)
        .set_perms(linux_keyutils::KeyPermissions::from_u32(perm))
        .map_err(|e| map_key_error(Op::SetPerm, e))
}

/// KEYCTL_SET_TIMEOUT in seconds; 0 clears the timeout (needs setattr permission).
pub fn set_timeout(serial: i32, seconds: u32) -> Result<()> {
    key(serial)
        .set_timeout(seconds as usize)
        .map_err(|e| map_key_error(Op::SetTimeout, e))
}

/// KEYCTL_CHOWN (root only, or to one's own gid).
pub fn chown(serial: i32, uid: Option<u32>, gid: Option<u32>) -> Result<()> {
    key(serial)
        .chown(uid, gid)
        .map_err(|e| map_key_error(Op::Chown, e))
}

/// KEYCTL_INVALIDATE: the key becomes unusable everywhere it is linked, at once.
pub fn invalidate(serial: i32) -> Result<()> {
    key(serial)
        .invalidate()
        .map_err(|e| map_key_error(Op::Invalidate, e))
}

/// KEYCTL_LINK `serial` into `keyring`.
pub fn link(serial: i32, keyring: i32) -> Result<()> {
    keyctl(
        libc::KEYCTL_LINK,
        serial as i64 as u64,
        keyring as i64 as u64,
        0,
        0,
    )
    .map(drop)
    .map_err(|e| map_errno(Op::Link, e))
}

/// KEYCTL_UNLINK `serial` from `keyring`.
pub fn unlink(serial: i32, keyring: i32) -> Result<()> {
    keyctl(
        libc::KEYCTL_UNLINK,
        serial as i64 as u64,
        keyring as i64 as u64,
        0,
        0,
    )
    .map(drop)
    .map_err(|e| map_errno(Op::Unlink, e))
}

/// KEYCTL_GET_KEYRING_ID: resolve a special keyring id to a serial, optionally creating it.
pub fn keyring_id(special: i32, create: bool) -> Result<i32> {
    keyctl(
        libc::KEYCTL_GET_KEYRING_ID,
        special as i64 as u64,
        u64::from(create),
        0,
        0,
    )
    .map(|s| s as i32)
    .map_err(|e| map_errno(Op::GetKeyring, e))
}

/// KEYCTL_GET_PERSISTENT: the calling user's persistent keyring, linked into `link_to`.
pub fn persistent_keyring(link_to: i32) -> Result<i32> {
    persistent_keyring_of(u32::MAX, link_to)
}

/// KEYCTL_GET_PERSISTENT for `uid` (u32::MAX: the caller's; another uid needs CAP_SETUID unless
/// it is the caller's effective uid), linked into `link_to`.
pub fn persistent_keyring_of(uid: u32, link_to: i32) -> Result<i32> {
    keyctl(
        libc::KEYCTL_GET_PERSISTENT,
        uid as u64,
        link_to as i64 as u64,
        0,
        0,
    )
    .map(|s| s as i32)
    .map_err(|e| map_errno(Op::GetKeyring, e))
}

/// KEYCTL_JOIN_SESSION_KEYRING: give the calling thread a new (anonymous if `name` is None)
/// session keyring; children forked afterwards inherit it.
pub fn join_session(name: Option<&str>) -> Result<i32> {
    let name = name.map(|n| c_string(Op::JoinSession, n)).transpose()?;
    let ptr = name.as_ref().map_or(std::ptr::null(), |n| n.as_ptr());
    keyctl(libc::KEYCTL_JOIN_SESSION_KEYRING, ptr as u64, 0, 0, 0)
        .map(|s| s as i32)
        .map_err(|e| map_errno(Op::JoinSession, e))
}

/// KEYCTL_REVOKE: the key (or keyring) answers EKEYREVOKED to everyone from now on.
pub fn revoke(serial: i32) -> Result<()> {
    keyctl(libc::KEYCTL_REVOKE, serial as i64 as u64, 0, 0, 0)
        .map(drop)
        .map_err(|e| map_errno(Op::Revoke, e))
}
