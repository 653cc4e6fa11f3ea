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
//! operations that completed at start. `--syscalls` adds every system call
//! of each server process, counted by perf, per message.
//!
//! Modes: `pingpong` (one message in flight per connection), `pipeline`
//! (`--depth` messages in flight) and `stream` (full duplex: each connection
//! writes its pattern as fast as the socket takes it while reading the echo
//! back, with at most `--window` bytes unacknowledged). `stream` is opt-in
//! (`--modes`): with it the default run would take well past its budget.
//! `http` runs the hyper servers (`hyper-tokio`, `hyper-uring`,
//! `hyper-poll`: `ovl http-server`) with keep-alive `GET /`s, one in flight
//! per connection, every response checked; ratios are against
//! `hyper-tokio`. Each table ends with a paired line: every round against
//! the reference's round run next to it, the median of those ratios.
//! `--plot FILE.svg` draws msgs/s and p99 per server and cell.
//!
//! `--scale` is another benchmark: how the engine scales across threads, in
//! one process (see [`scale`]).
//!
//! Files: this one (options, the run), [`servers`] (server processes),
//! [`load`] (the load generator), [`perf`] (`--syscalls`), [`report`]
//! (medians, table, JSON), [`plot`], [`scale`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

mod load;
mod perf;
mod plot;
mod report;
mod scale;
mod servers;

use report::{Results, RoundResult};
use servers::{EngineFigures, Server};

/// Options of `ovl bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// About 20 s: fewer servers and cells, short rounds.
    #[arg(long, conflicts_with = "scale")]
    pub quick: bool,
    /// Comma-separated servers: tokio, std, uring-raw, and MODEL-ENGINE
    /// (MODEL: port, routines, events, async; ENGINE: uring, poll, auto);
    /// for http mode hyper-tokio, hyper-uring, hyper-poll (hyper 1.x on
    /// tokio's sockets or ours, `ovl http-server`);
    /// MODEL-ENGINE@other runs that server from the `--other-ovl` build.
    #[arg(long, value_delimiter = ',', value_parser = server_name, conflicts_with = "scale")]
    pub servers: Vec<String>,
    /// Another build of `ovl` (e.g. the one before a change): servers named
    /// MODEL-ENGINE@other run from it, interleaved with the others, so an
    /// A/B comparison comes from one run.
    #[arg(long, value_name = "PATH", conflicts_with = "scale")]
    pub other_ovl: Option<std::path::PathBuf>,
    /// Rounds per server and cell (with --scale: per shape, engine and
    /// thread count) [default: 3, 1 with --quick]
    #[arg(long, value_parser = at_least_one)]
    pub rounds: Option<usize>,
    /// Measured seconds per round [default: 1, 2 with --scale]
    #[arg(long, value_parser = positive_seconds)]
    pub duration: Option<f64>,
    /// Warm-up seconds per round [default: 0.3]
    #[arg(long, value_parser = seconds)]
    pub warmup: Option<f64>,
    /// Messages in flight per connection in pipeline mode.
    #[arg(long, default_value_t = 8, value_parser = at_least_one, conflicts_with = "scale")]
    pub depth: usize,
    /// Comma-separated modes: pingpong, pipeline, stream, http [default:
    /// pingpong,pipeline; http when every server is a hyper-* one].
    #[arg(long, value_enum, value_delimiter = ',', conflicts_with = "scale")]
    pub modes: Vec<Mode>,
    /// Message size in bytes (in stream mode, the unit msgs/s counts).
    #[arg(long, default_value_t = 1024, value_parser = at_least_one)]
    pub size: usize,
    /// Comma-separated connection counts, replacing each mode's defaults
    /// (pingpong 50,500 or 50 with --quick; pipeline 50; stream 50).
    #[arg(long, value_delimiter = ',', value_parser = at_least_one, conflicts_with = "scale")]
    pub conns: Vec<usize>,
    /// Most unacknowledged bytes per connection in stream mode.
    #[arg(long, default_value_t = 64 * 1024, value_parser = at_least_one, conflicts_with = "scale")]
    pub window: usize,
    /// Write every figure as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Draw msgs/s and p99 per server and cell to this SVG file.
    #[arg(long, conflicts_with = "scale")]
    pub plot: Option<PathBuf>,
    /// Count every system call of each server process with perf
    /// (`raw_syscalls:sys_enter`, over the measured part of each round)
    /// and show them per message; n/a where perf cannot.
    #[arg(long, conflicts_with = "scale")]
    pub syscalls: bool,
    /// The scaling benchmark instead, in this process: 1..N threads with
    /// their own loopback pairs doing ping-pong, on one shared engine, on an
    /// engine each, and as workers of one completion port.
    #[arg(long)]
    pub scale: bool,
    /// The options of `--scale` alone (boxed: they are seldom used).
    #[command(flatten)]
    pub scale_opts: Box<ScaleArgs>,
}

/// Options of `ovl bench --scale`.
#[derive(Debug, clap::Args)]
pub struct ScaleArgs {
    /// --scale: the most threads (N) [default: the number of CPUs]
    #[arg(long, requires = "scale", value_parser = threads)]
    pub threads: Option<usize>,
    /// --scale: loopback TCP pairs per thread [default: 8]
    #[arg(long, requires = "scale", value_parser = pairs)]
    pub pairs: Option<usize>,
    /// --scale: comma-separated engines [default: uring,poll]
    #[arg(long, value_enum, value_delimiter = ',', requires = "scale")]
    pub engine: Vec<EngineName>,
    /// --scale: comma-separated shapes [default: every shape]
    #[arg(long, value_enum, value_delimiter = ',', requires = "scale")]
    pub shapes: Vec<Shape>,
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
    /// Keep-alive HTTP/1.1 GETs, one in flight per connection, against the
    /// hyper servers (hyper-tokio, hyper-uring, hyper-poll).
    Http,
}

/// An engine of `--scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum EngineName {
    /// io_uring.
    Uring,
    /// epoll.
    Poll,
}

/// How the threads of `--scale` share the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, clap::ValueEnum)]
pub enum Shape {
    /// T threads on one engine.
    Shared,
    /// T threads, each on its own engine.
    PerThread,
    /// One completion port (on one engine) and T worker threads.
    Port,
    /// One completion port and T worker threads, each worker's connections
    /// on an engine of its own (a ring per thread on io_uring).
    PortEngines,
    /// The port shape with the sockets skipping the port on success
    /// (`set_skip_port_on_success`, as `ovl`'s port server): what completes
    /// at its start is handled by the thread that started it, without a
    /// packet.
    PortSkip,
}

#[derive(Debug, Clone, Copy, Serialize)]
struct Cell {
    mode: Mode,
    size: usize,
    conns: usize,
}

/// A whole number from `lo` to `hi`.
fn count(s: &str, lo: usize, hi: usize) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        Ok(_) if hi == usize::MAX => Err(format!("must be at least {lo}")),
        Ok(_) => Err(format!("must be {lo} to {hi}")),
        Err(_) => Err(format!("`{s}` is not a whole number")),
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    count(s, 1, usize::MAX)
}

fn threads(s: &str) -> Result<usize, String> {
    count(s, 1, 256)
}

fn pairs(s: &str) -> Result<usize, String> {
    count(s, 1, 1024)
}

/// A number of seconds, 0 to a day.
fn seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(0.0..=86_400.0).contains(&v) {
        return Err(format!("{s} is not between 0 and 86400 seconds"));
    }
    Ok(v)
}

/// A number of seconds, more than 0 and at most a day.
fn positive_seconds(s: &str) -> Result<f64, String> {
    let v = seconds(s)?;
    if v < 0.001 {
        return Err(format!(
            "{s} s is too short to measure anything (0.001 s at least)"
        ));
    }
    Ok(v)
}

fn server_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    servers::check_name(name)?;
    Ok(name.to_string())
}

/// Checks what clap cannot: no value named twice in one list.
fn check(a: &BenchArgs) -> Result<(), String> {
    fn once<T: PartialEq + std::fmt::Debug>(what: &str, v: &[T]) -> Result<(), String> {
        match v.iter().enumerate().find(|(i, x)| v[..*i].contains(x)) {
            Some((_, x)) => Err(format!("{what}: {x:?} is named twice")),
            None => Ok(()),
        }
    }
    once("--servers", &a.servers)?;
    if a.other_ovl.is_none() && a.servers.iter().any(|s| s.ends_with(servers::OTHER)) {
        return Err(format!(
            "servers named MODEL-ENGINE{} need --other-ovl PATH",
            servers::OTHER
        ));
    }
    if let Some(p) = &a.other_ovl {
        if !p.is_file() {
            return Err(format!("--other-ovl {}: no such file", p.display()));
        }
    }
    once("--modes", &a.modes)?;
    // Echo servers answer the echo modes, HTTP servers the http mode.
    let http_servers = a.servers.iter().filter(|s| servers::is_http(s)).count();
    let http_mode = a.modes.contains(&Mode::Http);
    if http_servers > 0 && http_servers < a.servers.len() {
        return Err(
            "--servers: hyper-* servers (http mode) and echo servers cannot share a run".into(),
        );
    }
    if http_mode && a.modes.len() > 1 {
        return Err("--modes: http cannot share a run with the echo modes".into());
    }
    if http_mode && !a.servers.is_empty() && http_servers == 0 {
        return Err(
            "--modes http needs hyper-* servers (hyper-tokio, hyper-uring, hyper-poll)".into(),
        );
    }
    if !a.modes.is_empty() && !http_mode && http_servers > 0 {
        return Err("hyper-* servers need --modes http".into());
    }
    once("--conns", &a.conns)?;
    once("--engine", &a.scale_opts.engine)?;
    once("--shapes", &a.scale_opts.shapes)
}

/// The servers of the run: `--servers`, or the defaults.
fn servers_for(a: &BenchArgs) -> Vec<String> {
    if !a.servers.is_empty() {
        return a.servers.clone();
    }
    if a.modes == [Mode::Http] {
        return ["hyper-tokio", "hyper-uring", "hyper-poll"]
            .iter()
            .map(|s| s.to_string())
            .collect();
    }
    let quick = [
        "tokio",
        "std",
        "uring-raw",
        "port-uring",
        "port-poll",
        "routines-uring",
        "async-uring",
    ];
    let full = [
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
    ];
    let names: &[&str] = if a.quick { &quick } else { &full };
    names.iter().map(|s| s.to_string()).collect()
}

/// The cells of the run: for each mode (default pingpong, pipeline), its
/// connection counts (`--conns`, or the mode's defaults).
fn cells_for(a: &BenchArgs) -> Vec<Cell> {
    let all_http = !a.servers.is_empty() && a.servers.iter().all(|s| servers::is_http(s));
    let modes = if a.modes.is_empty() && all_http {
        vec![Mode::Http]
    } else if a.modes.is_empty() {
        vec![Mode::Pingpong, Mode::Pipeline]
    } else {
        a.modes.clone()
    };
    let mut cells = Vec::new();
    for mode in modes {
        let conns: Vec<usize> = if !a.conns.is_empty() {
            a.conns.clone()
        } else {
            match mode {
                Mode::Pingpong if a.quick => vec![50],
                Mode::Pingpong => vec![50, 500],
                Mode::Pipeline | Mode::Stream | Mode::Http => vec![50],
            }
        };
        cells.extend(conns.into_iter().map(|conns| Cell {
            mode,
            size: a.size,
            conns,
        }));
    }
    cells
}

/// A short name of a cell for the plot.
fn cell_label(c: &Cell, a: &BenchArgs) -> String {
    let mode = match c.mode {
        Mode::Pingpong => "pingpong".to_string(),
        Mode::Pipeline => format!("pipeline x{}", a.depth),
        Mode::Stream => format!("stream {} KiB win", a.window.div_ceil(1024)),
        Mode::Http => return format!("http GET, {} conns", c.conns),
    };
    format!("{mode}, {} B, {} conns", c.size, c.conns)
}

/// How a round is run: the options that do not change between rounds.
struct Plan<'a> {
    a: &'a BenchArgs,
    warm: Duration,
    dur: Duration,
    /// CPUs for the server and the load generator, when there are two.
    pinned: bool,
    /// perf can count system calls (`--syscalls`).
    perf: bool,
}

impl Plan<'_> {
    /// One round of `name` in `cell`. `Err` when the server cannot start;
    /// the second value says why perf could not count, if it could not.
    fn round(&self, name: &str, cell: Cell) -> Result<(RoundResult, Option<String>), String> {
        let (server, addr) =
            Server::start(name, self.pinned.then_some(0), self.a.other_ovl.as_deref())?;
        let pid = server.pid();
        // perf counts inside the measured part, a margin from each end.
        let margin = self.dur / 20;
        let counting = self
            .perf
            .then(|| perf::Counting::start(pid, self.warm + margin, self.dur - 2 * margin));
        let t0 = servers::cpu_ticks(pid).unwrap_or(0);
        let load = load::load(addr, cell, self.a.depth, self.a.window, self.warm, self.dur);
        let t1 = servers::cpu_ticks(pid).unwrap_or(0);
        let per_second = counting.map(|c| c.and_then(|c| c.per_second(self.warm + self.dur)));
        let tail = server.stop();
        let engine = EngineFigures::from_tail(&tail, cell.size);
        let secs = self.dur.as_secs_f64();
        let msgs_per_s = load.msgs as f64 / secs;
        let (perf_syscalls, perf_failed) = match per_second {
            Some(Ok(_)) if load.msgs == 0 => (None, Some("no message was echoed".to_string())),
            Some(Ok(calls)) => (Some(calls / msgs_per_s), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        // The CPU time covers warm-up too: scale by the share of messages
        // measured (close enough for a steady load).
        let cpu_s = t1.saturating_sub(t0) as f64 / servers::clk_tck()
            * (secs / (self.dur + self.warm).as_secs_f64());
        let r = RoundResult {
            msgs_per_s,
            mb_per_s: load.bytes as f64 / secs / 1e6,
            p50_us: load.hist.value_at_quantile(0.5),
            p99_us: load.hist.value_at_quantile(0.99),
            p999_us: load.hist.value_at_quantile(0.999),
            errors: load.errors,
            mismatches: load.mismatches,
            cpu_us_per_msg: cpu_s * 1e6 / load.msgs.max(1) as f64,
            enters_per_msg: engine.map(|e| e.enters),
            syscalls_per_msg: engine.map(|e| e.syscalls),
            immediate_share: engine.map(|e| e.immediate),
            perf_syscalls_per_msg: perf_syscalls,
        };
        Ok((r, perf_failed))
    }
}

/// Runs the benchmark.
pub fn run(a: BenchArgs) -> ExitCode {
    if let Err(e) = check(&a) {
        eprintln!("ovl bench: {e}");
        return ExitCode::from(2);
    }
    if a.scale {
        return scale::run(&a);
    }
    let servers = servers_for(&a);
    let cells = cells_for(&a);
    let rounds = a.rounds.unwrap_or(if a.quick { 1 } else { 3 });
    // Defaults keep the whole run near two minutes; the figures in
    // docs/performance.md use longer rounds (`--duration 2 --warmup 0.5`).
    let dur = Duration::from_secs_f64(a.duration.unwrap_or(1.0));
    let warm = Duration::from_secs_f64(a.warmup.unwrap_or(0.3));
    let ncpu = servers::cpus();
    let perf_unavailable = if a.syscalls {
        perf::probe().err()
    } else {
        None
    };
    let plan = Plan {
        a: &a,
        warm,
        dur,
        pinned: ncpu >= 2,
        perf: a.syscalls && perf_unavailable.is_none(),
    };
    if plan.pinned {
        servers::pin(None, 1);
    }
    let total = (servers.len() * cells.len() * rounds) as u64;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut results = Results::new();
    let mut unavailable: BTreeMap<String, String> = BTreeMap::new();
    let mut perf_failures: BTreeMap<String, String> = BTreeMap::new();
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
                match plan.round(name, *cell) {
                    Ok((r, perf_failed)) => {
                        results.entry((ci, name.clone())).or_default().push(r);
                        if let Some(why) = perf_failed {
                            perf_failures.entry(name.clone()).or_insert(why);
                        }
                    }
                    Err(why) => {
                        unavailable.insert(name.clone(), why);
                    }
                }
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
    if a.syscalls {
        match &perf_unavailable {
            None => println!(
                "perf sys/m: every system call of the server process (perf, raw_syscalls:sys_enter) per message"
            ),
            Some(why) => println!("perf sys/m: n/a: {why}"),
        }
        for (name, why) in &perf_failures {
            println!("perf sys/m of {name}: n/a in some rounds: {why}");
        }
    }
    let sums = report::summarize(&results);
    report::print_tables(&a, &cells, &servers, &results, &sums, &unavailable);
    let mut failed = false;
    if let Some(path) = &a.json {
        if let Err(e) = report::write_json(path, &a, &cells, &results, &unavailable) {
            eprintln!("{e}");
            failed = true;
        }
    }
    if let Some(path) = &a.plot {
        let labels: Vec<String> = cells.iter().map(|c| cell_label(c, &a)).collect();
        match plot::draw(path, &labels, &servers, &sums) {
            Ok(()) => println!("\nplot: {}", path.display()),
            Err(e) => {
                eprintln!("cannot draw {}: {e}", path.display());
                failed = true;
            }
        }
    }
    if sums.values().any(|s| s.mismatched) {
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

    fn parse(extra: &[&str]) -> Result<BenchArgs, clap::Error> {
        #[derive(Debug, clap::Parser)]
        struct A {
            #[command(flatten)]
            b: BenchArgs,
        }
        let argv = std::iter::once("bench").chain(extra.iter().copied());
        <A as clap::Parser>::try_parse_from(argv).map(|a| a.b)
    }

    fn args(extra: &[&str]) -> BenchArgs {
        match parse(extra) {
            Ok(a) => a,
            Err(e) => panic!("{extra:?}: {e}"),
        }
    }

    /// The error of a command line that must not parse (or not check).
    fn refused(extra: &[&str]) -> String {
        match parse(extra) {
            Ok(a) => match check(&a) {
                Ok(()) => panic!("{extra:?} was accepted"),
                Err(e) => e,
            },
            Err(e) => e.to_string(),
        }
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
        assert_eq!(
            modes(&args(&["--servers", "hyper-tokio,hyper-uring"])),
            [(Mode::Http, 50)]
        );
        let a = args(&["--modes", "stream", "--size", "4096"]);
        let c = cells_for(&a);
        assert_eq!((c[0].mode, c[0].size, c[0].conns), (Mode::Stream, 4096, 50));
    }

    #[test]
    fn servers_default_and_chosen() {
        assert_eq!(servers_for(&args(&[])).len(), 11);
        assert_eq!(servers_for(&args(&["--quick"])).len(), 7);
        assert_eq!(
            servers_for(&args(&["--servers", "tokio, port-poll"])),
            ["tokio", "port-poll"]
        );
        assert_eq!(
            servers_for(&args(&["--modes", "http"])),
            ["hyper-tokio", "hyper-uring", "hyper-poll"]
        );
    }

    #[test]
    fn nonsense_is_refused() {
        for (argv, says) in [
            (&["--duration", "0"][..], "too short"),
            (&["--duration=-1"], "between 0 and 86400"),
            (&["--duration", "nan"], "between 0 and 86400"),
            (&["--duration", "inf"], "between 0 and 86400"),
            (&["--duration", "soon"], "not a number"),
            (&["--warmup=-0.5"], "between 0 and 86400"),
            (&["--rounds", "0"], "at least 1"),
            (&["--rounds", "two"], "not a whole number"),
            (&["--depth", "0"], "at least 1"),
            (&["--size", "0"], "at least 1"),
            (&["--window", "0"], "at least 1"),
            (&["--conns", "50,0"], "at least 1"),
            (&["--servers", "bogus"], "unknown server `bogus`"),
            (
                &["--servers", "tokio,port-epoll"],
                "unknown server `port-epoll`",
            ),
            (&["--servers", "tokio,"], "unknown server"),
            (&["--servers", "tokio,tokio"], "named twice"),
            (&["--modes", "pingpong,pingpong"], "named twice"),
            (&["--servers", "tokio,hyper-uring"], "cannot share a run"),
            (&["--modes", "http,pingpong"], "cannot share a run"),
            (&["--modes", "http", "--servers", "tokio"], "needs hyper-*"),
            (
                &["--modes", "pingpong", "--servers", "hyper-poll"],
                "need --modes http",
            ),
            (&["--scale", "--servers", "tokio"], "cannot be used with"),
            (&["--scale", "--syscalls"], "cannot be used with"),
            (&["--scale", "--depth", "4"], "cannot be used with"),
            (&["--threads", "2"], "--scale"),
            (&["--engine", "poll"], "--scale"),
            (&["--scale", "--threads", "0"], "1 to 256"),
            (&["--scale", "--threads", "10000"], "1 to 256"),
            (&["--scale", "--pairs", "0"], "1 to 1024"),
            (&["--scale", "--engine", "epoll"], "epoll"),
            (&["--scale", "--engine", "poll,poll"], "named twice"),
        ] {
            let e = refused(argv);
            assert!(e.contains(says), "{argv:?}: {e}");
        }
    }

    #[test]
    fn sensible_values_pass() {
        for argv in [
            &["--duration", "0.5", "--warmup", "0", "--rounds", "1"][..],
            &["--servers", "tokio,std,uring-raw,port-uring,async-auto"],
            &["--syscalls", "--quick"],
            &[
                "--modes",
                "http",
                "--servers",
                "hyper-tokio,hyper-uring,hyper-poll",
            ],
            &["--scale"],
            &[
                "--scale",
                "--threads",
                "4",
                "--pairs",
                "2",
                "--engine",
                "poll",
                "--shapes",
                "port,shared",
                "--size",
                "64",
                "--json",
                "x.json",
            ],
        ] {
            let a = args(argv);
            assert_eq!(check(&a), Ok(()), "{argv:?}");
        }
    }
}
