//! Passwords, recovery keys and secrets read from stdin or asked on the tty, in wiped
//! (zeroize-on-drop, mlocked where the limit allows) buffers.

use std::io::{IsTerminal, Read};

use libkeyring::Error;
use zeroize::Zeroizing;

use crate::{fail, Failure};

fn strip_newline(mut v: Vec<u8>) -> Vec<u8> {
    if v.last() == Some(&b'\n') {
        v.pop();
        if v.last() == Some(&b'\r') {
            v.pop();
        }
    }
    v
}

/// Read stdin up to `cap` bytes into a zeroize-on-drop buffer, mlocked when the limit allows.
/// Growing copies into a new buffer and wipes the old one, so no copy of a secret is left in
/// freed memory (plain `read_to_end` would leave one per reallocation). `None` if over `cap`.
fn read_stdin(cap: usize) -> Result<Option<Zeroizing<Vec<u8>>>, Failure> {
    let mut stdin = std::io::stdin().lock();
    let mut buf = Zeroizing::new(vec![0u8; 4096]);
    let mut len = 0;
    loop {
        if len == buf.len() {
            if len > cap {
                return Ok(None);
            }
            let mut bigger = Zeroizing::new(vec![0u8; buf.len() * 2]);
            bigger[..len].copy_from_slice(&buf[..len]);
            buf = bigger;
        }
        libkeyring::sys::lock_memory(&buf);
        match stdin.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(fail(format!("read from stdin: {e}"))),
        }
    }
    if len > cap {
        return Ok(None);
    }
    buf.truncate(len);
    Ok(Some(buf))
}

/// Read exactly `n` lines (passwords) from stdin; the last may lack its newline.
pub(crate) fn read_stdin_lines(n: usize) -> Result<Vec<Zeroizing<Vec<u8>>>, Failure> {
    let all =
        read_stdin(64 * 1024)?.ok_or_else(|| fail("more than 64 KiB of passwords on stdin"))?;
    let lines: Vec<Zeroizing<Vec<u8>>> = all
        .split_inclusive(|&b| b == b'\n')
        .take(n)
        .map(|l| Zeroizing::new(strip_newline(l.to_vec())))
        .collect();
    if lines.len() < n {
        return Err(fail(format!(
            "expected {n} password line(s) on stdin, got {}",
            lines.len()
        )));
    }
    Ok(lines)
}

/// A password, wiped on drop.
pub(crate) type Password = Zeroizing<Vec<u8>>;

/// The store password: one line of stdin, or asked on the tty.
pub(crate) fn store_password(password_stdin: bool) -> Result<Password, Failure> {
    one_secret(password_stdin, "Store password: ")
}

/// A recovery key typed by the user: one line of stdin, or asked on the tty (no echo).
pub(crate) fn read_recovery_key(
    from_stdin: bool,
) -> Result<libkeyring::recovery::RecoveryKey, Failure> {
    let text = one_secret(from_stdin, "Recovery key: ")?;
    Ok(libkeyring::recovery::RecoveryKey::parse(&text)?)
}

/// One secret: a line of stdin, or asked on the tty without echo.
pub(crate) fn one_secret(from_stdin: bool, text: &str) -> Result<Password, Failure> {
    if from_stdin {
        Ok(read_stdin_lines(1)?.remove(0))
    } else {
        prompt(text)
    }
}

/// A password that opens the store and the one to set: two lines of stdin, or `ask` on the tty.
/// The new one may not be empty.
pub(crate) fn old_and_new(
    password_stdin: bool,
    ask: impl FnOnce() -> Result<(Password, Password), Failure>,
) -> Result<(Password, Password), Failure> {
    let (old, new) = if password_stdin {
        let mut lines = read_stdin_lines(2)?;
        let new = lines.remove(1);
        (lines.remove(0), new)
    } else {
        ask()?
    };
    if new.is_empty() {
        return Err(fail("refusing an empty password"));
    }
    Ok((old, new))
}

pub(crate) fn prompt(text: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(fail(
            "no terminal to ask for the password: use --password-stdin",
        ));
    }
    rpassword::prompt_password(text)
        .map(|s| Zeroizing::new(s.into_bytes()))
        .map_err(|e| fail(format!("read password: {e}")))
}

pub(crate) fn prompt_new(text: &str) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let a = prompt(text)?;
    let b = prompt("Repeat the password: ")?;
    if a != b {
        return Err(fail("the passwords do not match"));
    }
    Ok(a)
}

/// The secret for `set`: from stdin (a prompt without echo on a tty).
pub(crate) fn read_secret(raw: bool) -> Result<Zeroizing<Vec<u8>>, Failure> {
    if std::io::stdin().is_terminal() {
        return prompt("Secret: ");
    }
    let cap = libkeyring::format::MAX_SECRET_LEN;
    // One byte of slack for the newline that is stripped.
    let mut buf = read_stdin(cap + 2)?
        .filter(|b| b.len() <= cap + 2)
        .ok_or_else(|| {
            Failure::from(Error::InvalidInput(format!(
                "secret longer than {cap} bytes"
            )))
        })?;
    if !raw && buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > cap {
        return Err(Error::InvalidInput(format!("secret longer than {cap} bytes")).into());
    }
    Ok(buf)
}
