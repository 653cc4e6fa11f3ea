//! The server processes of `ovl bench`: which names exist, how each one is
//! started (and pinned), stopped, and how much CPU time it used.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The baselines, each a binary of `bench-baselines` next to `ovl`.
const BASELINES: [(&str, &str); 3] = [
    ("tokio", "tokio-echo"),
    ("std", "std-echo"),
    ("uring-raw", "uring-echo"),
];
/// The HTTP servers (`ovl http-server --sockets ...`): hyper on tokio's
/// sockets, and on ours on each engine. Only `http` mode loads them.
const HTTP: [(&str, &str); 3] = [
    ("hyper-tokio", "tokio"),
    ("hyper-uring", "uring"),
    ("hyper-poll", "poll"),
];

/// True for the servers that speak HTTP (the others echo).
pub(super) fn is_http(name: &str) -> bool {
    let name = name.strip_suffix(OTHER).unwrap_or(name);
    HTTP.iter().any(|(n, _)| *n == name)
}

/// Our servers are `MODEL-ENGINE`, run as `ovl echo-server`.
const MODELS: [&str; 4] = ["port", "routines", "events", "async"];
const ENGINES: [&str; 3] = ["uring", "poll", "auto"];

/// The suffix of a server run from `--other-ovl`.
pub(super) const OTHER: &str = "@other";

/// How long a server may take to start listening, and to stop.
const START_LIMIT: Duration = Duration::from_secs(10);
const STOP_LIMIT: Duration = Duration::from_secs(3);

/// Checks a `--servers` name: a baseline, an HTTP server or
/// `MODEL-ENGINE`.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    let name = name.strip_suffix(OTHER).unwrap_or(name);
    if BASELINES.iter().any(|(n, _)| *n == name) || is_http(name) {
        return Ok(());
    }
    if let Some((model, engine)) = name.split_once('-') {
        if MODELS.contains(&model) && ENGINES.contains(&engine) {
            return Ok(());
        }
    }
    Err(format!(
        "unknown server `{name}` (known: {}, {} (http mode), and MODEL-ENGINE with MODEL one of {} and ENGINE one of {})",
        BASELINES.map(|(n, _)| n).join(", "),
        HTTP.map(|(n, _)| n).join(", "),
        MODELS.join(", "),
        ENGINES.join(", ")
    ))
}

/// The number of CPUs this process may run on.
pub(super) fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Pins a process (`None`: the calling thread) to one CPU. Best effort: a
/// benchmark unpinned is still a benchmark.
pub(super) fn pin(pid: Option<u32>, cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let pid = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    let _ = rustix::thread::sched_setaffinity(pid, &set);
}

/// User plus system CPU time of a process so far, in clock ticks.
pub(super) fn cpu_ticks(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the name.
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second (the unit of [`cpu_ticks`]).
pub(super) fn clk_tck() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// A running server process.
pub(super) struct Server {
    child: Child,
    /// What the server prints after its address line, read to the end on
    /// a thread of its own so the server never blocks on its stdout.
    tail: Receiver<String>,
}

impl Server {
    /// Starts server `name` on a free loopback port, pinned to `cpu` if
    /// given, and waits until it accepts connections.
    pub(super) fn start(
        name: &str,
        cpu: Option<usize>,
        other: Option<&std::path::Path>,
    ) -> Result<(Server, SocketAddr), String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut cmd = command_for(name, addr, other)?;
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{name}: cannot start ({e}); build the baselines with `cargo build --release -p bench-baselines`"))?;
        if let Some(cpu) = cpu {
            pin(Some(child.id()), cpu);
        }
        // Wait for the address line (the rest of stdout is read at stop).
        let mut reader = child.stdout.take().map(BufReader::new);
        let t0 = Instant::now();
        let mut line = String::new();
        if let Some(r) = reader.as_mut() {
            while t0.elapsed() < START_LIMIT {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if line.starts_with("listening on") => break,
                    Ok(_) => {}
                }
            }
        }
        let (tx, tail) = std::sync::mpsc::channel::<String>();
        if let Some(mut r) = reader {
            std::thread::spawn(move || {
                let mut all = String::new();
                let _ = r.read_to_string(&mut all);
                let _ = tx.send(all);
            });
        }
        let server = Server { child, tail };
        while std::net::TcpStream::connect(addr).is_err() {
            if t0.elapsed() > START_LIMIT {
                server.stop();
                return Err(format!("{name}: did not start listening"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok((server, addr))
    }

    /// The server's process id.
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGTERM, then SIGKILL after a while); returns what
    /// it printed after its address line.
    pub(super) fn stop(mut self) -> String {
        let pid = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw);
        if let Some(pid) = pid {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let t0 = Instant::now();
        while t0.elapsed() < STOP_LIMIT {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.tail.recv_timeout(STOP_LIMIT).unwrap_or_default()
    }
}

/// Per echoed message, what one of our servers printed of its engine when
/// it stopped (its `OVL-STATS {json}` line; the baselines print none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct EngineFigures {
    /// Kernel entries (io_uring_enter, epoll_wait).
    pub(super) enters: f64,
    /// Kernel entries plus direct (try-now) system calls.
    pub(super) syscalls: f64,
    /// The share of operations that completed at start.
    pub(super) immediate: f64,
}

impl EngineFigures {
    /// Reads the figures from a server's output; `size` is the message size
    /// (an HTTP server counts its requests, and the figures are per
    /// request).
    pub(super) fn from_tail(tail: &str, size: usize) -> Option<EngineFigures> {
        let v: serde_json::Value = tail
            .lines()
            .find_map(|l| l.strip_prefix("OVL-STATS "))
            .and_then(|j| serde_json::from_str(j).ok())?;
        let f = |k: &str| v.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        let echoed = match v.get("requests") {
            Some(_) => f("requests").max(1.0),
            None => (f("bytes") / size as f64).max(1.0),
        };
        let ops = f("completed_now") + f("completed_later");
        Some(EngineFigures {
            enters: f("enter_calls") / echoed,
            syscalls: (f("enter_calls") + f("direct_calls")) / echoed,
            immediate: if ops > 0.0 {
                f("completed_now") / ops
            } else {
                0.0
            },
        })
    }
}

fn command_for(
    name: &str,
    addr: SocketAddr,
    other: Option<&std::path::Path>,
) -> Result<Command, String> {
    check_name(name)?;
    let mut exe =
        std::env::current_exe().map_err(|e| format!("cannot find ovl's executable: {e}"))?;
    let name = match (name.strip_suffix(OTHER), other) {
        (Some(n), Some(path)) => {
            exe = path.to_path_buf();
            n
        }
        (Some(_), None) => return Err(format!("{name}: no --other-ovl build given")),
        (None, _) => name,
    };
    let dir = exe
        .parent()
        .ok_or_else(|| format!("{} has no directory", exe.display()))?;
    let http = HTTP.iter().find(|(n, _)| *n == name);
    let mut c = match (BASELINES.iter().find(|(n, _)| *n == name), http) {
        (Some((_, bin)), _) => Command::new(dir.join(bin)),
        (None, Some((_, sockets))) => {
            let mut c = Command::new(&exe);
            c.env("OVL_STATS", "1");
            c.args(["http-server", "--sockets", sockets]);
            c
        }
        (None, None) => {
            let (model, engine) = name.split_once('-').unwrap_or((name, "auto"));
            let mut c = Command::new(&exe);
            // The engine figures come from the line the server prints when
            // asked (an older build prints it always).
            c.env("OVL_STATS", "1");
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
    c.args(["--addr", &addr.to_string()]);
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_figures_from_the_stats_line() {
        let tail = "stopped: 3 connections\nOVL-STATS {\"enter_calls\": 50, \"direct_calls\": 150, \
                    \"completed_now\": 30, \"completed_later\": 10, \"bytes\": 102400}\n";
        let f = EngineFigures::from_tail(tail, 1024).unwrap();
        assert_eq!(
            f,
            EngineFigures {
                enters: 0.5,
                syscalls: 2.0,
                immediate: 0.75
            }
        );
        assert_eq!(EngineFigures::from_tail("stopped\n", 1024), None);
        let http = "OVL-STATS {\"enter_calls\": 30, \"direct_calls\": 10, \
                    \"completed_now\": 1, \"completed_later\": 3, \"requests\": 20}\n";
        let f = EngineFigures::from_tail(http, 1024).unwrap();
        assert_eq!((f.enters, f.syscalls, f.immediate), (1.5, 2.0, 0.25));
    }

    #[test]
    fn server_names() {
        for ok in [
            "tokio",
            "std",
            "uring-raw",
            "port-uring",
            "async-poll",
            "events-auto",
            "hyper-tokio",
            "hyper-uring",
            "hyper-poll",
        ] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "bogus",
            "",
            "port",
            "port-",
            "-uring",
            "port-epoll",
            "tokio-uring",
            "hyper-auto",
        ] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("unknown server"), "{bad}: {e}");
        }
    }
}
