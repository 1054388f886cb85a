//! The secret-service group's measurements: lookups and CreateItem round-robin within a budget,
//! and the load of concurrent clients.

use super::*;

// ---------------------------------------------------------------------------------------------
// Measurements.

pub(super) fn name(server: &str, what: &str) -> String {
    format!("{server}: {what}")
}

/// One call as a warm-up (its error is the contender's), then, unless it took over 50 ms, the
/// median of three timed calls.
pub(super) fn per_call(op: &mut Op<'_>) -> Result<f64, String> {
    let t = Instant::now();
    op()?;
    let first = t.elapsed().as_nanos() as f64;
    if first > 50e6 {
        return Ok(first);
    }
    let mut v = [0f64; 3];
    for x in &mut v {
        let t = Instant::now();
        op()?;
        *x = t.elapsed().as_nanos() as f64;
    }
    v.sort_by(f64::total_cmp);
    Ok(v[1])
}

/// Samples for contenders of `per_call` ns together within `budget`, in `min..=max`.
pub(super) fn samples_within(budget: Duration, per_call: f64, min: usize, max: usize) -> usize {
    ((budget.as_nanos() as f64 / per_call.max(1.0)) as usize).clamp(min, max.max(min))
}

/// A lookup of one of 64 items spread over the `n` of `kind` (as the get rows).
pub(super) fn lookup_op(client: &Client, kind: Kind, n: usize) -> Op<'_> {
    let keys: Vec<(HashMap<String, String>, String)> = crate::fixture::picks(n)
        .into_iter()
        .map(|i| (kind.attrs(i), secret(i)))
        .collect();
    let mut k = 0usize;
    Box::new(move || {
        let (q, s) = &keys[k % keys.len()];
        k += 1;
        client.lookup(q, s)
    })
}

/// `make`'s op on the client, if there is one (else why not).
pub(super) fn with_client<'a>(
    c: &'a Result<Client, String>,
    make: impl FnOnce(&'a Client) -> Op<'a>,
) -> Result<Op<'a>, String> {
    c.as_ref().map(make).map_err(Clone::clone)
}

/// CreateItem of app item `next`, `next + 1`, ... (a fresh id each call).
pub(super) fn create_op<'a>(client: &'a Client, next: &'a Cell<usize>) -> Op<'a> {
    Box::new(move || {
        let i = next.get();
        next.set(i + 1);
        client.create(app_attrs(i), &label(i), &secret(i))
    })
}

/// Measure the contenders that are there round-robin, within `budget`; rows in their order.
pub(super) fn measure(
    contenders: Vec<(String, Result<Op<'_>, String>)>,
    n: usize,
    budget: Duration,
    min: usize,
    max: usize,
    rounds: usize,
) -> Vec<Row> {
    let mut out: Vec<(String, Option<Result<Stats, String>>)> = Vec::new();
    let mut ops: Vec<(String, Op)> = Vec::new();
    let mut cost = 0f64;
    for (name, op) in contenders {
        match op.and_then(|mut op| per_call(&mut op).map(|t| (op, t))) {
            Ok((op, t)) => {
                cost += t;
                ops.push((name.clone(), op));
                out.push((name, None));
            }
            Err(e) => out.push((name, Some(Err(e)))),
        }
    }
    let samples = samples_within(budget, cost, min, max);
    let mut res = compare(&mut ops, 0, samples, rounds).into_iter();
    out.into_iter()
        .map(|(name, r)| {
            let r = r.unwrap_or_else(|| res.next().unwrap_or_else(|| Err("not run".into())));
            time_row(GROUP, &name, Some(n), r)
        })
        .collect()
}

/// `LOAD_CLIENTS` threads, each with its own connection and plain session, each `per_client`
/// app-attribute lookups (answers checked): (lookups per second, per-lookup latency).
pub(super) fn load(address: &str, n: usize, per_client: usize) -> Result<(f64, Stats), String> {
    let barrier = Arc::new(Barrier::new(LOAD_CLIENTS + 1));
    let threads: Vec<_> = (0..LOAD_CLIENTS)
        .map(|t| {
            let (address, barrier) = (address.to_string(), barrier.clone());
            std::thread::spawn(move || -> Result<Vec<f64>, String> {
                let client = Client::new(&address);
                barrier.wait();
                let client = client?;
                let mut lat = Vec::with_capacity(per_client);
                for j in 0..per_client {
                    let i = (t * 31 + j * 7919 + 3) % n;
                    let t0 = Instant::now();
                    client.lookup(&app_attrs(i), &secret(i))?;
                    lat.push(t0.elapsed().as_nanos() as f64);
                }
                Ok(lat)
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    let mut lat = Vec::with_capacity(LOAD_CLIENTS * per_client);
    let mut err = None;
    for t in threads {
        match t.join() {
            Ok(Ok(v)) => lat.extend(v),
            Ok(Err(e)) => err = Some(e),
            Err(_) => err = Some("a client thread panicked".into()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(e) = err {
        return Err(e);
    }
    let total = lat.len();
    let stats = Stats::from_samples(lat).ok_or("no lookups")?;
    Ok((total as f64 / elapsed, stats))
}

pub(super) fn load_row(
    server: &str,
    n: usize,
    plan: &Plan,
    client: &Result<Client, String>,
    address: Result<&str, String>,
) -> Row {
    let what = name(server, &format!("load: {LOAD_CLIENTS} clients, lookups/s"));
    let r = client.as_ref().map_err(Clone::clone).and_then(|c| {
        let mut op = lookup_op(c, Kind::App, n);
        let t = per_call(&mut op)?;
        let per_client = samples_within(
            plan.load_budget,
            t * LOAD_CLIENTS as f64,
            10,
            plan.load_lookups,
        );
        let (rate, lat) = load(address?, n, per_client)?;
        Ok((rate, lat, per_client))
    });
    match r {
        Ok((rate, lat, per_client)) => Row::new(
            GROUP,
            &what,
            Some(n),
            Value::Rate {
                per_second: rate,
                count: lat.samples,
            },
        )
        .note(format!(
            "{LOAD_CLIENTS} threads × {per_client} lookups (SearchItems xdg:schema+id, GetSecrets, checked), own connections; per lookup median {}, p99 {}",
            fmt_ns(lat.median),
            fmt_ns(lat.p99)
        )),
        Err(e) => na(GROUP, &what, Some(n), e),
    }
}

pub(super) fn fill(store: &mut Result<OursStore, String>, n: usize) -> Result<(), String> {
    store.as_mut().map_err(|e| e.clone())?.fill(n)
}

pub(super) fn start_ours(
    store: &Result<OursStore, String>,
    filled: Result<(), String>,
    bin: &Result<PathBuf, String>,
    dir: &Path,
) -> Result<Server, String> {
    filled?;
    let bin = bin.as_ref().map_err(Clone::clone)?;
    store.as_ref().map_err(Clone::clone)?.start(bin, dir)
}

pub(super) fn client(s: &Result<Server, String>) -> Result<Client, String> {
    s.as_ref()
        .map_err(Clone::clone)
        .and_then(|s| Client::new(s.bus.address()))
}

pub(super) fn address(s: &Result<Server, String>) -> Result<&str, String> {
    s.as_ref().map(|s| s.bus.address()).map_err(Clone::clone)
}
