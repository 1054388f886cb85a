//! The security review's findings on the daemon's limits, each reproduced on a private bus:
//! unbounded sessions and prompts (caps per client, cleanup when a client leaves, prompt expiry)
//! and the daemon under parallel clients. (Item objects visible while locked and a dumpable
//! daemon: tests/exposure.rs.)

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use zbus::zvariant::{OwnedObjectPath, OwnedValue};

/// The caps the daemon documents (docs/SECRET-SERVICE.md, "Limits").
const MAX_SESSIONS_PER_CLIENT: usize = 64;
const MAX_PROMPTS_PER_CLIENT: usize = 16;

/// How much the daemon's resident set may grow while one client hammers it.
const RSS_SLACK_KIB: u64 = 6 * 1024;

/// 5000 more `attempt`s after `first` from one client: exactly `cap` objects in all, every other
/// attempt refused with LimitsExceeded, and the daemon's resident set about what it was. `what`:
/// the call and what its successes are, for the report line.
fn hammer(
    env: &Env,
    first: OwnedObjectPath,
    cap: usize,
    what: [&str; 2],
    mut attempt: impl FnMut() -> zbus::Result<OwnedObjectPath>,
) -> Vec<OwnedObjectPath> {
    let before = env.daemon_rss_kib();
    let mut got = vec![first];
    let mut refused = 0;
    for _ in 0..5000 {
        match attempt() {
            Ok(p) => got.push(p),
            Err(e) => {
                assert_eq!(error_name(&e), LIMITS_EXCEEDED, "{e}");
                refused += 1;
            }
        }
    }
    let after = env.daemon_rss_kib();
    eprintln!(
        "5001 {} from one client: {} {}, {refused} refused; daemon VmRSS {before} KiB -> {after} KiB ({:+} KiB)",
        what[0],
        got.len(),
        what[1],
        after as i64 - before as i64
    );
    assert_eq!(got.len(), cap, "the cap per client");
    assert!(
        after < before + RSS_SLACK_KIB,
        "the daemon grew from {before} KiB to {after} KiB"
    );
    got
}

#[test]
fn sessions_per_client_are_capped_and_the_daemon_stays_small() {
    require_tools!();
    let mut env = Env::start("ss-cap-sessions");
    let c = env.client();
    // Warm up (first allocations of the object server, the session map, the reply paths).
    let first = c.try_open_plain().unwrap();
    let opened = hammer(
        &env,
        first,
        MAX_SESSIONS_PER_CLIENT,
        ["OpenSession", "opened"],
        || c.try_open_plain(),
    );
    // The refusal names the limit.
    let e = c.try_open_plain().unwrap_err();
    assert!(
        format!("{e}").contains(&MAX_SESSIONS_PER_CLIENT.to_string()),
        "{e}"
    );
    // Another client is not affected; closing a session makes room again.
    let d = env.client();
    d.try_open_plain().unwrap();
    c.call::<_, ()>(opened[0].as_str(), I_SESSION, "Close", &())
        .unwrap();
    c.try_open_plain().unwrap();
    assert_eq!(
        error_name(&c.try_open_plain().unwrap_err()),
        LIMITS_EXCEEDED
    );
    // The sessions still work.
    let s: Session = (
        opened[5].clone(),
        keyringrs_secret_service::crypto::SessionKey::plain(),
    );
    let item = c.create(&s, &keyed("cap", "u"), "cap", b"v", true).unwrap();
    assert_eq!(c.get_secret(item.as_str(), &s).unwrap(), b"v");
    env.assert_alive();
}

#[test]
fn unlock_prompts_per_client_are_capped_and_the_daemon_stays_small() {
    require_tools!();
    let mut env = Env::start("ss-cap-prompts");
    env.lock_store();
    let c = env.client();
    let (_, first) = c.unlock().unwrap();
    assert_ne!(first.as_str(), "/");
    let prompts = hammer(
        &env,
        first,
        MAX_PROMPTS_PER_CLIENT,
        ["Unlock", "prompts"],
        || c.unlock().map(|(_, p)| p),
    );
    // Another client still gets a prompt; a dismissed prompt makes room again.
    let d = env.client();
    d.unlock().unwrap();
    c.call::<_, ()>(prompts[0].as_str(), I_PROMPT, "Dismiss", &())
        .unwrap();
    assert!(wait_until(Duration::from_secs(5), || c.unlock().is_ok()));
    env.assert_alive();
}

/// The daemon on a locked store (so that Unlock makes prompts) and two clients of it.
fn locked_with_two_clients(tag: &str) -> (Env, Client, Client) {
    let env = Env::start(tag);
    env.lock_store();
    let (a, b) = (env.client(), env.client());
    (env, a, b)
}

#[test]
fn a_clients_sessions_and_prompts_go_when_it_leaves() {
    require_tools!();
    let (mut env, a, b) = locked_with_two_clients("ss-leave");
    let sessions: Vec<OwnedObjectPath> = (0..3).map(|_| a.try_open_plain().unwrap()).collect();
    let prompts: Vec<OwnedObjectPath> = (0..3).map(|_| a.unlock().unwrap().1).collect();
    for p in &sessions {
        assert!(b.serves(p.as_str(), I_SESSION), "{p}");
    }
    for p in &prompts {
        assert!(b.serves(p.as_str(), I_PROMPT), "{p}");
    }
    drop(a);
    let gone = wait_until(Duration::from_secs(5), || {
        sessions.iter().all(|p| !b.serves(p.as_str(), I_SESSION))
            && prompts.iter().all(|p| !b.serves(p.as_str(), I_PROMPT))
    });
    let left: Vec<&OwnedObjectPath> = sessions
        .iter()
        .filter(|p| b.serves(p.as_str(), I_SESSION))
        .chain(prompts.iter().filter(|p| b.serves(p.as_str(), I_PROMPT)))
        .collect();
    assert!(gone, "objects outlived their client: {left:?}");
    for p in &prompts {
        let e = b
            .call::<_, ()>(p.as_str(), I_PROMPT, "Dismiss", &())
            .unwrap_err();
        assert_eq!(error_name(&e), UNKNOWN_OBJECT, "{p}: {e}");
    }
    env.assert_alive();
}

/// Run `f` on another thread; its answer, or None after `limit`.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// The next `Completed` of `prompt` in `it`: (dismissed, result), or None after `limit`.
fn completed(
    mut it: zbus::blocking::MessageIterator,
    prompt: &str,
    limit: Duration,
) -> Option<(bool, Vec<OwnedObjectPath>)> {
    let prompt = prompt.to_string();
    within(limit, move || loop {
        let m = it.next()?.ok()?;
        if m.header().path().map(|p| p.as_str() == prompt) != Some(true) {
            continue;
        }
        let (dismissed, result): (bool, OwnedValue) = m.body().deserialize().ok()?;
        return Some((dismissed, Vec::try_from(result).unwrap_or_default()));
    })
    .flatten()
}

#[test]
fn prompts_belong_to_their_client_and_go_once_completed() {
    require_tools!();
    let (mut env, a, b) = locked_with_two_clients("ss-prompt-owner");
    let (_, p) = a.unlock().unwrap();
    for m in ["Prompt", "Dismiss"] {
        let e = if m == "Prompt" {
            b.call::<_, ()>(p.as_str(), I_PROMPT, m, &("",))
        } else {
            b.call::<_, ()>(p.as_str(), I_PROMPT, m, &())
        }
        .unwrap_err();
        assert_eq!(error_name(&e), ACCESS_DENIED, "{m} by another client: {e}");
    }
    assert!(a.serves(p.as_str(), I_PROMPT));
    // The owner completes it (dismissed: no askpass program); then it is gone.
    let it = a.signals(I_PROMPT, "Completed");
    a.call::<_, ()>(p.as_str(), I_PROMPT, "Prompt", &("",))
        .unwrap();
    let (dismissed, result) =
        completed(it, p.as_str(), Duration::from_secs(10)).expect("Completed");
    assert!(dismissed);
    assert!(result.is_empty());
    assert!(wait_until(Duration::from_secs(2), || !a.serves(p.as_str(), I_PROMPT)));
    let e = a
        .call::<_, ()>(p.as_str(), I_PROMPT, "Prompt", &("",))
        .unwrap_err();
    assert_eq!(error_name(&e), UNKNOWN_OBJECT);
    // Same for Dismiss.
    let (_, p) = a.unlock().unwrap();
    let it = a.signals(I_PROMPT, "Completed");
    a.call::<_, ()>(p.as_str(), I_PROMPT, "Dismiss", &())
        .unwrap();
    assert!(
        completed(it, p.as_str(), Duration::from_secs(10))
            .unwrap()
            .0
    );
    assert!(wait_until(Duration::from_secs(2), || !a.serves(p.as_str(), I_PROMPT)));
    env.assert_alive();
}

#[test]
fn prompts_not_completed_expire() {
    require_tools!();
    let mut env = Env::start_with(
        "ss-prompt-expiry",
        &[("KEYRINGRS_PROMPT_TIMEOUT", "2".into())],
    );
    env.lock_store();
    let a = env.client();
    let it = a.signals(I_PROMPT, "Completed");
    let t = Instant::now();
    let (_, p) = a.unlock().unwrap();
    // Its client is told (dismissed), and the object goes.
    let done = completed(it, p.as_str(), Duration::from_secs(8));
    assert_eq!(done, Some((true, vec![])), "no Completed after the timeout");
    assert!(
        t.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        t.elapsed()
    );
    assert!(wait_until(Duration::from_secs(2), || !a.serves(p.as_str(), I_PROMPT)));
    env.assert_alive();
}

#[test]
fn the_items_property_lists_entries_written_outside_the_daemon() {
    require_tools!();
    let mut env = Env::start("ss-items-outside");
    for i in 0..3 {
        assert_exit(&env.cli(&["set", "outside", &format!("u{i}")], b"x"), 0);
    }
    // Through the Properties interface, with a bounded wait: the daemon must not hang.
    let address = env.bus.address.clone();
    let listed = within(Duration::from_secs(10), move || {
        Client::connect(&address).items(COLLECTION)
    })
    .expect("Items did not answer within 10 s");
    assert_eq!(listed.len(), 3, "{listed:?}");
    let c = env.client();
    for p in &listed {
        assert!(
            wait_until(Duration::from_secs(2), || c.serves(p.as_str(), I_ITEM)),
            "{p}"
        );
    }
    env.assert_alive();
}

const PAR_THREADS: usize = 8;
const PAR_KEYED: usize = 480;
const PAR_SYNTHETIC: usize = 20;
const PAR_SECONDS: u64 = 4;

fn keyed_attrs(i: usize) -> HashMap<String, String> {
    attrs(&[
        ("service", "par.example"),
        ("username", &format!("u{i}")),
        ("group", "par"),
    ])
}

fn synthetic_attrs(i: usize) -> HashMap<String, String> {
    attrs(&[("app", "par-syn"), ("n", &format!("{i}")), ("group", "par")])
}

/// The first path a signal iterator yields (of `member` on the collection), None after 10 s.
fn next_signal_path(
    it: zbus::blocking::MessageIterator,
) -> (zbus::blocking::MessageIterator, Option<String>) {
    let mut it = it;
    let got = within(Duration::from_secs(10), move || {
        let p = it
            .next()
            .and_then(|m| m.ok())
            .and_then(|m| m.body().deserialize::<OwnedObjectPath>().ok())
            .map(|p| p.to_string());
        (it, p)
    });
    match got {
        Some((it, p)) => (it, p),
        None => panic!("no signal within 10 s"),
    }
}

/// Finding 4: 8 clients in parallel (searches of the whole store, direct lookups, GetSecrets,
/// CreateItem with replace=true of existing items) on a store of 500 items: every search
/// returns the complete set, no item is reported deleted or created, and no item is doubled.
#[test]
fn parallel_clients_on_500_items_see_every_item_and_no_spurious_deletions() {
    require_tools!();
    let (mut env, c, s) = Env::with_session("ss-parallel", Client::open_plain);
    let mut keyed = Vec::new();
    for i in 0..PAR_KEYED {
        keyed.push(
            c.create(&s, &keyed_attrs(i), "k", format!("k{i}").as_bytes(), false)
                .unwrap(),
        );
    }
    let mut synthetic = Vec::new();
    for i in 0..PAR_SYNTHETIC {
        synthetic.push(
            c.create(
                &s,
                &synthetic_attrs(i),
                "s",
                format!("s{i}").as_bytes(),
                false,
            )
            .unwrap(),
        );
    }
    let expected: HashSet<OwnedObjectPath> =
        keyed.iter().chain(synthetic.iter()).cloned().collect();
    assert_eq!(expected.len(), PAR_KEYED + PAR_SYNTHETIC);

    let watcher = env.client();
    let deleted = watcher.signals(I_COLLECTION, "ItemDeleted");
    let created = watcher.signals(I_COLLECTION, "ItemCreated");

    let deadline = Instant::now() + Duration::from_secs(PAR_SECONDS);
    let handles: Vec<_> = (0..PAR_THREADS)
        .map(|t| {
            let address = env.bus.address.clone();
            let keyed = keyed.clone();
            let synthetic = synthetic.clone();
            let expected = expected.clone();
            std::thread::spawn(move || -> Result<[usize; 4], String> {
                let c = Client::connect(&address);
                let s = if t % 2 == 0 {
                    c.open_plain()
                } else {
                    c.open_dh()
                };
                let mut done = [0usize; 4];
                let mut n = t;
                while Instant::now() < deadline {
                    let k = (n * 37 + t) % PAR_KEYED;
                    let j = (n + t) % PAR_SYNTHETIC;
                    match n % 4 {
                        0 => {
                            let found: HashSet<OwnedObjectPath> =
                                c.search(&attrs(&[("group", "par")])).into_iter().collect();
                            if found != expected {
                                return Err(format!(
                                    "client {t}: a search of the whole store found {} items, {} missing, {} unexpected",
                                    found.len(),
                                    expected.difference(&found).count(),
                                    found.difference(&expected).count()
                                ));
                            }
                        }
                        1 => {
                            let found = c.search(&keyed_attrs(k));
                            if found != vec![keyed[k].clone()] {
                                return Err(format!("client {t}: lookup of u{k}: {found:?}"));
                            }
                            let m = c
                                .get_secrets(&[keyed[k].clone(), synthetic[j].clone()], &s.0)
                                .map_err(|e| format!("client {t}: GetSecrets: {e}"))?;
                            for (p, want) in [
                                (&keyed[k], format!("k{k}")),
                                (&synthetic[j], format!("s{j}")),
                            ] {
                                let Some(sec) = m.get(p) else {
                                    return Err(format!("client {t}: GetSecrets lacks {p}"));
                                };
                                let got = s.1.decrypt(&sec.1, &sec.2).unwrap();
                                if *got != *want.as_bytes() {
                                    return Err(format!("client {t}: wrong secret for {p}"));
                                }
                            }
                        }
                        2 => {
                            let p = c
                                .create(&s, &keyed_attrs(k), "k", format!("k{k}").as_bytes(), true)
                                .map_err(|e| format!("client {t}: CreateItem u{k}: {e}"))?;
                            if p != keyed[k] {
                                return Err(format!("client {t}: replacing u{k} gave {p}"));
                            }
                        }
                        _ => {
                            let p = c
                                .create(
                                    &s,
                                    &synthetic_attrs(j),
                                    "s",
                                    format!("s{j}").as_bytes(),
                                    true,
                                )
                                .map_err(|e| format!("client {t}: CreateItem syn {j}: {e}"))?;
                            if p != synthetic[j] {
                                return Err(format!(
                                    "client {t}: replacing synthetic item {j} gave a new item {p}"
                                ));
                            }
                        }
                    }
                    done[n % 4] += 1;
                    n += 1;
                }
                Ok(done)
            })
        })
        .collect();
    let mut totals = [0usize; 4];
    let mut failures = Vec::new();
    for h in handles {
        match h.join().expect("client thread") {
            Ok(d) => (0..4).for_each(|i| totals[i] += d[i]),
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "parallel: {PAR_THREADS} clients for {PAR_SECONDS} s: {} whole-store searches, {} lookups + GetSecrets, {} keyed replaces, {} synthetic replaces; {} failures",
        totals[0],
        totals[1],
        totals[2],
        totals[3],
        failures.len()
    );

    // Signals: a sentinel created then deleted marks the end; nothing may come before it.
    let sentinel = c
        .create(&s, &common::keyed("sentinel", "s"), "s", b"s", true)
        .unwrap();
    let (_created, first_created) = next_signal_path(created);
    c.call::<_, OwnedObjectPath>(sentinel.as_str(), I_ITEM, "Delete", &())
        .unwrap();
    let (_deleted, first_deleted) = next_signal_path(deleted);

    // The store: exactly the 500 items, none doubled by replace=true.
    let o = env.cli(&["list"], b"");
    assert_exit(&o, 0);
    let list = String::from_utf8_lossy(&o.stdout).into_owned();
    let synthetic_entries = list.matches("org.freedesktop.Secret.Item:").count();
    let keyed_entries = list.matches("par.example\t").count();
    // (Bounded: the Items getter used to deadlock the daemon when it had to serve an item.)
    let address = env.bus.address.clone();
    let all_items: Option<HashSet<OwnedObjectPath>> = within(Duration::from_secs(10), move || {
        Client::connect(&address).items(COLLECTION)
    })
    .map(|v| v.into_iter().collect());

    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        first_created.as_deref(),
        Some(sentinel.as_str()),
        "a spurious ItemCreated"
    );
    assert_eq!(
        first_deleted.as_deref(),
        Some(sentinel.as_str()),
        "a spurious ItemDeleted"
    );
    assert_eq!(keyed_entries, PAR_KEYED, "{list}");
    assert_eq!(
        synthetic_entries, PAR_SYNTHETIC,
        "duplicates after replace=true: {list}"
    );
    assert_eq!(
        all_items.expect("Items did not answer within 10 s"),
        expected
    );
    for p in keyed.iter().chain(synthetic.iter()).step_by(50) {
        assert!(c.serves(p.as_str(), I_ITEM), "{p}");
    }
    env.assert_alive();
}
