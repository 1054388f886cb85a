//! The only place in libkeyring with `unsafe` system calls: the kernel keyring (`keyctl`,
//! `add_key`) and the `*at` file calls that pin a directory. Every errno is turned into an
//! [`Error`](crate::Error) here, on purpose; nothing above this module sees a raw errno.
#![allow(unsafe_code)]

pub mod creds;
pub mod fs;
pub mod keyctl;
pub mod process;

/// `secs` since the epoch as a UTC calendar time: [year, month, day, hour, minute, second]
/// (Howard Hinnant's civil_from_days).
pub fn utc(secs: i64) -> [i64; 6] {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    [year, month, day, rem / 3600, rem % 3600 / 60, rem % 60]
}

/// The session id (setsid) of the calling process.
pub fn sid() -> i32 {
    // SAFETY: getsid(0) has no preconditions; it returns the caller's session id.
    unsafe { libc::getsid(0) }
}

/// The effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The effective gid of this process.
pub fn egid() -> u32 {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// The filesystem uid of the calling thread (what the kernel checks file and key access with).
pub fn fsuid() -> u32 {
    // SAFETY: setfsuid(-1) is the documented way to query the fsuid; it changes nothing.
    unsafe { libc::setfsuid(u32::MAX) as u32 }
}

/// Keep the pages of `buf` out of swap (mlock), best effort: fails silently beyond
/// RLIMIT_MEMLOCK. Used for buffers that hold secrets; the pages stay locked until freed.
pub fn lock_memory(buf: &[u8]) -> bool {
    if buf.is_empty() {
        return true;
    }
    // SAFETY: the range is a live allocation of buf.len() bytes; mlock only pins its pages.
    unsafe { libc::mlock(buf.as_ptr().cast(), buf.len()) == 0 }
}
