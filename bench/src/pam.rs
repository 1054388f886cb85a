//! PAM session open with and without pam_keyringrs: the time of `pam_setcred` +
//! `pam_open_session` for a throwaway user, through real libpam (the test driver
//! tests/pam/pam-driver.c, built here with gcc), with the module at its default Argon2id cost.
//! Needs root (useradd, /etc/pam.d); otherwise the rows say why they are missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::sibling;
use crate::harness::Stats;
use crate::report::na;
use crate::report::{Row, Value};
use crate::Config;

const WITHOUT: &str = "session open without pam_keyringrs";
const WITH: &str = "session open with pam_keyringrs";
const FIRST: &str =
    "first session open with pam_keyringrs, importing the gnome-keyring login keyring";
const PASSWORD: &str = "bench-Passw0rd";

/// A throwaway user and PAM services, removed on drop.
struct Setup {
    user: String,
    services: Vec<PathBuf>,
    dir: PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for s in &self.services {
            let _ = std::fs::remove_file(s);
        }
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.user])
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

fn ok(c: &mut Command, what: &str) -> Result<(), String> {
    match c.stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("{what} failed ({s})")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// Run the driver: `cycles` logins (auth, open, close, end); the open times in ns.
fn logins(driver: &Path, service: &str, user: &str, cycles: usize) -> Result<Vec<f64>, String> {
    logins_with(driver, service, user, PASSWORD, cycles, "").map(|(v, _)| v)
}

/// `cycles` logins running `in_session` (driver steps, e.g. `run CMD`) after each open; the open
/// times in ns and the driver's transcript.
fn logins_with(
    driver: &Path,
    service: &str,
    user: &str,
    password: &str,
    cycles: usize,
    in_session: &str,
) -> Result<(Vec<f64>, String), String> {
    use std::io::Write;
    let mut child = Command::new(driver)
        .args([service, user])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("pam-driver: {e}"))?;
    let steps = format!("auth {}\nopen\n{in_session}close\nend\n", hex(password)).repeat(cycles);
    let mut stdin = child.stdin.take().ok_or("pam-driver stdin")?;
    stdin
        .write_all(steps.as_bytes())
        .map_err(|e| e.to_string())?;
    drop(stdin);
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    if text
        .lines()
        .any(|l| l.starts_with("@@ open ") && !l.starts_with("@@ open 0 "))
    {
        return Err(format!(
            "a session open failed: {}",
            text.lines().last().unwrap_or("")
        ));
    }
    let v: Vec<f64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("@@ open-ns ")?.trim().parse().ok())
        .collect();
    if v.len() != cycles {
        return Err(format!("expected {cycles} opens, got {}", v.len()));
    }
    Ok((v, text.into_owned()))
}

/// The open times of first logins (the store is created) of a user whose home holds a
/// gnome-keyring login keyring of `items` items (+1, gnome-keyring's readiness probe) that opens
/// with the login password: the module imports it in the same session open.
fn first_logins_importing(
    driver: &Path,
    service: &str,
    setup: &Setup,
    home: &Path,
    items: usize,
    samples: usize,
) -> Result<Vec<f64>, String> {
    let gk = setup.dir.join("gnome");
    {
        let d = crate::gnome::start(&gk)?;
        for i in 0..items {
            crate::gnome::secret_tool_store(
                &d,
                &format!("svc{i}"),
                "user",
                format!("secret {i}").as_bytes(),
            )?;
        }
    }
    let file = gk.join("home/.local/share/keyrings/login.keyring");
    if !file.exists() {
        return Err("gnome-keyring wrote no login.keyring".into());
    }
    chpasswd(&setup.user, crate::gnome::PASSWORD)?;
    let keyrings = home.join(".local/share/keyrings");
    let store = home.join(".local/share/keyringrs");
    // The CLI the user runs in the session to count what was imported: a copy the user can run.
    let cli = home.join("keyringrs");
    let built = std::env::current_exe()
        .map_err(|e| e.to_string())?
        .with_file_name("keyringrs");
    std::fs::copy(&built, &cli).map_err(|e| format!("copy {}: {e}", built.display()))?;
    ok(Command::new("chown").arg(&setup.user).arg(&cli), "chown")?;
    let mut out = vec![];
    for _ in 0..samples {
        let _ = std::fs::remove_dir_all(&store);
        std::fs::create_dir_all(&keyrings).map_err(|e| e.to_string())?;
        std::fs::copy(&file, keyrings.join("login.keyring")).map_err(|e| e.to_string())?;
        ok(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{0}:{0}", setup.user))
                .arg(home.join(".local")),
            "chown",
        )?;
        // Counted by the user's `keyringrs list` inside the session (items may be in the
        // store's journal rather than in entry files).
        let (v, text) = logins_with(
            driver,
            service,
            &setup.user,
            crate::gnome::PASSWORD,
            1,
            &format!(
                "run echo imported=$({} --store {} list | wc -l)\n",
                cli.display(),
                store.display()
            ),
        )?;
        out.extend(v);
        let imported: usize = text
            .lines()
            .find_map(|l| l.strip_prefix("imported=")?.trim().parse().ok())
            .unwrap_or(0);
        if imported != items + 1 {
            return Err(format!("{imported} of {} items imported", items + 1));
        }
    }
    Ok(out)
}

fn chpasswd(user: &str, password: &str) -> Result<(), String> {
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    {
        use std::io::Write;
        let mut i = chpasswd.stdin.take().ok_or("chpasswd stdin")?;
        writeln!(i, "{user}:{password}").map_err(|e| e.to_string())?;
    }
    chpasswd.wait().map_err(|e| e.to_string()).map(drop)
}

type Samples = (Vec<f64>, Vec<f64>, Result<Vec<f64>, String>);

fn measure(cfg: &Config) -> Result<Samples, String> {
    if libkeyring::sys::euid() != 0 {
        return Err("needs root (a throwaway user and /etc/pam.d services)".into());
    }
    let module = sibling("libpam_keyringrs.so");
    if !module.exists() {
        return Err("no libpam_keyringrs.so next to the bench binary".into());
    }
    let id = std::process::id();
    let mut setup = Setup {
        user: format!("krbench{id}"),
        services: vec![],
        dir: std::env::temp_dir().join(format!("keyringrs-bench-pam-{id}")),
    };
    std::fs::create_dir_all(&setup.dir).map_err(|e| e.to_string())?;
    let driver = setup.dir.join("pam-driver");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/pam/pam-driver.c");
    ok(
        Command::new("gcc")
            .arg("-O2")
            .arg("-o")
            .arg(&driver)
            .arg(&src)
            .arg("-lpam"),
        "gcc pam-driver (libpam0g-dev)",
    )?;
    let home = setup.dir.join("home");
    ok(
        Command::new("useradd")
            .args(["-m", "-d"])
            .arg(&home)
            .arg(&setup.user),
        "useradd",
    )?;
    chpasswd(&setup.user, PASSWORD)?;
    let base = "auth     requisite pam_unix.so\naccount  required  pam_unix.so\n\
                session  optional  pam_keyinit.so force revoke\nsession  required  pam_unix.so\n";
    let m = module.display();
    let stacks = [
        ("without", base.to_string()),
        (
            "with",
            format!("{base}auth     optional  {m}\nsession  optional  {m}\n"),
        ),
    ];
    let mut names = vec![];
    for (tag, text) in stacks {
        let name = format!("krbench-{id}-{tag}");
        let path = Path::new("/etc/pam.d").join(&name);
        std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        setup.services.push(path);
        names.push(name);
    }
    // The first login creates the store (not measured).
    logins(&driver, &names[1], &setup.user, 1)?;
    let cycles = if cfg.quick { 2 } else { 15 };
    let without = logins(&driver, &names[0], &setup.user, cycles)?;
    let with = logins(&driver, &names[1], &setup.user, cycles)?;
    let (items, samples) = if cfg.quick {
        (20, 1)
    } else {
        (IMPORTED_ITEMS, 9)
    };
    let first = first_logins_importing(&driver, &names[1], &setup, &home, items, samples);
    Ok((without, with, first))
}

/// Items of the login keyring of the first-login row (the import issue's measure).
const IMPORTED_ITEMS: usize = 200;

/// The two rows (or why they are missing).
pub fn rows(cfg: &Config) -> Vec<Row> {
    let items = Some(if cfg.quick { 20 } else { IMPORTED_ITEMS });
    match measure(cfg) {
        Ok((without, with, first)) => {
            let mut rows: Vec<Row> = [(WITHOUT, without), (WITH, with)]
                .into_iter()
                .map(|(name, v)| match Stats::from_samples(v) {
                    Some(s) => Row::new("pam", name, None, Value::Time(s)),
                    None => na("pam", name, None, "no samples"),
                })
                .collect();
            rows.push(match first.map(Stats::from_samples) {
                Ok(Some(s)) => Row::new("pam", FIRST, items, Value::Time(s)),
                Ok(None) => na("pam", FIRST, items, "no samples"),
                Err(why) => na("pam", FIRST, items, &why),
            });
            rows
        }
        Err(why) => vec![
            na("pam", WITHOUT, None, &why),
            na("pam", WITH, None, &why),
            na("pam", FIRST, items, why),
        ],
    }
}
