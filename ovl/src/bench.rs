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
//!
//! Modes: `pingpong` (one message in flight per connection), `pipeline`
//! (`--depth` messages in flight) and `stream` (full duplex: each connection
//! writes its pattern as fast as the socket takes it while reading the echo
//! back, with at most `--window` bytes unacknowledged). `stream` is opt-in
//! (`--modes`): with it the default run would take well past its budget.
//! `--plot FILE.svg` draws msgs/s and p99 per server and cell.

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
    /// Measured seconds per round [default: 1]
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds per round [default: 0.3]
    #[arg(long)]
    pub warmup: Option<f64>,
    /// Messages in flight per connection in pipeline mode.
    #[arg(long, default_value_t = 8)]
    pub depth: usize,
    /// Comma-separated modes: pingpong, pipeline, stream [default:
    /// pingpong,pipeline].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub modes: Vec<Mode>,
    /// Message size in bytes (in stream mode, the unit msgs/s counts).
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Comma-separated connection counts, replacing each mode's defaults
    /// (pingpong 50,500 or 50 with --quick; pipeline 50; stream 50).
    #[arg(long, value_delimiter = ',')]
    pub conns: Vec<usize>,
    /// Most unacknowledged bytes per connection in stream mode.
    #[arg(long, default_value_t = 64 * 1024)]
    pub window: usize,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw msgs/s and p99 per server and cell to this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

/// How a connection loads the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Mode {
    /// One message in flight per connection.
    Pingpong,
    /// `--depth` messages in flight per connection.
    Pipeline,
    /// Continuous send and concurrent read, `--window` bytes in flight.
    Stream,
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
    /// Kernel entries plus direct (try-now) system calls, per message.
    syscalls_per_msg: Option<f64>,
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

/// Period of the per-connection byte pattern.
const PERIOD: usize = 251;
/// Largest write and read of the load generator.
const CHUNK: usize = 64 * 1024;
/// Rounds of send-then-read one connection gets per readiness pass before
/// the others get their turn (it is revisited without waiting for an event).
const TURNS: usize = 16;

/// The per-connection byte pattern: byte `pos` of connection `conn` is
/// `(conn * 131 + pos) % 251`. One table serves every connection and offset,
/// so a send is a slice of it and a check is a comparison.
struct Pattern(Vec<u8>);

impl Pattern {
    fn new() -> Self {
        Pattern((0..PERIOD + CHUNK).map(|k| (k % PERIOD) as u8).collect())
    }

    /// `n` (at most `CHUNK`) bytes of connection `conn`'s pattern from `pos`.
    fn at(&self, conn: usize, pos: u64, n: usize) -> &[u8] {
        let off = ((conn as u64 * 131 + pos) % PERIOD as u64) as usize;
        &self.0[off..off + n.min(CHUNK)]
    }
}

struct Conn {
    s: TcpStream,
    sent: u64,
    recvd: u64,
    /// Bytes this connection may send now: messages due (pingpong,
    /// pipeline) or the unused part of the window (stream).
    to_send: usize,
    /// When the first byte of each message in flight left.
    starts: VecDeque<Instant>,
    /// Failed or closed by the server: counted once, then left alone.
    dead: bool,
}

/// Drives `cell` against `addr` for warm-up then `dur`; returns
/// (messages, bytes, histogram, errors, mismatches) of the measured part.
///
/// In stream mode a connection starts with `window` bytes of credit, every
/// byte read back returns one, and it writes whenever it holds at least a
/// message's worth (or the whole window, if smaller); a message's latency is
/// from its first byte sent to its last byte read back.
fn load(
    addr: SocketAddr,
    cell: Cell,
    depth: usize,
    window: usize,
    warm: Duration,
    dur: Duration,
) -> (u64, u64, Histogram<u64>, u64, u64) {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut msgs, mut bytes, mut errors, mut mismatches) = (0u64, 0u64, 0u64, 0u64);
    let Ok(mut poll) = Poll::new() else {
        return (0, 0, hist, 1, 0);
    };
    let stream = cell.mode == Mode::Stream;
    let window = window.max(1);
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
                let to_send = match cell.mode {
                    Mode::Pingpong => cell.size,
                    Mode::Pipeline => depth * cell.size,
                    Mode::Stream => window,
                };
                conns.push(Conn {
                    s,
                    sent: 0,
                    recvd: 0,
                    to_send,
                    starts: VecDeque::new(),
                    dead: false,
                });
            }
            Err(_) => errors += 1,
        }
    }
    let size = cell.size.max(1) as u64;
    // Stream mode waits for a message's worth of credit before writing, so
    // it does not answer every small read with a small write.
    let min_write = if stream {
        cell.size.clamp(1, window)
    } else {
        1
    };
    let pat = Pattern::new();
    let start = Instant::now();
    let measure_from = start + warm;
    let end = measure_from + dur;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; CHUNK];
    let mut counted_bytes_at_start = None;
    // Kick every connection once.
    let mut ready: Vec<usize> = (0..conns.len()).collect();
    let mut again: Vec<usize> = Vec::new();
    while Instant::now() < end {
        for &i in &ready {
            let c = &mut conns[i];
            if c.dead {
                continue;
            }
            // Edge-triggered: keep sending and reading until both would
            // block (an echo read makes the next message due at once); a
            // connection still busy after TURNS rounds is revisited.
            let mut progress = true;
            let mut turns = 0;
            while progress && turns < TURNS {
                turns += 1;
                progress = false;
                // Send what is due.
                while c.to_send >= min_write {
                    let n = c.to_send.min(CHUNK);
                    match c.s.write(pat.at(i, c.sent, n)) {
                        Ok(w) => {
                            progress = true;
                            let now = Instant::now();
                            let before = c.sent;
                            c.sent += w as u64;
                            c.to_send -= w;
                            // A message starts when its first byte leaves.
                            let mut m = before.div_ceil(size) * size;
                            while m < c.sent {
                                c.starts.push_back(now);
                                m += size;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            c.dead = true;
                            break;
                        }
                    }
                }
                if c.dead {
                    break;
                }
                // Read what came back.
                loop {
                    match c.s.read(&mut buf) {
                        Ok(0) => {
                            errors += 1;
                            c.dead = true;
                            progress = false;
                            break;
                        }
                        Ok(n) => {
                            progress = true;
                            let got = &buf[..n];
                            let want = pat.at(i, c.recvd, n);
                            if got != want {
                                mismatches +=
                                    got.iter().zip(want).filter(|(a, b)| a != b).count() as u64;
                            }
                            let before = c.recvd;
                            c.recvd += n as u64;
                            let done_msgs = c.recvd / size - before / size;
                            if done_msgs > 0 {
                                let now = Instant::now();
                                for _ in 0..done_msgs {
                                    if let Some(t) = c.starts.pop_front() {
                                        if now >= measure_from {
                                            let _ = hist.record(
                                                now.duration_since(t).as_micros().max(1) as u64,
                                            );
                                            msgs += 1;
                                        }
                                    }
                                    if !stream {
                                        c.to_send += cell.size;
                                    }
                                }
                            }
                            if stream {
                                c.to_send += n;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            c.dead = true;
                            progress = false;
                            break;
                        }
                    }
                }
            }
            if progress && !c.dead {
                again.push(i);
            }
        }
        if counted_bytes_at_start.is_none() && Instant::now() >= measure_from {
            counted_bytes_at_start = Some(conns.iter().map(|c| c.recvd).sum::<u64>());
        }
        ready.clear();
        // Connections still busy are not waited for.
        let timeout = if again.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        if poll.poll(&mut events, Some(timeout)).is_err() {
            errors += 1;
        }
        ready.extend(
            events
                .iter()
                .map(|e| e.token().0)
                .filter(|&i| i < conns.len()),
        );
        ready.append(&mut again);
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

/// The cells of the run: for each mode (default pingpong, pipeline), its
/// connection counts (`--conns`, or the mode's defaults).
fn cells_for(a: &BenchArgs) -> Vec<Cell> {
    let modes = if a.modes.is_empty() {
        vec![Mode::Pingpong, Mode::Pipeline]
    } else {
        a.modes.clone()
    };
    let size = a.size.max(1);
    let mut cells = Vec::new();
    for mode in modes {
        let conns: Vec<usize> = if !a.conns.is_empty() {
            a.conns.clone()
        } else {
            match mode {
                Mode::Pingpong if a.quick => vec![50],
                Mode::Pingpong => vec![50, 500],
                Mode::Pipeline | Mode::Stream => vec![50],
            }
        };
        cells.extend(
            conns
                .into_iter()
                .filter(|&n| n > 0)
                .map(|conns| Cell { mode, size, conns }),
        );
    }
    cells
}

/// A short name of a cell for the plot.
fn cell_label(c: &Cell, a: &BenchArgs) -> String {
    let mode = match c.mode {
        Mode::Pingpong => "pingpong".to_string(),
        Mode::Pipeline => format!("pipeline x{}", a.depth),
        Mode::Stream => format!("stream {} KiB win", a.window.max(1).div_ceil(1024)),
    };
    format!("{mode}, {} B, {} conns", c.size, c.conns)
}

/// Median, min and max of one figure over the rounds.
fn spread(rs: &[RoundResult], f: impl Fn(&RoundResult) -> f64) -> (f64, f64, f64) {
    let mut v: Vec<f64> = rs.iter().map(f).collect();
    let lo = v.iter().cloned().fold(f64::MAX, f64::min);
    let hi = v.iter().cloned().fold(0.0, f64::max);
    (median(&mut v), lo, hi)
}

/// `--plot`: one row of panels per figure (msgs/s, p99), one column per
/// cell; in each panel a bar per server (the median of the rounds) with a
/// whisker from min to max, colours named in the legend on the right.
mod plot {
    use std::collections::BTreeMap;
    use std::path::Path;

    use plotters::prelude::*;

    use super::{RoundResult, spread};

    fn human(v: f64) -> String {
        let a = v.abs();
        if a >= 1e6 {
            format!("{:.1}M", v / 1e6)
        } else if a >= 1e4 {
            format!("{:.0}k", v / 1e3)
        } else if a >= 1e3 {
            format!("{:.1}k", v / 1e3)
        } else {
            format!("{v:.0}")
        }
    }

    type Results = BTreeMap<(usize, String), Vec<RoundResult>>;
    /// A figure's name and how to read it from a round.
    type Figure = (&'static str, fn(&RoundResult) -> f64);

    pub(super) fn draw(
        path: &Path,
        cells: &[String],
        servers: &[String],
        results: &Results,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let ns = servers.len().max(1);
        let panel_w = (ns as u32 * 26 + 110).max(340);
        let legend_w = 190;
        let w = panel_w * cells.len().max(1) as u32 + legend_w;
        let h = 760;
        let root = SVGBackend::new(path, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        let root = root.titled(
            "ovl bench: medians of the rounds, whiskers min..max",
            ("sans-serif", 20),
        )?;
        let (main, legend) = root.split_horizontally(w - legend_w);
        let panels = main.split_evenly((2, cells.len().max(1)));
        let figures: [Figure; 2] = [
            ("msgs/s", |r| r.msgs_per_s),
            ("p99 latency, us", |r| r.p99_us as f64),
        ];
        for (k, area) in panels.iter().enumerate() {
            let (row, ci) = (k / cells.len().max(1), k % cells.len().max(1));
            let Some(cell) = cells.get(ci) else { continue };
            let (figure, f) = figures[row];
            let bars: Vec<(usize, (f64, f64, f64))> = servers
                .iter()
                .enumerate()
                .filter_map(|(j, name)| {
                    results
                        .get(&(ci, name.clone()))
                        .filter(|rs| !rs.is_empty())
                        .map(|rs| (j, spread(rs, f)))
                })
                .collect();
            let top = bars
                .iter()
                .map(|(_, (_, _, hi))| *hi)
                .fold(0.0, f64::max)
                .max(1.0)
                * 1.1;
            let mut chart = ChartBuilder::on(area)
                .caption(cell, ("sans-serif", 14))
                .margin(10)
                .x_label_area_size(8)
                .y_label_area_size(66)
                .build_cartesian_2d(0f64..ns as f64, 0f64..top)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(0)
                .y_labels(6)
                .y_label_formatter(&|v| human(*v))
                .y_desc(figure)
                .draw()?;
            chart.draw_series(bars.iter().map(|&(j, (med, _, _))| {
                Rectangle::new(
                    [(j as f64 + 0.12, 0.0), (j as f64 + 0.88, med)],
                    Palette99::pick(j).filled(),
                )
            }))?;
            chart.draw_series(bars.iter().map(|&(j, (_, lo, hi))| {
                PathElement::new(
                    vec![(j as f64 + 0.5, lo), (j as f64 + 0.5, hi)],
                    BLACK.stroke_width(2),
                )
            }))?;
        }
        legend.draw(&Text::new("servers", (10, 40), ("sans-serif", 15)))?;
        for (j, name) in servers.iter().enumerate() {
            let y = 66 + j as i32 * 22;
            let any = results.keys().any(|(_, n)| n == name);
            legend.draw(&Rectangle::new(
                [(10, y), (26, y + 14)],
                Palette99::pick(j).filled(),
            ))?;
            let label = if any {
                name.clone()
            } else {
                format!("{name} (unavailable)")
            };
            legend.draw(&Text::new(label, (32, y), ("sans-serif", 14)))?;
        }
        root.present()?;
        Ok(())
    }
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
    let cells = cells_for(&a);
    if cells.is_empty() {
        eprintln!("ovl bench: no cells (check --modes and --conns)");
        return ExitCode::from(2);
    }
    let rounds = a.rounds.unwrap_or(if a.quick { 1 } else { 3 });
    // Defaults keep the whole run near two minutes; the README's figures
    // use longer rounds (`--duration 2 --warmup 0.5`).
    let dur = Duration::from_secs_f64(a.duration.unwrap_or(1.0));
    let warm = Duration::from_secs_f64(a.warmup.unwrap_or(0.3));
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
                let (msgs, bytes, hist, errors, mismatches) =
                    load(addr, *cell, a.depth, a.window, warm, dur);
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
                let (enters, syscalls, immediate) = match &st {
                    Some(v) => {
                        let f =
                            |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
                        let echoed = (f("bytes") / cell.size as f64).max(1.0);
                        let ops = f("completed_now") + f("completed_later");
                        (
                            Some(f("enter_calls") / echoed),
                            Some((f("enter_calls") + f("direct_calls")) / echoed),
                            Some(if ops > 0.0 {
                                f("completed_now") / ops
                            } else {
                                0.0
                            }),
                        )
                    }
                    None => (None, None, None),
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
                        syscalls_per_msg: syscalls,
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
    let mut failed = false;
    for (ci, cell) in cells.iter().enumerate() {
        println!();
        println!(
            "{:?} {} B, {} connections{}",
            cell.mode,
            cell.size,
            cell.conns,
            match cell.mode {
                Mode::Pingpong => String::new(),
                Mode::Pipeline => format!(", {} in flight each", a.depth),
                Mode::Stream => format!(
                    ", full duplex, up to {} B unacknowledged each\n  \
                     (a message is {} B of echo; its latency runs from its first byte \
                     sent to its last byte read back)",
                    a.window.max(1),
                    cell.size
                ),
            }
        );
        println!(
            "  {:<16} {:>26} {:>8} {:>7} {:>7} {:>8} {:>6} {:>9} {:>10} {:>8} {:>8} {:>7} {:>7}",
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
            "sys/m",
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
            let sys = rs
                .iter()
                .filter_map(|r| r.syscalls_per_msg)
                .collect::<Vec<_>>();
            let med = |v: &[f64], f: &dyn Fn(f64) -> String| {
                if v.is_empty() {
                    "-".to_string()
                } else {
                    f(median(&mut v.to_vec()))
                }
            };
            println!(
                "  {name:<16} {:>26} {mb:>8.1} {p50:>7.0} {p99:>7.0} {p999:>8.0} {errs:>6} {:>9} {cpu:>10.2} {:>8} {:>8} {:>7} {:>7}",
                format!("{rate:.0} ({lo:.0}..{hi:.0})"),
                tokio_rate.map_or("-".into(), |t| format!("{:.2}", rate / t.max(1.0))),
                tokio_cpu.map_or("-".into(), |t| format!("{:.2}", cpu / t.max(1e-9))),
                med(&enters, &|x| format!("{x:.3}")),
                med(&sys, &|x| format!("{x:.2}")),
                med(&now, &|x| format!("{:.0}", 100.0 * x)),
            );
        }
    }
    if let Some(path) = &a.json {
        let v = serde_json::json!({
            "depth": a.depth,
            "stream_window_bytes": a.window.max(1),
            "stream_latency": "a message's first byte sent to its last byte read back",
            "cells": cells,
            "results": results.iter().map(|((ci, name), rs)| serde_json::json!({"cell": ci, "server": name, "rounds": rs})).collect::<Vec<_>>(),
            "unavailable": unavailable,
        });
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&v).unwrap_or_default()) {
            eprintln!("cannot write {}: {e}", path.display());
            failed = true;
        }
    }
    if let Some(path) = &a.plot {
        let labels: Vec<String> = cells.iter().map(|c| cell_label(c, &a)).collect();
        match plot::draw(path, &labels, &servers, &results) {
            Ok(()) => println!("\nplot: {}", path.display()),
            Err(e) => {
                eprintln!("cannot draw {}: {e}", path.display());
                failed = true;
            }
        }
    }
    if any_mismatch {
        eprintln!("echoed bytes did not match what was sent");
        return ExitCode::from(1);
    }
    if failed {
        return ExitCode::from(1);
    }
    let _ = std::io::stdout().flush();
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table_matches_the_formula() {
        let p = Pattern::new();
        for conn in [0usize, 1, 7, 499] {
            for pos in [0u64, 1, 250, 251, 1_000_003] {
                let s = p.at(conn, pos, 600);
                assert_eq!(s.len(), 600);
                for (k, b) in s.iter().enumerate() {
                    assert_eq!(*b, ((conn as u64 * 131 + pos + k as u64) % 251) as u8);
                }
            }
        }
        assert_eq!(p.at(3, 5, CHUNK + 10).len(), CHUNK);
    }

    fn args(extra: &[&str]) -> BenchArgs {
        #[derive(clap::Parser)]
        struct A {
            #[command(flatten)]
            b: BenchArgs,
        }
        let argv = std::iter::once("bench").chain(extra.iter().copied());
        <A as clap::Parser>::parse_from(argv).b
    }

    #[test]
    fn cells_default_and_chosen() {
        let modes = |a: &BenchArgs| {
            cells_for(a)
                .iter()
                .map(|c| (c.mode, c.conns))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            modes(&args(&[])),
            [
                (Mode::Pingpong, 50),
                (Mode::Pingpong, 500),
                (Mode::Pipeline, 50)
            ]
        );
        assert_eq!(
            modes(&args(&["--quick"])),
            [(Mode::Pingpong, 50), (Mode::Pipeline, 50)]
        );
        assert_eq!(
            modes(&args(&["--modes", "stream,pingpong", "--conns", "2,4"])),
            [
                (Mode::Stream, 2),
                (Mode::Stream, 4),
                (Mode::Pingpong, 2),
                (Mode::Pingpong, 4)
            ]
        );
        let a = args(&["--modes", "stream", "--size", "4096"]);
        let c = cells_for(&a);
        assert_eq!((c[0].mode, c[0].size, c[0].conns), (Mode::Stream, 4096, 50));
    }
}
