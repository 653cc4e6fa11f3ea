//! `overlapped::tokio`: engines driven from tokio runtimes (current-thread
//! and multi-thread) with no thread of ours blocked in the engine, on both
//! engines: an echo through tokio's `AsyncReadExt`/`AsyncWriteExt`, 4 MiB
//! each way checked byte for byte, raw operations awaited, a dropped read
//! that loses nothing, reads that share the driver's kernel entry, a hyper
//! 1.x server, the driver's errors, the thread
//! count, and the `tokio_echo` example run as a program.
//!
//! Every case is bounded by `tokio::time::timeout`: an engine nobody drives
//! would hang the awaits, and the timeout fails the case instead.
#![cfg(feature = "tokio")]

use std::future::Future;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll};
use std::time::Duration;

use overlapped::rt::{TcpListener, TcpStream};
use overlapped::{Engine, MsgFlags, Notify, Socket};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::runtime::{Builder, Runtime};

#[path = "util/mod.rs"]
mod util;

use util::{Kind, SEC, slack};

/// The bound on one case's async part.
const LIMIT: Duration = Duration::from_secs(20);
/// Worker threads of the multi-thread runtime.
const WORKERS: usize = 2;
/// Size of the large transfer, each way.
const LARGE: usize = 4 << 20;

fn current_thread() -> Runtime {
    Builder::new_current_thread().enable_all().build().unwrap()
}

fn multi_thread() -> Runtime {
    Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `f` on `rt` with `e` driven by `spawn_driver` (and nothing else),
/// within [`LIMIT`].
fn driven<F, Fut>(rt: Runtime, e: &Engine, f: F) -> Fut::Output
where
    F: FnOnce(Engine) -> Fut,
    Fut: Future,
{
    let e = e.clone();
    rt.block_on(async move {
        let driver = overlapped::tokio::spawn_driver(&e).expect("spawn_driver");
        let out = tokio::time::timeout(slack(LIMIT), f(e)).await;
        driver.abort();
        out.unwrap_or_else(|_| panic!("not done within {LIMIT:?}: the engine was not driven"))
    })
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A listener and a connected client and server stream, all through the
/// engine's async operations.
async fn connected(e: &Engine) -> (TcpStream, TcpStream) {
    let l = TcpListener::bind(e, loopback()).unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(TcpStream::connect(e, addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

/// A server task echoes what it reads (through the tokio traits) until the
/// client shuts its side down; the client checks three round trips.
async fn echo(e: Engine) {
    let l = TcpListener::bind(&e, loopback()).unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 1024];
        let mut total = 0;
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            total += n;
            s.write_all(&buf[..n]).await.unwrap();
            s.flush().await.unwrap();
        }
        AsyncWriteExt::shutdown(&mut s).await.unwrap();
        total
    });
    let mut c = TcpStream::connect(&e, addr).await.unwrap();
    let mut sent = 0;
    for msg in [&b"hello tokio"[..], b"second line", &[7u8; 900]] {
        c.write_all(msg).await.unwrap();
        c.flush().await.unwrap();
        let mut back = vec![0u8; msg.len()];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
        sent += msg.len();
    }
    // Method syntax: tokio's `shutdown()` is not hidden by an inherent one.
    c.shutdown().await.unwrap();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "{} bytes after the echo", rest.len());
    assert_eq!(server.await.unwrap(), sent);
}

fn echo_current_thread(e: &Engine) {
    driven(current_thread(), e, echo);
}

fn echo_multi_thread(e: &Engine) {
    driven(multi_thread(), e, echo);
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect()
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter().zip(b).position(|(x, y)| x != y)
}

/// 4 MiB from the client to the server and 4 MiB back, at once (each side
/// writes in one task while it reads in another), checked byte for byte.
async fn large_transfer(e: Engine) {
    let (c, s) = connected(&e).await;
    let (mut c_rd, mut c_wr) = tokio::io::split(c);
    let (mut s_rd, mut s_wr) = tokio::io::split(s);
    let up = pattern(LARGE, 0x5a);
    let down = pattern(LARGE, 0xc3);
    let (up2, down2) = (up.clone(), down.clone());
    let client_writes = tokio::spawn(async move {
        c_wr.write_all(&up2).await.unwrap();
        c_wr.shutdown().await.unwrap();
    });
    let server_writes = tokio::spawn(async move {
        s_wr.write_all(&down2).await.unwrap();
        s_wr.shutdown().await.unwrap();
    });
    let server_reads = tokio::spawn(async move {
        let mut got = Vec::with_capacity(LARGE);
        s_rd.read_to_end(&mut got).await.unwrap();
        got
    });
    let mut got_down = Vec::with_capacity(LARGE);
    c_rd.read_to_end(&mut got_down).await.unwrap();
    let got_up = server_reads.await.unwrap();
    client_writes.await.unwrap();
    server_writes.await.unwrap();
    assert_eq!(got_up.len(), LARGE);
    assert_eq!(first_difference(&got_up, &up), None);
    assert_eq!(got_down.len(), LARGE);
    assert_eq!(first_difference(&got_down, &down), None);
}

fn large_transfer_current_thread(e: &Engine) {
    driven(current_thread(), e, large_transfer);
}

fn large_transfer_multi_thread(e: &Engine) {
    driven(multi_thread(), e, large_transfer);
}

/// Raw operations awaited in tokio tasks: an accept and a connect, then a
/// receive that is pending (nothing sent yet) and completes when another
/// task sends 50 ms later.
async fn raw_ops(e: Engine) {
    let l = Socket::tcp_listener(&e, &loopback()).unwrap();
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(&e, &addr).unwrap();
    let accept = l.accept(Notify::None).unwrap().op();
    let connect = c.connect(addr, Notify::None).unwrap().op();
    let ((ra, s), (rc, ())) = tokio::join!(accept, connect);
    ra.unwrap();
    rc.unwrap();
    let s = s.expect("accepted socket");
    let recv = s
        .recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(
        recv.is_pending(),
        "a receive before any send must be pending"
    );
    let sender = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (r, _) = c
            .send(b"raw op".to_vec(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .op()
            .await;
        assert_eq!(r.unwrap(), 6);
        c
    });
    let (r, buf) = recv.op().await;
    assert_eq!(r.unwrap(), 6);
    assert_eq!(&buf[..], b"raw op");
    drop(sender.await.unwrap());
}

fn raw_ops_current_thread(e: &Engine) {
    driven(current_thread(), e, raw_ops);
}

fn raw_ops_multi_thread(e: &Engine) {
    driven(multi_thread(), e, raw_ops);
}

/// A read future dropped while its receive is in flight (a timeout that
/// fired first) loses no byte: the next reads get everything, in order.
async fn dropped_read_loses_nothing(e: Engine) {
    let (mut c, mut s) = connected(&e).await;
    let mut buf = [0u8; 8];
    let early = tokio::time::timeout(Duration::from_millis(30), s.read_exact(&mut buf)).await;
    assert!(early.is_err(), "nothing was sent, the read must time out");
    let data = pattern(100_000, 1);
    c.write_all(&data).await.unwrap();
    AsyncWriteExt::shutdown(&mut c).await.unwrap();
    // Dropped again, this time likely after the receive took bytes.
    let mut first = [0u8; 10];
    s.read_exact(&mut first).await.unwrap();
    let mut one = [0u8; 1];
    let took_one = matches!(
        tokio::time::timeout(Duration::ZERO, s.read_exact(&mut one)).await,
        Ok(Ok(_))
    );
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    let mut got = first.to_vec();
    if took_one {
        got.push(one[0]);
    }
    got.extend_from_slice(&rest);
    assert_eq!(got.len(), data.len());
    assert_eq!(first_difference(&got, &data), None);
}

fn dropped_read_loses_nothing_current_thread(e: &Engine) {
    driven(current_thread(), e, dropped_read_loses_nothing);
}

/// Many connections at once through a 2-entry ring (io_uring: a full
/// submission queue and completion-queue overflow, whose completions the
/// driver must still reap without anyone blocking in the ring): 64 echo
/// clients of 16 KiB each, every byte checked.
fn tiny_ring_many_connections(kind: Kind) {
    let e = util::builder(kind).ring_entries(2).build().unwrap();
    driven(current_thread(), &e, |e| async move {
        let l = TcpListener::bind(&e, loopback()).unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut tasks = Vec::new();
            for _ in 0..64 {
                let (mut s, _) = l.accept().await.unwrap();
                tasks.push(tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = s.read(&mut buf).await.unwrap();
                        if n == 0 {
                            break;
                        }
                        s.write_all(&buf[..n]).await.unwrap();
                    }
                    AsyncWriteExt::shutdown(&mut s).await.unwrap();
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let mut clients = Vec::new();
        for i in 0..64u8 {
            let e = e.clone();
            clients.push(tokio::spawn(async move {
                let c = TcpStream::connect(&e, addr).await.unwrap();
                let (mut rd, mut wr) = tokio::io::split(c);
                let data = pattern(16 << 10, i);
                let expect = data.clone();
                let writer = tokio::spawn(async move {
                    wr.write_all(&data).await.unwrap();
                    wr.shutdown().await.unwrap();
                });
                let mut got = Vec::new();
                rd.read_to_end(&mut got).await.unwrap();
                writer.await.unwrap();
                assert_eq!(got.len(), expect.len());
                assert_eq!(first_difference(&got, &expect), None);
            }));
        }
        for c in clients {
            c.await.unwrap();
        }
        server.await.unwrap();
    });
}

/// CPU time of the calling thread, in nanoseconds (`schedstat`'s first
/// field).
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("/proc/thread-self/schedstat")
}

/// An idle driver sleeps in tokio's reactor: after an echo (the engine's
/// descriptor was ready many times), 300 ms with nothing to do cost the
/// runtime's one thread almost no CPU. A driver whose descriptor stayed
/// ready (a wake-up left unconsumed, an overflow never flushed) would spin.
fn idle_driver_sleeps(e: &Engine) {
    driven(current_thread(), e, |e| async move {
        echo(e.clone()).await;
        let (_c, s) = connected(&e).await;
        // A receive in flight: the engine has work parked, none finished.
        let pending = s.read_owned(vec![0u8; 64]);
        let before = thread_cpu_ns();
        let idle = tokio::time::timeout(Duration::from_millis(300), pending).await;
        let spent = Duration::from_nanos(thread_cpu_ns() - before);
        assert!(idle.is_err(), "nothing was sent");
        assert!(
            spent < slack(Duration::from_millis(60)),
            "the idle runtime thread used {spent:?} of CPU in 300 ms"
        );
    });
}

/// Reads that wait together reach the kernel together: 16 tasks of a
/// current-thread runtime each start a read (nothing was sent yet), so on
/// io_uring their receives are left for the driver's next turn, which
/// submits them all in one kernel entry (one each would be 16). Then every
/// client sends, and each task gets its own 8 bytes, on both engines.
fn reads_share_the_drivers_entry(e: &Engine) {
    const N: usize = 16;
    driven(current_thread(), e, |e| async move {
        let l = TcpListener::bind(&e, loopback()).unwrap();
        let addr = l.local_addr().unwrap();
        let mut clients = Vec::new();
        let mut servers = Vec::new();
        for _ in 0..N {
            clients.push(std::net::TcpStream::connect(addr).unwrap());
            servers.push(l.accept().await.unwrap().0);
        }
        let before = e.counters().enter_calls;
        let tasks: Vec<_> = servers
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                tokio::spawn(async move {
                    let mut got = [0u8; 8];
                    s.read_exact(&mut got).await.unwrap();
                    assert_eq!(got, [i as u8; 8], "stream {i}");
                })
            })
            .collect();
        // Every task starts its read, then the driver takes its turn.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let entered = e.counters().enter_calls - before;
        if e.kind() == overlapped::EngineKind::Uring {
            assert!(
                entered <= 2,
                "{N} reads started in one tick took {entered} kernel entries to submit"
            );
        }
        for (i, c) in clients.iter_mut().enumerate() {
            c.write_all(&[i as u8; 8]).unwrap();
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
}

/// A write the socket takes at once goes from the caller's slice with a
/// plain send: no operation is started (the engine's count of started
/// operations stays), and the peer reads the bytes in order, also after a
/// write too large for the socket went through an operation.
fn small_write_starts_no_operation(e: &Engine) {
    driven(current_thread(), e, |e| async move {
        let (mut c, mut s) = connected(&e).await;
        let before = e.counters().submitted;
        c.write_all(b"small").await.unwrap();
        c.flush().await.unwrap();
        assert_eq!(
            e.counters().submitted,
            before,
            "a small write started an operation"
        );
        let mut got = [0u8; 5];
        s.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"small");
        // Larger than the socket's buffers: part goes through operations.
        let big = pattern(LARGE, 3);
        let reader = tokio::spawn(async move {
            let mut back = vec![0u8; LARGE + 5];
            s.read_exact(&mut back).await.unwrap();
            back
        });
        c.write_all(&big).await.unwrap();
        c.write_all(b"after").await.unwrap();
        c.flush().await.unwrap();
        let back = reader.await.unwrap();
        assert!(
            back[..LARGE] == big[..],
            "the large write came back changed"
        );
        assert_eq!(&back[LARGE..], b"after");
    });
}

/// hyper 1.x's traits over `rt::TcpStream`, through its tokio ones (what
/// `hyper_util::rt::TokioIo` does, kept here to spare a dependency).
struct HyperIo(TcpStream);

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        let mut tmp = [0u8; 8192];
        let n = buf.remaining().min(tmp.len());
        let mut rb = tokio::io::ReadBuf::new(&mut tmp[..n]);
        match Pin::new(&mut self.get_mut().0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(rb.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// The request's body, whole (no `http-body-util`: the frames one by one).
async fn body_bytes(mut body: hyper::body::Incoming) -> Vec<u8> {
    use hyper::body::Body;
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.unwrap().into_data() {
            out.extend_from_slice(&data);
        }
    }
    out
}

/// A hyper 1.x HTTP/1.1 server on the engine's streams: a GET and a 100 KB
/// POST echoed back, over one keep-alive connection, on a current-thread
/// and a multi-thread runtime.
async fn hyper_server(e: Engine) {
    use hyper::service::service_fn;
    use hyper::{Request, Response};
    let l = TcpListener::bind(&e, loopback()).unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
            let path = req.uri().path().to_string();
            let body = body_bytes(req.into_body()).await;
            let reply = match path.as_str() {
                "/hello" => "hello from hyper on overlapped".to_string(),
                _ => String::from_utf8(body).unwrap_or_default(),
            };
            Ok::<_, std::convert::Infallible>(Response::new(reply))
        });
        hyper::server::conn::http1::Builder::new()
            .serve_connection(HyperIo(s), service)
            .await
            .unwrap();
    });
    let mut c = TcpStream::connect(&e, addr).await.unwrap();
    let posted: String = (0..100_000)
        .map(|i| (b'a' + (i % 26) as u8) as char)
        .collect();
    let requests = [
        (
            "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
            "hello from hyper on overlapped".to_string(),
        ),
        (
            format!(
                "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{posted}",
                posted.len()
            ),
            posted.clone(),
        ),
    ];
    for (i, (req, want)) in requests.iter().enumerate() {
        if i == requests.len() - 1 {
            // The last one closes the connection: the server task ends.
            let req = req.replacen("Host: t\r\n", "Host: t\r\nConnection: close\r\n", 1);
            c.write_all(req.as_bytes()).await.unwrap();
        } else {
            c.write_all(req.as_bytes()).await.unwrap();
        }
        c.flush().await.unwrap();
        let body = read_response(&mut c).await;
        assert_eq!(body.len(), want.len());
        assert!(body == want.as_bytes(), "response {i} differs");
    }
    server.await.unwrap();
}

/// Reads one HTTP/1.1 response with a `content-length` and returns its body.
async fn read_response(c: &mut TcpStream) -> Vec<u8> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        c.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no content-length in {head}"));
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).await.unwrap();
    body
}

fn hyper_server_current_thread(e: &Engine) {
    driven(current_thread(), e, hyper_server);
}

fn hyper_server_multi_thread(e: &Engine) {
    driven(multi_thread(), e, hyper_server);
}

/// A second driver for one engine in one runtime is refused with an error,
/// and so is `spawn_driver` outside a runtime (no panic).
fn driver_errors(e: &Engine) {
    let err = overlapped::tokio::spawn_driver(e).unwrap_err();
    assert!(!err.to_string().is_empty());
    driven(current_thread(), e, |e| async move {
        let second = overlapped::tokio::spawn_driver(&e);
        assert!(second.is_err(), "a second driver of one engine must fail");
        let drive = overlapped::tokio::drive(e.clone()).await;
        assert!(drive.is_err(), "drive beside the driver must fail");
    });
}

/// Threads of the process, without io_uring's kernel workers (`iou-wrk-*`,
/// `iou-sqp-*`: they show in `/proc/self/task` but are not user threads).
fn user_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(Result::ok)
        .filter(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            !comm.starts_with("iou-")
        })
        .count()
}

const CHILD: &str = "OVERLAPPED_TOKIO_CHILD";

/// The thread count, in a child process that runs nothing else: a
/// current-thread runtime adds no thread, a multi-thread one its workers
/// only (the library starts none, and nobody blocks in the engine).
fn no_helper_thread(kind: Kind) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "threads_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, kind.name())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("THREADS "),
        "child failed:\n{stdout}\n{stderr}"
    );
    if let Some(at) = stdout.find("THREADS ") {
        println!(
            "{kind}: {}",
            stdout[at..].lines().next().unwrap_or_default()
        );
    }
}

/// The child half of `no_helper_thread`: only does something when started
/// by it.
#[test]
fn threads_child() {
    let Ok(kind) = std::env::var(CHILD) else {
        return;
    };
    let kind = if kind == "uring" {
        Kind::Uring
    } else {
        Kind::Poll
    };
    let e = util::engine(kind);
    let before = user_threads();
    let current = driven(current_thread(), &e, |e| async move {
        echo(e.clone()).await;
        raw_ops(e).await;
        user_threads()
    });
    let multi = driven(multi_thread(), &e, |e| async move {
        echo(e.clone()).await;
        raw_ops(e).await;
        user_threads()
    });
    let after = user_threads();
    println!("THREADS before={before} current_thread={current} multi_thread={multi} after={after}");
    assert_eq!(current, before, "a current-thread runtime started a thread");
    assert_eq!(
        multi,
        before + WORKERS,
        "threads beyond the runtime's workers"
    );
}

/// The `tokio_echo` example as a program, on this engine: it echoes what a
/// plain std client sends.
fn tokio_echo_example(kind: Kind) {
    let mut exe = std::env::current_exe().unwrap();
    exe.pop();
    if exe.ends_with("deps") {
        exe.pop();
    }
    let exe = exe.join("examples").join("tokio_echo");
    assert!(
        exe.exists(),
        "{} is missing: build the examples (cargo test builds them with --features tokio)",
        exe.display()
    );
    let mut child = Command::new(exe)
        .arg("127.0.0.1:0")
        .env("OVERLAPPED_ENGINE", kind.name())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let _child = Kill(child);
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .strip_prefix("listening on ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(line.contains(&format!("engine {}", kind.name())), "{line}");
    let mut conns: Vec<std::net::TcpStream> = (0..3)
        .map(|_| {
            let c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(slack(10 * SEC))).unwrap();
            c
        })
        .collect();
    for round in 0..3u8 {
        for (i, c) in conns.iter_mut().enumerate() {
            let msg = pattern(5000 + i, round);
            c.write_all(&msg).unwrap();
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).unwrap();
            assert_eq!(back, msg);
        }
    }
}

util::cases! {
    echo_current_thread,
    echo_multi_thread,
    large_transfer_current_thread,
    large_transfer_multi_thread,
    raw_ops_current_thread,
    raw_ops_multi_thread,
    dropped_read_loses_nothing_current_thread,
    tiny_ring_many_connections,
    idle_driver_sleeps,
    reads_share_the_drivers_entry,
    small_write_starts_no_operation,
    hyper_server_current_thread,
    hyper_server_multi_thread,
    driver_errors,
    no_helper_thread,
    tokio_echo_example,
}
