//! Secrets in memory (THREAT-MODEL.md "Core dumps and other processes of the user"): the CLI
//! makes itself non-dumpable, so a crash while it holds a secret writes no core file and other
//! processes of the same uid cannot ptrace it or read its /proc memory.

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use keyringrs_tests::*;

fn core_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("core"))
        .collect()
}

/// Start `program args` as `user` under `prlimit --core=unlimited` with stdin kept open.
fn start(user: &ThrowawayUser, program: &std::path::Path, args: &[&str]) -> std::process::Child {
    let mut c = user.command("prlimit");
    c.arg("--core=unlimited")
        .arg(program)
        .args(args)
        .env("KEYRINGRS_KDF_MEMORY", TEST_KDF_MEMORY.to_string())
        .env("KEYRINGRS_KDF_TIME", TEST_KDF_TIME.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SIGQUIT as the default action, whatever this test inherited: a shell runs background
    // jobs with SIGINT and SIGQUIT ignored, and an ignored disposition survives exec.
    #[allow(unsafe_code)]
    // SAFETY: signal(2) is async-signal-safe; the closure runs in the child before exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut c, || {
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    c.spawn().unwrap()
}

#[test]
fn a_crash_of_the_cli_holding_a_secret_leaves_no_core_and_no_proc_access() {
    require_root!("runs the CLI as a throwaway user and inspects /proc");
    let pattern = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let user = ThrowawayUser::new("core");
    let store = user.home.join("store");
    fresh_session();
    user.init_store(&store);
    // Unlocked for every process of the user (this test's session keyring is root's).
    let mut c = user.keyringrs();
    c.arg("--store")
        .arg(&store)
        .args(["unlock", "--password-stdin", "--scope", "user"]);
    assert_exit(&run(c, b"pw\n"), 0);

    // Control: an ordinary process of the user does dump core here (else the check is void).
    let mut control = start(&user, std::path::Path::new("/bin/cat"), &[]);
    std::thread::sleep(Duration::from_millis(200));
    Command::new("kill")
        .args(["-QUIT", &control.id().to_string()])
        .status()
        .unwrap();
    let _ = control.wait();
    let control_cores = core_files(&user.home);
    for c in &control_cores {
        std::fs::remove_file(user.home.join(c)).unwrap();
    }

    // The CLI has read the key (it checks the store is unlocked first) and part of the secret.
    let bin = user.home.join("keyringrs");
    let s = store.to_str().unwrap();
    let mut cli = start(&user, &bin, &["--store", s, "set", "svc", "u"]);
    cli.stdin
        .as_mut()
        .unwrap()
        .write_all(b"canary-secret-")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let proc_mem = std::fs::metadata(format!("/proc/{}/mem", cli.id())).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{}/status", cli.id())).unwrap();
    assert!(
        status.contains(&format!("Uid:\t{0}\t{0}", user.uid)),
        "{status}"
    );
    // A non-dumpable process's /proc files (mem, environ, maps…) belong to root, not to its uid,
    // so the user's other processes cannot read its memory.
    assert_eq!(
        proc_mem.uid(),
        0,
        "/proc/<pid>/mem of a non-dumpable process is root's"
    );
    Command::new("kill")
        .args(["-QUIT", &cli.id().to_string()])
        .status()
        .unwrap();
    let st = cli.wait().unwrap();
    assert!(st.code().is_none(), "killed by the signal");
    assert!(
        core_files(&user.home).is_empty(),
        "the CLI left a core file"
    );
    if control_cores.is_empty() {
        eprintln!(
            "SKIPPED part: core_pattern is {:?}, where even an ordinary process leaves no core file in its cwd",
            pattern.trim()
        );
    }
}
