//! `ovl bench --scale`: how the engine scales across threads, in one
//! process.
//!
//! T threads (T = 1..=N), thread i pinned to the (i mod n)-th of the n CPUs
//! this process may run on, each with its own `--pairs` loopback TCP pairs
//! doing `--size` ping-pong: on each pair in turn a send on one end, a
//! receive on the other, a wait for the receive, every byte checked against
//! the pattern of `load::Pattern`; the next message on a pair goes the other
//! way. One message is `--size` bytes one way. The shapes:
//!
//! * `shared`: the T threads on one engine (operations with `Notify::None`,
//!   waited for with `Op::result_timeout`);
//! * `per-thread`: the same, each thread on its own engine;
//! * `port`: one completion port (on one engine) and T worker threads. Each
//!   worker sets up its own pairs (key: the pair's number; the worker that
//!   owns pair `k` is `k / pairs`) and starts their first messages; every
//!   operation notifies the port with a tag that says send or receive and
//!   the message's number. Any worker may take any packet, so a pair's state
//!   sits behind its own lock and whichever worker completes a message
//!   starts the pair's next one.
//! * `port-engines`: the same, but each worker sets up its pairs on an
//!   engine of its own (on io_uring, a ring per thread), all associated
//!   with the one port; a waiting worker drives every engine of the port.
//! * `port-skip`: the `port` shape with its sockets skipping the port on
//!   success (`set_skip_port_on_success`, as `ovl`'s port server does): an
//!   operation that completes at its start is handled by the thread that
//!   started it, without a packet; a message that completes at once is
//!   due again on the same worker, which starts it after a look at the
//!   port (`get_queued` without waiting).
//!
//! Every measurement starts fresh (engines, port, connections), warms up,
//! then counts messages over `--duration`; `--rounds` rounds interleave all
//! shapes, engines and thread counts. The table shows medians (min..max)
//! and each median over the median at T=1 of the same shape and engine.
//!
//! Nothing waits without a bound: an operation not complete within
//! [`STALL`], no message anywhere for [`STALL`], threads not ready within
//! [`SETUP_LIMIT`] or not stopped within [`STOP_LIMIT`] end the run with an
//! error (exit code 1).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use overlapped::{Engine, EngineKind};

use super::{BenchArgs, EngineName, Shape, report, servers};

mod shapes;

use shapes::{PortShared, pingpong, port_worker};

/// The longest wait for one operation, and the longest time without a
/// message anywhere, before the run fails.
const STALL: Duration = Duration::from_secs(5);
/// The longest time the threads may take to set up their connections.
const SETUP_LIMIT: Duration = Duration::from_secs(20);
/// The longest time the threads may take to stop once asked.
const STOP_LIMIT: Duration = Duration::from_secs(10);
/// How often the measuring thread looks at the counts, and how long a port
/// worker waits for a packet before it looks at the stop flag.
const TICK: Duration = Duration::from_millis(100);

impl Shape {
    /// Every shape, in the order of the table.
    const ALL: [Shape; 5] = [
        Shape::Shared,
        Shape::PerThread,
        Shape::Port,
        Shape::PortEngines,
        Shape::PortSkip,
    ];

    fn name(self) -> &'static str {
        match self {
            Shape::Shared => "shared",
            Shape::PerThread => "per-thread",
            Shape::Port => "port",
            Shape::PortEngines => "port-engines",
            Shape::PortSkip => "port-skip",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Shape::Shared => "T threads, one engine",
            Shape::PerThread => "T threads, an engine each",
            Shape::Port => "one port, T workers",
            Shape::PortEngines => "one port, T workers, an engine each",
            Shape::PortSkip => "one port, T workers, skip-on-success",
        }
    }
}

impl EngineName {
    fn kind(self) -> EngineKind {
        match self {
            EngineName::Uring => EngineKind::Uring,
            EngineName::Poll => EngineKind::Poll,
        }
    }
}

/// What every measurement of the run shares.
#[derive(Debug, Clone)]
struct Config {
    size: usize,
    pairs: usize,
    warm: Duration,
    dur: Duration,
    /// The CPUs this process may run on; thread i goes to `cpus[i % len]`.
    cpus: Vec<usize>,
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    let cpus: Vec<usize> = rustix::thread::sched_getaffinity(None)
        .map(|set| {
            (0..rustix::thread::CpuSet::MAX_CPU)
                .filter(|&c| set.is_set(c))
                .collect()
        })
        .unwrap_or_default();
    if cpus.is_empty() {
        (0..servers::cpus()).collect()
    } else {
        cpus
    }
}

/// A message counter of one thread, on a cache line of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Count(AtomicU64);

/// What the measuring thread and the T threads share.
#[derive(Debug)]
struct Run {
    stop: AtomicBool,
    counts: Vec<Count>,
}

impl Run {
    fn total(&self) -> u64 {
        self.counts
            .iter()
            .map(|c| c.0.load(Ordering::Relaxed))
            .sum()
    }

    /// Thread `me` has completed `done` messages.
    fn record(&self, me: usize, done: u64) {
        self.counts[me].0.store(done, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// What a thread tells the measuring thread.
enum Report {
    /// Its connections are set up and running.
    Ready,
    /// It stopped, with every resource of its own released.
    Finished(Result<(), String>),
}

/// Starts thread `i` pinned to its CPU; it reports on `tx`.
fn spawn(
    i: usize,
    cfg: &Config,
    tx: &Sender<(usize, Report)>,
    body: impl FnOnce(&dyn Fn()) -> Result<(), String> + Send + 'static,
) -> Result<JoinHandle<()>, String> {
    let cpu = cfg.cpus[i % cfg.cpus.len()];
    let tx = tx.clone();
    std::thread::Builder::new()
        .name(format!("scale-{i}"))
        .spawn(move || {
            servers::pin(None, cpu);
            let ready = || {
                let _ = tx.send((i, Report::Ready));
            };
            let r = body(&ready);
            let _ = tx.send((i, Report::Finished(r)));
        })
        .map_err(|e| format!("cannot start thread {i}: {e}"))
}

/// One measurement: `t` threads of `shape` on engine `kind`; messages per
/// second over the measured part.
fn measure(shape: Shape, kind: EngineKind, t: usize, cfg: &Config) -> Result<f64, String> {
    let run = Arc::new(Run {
        stop: AtomicBool::new(false),
        counts: (0..t).map(|_| Count::default()).collect(),
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let engine = |k| Engine::with_kind(k).map_err(|e| format!("engine {k}: {e}"));
    let mut threads = Vec::with_capacity(t);
    let mut started = Ok(());
    let port = match shape {
        Shape::Port | Shape::PortSkip => Some(Arc::new(PortShared::new(
            Some(engine(kind)?),
            kind,
            t,
            shape == Shape::PortSkip,
            cfg,
        ))),
        Shape::PortEngines => Some(Arc::new(PortShared::new(None, kind, t, false, cfg))),
        _ => None,
    };
    let shared = match shape {
        Shape::Shared => Some(engine(kind)?),
        _ => None,
    };
    for i in 0..t {
        let (run, c) = (run.clone(), cfg.clone());
        let h = match (&shared, &port) {
            (Some(e), _) => {
                let e = e.clone();
                spawn(i, cfg, &tx, move |ready| pingpong(&e, i, &c, &run, ready))
            }
            (None, Some(sh)) => {
                let sh = sh.clone();
                spawn(i, cfg, &tx, move |ready| {
                    port_worker(&sh, i, &c, &run, ready)
                })
            }
            (None, None) => spawn(i, cfg, &tx, move |ready| {
                let e = engine(kind)?;
                pingpong(&e, i, &c, &run, ready)
            }),
        };
        match h {
            Ok(h) => threads.push(h),
            Err(e) => {
                started = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let mut finished = vec![false; t];
    let rate = started.and_then(|()| watch(&rx, &run, threads.len(), cfg, &mut finished));
    run.stop.store(true, Ordering::Relaxed);
    let stopped = collect(&rx, &mut finished[..threads.len()]);
    for (h, done) in threads.into_iter().zip(&finished) {
        if *done {
            let _ = h.join();
        }
    }
    let rate = rate?;
    stopped?;
    Ok(rate)
}

/// Waits until the `t` threads are ready, lets them warm up, and counts
/// their messages over the measured part.
fn watch(
    rx: &Receiver<(usize, Report)>,
    run: &Run,
    t: usize,
    cfg: &Config,
    finished: &mut [bool],
) -> Result<f64, String> {
    let early = |i: usize, r: Result<(), String>| {
        r.err()
            .unwrap_or_else(|| format!("thread {i} stopped early"))
    };
    let setup_end = Instant::now() + SETUP_LIMIT;
    let mut ready = 0;
    while ready < t {
        let left = setup_end.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((_, Report::Ready)) => ready += 1,
            Ok((i, Report::Finished(r))) => {
                finished[i] = true;
                return Err(early(i, r));
            }
            Err(RecvTimeoutError::Timeout) => {
                return Err(format!(
                    "{} of {t} threads not set up within {} s",
                    t - ready,
                    SETUP_LIMIT.as_secs()
                ));
            }
            Err(RecvTimeoutError::Disconnected) => return Err("every thread stopped".into()),
        }
    }
    let measure_from = Instant::now() + cfg.warm;
    let end = measure_from + cfg.dur;
    let mut base: Option<(Instant, u64)> = None;
    let mut last = (Instant::now(), run.total());
    loop {
        let now = Instant::now();
        let total = run.total();
        if base.is_none() && now >= measure_from {
            base = Some((now, total));
        }
        if let Some((t0, c0)) = base.filter(|_| now >= end) {
            return Ok((total - c0) as f64 / now.duration_since(t0).as_secs_f64());
        }
        if total != last.1 {
            last = (now, total);
        } else if now.duration_since(last.0) > STALL {
            return Err(format!(
                "stalled: no message completed for {} s",
                STALL.as_secs()
            ));
        }
        let next = if base.is_none() { measure_from } else { end };
        match rx.recv_timeout(next.saturating_duration_since(now).min(TICK)) {
            Ok((i, Report::Finished(r))) => {
                finished[i] = true;
                return Err(early(i, r));
            }
            Ok((_, Report::Ready)) | Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Err("every thread stopped".into()),
        }
    }
}

/// Waits (at most [`STOP_LIMIT`]) for the threads not yet finished; the
/// first error any of them reports.
fn collect(rx: &Receiver<(usize, Report)>, finished: &mut [bool]) -> Result<(), String> {
    let end = Instant::now() + STOP_LIMIT;
    let mut first_error = Ok(());
    while finished.iter().any(|f| !f) {
        match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            Ok((i, Report::Finished(r))) => {
                finished[i] = true;
                if first_error.is_ok() {
                    first_error = r.map_err(|e| format!("thread {i}: {e}"));
                }
            }
            Ok((_, Report::Ready)) => {}
            Err(_) => {
                let left = finished.iter().filter(|f| !**f).count();
                return Err(format!(
                    "{left} thread(s) did not stop within {} s",
                    STOP_LIMIT.as_secs()
                ));
            }
        }
    }
    first_error
}

/// The rates measured for one shape on one engine: per thread count, the
/// rates of the rounds.
type Rates = BTreeMap<(EngineName, Shape), Vec<Vec<f64>>>;

/// Runs `--scale`.
pub(super) fn run(a: &BenchArgs) -> ExitCode {
    let cpus = allowed_cpus();
    let n = a.scale_opts.threads.unwrap_or(cpus.len());
    let cfg = Config {
        size: a.size,
        pairs: a.scale_opts.pairs.unwrap_or(8),
        warm: Duration::from_secs_f64(a.warmup.unwrap_or(0.3)),
        dur: Duration::from_secs_f64(a.duration.unwrap_or(2.0)),
        cpus,
    };
    let rounds = a.rounds.unwrap_or(3);
    let wanted = if a.scale_opts.engine.is_empty() {
        vec![EngineName::Uring, EngineName::Poll]
    } else {
        a.scale_opts.engine.clone()
    };
    let shapes = if a.scale_opts.shapes.is_empty() {
        Shape::ALL.to_vec()
    } else {
        a.scale_opts.shapes.clone()
    };
    let mut engines = Vec::new();
    let mut skipped = BTreeMap::new();
    for e in wanted {
        match Engine::with_kind(e.kind()) {
            Ok(_) => engines.push(e),
            Err(why) => {
                println!("{}: skipped, the engine cannot run here ({why})", e.kind());
                skipped.insert(e.kind().name(), why.to_string());
            }
        }
    }
    if engines.is_empty() {
        eprintln!("ovl bench --scale: no engine can run here");
        return ExitCode::from(1);
    }
    let bar = indicatif::ProgressBar::new((rounds * engines.len() * shapes.len() * n) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut rates: Rates = BTreeMap::new();
    for _round in 0..rounds {
        for &e in &engines {
            for &shape in &shapes {
                for t in 1..=n {
                    bar.set_message(format!("{} {} T={t}", e.kind(), shape.name()));
                    match measure(shape, e.kind(), t, &cfg) {
                        Ok(r) => rates
                            .entry((e, shape))
                            .or_insert_with(|| vec![Vec::new(); n])[t - 1]
                            .push(r),
                        Err(why) => {
                            bar.finish_and_clear();
                            eprintln!(
                                "ovl bench --scale: {} with {t} thread(s) on {}: {why}",
                                shape.name(),
                                e.kind()
                            );
                            return ExitCode::from(1);
                        }
                    }
                    bar.inc(1);
                }
            }
        }
    }
    bar.finish_and_clear();
    let rows = summarize(&rates);
    print(&cfg, rounds, &rows);
    if let Some(path) = &a.json {
        if let Err(e) = report::write_pretty(path, &json(&cfg, rounds, &rows, &skipped)) {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

/// One line of the table: a shape on an engine with T threads.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    engine: EngineName,
    shape: Shape,
    threads: usize,
    rounds: Vec<f64>,
    rate: report::Spread,
    /// The median over the median at T=1 of the same shape and engine.
    x_t1: Option<f64>,
    /// Each round over the same round at T=1 (the rounds of one shape and
    /// engine run T=1, T=2, ... back to back).
    x_t1_rounds: Vec<f64>,
}

fn summarize(rates: &Rates) -> Vec<Row> {
    let mut rows = Vec::new();
    for (&(engine, shape), per_t) in rates {
        let one = per_t
            .first()
            .and_then(|r| report::median(r))
            .filter(|&m| m > 0.0);
        for (i, rs) in per_t.iter().enumerate() {
            let Some(rate) = report::Spread::of(rs) else {
                continue;
            };
            let x_t1_rounds = per_t
                .first()
                .map(|ones| {
                    ones.iter()
                        .zip(rs)
                        .filter(|(o, _)| **o > 0.0)
                        .map(|(o, r)| r / o)
                        .collect()
                })
                .unwrap_or_default();
            rows.push(Row {
                engine,
                shape,
                threads: i + 1,
                rounds: rs.clone(),
                rate,
                x_t1: one.map(|m| rate.med / m),
                x_t1_rounds,
            });
        }
    }
    rows
}

fn print(cfg: &Config, rounds: usize, rows: &[Row]) {
    let uname = rustix::system::uname();
    println!(
        "ovl bench --scale: kernel {}, {} CPUs; per thread {} loopback TCP pairs, {} B ping-pong \
         (send, receive, wait); {rounds} round(s) of {:.1} s (+{:.1} s warm-up); thread i on CPU i mod {}; \
         medians (min..max); x T=1: the medians' ratio, and (min..max) of each round over its own T=1 round",
        uname.release().to_string_lossy(),
        servers::cpus(),
        cfg.pairs,
        cfg.size,
        cfg.dur.as_secs_f64(),
        cfg.warm.as_secs_f64(),
        cfg.cpus.len(),
    );
    println!(
        "shapes: {}",
        Shape::ALL
            .map(|s| format!("{} = {}", s.name(), s.describe()))
            .join("; ")
    );
    let mut last = None;
    for r in rows {
        if last.map(|(e, _)| e) != Some(r.engine) {
            println!();
            println!("engine {}", r.engine.kind());
            println!(
                "  {:<12} {:>3} {:>30} {:>7} {:>14}",
                "shape", "T", "msgs/s", "x T=1", "rounds"
            );
        }
        let shape = if last != Some((r.engine, r.shape)) {
            r.shape.name()
        } else {
            ""
        };
        last = Some((r.engine, r.shape));
        let report::Spread { med, lo, hi } = r.rate;
        let per_round = report::Spread::of(&r.x_t1_rounds)
            .map_or("-".into(), |s| format!("({:.2}..{:.2})", s.lo, s.hi));
        println!(
            "  {shape:<12} {:>3} {:>30} {:>7} {:>14}",
            r.threads,
            format!("{med:.0} ({lo:.0}..{hi:.0})"),
            r.x_t1.map_or("-".into(), |x| format!("{x:.2}")),
            per_round,
        );
    }
}

fn json(
    cfg: &Config,
    rounds: usize,
    rows: &[Row],
    skipped: &BTreeMap<&str, String>,
) -> serde_json::Value {
    serde_json::json!({
        "scale": {
            "size": cfg.size,
            "pairs_per_thread": cfg.pairs,
            "duration_s": cfg.dur.as_secs_f64(),
            "warmup_s": cfg.warm.as_secs_f64(),
            "rounds": rounds,
            "cpus": cfg.cpus,
            "message": "size bytes one way: a send on one end, a receive on the other, a wait",
        },
        "results": rows.iter().map(|r| serde_json::json!({
            "engine": r.engine.kind().name(),
            "shape": r.shape.name(),
            "threads": r.threads,
            "msgs_per_s": r.rounds,
            "median": r.rate.med,
            "min": r.rate.lo,
            "max": r.rate.hi,
            "x_t1": r.x_t1,
            "x_t1_rounds": r.x_t1_rounds,
        })).collect::<Vec<_>>(),
        "skipped": skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_are_to_one_thread_of_the_same_shape_and_engine() {
        let mut rates = Rates::new();
        rates.insert(
            (EngineName::Poll, Shape::Shared),
            vec![vec![100.0, 120.0, 110.0], vec![70.0, 80.0, 90.0]],
        );
        rates.insert(
            (EngineName::Poll, Shape::PerThread),
            vec![vec![100.0], vec![190.0]],
        );
        let rows = summarize(&rates);
        let got: Vec<_> = rows
            .iter()
            .map(|r| (r.shape, r.threads, r.rate.med, r.x_t1))
            .collect();
        // Round by round: 70/100, 80/120, 90/110.
        assert_eq!(rows[1].x_t1_rounds, [0.7, 80.0 / 120.0, 90.0 / 110.0]);
        assert_eq!(
            got,
            [
                (Shape::Shared, 1, 110.0, Some(1.0)),
                (Shape::Shared, 2, 80.0, Some(80.0 / 110.0)),
                (Shape::PerThread, 1, 100.0, Some(1.0)),
                (Shape::PerThread, 2, 190.0, Some(1.9)),
            ]
        );
    }
}
