//! The port model: an acceptor and a pool of worker threads sharing one
//! completion port (the textbook's IOCP echo server, done safely).
//!
//! The port is typed ([`TypedPort`]): each connection is associated with
//! it under its state (`Arc<Conn>`, the per-handle data), which every
//! packet of the connection carries; one operation is in flight per
//! connection at a time (receive, then the echo's send, then the next
//! receive), each tagged with what it is. A worker finds the connection in
//! the packet, with no lookup; a packet of a connection that was closed
//! finds it marked closed and is dropped with its buffers, so no worker can
//! touch freed connection data (the textbook frees it while a send may
//! still be in flight). A table of the open connections serves only the
//! acceptor's tick (idle timeouts, buffer release) and the shutdown.
//! Listeners sit on the same port untyped ([`TypedPort::as_port`]).
//! Sockets skip the port on immediate success, so a worker handles
//! immediate completions inline.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use overlapped::{
    Engine, MsgFlags, Notify, Op, OpPacket, PacketOf, Slice, Socket, StartError, Started, TypedPort,
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

/// A connection: the per-handle data every packet of its socket carries.
struct Conn {
    /// Its key in the table of open connections.
    key: usize,
    sock: Socket,
    st: Mutex<ConnState>,
    /// Ended (out of the table, socket closed): its late packets (the
    /// aborted operations) only give their buffers back.
    closed: AtomicBool,
}

/// The port: operations hand back a `Slice`, sockets carry their `Conn`.
type Port = TypedPort<Slice, Conn>;

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
    port: Port,
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
}

/// Ends a connection: out of the table, marked closed, its socket closed
/// (which aborts its operations and lets the port drop its data).
fn end(table: &Table, conn: &Conn) {
    if let Some(c) = table.remove(conn.key) {
        c.closed.store(true, Ordering::Release);
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
fn fail(sh: &Shared, conn: &Conn, buf: Option<Slice>) {
    if let Some(b) = buf {
        sh.pool.give(b);
    }
    end(&sh.table, conn);
}

/// The connection goes idle: a zero-byte receive, no buffer held. Data
/// already there (or the end of the stream) is handled at once.
fn idle(sh: &Shared, conn: &Arc<Conn>) {
    match step(
        conn.sock
            .recv(probe_buffer(), MsgFlags::empty(), Notify::Port(PROBE)),
    ) {
        Step::Now(..) => readable(sh, conn),
        Step::Pending(_) => {}
        Step::Failed(_) => end(&sh.table, conn),
    }
}

/// A zero-byte receive completed: the connection takes a buffer and runs
/// the echo loop, or ends (without a buffer) when its stream ended.
fn readable(sh: &Shared, conn: &Arc<Conn>) {
    if stream_ended(&conn.sock) {
        end(&sh.table, conn);
    } else {
        drive(sh, conn, sh.pool.take(), false);
    }
}

/// Echo loop for one connection, starting with received data (`have`) or
/// with a receive to post; immediate completions are handled here, pending
/// ones come back as packets. `data` is the connection's buffer: its window
/// is the bytes to echo, and widening it back to the whole buffer is all a
/// receive needs (no refill).
fn drive(sh: &Shared, conn: &Arc<Conn>, mut data: Slice, mut have: bool) {
    for round in 0.. {
        if have && round == INLINE_ROUNDS {
            // Resume later, behind the packets already queued.
            if sh
                .port
                .post(conn.key, data.len(), (conn.clone(), data))
                .is_err()
            {
                end(&sh.table, conn);
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
                Step::Failed(b) => return fail(sh, conn, b),
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
                return fail(sh, conn, Some(d));
            }
            Step::Failed(b) => {
                drop(st);
                return fail(sh, conn, b);
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
            let conn = Arc::new(Conn {
                key,
                sock,
                st: Mutex::new(ConnState {
                    last: super::coarse_ms(),
                    recv: None,
                }),
                closed: AtomicBool::new(false),
            });
            if port.associate(&conn.sock, conn.clone()).is_ok()
                && conn.sock.set_skip_port_on_success().is_ok()
            {
                table.insert(key, conn.clone());
                idle(sh, &conn);
            } else {
                // Not served: closing it lets the port drop its data.
                let _ = conn.sock.close();
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
        let p = match sh.port.get_queued(Some(TICK)) {
            Ok(Some(p)) => p,
            Ok(None) if stopping() => return,
            Ok(None) => continue,
            Err(_) => return,
        };
        let OpPacket {
            data: conn,
            tag,
            completion: c,
            ..
        } = match p {
            PacketOf::Op(op) => op,
            PacketOf::Other(p) => {
                if p.key == STOP_KEY && p.is_posted() {
                    return;
                }
                if let Some(acc) = sh.acceptor(p.key) {
                    if let Ok(c) = p.into_completion::<Option<Socket>>() {
                        accepted(&sh, acc, c);
                    }
                } else if let Ok((conn, data)) = p.into_payload::<(Arc<Conn>, Slice)>() {
                    // A connection resuming its echo loop with received data.
                    if conn.closed.load(Ordering::Acquire) {
                        sh.pool.give(data);
                    } else {
                        drive(&sh, &conn, data, true);
                    }
                }
                continue;
            }
        };
        if conn.closed.load(Ordering::Acquire) {
            // The connection was closed: its operations end aborted.
            sh.pool.give(c.data);
            continue;
        }
        let mut st = conn.state();
        if tag == RECV {
            st.recv = None;
            if c.is_aborted() {
                // The tick cancelled it (a close takes the connection out
                // of the table first): the connection goes idle.
                drop(st);
                sh.pool.give(c.data);
                idle(&sh, &conn);
                continue;
            }
        }
        if c.error.is_some() || (tag == RECV && c.bytes == 0) {
            drop(st);
            fail(&sh, &conn, Some(c.data));
            continue;
        }
        st.last = super::coarse_ms();
        drop(st);
        match tag {
            SEND => {
                sh.stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
                drive(&sh, &conn, c.data, false);
            }
            PROBE => readable(&sh, &conn),
            _ => drive(&sh, &conn, c.data, true),
        }
    }
}

/// Every tick: ends the connections idle past the idle timeout, and
/// cancels the receives that waited `release` with a buffer (their aborted
/// packets give the buffers back).
fn tick(sh: &Shared, idle: Option<Duration>, release: Option<Duration>) {
    let mut expired = Vec::new();
    let mut cancel = Vec::new();
    for (_, c) in sh.table.all() {
        // A connection whose lock is held is busy right now.
        let Ok(mut st) = c.st.try_lock() else {
            continue;
        };
        let quiet = super::quiet_since(st.last);
        if idle.is_some_and(|l| quiet > l) {
            drop(st);
            expired.push(c);
        } else if release.is_some_and(|r| quiet > r) {
            cancel.extend(st.recv.take());
        }
    }
    for op in cancel {
        // `NotFound` when it completed meanwhile: its packet has the data.
        let _ = op.cancel();
    }
    for c in expired {
        end(&sh.table, &c);
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
    let port = Port::new(workers);
    let mut acc = Vec::with_capacity(listeners.len());
    for (i, (listener, e)) in listeners.into_iter().zip(&engines).enumerate() {
        port.as_port()
            .associate(&listener, LISTENER_KEY - i)
            .map_err(|e| {
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
    for (_, c) in sh.table.all() {
        end(&sh.table, &c);
    }
    for a in &sh.acc {
        close_listener(&a.listener, |t| a.engine.drive(Some(t)));
    }
    Ok(engines)
}
