//! `ovl echo-server`: one echo server, several models of the overlapped
//! world.
//!
//! # Receive buffers and idle connections
//!
//! An idle connection holds no receive buffer: it has a **zero-byte
//! receive** posted (the IOCP servers' trick: SPEC o09, a zero-length
//! stream receive stays pending until the socket is readable and completes
//! with 0, consuming nothing). When it completes and data arrived (not the
//! end of the stream: see [`stream_ended`]), the connection takes a buffer
//! from the server's [`Pool`], receives (the data is there, so this
//! completes at once), echoes, and posts its next receive **with the
//! buffer**: a busy connection keeps its buffer and pays nothing per message
//! for being able to idle. A real receive that stays pending for
//! `--buf-release` seconds (10 by default) is cancelled (each server sweeps
//! its connections every [`TICK`]); its buffer goes back to the pool and a
//! zero-byte receive replaces it. (Not much shorter by default: a client
//! that pauses longer than that between messages costs a cancel, a
//! zero-byte receive and a peek per message.) The pool keeps at most
//! [`POOL_BYTES`] of free buffers and frees the rest.
//!
//! Measured on 2026-11-30 (10,000 idle loopback connections, the
//! `idle_rss_report` test of `ovl/tests/cli.rs`): 1.4 to 1.95 KiB of server
//! RSS per idle connection in every model on both engines (it was 17.4 to
//! 18.8 KiB with a 16 KiB buffer committed per connection at accept). What
//! is left is mostly the library's per-socket state (its operation slots,
//! the socket, and on io_uring the parked receive's kernel memory: about
//! 1.5 KiB on io_uring, 1.2 KiB on poll). A connection that was busy and
//! went idle again cost 1.6 to 6 KiB in that measurement, which still
//! called glibc's `malloc_trim` after freeing pooled buffers; the call is
//! gone (this crate has no `unsafe`), and glibc keeps freed 16 KiB blocks
//! in its heap: a connection that was busy keeps costing its buffer's
//! memory in the server's RSS after it idles (17.4 KiB on poll, port model,
//! 2,000 connections; the pool reuses that memory for the next busy
//! connection, so it does not grow from one busy spell to the next).
//!
//! Why not a zero-byte receive before *every* message (no sweep, no
//! cancel)? It costs system calls on busy connections: measured with `ovl
//! bench --syscalls` (500 connections, 1 KiB ping-pong), the port model went
//! from 0.1 to 2.1 engine system calls per message on io_uring (the
//! zero-byte receive's try at start, then a direct `recv` after it, where
//! the receive it replaces was parked in the ring) and from 2.1 to 3.1 on
//! poll; every message also took and gave back a pooled buffer. The policy
//! above keeps the figures of a server that never idles: the same
//! instructions per message as before (callgrind), and the same system
//! calls.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixListener};
use std::process::ExitCode;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use overlapped::probe::EngineChoice;
use overlapped::{Engine, EngineKind, Socket};

use crate::engine::Chosen;
use crate::limits;

mod asyncs;
mod events;
mod port;
mod routines;

/// The model the server is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Model {
    /// A completion port and a pool of worker threads.
    Port,
    /// One thread, completion routines and alertable waits.
    Routines,
    /// One thread waiting on many event objects at once.
    Events,
    /// async/await tasks.
    Async,
}

/// Options of `ovl echo-server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// The model of the server.
    #[arg(long, value_enum, default_value_t = Model::Port)]
    pub model: Model,
    /// Worker threads (port model) or threads (async model), at most 1024;
    /// 0 = one per CPU.
    #[arg(long, visible_alias = "threads", default_value_t = 0, value_parser = limits::threads)]
    pub workers: usize,
    #[arg(long, help = crate::engine::HELP)]
    pub engine: Option<EngineChoice>,
    /// Most connections served at once; more are closed on arrival.
    #[arg(long, default_value_t = 10_000, value_parser = limits::max_conns)]
    pub max_conns: usize,
    /// Close a connection idle this many seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    pub idle_timeout: u64,
    /// Receive buffer of a busy connection, in bytes (1 B to 64 MiB): taken
    /// from a shared pool when data arrives (an idle connection holds none).
    #[arg(long, default_value_t = 16 * 1024, value_parser = limits::buf_size)]
    pub buf_size: usize,
    /// Largest receive buffer a busy connection grows to, in bytes (1 B to
    /// 64 MiB; not above --buf-size: no growth; larger moves bulk data
    /// faster but holds more memory per busy connection): a receive that
    /// fills its buffer gets
    /// one four times larger for the next, up to this; the connection is
    /// back to --buf-size once it idles (--buf-release).
    #[arg(long, default_value_t = 64 * 1024, value_parser = limits::buf_size)]
    pub buf_max: usize,
    /// Give a connection's buffer back to the pool once its receive has
    /// waited this many seconds for data (0 = keep it).
    #[arg(long, default_value_t = 10)]
    pub buf_release: u64,
    /// Port model: each worker thread gets an engine of its own (on
    /// io_uring, a ring per thread) and a `SO_REUSEPORT` listener on it; the
    /// connections of every engine share the one completion port, and any
    /// worker takes any packet.
    #[arg(long)]
    pub engine_per_worker: bool,
}

impl ServerArgs {
    /// `--buf-release`: `None` when buffers are kept.
    pub fn release(&self) -> Option<Duration> {
        (self.buf_release > 0).then(|| Duration::from_secs(self.buf_release))
    }
}

/// Totals printed at the end.
#[derive(Debug, Default)]
pub struct Stats {
    pub connections: AtomicU64,
    pub bytes: AtomicU64,
    pub refused: AtomicU64,
}

static STOP: std::sync::OnceLock<std::sync::Arc<AtomicBool>> = std::sync::OnceLock::new();

fn stop_flag() -> &'static std::sync::Arc<AtomicBool> {
    STOP.get_or_init(|| std::sync::Arc::new(AtomicBool::new(false)))
}

/// True once Ctrl-C or SIGTERM arrived.
pub fn stopping() -> bool {
    stop_flag().load(Ordering::SeqCst)
}

fn install_signals() {
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, stop_flag().clone()) {
            eprintln!("cannot watch signal {sig}: {e}");
        }
    }
}

/// How often the servers look at the stop flag, idle connections and
/// receives that wait with a buffer.
pub const TICK: Duration = Duration::from_millis(100);

/// Most bytes of free buffers the pool keeps; buffers given back beyond
/// that are freed.
pub const POOL_BYTES: usize = 1 << 20;

/// The receive buffers of the busy connections: taken when a zero-byte
/// receive says data arrived, given back when the connection goes idle or
/// closes. At most [`POOL_BYTES`] of free buffers are kept.
///
/// **Bulk by default.** Buffers come in sizes `--buf-size`, four times
/// that, sixteen times, ... up to `--buf-max`. A connection starts with the
/// smallest; when a receive fills its buffer, the next receive gets the
/// next size ([`Pool::widen`]): a bulk transfer reaches the largest in a
/// few receives and moves its data in a quarter of the receives (and
/// sends) or fewer, while a ping-pong connection keeps the small one. A
/// connection that idles gives its buffer back and starts small again, so
/// an idle connection still holds none.
///
/// A new buffer is written once, so its pages are committed when it is
/// made: the server's memory follows its busy connection count, not how
/// many connections have yet seen a large message (a zeroed allocation
/// would be faulted in bit by bit as data first reaches each page, and
/// `ovl soak` would read that as growth).
#[derive(Debug)]
pub struct Pool {
    free: std::sync::Mutex<Free>,
    /// The buffer sizes, smallest first (`--buf-size`, x4, x16, ...,
    /// `--buf-max`).
    sizes: Vec<usize>,
}

/// The free buffers, one list per size, and their bytes.
#[derive(Debug)]
struct Free {
    lists: Vec<Vec<Vec<u8>>>,
    bytes: usize,
}

impl Pool {
    /// A pool of buffers from `size` up to `max` bytes (at least `size`).
    pub fn new(size: usize, max: usize) -> Pool {
        let size = size.max(1);
        let mut sizes = vec![size];
        while let Some(&last) = sizes.last().filter(|&&l| l < max) {
            sizes.push(last.saturating_mul(4).min(max));
        }
        Pool {
            free: std::sync::Mutex::new(Free {
                lists: vec![Vec::new(); sizes.len()],
                bytes: 0,
            }),
            sizes,
        }
    }

    fn free(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of size class `class`, its window the whole buffer.
    fn take_class(&self, class: usize) -> overlapped::Slice {
        let v = {
            let mut free = self.free();
            let v = free.lists[class].pop();
            if let Some(v) = &v {
                free.bytes -= v.len();
            }
            v
        };
        overlapped::Slice::from(v.unwrap_or_else(|| vec![0xA5; self.sizes[class]]))
    }

    /// A buffer of the smallest size, with an empty window:
    /// [`widen`](Pool::widen) opens it for a receive.
    pub fn take(&self) -> overlapped::Slice {
        let mut b = self.take_class(0);
        b.set_range(0..0);
        b
    }

    /// Opens a connection's buffer for its next receive: the window back to
    /// the whole buffer, or, when the last receive filled it (the window
    /// is the whole buffer), a buffer of the next size instead (the smaller
    /// one goes back to the pool).
    pub fn widen(&self, buf: &mut overlapped::Slice) {
        let got = buf.range().len();
        buf.set_range(..);
        let whole = buf.buffer().len();
        if got < whole {
            return;
        }
        let Some(class) = self.sizes.iter().position(|&s| s == whole) else {
            return;
        };
        if class + 1 < self.sizes.len() {
            let bigger = self.take_class(class + 1);
            self.give(std::mem::replace(buf, bigger));
        }
    }

    /// Gives a buffer back (an empty one, a zero-byte receive's, is
    /// dropped, and so is one beyond [`POOL_BYTES`] kept).
    pub fn give(&self, buf: overlapped::Slice) {
        let v = buf.into_inner();
        let Some(class) = self.sizes.iter().position(|&s| s == v.len()) else {
            return;
        };
        let mut free = self.free();
        if free.bytes + v.len() <= POOL_BYTES {
            free.bytes += v.len();
            free.lists[class].push(v);
        }
    }
}

/// After a zero-byte receive completed: true when the stream ended (or
/// failed) rather than data arrived, so that an idle connection whose
/// client leaves ends without taking a buffer (many idle clients leaving at
/// once would otherwise make the server allocate a buffer for each). One
/// `recv(MSG_PEEK)` of a byte per idle spell.
pub fn stream_ended(sock: &Socket) -> bool {
    let mut b = [std::mem::MaybeUninit::<u8>::uninit(); 1];
    match sock.with_socket2(|s| s.recv_with_flags(&mut b, libc::MSG_PEEK | libc::MSG_DONTWAIT)) {
        Ok(n) => n == 0,
        // Nothing after all: the real receive waits for it.
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
        ),
    }
}

/// The buffer of a zero-byte receive: no allocation.
pub fn probe_buffer() -> overlapped::Slice {
    overlapped::Slice::from(Vec::new())
}

/// Tracks the last activity of a connection for the idle timeout.
#[derive(Debug)]
pub struct Idle {
    /// Last activity, [`coarse_ms`].
    pub last: Cell<u64>,
}

impl Idle {
    pub fn new() -> Self {
        Idle {
            last: Cell::new(coarse_ms()),
        }
    }
    pub fn touch(&self) {
        self.last.set(coarse_ms());
    }
    pub fn expired(&self, limit: Option<Duration>) -> bool {
        limit.is_some_and(|l| quiet_since(self.last.get()) > l)
    }
}

/// The servers' clock, in milliseconds since its first reading: advanced by
/// each server's tick ([`tick_clock`], at least every [`TICK`]), read by
/// every message. The idle timeout and the buffer release are whole
/// seconds, so a tick's resolution serves them; a clock read per message
/// cost about 1% of the echo server's CPU, and `rustix`'s own
/// `CLOCK_MONOTONIC_COARSE` (its vDSO lookup) crashes under valgrind.
static NOW_MS: AtomicU64 = AtomicU64::new(0);

/// Reads the clock into the servers' clock ([`coarse_ms`]).
pub fn tick_clock() {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let ms = ORIGIN.get_or_init(Instant::now).elapsed().as_millis() as u64;
    NOW_MS.fetch_max(ms, Ordering::Relaxed);
}

/// Milliseconds on the servers' clock, as of the last [`tick_clock`].
pub fn coarse_ms() -> u64 {
    NOW_MS.load(Ordering::Relaxed)
}

/// How long since `last` ([`coarse_ms`]).
pub fn quiet_since(last: u64) -> Duration {
    Duration::from_millis(coarse_ms().saturating_sub(last))
}

/// Runs the server until Ctrl-C.
pub fn run(args: ServerArgs) -> ExitCode {
    let (engine, chosen) = match crate::engine::build(args.engine) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ovl echo-server: {e}");
            return ExitCode::from(2);
        }
    };
    if args.engine_per_worker && args.model != Model::Port {
        eprintln!(
            "ovl echo-server: --engine-per-worker is for the port model (--model port); \
             the async model always runs an engine per thread"
        );
        return ExitCode::from(2);
    }
    install_signals();
    tick_clock();
    let stats = std::sync::Arc::new(Stats::default());
    let idle = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    let one = |r: io::Result<()>| r.map(|()| vec![engine.clone()]);
    let r = match args.model {
        Model::Events => one(events::serve(&engine, chosen, &args, idle, &stats)),
        Model::Routines => one(routines::serve(&engine, chosen, &args, idle, &stats)),
        Model::Port => port::serve(&engine, chosen, &args, idle, &stats),
        Model::Async => one(asyncs::serve(&engine, chosen, &args, idle, &stats)),
    };
    let engines = match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("ovl echo-server: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "stopped: {} connections served, {} bytes echoed, {} refused (max-conns)",
        stats.connections.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed)
    );
    // The async model runs an engine per thread that it does not hand
    // back; the counters below are of the other models' engines, summed.
    if args.model != Model::Async && stats_wanted() {
        let c = engines.iter().map(Engine::counters).fold(
            overlapped::Counters::default(),
            |mut a, c| {
                a.submitted += c.submitted;
                a.completed_now += c.completed_now;
                a.completed_later += c.completed_later;
                a.cancelled += c.cancelled;
                a.enter_calls += c.enter_calls;
                a.direct_calls += c.direct_calls;
                a
            },
        );
        println!(
            "{STATS_PREFIX}{}",
            serde_json::json!({
                "submitted": c.submitted,
                "completed_now": c.completed_now,
                "completed_later": c.completed_later,
                "cancelled": c.cancelled,
                "enter_calls": c.enter_calls,
                "direct_calls": c.direct_calls,
                "connections": stats.connections.load(Ordering::Relaxed),
                "bytes": stats.bytes.load(Ordering::Relaxed),
            })
        );
    }
    ExitCode::SUCCESS
}

/// The variable that asks for the machine-readable line at the end.
pub const STATS_ENV: &str = "OVL_STATS";
/// The start of that line; the rest is JSON (the engine's counters and the
/// server's totals). `ovl bench` reads it.
pub const STATS_PREFIX: &str = "OVL-STATS ";

/// True when `OVL_STATS=1`: tools that start a server and read its figures
/// set it; people running a server see only the summary.
pub fn stats_wanted() -> bool {
    std::env::var_os(STATS_ENV).is_some_and(|v| v == "1")
}

/// Prints the banner every model starts with.
pub fn banner(engine: &Engine, chosen: Chosen, addr: SocketAddr, model: Model) {
    let kind = engine.kind();
    println!("listening on {addr}");
    println!(
        "model {model:?}, engine {kind} ({})",
        crate::engine::why(engine, chosen)
    );
    if kind == EngineKind::Poll {
        println!("(the poll engine: every operation is tried at once, then retried on readiness)");
    }
}

/// Gives an error the operation and the address it was about.
fn context(what: String) -> impl FnOnce(std::io::Error) -> std::io::Error {
    move |e| std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// A listener on `addr` with `SO_REUSEADDR` (so a restarted server binds
/// while connections of its last run are in `TIME_WAIT`), backlog 1024.
/// Each step's error names the step and the address.
pub fn listen(engine: &Engine, addr: SocketAddr) -> std::io::Result<Socket> {
    listen_shared(engine, addr, false)
}

/// [`listen`]; with `reuse_port`, also `SO_REUSEPORT`, so that several
/// listeners (one per thread) share the address and the kernel spreads the
/// connections over them.
pub fn listen_shared(engine: &Engine, addr: SocketAddr, reuse_port: bool) -> io::Result<Socket> {
    let s = Socket::tcp_for(engine, &addr).map_err(context(format!(
        "cannot create a socket to listen on {addr}"
    )))?;
    s.with_socket2(|s| s.set_reuse_address(true))
        .map_err(context(format!(
            "cannot set SO_REUSEADDR to listen on {addr}"
        )))?;
    if reuse_port {
        s.with_socket2(|s| s.set_reuse_port(true))
            .map_err(context(format!(
                "cannot set SO_REUSEPORT to listen on {addr}"
            )))?;
    }
    s.bind(&addr)
        .map_err(context(format!("cannot bind {addr}")))?;
    s.listen(1024)
        .map_err(context(format!("cannot listen on {addr}")))?;
    Ok(s)
}

/// Claims `addr` for a server that listens on it from several
/// `SO_REUSEPORT` sockets (the async model, the port model with
/// `--engine-per-worker`): no other such `ovl` server may hold it (an abstract Unix socket named after the address, released by
/// the kernel when the process ends, however it ends), and nothing else may
/// listen on it (a listener bound without `SO_REUSEPORT` must succeed; it
/// is closed again before the threads bind theirs). The returned socket is
/// the claim: keep it while serving.
pub fn claim(addr: SocketAddr) -> io::Result<UnixListener> {
    let name = format!("ovl-echo-server-reuseport@{addr}");
    let lock = UnixSocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|a| UnixListener::bind_addr(&a))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind {addr}: another `ovl echo-server` with a listener per \
                         thread (--model async, or --engine-per-worker) is already \
                         listening there (its SO_REUSEPORT listeners would share the \
                         connections)"
                    ),
                )
            } else {
                io::Error::new(
                    e.kind(),
                    format!("cannot claim {addr} for this server: {e}"),
                )
            }
        })?;
    drop(
        std::net::TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?,
    );
    Ok(lock)
}

/// Most time [`close_listener`] waits for the listener's accepts to end.
pub const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Closes a listener at shutdown so that a server restarted at once can
/// bind its port again. On io_uring an accept in the kernel holds a
/// reference to the listening socket: were the descriptor closed first,
/// the kernel would drop the last reference, and the socket would go on
/// listening for some milliseconds after the process exited (the kernel
/// defers such a release to a work queue), so that a restart failed with
/// "Address already in use". So the accepts are cancelled first and their
/// ends awaited (`pump` drives the engine meanwhile; at most a second),
/// and only then is the descriptor closed, by this thread.
pub fn close_listener(listener: &Socket, mut pump: impl FnMut(Duration)) {
    let deadline = Instant::now() + CLOSE_WAIT;
    while listener.cancel_all().unwrap_or(0) > 0 && Instant::now() < deadline {
        pump(Duration::from_millis(5));
    }
    let _ = listener.close();
}

#[cfg(test)]
mod tests {
    use super::{POOL_BYTES, Pool};

    /// A receive that fills its buffer gets the next size (x4, capped at
    /// the largest); one that does not keeps its buffer; a connection
    /// starts small again with the next `take`.
    #[test]
    fn pool_grows_a_buffer_that_receives_fill() {
        let pool = Pool::new(16 << 10, 256 << 10);
        let mut b = pool.take();
        assert_eq!(b.range().len(), 0, "a taken buffer's window is empty");
        pool.widen(&mut b);
        assert_eq!((b.buffer().len(), b.range().len()), (16 << 10, 16 << 10));
        // Filled (the window is the whole buffer): next size.
        pool.widen(&mut b);
        assert_eq!(b.buffer().len(), 64 << 10);
        pool.widen(&mut b);
        assert_eq!(b.buffer().len(), 256 << 10);
        pool.widen(&mut b);
        assert_eq!(b.buffer().len(), 256 << 10, "capped");
        // A short receive: the same buffer, widened.
        b.set_range(0..10);
        pool.widen(&mut b);
        assert_eq!((b.buffer().len(), b.range().len()), (256 << 10, 256 << 10));
        pool.give(b);
        // The 16 and 64 KiB buffers went back on the way; a new connection
        // starts with 16 KiB.
        let mut c = pool.take();
        pool.widen(&mut c);
        assert_eq!(c.buffer().len(), 16 << 10);
    }

    /// Sizes that are not powers of four of the first still end at the
    /// largest; a largest not above the first means no growth.
    #[test]
    fn pool_sizes() {
        assert_eq!(Pool::new(1000, 5000).sizes, vec![1000, 4000, 5000]);
        assert_eq!(Pool::new(4096, 4096).sizes, vec![4096]);
        assert_eq!(Pool::new(4096, 100).sizes, vec![4096]);
    }

    /// The pool keeps at most `POOL_BYTES` of free buffers, across sizes.
    #[test]
    fn pool_keeps_at_most_its_bytes() {
        let pool = Pool::new(256 << 10, 256 << 10);
        let bufs: Vec<_> = (0..8).map(|_| pool.take()).collect();
        for b in bufs {
            pool.give(b);
        }
        assert!(pool.free().bytes <= POOL_BYTES);
        assert_eq!(pool.free().bytes, POOL_BYTES);
    }
}
