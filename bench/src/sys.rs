//! The floor: raw `keyctl` calls with no allocation, and the filesystem type of a path. The
//! only `unsafe` in the bench.
#![allow(unsafe_code)]

use std::ffi::CStr;

const USER: &CStr = c"user";

fn keyctl(cmd: u32, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    // SAFETY: keyctl takes integers; where they are pointers, callers pass live NUL-terminated
    // strings or buffers of the stated length.
    unsafe { libc::syscall(libc::SYS_keyctl, cmd, a2, a3, a4, a5) }
}

/// KEYCTL_SEARCH in `@s` for a user key, then KEYCTL_READ into `buf`: what a lookup of one
/// key costs the kernel at the least. Returns the payload length (or -1).
pub fn search_read(description: &CStr, buf: &mut [u8]) -> i64 {
    let serial = keyctl(
        libc::KEYCTL_SEARCH,
        libc::KEY_SPEC_SESSION_KEYRING as i64 as u64,
        USER.as_ptr() as u64,
        description.as_ptr() as u64,
        0,
    );
    if serial < 0 {
        return -1;
    }
    keyctl(
        libc::KEYCTL_READ,
        serial as u64,
        buf.as_mut_ptr() as u64,
        buf.len() as u64,
        0,
    )
}

/// add_key("user", description, payload, @s): create or update in place (the floor of a write).
pub fn add_key(description: &CStr, payload: &[u8]) -> i64 {
    // SAFETY: type and description are NUL-terminated; payload points to payload.len() bytes.
    unsafe {
        libc::syscall(
            libc::SYS_add_key,
            USER.as_ptr(),
            description.as_ptr(),
            payload.as_ptr(),
            payload.len(),
            libc::KEY_SPEC_SESSION_KEYRING,
        )
    }
}

/// The filesystem type magic of the directory at `path` (to tell tmpfs from a disk).
pub fn is_tmpfs(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain data; zeroed is valid.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: c is NUL-terminated; s is a live out-pointer.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut s) };
    r == 0 && s.f_type == libc::TMPFS_MAGIC
}

/// syncfs(2) on the filesystem holding `f`: one flush after a bulk fill, so its writeback does
/// not land inside later measurements.
pub fn syncfs(f: &std::fs::File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is live for the duration of the call.
    unsafe { libc::syncfs(f.as_raw_fd()) };
}

/// The file-side floor of one `get`: openat (relative to the pinned entries directory) +
/// fstat + read + close of one entry file. Returns the bytes read (or -1).
pub fn read_file_at(dir: &std::fs::File, name: &CStr, buf: &mut [u8]) -> i64 {
    use std::os::fd::AsRawFd;
    // SAFETY: name is NUL-terminated; dir is a live directory descriptor.
    let fd = unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK,
        )
    };
    if fd < 0 {
        return -1;
    }
    // SAFETY: stat is plain data; zeroed is valid; fd is open.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st is a live out-pointer.
    let ok = unsafe { libc::fstat(fd, &mut st) } == 0 && (st.st_size as usize) <= buf.len();
    let n = if ok {
        // SAFETY: buf is live and at most st_size ≤ buf.len() bytes are written.
        unsafe { libc::read(fd, buf.as_mut_ptr().cast(), st.st_size as usize) as i64 }
    } else {
        -1
    };
    // SAFETY: fd is ours and closed once.
    unsafe { libc::close(fd) };
    n
}
