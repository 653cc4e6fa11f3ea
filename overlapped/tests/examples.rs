//! The textbook programs, run as programs, on each engine: the overlapped
//! pair prints the book's lines, the routine receiver orders its lines as
//! the book does, and the routine, IOCP and async echo servers serve 100
//! concurrent clients with every byte verified; the file copy copies a
//! file through a completion port.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

#[path = "util/mod.rs"]
mod util;

use util::{Kind, SEC, slack};

fn example(name: &str) -> PathBuf {
    let mut p = std::env::current_exe().unwrap();
    p.pop();
    if p.ends_with("deps") {
        p.pop();
    }
    p.join("examples").join(name)
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts an example server on a free port; returns it and its address.
fn serve(name: &str, engine: &str) -> (Running, String, BufReader<std::process::ChildStdout>) {
    let mut c = Command::new(example(name))
        .arg("127.0.0.1:0")
        .env("OVERLAPPED_ENGINE", engine)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run example {name}: {e}"));
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Running(c), addr, out)
}

fn rest(mut out: BufReader<std::process::ChildStdout>, mut child: Running) -> String {
    let mut s = String::new();
    let _ = child.0.wait();
    out.read_to_string(&mut s).unwrap();
    s
}

fn pair(server: &str, engine: &str) -> String {
    let (srv, addr, out) = serve(server, engine);
    let sent = Command::new(example("overlapped_send"))
        .arg(&addr)
        .env("OVERLAPPED_ENGINE", engine)
        .output()
        .unwrap();
    assert!(sent.status.success());
    assert!(String::from_utf8_lossy(&sent.stdout).contains("Send data size: 21"));
    rest(out, srv)
}

fn overlapped_send_and_recv_print_the_book_lines(kind: Kind) {
    let engine = kind.name();
    let out = pair("overlapped_recv", engine);
    assert!(
        out.contains("Received message: Network is Computer!"),
        "{engine}: {out}"
    );
}

fn routine_recv_prints_message_before_completion_line(kind: Kind) {
    let engine = kind.name();
    let out = pair("routine_recv", engine);
    let m = out
        .find("Received message: Network is Computer!")
        .unwrap_or_else(|| panic!("{out}"));
    let c = out
        .find("Overlapped I/O Completed")
        .unwrap_or_else(|| panic!("{out}"));
    assert!(m < c, "{engine}: {out}");
}

fn echo_client(addr: &str, id: usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(slack(20 * SEC))).unwrap();
    // Lines that grow: 5, 50, 500, 1500 bytes (longer than the server's
    // 1,024-byte buffer): the restored receive length is what keeps them whole.
    for (k, n) in [5usize, 50, 500, 1500].into_iter().enumerate() {
        let msg: Vec<u8> = (0..n).map(|i| b'a' + ((i + id + k) % 26) as u8).collect();
        s.write_all(&msg).unwrap();
        let mut back = vec![0u8; n];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg, "client {id} message {k}");
    }
}

fn routine_echo_server_serves_100_clients(kind: Kind) {
    serves_100_clients("routine_echo_server", kind);
}

/// Runs an example echo server on an engine and checks 100 concurrent
/// clients, every byte verified.
fn serves_100_clients(name: &str, kind: Kind) {
    let (_srv, addr, out) = serve(name, kind.name());
    std::thread::spawn(move || for _ in out.lines() {});
    let clients: Vec<_> = (0..100)
        .map(|i| {
            let a = addr.clone();
            std::thread::spawn(move || echo_client(&a, i))
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
}

fn echo_client_stops_when_the_server_closes_mid_line() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut buf = [0u8; 64];
        let n = s.read(&mut buf).unwrap();
        s.write_all(&buf[..n / 2]).unwrap(); // half the echo, then close
    });
    let mut c = Command::new(example("echo_client"))
        .arg(&addr)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .as_mut()
        .unwrap()
        .write_all(b"hello there\n")
        .unwrap();
    let out = c.wait_with_output().unwrap();
    server.join().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("closed the connection"));
}

fn iocp_echo_server_serves_100_clients(kind: Kind) {
    serves_100_clients("iocp_echo_server", kind);
}

fn async_echo_server_serves_100_clients(kind: Kind) {
    serves_100_clients("async_echo_server", kind);
}

/// `GET url` with a real HTTP client: curl, or Python's `urllib` where
/// curl is missing. The status code and the body.
fn http_get(url: &str, scratch: &std::path::Path) -> (u16, Vec<u8>) {
    let out_file = scratch.join(format!(
        "body-{:?}-{}",
        std::thread::current().id(),
        url.len()
    ));
    let curl = Command::new("curl").arg("--version").output().is_ok();
    let out = if curl {
        Command::new("curl")
            .args(["-sS", "--max-time", "20", "-o"])
            .arg(&out_file)
            .args(["-w", "%{http_code}", url])
            .output()
            .expect("run curl")
    } else {
        let script = "import sys, urllib.request, urllib.error\n\
            try:\n    r = urllib.request.urlopen(sys.argv[1], timeout=20); code, body = r.status, r.read()\n\
            except urllib.error.HTTPError as e:\n    code, body = e.code, e.read()\n\
            open(sys.argv[2], 'wb').write(body)\nprint(code, end='')\n";
        Command::new("python3")
            .args(["-c", script, url])
            .arg(&out_file)
            .output()
            .expect("run python3")
    };
    assert!(
        out.status.success(),
        "{url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let body = std::fs::read(&out_file).unwrap_or_default();
    let _ = std::fs::remove_file(&out_file);
    (code, body)
}

/// The static file server (`accept_ex` with the request, `transmit_file`,
/// `disconnect` with reuse) serves a real HTTP client: more requests than
/// its pool of sockets one after another (every socket is reused), a
/// missing file, and 16 clients at once.
fn file_server_serves_a_real_http_client(kind: Kind) {
    let root = std::env::temp_dir().join(format!(
        "ovl-file-server-{}-{}",
        std::process::id(),
        kind.name()
    ));
    std::fs::create_dir_all(&root).unwrap();
    let big: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 253) as u8).collect();
    std::fs::write(root.join("big.bin"), &big).unwrap();
    std::fs::write(root.join("small.txt"), b"hello, file\n").unwrap();
    let mut c = Command::new(example("file_server"))
        .arg("127.0.0.1:0")
        .arg(&root)
        .env("OVERLAPPED_ENGINE", kind.name())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run example file_server");
    let mut out = BufReader::new(c.stdout.take().unwrap());
    let _server = Running(c);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .map(str::trim)
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    for _ in 0..20 {
        let (code, body) = http_get(&format!("http://{addr}/small.txt"), &root);
        assert_eq!((code, &body[..]), (200, &b"hello, file\n"[..]));
    }
    let (code, body) = http_get(&format!("http://{addr}/big.bin"), &root);
    assert_eq!(code, 200);
    assert!(body == big, "big.bin: {} bytes came", body.len());
    let (code, _) = http_get(&format!("http://{addr}/missing"), &root);
    assert_eq!(code, 404);
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let (url, root, big) = (format!("http://{addr}/big.bin"), root.clone(), big.clone());
            std::thread::spawn(move || {
                let (code, body) = http_get(&url, &root);
                assert_eq!(code, 200);
                assert!(body == big, "{} bytes came", body.len());
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn file_copy_copies_a_file_through_a_port(kind: Kind) {
    let dir = std::env::temp_dir().join(format!(
        "ovl-example-copy-{}-{}",
        std::process::id(),
        kind.name()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (from, to) = (dir.join("source"), dir.join("copy"));
    // Not a whole number of chunks: the last one is short.
    let bytes: Vec<u8> = (0..1_000_003u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(&from, &bytes).unwrap();
    let out = Command::new(example("file_copy"))
        .arg(&from)
        .arg(&to)
        .env("OVERLAPPED_ENGINE", kind.name())
        .output()
        .unwrap();
    let copied = std::fs::read(&to);
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("copied 1000003 bytes in 16 chunks"),
        "{stdout}"
    );
    assert!(copied.unwrap() == bytes, "the copy differs from the source");
}

/// Runs a self-contained example on `engine`; returns its output.
fn run_alone(name: &str, engine: &str) -> String {
    let out = Command::new(example(name))
        .env("OVERLAPPED_ENGINE", engine)
        .output()
        .unwrap_or_else(|e| panic!("run example {name}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} on {engine}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn queue_routine_runs_on_the_worker_and_fails_after_its_exit(kind: Kind) {
    let out = run_alone("queue_routine", kind.name());
    assert_eq!(
        out,
        "routine: hello from the worker\nroutine: stop\nworker stopped\n\
         queue to the exited worker: the thread has exited: it runs no more routines\n"
    );
}

fn alertable_port_gives_the_packet_before_the_routine(kind: Kind) {
    let out = run_alone("alertable_port", kind.name());
    assert_eq!(
        out,
        "packet: key 7 bytes 42\nroutine ran\nI/O completion\ntimeout\n"
    );
}

fn socket_wait_returns_for_the_socket(kind: Kind) {
    let out = run_alone("socket_wait", kind.name());
    assert_eq!(out, "socket signalled: \"hello, waiter\"\n");
}

fn timer_routine_ticks_three_times_then_stops(kind: Kind) {
    let out = run_alone("timer_routine", kind.name());
    assert_eq!(out, "tick 1\ntick 2\ntick 3\nafter cancel: Timeout\n");
}

util::cases! {
    overlapped_send_and_recv_print_the_book_lines,
    routine_recv_prints_message_before_completion_line,
    routine_echo_server_serves_100_clients,
    engine_free echo_client_stops_when_the_server_closes_mid_line,
    iocp_echo_server_serves_100_clients,
    async_echo_server_serves_100_clients,
    file_server_serves_a_real_http_client,
    file_copy_copies_a_file_through_a_port,
    queue_routine_runs_on_the_worker_and_fails_after_its_exit,
    alertable_port_gives_the_packet_before_the_routine,
    socket_wait_returns_for_the_socket,
    timer_routine_ticks_three_times_then_stops,
}
