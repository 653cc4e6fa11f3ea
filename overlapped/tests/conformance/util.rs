//! Helpers for the conformance suite: engines, loopback pairs, bounds.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use overlapped::{Engine, EngineKind, Socket};

/// The bound on any one case (before [`slack`]).
pub const CASE_LIMIT: Duration = Duration::from_secs(60);

/// `OVERLAPPED_TEST_TIME_SCALE` (a whole number, default 1) multiplies the
/// upper time bounds the cases assert, for runs under a tool that slows the
/// program down: `scripts/memcheck` sets it for valgrind. Lower bounds
/// ("waited at least the timeout") are never scaled.
pub fn slack(d: Duration) -> Duration {
    static SCALE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let scale = *SCALE.get_or_init(|| {
        std::env::var("OVERLAPPED_TEST_TIME_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1)
    });
    d * scale
}

/// A fresh engine of this kind.
pub fn engine(kind: EngineKind) -> Engine {
    Engine::with_kind(kind).unwrap_or_else(|e| panic!("engine {kind} unavailable: {e}"))
}

/// Runs `f` on its own thread and fails the test if it takes longer than
/// [`CASE_LIMIT`] (scaled by [`slack`]).
pub fn bounded(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("spawn case thread");
    let limit = slack(CASE_LIMIT);
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().expect("case thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("case {name} exceeded {limit:?}"),
    }
}

/// Stamps each case once per engine: `uring::NAME` and `poll::NAME`.
macro_rules! cases {
    ($( $(#[$m:meta])* fn $name:ident($e:ident: &Engine) $body:block )*) => {
        $( $(#[$m])* pub(crate) fn $name($e: &overlapped::Engine) $body )*
        mod uring {
            $( #[test] fn $name() {
                crate::util::bounded(stringify!($name), || super::$name(&crate::util::engine(overlapped::EngineKind::Uring)))
            } )*
        }
        mod poll {
            $( #[test] fn $name() {
                crate::util::bounded(stringify!($name), || super::$name(&crate::util::engine(overlapped::EngineKind::Poll)))
            } )*
        }
    };
}

pub fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

/// A connected pair of overlapped TCP sockets on loopback: (client, server).
pub fn tcp_pair(e: &Engine) -> (Socket, Socket) {
    tcp_pair_at(e, v4())
}

pub fn tcp_pair_at(e: &Engine, at: SocketAddr) -> (Socket, Socket) {
    let l = Socket::tcp_listener(e, &at).expect("listener");
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    c.connect_wait(addr).expect("connect");
    let (s, _) = l.accept_wait().expect("accept");
    (c, s)
}

/// An overlapped TCP socket connected to a plain std peer: (ours, peer).
/// The peer has read and write timeouts of 10 s (scaled by [`slack`]).
pub fn std_pair(e: &Engine) -> (Socket, TcpStream) {
    let l = TcpListener::bind(v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    c.connect_wait(addr).expect("connect");
    let (p, _) = l.accept().unwrap();
    p.set_read_timeout(Some(slack(10 * SEC))).unwrap();
    p.set_write_timeout(Some(slack(10 * SEC))).unwrap();
    (c, p)
}

/// Reads exactly `n` bytes from a std stream.
pub fn read_n(p: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    p.read_exact(&mut v).expect("peer read");
    v
}

pub fn write_all(p: &mut TcpStream, b: &[u8]) {
    p.write_all(b).expect("peer write");
}

/// Open file descriptors of this process.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Polls `f` until true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f()
}

pub const SEC: Duration = Duration::from_secs(1);
pub const MS: Duration = Duration::from_millis(1);
