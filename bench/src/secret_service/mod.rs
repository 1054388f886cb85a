//! The "secret-service" group: our daemon `keyringrs-secret-service` beside
//! `gnome-keyring-daemon`, both on a private `dbus-daemon` of their own (the same setup), driven
//! with raw Secret Service calls as libsecret makes them (docs/PERFORMANCE.md, "Secret Service").
//!
//! - Our stores are filled through libkeyring (`Store::set_entry`, exactly what the daemon's
//!   CreateItem stores) before the daemon is started on them; every size restarts the daemon.
//! - gnome-keyring is filled by writing its unencrypted textual keyring file (written by this
//!   module from the format's observed fields: `[keyring]`, `[N]` items, `[N:attributeK]`) into a
//!   fresh `$XDG_DATA_HOME/keyrings`, named as the default collection, before it starts: filling it
//!   over D-Bus is quadratic (it rewrites its file on every CreateItem).
//!
//! Rows: a lookup by an app's own attributes (SearchItems {xdg:schema, id} + GetSecrets over a
//! plain session, the answer checked), the same by service+username, CreateItem of a new item,
//! and 8 concurrent clients' lookups per second.
//!
//! This file: the plan of a mode, the items, and the group's run; beside it the servers
//! (servers.rs), the client (client.rs), the measurements (timing.rs) and the targets
//! (targets.rs).

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use keyringrs_rigs::bus::Bus;
use keyringrs_rigs::{gnome, spawn_err};
use libkeyring::mapping::Identity;
use libkeyring::{KdfParams, Store, UnlockOptions};
use zbus::blocking::Connection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value as DValue};

use crate::harness::{compare, e2s, fmt_ns, Op, Scratch, Stats};
use crate::report::{na, time_row, Row, Target, Value};
use crate::{Config, PASSWORD};

mod client;
mod servers;
mod targets;
mod timing;

use client::{call, Client};
use servers::*;
use timing::*;

const GROUP: &str = "secret-service";
const SCHEMA: &str = "org.example.App";

const DEST: &str = "org.freedesktop.secrets";
const SERVICE: &str = "/org/freedesktop/secrets";
const ALIAS: &str = "/org/freedesktop/secrets/aliases/default";
const I_SERVICE: &str = "org.freedesktop.Secret.Service";
const I_COLLECTION: &str = "org.freedesktop.Secret.Collection";

const OURS: &str = "keyringrs-secret-service";
const GK: &str = "gnome-keyring-daemon";
const LOOKUP_APP: &str = "lookup by an app's attributes (SearchItems xdg:schema+id, GetSecrets)";
const LOOKUP_SU: &str = "lookup by service+username (SearchItems, GetSecrets)";
const CREATE: &str = "CreateItem (replace=true, a new item)";
const LOAD_CLIENTS: usize = 8;

/// The sizes and sample counts of one mode.
#[derive(Debug)]
struct Plan {
    /// Store sizes of the lookup rows.
    lookup_sizes: Vec<usize>,
    /// Store sizes of the CreateItem rows (a superset of `lookup_sizes` and `load_size`).
    create_sizes: Vec<usize>,
    load_size: usize,
    /// Lookups: at most this many samples per row, within `lookup_budget` for all four rows.
    lookup_samples: usize,
    lookup_budget: Duration,
    create_samples: usize,
    create_budget: Duration,
    /// gnome-keyring's CreateItem (it rewrites its keyring file): at most this many samples,
    /// within the budget.
    gk_create_samples: usize,
    gk_create_budget: Duration,
    /// Lookups per client of the load, at most; fewer for a slow server (`load_budget`).
    load_lookups: usize,
    load_budget: Duration,
    /// The fewest samples of a row.
    min_samples: usize,
}

impl Plan {
    /// The mode's plan; `KEYRINGRS_BENCH_SS_SIZES=200,2000` measures the lookup and CreateItem
    /// rows at those store sizes instead (the load at the largest), e.g. to re-measure a table.
    fn new(quick: bool) -> Plan {
        let mut plan = Plan::for_mode(quick);
        if let Ok(v) = std::env::var("KEYRINGRS_BENCH_SS_SIZES") {
            let sizes: Vec<usize> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if let Some(&max) = sizes.iter().max() {
                plan.lookup_sizes = sizes.clone();
                plan.create_sizes = sizes;
                plan.load_size = max;
            }
        }
        plan
    }

    fn for_mode(quick: bool) -> Plan {
        if quick {
            Plan {
                lookup_sizes: vec![10, 100],
                create_sizes: vec![10, 100],
                load_size: 100,
                lookup_samples: 100,
                lookup_budget: Duration::from_millis(800),
                create_samples: 15,
                create_budget: Duration::from_millis(500),
                gk_create_samples: 10,
                gk_create_budget: Duration::from_secs(1),
                load_lookups: 25,
                load_budget: Duration::from_secs(1),
                min_samples: 5,
            }
        } else {
            Plan {
                lookup_sizes: vec![10, 1_000, 10_000],
                create_sizes: vec![10, 1_000, 2_000, 10_000],
                load_size: 2_000,
                lookup_samples: 2_000,
                lookup_budget: Duration::from_secs(8),
                create_samples: 200,
                create_budget: Duration::from_secs(4),
                gk_create_samples: 100,
                gk_create_budget: Duration::from_secs(6),
                load_lookups: 400,
                load_budget: Duration::from_secs(6),
                min_samples: 20,
            }
        }
    }
}

fn app_attrs(i: usize) -> HashMap<String, String> {
    HashMap::from([
        ("xdg:schema".to_string(), SCHEMA.to_string()),
        ("id".to_string(), i.to_string()),
    ])
}
fn su_service(i: usize) -> String {
    format!("app{i}.example.org")
}
fn su_user(i: usize) -> String {
    format!("user{i}")
}
fn su_attrs(i: usize) -> HashMap<String, String> {
    HashMap::from([
        ("service".to_string(), su_service(i)),
        ("username".to_string(), su_user(i)),
    ])
}
fn label(i: usize) -> String {
    format!("item {i}")
}
fn secret(i: usize) -> String {
    format!("secret-{i}")
}

/// Which items a store holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// {xdg:schema: org.example.App, id: i}, no service/username (a synthetic identity).
    App,
    /// {service: app<i>.example.org, username: user<i>}.
    ServiceUser,
}

impl Kind {
    fn attrs(self, i: usize) -> HashMap<String, String> {
        match self {
            Kind::App => app_attrs(i),
            Kind::ServiceUser => su_attrs(i),
        }
    }
}
fn group_rows(plan: &Plan) -> Vec<Row> {
    let t0 = Instant::now();
    let log = |m: &str| eprintln!("[ss {:>5.1}s] {m}", t0.elapsed().as_secs_f64());
    let scratch =
        Scratch(std::env::temp_dir().join(format!("keyringrs-bench-ss-{}", std::process::id())));
    let dir = scratch.0.clone();
    let _ = std::fs::remove_dir_all(&dir);
    // Is there a dbus-daemon (and a directory to work in)?
    let bus_ok = start_bus(&dir.join("probe")).map(drop);
    let bin = bus_ok.clone().and_then(|()| daemon_bin());
    let mut app = bin
        .clone()
        .and_then(|_| OursStore::init(dir.join("store-app"), Kind::App));
    let mut su = bin
        .clone()
        .and_then(|_| OursStore::init(dir.join("store-su"), Kind::ServiceUser));
    let mut rows = Vec::new();
    for &n in &plan.create_sizes {
        let lookups = plan.lookup_sizes.contains(&n);
        log(&format!("{n} items: filling our stores"));
        // The two stores at once (their durable sets wait mostly on fsync).
        let (app_filled, su_filled) = std::thread::scope(|sc| {
            let su = &mut su;
            let su_job = lookups.then(|| sc.spawn(move || fill(su, n)));
            let a = fill(&mut app, n);
            let s = su_job.map_or(Ok(()), |h| {
                h.join()
                    .unwrap_or_else(|_| Err("the fill thread panicked".into()))
            });
            (a, s)
        });
        log(&format!("{n} items: starting the daemons"));
        let mut ours_app = start_ours(&app, app_filled, &bin, &dir.join(format!("ours-app-{n}")));
        // gnome-keyring's two (each reads its whole keyring file: seconds at 10,000) at once.
        let (mut gk_app, gk_su) = std::thread::scope(|sc| {
            let gk = |kind: Kind, tag: &str| {
                let d = dir.join(format!("gk-{tag}-{n}"));
                bus_ok.clone().and_then(|()| gnome_start(&d, kind, n))
            };
            let su_job = lookups.then(|| sc.spawn(move || gk(Kind::ServiceUser, "su")));
            let a = gk(Kind::App, "app");
            let s = su_job.map_or(Err(String::new()), |h| {
                h.join()
                    .unwrap_or_else(|_| Err("the start thread panicked".into()))
            });
            (a, s)
        });
        let ours_su = if lookups {
            start_ours(&su, su_filled, &bin, &dir.join(format!("ours-su-{n}")))
        } else {
            Err(String::new())
        };
        let (c_oa, c_ga) = (client(&ours_app), client(&gk_app));
        if lookups {
            log(&format!("{n} items: lookups"));
            let (c_os, c_gs) = (client(&ours_su), client(&gk_su));
            rows.extend(measure(
                vec![
                    (
                        name(OURS, LOOKUP_APP),
                        with_client(&c_oa, |c| lookup_op(c, Kind::App, n)),
                    ),
                    (
                        name(GK, LOOKUP_APP),
                        with_client(&c_ga, |c| lookup_op(c, Kind::App, n)),
                    ),
                    (
                        name(OURS, LOOKUP_SU),
                        with_client(&c_os, |c| lookup_op(c, Kind::ServiceUser, n)),
                    ),
                    (
                        name(GK, LOOKUP_SU),
                        with_client(&c_gs, |c| lookup_op(c, Kind::ServiceUser, n)),
                    ),
                ],
                n,
                plan.lookup_budget,
                plan.min_samples,
                plan.lookup_samples,
                10,
            ));
        }
        drop((ours_su, gk_su));
        if n == plan.load_size {
            log(&format!("{n} items: load"));
            rows.push(load_row(OURS, n, plan, &c_oa, address(&ours_app)));
            rows.push(load_row(GK, n, plan, &c_ga, address(&gk_app)));
            for (srv, what) in [(&mut ours_app, OURS), (&mut gk_app, GK)] {
                if let Some(e) = srv.as_mut().ok().and_then(Server::exited) {
                    eprintln!("{what} exited during the load: {e}");
                }
            }
        }
        log(&format!("{n} items: CreateItem"));
        let next_ours = Cell::new(app.as_ref().map_or(0, |s| s.count));
        let next_gk = Cell::new(n);
        // Ours, then gnome-keyring's (slower: it rewrites its keyring file), each alone.
        for (server, c, next, budget, min, max, rounds) in [
            (
                OURS,
                &c_oa,
                &next_ours,
                plan.create_budget,
                plan.min_samples,
                plan.create_samples,
                5,
            ),
            (
                GK,
                &c_ga,
                &next_gk,
                plan.gk_create_budget,
                3,
                plan.gk_create_samples,
                1,
            ),
        ] {
            let op = with_client(c, |c| create_op(c, next));
            rows.extend(measure(
                vec![(name(server, CREATE), op)],
                n,
                budget,
                min,
                max,
                rounds,
            ));
        }
        if let Ok(a) = &mut app {
            a.count = next_ours.get();
        }
    }
    // The stores' keys out of the session keyring (the files go with the scratch directory).
    for s in [&app, &su].into_iter().flatten() {
        let _ = s.store.lock();
    }
    log("done");
    rows
}

pub fn add(cfg: &Config, rows: &mut Vec<Row>, targets: &mut Vec<Target>) {
    let plan = Plan::new(cfg.quick);
    let mut r = group_rows(&plan);
    self::targets::annotate(&mut r);
    targets.extend(self::targets::targets(&r, &plan));
    rows.extend(r);
}
