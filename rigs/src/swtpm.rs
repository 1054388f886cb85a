//! swtpm, the software TPM2, as a throwaway TPM for tests: `swtpm socket --tpm2` on two free
//! loopback ports (the TPM command port P and its control port P+1) with a state directory of
//! its own, manufactured and started up (`--flags not-need-init,startup-clear`), so clients
//! reach it with the TCTI `swtpm:host=127.0.0.1,port=P`. PCRs are extended with `tpm2_pcrextend`.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::spawn_err;

/// The emulator's program name.
pub const SWTPM: &str = "swtpm";

/// How long swtpm may take to answer on its control port.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running swtpm; killed and reaped on drop (its state directory stays, the caller's).
#[derive(Debug)]
pub struct Swtpm {
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
}

impl Drop for Swtpm {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Two consecutive free loopback ports P, P+1 (free when asked: another process may still take
/// them before swtpm binds them, hence the retries in [`Swtpm::start`]).
fn free_ports() -> Result<u16, String> {
    for _ in 0..100 {
        let a = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
        let p = a.local_addr().map_err(|e| e.to_string())?.port();
        if p == u16::MAX {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, p + 1)).is_ok() {
            return Ok(p);
        }
    }
    Err("no two consecutive free ports on 127.0.0.1".into())
}

impl Swtpm {
    /// Start a TPM whose state lives in `dir` (created; a new directory is a new TPM, the same
    /// directory again the same TPM), up once it answers on its control port.
    pub fn start(dir: &Path) -> Result<Swtpm, String> {
        if dir.to_str().is_none_or(|d| d.contains(',')) {
            return Err(format!(
                "{}: swtpm needs a UTF-8 path without commas",
                dir.display()
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut t = Swtpm {
            child: None,
            dir: dir.to_owned(),
            port: 0,
        };
        t.launch(None)?;
        Ok(t)
    }

    /// Stop and start it again on the same state directory: the same TPM after a reboot (its
    /// PCRs back at their boot values). Same ports when they are still free, else new ones:
    /// ask [`Swtpm::tcti`] again.
    pub fn restart(&mut self) -> Result<(), String> {
        let port = self.port;
        self.stop();
        self.launch(Some(port))
    }

    fn launch(&mut self, mut port: Option<u16>) -> Result<(), String> {
        let mut last = String::new();
        for _ in 0..10 {
            let p = match port.take() {
                Some(p) => p,
                None => free_ports()?,
            };
            let server = format!("type=tcp,port={p},bindaddr=127.0.0.1");
            let ctrl = format!("type=tcp,port={},bindaddr=127.0.0.1", p + 1);
            let state = format!("dir={}", self.dir.display());
            // Its stderr to a file beside its state (a pipe nobody reads could fill up).
            let log =
                std::fs::File::create(self.log_file()).map_err(|e| format!("swtpm log: {e}"))?;
            let child = Command::new(SWTPM)
                .args(["socket", "--tpm2", "--server", &server, "--ctrl", &ctrl])
                .args([
                    "--tpmstate",
                    &state,
                    "--flags",
                    "not-need-init,startup-clear",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| spawn_err(SWTPM, e))?;
            self.child = Some(child);
            self.port = p;
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) => {
                    last = e;
                    self.stop();
                }
            }
        }
        Err(format!("swtpm did not come up: {last}"))
    }

    /// Up once CMD_GET_CAPABILITY on the control port answers; an early exit (a port taken
    /// meanwhile) is an error with swtpm's stderr.
    fn wait_ready(&mut self) -> Result<(), String> {
        let start = Instant::now();
        let ctrl = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port + 1));
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(status)) = c.try_wait() {
                    let err = std::fs::read_to_string(self.log_file()).unwrap_or_default();
                    return Err(format!("swtpm exited ({status}): {}", err.trim()));
                }
            }
            match get_capability(ctrl) {
                Ok(()) => return Ok(()),
                Err(e) if start.elapsed() > START_TIMEOUT => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// The TCTI that reaches it: "swtpm:host=127.0.0.1,port=P".
    pub fn tcti(&self) -> String {
        format!("swtpm:host=127.0.0.1,port={}", self.port)
    }

    /// Its TPM command port P (the control port is P+1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where its stderr goes (in its state directory, rewritten on each start).
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("swtpm.log")
    }

    /// Its state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Extend PCR `pcr` of the SHA-256 bank with `data`: a SHA-256 digest in 64 hex digits, or
    /// else up to 32 bytes of text, zero-padded into one (`tpm2_pcrextend`).
    pub fn extend_pcr(&self, pcr: u32, data: &str) -> Result<(), String> {
        let hex = if data.len() == 64 && data.bytes().all(|b| b.is_ascii_hexdigit()) {
            data.to_owned()
        } else if data.len() <= 32 {
            let mut d = [0u8; 32];
            d[..data.len()].copy_from_slice(data.as_bytes());
            d.iter().map(|b| format!("{b:02x}")).collect()
        } else {
            return Err(format!(
                "extend data of {} bytes: at most 32, or 64 hex digits",
                data.len()
            ));
        };
        let o = Command::new("tpm2_pcrextend")
            .arg(format!("{pcr}:sha256={hex}"))
            .env("TPM2TOOLS_TCTI", self.tcti())
            .env_remove("TCTI")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| spawn_err("tpm2_pcrextend", e))?;
        if o.status.success() {
            Ok(())
        } else {
            Err(format!(
                "tpm2_pcrextend {pcr}: {}: {}",
                o.status,
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    /// Kill and reap swtpm (its state directory stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// swtpm's control channel: CMD_GET_CAPABILITY (1) answers a 4-byte result, 0 = success.
fn get_capability(ctrl: SocketAddr) -> Result<(), String> {
    let mut s =
        TcpStream::connect_timeout(&ctrl, Duration::from_millis(500)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    s.write_all(&1u32.to_be_bytes())
        .map_err(|e| e.to_string())?;
    let mut rc = [0u8; 4];
    s.read_exact(&mut rc).map_err(|e| e.to_string())?;
    if rc == [0; 4] {
        Ok(())
    } else {
        Err(format!(
            "swtpm control channel: result {:#x}",
            u32::from_be_bytes(rc)
        ))
    }
}
