//! The port model: an acceptor and a pool of worker threads sharing one
//! completion port (the textbook's IOCP echo server, done safely).
//!
//! Each connection is associated with the port under its own key; one
//! operation is in flight per connection at a time (receive, then the echo's
//! send, then the next receive), each tagged with what it is. Connection
//! state lives in a table keyed by the port key: a packet for a connection
//! that was closed finds nothing and is dropped with its buffers, so no
//! worker can touch freed connection data (the textbook frees it while a
//! send may still be in flight). Sockets skip the port on immediate
//! success, so a worker handles immediate completions inline.
//!
//! With `--engine-per-worker`, each worker thread has an engine of its own
//! (on io_uring, a ring per thread) with a `SO_REUSEPORT` listener on it
//! (key [`LISTENER_KEY`] − i); the kernel spreads the connections over the
//! listeners, each connection lives on its listener's engine, and every
//! engine's sockets share the one port. A worker waiting on the port waits
//! on all the engines at once, so any worker takes any packet.
//!
//! Idle connections hold no buffer (see [the server's docs](super)): a
//! connection starts with a zero-byte receive (tagged `PROBE`); its packet
//! takes a buffer from the pool and runs the echo loop. A receive that
//! parks with the buffer is stored in the connection (started under the
//! connection's lock, so its packet, handled by whichever worker, finds it
//! stored); the acceptor thread's tick cancels one that waited
//! `--buf-release`, and its *aborted* packet gives the buffer back and
//! posts a zero-byte receive. A closed connection's packets find no
//! connection in the table; their buffers go back to the pool.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use overlapped::{
    CompletionPort, Engine, MsgFlags, Notify, Op, Packet, Slice, Socket, StartError, Started,
};

use super::{
    Pool, ServerArgs, Stats, TICK, banner, close_listener, listen, listen_shared, probe_buffer,
    stopping, stream_ended,
};
use crate::engine::Chosen;

const RECV: u64 = 1;
const SEND: u64 = 2;
const ACCEPT: u64 = 3;
/// A zero-byte receive: the connection is idle and holds no buffer.
const PROBE: u64 = 4;
const STOP_KEY: usize = usize::MAX;
/// The (first) listener's key: accepts complete on the port too, so the
/// workers are the only threads that drive the engines. Listener i has key
/// `LISTENER_KEY - i`.
const LISTENER_KEY: usize = usize::MAX - 1;
/// Connections take the keys below this one (room for a listener per
/// worker, at most `limits::MAX_THREADS`).
const CONN_KEYS: usize = LISTENER_KEY - crate::limits::MAX_THREADS as usize;

struct Conn {
    sock: Socket,
    st: Mutex<ConnState>,
}

struct ConnState {
    /// Last activity: for the idle timeout and the buffer's release.
    last: u64,
    /// The receive parked with the connection's buffer, if any.
    recv: Option<Op<Slice>>,
}

impl Conn {
    fn state(&self) -> MutexGuard<'_, ConnState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Shards of the connection table: a worker looks a packet's connection
/// up under one shard's lock (chosen by the key), so two workers taking
/// packets of different connections rarely meet on a lock.
const SHARDS: usize = 16;

/// The connections by port key, sharded (see [`SHARDS`]).
struct Table {
    shards: [Mutex<HashMap<usize, Arc<Conn>>>; SHARDS],
    count: std::sync::atomic::AtomicUsize,
}

impl Table {
    fn new() -> Table {
        Table {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            count: Default::default(),
        }
    }

    fn shard(&self, key: usize) -> MutexGuard<'_, HashMap<usize, Arc<Conn>>> {
        self.shards[key % SHARDS]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, key: usize) -> Option<Arc<Conn>> {
        self.shard(key).get(&key).cloned()
    }

    fn insert(&self, key: usize, conn: Arc<Conn>) {
        if self.shard(key).insert(key, conn).is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn remove(&self, key: usize) -> Option<Arc<Conn>> {
        let c = self.shard(key).remove(&key);
        if c.is_some() {
            self.count.fetch_sub(1, Ordering::Relaxed);
        }
        c
    }

    fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Every connection (a snapshot, one shard locked at a time).
    fn all(&self) -> Vec<(usize, Arc<Conn>)> {
        let mut v = Vec::with_capacity(self.len());
        for s in &self.shards {
            let s = s.lock().unwrap_or_else(|p| p.into_inner());
            v.extend(s.iter().map(|(k, c)| (*k, c.clone())));
        }
        v
    }
}

/// What every worker shares.
struct Shared {
    port: CompletionPort,
    /// One listener, or one per worker (`--engine-per-worker`); acceptor i
    /// has the key `LISTENER_KEY - i`.
    acc: Vec<Acceptor>,
    table: Table,
    stats: Arc<Stats>,
    pool: Pool,
    next_key: std::sync::atomic::AtomicUsize,
    max_conns: usize,
}

impl Shared {
    /// The acceptor whose listener has port key `key`, if any.
    fn acceptor(&self, key: usize) -> Option<&Acceptor> {
        LISTENER_KEY.checked_sub(key).and_then(|i| self.acc.get(i))
    }

    fn conn(&self, key: usize) -> Option<Arc<Conn>> {
        self.table.get(key)
    }
}

fn end(table: &Table, key: usize) {
    if let Some(c) = table.remove(key) {
        let _ = c.sock.close();
    }
}

/// Echo rounds one connection may run inline (its operations completing at
/// once) before it goes to the back of the port's queue, so a connection
/// that always has data cannot starve the others.
const INLINE_ROUNDS: usize = 8;

/// How a start went, for the inline loop.
enum Step {
    /// Completed at start: bytes moved and the buffer.
    Now(usize, Slice),
    /// Its packet will come.
    Pending(Op<Slice>),
    /// Failed (at start or at once): the connection ends. The buffer, when
    /// it came back.
    Failed(Option<Slice>),
}

fn step(start: Result<Started<Slice>, StartError<Slice>>) -> Step {
    match start {
        // Skip-on-success: no packet comes; the result is taken here.
        Ok(Started::Now { op, .. }) => match op.wait() {
            Ok(c) if c.error.is_none() => Step::Now(c.bytes, c.data),
            Ok(c) => Step::Failed(Some(c.data)),
            Err(_) => Step::Failed(None),
        },
        Ok(Started::Pending(op)) => Step::Pending(op),
        Err(e) => Step::Failed(Some(e.bufs)),
    }
}

/// Ends a connection, its buffer back to the pool.
fn fail(sh: &Shared, key: usize, buf: Option<Slice>) {
    if let Some(b) = buf {
        sh.pool.give(b);
    }
    end(&sh.table, key);
}

/// The connection goes idle: a zero-byte receive, no buffer held. Data
/// already there (or the end of the stream) is handled at once.
fn idle(sh: &Shared, conn: &Conn, key: usize) {
    match step(
        conn.sock
            .recv(probe_buffer(), MsgFlags::empty(), Notify::Port(PROBE)),
    ) {
        Step::Now(..) => readable(sh, conn, key),
        Step::Pending(_) => {}
        Step::Failed(_) => end(&sh.table, key),
    }
}

/// A zero-byte receive completed: the connection takes a buffer and runs
/// the echo loop, or ends (without a buffer) when its stream ended.
fn readable(sh: &Shared, conn: &Conn, key: usize) {
    if stream_ended(&conn.sock) {
        end(&sh.table, key);
    } else {
        drive(sh, conn, key, sh.pool.take(), false);
    }
}

/// Echo loop for one connection, starting with received data (`have`) or
/// with a receive to post; immediate completions are handled here, pending
/// ones come back as packets. `data` is the connection's buffer: its window
/// is the bytes to echo, and widening it back to the whole buffer is all a
/// receive needs (no refill).
fn drive(sh: &Shared, conn: &Conn, key: usize, mut data: Slice, mut have: bool) {
    for round in 0.. {
        if have && round == INLINE_ROUNDS {
            // Resume later, behind the packets already queued.
            if sh.port.post(key, data.len(), data).is_err() {
                end(&sh.table, key);
            }
            return;
        }
        if have {
            match step(conn.sock.send(data, MsgFlags::empty(), Notify::Port(SEND))) {
                Step::Now(n, d) => {
                    sh.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    data = d;
                }
                Step::Pending(_) => return,
                Step::Failed(b) => return fail(sh, key, b),
            }
        }
        sh.pool.widen(&mut data);
        // Started under the connection's lock: the receive's packet, which
        // any worker may handle, finds its handle stored.
        let mut st = conn.state();
        match step(conn.sock.recv(data, MsgFlags::empty(), Notify::Port(RECV))) {
            Step::Now(n, d) if n > 0 => {
                data = d;
                have = true;
            }
            Step::Pending(op) => {
                st.recv = Some(op);
                st.last = super::coarse_ms();
                return;
            }
            // An error, or the end of the stream.
            Step::Now(_, d) => {
                drop(st);
                return fail(sh, key, Some(d));
            }
            Step::Failed(b) => {
                drop(st);
                return fail(sh, key, b);
            }
        }
    }
}

/// What a worker needs to take a new connection.
struct Acceptor {
    listener: Socket,
    /// Accepts in flight; topped up every tick, so accepting resumes after
    /// a failure (e.g. `EMFILE`: out of descriptors) once descriptors free up.
    outstanding: std::sync::atomic::AtomicUsize,
    /// The engine of the listener and of the connections it accepts.
    engine: Engine,
}

fn accepted(sh: &Shared, acc: &Acceptor, c: overlapped::Completion<Option<Socket>>) {
    let (port, table, stats) = (&sh.port, &sh.table, &sh.stats);
    if let (None, Some(sock)) = (c.error, c.data) {
        let n = table.len();
        if n >= sh.max_conns {
            stats.refused.fetch_add(1, Ordering::Relaxed);
        } else {
            stats.connections.fetch_add(1, Ordering::Relaxed);
            let key = sh.next_key.fetch_add(1, Ordering::Relaxed) % CONN_KEYS;
            let _ = sock.set_nodelay(true);
            if port.associate(&sock, key).is_ok() && sock.set_skip_port_on_success().is_ok() {
                let conn = Arc::new(Conn {
                    sock,
                    st: Mutex::new(ConnState {
                        last: super::coarse_ms(),
                        recv: None,
                    }),
                });
                table.insert(key, conn.clone());
                idle(sh, &conn, key);
            }
        }
    }
    acc.outstanding.fetch_sub(1, Ordering::Relaxed);
    if !stopping() {
        top_up(acc);
    }
}

/// Keeps four accepts in flight; a start that fails is retried next tick.
fn top_up(acc: &Acceptor) {
    while acc.outstanding.load(Ordering::Relaxed) < 4 {
        if acc.listener.accept(Notify::Port(ACCEPT)).is_err() {
            return;
        }
        acc.outstanding.fetch_add(1, Ordering::Relaxed);
    }
}

fn worker(sh: Arc<Shared>) {
    loop {
        let p: Packet = match sh.port.get_queued(Some(TICK)) {
            Ok(Some(p)) => p,
            Ok(None) if stopping() => return,
            Ok(None) => continue,
            Err(_) => return,
        };
        if p.key == STOP_KEY && p.is_posted() {
            return;
        }
        let key = p.key;
        let tag = p.tag;
        if let Some(acc) = sh.acceptor(key) {
            if let Ok(c) = p.into_completion::<Option<Socket>>() {
                accepted(&sh, acc, c);
            }
            continue;
        }
        if p.is_posted() {
            // A connection resuming its echo loop with received data.
            if let Ok(data) = p.into_payload::<Slice>() {
                match sh.conn(key) {
                    Some(conn) => drive(&sh, &conn, key, data, true),
                    None => sh.pool.give(data),
                }
            }
            continue;
        }
        let Ok(c) = p.into_completion::<Slice>() else {
            continue;
        };
        let Some(conn) = sh.conn(key) else {
            // The connection was closed: its operations end aborted.
            sh.pool.give(c.data);
            continue;
        };
        let mut st = conn.state();
        if tag == RECV {
            st.recv = None;
            if c.is_aborted() {
                // The tick cancelled it (a close takes the connection out
                // of the table first): the connection goes idle.
                drop(st);
                sh.pool.give(c.data);
                idle(&sh, &conn, key);
                continue;
            }
        }
        if c.error.is_some() || (tag == RECV && c.bytes == 0) {
            drop(st);
            fail(&sh, key, Some(c.data));
            continue;
        }
        st.last = super::coarse_ms();
        drop(st);
        match tag {
            SEND => {
                sh.stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
                drive(&sh, &conn, key, c.data, false);
            }
            PROBE => readable(&sh, &conn, key),
            _ => drive(&sh, &conn, key, c.data, true),
        }
    }
}

/// Every tick: ends the connections idle past the idle timeout, and
/// cancels the receives that waited `release` with a buffer (their aborted
/// packets give the buffers back).
fn tick(sh: &Shared, idle: Option<Duration>, release: Option<Duration>) {
    let mut expired = Vec::new();
    let mut cancel = Vec::new();
    for (k, c) in sh.table.all() {
        // A connection whose lock is held is busy right now.
        let Ok(mut st) = c.st.try_lock() else {
            continue;
        };
        let quiet = super::quiet_since(st.last);
        if idle.is_some_and(|l| quiet > l) {
            expired.push(k);
        } else if release.is_some_and(|r| quiet > r) {
            cancel.extend(st.recv.take());
        }
    }
    for op in cancel {
        // `NotFound` when it completed meanwhile: its packet has the data.
        let _ = op.cancel();
    }
    for k in expired {
        end(&sh.table, k);
    }
}

/// The engines to serve on: `engine`, or with `--engine-per-worker` one
/// per worker, of `engine`'s kind (the first is `engine`).
fn engines(engine: &Engine, args: &ServerArgs, workers: usize) -> io::Result<Vec<Engine>> {
    if !args.engine_per_worker {
        return Ok(vec![engine.clone()]);
    }
    if workers as u64 > crate::limits::MAX_THREADS {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{workers} workers: --engine-per-worker takes at most {}",
                crate::limits::MAX_THREADS
            ),
        ));
    }
    let mut v = vec![engine.clone()];
    for _ in 1..workers {
        let e = Engine::builder()
            .choice(crate::engine::forced(engine.kind()))
            .build()
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot make an engine per worker ({workers}): {e}"),
                )
            })?;
        v.push(e);
    }
    Ok(v)
}

/// A listener on each engine: one on `addr`, or (several engines) a
/// `SO_REUSEPORT` listener each on the same address (port 0: the one the
/// first listener got), the address claimed first (see [`super::claim`]).
/// Returns the listeners and the claim to keep while serving.
fn listeners(
    engines: &[Engine],
    addr: std::net::SocketAddr,
) -> io::Result<(Vec<Socket>, Option<std::os::unix::net::UnixListener>)> {
    if let [one] = engines {
        return Ok((vec![listen(one, addr)?], None));
    }
    let claim = if addr.port() == 0 {
        None
    } else {
        Some(super::claim(addr)?)
    };
    let mut v: Vec<Socket> = Vec::with_capacity(engines.len());
    for e in engines {
        let at = match v.first() {
            Some(first) => first.local_addr()?,
            None => addr,
        };
        v.push(listen_shared(e, at, true)?);
    }
    Ok((v, claim))
}

/// Serves until stopped. Returns the engines it served on (for their
/// counters).
pub fn serve(
    engine: &Engine,
    chosen: Chosen,
    args: &ServerArgs,
    idle: Option<Duration>,
    stats: &Arc<Stats>,
) -> io::Result<Vec<Engine>> {
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    let engines = engines(engine, args, workers)?;
    let (listeners, _claim) = listeners(&engines, args.addr)?;
    let first = listeners
        .first()
        .ok_or_else(|| io::Error::other("no listener"))?;
    banner(engine, chosen, first.local_addr()?, args.model);
    if engines.len() > 1 {
        println!(
            "{workers} worker threads, each with its own {} engine and listener",
            engine.kind()
        );
    } else {
        println!("{workers} worker threads");
    }
    let port = CompletionPort::new(workers);
    let mut acc = Vec::with_capacity(listeners.len());
    for (i, (listener, e)) in listeners.into_iter().zip(&engines).enumerate() {
        port.associate(&listener, LISTENER_KEY - i).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot associate the listener with the completion port: {e}"),
            )
        })?;
        acc.push(Acceptor {
            listener,
            outstanding: std::sync::atomic::AtomicUsize::new(0),
            engine: e.clone(),
        });
    }
    let sh = Arc::new(Shared {
        port,
        acc,
        table: Table::new(),
        stats: stats.clone(),
        pool: Pool::new(args.buf_size, args.buf_max),
        next_key: std::sync::atomic::AtomicUsize::new(0),
        max_conns: args.max_conns,
    });
    // Several accepts in flight, as AcceptEx servers keep.
    for a in &sh.acc {
        top_up(a);
    }
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let sh = sh.clone();
            std::thread::spawn(move || worker(sh))
        })
        .collect();
    while !stopping() {
        std::thread::sleep(TICK);
        super::tick_clock();
        for a in &sh.acc {
            top_up(a);
        }
        tick(&sh, idle, args.release());
    }
    for _ in 0..workers {
        let _ = sh.port.post(STOP_KEY, 0, ());
    }
    for h in handles {
        let _ = h.join();
    }
    for (k, _) in sh.table.all() {
        end(&sh.table, k);
    }
    for a in &sh.acc {
        close_listener(&a.listener, |t| a.engine.drive(Some(t)));
    }
    Ok(engines)
}
