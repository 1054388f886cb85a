//! Every TPM operation runs in a forked child that reports over a pipe; the parent waits for
//! it until a deadline, then SIGKILLs and reaps it. A TPM (or a TCTI daemon, or a network
//! simulator) that never answers costs the caller the deadline, never a hung login.
//!
//! Safe to call from a multi-threaded process (a tokio daemon) and from a PAM module inside
//! another program: no signal handlers are installed, SIGCHLD's disposition is not assumed
//! (when the child was reaped by someone else, waitpid's ECHILD is fine: the pipe's result
//! counts), and the child leaves only through `_exit`.
//!
//! The pipe carries one message: tag (0 = ok, 1 = error), a u32 little-endian length, and the
//! payload (the result bytes, or an error tag and its message).
#![allow(unsafe_code)]

use std::ffi::CString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::{Account, Error, MAX_SEALED_LEN};

/// Held from creating the pipe until the parent closed its write end, so that no child forked
/// by another thread of ours inherits it (it would hold the pipe open past our child's exit).
static FORK: Mutex<()> = Mutex::new(());

/// Longest message a child may send (the key, a sealed object and framing).
const MAX_MSG: usize = 5 + 32 + MAX_SEALED_LEN + 64;

/// Who the child becomes before touching the TPM.
#[derive(Debug)]
pub(crate) enum Become {
    /// Stay as we are.
    Same,
    /// setgroups, setresgid, setresuid (we are root).
    User {
        uid: u32,
        gid: u32,
        groups: Vec<libc::gid_t>,
        name: String,
    },
}

impl Become {
    /// What dropping to `a` takes from here, decided (and refused) in the parent: the
    /// supplementary groups are looked up here (NSS is not for a forked child).
    pub(crate) fn plan(a: Option<&Account>) -> Result<Become, Error> {
        let Some(a) = a else { return Ok(Become::Same) };
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid != 0 {
            return if a.uid == euid && a.gid == egid {
                Ok(Become::Same)
            } else {
                Err(Error::InvalidInput(format!(
                    "cannot switch to user {} (uid {}) from uid {euid}: not root",
                    a.name, a.uid
                )))
            };
        }
        let name = CString::new(a.name.as_str())
            .map_err(|_| Error::InvalidInput("a user name with a NUL byte".into()))?;
        let mut groups: Vec<libc::gid_t> = vec![0; 64];
        loop {
            let mut n = groups.len() as libc::c_int;
            // SAFETY: `name` is a NUL-terminated string; `groups` has room for `n` entries and
            // getgrouplist writes at most `n`, setting `n` to the number it needs.
            let r =
                unsafe { libc::getgrouplist(name.as_ptr(), a.gid, groups.as_mut_ptr(), &mut n) };
            if r >= 0 {
                groups.truncate(n.max(0) as usize);
                break;
            }
            if n as usize <= groups.len() || groups.len() > 65_536 {
                // Unknown to NSS: the primary group alone.
                groups = vec![a.gid];
                break;
            }
            groups.resize(n as usize, 0);
        }
        Ok(Become::User {
            uid: a.uid,
            gid: a.gid,
            groups,
            name: a.name.clone(),
        })
    }

    /// In the child: become the user (async-signal-safe system calls only).
    fn apply(&self) -> Result<(), Error> {
        let Become::User {
            uid,
            gid,
            groups,
            name,
        } = self
        else {
            return Ok(());
        };
        let fail = |what: &str| {
            Error::InvalidInput(format!(
                "cannot switch to user {name} (uid {uid}): {what}: {}",
                std::io::Error::last_os_error()
            ))
        };
        // SAFETY: `groups` holds `groups.len()` gids.
        if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } != 0 {
            return Err(fail("setgroups"));
        }
        // SAFETY: plain system calls on integers.
        if unsafe { libc::setresgid(*gid, *gid, *gid) } != 0 {
            return Err(fail("setresgid"));
        }
        // SAFETY: as above.
        if unsafe { libc::setresuid(*uid, *uid, *uid) } != 0 {
            return Err(fail("setresuid"));
        }
        Ok(())
    }
}

/// Run `f` in a forked child as `who`, and return what it returned if that arrives within
/// `within`; otherwise kill the child and return [`Error::Timeout`].
pub(crate) fn run<F>(within: Duration, who: &Become, f: F) -> Result<Zeroizing<Vec<u8>>, Error>
where
    F: FnOnce() -> Result<Zeroizing<Vec<u8>>, Error>,
{
    let start = Instant::now();
    // The C library's log lines (tpm2-tss writes warnings to stderr) would land on the terminal
    // of whatever program loaded us; they are kept only when TSS2_LOG asks for them.
    let quiet = std::env::var_os("TSS2_LOG").is_none();
    let devnull = c"/dev/null";
    let guard = FORK.lock().unwrap_or_else(|e| e.into_inner());
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(Error::Tpm(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    let [rfd, wfd] = fds;
    // SAFETY: fork has no preconditions; the child below only runs `f`, writes the pipe and
    // _exits, never returning into the caller's code.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        let e = std::io::Error::last_os_error();
        // SAFETY: both descriptors are ours and open.
        unsafe {
            libc::close(rfd);
            libc::close(wfd);
        }
        return Err(Error::Tpm(format!("fork: {e}")));
    }
    if pid == 0 {
        child(rfd, wfd, quiet.then_some(devnull), who, f);
    }
    // SAFETY: the write end is ours; the child has its own copy.
    unsafe { libc::close(wfd) };
    drop(guard);
    let got = read_until(rfd, start, within);
    // SAFETY: the read end is ours and open.
    unsafe { libc::close(rfd) };
    match got {
        Read::Message(msg) => {
            reap(pid);
            decode(msg)
        }
        Read::Eof(partial) => {
            let status = reap(pid);
            drop(partial);
            Err(Error::Tpm(format!(
                "the TPM2 helper process ended without an answer ({status})"
            )))
        }
        Read::Failed(e) => {
            kill_and_reap(pid);
            Err(Error::Tpm(format!("reading the TPM2 helper's answer: {e}")))
        }
        Read::Timeout => {
            kill_and_reap(pid);
            Err(Error::Timeout(within))
        }
    }
}

/// The forked child: never returns.
fn child<F>(
    rfd: libc::c_int,
    wfd: libc::c_int,
    null: Option<&std::ffi::CStr>,
    who: &Become,
    f: F,
) -> !
where
    F: FnOnce() -> Result<Zeroizing<Vec<u8>>, Error>,
{
    // SAFETY: the read end is the parent's business; closing our copy is harmless.
    unsafe { libc::close(rfd) };
    if let Some(null) = null {
        // SAFETY: `null` is a NUL-terminated path; dup2 onto 2 replaces our stderr only.
        unsafe {
            let fd = libc::open(null.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd >= 0 {
                libc::dup2(fd, 2);
                libc::close(fd);
            }
        }
    }
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        who.apply()?;
        f()
    }))
    .unwrap_or_else(|_| Err(Error::Tpm("the TPM2 helper process panicked".into())));
    let mut msg = Zeroizing::new(Vec::with_capacity(MAX_MSG));
    match &result {
        Ok(payload) if payload.len() + 5 <= MAX_MSG => {
            msg.push(0);
            msg.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            msg.extend_from_slice(payload);
        }
        Ok(_) => encode_err(&mut msg, &Error::Tpm("answer too long".into())),
        Err(e) => encode_err(&mut msg, e),
    }
    drop(result);
    let mut off = 0;
    while off < msg.len() {
        // SAFETY: `msg[off..]` is readable for `msg.len() - off` bytes.
        let n = unsafe { libc::write(wfd, msg[off..].as_ptr().cast(), msg.len() - off) };
        if n > 0 {
            off += n as usize;
        } else if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else {
            break;
        }
    }
    drop(msg);
    // SAFETY: _exit ends this process without running the parent's atexit handlers or
    // destructors (they belong to the parent's copy of the program).
    unsafe { libc::_exit(0) }
}

fn encode_err(msg: &mut Vec<u8>, e: &Error) {
    let (tag, text) = e.encode();
    let mut text = text.into_bytes();
    text.truncate(1024);
    msg.push(1);
    msg.extend_from_slice(&((text.len() + 1) as u32).to_le_bytes());
    msg.push(tag);
    msg.extend_from_slice(&text);
}

fn decode(msg: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, Error> {
    match msg.first() {
        Some(0) => Ok(Zeroizing::new(msg[5..].to_vec())),
        Some(1) if msg.len() > 5 => Err(Error::decode(
            msg[5],
            String::from_utf8_lossy(&msg[6..]).into_owned(),
        )),
        _ => Err(Error::Tpm("the TPM2 helper's answer is garbled".into())),
    }
}

enum Read {
    Message(Zeroizing<Vec<u8>>),
    Eof(Zeroizing<Vec<u8>>),
    Failed(std::io::Error),
    Timeout,
}

/// The child's message from `fd`, complete once its length says so.
fn read_until(fd: libc::c_int, start: Instant, within: Duration) -> Read {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_MSG));
    let mut chunk = Zeroizing::new([0u8; 1024]);
    loop {
        if buf.len() >= 5 {
            let len = u32::from_le_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if len > MAX_MSG - 5 {
                return Read::Failed(std::io::Error::other("answer too long"));
            }
            if buf.len() >= 5 + len {
                buf.truncate(5 + len);
                return Read::Message(buf);
            }
        }
        let left = within.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Read::Timeout;
        }
        let ms = left.as_millis().clamp(1, i32::MAX as u128) as libc::c_int;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        if r < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Read::Failed(e);
        }
        if r == 0 {
            continue;
        }
        let room = (MAX_MSG - buf.len()).min(chunk.len());
        if room == 0 {
            return Read::Failed(std::io::Error::other("answer too long"));
        }
        // SAFETY: `chunk` is writable for `room` <= its length bytes.
        let n = unsafe { libc::read(fd, chunk.as_mut_ptr().cast(), room) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Read::Failed(e);
        }
        if n == 0 {
            return Read::Eof(buf);
        }
        buf.extend_from_slice(&chunk[..n as usize]);
    }
}

/// Wait for `pid` to end; its status as text ("reaped elsewhere" on ECHILD).
fn reap(pid: libc::pid_t) -> String {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out pointer; `pid` is our child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            return if libc::WIFSIGNALED(status) {
                format!("killed by signal {}", libc::WTERMSIG(status))
            } else {
                format!("exit status {}", libc::WEXITSTATUS(status))
            };
        }
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        // ECHILD: SIGCHLD is ignored in this process, or someone else reaped it.
        return "reaped elsewhere".into();
    }
}

fn kill_and_reap(pid: libc::pid_t) {
    // SAFETY: `pid` is our child, not yet reaped by us.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    reap(pid);
}
