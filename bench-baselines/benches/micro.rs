//! Micro-benchmarks of the overlapped model (criterion).
//!
//! * `roundtrip64/{uring,poll,tokio}`: a 64-byte send on one end of a
//!   connected loopback TCP pair, then a 64-byte receive on the other; the
//!   overlapped cases start each operation with `Notify::None` and wait on
//!   the handle, reusing the buffers the operations hand back; the tokio case
//!   is `write_all` then `read_exact` on a `current_thread` runtime.
//! * `wait_for_events/{1,1000}`: a wait-any with a zero timeout over 1 and
//!   over 1,000 events, the last one set.
//! * `port_roundtrip/post_get`: `CompletionPort::post` then `get_queued` on
//!   one thread.
//! * `file_read4k/{uring,poll}`: random 4 KiB reads of a 64 MiB file (in
//!   the page cache) through a completion port, 32 in flight: each
//!   iteration takes one packet and starts the next read with its buffer
//!   (io_uring's `READV` against the poll engine's worker pool).
//!
//! `cargo bench -p bench-baselines --bench micro` runs them (warm-up 1 s,
//! measurement 2 s each) and then prints a table of the time per iteration
//! and the `uring/tokio`, `poll/tokio` round-trip ratios, read back from the
//! estimates criterion wrote during this run (its slope estimate, the `time`
//! it prints; the mean where there is no slope). `-- --test` runs each
//! benchmark once and prints no table.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use criterion::{BenchmarkId, Criterion};
use overlapped::{
    CompletionPort, Engine, EngineKind, Event, File, MsgFlags, Notify, Socket, WaitMode,
    WaitOutcome, wait_for_events,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes per message of the round trip.
const MSG: usize = 64;

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// A connected pair of overlapped TCP sockets on loopback, `TCP_NODELAY`
/// on both: (client, server).
fn overlapped_pair(engine: &Engine) -> std::io::Result<(Socket, Socket)> {
    let listener = Socket::tcp_listener(engine, &loopback())?;
    let addr = listener.local_addr()?;
    let client = Socket::tcp_for(engine, &addr)?;
    client.connect_wait(addr)?;
    let (server, _) = listener.accept_wait()?;
    for s in [&client, &server] {
        s.with_socket2(|s| s.set_tcp_nodelay(true))?;
    }
    Ok((client, server))
}

/// One round: `MSG` bytes sent by `client`, all of them received by
/// `server`. The buffers go into the operations and come back.
fn overlapped_round(client: &Socket, server: &Socket, out: &mut Vec<u8>, inb: &mut Vec<u8>) {
    let sent = client
        .send(std::mem::take(out), MsgFlags::empty(), Notify::None)
        .expect("start send")
        .wait()
        .expect("send completion");
    let (res, buf) = sent.into_result();
    assert_eq!(res.expect("send"), MSG);
    *out = buf;

    let mut got = 0;
    while got < MSG {
        inb.resize(MSG - got, 0);
        let done = server
            .recv(std::mem::take(inb), MsgFlags::empty(), Notify::None)
            .expect("start recv")
            .wait()
            .expect("recv completion");
        let (res, buf) = done.into_result();
        let n = res.expect("recv");
        assert!(n > 0, "peer closed");
        got += n;
        *inb = buf;
    }
    inb.resize(MSG, 0);
    black_box(&inb);
}

fn bench_roundtrip(c: &mut Criterion) {
    let mut g = c.benchmark_group("roundtrip64");
    for (id, kind) in [("uring", EngineKind::Uring), ("poll", EngineKind::Poll)] {
        let engine = match Engine::with_kind(kind) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("roundtrip64/{id}: skipped, engine unavailable: {e}");
                continue;
            }
        };
        let (client, server) = overlapped_pair(&engine).expect("loopback pair");
        let mut out = vec![0x5a; MSG];
        let mut inb = vec![0; MSG];
        g.bench_function(id, |b| {
            b.iter(|| overlapped_round(&client, &server, &mut out, &mut inb));
        });
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio runtime");
    let (mut client, mut server) = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(loopback())
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (client, accepted) =
            tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        let (client, (server, _)) = (client.expect("connect"), accepted.expect("accept"));
        client.set_nodelay(true).expect("nodelay");
        server.set_nodelay(true).expect("nodelay");
        (client, server)
    });
    let out = [0x5au8; MSG];
    let mut inb = [0u8; MSG];
    g.bench_function("tokio", |b| {
        // The whole timed loop runs inside one `block_on`, so the runtime
        // entry is not part of the per-round cost.
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    client.write_all(&out).await.expect("write_all");
                    server.read_exact(&mut inb).await.expect("read_exact");
                    black_box(&inb);
                }
                start.elapsed()
            })
        });
    });
    g.finish();
}

fn bench_wait_for_events(c: &mut Criterion) {
    let mut g = c.benchmark_group("wait_for_events");
    for n in [1usize, 1000] {
        let events: Vec<Event> = (0..n).map(|_| Event::new()).collect();
        // Events are manual-reset: a wait leaves the last one set, so no
        // reset is needed between iterations.
        events[n - 1].set();
        g.bench_with_input(BenchmarkId::from_parameter(n), &events, |b, events| {
            b.iter(|| {
                let r = wait_for_events(
                    black_box(events),
                    WaitMode::Any,
                    Some(Duration::ZERO),
                    false,
                );
                assert_eq!(r.expect("wait"), WaitOutcome::Event(n - 1));
            });
        });
    }
    g.finish();
}

fn bench_port(c: &mut Criterion) {
    let mut g = c.benchmark_group("port_roundtrip");
    let port = CompletionPort::new(1);
    g.bench_function("post_get", |b| {
        b.iter(|| {
            port.post(7, MSG, 42u64).expect("post");
            let p = port
                .get_queued(Some(Duration::ZERO))
                .expect("get_queued")
                .expect("a packet");
            assert_eq!(p.key, 7);
            black_box(p.into_payload::<u64>().expect("payload"));
        });
    });
    g.finish();
}

/// Size of the file the random reads go to, reads in flight, read size.
const FILE_LEN: u64 = 64 << 20;
const FILE_DEPTH: usize = 32;
const FILE_READ: usize = 4096;

fn bench_file_reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("file_read4k");
    let dir = std::env::temp_dir().join(format!("ovl-bench-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    let path = dir.join("data");
    let bytes: Vec<u8> = (0..FILE_LEN).map(|i| (i % 251) as u8).collect();
    std::fs::write(&path, bytes).expect("the file to read");
    for (id, kind) in [("uring", EngineKind::Uring), ("poll", EngineKind::Poll)] {
        let engine = match Engine::with_kind(kind) {
            Ok(e) => e,
            Err(e) => {
                eprintln!("file_read4k/{id}: skipped, engine unavailable: {e}");
                continue;
            }
        };
        let file = File::open(&engine, &path).expect("open");
        let port = CompletionPort::new(1);
        port.associate_file(&file, 1).expect("associate");
        // A xorshift generator: offsets spread over the file, 4 KiB aligned.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % (FILE_LEN / FILE_READ as u64)) * FILE_READ as u64
        };
        for _ in 0..FILE_DEPTH {
            let _ = file
                .read_at(vec![0u8; FILE_READ], next(), Notify::Port(0))
                .expect("read_at");
        }
        g.bench_function(id, |b| {
            b.iter(|| {
                let p = port
                    .get_queued(None)
                    .expect("get_queued")
                    .expect("a packet");
                let mut done = p.into_completion::<Vec<u8>>().expect("a read");
                assert_eq!(done.bytes, FILE_READ, "{:?}", done.error);
                black_box(&done.data);
                done.data.resize(FILE_READ, 0);
                let _ = file
                    .read_at(done.data, next(), Notify::Port(0))
                    .expect("read_at");
            });
        });
        file.close().expect("close");
    }
    let _ = std::fs::remove_dir_all(&dir);
    g.finish();
}

/// Where criterion writes its estimates, found the way criterion finds it:
/// `$CRITERION_HOME`, `$CARGO_TARGET_DIR/criterion`, the target directory
/// that `cargo metadata` reports, else `target/criterion`.
fn criterion_home() -> PathBuf {
    if let Some(h) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(h);
    }
    if let Some(t) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(t).join("criterion");
    }
    let from_metadata = std::env::var_os("CARGO").and_then(|cargo| {
        let out = std::process::Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        Some(PathBuf::from(v.get("target_directory")?.as_str()?))
    });
    from_metadata.map_or_else(
        || PathBuf::from("target/criterion"),
        |t| t.join("criterion"),
    )
}

/// One benchmark's estimates (ns per iteration), from
/// `<home>/<group>/<id>/new/estimates.json`.
#[derive(Debug, Clone, Copy)]
struct Estimate {
    /// The slope of time over iterations, the figure criterion prints as
    /// `time` (`None` when criterion computed no slope).
    slope: Option<f64>,
    /// The mean and its 95% confidence interval.
    mean: (f64, f64, f64),
}

impl Estimate {
    /// The time per iteration: the slope, else the mean.
    fn per_iter(&self) -> f64 {
        self.slope.unwrap_or(self.mean.0)
    }
}

/// The estimates of `id` when this run wrote them (not in `--test` mode,
/// not filtered out).
fn estimate(home: &Path, id: &str, since: SystemTime) -> Option<Estimate> {
    let path = home.join(id).join("new").join("estimates.json");
    let fresh = std::fs::metadata(&path).ok()?.modified().ok()? >= since;
    if !fresh {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    let point = |key: &str| v.get(key)?.get("point_estimate")?.as_f64();
    let ci = v.get("mean")?.get("confidence_interval")?;
    Some(Estimate {
        slope: point("slope"),
        mean: (
            point("mean")?,
            ci.get("lower_bound")?.as_f64()?,
            ci.get("upper_bound")?.as_f64()?,
        ),
    })
}

fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.3} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.3} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn report(since: SystemTime) {
    const IDS: [&str; 8] = [
        "roundtrip64/uring",
        "roundtrip64/poll",
        "roundtrip64/tokio",
        "wait_for_events/1",
        "wait_for_events/1000",
        "port_roundtrip/post_get",
        "file_read4k/uring",
        "file_read4k/poll",
    ];
    let home = criterion_home();
    let est: Vec<_> = IDS.iter().map(|id| estimate(&home, id, since)).collect();
    if est.iter().all(Option::is_none) {
        println!("\nNo estimates from this run (test mode or filtered): no table.");
        return;
    }
    println!(
        "\nTime per iteration (criterion estimates in {}):",
        home.display()
    );
    println!(
        "{:<26} {:>12} {:>12}   mean 95% CI",
        "benchmark", "time (slope)", "mean"
    );
    for (id, e) in IDS.iter().zip(&est) {
        match e {
            Some(e) => println!(
                "{id:<26} {:>12} {:>12}   [{} .. {}]",
                e.slope.map_or_else(|| "-".to_string(), fmt_ns),
                fmt_ns(e.mean.0),
                fmt_ns(e.mean.1),
                fmt_ns(e.mean.2)
            ),
            None => println!("{id:<26} {:>12}", "not run"),
        }
    }
    println!("\nRound-trip time ratios (time per iteration; below 1: faster than tokio):");
    let tokio = est[2].map(|e| e.per_iter());
    for (name, engine, e) in [
        ("uring/tokio", "uring", est[0]),
        ("poll/tokio", "poll", est[1]),
    ] {
        match (e.map(|e| e.per_iter()), tokio) {
            (Some(a), Some(t)) => {
                let r = a / t;
                let who = if r < 1.0 { engine } else { "tokio" };
                println!("{name:<12} {r:>6.2}x   {who} faster");
            }
            _ => println!("{name:<12} {:>7}", "n/a"),
        }
    }
}

fn main() {
    let since = SystemTime::now();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_roundtrip(&mut c);
    bench_wait_for_events(&mut c);
    bench_port(&mut c);
    bench_file_reads(&mut c);
    c.final_summary();
    report(since);
}
