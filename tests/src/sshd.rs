//! An OpenSSH sshd of a test's own on 127.0.0.1 (own config, host key and PAM service, in the
//! foreground as a child of the test), and an ssh client choosing its authentication method:
//! tests/sshd.rs (logins through pam_keyringrs) and tests/network_home.rs (sshfs mounts).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pam::Service;
use crate::{run, TempDir, ThrowawayUser};

/// How the client authenticates (ssh's PreferredAuthentications).
#[derive(Debug, Clone, Copy)]
pub enum Method<'a> {
    Password(&'a str),
    KeyboardInteractive(&'a str),
    /// The private key file.
    PublicKey(&'a Path),
}

/// An sshd of this test, killed (and its PAM service removed) on drop.
#[derive(Debug)]
pub struct Sshd {
    child: Child,
    pub port: u16,
    pub log: Arc<Mutex<String>>,
    _service: Service,
    _dir: TempDir,
}

impl Sshd {
    /// sshd with PAM service text `stack` (MODULE = the built module).
    pub fn start(tag: &str, stack: &str) -> Sshd {
        let sshd = Path::new("/usr/sbin/sshd");
        assert!(
            sshd.exists(),
            "{} missing: openssh-server is installed by `make test` (test-deps)",
            sshd.display()
        );
        // The privilege separation directory, which the distribution's service would create.
        if !Path::new("/run/sshd").exists() {
            std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd");
        }
        let dir = TempDir::new(&format!("sshd-{tag}"));
        let key = dir.path().join("host_key");
        let o = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .output()
            .expect("ssh-keygen");
        assert!(o.status.success(), "ssh-keygen: {o:?}");
        let service = Service::new(tag, stack);
        // sshd re-executes itself by this absolute path; its basename is the PAM service.
        let program = dir.path().join(&service.name);
        std::os::unix::fs::symlink(sshd, &program).expect("symlink sshd");
        for _ in 0..5 {
            let port = free_port();
            let config = dir.path().join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                     UsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication yes\n\
                     PubkeyAuthentication yes\nStrictModes no\nPermitRootLogin no\n\
                     AuthorizedKeysFile .ssh/authorized_keys\nLogLevel VERBOSE\n\
                     Subsystem sftp internal-sftp\n",
                    key.display(),
                    dir.path().join("sshd.pid").display()
                ),
            )
            .unwrap();
            let mut child = Command::new(&program)
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start sshd");
            let log = Arc::new(Mutex::new(String::new()));
            let sink = Arc::clone(&log);
            let stderr = child.stderr.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    let mut s = sink.lock().unwrap();
                    s.push_str(&line);
                    s.push('\n');
                }
            });
            let started = Instant::now();
            loop {
                if log.lock().unwrap().contains("Server listening on") {
                    return Sshd {
                        child,
                        port,
                        log,
                        _service: service,
                        _dir: dir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "sshd did not start: {}",
                    log.lock().unwrap()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            let text = log.lock().unwrap().clone();
            // Another process took the port between our probe and sshd's bind: try another.
            assert!(
                text.contains("Address already in use"),
                "sshd exited: {text}"
            );
        }
        panic!("no free port for sshd");
    }

    /// `ssh user@127.0.0.1 -p PORT cmd` with `method` only; the remote command's output.
    pub fn ssh(&self, user: &ThrowawayUser, method: Method, cmd: &str) -> Output {
        let mut c;
        let preferred = match method {
            Method::Password(pw) | Method::KeyboardInteractive(pw) => {
                c = Command::new("sshpass");
                c.args(["-p", pw, "ssh"]);
                if matches!(method, Method::Password(_)) {
                    "password"
                } else {
                    "keyboard-interactive"
                }
            }
            Method::PublicKey(key) => {
                c = Command::new("ssh");
                c.arg("-i").arg(key).args(["-o", "BatchMode=yes"]);
                "publickey"
            }
        };
        c.env_clear().env("PATH", "/usr/bin:/bin").args([
            "-F",
            "/dev/null",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "ConnectTimeout=20",
            "-o",
            &format!("PreferredAuthentications={preferred}"),
            "-p",
            &self.port.to_string(),
            &format!("{}@127.0.0.1", user.name),
            cmd,
        ]);
        run(c, b"")
    }

    /// Run `cmd` over ssh; assert the login and the command succeeded; its stdout.
    pub fn ok(&self, user: &ThrowawayUser, method: Method, cmd: &str) -> String {
        let o = self.ssh(user, method, cmd);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "ssh {method:?} {cmd:?}: {:?}\nstdout: {out}\nstderr: {}\nsshd: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr),
            self.log.lock().unwrap()
        );
        out
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nobody listens on right now (the kernel's pick for a bind to port 0).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}
