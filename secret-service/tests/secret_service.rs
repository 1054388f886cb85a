//! keyringrs-secret-service end to end: a private dbus-daemon, the daemon on it, a fresh session
//! keyring and a temp store; libsecret's `secret-tool`, raw D-Bus clients (zbus) and the
//! `keyringrs` CLI against the same store; one provider per bus, D-Bus activation, and the load
//! of 8 clients. (Sessions: tests/sessions.rs; locking: tests/exposure.rs; aliases and
//! collections: tests/collections.rs.)

mod common;

use std::time::{Duration, Instant};

use common::*;

#[test]
fn secret_tool_store_lookup_search_clear_and_the_cli_share_entries() {
    require_tools!();
    let mut env = Env::start("ss-tool");
    // secret-tool store → keyringrs get, and back.
    ok(env.secret_tool(
        &[
            "store",
            "--label=GitHub",
            "service",
            "github.com",
            "username",
            "alice",
        ],
        b"tok-1",
    ));
    let o = env.cli(&["get", "github.com", "alice"], b"");
    assert_exit(&o, 0);
    assert_eq!(o.stdout, b"tok-1");
    assert_exit(&env.cli(&["set", "example.org", "bob"], b"from-cli\n"), 0);
    let o = ok(env.secret_tool(
        &["lookup", "service", "example.org", "username", "bob"],
        b"",
    ));
    assert_eq!(stdout(&o), "from-cli");

    // Replace semantics: same service+username → same item, new secret, one entry.
    ok(env.secret_tool(
        &[
            "store",
            "--label=GitHub 2",
            "service",
            "github.com",
            "username",
            "alice",
        ],
        b"tok-2",
    ));
    let o = ok(env.secret_tool(
        &["lookup", "service", "github.com", "username", "alice"],
        b"",
    ));
    assert_eq!(stdout(&o), "tok-2");
    let list = stdout(&env.cli(&["list"], b""));
    assert_eq!(list.matches("github.com\talice").count(), 1, "{list}");

    // Several matches for an attribute search.
    for (u, s) in [("u1", "p1"), ("u2", "p2"), ("u3", "p3")] {
        ok(env.secret_tool(
            &[
                "store",
                "--label=multi",
                "service",
                "multi.example",
                "username",
                u,
                "team",
                "x",
            ],
            s.as_bytes(),
        ));
    }
    let o = ok(env.secret_tool(&["search", "--all", "team", "x"], b""));
    let text = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
    for (u, s) in [("u1", "p1"), ("u2", "p2"), ("u3", "p3")] {
        assert!(
            text.contains(&format!("attribute.username = {u}")),
            "{text}"
        );
        assert!(text.contains(&format!("secret = {s}")), "{text}");
    }
    assert_eq!(text.matches("label = multi").count(), 3, "{text}");
    // A lookup with only the shared attribute finds one of them.
    let o = ok(env.secret_tool(&["lookup", "team", "x"], b""));
    assert!(["p1", "p2", "p3"].contains(&stdout(&o).as_str()));

    // Items without service/username: a synthetic identity, exact attributes, replace by equality.
    ok(env.secret_tool(
        &["store", "--label=generic", "app", "foo", "host", "h1"],
        b"g1",
    ));
    ok(env.secret_tool(
        &["store", "--label=generic", "app", "foo", "host", "h1"],
        b"g2",
    ));
    let o = ok(env.secret_tool(&["lookup", "app", "foo"], b""));
    assert_eq!(stdout(&o), "g2");
    let list = stdout(&env.cli(&["list"], b""));
    assert_eq!(
        list.matches("org.freedesktop.Secret.Item:").count(),
        1,
        "replaced, not added: {list}"
    );
    let o = ok(env.secret_tool(&["search", "app", "foo"], b""));
    let text = stdout(&o) + &String::from_utf8_lossy(&o.stderr);
    assert!(!text.contains("attribute.username"), "{text}");

    // clear removes every match; the CLI sees them gone.
    ok(env.secret_tool(&["clear", "team", "x"], b""));
    let list = stdout(&env.cli(&["list"], b""));
    assert!(!list.contains("multi.example"), "{list}");
    let o = env.secret_tool(&["lookup", "team", "x"], b"");
    assert!(!o.status.success() && o.stdout.is_empty());
    ok(env.secret_tool(
        &["clear", "service", "github.com", "username", "alice"],
        b"",
    ));
    assert_exit(&env.cli(&["get", "github.com", "alice"], b""), 4);
    // Deleted through the CLI: the item disappears from the Secret Service.
    assert_exit(&env.cli(&["delete", "example.org", "bob"], b""), 0);
    let o = env.secret_tool(
        &["lookup", "service", "example.org", "username", "bob"],
        b"",
    );
    assert!(!o.status.success() && o.stdout.is_empty());
    env.assert_alive();
}

#[test]
fn a_second_provider_refuses_to_start() {
    require_tools!();
    let env = Env::start("ss-second");
    let o = env
        .daemon_command(&[])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("org.freedesktop.secrets is already owned by keyringrs-secre")
            && err.contains("not starting"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn dbus_activation_starts_the_daemon_on_first_use() {
    require_tools!();
    let env = Env::start_bus("ss-activation");
    // The shipped service file, with Exec pointing at the built binary.
    let shipped = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../etc/dbus-1/services/org.freedesktop.secrets.service"),
    )
    .unwrap();
    assert!(shipped.contains("Name=org.freedesktop.secrets"));
    let service = shipped
        .lines()
        .map(|l| {
            if l.starts_with("Exec=") {
                format!("Exec={}", daemon_bin().display())
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        env.dir
            .path()
            .join("services/org.freedesktop.secrets.service"),
        service,
    )
    .unwrap();
    c_reload(&env);
    assert!(!env.bus.name_has_owner(DEST));
    assert_exit(&env.cli(&["set", "act", "u"], b"activated"), 0);
    let o = ok(env.secret_tool(&["lookup", "service", "act", "username", "u"], b""));
    assert_eq!(stdout(&o), "activated");
    assert!(env.bus.name_has_owner(DEST));
    // The activated daemon is the bus's child: stop it through its pid.
    let conn = env.bus.connect();
    let pid = zbus::blocking::fdo::DBusProxy::new(&conn)
        .unwrap()
        .get_connection_unix_process_id(DEST.try_into().unwrap())
        .unwrap();
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert!(comm.starts_with("keyringrs-secre"), "{comm}");
    // Killed with the bus when `env` drops (it exits when its bus connection closes).
}

fn c_reload(env: &Env) {
    let conn = env.bus.connect();
    zbus::blocking::fdo::DBusProxy::new(&conn)
        .unwrap()
        .reload_config()
        .unwrap();
}

const LOAD_CLIENTS: usize = 8;
const LOAD_LOOKUPS: usize = 500;
const LOAD_ENTRIES: usize = 50;

/// 8 clients (own connections; half plain, half DH sessions) × 500 lookups as libsecret does
/// them (SearchItems with service and username, then GetSecrets), every answer checked.
/// Prints and returns (lookups/s, median).
fn load(name: &str, address: &str) -> (f64, Duration) {
    let start = Instant::now();
    let handles: Vec<_> = (0..LOAD_CLIENTS)
        .map(|t| {
            let address = address.to_string();
            std::thread::spawn(move || {
                let c = Client::connect(&address);
                let s = if t % 2 == 0 {
                    c.open_plain()
                } else {
                    c.open_dh()
                };
                let mut lat = Vec::with_capacity(LOAD_LOOKUPS);
                for n in 0..LOAD_LOOKUPS {
                    let i = (t * 31 + n * 7) % LOAD_ENTRIES;
                    let t0 = Instant::now();
                    let found = c.search(&attrs(&[
                        ("service", "load.example"),
                        ("username", &format!("user{i}")),
                    ]));
                    assert_eq!(found.len(), 1);
                    let m = c.get_secrets(&found, &s.0).unwrap();
                    let sec = &m[&found[0]];
                    let plain = s.1.decrypt(&sec.1, &sec.2).unwrap();
                    lat.push(t0.elapsed());
                    assert_eq!(&*plain, format!("secret-{i}").as_bytes(), "wrong answer");
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().expect("client thread"))
        .collect();
    let elapsed = start.elapsed();
    lat.sort();
    let total = LOAD_CLIENTS * LOAD_LOOKUPS;
    assert_eq!(lat.len(), total);
    let median = lat[total / 2];
    let p99 = lat[total * 99 / 100];
    let rate = total as f64 / elapsed.as_secs_f64();
    eprintln!(
        "{name} load: {LOAD_CLIENTS} clients x {LOAD_LOOKUPS} lookups = {total} lookups in {:.2} s: {rate:.0} lookups/s, median {:.2} ms, p99 {:.2} ms (all answers correct)",
        elapsed.as_secs_f64(),
        median.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3
    );
    (rate, median)
}

#[test]
fn load_8_clients_x_500_lookups() {
    require_tools!();
    let mut env = Env::start("ss-load");
    for i in 0..LOAD_ENTRIES {
        assert_exit(
            &env.cli(
                &["set", "load.example", &format!("user{i}")],
                format!("secret-{i}").as_bytes(),
            ),
            0,
        );
    }
    load("secret-service", &env.bus.address);
    env.assert_alive();
    gnome_keyring_beside();
}

/// The same load against gnome-keyring-daemon on the same kind of private bus, for comparison
/// (printed only; skipped when gnome-keyring is not installed).
fn gnome_keyring_beside() {
    let Ok(bin) = which("gnome-keyring-daemon") else {
        eprintln!("gnome-keyring load: skipped (gnome-keyring-daemon not installed)");
        return;
    };
    let dir = TempDir::new("ss-gk");
    let home = dir.path().join("home");
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&run_dir).unwrap();
    let bus = Bus::start(dir.path(), &[]);
    let mut gk = std::process::Command::new(bin)
        .args(["--unlock", "--foreground", "--components=secrets"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("HOME", &home)
        .env("XDG_RUNTIME_DIR", &run_dir)
        .env("XDG_DATA_HOME", home.join(".local/share"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = gk.stdin.take().unwrap();
        stdin.write_all(b"pw").unwrap();
    }
    let t = Instant::now();
    while !bus.name_has_owner(DEST) {
        if t.elapsed() > Duration::from_secs(10) {
            eprintln!("gnome-keyring load: skipped (gnome-keyring-daemon did not take the name)");
            let _ = gk.kill();
            let _ = gk.wait();
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = Client::connect(&bus.address);
    let s = c.open_plain();
    for i in 0..LOAD_ENTRIES {
        let a = attrs(&[
            ("service", "load.example"),
            ("username", &format!("user{i}")),
        ]);
        let secret = Client::secret(&s.0, &s.1, format!("secret-{i}").as_bytes());
        let created = c.create_item(ALIAS, &a, "load", secret, true);
        if let Err(e) = created {
            eprintln!("gnome-keyring load: skipped (CreateItem: {e})");
            let _ = gk.kill();
            let _ = gk.wait();
            return;
        }
    }
    load("gnome-keyring", &bus.address);
    let _ = gk.kill();
    let _ = gk.wait();
}

fn which(program: &str) -> Result<std::path::PathBuf, ()> {
    ["/usr/bin", "/bin", "/usr/local/bin"]
        .iter()
        .map(|d| std::path::Path::new(d).join(program))
        .find(|p| p.exists())
        .ok_or(())
}
