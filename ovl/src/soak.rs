//! `ovl soak`: many connections against an echo server child process for a
//! while, random message sizes, random gather/scatter splits, random
//! pipelining depth; every byte verified; the server's RSS and open file
//! descriptors sampled every second. Exits non-zero, saying why, on any
//! mismatched, lost or duplicated byte, on RSS growth over 10% after the
//! warm-up, or when the server's descriptors do not come back to baseline.

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use overlapped::Engine;
use overlapped::probe::EngineChoice;
use overlapped::rt::{self, TcpStream};
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::limits;
use crate::server::Model;

/// Options of `ovl soak`.
#[derive(Debug, clap::Args)]
pub struct SoakArgs {
    /// Connections (1 to 1,000,000).
    #[arg(long, default_value_t = 2000, value_parser = limits::conns)]
    pub conns: usize,
    /// Seconds of load (at least 1). The first fifth (at least 2 s, at most
    /// 60 s) is the warm-up, left out of the memory check: connections are
    /// still being opened, and the server takes a 64 KiB receive buffer
    /// from its pool for each connection that has data (an idle one holds
    /// none), so its memory follows its busy connection count until all are
    /// open; after the warm-up its RSS may grow at most 10%.
    #[arg(long, default_value_t = 30, value_parser = limits::seconds)]
    pub duration: u64,
    /// Server model.
    #[arg(long, value_enum, default_value_t = Model::Port)]
    pub model: Model,
    /// Engine of the server and the load generator: auto, uring, poll
    /// [default: $OVERLAPPED_ENGINE, else auto].
    #[arg(long)]
    pub engine: Option<EngineChoice>,
    /// Largest message, bytes (1 B to 64 MiB).
    #[arg(long, default_value_t = 64 * 1024, value_parser = limits::soak_size)]
    pub max_size: usize,
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn model_name(m: Model) -> &'static str {
    match m {
        Model::Port => "port",
        Model::Routines => "routines",
        Model::Events => "events",
        Model::Async => "async",
    }
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn fds(pid: u32) -> Option<usize> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

fn byte(conn: usize, pos: u64) -> u8 {
    ((conn as u64)
        .wrapping_mul(2654435761)
        .wrapping_add(pos.wrapping_mul(31))
        % 251) as u8
}

fn split(rng: &mut SmallRng, total: usize) -> Vec<usize> {
    let parts = rng.random_range(1..=4).min(total.max(1));
    let mut cuts: Vec<usize> = (1..parts).map(|_| rng.random_range(0..=total)).collect();
    cuts.sort_unstable();
    let mut out = Vec::with_capacity(parts);
    let mut prev = 0;
    for c in cuts.into_iter().chain(std::iter::once(total)) {
        out.push(c - prev);
        prev = c;
    }
    out
}

#[derive(Default)]
struct Totals {
    bytes: Cell<u64>,
    msgs: Cell<u64>,
    errors: Cell<u64>,
    mismatches: Cell<u64>,
    /// Connections that were open for the whole run and never finished a
    /// round: something starved them.
    starved: Cell<u64>,
}

/// Reads and verifies `n` echoed bytes starting at stream offset `from`,
/// with random scatter splits. Returns false on an error or early end.
async fn read_back(
    s: Rc<TcpStream>,
    id: usize,
    from: u64,
    n: usize,
    max: usize,
    seed: u64,
    t: Rc<Totals>,
) -> bool {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut pos = from;
    let mut left = n;
    while left > 0 {
        let room: Vec<Vec<u8>> = split(&mut rng, left.min(max))
            .into_iter()
            .map(|k| vec![0u8; k])
            .collect();
        let (r, bufs) = s.read_vectored_owned(room).await;
        match r {
            Ok(0) | Err(_) => return false,
            Ok(k) => {
                for b in bufs.iter().flat_map(|b| b.iter()) {
                    if *b != byte(id, pos) {
                        t.mismatches.set(t.mismatches.get() + 1);
                    }
                    pos += 1;
                }
                left -= k;
                t.bytes.set(t.bytes.get() + k as u64);
            }
        }
    }
    true
}

async fn connection(
    e: Engine,
    addr: SocketAddr,
    id: usize,
    until: Instant,
    max: usize,
    t: Rc<Totals>,
) {
    let Ok(s) = TcpStream::connect(&e, addr).await else {
        t.errors.set(t.errors.get() + 1);
        return;
    };
    let s = Rc::new(s);
    let mut rng = SmallRng::seed_from_u64(id as u64);
    let mut sent = 0u64;
    let mut rounds = 0u64;
    while Instant::now() < until {
        // A round: `depth` messages in flight, echoes read concurrently by
        // their own task (so neither side can block the other).
        let depth = rng.random_range(1..=4);
        let sizes: Vec<usize> = (0..depth).map(|_| rng.random_range(1..=max)).collect();
        let total: usize = sizes.iter().sum();
        let reader = rt::spawn(read_back(
            s.clone(),
            id,
            sent,
            total,
            max,
            rng.random(),
            t.clone(),
        ));
        for size in sizes {
            let bufs: Vec<Vec<u8>> = split(&mut rng, size)
                .into_iter()
                .map(|n| {
                    let b: Vec<u8> = (0..n as u64).map(|k| byte(id, sent + k)).collect();
                    sent += n as u64;
                    b
                })
                .collect();
            let (r, _) = s.write_vectored_owned(bufs).await;
            if r.is_err() {
                t.errors.set(t.errors.get() + 1);
                return;
            }
        }
        if !reader.await {
            t.errors.set(t.errors.get() + 1);
            return;
        }
        t.msgs.set(t.msgs.get() + depth as u64);
        rounds += 1;
    }
    if rounds == 0 {
        t.starved.set(t.starved.get() + 1);
    }
    let _ = s.socket().shutdown(std::net::Shutdown::Both);
}

/// Runs the soak.
pub fn run(a: SoakArgs) -> ExitCode {
    let (engine, chosen) = match crate::engine::build(a.engine) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ovl soak: {e}");
            return ExitCode::from(2);
        }
    };
    let port = match free_port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ovl soak: no free port: {e}");
            return ExitCode::from(2);
        }
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ovl soak: {e}");
            return ExitCode::from(2);
        }
    };
    let mut cmd = Command::new(exe);
    cmd.args([
        "echo-server",
        "--addr",
        &addr.to_string(),
        "--model",
        model_name(a.model),
    ])
    .args([
        "--max-conns",
        &(a.conns + 16).to_string(),
        "--buf-size",
        "65536",
    ])
    .stdout(Stdio::null());
    // Not given, the server reads OVERLAPPED_ENGINE as this process did.
    if let Some(c) = a.engine {
        cmd.args(["--engine", crate::engine::name(c)]);
    }
    let mut server = match cmd.spawn() {
        Ok(c) => Server(c),
        Err(e) => {
            eprintln!("ovl soak: cannot start the server: {e}");
            return ExitCode::from(2);
        }
    };
    let pid = server.0.id();
    let start = Instant::now();
    while std::net::TcpStream::connect(addr).is_err() {
        if let Ok(Some(st)) = server.0.try_wait() {
            eprintln!("ovl soak: the server exited at start ({st})");
            return ExitCode::from(2);
        }
        if start.elapsed() > Duration::from_secs(10) {
            eprintln!("ovl soak: the server did not start listening");
            return ExitCode::from(2);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let fd_base = fds(pid).unwrap_or(0);
    println!(
        "soak: {} connections, {} s, server model {:?} on {}, load engine {}",
        a.conns,
        a.duration,
        a.model,
        crate::engine::name(chosen.choice),
        engine.kind()
    );
    // Sample the server every second on a helper thread.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = Vec::new();
            let t0 = Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                samples.push((
                    t0.elapsed().as_secs_f64(),
                    rss_kib(pid).unwrap_or(0),
                    fds(pid).unwrap_or(0),
                ));
                std::thread::sleep(Duration::from_secs(1));
            }
            samples
        })
    };
    let totals = Rc::new(Totals::default());
    let until = Instant::now() + Duration::from_secs(a.duration);
    let max = a.max_size;
    rt::block_on(async {
        let tasks: Vec<_> = (0..a.conns)
            .map(|id| {
                rt::spawn(connection(
                    engine.clone(),
                    addr,
                    id,
                    until,
                    max,
                    totals.clone(),
                ))
            })
            .collect();
        for t in tasks {
            t.await;
        }
    });
    drop(engine);
    // Descriptors back to baseline once the clients are gone.
    let settle = Instant::now();
    let mut fd_end = fds(pid).unwrap_or(0);
    while fd_end > fd_base && settle.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        fd_end = fds(pid).unwrap_or(0);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = sampler.join().unwrap_or_default();
    let warmup_s = (a.duration as f64 / 5.0).clamp(2.0, 60.0);
    let warm: Vec<u64> = samples
        .iter()
        .filter(|s| s.0 >= warmup_s)
        .map(|s| s.1)
        .collect();
    let (rss_first, rss_max) = (
        warm.first().copied().unwrap_or(0),
        warm.iter().copied().max().unwrap_or(0),
    );
    let growth = if rss_first > 0 {
        rss_max as f64 / rss_first as f64 - 1.0
    } else {
        0.0
    };
    let secs = a.duration.max(1) as f64;
    println!("report:");
    println!(
        "  messages echoed      {} ({:.0}/s)",
        totals.msgs.get(),
        totals.msgs.get() as f64 / secs
    );
    println!(
        "  bytes verified       {} ({:.1} MB/s)",
        totals.bytes.get(),
        totals.bytes.get() as f64 / secs / 1e6
    );
    println!("  mismatched bytes     {}", totals.mismatches.get());
    println!("  connection errors    {}", totals.errors.get());
    println!("  starved connections  {}", totals.starved.get());
    println!(
        "  server RSS           {rss_first} KiB after the {warmup_s:.0} s warm-up, max {rss_max} KiB ({:+.1}%)",
        growth * 100.0
    );
    println!("  server descriptors   {fd_base} at start, {fd_end} at the end");
    let mut failed = Vec::new();
    if totals.mismatches.get() > 0 {
        failed.push(format!(
            "{} bytes did not match what was sent",
            totals.mismatches.get()
        ));
    }
    if totals.errors.get() > 0 {
        failed.push(format!(
            "{} connections failed (lost bytes or errors)",
            totals.errors.get()
        ));
    }
    if totals.starved.get() > 0 {
        failed.push(format!(
            "{} connections never finished a round (starved)",
            totals.starved.get()
        ));
    }
    if growth > 0.10 {
        failed.push(format!(
            "server RSS grew {:.1}% after warm-up",
            growth * 100.0
        ));
    }
    if fd_end > fd_base {
        failed.push(format!(
            "server descriptors did not come back ({fd_end} vs {fd_base})"
        ));
    }
    if failed.is_empty() {
        println!("PASS");
        ExitCode::SUCCESS
    } else {
        for f in &failed {
            println!("FAIL: {f}");
        }
        ExitCode::from(1)
    }
}
