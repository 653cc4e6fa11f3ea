//! The harness of the `ovl` binary's tests: starting `ovl echo-server`
//! ([`start_with`], [`serve`]) and `ovl echo-client` ([`client`]), running
//! `ovl` to its end ([`run_ovl`]), a one-message echo ([`ping`]), and what
//! a server process holds ([`rss_kib`], [`fd_count`],
//! [`idle_rss_per_conn`]). Every wait has a bound, scaled by
//! `OVERLAPPED_TEST_TIME_SCALE` ([`slack`]).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

// The library's test time bounds: `slack` scales an upper bound by
// `OVERLAPPED_TEST_TIME_SCALE`.
#[allow(dead_code)]
#[path = "../../../overlapped/tests/util/bounds.rs"]
mod bounds;
pub use bounds::{SEC, slack};

pub const OVL: &str = env!("CARGO_BIN_EXE_ovl");

pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `echo-server --addr addr --model model --engine engine`.
pub fn echo_server_args<'a>(addr: &'a str, model: &'a str, engine: &'a str) -> [&'a str; 7] {
    [
        "echo-server",
        "--addr",
        addr,
        "--model",
        model,
        "--engine",
        engine,
    ]
}

/// Starts a server on a free loopback port and returns it with its address.
pub fn start(model: &str, engine: &str) -> (Server, String) {
    start_with(model, engine, &[])
}

pub fn start_with(model: &str, engine: &str, extra: &[&str]) -> (Server, String) {
    // The async model binds one fixed port from every thread.
    let addr = if model == "async" {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    } else {
        "127.0.0.1:0".to_string()
    };
    let mut child = Command::new(OVL)
        .args(echo_server_args(&addr, model, engine))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn ovl echo-server");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let deadline = Instant::now() + slack(20 * SEC);
    let server = Server(child);
    while Instant::now() < deadline {
        match lines.next() {
            Some(Ok(l)) if l.starts_with("listening on ") => {
                let addr = l.trim_start_matches("listening on ").trim().to_string();
                std::thread::spawn(move || for _ in lines.by_ref() {});
                return (server, addr);
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    panic!("server {model}/{engine} did not report its address");
}

pub fn client(addr: &str, count: u32, size: u32) -> bool {
    let mut c = Command::new(OVL)
        .args([
            "echo-client",
            "--addr",
            addr,
            "--count",
            &count.to_string(),
            "--size",
            &size.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn client");
    wait_within(&mut c, slack(60 * SEC)).is_some_and(|st| st.success())
}

/// The exit of `c` within `limit`; `None`, with `c` killed and reaped,
/// when it outlives it.
pub fn wait_within(c: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = c.try_wait().expect("wait for ovl") {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = c.kill();
            let _ = c.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Output of a finished `ovl` run.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `ovl args` with `envs` set (and `OVERLAPPED_ENGINE` / `OVL_STATS`
/// removed unless given), killing it after `limit` (scaled by [`slack`]).
pub fn run_ovl(args: &[&str], envs: &[(&str, &str)], limit: Duration) -> Run {
    let mut cmd = Command::new(OVL);
    cmd.args(args)
        .env_remove("OVERLAPPED_ENGINE")
        .env_remove("OVL_STATS")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut c = cmd.spawn().expect("spawn ovl");
    let drain = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut r) = r {
                let _ = r.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(c.stdout.take().map(|o| Box::new(o) as _));
    let err = drain(c.stderr.take().map(|o| Box::new(o) as _));
    let limit = slack(limit);
    let status = wait_within(&mut c, limit)
        .unwrap_or_else(|| panic!("ovl {args:?} did not finish in {limit:?}"));
    Run {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A running `ovl echo-server` and its stdout, line by line.
pub struct Running {
    pub server: Server,
    pub addr: String,
    /// The lines after `listening on` (the rest of the banner, then the
    /// summary at the end).
    pub lines: std::sync::mpsc::Receiver<String>,
}

impl Running {
    /// The next stdout line, waiting at most 10 s (scaled).
    pub fn line(&self) -> Option<String> {
        self.lines.recv_timeout(slack(10 * SEC)).ok()
    }

    /// Ctrl-C; waits (at most 10 s, scaled) for the exit and returns the status
    /// and the rest of stdout.
    pub fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        let pid = rustix::process::Pid::from_raw(self.server.0.id() as i32).expect("pid");
        rustix::process::kill_process(pid, rustix::process::Signal::INT).expect("SIGINT");
        let deadline = Instant::now() + slack(10 * SEC);
        let status = loop {
            if let Some(st) = self.server.0.try_wait().expect("wait server") {
                break st;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 10 s of Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let rest: Vec<String> = self.lines.try_iter().collect();
        (status, rest.join("\n"))
    }
}

/// Starts `ovl echo-server args` with `envs` (and `OVERLAPPED_ENGINE` /
/// `OVL_STATS` removed unless given). `Err` has the exit status and stderr
/// when the server did not start.
pub fn try_serve(args: &[&str], envs: &[(&str, &str)]) -> Result<Running, String> {
    let mut child = Command::new(OVL)
        .arg("echo-server")
        .args(args)
        .env_remove("OVERLAPPED_ENGINE")
        .env_remove("OVL_STATS")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ovl echo-server");
    let out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let mut server = Server(child);
    let deadline = Instant::now() + slack(20 * SEC);
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(l) => {
                if let Some(a) = l.strip_prefix("listening on ") {
                    return Ok(Running {
                        addr: a.trim().to_string(),
                        server,
                        lines: rx,
                    });
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = server.0.kill();
    let status = server.0.wait().expect("wait server");
    Err(format!(
        "{status}: {}",
        stderr.join().unwrap_or_default().trim()
    ))
}

pub fn serve(args: &[&str], envs: &[(&str, &str)]) -> Running {
    try_serve(args, envs).unwrap_or_else(|e| panic!("echo-server {args:?} did not start: {e}"))
}

/// A free loopback port (nothing listens on it once this returns).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One echo over a fresh connection.
pub fn ping(addr: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = c.set_read_timeout(Some(slack(5 * SEC)));
    let mut b = [0u8; 4];
    c.write_all(b"ping").is_ok() && c.read_exact(&mut b).is_ok() && &b == b"ping"
}

/// Descriptors open in process `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Server RSS per connection, in KiB, of `n` loopback connections to a
/// `model`/`engine` server: idle from the start, then (second figure) after
/// each echoed one message and the server had the time to give their
/// buffers back.
pub fn idle_rss_per_conn(model: &str, engine: &str, n: usize) -> (f64, f64) {
    use std::io::{Read, Write};
    // The client's descriptors; the server inherits the limit (raised
    // beyond the hard limit where allowed, as for root).
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let want = n as u64 + 512;
    if lim.current.is_some_and(|c| c < want) {
        let raised = Rlimit {
            current: Some(want),
            maximum: lim.maximum.map(|m| m.max(want)),
        };
        if setrlimit(Resource::Nofile, raised).is_err() {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: lim.maximum.map(|m| m.min(want)),
                    maximum: lim.maximum,
                },
            );
        }
    }
    let max = (n + 100).to_string();
    let (server, addr) = start_with(model, engine, &["--max-conns", &max, "--buf-release", "1"]);
    let pid = server.0.id();
    std::thread::sleep(Duration::from_millis(300));
    let (fds, before) = (fd_count(pid), rss_kib(pid));
    let mut conns: Vec<std::net::TcpStream> = (0..n)
        .map(|i| {
            std::net::TcpStream::connect(&addr)
                .unwrap_or_else(|e| panic!("{model}/{engine}: connection {i}: {e}"))
        })
        .collect();
    // Every connection accepted (async: spread over the threads' listeners).
    let t0 = Instant::now();
    while fd_count(pid) < fds + n {
        assert!(
            t0.elapsed() < slack(20 * SEC),
            "{model}/{engine}: {} of {n} connections accepted",
            fd_count(pid).saturating_sub(fds)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    let idle = rss_kib(pid);
    for c in &mut conns {
        c.set_read_timeout(Some(slack(10 * SEC))).unwrap();
        let mut b = [0u8; 100];
        c.write_all(&[7u8; 100]).unwrap();
        c.read_exact(&mut b).unwrap();
        assert_eq!(b, [7u8; 100], "{model}/{engine}: echoed bytes");
    }
    // The last receives wait a second (`--buf-release 1`) before their
    // buffers go back; the ticks are every 100 ms.
    std::thread::sleep(Duration::from_millis(2500));
    let after = rss_kib(pid);
    // The server goes first: its side of the connections, not the
    // client's, waits in TIME_WAIT (no client port stays taken).
    drop(server);
    drop(conns);
    let per = |kib: u64| kib.saturating_sub(before) as f64 / n as f64;
    (per(idle), per(after))
}
