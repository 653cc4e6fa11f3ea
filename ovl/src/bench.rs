//! `ovl bench`: our echo servers against the baselines users would pick
//! instead, measured in the same run.
//!
//! Each server runs as its own process pinned to CPU 0; the load generator
//! (one thread, mio) runs pinned to CPU 1. Rounds interleave the servers
//! (A B A B ...) and the table reports medians with min..max. Every echoed
//! byte is checked against a per-connection pattern. Beside msgs/s the table
//! shows the **server CPU time per message** (user + system time of the
//! server process from `/proc/PID/stat`, over the messages echoed) and, for
//! our servers, the engine's kernel entries per message and the share of
//! operations that completed at start.

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use serde::Serialize;

/// Options of `ovl bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// About 20 s: fewer servers and cells, short rounds.
    #[arg(long)]
    pub quick: bool,
    /// Comma-separated servers (e.g. `tokio,std,port-uring,routines-poll`).
    #[arg(long)]
    pub servers: Option<String>,
    /// Rounds per server and cell.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Measured seconds per round.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds per round.
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Messages in flight per connection in pipeline mode.
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
enum Mode {
    Pingpong,
    Pipeline,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Cell {
    mode: Mode,
    size: usize,
    conns: usize,
}

#[derive(Debug, Clone, Serialize)]
struct RoundResult {
    msgs_per_s: f64,
    mb_per_s: f64,
    p50_us: u64,
    p99_us: u64,
    p999_us: u64,
    errors: u64,
    mismatches: u64,
    cpu_us_per_msg: f64,
    enters_per_msg: Option<f64>,
    immediate_share: Option<f64>,
}

fn pin(pid: i32, cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(rustix::process::Pid::from_raw(pid), &set);
}

static NCPU: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

fn clk_tck() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

struct Server {
    child: Child,
    name: String,
}

impl Server {
    /// Stops the server; returns what it printed on the way out.
    fn stop(mut self) -> String {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            let _ = o.read_to_string(&mut out);
        }
        out
    }
}

fn command_for(name: &str, addr: SocketAddr) -> Option<Command> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?.to_path_buf();
    let a = addr.to_string();
    let mut c = match name {
        "tokio" => Command::new(dir.join("tokio-echo")),
        "std" => Command::new(dir.join("std-echo")),
        "uring-raw" => Command::new(dir.join("uring-echo")),
        ours => {
            let (model, engine) = ours.split_once('-')?;
            let mut c = Command::new(&exe);
            c.args([
                "echo-server",
                "--model",
                model,
                "--engine",
                engine,
                "--workers",
                "1",
            ]);
            c
        }
    };
    c.args(["--addr", &a]);
    Some(c)
}

fn start(name: &str) -> Result<(Server, SocketAddr), String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = command_for(name, addr).ok_or_else(|| format!("unknown server {name}"))?;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{name}: cannot start ({e}); build the baselines with `cargo build --release -p bench-baselines`"))?;
    if NCPU.load(std::sync::atomic::Ordering::Relaxed) >= 2 {
        pin(child.id() as i32, 0);
    }
    // Wait for the address line (the rest of stdout is read at stop).
    let out = child.stdout.take();
    let mut reader = out.map(BufReader::new);
    let t0 = Instant::now();
    let mut line = String::new();
    if let Some(r) = reader.as_mut() {
        while t0.elapsed() < Duration::from_secs(10) {
            line.clear();
            match r.read_line(&mut line) {
                Ok(0) => break,
                Ok(_) if line.starts_with("listening on") => break,
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
    // Keep draining stdout so the server never blocks on it; keep the tail.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    if let Some(mut r) = reader {
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = r.read_to_string(&mut all);
            let _ = tx.send(all);
        });
    }
    let server = Server {
        child,
        name: name.to_string(),
    };
    while std::net::TcpStream::connect(addr).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            server.stop();
            return Err(format!("{name}: did not start listening"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    TAILS.with(|t| t.borrow_mut().push(rx));
    Ok((server, addr))
}

thread_local! {
    static TAILS: std::cell::RefCell<Vec<std::sync::mpsc::Receiver<String>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn last_tail() -> String {
    TAILS.with(|t| {
        t.borrow_mut()
            .pop()
            .and_then(|rx| rx.recv_timeout(Duration::from_secs(3)).ok())
            .unwrap_or_default()
    })
}

fn pattern(conn: usize, pos: u64) -> u8 {
    ((conn as u64 * 131 + pos) % 251) as u8
}

struct Conn {
    s: TcpStream,
    sent: u64,
    recvd: u64,
    to_send: usize,
    starts: VecDeque<(u64, Instant)>,
}

/// Drives `cell` against `addr` for warm-up then `dur`; returns
/// (messages, bytes, histogram, errors, mismatches) of the measured part.
fn load(
    addr: SocketAddr,
    cell: Cell,
    depth: usize,
    warm: Duration,
    dur: Duration,
) -> (u64, u64, Histogram<u64>, u64, u64) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut msgs, mut bytes, mut errors, mut mismatches) = (0u64, 0u64, 0u64, 0u64);
    let Ok(mut poll) = Poll::new() else {
        return (0, 0, hist, 1, 0);
    };
    let mut conns = Vec::with_capacity(cell.conns);
    for i in 0..cell.conns {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_nonblocking(true);
                let mut s = TcpStream::from_std(s);
                if poll
                    .registry()
                    .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .is_err()
                {
                    errors += 1;
                    continue;
                }
                let inflight = if cell.mode == Mode::Pipeline {
                    depth
                } else {
                    1
                };
                conns.push(Conn {
                    s,
                    sent: 0,
                    recvd: 0,
                    to_send: inflight * cell.size,
                    starts: VecDeque::new(),
                });
            }
            Err(_) => errors += 1,
        }
    }
    let size = cell.size as u64;
    let start = Instant::now();
    let measure_from = start + warm;
    let end = measure_from + dur;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 * 1024];
    let mut out = vec![0u8; 64 * 1024];
    let mut counted_bytes_at_start = None;
    // Kick every connection once.
    let mut ready: Vec<usize> = (0..conns.len()).collect();
    while Instant::now() < end {
        for &i in &ready {
            let c = &mut conns[i];
            // Edge-triggered: keep sending and reading until both would
            // block (an echo read makes the next message due at once).
            let mut progress = true;
            while progress {
                progress = false;
                // Send what is due.
                while c.to_send > 0 {
                    let n = c.to_send.min(out.len());
                    for (k, b) in out[..n].iter_mut().enumerate() {
                        *b = pattern(i, c.sent + k as u64);
                    }
                    match c.s.write(&out[..n]) {
                        Ok(w) => {
                            progress = true;
                            let before = c.sent;
                            c.sent += w as u64;
                            c.to_send -= w;
                            // A message starts when its first byte leaves.
                            let mut m = before.div_ceil(size) * size;
                            while m < c.sent {
                                c.starts.push_back((m, Instant::now()));
                                m += size;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            c.to_send = 0;
                            break;
                        }
                    }
                }
                // Read what came back.
                loop {
                    match c.s.read(&mut buf) {
                        Ok(0) => {
                            errors += 1;
                            progress = false;
                            break;
                        }
                        Ok(n) => {
                            progress = true;
                            for (k, b) in buf[..n].iter().enumerate() {
                                if *b != pattern(i, c.recvd + k as u64) {
                                    mismatches += 1;
                                }
                            }
                            let before = c.recvd;
                            c.recvd += n as u64;
                            let done_msgs = c.recvd / size - before / size;
                            for _ in 0..done_msgs {
                                if let Some((_, t)) = c.starts.pop_front() {
                                    let now = Instant::now();
                                    if now >= measure_from {
                                        let _ =
                                            hist.record(
                                                now.duration_since(t).as_micros().max(1) as u64
                                            );
                                        msgs += 1;
                                    }
                                }
                                c.to_send += cell.size;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    }
                }
            }
        }
        if counted_bytes_at_start.is_none() && Instant::now() >= measure_from {
            counted_bytes_at_start = Some(conns.iter().map(|c| c.recvd).sum::<u64>());
        }
        ready.clear();
        if poll
            .poll(&mut events, Some(Duration::from_millis(100)))
            .is_err()
        {
            errors += 1;
        }
        ready.extend(
            events
                .iter()
                .map(|e| e.token().0)
                .filter(|&i| i < conns.len()),
        );
        if ready.is_empty() && Instant::now() < end {
            // A stall: nothing came back within 100 ms; count it and go on.
            continue;
        }
    }
    let total: u64 = conns.iter().map(|c| c.recvd).sum();
    bytes += total - counted_bytes_at_start.unwrap_or(0);
    (msgs, bytes, hist, errors, mismatches)
}

fn stats_line(tail: &str) -> Option<serde_json::Value> {
    tail.lines()
        .find_map(|l| l.strip_prefix("OVL-STATS "))
        .and_then(|j| serde_json::from_str(j).ok())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> ExitCode {
    let servers: Vec<String> = match &a.servers {
        Some(s) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        None if a.quick => [
            "tokio",
            "std",
            "uring-raw",
            "port-uring",
            "port-poll",
            "routines-uring",
            "async-uring",
        ]
        .map(String::from)
        .to_vec(),
        None => [
            "tokio",
            "std",
            "uring-raw",
            "port-uring",
            "port-poll",
            "routines-uring",
            "routines-poll",
            "events-uring",
            "events-poll",
            "async-uring",
            "async-poll",
        ]
        .map(String::from)
        .to_vec(),
    };
    let cells: Vec<Cell> = if a.quick {
        vec![
            Cell {
                mode: Mode::Pingpong,
                size: 1024,
                conns: 50,
            },
            Cell {
                mode: Mode::Pipeline,
                size: 1024,
                conns: 50,
            },
        ]
    } else {
        vec![
            Cell {
                mode: Mode::Pingpong,
                size: 1024,
                conns: 50,
            },
            Cell {
                mode: Mode::Pingpong,
                size: 1024,
                conns: 500,
            },
            Cell {
                mode: Mode::Pipeline,
                size: 1024,
                conns: 50,
            },
        ]
    };
    let rounds = a.rounds.unwrap_or(if a.quick { 1 } else { 3 });
    let dur = Duration::from_secs_f64(a.duration.unwrap_or(if a.quick { 1.0 } else { 2.0 }));
    let warm = Duration::from_secs_f64(a.warmup.unwrap_or(if a.quick { 0.3 } else { 0.5 }));
    let ncpu = cpus();
    NCPU.store(ncpu, std::sync::atomic::Ordering::Relaxed);
    if ncpu >= 2 {
        pin(0, 1);
    }
    let total = (servers.len() * cells.len() * rounds) as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut results: BTreeMap<(usize, String), Vec<RoundResult>> = BTreeMap::new();
    let mut unavailable: BTreeMap<String, String> = BTreeMap::new();
    for (ci, cell) in cells.iter().enumerate() {
        for _round in 0..rounds {
            for name in &servers {
                bar.set_message(format!(
                    "{name} {:?} {}B x{}",
                    cell.mode, cell.size, cell.conns
                ));
                bar.inc(1);
                if unavailable.contains_key(name) {
                    continue;
                }
                let (server, addr) = match start(name) {
                    Ok(s) => s,
                    Err(why) => {
                        unavailable.insert(name.clone(), why);
                        continue;
                    }
                };
                let pid = server.child.id();
                let t0 = cpu_ticks(pid).unwrap_or(0);
                let w0 = Instant::now();
                let (msgs, bytes, hist, errors, mismatches) = load(addr, *cell, a.depth, warm, dur);
                let _ = w0;
                let t1 = cpu_ticks(pid).unwrap_or(0);
                let _ = server.name.len();
                let _ = server.stop();
                let tail = last_tail();
                let st = stats_line(&tail);
                let m = msgs.max(1) as f64;
                let secs = dur.as_secs_f64();
                // The CPU time covers warm-up too: scale by the share of
                // messages measured (close enough for a steady load).
                let cpu_s = (t1.saturating_sub(t0)) as f64 / clk_tck()
                    * (dur.as_secs_f64() / (dur + warm).as_secs_f64());
                let (enters, immediate) = match &st {
                    Some(v) => {
                        let f =
                            |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                        let echoed = (f("bytes") / cell.size as f64).max(1.0);
                        let ops = f("completed_now") + f("completed_later");
                        (
                            Some(f("enter_calls") / echoed),
                            Some(if ops > 0.0 {
                                f("completed_now") / ops
                            } else {
                                0.0
                            }),
                        )
                    }
                    None => (None, None),
                };
                results
                    .entry((ci, name.clone()))
                    .or_default()
                    .push(RoundResult {
                        msgs_per_s: msgs as f64 / secs,
                        mb_per_s: bytes as f64 / secs / 1e6,
                        p50_us: hist.value_at_quantile(0.5),
                        p99_us: hist.value_at_quantile(0.99),
                        p999_us: hist.value_at_quantile(0.999),
                        errors,
                        mismatches,
                        cpu_us_per_msg: cpu_s * 1e6 / m,
                        enters_per_msg: enters,
                        immediate_share: immediate,
                    });
            }
        }
    }
    bar.finish_and_clear();
    let uname = rustix::system::uname();
    println!(
        "ovl bench: kernel {}, {} CPUs, servers pinned to CPU 0, load on CPU 1; {rounds} round(s) of {:.1} s (+{:.1} s warm-up); medians (min..max)",
        uname.release().to_string_lossy(),
        ncpu,
        dur.as_secs_f64(),
        warm.as_secs_f64()
    );
    let mut any_mismatch = false;
    for (ci, cell) in cells.iter().enumerate() {
        println!();
        println!(
            "{:?} {} B, {} connections{}",
            cell.mode,
            cell.size,
            cell.conns,
            if cell.mode == Mode::Pipeline {
                format!(", {} in flight each", a.depth)
            } else {
                String::new()
            }
        );
        println!(
            "  {:<16} {:>22} {:>8} {:>7} {:>7} {:>8} {:>6} {:>9} {:>10} {:>8} {:>8} {:>7}",
            "server",
            "msgs/s",
            "MB/s",
            "p50us",
            "p99us",
            "p99.9us",
            "errs",
            "x tokio",
            "cpu us/msg",
            "cpu x tk",
            "enter/m",
            "now %"
        );
        let tokio_rate = results
            .get(&(ci, "tokio".into()))
            .map(|r| median(&mut r.iter().map(|x| x.msgs_per_s).collect::<Vec<_>>()));
        let tokio_cpu = results
            .get(&(ci, "tokio".into()))
            .map(|r| median(&mut r.iter().map(|x| x.cpu_us_per_msg).collect::<Vec<_>>()));
        for name in &servers {
            let Some(rs) = results.get(&(ci, name.clone())) else {
                if let Some(why) = unavailable.get(name) {
                    println!("  {name:<16} unavailable: {why}");
                }
                continue;
            };
            let mut rates: Vec<f64> = rs.iter().map(|r| r.msgs_per_s).collect();
            let (lo, hi) = (
                rates.iter().cloned().fold(f64::MAX, f64::min),
                rates.iter().cloned().fold(0.0, f64::max),
            );
            let rate = median(&mut rates);
            let mb = median(&mut rs.iter().map(|r| r.mb_per_s).collect::<Vec<_>>());
            let p50 = median(&mut rs.iter().map(|r| r.p50_us as f64).collect::<Vec<_>>());
            let p99 = median(&mut rs.iter().map(|r| r.p99_us as f64).collect::<Vec<_>>());
            let p999 = median(&mut rs.iter().map(|r| r.p999_us as f64).collect::<Vec<_>>());
            let errs: u64 = rs.iter().map(|r| r.errors + r.mismatches).sum();
            any_mismatch |= rs.iter().any(|r| r.mismatches > 0);
            let cpu = median(&mut rs.iter().map(|r| r.cpu_us_per_msg).collect::<Vec<_>>());
            let enters = rs
                .iter()
                .filter_map(|r| r.enters_per_msg)
                .collect::<Vec<_>>();
            let now = rs
                .iter()
                .filter_map(|r| r.immediate_share)
                .collect::<Vec<_>>();
            println!(
                "  {name:<16} {:>22} {mb:>8.1} {p50:>7.0} {p99:>7.0} {p999:>8.0} {errs:>6} {:>9} {cpu:>10.2} {:>8} {:>8} {:>7}",
                format!("{rate:.0} ({lo:.0}..{hi:.0})"),
                tokio_rate.map_or("-".into(), |t| format!("{:.2}", rate / t.max(1.0))),
                tokio_cpu.map_or("-".into(), |t| format!("{:.2}", cpu / t.max(1e-9))),
                if enters.is_empty() {
                    "-".into()
                } else {
                    format!("{:.3}", median(&mut enters.clone()))
                },
                if now.is_empty() {
                    "-".into()
                } else {
                    format!("{:.0}", 100.0 * median(&mut now.clone()))
                },
            );
        }
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "cells": cells,
            "results": results.iter().map(|((ci, name), rs)| serde_json::json!({"cell": ci, "server": name, "rounds": rs})).collect::<Vec<_>>(),
            "unavailable": unavailable,
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&v).unwrap_or_default()) {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }
    if any_mismatch {
        eprintln!("echoed bytes did not match what was sent");
        return ExitCode::from(1);
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}
