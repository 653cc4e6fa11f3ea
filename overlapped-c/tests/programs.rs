//! The C interface end to end: the six textbook programs, the
//! `WSAEventSelect` echo server (and the contract checks in
//! `tests/c/contract.c`) compile with `cc -Wall -Werror` against the
//! header and run on both engines — the send and receive programs against
//! each other, the echo servers against `ovl echo-client` (when
//! the workspace's binary is built), a Rust client, a Python client and the
//! C stable echo client.
//!
//! Every process runs on loopback with a time bound (scaled by
//! `OVERLAPPED_TEST_TIME_SCALE`) and is killed if it outlives its test.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// `OVERLAPPED_TEST_TIME_SCALE` times `secs`.
fn bound(secs: u64) -> Duration {
    let scale: u32 = std::env::var("OVERLAPPED_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1);
    Duration::from_secs(secs) * scale
}

/// The engines to run on: `uring` unless io_uring cannot run here or
/// `OVERLAPPED_TEST_FORBID_URING` is set (then it is skipped with the
/// reason, or fails under `OVERLAPPED_TEST_REQUIRE_URING`), and `poll`:
/// the same switches as the library's tests (`overlapped/tests/util`).
fn engines() -> Vec<&'static str> {
    let mut v = Vec::new();
    let flag = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
    let why = if flag("OVERLAPPED_TEST_FORBID_URING") {
        Err("OVERLAPPED_TEST_FORBID_URING is set".to_string())
    } else {
        overlapped::probe::probe_uring().map_err(|e| e.to_string())
    };
    match why {
        Ok(_) => v.push("uring"),
        Err(why) => {
            let require =
                std::env::var_os("OVERLAPPED_TEST_REQUIRE_URING").is_some_and(|v| v != "0");
            assert!(!require, "io_uring unavailable: {why}");
            eprintln!("SKIPPED: io_uring unavailable: {why}");
        }
    }
    v.push("poll");
    v
}

/// `target/<profile>`: the test binary lives in its `deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/deps`: where the build for these tests puts the
/// library's `.so` and `.a` (`target/<profile>/` gets copies only from a
/// `cargo build`, so they may be stale).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// Compiles one C file against the header and the library (shared, or
/// the static archive) this test run built.
fn compile(src: &Path, name: &str, static_lib: bool) -> PathBuf {
    let lib = lib_dir();
    let out_dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c-programs");
    std::fs::create_dir_all(&out_dir).expect("output directory");
    let out = out_dir.join(name);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-Wall", "-Werror", "-g", "-I"])
        .arg(crate_dir().join("include"))
        .arg(src)
        .arg("-o")
        .arg(&out);
    if static_lib {
        let a = lib.join("liboverlapped_c.a");
        assert!(
            a.exists(),
            "{} is missing: the crate builds it",
            a.display()
        );
        cc.arg(a).args(["-lpthread", "-ldl", "-lm"]);
    } else {
        let so = lib.join("liboverlapped_c.so");
        assert!(
            so.exists(),
            "{} is missing: the crate builds it",
            so.display()
        );
        // DT_RPATH (not RUNPATH): the library of this build wins over
        // any `LD_LIBRARY_PATH`, which cargo points at `target/<profile>`
        // (where an older copy may lie).
        cc.arg("-L")
            .arg(&lib)
            .arg("-loverlapped_c")
            .arg(format!("-Wl,--disable-new-dtags,-rpath,{}", lib.display()));
    }
    let o = cc.output().expect("run the C compiler (cc)");
    assert!(
        o.status.success(),
        "cc -Wall -Werror {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The six textbook programs, and the `WSAEventSelect` echo server.
const PROGRAMS: [&str; 7] = [
    "overlapped_send",
    "overlapped_recv",
    "cmpl_routine_recv",
    "cmpl_routine_echo_server",
    "stable_echo_client",
    "iocp_echo_server",
    "event_select_server",
];

/// The programs and the contract checks, compiled once.
fn program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let mut v: Vec<(String, PathBuf)> = PROGRAMS
            .iter()
            .map(|p| {
                let src = crate_dir().join("examples").join(format!("{p}.c"));
                (p.to_string(), compile(&src, p, false))
            })
            .collect();
        for t in ["contract", "ctrl_c", "port_race"] {
            let src = crate_dir().join(format!("tests/c/{t}.c"));
            v.push((t.to_string(), compile(&src, t, false)));
        }
        v
    });
    built
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .expect("a known program")
}

/// A child process killed (and reaped) when dropped.
struct Proc {
    child: Child,
    what: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Waits for the exit within `limit`; the output read so far.
    fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        let mut out = self.child.stdout.take();
        let mut err = self.child.stderr.take();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return (status, reader.join().unwrap_or_default());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let out = reader.join().unwrap_or_default();
                panic!(
                    "{} did not finish within {limit:?}; its output:\n{out}",
                    self.what
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn spawn(bin: &Path, args: &[&str], engine: &str, stdin: Option<&str>) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env("OVERLAPPED_ENGINE", engine)
        .env_remove("LD_LIBRARY_PATH")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
    if let Some(input) = stdin {
        let mut i = child.stdin.take().expect("stdin");
        i.write_all(input.as_bytes()).expect("write stdin");
    }
    Proc {
        child,
        what: format!("{} {} ({engine})", bin.display(), args.join(" ")),
    }
}

/// Starts a server program and reads the port it prints first.
fn server(name: &str, args: &[&str], engine: &str) -> (Proc, Box<dyn BufRead + Send>, u16) {
    let mut p = spawn(&program(name), args, engine, None);
    let mut out: Box<dyn BufRead + Send> =
        Box::new(BufReader::new(p.child.stdout.take().expect("stdout")));
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        out
    });
    let line = rx
        .recv_timeout(bound(10))
        .unwrap_or_else(|_| panic!("{name} printed no port"));
    let out = reader.join().expect("reader");
    let port = line
        .strip_prefix("listening on port ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{name} printed {line:?}"));
    (p, out, port)
}

/// Collects the rest of a server's output and its exit.
fn finish_server(p: Proc, out: Box<dyn BufRead + Send>, limit: Duration) -> (ExitStatus, String) {
    let mut p = p;
    let rest = std::thread::spawn(move || {
        let mut s = String::new();
        let mut out = out;
        let _ = out.read_to_string(&mut s);
        s
    });
    p.child.stdout = None;
    let (status, err) = p.finish(limit);
    (status, rest.join().unwrap_or_default() + &err)
}

#[test]
fn send_and_receive_programs_run_against_each_other_on_both_engines() {
    for engine in engines() {
        for receiver in ["overlapped_recv", "cmpl_routine_recv"] {
            let msg = format!("Network is Computer! ({receiver} on {engine})");
            let (srv, out, port) = server(receiver, &["0"], engine);
            let (status, sent) = spawn(
                &program("overlapped_send"),
                &["127.0.0.1", &port.to_string(), &msg],
                engine,
                None,
            )
            .finish(bound(20));
            assert!(status.success(), "overlapped_send failed: {sent}");
            assert!(
                sent.contains(&format!("Send data size: {}", msg.len() + 1)),
                "overlapped_send reported {sent:?}"
            );
            let (status, got) = finish_server(srv, out, bound(20));
            assert!(status.success(), "{receiver} failed: {got}");
            assert!(
                got.contains(&format!("Received message: {msg}\n")),
                "{receiver} printed {got:?}"
            );
            if receiver == "cmpl_routine_recv" {
                assert!(
                    got.contains("Overlapped I/O Completed"),
                    "the routine ran in the alertable wait: {got:?}"
                );
            }
        }
    }
}

/// A Rust client: messages of growing size, each echoed whole.
fn rust_client(port: u16) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(bound(20))).expect("timeout");
    for i in 0..10usize {
        let msg: Vec<u8> = (0..(1 + i * 700)).map(|k| (k * 31 + i) as u8).collect();
        s.write_all(&msg).expect("send");
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).expect("echo");
        assert_eq!(back, msg, "message {i} came back changed");
    }
}

/// Python clients run at once against each echo server.
const PYTHONS: usize = 4;

/// `target/<profile>/ovl`, when the workspace's CLI is built.
fn ovl_binary() -> Option<PathBuf> {
    let p = target_dir().join("ovl");
    p.exists().then_some(p)
}

/// Serves `ovl echo-client`, then the Rust client and [`PYTHONS`] Python
/// clients at once, then the C stable echo client; the server exits by
/// itself after that many clients. Returns its output.
fn serve_every_client(server_name: &str, engine: &str) -> String {
    let ovl = ovl_binary();
    if ovl.is_none() {
        eprintln!(
            "note: target/debug/ovl is not built here (cargo build -p ovl); the Rust client stands in for ovl echo-client"
        );
    }
    let clients = 1 + 2 * PYTHONS + 1 + usize::from(ovl.is_some());
    let (srv, out, port) = server(server_name, &["0", &clients.to_string()], engine);
    let addr = format!("127.0.0.1:{port}");
    if let Some(ovl) = &ovl {
        let (status, o) = spawn(
            ovl,
            &[
                "echo-client",
                "--addr",
                &addr,
                "--count",
                "40",
                "--size",
                "3000",
            ],
            engine,
            None,
        )
        .finish(bound(30));
        assert!(
            status.success() && o.contains("0 mismatched"),
            "ovl echo-client against {server_name}: {o}"
        );
    }
    // Four Python clients at once (two connections each, so the server's
    // workers take completions of several connections concurrently), and
    // the Rust client meanwhile.
    let script = crate_dir().join("tests/c/echo_client.py");
    let pythons: Vec<Proc> = (0..PYTHONS)
        .map(|_| {
            let child = Command::new("python3")
                .arg(&script)
                .args([port.to_string(), "2".into()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3 (the Python client's interpreter)");
            Proc {
                child,
                what: "a Python echo client".into(),
            }
        })
        .collect();
    rust_client(port);
    for p in pythons {
        let (status, o) = p.finish(bound(30));
        assert!(
            status.success(),
            "a Python client against {server_name}: {o}"
        );
    }
    let (status, o) = spawn(
        &program("stable_echo_client"),
        &["127.0.0.1", &port.to_string()],
        engine,
        Some("Hello, overlapped\nsecond line\nq\n"),
    )
    .finish(bound(20));
    assert!(status.success(), "stable_echo_client: {o}");
    assert!(
        o.contains("Message from server: Hello, overlapped\n")
            && o.contains("Message from server: second line\n"),
        "stable_echo_client printed {o:?}"
    );
    let (status, o) = finish_server(srv, out, bound(20));
    assert!(status.success(), "{server_name} on {engine}: {o}");
    o
}

#[test]
fn completion_routine_echo_server_serves_every_client_on_both_engines() {
    for engine in engines() {
        let out = serve_every_client("cmpl_routine_echo_server", engine);
        let clients = 2 + 2 * PYTHONS + usize::from(ovl_binary().is_some());
        assert_eq!(out.matches("client disconnected").count(), clients, "{out}");
    }
}

#[test]
fn iocp_echo_server_serves_every_client_on_both_engines() {
    for engine in engines() {
        let out = serve_every_client("iocp_echo_server", engine);
        let clients = 2 + 2 * PYTHONS + usize::from(ovl_binary().is_some());
        assert!(out.contains(&format!("served {clients} clients")), "{out}");
    }
}

/// The `WSAEventSelect` server: one thread, `WSAWaitForMultipleEvents`
/// over the listener and every client, `WSAEnumNetworkEvents`, non-blocking
/// `accept`/`recv`/`send` on `FD_ACCEPT`/`FD_READ`/`FD_WRITE`, close on
/// `FD_CLOSE` — serving several clients at once (SPEC t04).
#[test]
fn event_select_echo_server_serves_every_client_on_both_engines() {
    for engine in engines() {
        let out = serve_every_client("event_select_server", engine);
        let clients = 2 + 2 * PYTHONS + usize::from(ovl_binary().is_some());
        assert!(out.contains(&format!("served {clients} clients")), "{out}");
        assert_eq!(out.matches("client disconnected").count(), clients, "{out}");
    }
}

#[test]
fn contract_checks_pass_on_both_engines() {
    for engine in engines() {
        let (status, out) = spawn(&program("contract"), &[], engine, None).finish(bound(30));
        assert!(status.success(), "contract.c on {engine}:\n{out}");
        assert!(
            out.contains(" checks passed") && !out.contains("FAILED"),
            "contract.c on {engine}:\n{out}"
        );
    }
}

#[test]
fn a_program_links_the_static_library() {
    let src = crate_dir().join("examples/iocp_echo_server.c");
    let bin = compile(&src, "iocp_echo_server_static", true);
    for engine in engines() {
        let mut p = spawn(&bin, &["0", "1"], engine, None);
        let mut out = BufReader::new(p.child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("the port line");
        let port: u16 = line
            .strip_prefix("listening on port ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("printed {line:?}"));
        rust_client(port);
        let (status, o) = finish_server(p, Box::new(out), bound(20));
        assert!(status.success() && o.contains("served 1 clients"), "{o}");
    }
}

/// valgrind's memcheck: definite leaks and memory errors make the run
/// exit with 9.
fn valgrind(bin: &Path, args: &[&str], stdin: Option<&str>) -> Proc {
    let mut all = vec![
        "-q",
        "--error-exitcode=9",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
    ];
    all.push(bin.to_str().expect("a UTF-8 path"));
    all.extend_from_slice(args);
    let mut p = spawn(Path::new("valgrind"), &all, "poll", stdin);
    p.what = format!("{} under valgrind", bin.display());
    p
}

/// Reads the port a server prints first, within `limit`.
fn port_of(p: &mut Proc, limit: Duration) -> (Box<dyn BufRead + Send>, u16) {
    let mut out: Box<dyn BufRead + Send> =
        Box::new(BufReader::new(p.child.stdout.take().expect("stdout")));
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        out
    });
    let line = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{} printed no port", p.what));
    let out = reader.join().expect("reader");
    let port = line
        .strip_prefix("listening on port ")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{} printed {line:?}", p.what));
    (out, port)
}

/// valgrind's memcheck (definite leaks and memory errors) over every
/// program here and the contract checks, on the poll engine: valgrind does
/// not see the kernel write a receive's bytes through io_uring's shared
/// memory, so on that engine it would report the received bytes as
/// uninitialised. The servers serve a few clients only (valgrind is slow).
#[test]
fn every_program_is_clean_under_valgrind_on_poll() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("SKIPPED: valgrind is not installed");
        return;
    }
    let slow = bound(120);
    let (status, out) = valgrind(&program("contract"), &[], None).finish(slow);
    assert!(status.success(), "contract.c under valgrind:\n{out}");

    // The send and receive programs, each under valgrind, against each
    // other.
    for receiver in ["overlapped_recv", "cmpl_routine_recv"] {
        let mut srv = valgrind(&program(receiver), &["0"], None);
        let (out, port) = port_of(&mut srv, slow);
        let (status, sent) = valgrind(
            &program("overlapped_send"),
            &["127.0.0.1", &port.to_string(), "under valgrind"],
            None,
        )
        .finish(slow);
        assert!(status.success(), "overlapped_send under valgrind:\n{sent}");
        let (status, got) = finish_server(srv, out, slow);
        assert!(
            status.success() && got.contains("Received message: under valgrind\n"),
            "{receiver} under valgrind:\n{got}"
        );
    }

    // The echo servers: the Rust client, and for the single-threaded ones
    // a Python client's two connections at once with it; the C stable
    // echo client (under valgrind too) against the completion-routine one.
    let script = crate_dir().join("tests/c/echo_client.py");
    for (name, pythons) in [
        ("iocp_echo_server", 0),
        ("cmpl_routine_echo_server", 0),
        ("event_select_server", 2),
    ] {
        let stable = name == "cmpl_routine_echo_server";
        let clients = 1 + pythons + usize::from(stable);
        let mut srv = valgrind(&program(name), &["0", &clients.to_string()], None);
        let (out, port) = port_of(&mut srv, slow);
        let python = (pythons > 0).then(|| Proc {
            child: Command::new("python3")
                .arg(&script)
                .args([port.to_string(), pythons.to_string()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("python3 (the Python client's interpreter)"),
            what: "a Python echo client".into(),
        });
        rust_client(port);
        if let Some(p) = python {
            let (status, o) = p.finish(slow);
            assert!(status.success(), "a Python client against {name}: {o}");
        }
        if stable {
            let (status, o) = valgrind(
                &program("stable_echo_client"),
                &["127.0.0.1", &port.to_string()],
                Some("under valgrind\nq\n"),
            )
            .finish(slow);
            assert!(
                status.success() && o.contains("Message from server: under valgrind\n"),
                "stable_echo_client under valgrind:\n{o}"
            );
        }
        let (status, o) = finish_server(srv, out, slow);
        assert!(status.success(), "{name} under valgrind:\n{o}");
    }
}

/// Sends `SIGINT` to a child by its process id.
fn interrupt(p: &Proc) {
    let st = Command::new("kill")
        .args(["-INT", &p.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -INT failed");
}

#[test]
fn ctrl_c_reaches_the_console_handler_and_can_be_ignored() {
    let mut p = spawn(&program("ctrl_c"), &[], "poll", None);
    let out = BufReader::new(p.child.stdout.take().expect("stdout"));
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || rx.recv_timeout(bound(10)).expect("a line from ctrl_c");
    assert_eq!(next(), "ready");
    interrupt(&p);
    assert_eq!(next(), "handled type 0 on another thread");
    assert_eq!(next(), "ignoring");
    interrupt(&p);
    assert_eq!(next(), "still here");
    let (status, err) = p.finish(bound(10));
    assert!(status.success(), "ctrl_c: {status} {err}");
    let _ = reader.join();
}

/// One `OVERLAPPED` reused by whichever worker takes its packet, while the
/// start that posted it may not have returned yet (`tests/c/port_race.c`):
/// every byte arrives once and in order, and no start finds the
/// `OVERLAPPED` busy.
#[test]
fn a_reused_overlapped_survives_packets_taken_before_its_start_returns() {
    for engine in engines() {
        let (status, out) =
            spawn(&program("port_race"), &["10000000"], engine, None).finish(bound(60));
        assert!(status.success(), "port_race on {engine}: {out}");
        assert!(
            out.contains("10000000 bytes through one reused OVERLAPPED"),
            "{out}"
        );
    }
}
