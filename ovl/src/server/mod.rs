//! `ovl echo-server`: one echo server, several models of the overlapped
//! world.

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
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
    /// Receive buffer per connection, in bytes (1 B to 64 MiB), written
    /// once when the connection is accepted.
    #[arg(long, default_value_t = 16 * 1024, value_parser = limits::buf_size)]
    pub buf_size: usize,
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

/// How often the single-threaded models look at the stop flag and idle
/// connections.
pub const TICK: Duration = Duration::from_millis(100);

/// A connection's receive buffer, `size` bytes, written once so its pages
/// are committed when the connection starts: the server's memory is set by
/// its connection count, not by how many connections have yet seen a large
/// message (a zeroed allocation would be faulted in bit by bit as data
/// first reaches each page, and `ovl soak` would read that as growth).
pub fn conn_buffer(size: usize) -> overlapped::Slice {
    overlapped::Slice::from(vec![0xA5; size])
}

/// Tracks the last activity of a connection for the idle timeout.
#[derive(Debug)]
pub struct Idle {
    pub last: Cell<Instant>,
}

impl Idle {
    pub fn new() -> Self {
        Idle {
            last: Cell::new(Instant::now()),
        }
    }
    pub fn touch(&self) {
        self.last.set(Instant::now());
    }
    pub fn expired(&self, limit: Option<Duration>) -> bool {
        limit.is_some_and(|l| self.last.get().elapsed() > l)
    }
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
    install_signals();
    let stats = std::sync::Arc::new(Stats::default());
    let idle = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    let r = match args.model {
        Model::Events => events::serve(&engine, chosen, &args, idle, &stats),
        Model::Routines => routines::serve(&engine, chosen, &args, idle, &stats),
        Model::Port => port::serve(&engine, chosen, &args, idle, &stats),
        Model::Async => asyncs::serve(&engine, chosen, &args, idle, &stats),
    };
    if let Err(e) = r {
        eprintln!("ovl echo-server: {e}");
        return ExitCode::from(1);
    }
    println!(
        "stopped: {} connections served, {} bytes echoed, {} refused (max-conns)",
        stats.connections.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed)
    );
    // The async model runs an engine per thread; the counters below are of
    // the models that share one engine.
    if args.model != Model::Async && stats_wanted() {
        let c = engine.counters();
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
fn stats_wanted() -> bool {
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
    let s = Socket::tcp_for(engine, &addr).map_err(context(format!(
        "cannot create a socket to listen on {addr}"
    )))?;
    s.with_socket2(|s| s.set_reuse_address(true))
        .map_err(context(format!(
            "cannot set SO_REUSEADDR to listen on {addr}"
        )))?;
    s.bind(&addr)
        .map_err(context(format!("cannot bind {addr}")))?;
    s.listen(1024)
        .map_err(context(format!("cannot listen on {addr}")))?;
    Ok(s)
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
