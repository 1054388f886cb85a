//! Many writers and readers at once (THREAT-MODEL.md "Crash or power loss", "Concurrent use"):
//! 8 writers and 4 readers for 10 seconds, each with its own store handle (own descriptors and
//! flock), in one session: no update is lost, no read is torn.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use keyringrs_tests::fixtures::new_store;
use keyringrs_tests::*;
use libkeyring::Store;

/// A value that carries its own length and checksum, so a torn or mixed read is detectable.
fn value(writer: usize, n: u64) -> Vec<u8> {
    let body: Vec<u8> = (0..(n % 4096) as usize + 16)
        .map(|i| (i as u64 * 31 + n) as u8)
        .collect();
    let sum: u64 = body.iter().map(|&b| b as u64).sum();
    let mut v = format!("{writer}:{n}:{}:{sum}:", body.len()).into_bytes();
    v.extend_from_slice(&body);
    v
}

/// The `n`th key a client uses: one every writer shares, or one of writer `w`'s own.
fn key(shared: bool, w: u64, n: u64) -> String {
    if shared {
        format!("shared{}", n % 4)
    } else {
        format!("w{w}k{}", n % 16)
    }
}

fn check(v: &[u8]) -> (usize, u64) {
    let text = String::from_utf8_lossy(v);
    let parts: Vec<&str> = text.splitn(5, ':').collect();
    assert_eq!(parts.len(), 5, "malformed value");
    let (w, n) = (parts[0].parse().unwrap(), parts[1].parse().unwrap());
    assert_eq!(v, value(w, n).as_slice(), "torn or mixed read");
    (w, n)
}

#[test]
fn eight_writers_and_four_readers_for_ten_seconds_lose_nothing() {
    let dir = TempDir::new("concurrency");
    new_store(&dir);
    let stop = AtomicBool::new(false);
    let (reads, sets) = (AtomicU64::new(0), AtomicU64::new(0));
    // Last value each writer completed for each key it owns / shares.
    let last: Mutex<HashMap<(usize, String), u64>> = Mutex::new(HashMap::new());
    let started = Instant::now();
    std::thread::scope(|t| {
        for w in 0..8 {
            let (stop, last, sets, store) = (&stop, &last, &sets, dir.store());
            t.spawn(move || {
                let s = Store::open(&store).unwrap();
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    // Its own keys, and keys every writer shares.
                    let key = key(n % 3 == 0, w as u64, n);
                    s.set("svc", &key, &value(w, n)).unwrap();
                    last.lock().unwrap().insert((w, key), n);
                    sets.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for _ in 0..4 {
            let (stop, reads, store) = (&stop, &reads, dir.store());
            t.spawn(move || {
                let s = Store::open(&store).unwrap();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let key = key(i % 2 == 0, i % 8, i);
                    match s.get("svc", &key) {
                        Ok(v) => {
                            check(&v);
                            reads.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(libkeyring::Error::NoEntry { .. }) => {}
                        Err(e) => panic!("read failed: {e}"),
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_secs(10));
        stop.store(true, Ordering::Relaxed);
    });
    let s = Store::open(dir.store()).unwrap();
    let last = last.into_inner().unwrap();
    let mut shared: HashMap<String, Vec<u64>> = HashMap::new();
    for ((w, key), n) in &last {
        if key.starts_with("shared") {
            shared
                .entry(key.clone())
                .or_default()
                .push(value_id(*w, *n));
        } else {
            assert_eq!(
                check(&s.get("svc", key).unwrap()),
                (*w, *n),
                "lost update of {key}"
            );
        }
    }
    for (key, candidates) in shared {
        let (w, n) = check(&s.get("svc", &key).unwrap());
        assert!(
            candidates.contains(&value_id(w, n)),
            "{key} holds a value that was not any writer's last"
        );
    }
    eprintln!(
        "{} sets, {} reads in {:?}; {} entries",
        sets.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed),
        started.elapsed(),
        s.list().unwrap().len()
    );
}

fn value_id(w: usize, n: u64) -> u64 {
    ((w as u64) << 48) | n
}

/// Threads sharing ONE store handle (the daemon, a threaded Python or C program): listings from
/// several threads at once are each complete (a shared directory offset made them wrong 397
/// times in 400), and writes exclude each other (a per-open-file flock did not exclude threads,
/// and one thread's unlock released it for all) — security review, item 5.
#[test]
fn threads_sharing_one_store_list_completely_and_write_exclusively() {
    let dir = TempDir::new("threads");
    let s = new_store(&dir);
    for i in 0..3000 {
        s.set("svc", &format!("user{i}"), b"v").unwrap();
    }
    let wrong = AtomicU64::new(0);
    std::thread::scope(|t| {
        for _ in 0..4 {
            t.spawn(|| {
                for _ in 0..25 {
                    let listed = s.list().unwrap();
                    if listed.iter().filter(|(svc, _)| svc == "svc").count() != 3000 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
        // Meanwhile: writers and unlocks through the same handle.
        t.spawn(|| {
            for n in 0..200 {
                s.set("busy", "w", n.to_string().as_bytes()).unwrap();
                if n % 50 == 0 {
                    s.unlock(b"pw", &test_opts()).unwrap();
                }
            }
        });
    });
    assert_eq!(wrong.load(Ordering::Relaxed), 0, "incomplete listings");
    assert_eq!(&**s.get("busy", "w").unwrap(), b"199");
    // Mutual exclusion between threads of one process, on the lock itself.
    let d = std::fs::File::open(dir.store()).unwrap();
    let held = libkeyring::sys::fs::flock_exclusive(&d, None).unwrap();
    std::thread::scope(|t| {
        t.spawn(|| {
            let again = libkeyring::sys::fs::flock_exclusive(&d, Some(Duration::from_millis(50)));
            assert_eq!(
                again.unwrap_err().kind(),
                std::io::ErrorKind::WouldBlock,
                "another thread must not get the lock while it is held"
            );
        });
    });
    drop(held);
    assert!(libkeyring::sys::fs::flock_exclusive(&d, Some(Duration::ZERO)).is_ok());
}

/// A long-lived handle remembers its key's serial and the sealed entries it read (the fast
/// path): a get after a set that finished in another process returns the new value, every time
/// (the writers' generation counter), and a lock elsewhere is seen at the next get.
#[test]
fn a_get_after_a_set_in_another_process_returns_the_new_value() {
    let dir = TempDir::new("fastpath");
    let s = new_store(&dir);
    s.set("svc", "u", b"v0").unwrap();
    for i in 1..=100 {
        assert_eq!(
            &**s.get("svc", "u").unwrap(),
            format!("v{}", i - 1).as_bytes()
        );
        let o = keyringrs(
            &dir.store(),
            &["set", "--raw", "svc", "u"],
            format!("v{i}").as_bytes(),
        );
        assert_exit(&o, 0);
        assert_eq!(
            &**s.get("svc", "u").unwrap(),
            format!("v{i}").as_bytes(),
            "round {i}: a stale value after a finished set"
        );
    }
    assert_exit(&keyringrs(&dir.store(), &["delete", "svc", "u"], b""), 0);
    assert!(matches!(
        s.get("svc", "u"),
        Err(libkeyring::Error::NoEntry { .. })
    ));
    assert_exit(&keyringrs(&dir.store(), &["lock"], b""), 0);
    assert!(matches!(s.get("svc", "u"), Err(libkeyring::Error::Locked)));
}

/// A remembered serial that now names another key (the kernel reuses serials) never decrypts
/// anything with that key: the handle searches again and reads its own.
#[test]
fn a_remembered_serial_of_another_key_fails_closed_and_is_searched_again() {
    let (da, db) = (TempDir::new("serial-a"), TempDir::new("serial-b"));
    fresh_session();
    let a = Store::init(da.store(), b"pw", &test_opts()).unwrap();
    let b = Store::init(db.store(), b"pw", &test_opts()).unwrap();
    a.set("svc", "u", b"from-a").unwrap();
    b.set("svc", "u", b"from-b").unwrap();
    a.remember_key_serial(b.find_key().unwrap().serial);
    assert_eq!(&**a.get("svc", "u").unwrap(), b"from-a");
    // A dead serial: searched again too.
    a.remember_key_serial(libkeyring::keyring::KeySerial(1));
    assert_eq!(&**a.get("svc", "u").unwrap(), b"from-a");
}
