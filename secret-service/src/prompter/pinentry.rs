//! pinentry: the dialog of gpg-agent, spoken to over its Assuan pipe (`SETDESC`, `SETERROR`,
//! `GETPIN`). `pinentry` is Debian's alternative (pinentry-gnome3, -qt, -gtk2, -curses, -tty);
//! on a terminal the tty ones are preferred, told the terminal with `--ttyname`/`--ttytype`.
//!
//! Written here rather than taken from the `pinentry` crate: that crate starts the program
//! with the daemon's own environment and has no way to pass `--ttyname` or the caller's
//! display, and the client side needed is this file. Bounded: Assuan lines are at most 1000
//! bytes, a PIN at most [`MAX_PIN`]. Never sent: `OPTION allow-external-password-cache` and
//! `SETKEYINFO`, so pinentry-gnome3 never offers to keep the password in a keyring (which
//! would be this store).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;

use zeroize::Zeroizing;

use super::{Cancel, Dialog, Reply, Texts};

/// The longest line pinentry may send (Assuan's limit is 1000 bytes plus CR LF).
const MAX_LINE: usize = 1002;
/// The longest PIN accepted.
pub(crate) const MAX_PIN: usize = 4096;
/// gpg-error codes (the low 16 bits of an `ERR`): cancelled by the user, timed out.
const GPG_ERR_CANCELED: u32 = 99;
const GPG_ERR_TIMEOUT: u32 = 62;

/// Where the dialog goes.
pub(crate) enum Target<'a> {
    /// A display: the variables to give the program (DISPLAY, WAYLAND_DISPLAY, XAUTHORITY…).
    Display(&'a HashMap<String, String>),
    /// A terminal and its type.
    Terminal(&'a Path, &'a str),
}

pub(crate) struct Pinentry {
    program: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    cancel: Arc<Cancel>,
}

impl std::fmt::Debug for Pinentry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pinentry({})", self.program.display())
    }
}

/// The first of `names` found in PATH.
fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    names.iter().find_map(|n| {
        std::env::split_paths(&path)
            .map(|d| d.join(n))
            .find(|p| p.is_file())
    })
}

/// The program for `target`: `$KEYRINGRS_PINENTRY` if set, else on a terminal pinentry-tty or
/// pinentry-curses, else `pinentry`.
fn program(target: &Target<'_>) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("KEYRINGRS_PINENTRY").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    match target {
        Target::Terminal(..) => find(&["pinentry-tty", "pinentry-curses", "pinentry"]),
        Target::Display(_) => find(&["pinentry"]),
    }
}

/// `text` escaped for an Assuan command argument.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '%' => out.push_str("%25"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            c => out.push(c),
        }
    }
    out
}

/// Append the data of a `D` line, %-decoded, to `out` (within MAX_PIN).
fn decode_into(data: &[u8], out: &mut Zeroizing<Vec<u8>>) -> Result<(), String> {
    let mut i = 0;
    while i < data.len() {
        let b = if data[i] == b'%' {
            let hex = data
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a bad %-escape in the PIN")?;
            i += 3;
            hex
        } else {
            i += 1;
            data[i - 1]
        };
        if out.len() >= MAX_PIN {
            return Err(format!("a PIN longer than {MAX_PIN} bytes"));
        }
        out.push(b);
    }
    Ok(())
}

/// What a line from pinentry says.
#[derive(Debug, PartialEq, Eq)]
enum Line<'a> {
    Ok,
    Err(u32, &'a str),
    Data(&'a [u8]),
    /// Status, comment or inquiry (answered by CAN).
    Other(&'a [u8]),
}

fn parse(line: &[u8]) -> Line<'_> {
    if line == b"OK" || line.starts_with(b"OK ") {
        Line::Ok
    } else if let Some(rest) = line.strip_prefix(b"ERR ") {
        let rest = std::str::from_utf8(rest).unwrap_or("");
        let (code, text) = rest.split_once(' ').unwrap_or((rest, ""));
        Line::Err(code.parse().unwrap_or(0), text)
    } else if let Some(data) = line.strip_prefix(b"D ") {
        Line::Data(data)
    } else {
        Line::Other(line)
    }
}

impl Pinentry {
    /// Start the program for `target` and read its greeting.
    pub(crate) fn start(target: &Target<'_>, cancel: Arc<Cancel>) -> Result<Pinentry, String> {
        let program = program(target).ok_or("no pinentry program is installed")?;
        let mut cmd = Command::new(&program);
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        match target {
            Target::Display(vars) => {
                for (k, v) in vars.iter() {
                    cmd.env(k, v);
                }
            }
            Target::Terminal(tty, term) => {
                cmd.arg("--ttyname").arg(tty).arg("--ttytype").arg(term);
                cmd.env("TERM", term);
            }
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
        cancel.watch_child(child.id());
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            return Err("no pipes to pinentry".into());
        };
        let mut p = Pinentry {
            program,
            child,
            stdin,
            stdout: BufReader::new(stdout),
            cancel,
        };
        p.expect_ok()
            .map_err(|e| format!("{}: {e}", p.program.display()))?;
        Ok(p)
    }

    /// One line, without its line end (wiped: a `D` line carries the PIN).
    fn read_line(&mut self) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE + 1));
        let n = (&mut self.stdout)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| format!("reading from pinentry: {e}"))?;
        if n == 0 {
            return Err(if self.cancel.is_cancelled() {
                "cancelled".into()
            } else {
                "pinentry ended".into()
            });
        }
        if line.last() != Some(&b'\n') {
            return Err(format!("a line from pinentry longer than {MAX_LINE} bytes"));
        }
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Ok(line)
    }

    fn expect_ok(&mut self) -> Result<(), String> {
        loop {
            let line = self.read_line()?;
            match parse(&line) {
                Line::Ok => return Ok(()),
                Line::Err(code, text) => return Err(format!("ERR {code} {text}")),
                Line::Data(_) => return Err("unexpected data".into()),
                Line::Other(l) if l.starts_with(b"INQUIRE") => self.send("CAN")?,
                Line::Other(_) => {}
            }
        }
    }

    fn send(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("writing to pinentry: {e}"))
    }

    /// Send a command and read its OK.
    fn command(&mut self, line: &str) -> Result<(), String> {
        self.send(line)?;
        self.expect_ok()
    }

    /// Set the dialog's texts.
    pub(crate) fn texts(&mut self, t: &Texts) -> Result<(), String> {
        self.command(&format!("SETTITLE {}", escape(&t.title)))?;
        self.command(&format!(
            "SETDESC {}",
            escape(&format!("{}\n\n{}", t.message, t.description))
        ))?;
        self.command(&format!("SETPROMPT {}", escape(&t.prompt)))?;
        self.command(&format!("SETOK {}", escape(&t.continue_label)))?;
        // Options an older pinentry does not know answer ERR: harmless.
        let _ = self.command(&format!("SETTIMEOUT {}", t.timeout.as_secs()));
        Ok(())
    }
}

impl Dialog for Pinentry {
    fn name(&self) -> String {
        format!("pinentry ({})", self.program.display())
    }

    fn ask(&mut self, warning: Option<&str>) -> Result<Reply, String> {
        if let Some(w) = warning {
            self.command(&format!("SETERROR {}", escape(w)))?;
        }
        self.send("GETPIN")?;
        let mut pin = Zeroizing::new(Vec::with_capacity(MAX_PIN));
        loop {
            let line = self.read_line()?;
            match parse(&line) {
                Line::Ok => return Ok(Reply::Secret(pin)),
                Line::Data(d) => decode_into(d, &mut pin)?,
                Line::Err(code, _)
                    if matches!(code & 0xffff, GPG_ERR_CANCELED | GPG_ERR_TIMEOUT) =>
                {
                    return Ok(Reply::Cancelled)
                }
                Line::Err(code, text) => return Err(format!("pinentry: ERR {code} {text}")),
                Line::Other(l) if l.starts_with(b"INQUIRE") => self.send("CAN")?,
                Line::Other(_) => {}
            }
        }
    }
}

impl Drop for Pinentry {
    fn drop(&mut self) {
        self.cancel.unwatch_child();
        let _ = self.send("BYE");
        // Give it a moment to close its window, then make sure it is gone.
        for _ in 0..20 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_escapes() {
        assert_eq!(parse(b"OK Pleased to meet you"), Line::Ok);
        assert_eq!(
            parse(b"ERR 83886179 Operation cancelled <Pinentry>"),
            Line::Err(83886179, "Operation cancelled <Pinentry>")
        );
        assert_eq!(83886179 & 0xffff, GPG_ERR_CANCELED);
        assert_eq!(parse(b"D a%25b"), Line::Data(b"a%25b"));
        assert_eq!(
            parse(b"S PASSWORD_FROM_CACHE"),
            Line::Other(b"S PASSWORD_FROM_CACHE")
        );
        let mut pin = Zeroizing::new(vec![]);
        decode_into(b"a%25b%0Ac", &mut pin).unwrap();
        assert_eq!(&pin[..], b"a%b\nc");
        assert!(decode_into(b"%zz", &mut pin).is_err());
        assert!(decode_into(b"%2", &mut pin).is_err());
        let mut long = Zeroizing::new(vec![0u8; MAX_PIN]);
        assert!(decode_into(b"x", &mut long).is_err());
        assert_eq!(escape("50%\nok\r"), "50%25%0Aok%0D");
    }
}
