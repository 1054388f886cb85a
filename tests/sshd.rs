//! pam_keyringrs.so behind a real OpenSSH sshd (docs/PAM.md "sshd"): an sshd of the test's own
//! on 127.0.0.1 (own config, host key and PAM service, in the foreground as a child of the test),
//! driven by `sshpass` + `ssh` with each authentication method chosen by the client. The PAM
//! service is this repository's etc/pam.d/sshd with the built module; OpenSSH names its PAM
//! service after its program name, so sshd runs through a symlink named like the service.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyringrs_tests::pam::*;
use keyringrs_tests::*;

/// How the client authenticates (ssh's PreferredAuthentications).
#[derive(Debug, Clone, Copy)]
enum Method<'a> {
    Password(&'a str),
    KeyboardInteractive(&'a str),
    /// The private key file.
    PublicKey(&'a Path),
}

/// An sshd of this test, killed (and its PAM service removed) on drop.
#[derive(Debug)]
struct Sshd {
    child: Child,
    port: u16,
    log: Arc<Mutex<String>>,
    _service: Service,
    _dir: TempDir,
}

impl Sshd {
    /// sshd with PAM service text `stack` (MODULE = the built module).
    fn start(tag: &str, stack: &str) -> Sshd {
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
                     AuthorizedKeysFile .ssh/authorized_keys\nLogLevel VERBOSE\n",
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
    fn ssh(&self, user: &ThrowawayUser, method: Method, cmd: &str) -> Output {
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
    fn ok(&self, user: &ThrowawayUser, method: Method, cmd: &str) -> String {
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
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// `keyringrs get S U` in a login: its value and exit code on one line, `value=V rc=N`.
const GET: &str = "v=$(./keyringrs get S U); echo \"value=$v rc=$?\"";

/// Wait (up to 20 s) until `file` exists and is not empty; its contents.
fn wait_for_file(file: &Path) -> String {
    let started = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(file) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{} never written",
            file.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn header(user: &ThrowawayUser) -> PathBuf {
    default_store(user).join("header")
}

#[test]
fn password_and_keyboard_interactive_logins_unlock_and_the_logout_locks() {
    require_root!("creates users, /etc/pam.d services and runs sshd");
    let _common = CommonStacks::shared();
    let user = login_user("sshpw", "Sshd-pw-4711");
    let sshd = Sshd::start("sshd-pw", &shipped_stack("sshd"));
    assert!(!header(&user).exists());
    // The first login (password method) creates the store; the session can use it.
    let out = sshd.ok(
        &user,
        Method::Password("Sshd-pw-4711"),
        &format!("test -f .local/share/keyringrs/header && echo created; printf s3cret | ./keyringrs set S U && echo set; {GET}"),
    );
    assert!(out.contains("created\nset\nvalue=s3cret rc=0"), "{out}");
    assert!(header(&user).exists());
    // The second (keyboard-interactive: pam_authenticate in a child of sshd's monitor) reads it,
    // and leaves behind a process that reads once while the session is open (the session waits
    // for that) and again after the session has ended.
    let out = sshd.ok(
        &user,
        Method::KeyboardInteractive("Sshd-pw-4711"),
        &format!(
            "{GET}; rm -f out pre rc; setsid sh -c './keyringrs get S U > out 2>&1; echo $? > pre; \
             sleep 2; ./keyringrs get S U > out 2>&1; echo $? > rc' </dev/null >/dev/null 2>&1 & \
             while [ ! -s pre ]; do sleep 0.1; done"
        ),
    );
    assert!(out.contains("value=s3cret rc=0"), "{out}");
    assert_eq!(wait_for_file(&user.home.join("pre")), "0\n");
    assert_eq!(
        wait_for_file(&user.home.join("rc")),
        "3\n",
        "a process outliving the ssh session must find the store locked: {}",
        std::fs::read_to_string(user.home.join("out")).unwrap_or_default()
    );
    // Both logins were ended by sshd: a fresh session of the user finds nothing.
    assert_eq!(fresh_user_session_get(&user), 3);
}

#[test]
fn a_public_key_login_is_not_blocked_and_finds_the_store_locked() {
    require_root!("creates users, /etc/pam.d services and runs sshd");
    let _common = CommonStacks::shared();
    let user = login_user("sshkey", "Sshd-key-0815");
    let sshd = Sshd::start("sshd-key", &shipped_stack("sshd"));
    let out = sshd.ok(
        &user,
        Method::Password("Sshd-key-0815"),
        &format!("printf k | ./keyringrs set S U; {GET}"),
    );
    assert!(out.contains("value=k rc=0"), "{out}");
    let keys = TempDir::new("sshd-client-key");
    let id = keys.path().join("id");
    let o = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&id)
        .output()
        .expect("ssh-keygen");
    assert!(o.status.success(), "{o:?}");
    let dot_ssh = user.home.join(".ssh");
    std::fs::create_dir_all(&dot_ssh).unwrap();
    std::fs::copy(id.with_extension("pub"), dot_ssh.join("authorized_keys")).unwrap();
    chown_tree(&dot_ssh, user.uid, user.gid);
    let started = Instant::now();
    let out = sshd.ok(&user, Method::PublicKey(&id), GET);
    assert!(out.contains("value= rc=3"), "{out}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the key login took {:?}",
        started.elapsed()
    );
    assert!(
        sshd.log.lock().unwrap().contains("Accepted publickey"),
        "{}",
        sshd.log.lock().unwrap()
    );
}

/// `passwd` run by the user in an ssh session goes through the machine's /etc/pam.d/passwd
/// (@include common-password): with the pam-auth-update profile enabled, the store follows the
/// new password. The sshd here uses Debian's own /etc/pam.d/sshd (from openssh-server), which
/// then gets the module from the common-* files, as on a machine set up as docs/PAM.md says
/// (the shipped file beside the profile would run the module twice).
#[test]
fn passwd_in_an_ssh_session_keeps_the_store_in_step() {
    require_root!("creates users, /etc/pam.d services, runs sshd and pam-auth-update");
    let debian_sshd =
        std::fs::read_to_string("/etc/pam.d/sshd").expect("/etc/pam.d/sshd of openssh-server");
    let profile = PamProfile::enable();
    let user = login_user("sshpasswd", "Old-pw-4711x");
    let sshd = Sshd::start("sshd-passwd", &debian_sshd);
    let out = sshd.ok(
        &user,
        Method::Password("Old-pw-4711x"),
        &format!("printf kept | ./keyringrs set S U; {GET}"),
    );
    assert!(out.contains("value=kept rc=0"), "{out}");
    // Debian's passwd reads the old and the new password (twice) from stdin when it is no tty.
    let out = sshd.ok(
        &user,
        Method::KeyboardInteractive("Old-pw-4711x"),
        "printf 'Old-pw-4711x\\nNew-pw-0815y\\nNew-pw-0815y\\n' | passwd; echo passwd=$?",
    );
    assert!(out.contains("passwd=0"), "{out}");
    let out = sshd.ok(&user, Method::Password("New-pw-0815y"), GET);
    assert!(
        out.contains("value=kept rc=0"),
        "the new password must unlock the store: {out}"
    );
    // The old password opens neither the login nor the store.
    let o = sshd.ssh(&user, Method::Password("Old-pw-4711x"), GET);
    assert!(!o.status.success(), "{o:?}");
    let out = sshd.ok(
        &user,
        Method::Password("New-pw-0815y"),
        "printf 'Old-pw-4711x\\n' | ./keyringrs unlock --password-stdin; echo unlock=$?",
    );
    assert!(out.contains("unlock=5"), "{out}");
    drop(sshd);
    drop(profile);
}
