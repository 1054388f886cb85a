//! The `keyringrs` CLI contract (DESIGN.md): subcommands, stdin handling, exit codes and
//! one-line errors, on the real kernel keyring in a fresh session keyring per test.

use keyringrs_tests::fixtures::{cli_get, cli_unlock, init_with_cli};
use keyringrs_tests::*;

#[test]
fn init_set_get_list_delete_through_the_cli() {
    let dir = TempDir::new("cli-basic");
    init_with_cli(&dir);
    assert_exit(
        &keyringrs(&dir.store(), &["set", "github.com", "alice"], b"tok\n"),
        0,
    );
    let o = keyringrs(&dir.store(), &["get", "github.com", "alice"], b"");
    assert_exit(&o, 0);
    assert_eq!(
        o.stdout, b"tok",
        "one trailing newline stripped on set; none added on a pipe"
    );
    assert_exit(&keyringrs(&dir.store(), &["set", "a:b", "c"], b"x"), 0);
    let o = keyringrs(&dir.store(), &["list"], b"");
    assert_eq!(
        String::from_utf8(o.stdout).unwrap(),
        "a:b\tc\ngithub.com\talice\n"
    );
    assert_exit(
        &keyringrs(&dir.store(), &["delete", "github.com", "alice"], b""),
        0,
    );
    assert_exit(
        &keyringrs(&dir.store(), &["get", "github.com", "alice"], b""),
        4,
    );
    assert_exit(
        &keyringrs(&dir.store(), &["delete", "github.com", "alice"], b""),
        4,
    );
}

#[test]
fn raw_keeps_bytes_exactly_and_binary_round_trips() {
    let dir = TempDir::new("cli-raw");
    init_with_cli(&dir);
    let all: Vec<u8> = (0..=255u8).chain([b'\n', b'\n']).collect();
    assert_exit(
        &keyringrs(&dir.store(), &["set", "--raw", "bin", "u"], &all),
        0,
    );
    assert_eq!(cli_get(&dir.store(), "bin", "u"), all);
    assert_exit(&keyringrs(&dir.store(), &["set", "nl", "u"], b"a\n\n"), 0);
    assert_eq!(
        cli_get(&dir.store(), "nl", "u"),
        b"a\n",
        "only one newline stripped"
    );
    assert_exit(&keyringrs(&dir.store(), &["set", "empty", "u"], b""), 0);
    let o = keyringrs(&dir.store(), &["get", "empty", "u"], b"");
    assert_exit(&o, 0);
    assert!(o.stdout.is_empty());
}

#[test]
fn locked_store_exits_3_for_every_entry_command() {
    let dir = TempDir::new("cli-locked");
    init_with_cli(&dir);
    assert_exit(&keyringrs(&dir.store(), &["set", "s", "u"], b"x"), 0);
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    for args in [
        &["get", "s", "u"][..],
        &["set", "s", "u"],
        &["list"],
        &["delete", "s", "u"],
    ] {
        assert_exit(&keyringrs(&dir.store(), args, b"y"), 3);
    }
    let o = keyringrs(&dir.store(), &["status"], b"");
    assert_exit(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains("locked"));
    assert_exit(&cli_unlock(&dir.store(), "pw"), 0);
    assert_eq!(cli_get(&dir.store(), "s", "u"), b"x");
}

#[test]
fn wrong_password_exits_5_and_installs_nothing() {
    let dir = TempDir::new("cli-wrongpw");
    init_with_cli(&dir);
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    assert_exit(&cli_unlock(&dir.store(), "nope"), 5);
    let s = libkeyring::Store::open(dir.store()).unwrap();
    assert!(s.is_locked().unwrap());
    assert!(libkeyring::keyring::Keyring::Session
        .search(s.key_description())
        .is_err());
    assert_exit(
        &keyringrs(
            &dir.store(),
            &["passwd", "--password-stdin"],
            b"nope\nnew\n",
        ),
        5,
    );
}

#[test]
fn passwd_then_only_the_new_password_unlocks() {
    let dir = TempDir::new("cli-passwd");
    init_with_cli(&dir);
    assert_exit(&keyringrs(&dir.store(), &["set", "s", "u"], b"keep"), 0);
    assert_exit(
        &keyringrs(
            &dir.store(),
            &["passwd", "--password-stdin"],
            b"pw\nnew pw\n",
        ),
        0,
    );
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    assert_exit(&cli_unlock(&dir.store(), "pw"), 5);
    assert_exit(&cli_unlock(&dir.store(), "new pw"), 0);
    assert_eq!(cli_get(&dir.store(), "s", "u"), b"keep");
}

#[test]
fn missing_store_exits_6_and_usage_errors_exit_2() {
    let dir = TempDir::new("cli-nostore");
    fresh_session();
    assert_exit(&keyringrs(&dir.store(), &["get", "s", "u"], b""), 6);
    assert_exit(&keyringrs(&dir.store(), &["status"], b""), 6);
    for args in [
        &["get", "only-one-arg"][..],
        &["frobnicate"],
        &["unlock", "--scope", "galaxy"],
        &[],
    ] {
        assert_exit(&keyringrs(&dir.store(), args, b""), 2);
    }
}

#[test]
fn corrupt_store_exits_7_naming_the_file() {
    let dir = TempDir::new("cli-corrupt");
    init_with_cli(&dir);
    let h = dir.store().join("header");
    let mut b = std::fs::read(&h).unwrap();
    b[40] ^= 1;
    std::fs::write(&h, &b).unwrap();
    let o = keyringrs(&dir.store(), &["get", "s", "u"], b"");
    assert_exit(&o, 7);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&h.display().to_string()));
}

#[test]
fn store_env_var_selects_the_store() {
    let dir = TempDir::new("cli-env");
    init_with_cli(&dir);
    let mut c = std::process::Command::new(keyringrs_bin());
    c.env_clear()
        .env("KEYRINGRS_STORE", dir.store())
        .args(["status"]);
    let o = run(c, b"");
    assert_exit(&o, 0);
    assert!(String::from_utf8_lossy(&o.stdout).contains(&dir.store().display().to_string()));
}

#[test]
fn passwords_are_never_taken_without_a_tty_or_stdin_flag() {
    let dir = TempDir::new("cli-notty");
    init_with_cli(&dir);
    let o = keyringrs(&dir.store(), &["unlock"], b"pw\n");
    assert_exit(&o, 1);
    assert!(String::from_utf8_lossy(&o.stderr).contains("--password-stdin"));
}

#[test]
fn help_lists_every_command() {
    let mut c = std::process::Command::new(keyringrs_bin());
    c.arg("--help").env_clear();
    let o = run(c, b"");
    let help = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "init", "unlock", "lock", "status", "set", "get", "delete", "list", "passwd", "--store",
    ] {
        assert!(help.contains(cmd), "{cmd} missing from --help");
    }
}

/// Another uid that possesses the same session keyring (it inherited it) finds the key but may
/// not use it: AccessDenied, exit 8 — never the secret.
#[test]
fn another_uid_in_the_same_session_gets_access_denied() {
    require_root!("needs to run a process as another uid");
    use std::os::unix::process::CommandExt;
    let dir = TempDir::new("cli-otheruid");
    init_with_cli(&dir);
    assert_exit(
        &keyringrs(&dir.store(), &["set", "s", "u"], b"top secret"),
        0,
    );
    // The other uid gets its own copy of the (encrypted) files, so only the key stands between it
    // and the secret.
    let (uid, gid) = (65534, 65534);
    let shared = TempDir::new("cli-otheruid-copy");
    std::fs::set_permissions(
        shared.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o711),
    )
    .unwrap();
    let copy = shared.path().join("store");
    copy_tree(&dir.store(), &copy);
    chown_tree(&copy, uid, gid);
    let bin = shared.path().join("keyringrs");
    std::fs::copy(keyringrs_bin(), &bin).unwrap();
    let run_as = |args: &[&str]| {
        let mut c = std::process::Command::new(&bin);
        c.env_clear()
            .arg("--store")
            .arg(&copy)
            .args(args)
            .uid(uid)
            .gid(gid);
        run(c, b"")
    };
    let o = run_as(&["get", "s", "u"]);
    assert_exit(&o, 8);
    assert!(!o.stdout.windows(10).any(|w| w == b"top secret"));
    // It cannot lock us out by invalidating the key either.
    assert_exit(&run_as(&["lock"]), 8);
    assert_eq!(cli_get(&dir.store(), "s", "u"), b"top secret");
}

/// 8 processes × 100 `set`s each, all at once: no write is lost.
#[test]
fn concurrent_writers_lose_no_write() {
    let dir = TempDir::new("cli-concurrent");
    init_with_cli(&dir);
    let store = dir.store();
    std::thread::scope(|s| {
        for w in 0..8 {
            let store = &store;
            s.spawn(move || {
                for i in 0..100 {
                    let o = keyringrs(
                        store,
                        &["set", &format!("w{w}"), &format!("k{i}")],
                        format!("v{w}-{i}").as_bytes(),
                    );
                    assert_exit(&o, 0);
                }
            });
        }
    });
    let store_handle = libkeyring::Store::open(&store).unwrap();
    assert_eq!(store_handle.list().unwrap().len(), 800);
    for w in 0..8 {
        for i in 0..100 {
            assert_eq!(
                &**store_handle
                    .get(&format!("w{w}"), &format!("k{i}"))
                    .unwrap(),
                format!("v{w}-{i}").as_bytes()
            );
        }
    }
}
