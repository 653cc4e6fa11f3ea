//! `ovl echo-server`: one echo server, several models of the overlapped
//! world.

use std::cell::Cell;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use overlapped::probe::EngineChoice;
use overlapped::{Engine, EngineKind};

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
    /// Worker threads (port model) or threads (async model); 0 = one per CPU.
    #[arg(long, visible_alias = "threads", default_value_t = 0)]
    pub workers: usize,
    /// Engine: auto (io_uring when available), uring, poll.
    #[arg(long, default_value = "auto")]
    pub engine: EngineChoice,
    /// Most connections served at once; more are closed on arrival.
    #[arg(long, default_value_t = 10_000)]
    pub max_conns: usize,
    /// Close a connection idle this many seconds (0 = never).
    #[arg(long, default_value_t = 0)]
    pub idle_timeout: u64,
    /// Receive buffer per connection, in bytes.
    #[arg(long, default_value_t = 16 * 1024)]
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
    let engine = match Engine::builder().choice(args.engine).build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ovl echo-server: cannot start the engine: {e}");
            return ExitCode::from(2);
        }
    };
    install_signals();
    let stats = std::sync::Arc::new(Stats::default());
    let idle = (args.idle_timeout > 0).then(|| Duration::from_secs(args.idle_timeout));
    let r = match args.model {
        Model::Events => events::serve(&engine, &args, idle, &stats),
        Model::Routines => routines::serve(&engine, &args, idle, &stats),
        Model::Port => port::serve(&engine, &args, idle, &stats),
        Model::Async => asyncs::serve(&args, idle, &stats),
    };
    if let Err(e) = r {
        eprintln!("ovl echo-server: {e}");
        return ExitCode::from(1);
    }
    let c = engine.counters();
    println!(
        "stopped: {} connections served, {} bytes echoed, {} refused (max-conns)",
        stats.connections.load(Ordering::Relaxed),
        stats.bytes.load(Ordering::Relaxed),
        stats.refused.load(Ordering::Relaxed)
    );
    // The async model runs an engine per thread; the counters below are of
    // the models that share one engine.
    if args.model == Model::Async {
        return ExitCode::SUCCESS;
    }
    println!(
        "OVL-STATS {}",
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
    ExitCode::SUCCESS
}

/// Prints the banner every model starts with.
pub fn banner(engine: &Engine, addr: SocketAddr, model: Model) {
    let why = engine.reason();
    let kind = engine.kind();
    println!("listening on {addr}");
    println!("model {model:?}, engine {kind} ({why})", model = model);
    if kind == EngineKind::Poll {
        println!("(the poll engine: every operation is tried at once, then retried on readiness)");
    }
}
