//! The async model: thread per core, each thread with its own engine and
//! its own `SO_REUSEPORT` listener, a task per connection.
//!
//! `SO_REUSEPORT` would let a second server of this model bind the same
//! port and silently take a share of its connections, so a server first
//! claims the address (see [`claim`]).
//!
//! Idle connections hold no buffer (see [the server's docs](super)): a
//! connection's task waits with a zero-byte receive, then runs the echo
//! loop with a buffer from the pool. Each thread sweeps its connections
//! every [`TICK`] (from its accept loop): it cancels a receive that waited
//! `--buf-release` with a buffer (the task gives the buffer back and waits
//! with a zero-byte receive again) or any receive past the idle timeout
//! (the task ends). A task only notes, in cells its thread's sweep reads,
//! what it waits with and the sweep clock's time of its last activity: no
//! timer, no clock read per message. The echo loop's state (the buffer,
//! an operation) is boxed while it runs, so an idle task is small.

use std::cell::Cell;
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use overlapped::{Engine, MsgFlags, Notify, Slice, Socket, is_aborted, rt};

use super::{
    CLOSE_WAIT, Pool, ServerArgs, Stats, TICK, claim, probe_buffer, stopping, stream_ended,
};
use crate::engine::Chosen;

/// What every connection task of the server shares.
struct Shared {
    stats: Arc<Stats>,
    pool: Pool,
    /// The idle timeout, in sweep ticks.
    idle: Option<u64>,
    /// `--buf-release`, in sweep ticks.
    release: Option<u64>,
}

/// A duration in whole ticks, rounded up.
fn ticks(d: Duration) -> u64 {
    d.as_nanos().div_ceil(TICK.as_nanos()) as u64
}

/// A thread's connections, as its sweeps see them, and what the server
/// shares.
struct Local {
    sh: Arc<Shared>,
    conns: std::cell::RefCell<Vec<Weak<Watch>>>,
    /// The sweep clock: ticks since `start`, as of the last sweep.
    now: Cell<u64>,
    start: Instant,
}

/// What a connection's receive waits with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// No receive in flight (the task is echoing).
    Not,
    /// A zero-byte receive: the connection is idle.
    Nothing,
    /// A receive with the connection's buffer.
    Buffer,
}

/// A connection: its socket, and what its thread's sweeps read.
struct Watch {
    sock: Socket,
    /// Sweep clock of the last activity.
    last: Cell<u64>,
    waiting: Cell<Wait>,
}

impl Local {
    /// Every [`TICK`]: cancels the receives of connections past the idle
    /// timeout, and those that waited `--buf-release` with a buffer. A
    /// receive is the only operation in flight while its task waits, so
    /// cancelling the socket's operations cancels just that receive (one
    /// that completed meanwhile keeps its data).
    fn sweep(&self) {
        let sh = &self.sh;
        let now = (self.start.elapsed().as_nanos() / TICK.as_nanos()) as u64;
        if now == self.now.get() {
            return;
        }
        self.now.set(now);
        self.conns.borrow_mut().retain(|w| {
            let Some(w) = w.upgrade() else {
                return false;
            };
            let quiet = now - w.last.get();
            let due = |limit: Option<u64>| limit.is_some_and(|t| quiet > t);
            let cancel = match w.waiting.get() {
                Wait::Not => false,
                Wait::Nothing => due(sh.idle),
                Wait::Buffer => due(sh.idle) || due(sh.release),
            };
            if cancel {
                let _ = w.sock.cancel_all();
            }
            true
        });
    }

    /// True when the connection is past the idle timeout (its cancelled
    /// receive then ends it).
    fn expired(&self, w: &Watch) -> bool {
        self.sh
            .idle
            .is_some_and(|t| self.now.get() - w.last.get() > t)
    }
}

/// Counts a connection's task while it lives (for `--max-conns`).
struct Live(Arc<AtomicUsize>);

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's task: waits with a zero-byte receive while idle, runs
/// [`busy`] once data arrives. What it holds while idle is all an idle
/// connection costs the server, with its [`Watch`].
async fn echo(w: Rc<Watch>, local: Rc<Local>, _live: Live) {
    loop {
        let op = match w.sock.recv(probe_buffer(), MsgFlags::empty(), Notify::None) {
            Ok(started) => started.op(),
            Err(_) => return,
        };
        w.waiting.set(Wait::Nothing);
        let (r, _) = op.await;
        w.waiting.set(Wait::Not);
        // An error, a cancel (only the idle timeout cancels a zero-byte
        // receive), or the end of the stream.
        if r.is_err() || stream_ended(&w.sock) {
            return;
        }
        w.last.set(local.now.get());
        // Boxed: allocated only while the connection is busy.
        match Box::pin(busy(&w, &local)).await {
            Some(buf) => local.sh.pool.give(buf),
            None => return,
        }
    }
}

/// The echo loop with a buffer from the pool. Returns the buffer when the
/// sweep cancelled a receive that waited `--buf-release` (the connection
/// goes idle), `None` when the connection ends.
async fn busy(w: &Watch, local: &Local) -> Option<Slice> {
    let sh = &local.sh;
    let mut buf = sh.pool.take();
    loop {
        sh.pool.widen(&mut buf);
        let op = match w.sock.recv(buf, MsgFlags::empty(), Notify::None) {
            Ok(started) => started.op(),
            Err(e) => {
                sh.pool.give(e.bufs);
                return None;
            }
        };
        w.waiting.set(Wait::Buffer);
        let (r, b) = op.await;
        w.waiting.set(Wait::Not);
        match r {
            Ok(n) if n > 0 => {}
            Err(e) if is_aborted(&e) && !local.expired(w) => return Some(b),
            _ => {
                sh.pool.give(b);
                return None;
            }
        }
        let started = match w.sock.send(b, MsgFlags::empty(), Notify::None) {
            Ok(started) => started,
            Err(e) => {
                sh.pool.give(e.bufs);
                return None;
            }
        };
        let (s, b) = started.op().await;
        match s {
            Ok(n) => {
                sh.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                sh.pool.give(b);
                return None;
            }
        }
        w.last.set(local.now.get());
        buf = b;
    }
}

/// Ends a thread's listener: its accept cancelled and its end awaited
/// before the descriptor is closed (see [`super::close_listener`]).
async fn close_listener(listener: Socket) {
    let deadline = Instant::now() + CLOSE_WAIT;
    while listener.cancel_all().unwrap_or(0) > 0 && Instant::now() < deadline {
        rt::sleep(Duration::from_millis(5)).await;
    }
    let _ = listener.close();
}

/// Serves until stopped. `engine` is the one the choice gave on the main
/// thread: every thread builds an engine of the same kind.
pub fn serve(
    engine: &Engine,
    chosen: Chosen,
    args: &ServerArgs,
    idle: Option<Duration>,
    stats: &Arc<Stats>,
) -> io::Result<()> {
    if args.addr.port() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the async model listens on one port from every thread: give --addr a fixed port",
        ));
    }
    let _claim = claim(args.addr)?;
    let max = args.max_conns;
    let live = Arc::new(AtomicUsize::new(0));
    let st = stats.clone();
    let shared = Arc::new(Shared {
        stats: stats.clone(),
        pool: Pool::new(args.buf_size, args.buf_max),
        idle: idle.map(ticks),
        release: args.release().map(ticks),
    });
    let threads = args.workers;
    let builder = Engine::builder().choice(crate::engine::forced(engine.kind()));
    let handles = rt::thread_per_core(builder, threads, args.addr, move |listener: Socket| {
        let stats = st.clone();
        let live = live.clone();
        let shared = shared.clone();
        async move {
            let local = Rc::new(Local {
                sh: shared.clone(),
                conns: std::cell::RefCell::new(Vec::new()),
                now: Cell::new(0),
                start: Instant::now(),
            });
            while !stopping() {
                // At least every tick: the accept below waits at most one.
                local.sweep();
                let Ok(started) = listener.accept(Notify::None) else {
                    // Out of descriptors or similar: try again shortly.
                    rt::sleep(TICK).await;
                    continue;
                };
                let Ok((r, sock)) = rt::timeout(TICK, started.op()).await else {
                    continue;
                };
                let (Ok(_), Some(sock)) = (r, sock) else {
                    continue;
                };
                if live.load(Ordering::Relaxed) >= max {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = sock.set_nodelay(true);
                live.fetch_add(1, Ordering::Relaxed);
                let w = Rc::new(Watch {
                    sock,
                    last: Cell::new(local.now.get()),
                    waiting: Cell::new(Wait::Not),
                });
                local.conns.borrow_mut().push(Rc::downgrade(&w));
                // Boxed here, not moved whole into the runtime's task: the
                // spawned future holds just the box.
                let task = echo(w, local.clone(), Live(live.clone()));
                rt::spawn(Box::pin(task));
            }
            close_listener(listener).await;
        }
    })
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {} (a SO_REUSEPORT listener per thread): {e}",
                args.addr
            ),
        )
    })?;
    println!("listening on {}", args.addr);
    println!(
        "model Async, {} thread{}, each with its own {} engine ({})",
        handles.len(),
        if handles.len() == 1 { "" } else { "s" },
        engine.kind(),
        crate::engine::why(engine, chosen)
    );
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(TICK);
    }
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}
