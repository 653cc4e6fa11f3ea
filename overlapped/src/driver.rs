//! The driver: the operation table, per-socket direction queues, submission,
//! reaping and dispatch, and "whoever waits, drives".
//!
//! # Design notes
//!
//! * **Op table.** A [`Slab`] of slots; an op's `user_data` is its slot index
//!   plus a generation. A slot is freed only once the op's final completion
//!   was reaped *and* its consumer (handle, routine) has taken the result, so
//!   an id is never reused while a completion for it can still arrive.
//! * **Order.** Each socket has three direction queues (read, write,
//!   urgent). Only the head of a queue is tried, parked in the kernel
//!   (io_uring) or waiting for readiness (poll); the next op is armed when
//!   the head completes. io_uring would otherwise fill and send ops parked
//!   on one socket in reverse order.
//! * **Completed now.** A start whose queue is empty first tries the
//!   operation non-blocking (both engines, the same code): success is the
//!   model's *completed now*; an error is a start failure, after which no
//!   completion ever follows. On io_uring a stream receive skips the try
//!   after a try found nothing (`recv_direct`), and parks with
//!   `IORING_RECVSEND_POLL_FIRST` until a completion reports bytes left
//!   (`IORING_CQE_F_SOCK_NONEMPTY`): a wasted system call per message saved.
//! * **Batched submission.** SQEs of starts made while a thread answers a
//!   wait (`after_wait`), runs routines or polls async tasks are left in the
//!   ring and go in with that thread's next kernel entry (`drive_once`
//!   submits and waits in one `io_uring_enter`). A start submits at once
//!   when another thread is blocked in the engine (it could not submit for
//!   us). A socket's SQEs are always submitted before its descriptor closes
//!   (a closed number may be reused at once). Waits that find work without
//!   entering the kernel still reap every [`REAP_INTERVAL_US`], so
//!   completions waiting in the kernel are not starved.
//! * **Whoever waits, drives.** One thread at a time drives an engine: it
//!   submits, blocks in `io_uring_enter`/`epoll_wait` with the state lock
//!   released, then reaps and dispatches. Other waiters park and are woken by
//!   what they wait for (an event, their op, their routine queue) or when the
//!   driver leaves, so one of them takes over. A wake-up eventfd watched by
//!   the engine lets any thread end the driver's blocking wait.
//! * **Threads.** The ring is shared and entered by whichever thread drives.
//!   The kernel cancels a request when the thread that submitted it exits;
//!   an `ECANCELED` the engine did not ask for is therefore resubmitted, so
//!   ops do not die with an unrelated thread. The model's own rule (a
//!   thread's exit aborts the ops it started) is applied explicitly by a
//!   thread-local guard, identically on both engines; ops on sockets
//!   associated with a completion port are exempt (they survive their
//!   thread, as on Windows Vista and later).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::{self, Thread, ThreadId};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::event::Event;
use crate::op::ErasedBufs;
use crate::sched::RoutineQueue;
use crate::sys::probe::{EngineChoice, resolve};
use crate::sys::uring::{CANCEL_TOKEN, Cqe, Finish, KernelMem, RingAccess, WAKE_TOKEN};
use crate::sys::{self, Attempt, Backend, Dir, EngineKind, OpKind, Outcome};

/// Default submission-queue size of an io_uring engine.
pub const DEFAULT_RING_ENTRIES: u32 = 256;

/// A snapshot of an engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Operations started successfully (completed now or pending).
    pub submitted: u64,
    /// Operations that completed during their start call.
    pub completed_now: u64,
    /// Operations that completed later.
    pub completed_later: u64,
    /// Operations that completed *aborted* (cancel, close, thread exit).
    pub cancelled: u64,
    /// Kernel entries to submit or wait (`io_uring_enter` calls on io_uring,
    /// `epoll_wait` calls on poll).
    pub enter_calls: u64,
    /// Non-blocking system calls that tried an operation directly (at its
    /// start, or on readiness with the poll engine). With `enter_calls`,
    /// the engine's system calls.
    pub direct_calls: u64,
}

#[derive(Debug, Default)]
struct AtomicCounters {
    submitted: AtomicU64,
    completed_now: AtomicU64,
    completed_later: AtomicU64,
    cancelled: AtomicU64,
    enter_calls: AtomicU64,
    direct_calls: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// An engine: one io_uring ring or one epoll set, its op table, and the
/// sockets created on it. Cheap to clone (a shared handle).
///
/// Choose the engine at run time with [`Engine::new`] (honours
/// `OVERLAPPED_ENGINE=auto|uring|poll`) or [`Engine::builder`]; the choice
/// and its reason are available from [`kind`](Engine::kind) and
/// [`reason`](Engine::reason).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Inner>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("kind", &self.inner.kind)
            .field("reason", &self.inner.reason)
            .finish()
    }
}

/// Options for [`Engine::builder`].
#[derive(Debug, Clone)]
pub struct EngineBuilder {
    choice: Option<EngineChoice>,
    ring_entries: u32,
}

impl EngineBuilder {
    /// Forces a choice (overrides `OVERLAPPED_ENGINE`).
    pub fn choice(mut self, choice: EngineChoice) -> Self {
        self.choice = Some(choice);
        self
    }
    /// Submission-queue entries of an io_uring engine (a power of two is
    /// used; tiny rings are legal and only cost more kernel entries).
    pub fn ring_entries(mut self, n: u32) -> Self {
        self.ring_entries = n.max(1);
        self
    }
    /// Creates the engine.
    ///
    /// # Errors
    /// An unknown `OVERLAPPED_ENGINE` value; `uring` forced where io_uring
    /// cannot run (the error says why); a failure to set up the engine.
    pub fn build(self) -> io::Result<Engine> {
        let choice = match self.choice {
            Some(c) => c,
            None => EngineChoice::from_env()?,
        };
        let (kind, reason) = resolve(choice)?;
        let backend = match kind {
            EngineKind::Uring => Backend::Uring(sys::uring::Uring::new(self.ring_entries)?),
            EngineKind::Poll => Backend::Poll(sys::poll::Poll::new()?),
        };
        static LOGGED: std::sync::Once = std::sync::Once::new();
        LOGGED.call_once(
            || tracing::info!(engine = %kind, reason = %reason, "overlapped engine chosen"),
        );
        Ok(Engine {
            inner: Arc::new(Inner {
                kind,
                reason,
                backend,
                state: Mutex::new(State {
                    ops: Slab::new(),
                    socks: Slab::new(),
                    next_gen: 1,
                    driving: false,
                    followers: Vec::new(),
                    ring: RingAccess::new(),
                    backlog: VecDeque::new(),
                    ready: Vec::new(),
                }),
                counters: AtomicCounters::default(),
                last_reap: AtomicU64::new(clock_us()),
            }),
        })
    }
}

impl Engine {
    /// An engine chosen by `OVERLAPPED_ENGINE` (default `auto`: io_uring
    /// when it can run here, else poll).
    ///
    /// # Errors
    /// See [`EngineBuilder::build`].
    pub fn new() -> io::Result<Engine> {
        Engine::builder().build()
    }

    /// A builder with the default options.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            choice: None,
            ring_entries: DEFAULT_RING_ENTRIES,
        }
    }

    /// An engine of this kind (no fallback).
    ///
    /// # Errors
    /// See [`EngineBuilder::build`].
    pub fn with_kind(kind: EngineKind) -> io::Result<Engine> {
        let choice = match kind {
            EngineKind::Uring => EngineChoice::Uring,
            EngineKind::Poll => EngineChoice::Poll,
        };
        Engine::builder().choice(choice).build()
    }

    /// The process-wide default engine, created on first use.
    ///
    /// # Errors
    /// See [`EngineBuilder::build`] (the error is returned on every call).
    pub fn global() -> io::Result<Engine> {
        static GLOBAL: OnceLock<Result<Engine, (io::ErrorKind, String)>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Engine::new().map_err(|e| (e.kind(), e.to_string())))
            .clone()
            .map_err(|(k, m)| io::Error::new(k, m))
    }

    /// Which engine this is.
    pub fn kind(&self) -> EngineKind {
        self.inner.kind
    }

    /// Why this engine was chosen (for `auto`, why io_uring was or was not
    /// used).
    pub fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// The engine's counters.
    pub fn counters(&self) -> Counters {
        let c = &self.inner.counters;
        Counters {
            submitted: c.submitted.load(Ordering::Relaxed),
            completed_now: c.completed_now.load(Ordering::Relaxed),
            completed_later: c.completed_later.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            enter_calls: c.enter_calls.load(Ordering::Relaxed),
            direct_calls: c.direct_calls.load(Ordering::Relaxed),
        }
    }

    /// Operations whose slots are still held (in flight, or complete with a
    /// result not yet taken). Zero once everything finished and was taken.
    pub fn ops_in_table(&self) -> usize {
        self.inner.lock().ops.len()
    }

    /// Reaps and dispatches finished work without blocking.
    pub fn poll(&self) {
        self.inner.poll_once();
    }

    /// Drives the engine for up to `timeout`: blocks until some work finished
    /// or the time passed.
    pub fn drive(&self, timeout: Option<Duration>) {
        let ctx = current_ctx();
        self.inner.drive_once(&ctx, timeout, &mut || false);
    }
}

pub(crate) struct Inner {
    pub(crate) kind: EngineKind,
    reason: String,
    pub(crate) backend: Backend,
    state: Mutex<State>,
    counters: AtomicCounters,
    /// When completions were last reaped (µs since [`clock_us`]'s origin).
    last_reap: AtomicU64,
}

/// Waits that find work without entering the kernel still reap completions
/// at least this often, so operations completing in the kernel are not
/// starved by ones that complete at once.
const REAP_INTERVAL_US: u64 = 200;

/// `OVERLAPPED_WAIT_SLICE_MS`: the longest one blocking `io_uring_enter`
/// may last (unset: no limit; the wait simply repeats). For tools that run
/// one thread at a time and hold their lock across a blocking
/// `io_uring_enter`, such as valgrind: without a slice, a thread waiting in
/// the ring would stop every other thread of the program.
fn wait_slice() -> Option<Duration> {
    static SLICE: OnceLock<Option<Duration>> = OnceLock::new();
    *SLICE.get_or_init(|| {
        std::env::var("OVERLAPPED_WAIT_SLICE_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&ms| ms > 0)
            .map(Duration::from_millis)
    })
}

fn cap_wait(timeout: Option<Duration>) -> Option<Duration> {
    match (timeout, wait_slice()) {
        (Some(t), Some(s)) => Some(t.min(s)),
        (None, s) => s,
        (t, None) => t,
    }
}

fn clock_us() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_micros() as u64
}

/// True when [`REAP_INTERVAL_US`] has passed since the time in `last`; the
/// one caller that sees it first also moves `last` to now.
pub(crate) fn interval_passed(last: &AtomicU64) -> bool {
    let prev = last.load(Ordering::Relaxed);
    let now = clock_us();
    now.saturating_sub(prev) >= REAP_INTERVAL_US
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

struct State {
    ops: Slab<Slot>,
    socks: Slab<SockEntry>,
    next_gen: u32,
    driving: bool,
    followers: Vec<Arc<ThreadCtx>>,
    ring: RingAccess,
    backlog: VecDeque<Cqe>,
    ready: Vec<(u64, [bool; 3])>,
}

pub(crate) struct SockEntry {
    seq: u32,
    fd: Option<OwnedFd>,
    pub(crate) stream: bool,
    connected: bool,
    pub(crate) bound: bool,
    closed: bool,
    queues: [VecDeque<usize>; 3],
    /// Ops of this socket survive the exit of the thread that started them
    /// (sockets associated with a completion port).
    pub(crate) survives_thread: bool,
    port: Option<(Arc<crate::port::PortInner>, usize)>,
    skip_on_success: bool,
    /// Bytes a stream receive took from the kernel after its handle was
    /// dropped: served to the next receives first, so no byte is lost.
    leftover: Vec<u8>,
    /// Posting order of the socket's read-direction ops, and the highest
    /// order that took bytes (a dropped receive's bytes are kept only when no
    /// later receive has taken newer bytes).
    reads_posted: u64,
    reads_done: u64,
    /// io_uring: try the next stream receive at once. Cleared when a try
    /// found no data (the next receive goes straight to the kernel, which
    /// polls first: no wasted system call); set again when a completion
    /// reports more bytes waiting in the socket.
    recv_direct: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting behind other ops of its direction.
    Queued,
    /// Head of its queue: parked in the kernel (io_uring) or waiting for
    /// readiness (poll).
    Armed,
    /// Finished; the outcome waits for the handle.
    Done,
}

pub(crate) enum SlotNotify {
    None,
    Event(Event),
    Routine {
        ctx: Arc<ThreadCtx>,
        id: usize,
    },
    /// Resolved at start from the socket's association.
    Port {
        tag: u64,
        conv: (std::any::TypeId, crate::port::Convert),
    },
    PortBound {
        port: Arc<crate::port::PortInner>,
        key: usize,
        tag: u64,
        conv: (std::any::TypeId, crate::port::Convert),
        skip: bool,
    },
}

struct Slot {
    seq: u32,
    sock: usize,
    kind: OpKind,
    dir: Dir,
    stream: bool,
    bufs: Option<Box<dyn ErasedBufs>>,
    done: usize,
    phase: Phase,
    kmem: Option<Box<KernelMem>>,
    cancel: bool,
    resubmits: u32,
    immediate: bool,
    outcome: Option<Outcome>,
    notify: SlotNotify,
    handle: bool,
    waiter: Option<Arc<ThreadCtx>>,
    waker: Option<std::task::Waker>,
    issuer: ThreadId,
    /// Posting order among the socket's read-direction ops.
    order: u64,
}

/// A finished operation's outcome with its buffers, on its way to the
/// handle or the routine that consumes it.
pub struct RawDone {
    pub(crate) outcome: Outcome,
    pub(crate) bufs: Option<Box<dyn ErasedBufs>>,
    pub(crate) engine: Engine,
}

impl fmt::Debug for RawDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawDone")
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

/// Identifies a socket inside its engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockId {
    pub(crate) key: usize,
    pub(crate) seq: u32,
}

fn ud(key: usize, seq: u32) -> u64 {
    (key as u64 & 0xFFFF_FFFF) | ((seq as u64 & 0x7FFF_FFFF) << 32)
}

fn bad_handle() -> io::Error {
    io::Error::from_raw_os_error(libc::EBADF)
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn new_gen(st: &mut State) -> u32 {
        let g = st.next_gen;
        st.next_gen = if g >= 0x7FFF_FFFF { 1 } else { g + 1 };
        g
    }

    // ----- sockets -------------------------------------------------------

    pub(crate) fn add_socket(
        &self,
        fd: OwnedFd,
        stream: bool,
        connected: bool,
        bound: bool,
    ) -> io::Result<SockId> {
        let mut st = self.lock();
        let seq = Self::new_gen(&mut st);
        let entry = st.socks.vacant_entry();
        let key = entry.key();
        if let Backend::Poll(p) = &self.backend {
            p.register(fd.as_fd(), ud(key, seq))?;
        }
        entry.insert(SockEntry {
            seq,
            fd: Some(fd),
            stream,
            connected,
            bound,
            closed: false,
            queues: Default::default(),
            survives_thread: false,
            port: None,
            skip_on_success: false,
            leftover: Vec::new(),
            reads_posted: 0,
            reads_done: 0,
            recv_direct: true,
        });
        Ok(SockId { key, seq })
    }

    fn sock_mut(st: &mut State, id: SockId) -> io::Result<&mut SockEntry> {
        match st.socks.get_mut(id.key) {
            Some(s) if s.seq == id.seq && !s.closed => Ok(s),
            _ => Err(bad_handle()),
        }
    }

    /// Runs `f` with the socket's fd and entry, under the state lock.
    pub(crate) fn with_sock<R>(
        &self,
        id: SockId,
        f: impl FnOnce(std::os::fd::BorrowedFd<'_>, &mut SockEntry) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut st = self.lock();
        let s = Self::sock_mut(&mut st, id)?;
        let fd = s.fd.take().ok_or_else(bad_handle)?;
        let r = f(fd.as_fd(), s);
        s.fd = Some(fd);
        r
    }

    /// Closes a socket: every pending op completes *aborted* (on io_uring
    /// the ops are cancelled in the kernel first — `close(2)` alone ends
    /// nothing), then the descriptor is closed.
    pub(crate) fn close_socket(self: &Arc<Self>, id: SockId) -> io::Result<()> {
        let mut st = self.lock();
        let s = Self::sock_mut(&mut st, id)?;
        s.closed = true;
        let keys: Vec<usize> = s.queues.iter().flat_map(|q| q.iter().copied()).collect();
        let fd = s.fd.take();
        for k in keys {
            let g = st.ops[k].seq;
            let _ = self.cancel_locked(&mut st, k, g);
        }
        if let (Backend::Poll(p), Some(fd)) = (&self.backend, fd.as_ref()) {
            p.deregister(fd.as_fd());
        }
        // Every SQE naming this descriptor (deferred starts, the cancels)
        // reaches the kernel before the descriptor is closed: once closed,
        // its number may be reused by another socket.
        self.flush(&mut st);
        drop(fd);
        Self::maybe_remove_sock(&mut st, id.key);
        drop(st);
        Ok(())
    }

    /// Associates a socket with a port (at most one per socket).
    pub(crate) fn associate(
        &self,
        id: SockId,
        port: &Arc<crate::port::PortInner>,
        key: usize,
    ) -> io::Result<()> {
        let mut st = self.lock();
        let s = Self::sock_mut(&mut st, id)?;
        if s.port.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket is already associated with a completion port",
            ));
        }
        s.port = Some((port.clone(), key));
        s.survives_thread = true;
        Ok(())
    }

    /// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` (one-way).
    pub(crate) fn set_skip_on_success(&self, id: SockId) -> io::Result<()> {
        let mut st = self.lock();
        Self::sock_mut(&mut st, id)?.skip_on_success = true;
        Ok(())
    }

    /// `CancelIoEx(socket, NULL)`: cancels every pending op of the socket.
    /// Returns how many were asked to cancel.
    pub(crate) fn cancel_socket(self: &Arc<Self>, id: SockId) -> io::Result<usize> {
        let mut st = self.lock();
        let s = Self::sock_mut(&mut st, id)?;
        let keys: Vec<usize> = s.queues.iter().flat_map(|q| q.iter().copied()).collect();
        let mut n = 0;
        for k in keys {
            let g = st.ops[k].seq;
            if self.cancel_locked(&mut st, k, g).is_ok() {
                n += 1;
            }
        }
        self.flush(&mut st);
        Ok(n)
    }

    fn maybe_remove_sock(st: &mut State, key: usize) {
        if let Some(s) = st.socks.get(key) {
            if s.closed && s.queues.iter().all(VecDeque::is_empty) {
                st.socks.remove(key);
            }
        }
    }

    // ----- starting ops ------------------------------------------------------

    /// Starts an operation. `Ok((key, seq, Some(bytes), handle))` when it completed
    /// now, `Ok((key, seq, None, handle))` when pending; `Err` when it could not
    /// start (no completion will follow; the buffers come back).
    #[allow(clippy::type_complexity)]
    pub(crate) fn start(
        self: &Arc<Inner>,
        sock: SockId,
        mut kind: OpKind,
        mut bufs: Option<Box<dyn ErasedBufs>>,
        mut notify: SlotNotify,
        mut handle: bool,
    ) -> Result<(usize, u32, Option<usize>, bool), (io::Error, Option<Box<dyn ErasedBufs>>)> {
        note_engine(self);
        if let SlotNotify::Event(ev) = &notify {
            ev.reset();
            ev.bind_engine(self);
        }
        let mut st = self.lock();
        let s = match Self::sock_mut(&mut st, sock) {
            Ok(s) => s,
            Err(e) => return Err((e, bufs)),
        };
        let Some(fd) = s.fd.as_ref() else {
            return Err((bad_handle(), bufs));
        };
        let stream = s.stream;
        if let SlotNotify::Port { tag, conv } = notify {
            let Some((port, key)) = s.port.clone() else {
                return Err((
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "an operation with a port notify on a socket not associated with a port",
                    ),
                    bufs,
                ));
            };
            notify = SlotNotify::PortBound {
                port,
                key,
                tag,
                conv,
                skip: s.skip_on_success,
            };
        }
        // Cheap checks that keep the start result three-way (io_uring would
        // report these as completions).
        match &kind {
            OpKind::Send { to: None, .. } if stream && !s.connected => {
                match rustix::net::getpeername(fd) {
                    Ok(_) => s.connected = true,
                    Err(e) => return Err((sys::to_io(e), bufs)),
                }
            }
            OpKind::Recv { .. } if !stream && !s.bound => {
                let bound = rustix::net::getsockname(fd)
                    .ok()
                    .and_then(|a| std::net::SocketAddr::try_from(a).ok())
                    .is_some_and(|a| a.port() != 0);
                if !bound {
                    return Err((
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            "receive on a datagram socket that is not bound (bind it, or send first)",
                        ),
                        bufs,
                    ));
                }
                s.bound = true;
            }
            _ => {}
        }
        let dir = kind.dir();
        let order = if dir == Dir::Read {
            s.reads_posted += 1;
            s.reads_posted
        } else {
            0
        };
        let queue_empty = s.queues[dir as usize].is_empty();
        let mut done = 0usize;
        let mut now = None;
        if queue_empty && !s.leftover.is_empty() && serves_from_leftover(&kind, stream) {
            if let Some(b) = bufs.as_deref_mut() {
                now = Some(fill_from_leftover(&mut s.leftover, b.as_bufs(), &kind));
            }
        } else if queue_empty && !self.skip_try(s, &kind) {
            let fd = fd.as_fd();
            bump(&self.counters.direct_calls);
            let plain_recv = self.adaptive_recv(s.stream, &kind);
            match sys::attempt(
                fd,
                &mut kind,
                bufs.as_deref_mut().map(|b| b.as_bufs()),
                &mut done,
                stream,
            ) {
                Attempt::Done(out) if out.error.is_some() && out.bytes == 0 => {
                    let e = out.error.unwrap_or_else(bad_handle);
                    return Err((e, bufs));
                }
                Attempt::Done(out) => now = Some(out),
                Attempt::WouldBlock if plain_recv => s.recv_direct = false,
                Attempt::WouldBlock => {}
            }
        }
        if let Some(out) = &now {
            if out.error.is_none() {
                match &kind {
                    OpKind::Send { to: Some(_), .. } => s.bound = true,
                    OpKind::Connect { .. } => s.connected = true,
                    _ => {}
                }
            }
        }
        let seq = Self::new_gen(&mut st);
        let key = st.ops.insert(Slot {
            seq,
            sock: sock.key,
            kind,
            dir,
            stream,
            bufs,
            done,
            phase: Phase::Queued,
            kmem: None,
            cancel: false,
            resubmits: 0,
            immediate: now.is_some(),
            outcome: None,
            notify,
            handle,
            waiter: None,
            waker: None,
            issuer: thread::current().id(),
            order,
        });
        bump(&self.counters.submitted);
        if let (Some(_), SlotNotify::PortBound { skip: true, .. }) = (&now, &st.ops[key].notify) {
            // Skip-on-success: no packet; the handle takes the result inline.
            handle = true;
            st.ops[key].handle = true;
        }
        match now {
            Some(out) => {
                bump(&self.counters.completed_now);
                if out.error.is_none() && out.bytes > 0 {
                    let r = &mut st.socks[sock.key].reads_done;
                    *r = (*r).max(order);
                }
                let bytes = out.bytes;
                st.ops[key].phase = Phase::Done;
                self.deliver(&mut st, key, out);
                Ok((key, seq, Some(bytes), handle))
            }
            None => {
                st.socks[sock.key].queues[dir as usize].push_back(key);
                if queue_empty {
                    st.ops[key].phase = Phase::Armed;
                    if let Err(e) = self.park(&mut st, key) {
                        // Nothing reached the kernel: undo and fail the start.
                        st.socks[sock.key].queues[dir as usize].retain(|&k| k != key);
                        let slot = st.ops.remove(key);
                        self.counters.submitted.fetch_sub(1, Ordering::Relaxed);
                        return Err((e, slot.bufs));
                    }
                }
                // Deferred starts wait for this thread's next kernel entry,
                // unless another thread is blocked in the kernel for this
                // engine: that thread cannot submit them.
                if !submits_deferred() || st.driving {
                    self.flush(&mut st);
                }
                Ok((key, seq, None, handle))
            }
        }
    }

    /// Whether a stream receive is one whose try-now adapts (io_uring only:
    /// the poll engine learns readiness by trying).
    fn adaptive_recv(&self, stream: bool, kind: &OpKind) -> bool {
        stream
            && matches!(self.backend, Backend::Uring(_))
            && matches!(kind, OpKind::Recv { flags, .. } if !flags.contains(crate::op::MsgFlags::OOB) && !flags.contains(crate::op::MsgFlags::PEEK))
    }

    /// Skip the try-now of this start: a receive on a socket whose last try
    /// found nothing.
    fn skip_try(&self, s: &SockEntry, kind: &OpKind) -> bool {
        !s.recv_direct && self.adaptive_recv(s.stream, kind)
    }

    /// Parks the armed head op: an SQE on io_uring, nothing on poll (the
    /// socket is registered for readiness).
    fn park(self: &Arc<Self>, st: &mut State, key: usize) -> io::Result<()> {
        let Backend::Uring(u) = &self.backend else {
            return Ok(());
        };
        let State {
            ops,
            socks,
            ring,
            backlog,
            ..
        } = st;
        let slot = &mut ops[key];
        let fd = socks[slot.sock]
            .fd
            .as_ref()
            .map(|f| f.as_raw_fd())
            .ok_or_else(bad_handle)?;
        let poll_first = !socks[slot.sock].recv_direct;
        let bufs = slot.bufs.as_deref_mut().map(|b| b.as_bufs());
        let km = u.push_op(
            ring,
            ud(key, slot.seq),
            fd,
            &slot.kind,
            bufs,
            slot.done,
            slot.stream,
            poll_first,
            backlog,
        )?;
        slot.kmem = Some(km);
        Ok(())
    }

    /// Submits queued SQEs (io_uring); nothing to do on poll.
    fn flush(self: &Arc<Self>, st: &mut State) {
        if let Backend::Uring(u) = &self.backend {
            if u.has_unsubmitted(&mut st.ring) {
                bump(&self.counters.enter_calls);
                if let Err(e) = u.submit(&mut st.ring, &mut st.backlog) {
                    tracing::warn!(error = %e, "io_uring submit failed");
                }
            }
        }
    }

    // ----- completion ------------------------------------------------------

    /// Finishes an op: records the outcome, takes it off its queue, delivers
    /// it. Returns the socket and direction whose queue may need re-arming.
    fn finish_op(self: &Arc<Self>, st: &mut State, key: usize, out: Outcome) -> (usize, Dir, bool) {
        let slot = &mut st.ops[key];
        let (sock, dir) = (slot.sock, slot.dir);
        let was_armed = slot.phase == Phase::Armed;
        slot.phase = Phase::Done;
        slot.kmem = None;
        if !slot.immediate {
            bump(&self.counters.completed_later);
        }
        if out.error.as_ref().is_some_and(crate::op::is_aborted) {
            bump(&self.counters.cancelled);
        }
        let order = if out.error.is_none() && out.bytes > 0 {
            st.ops[key].order
        } else {
            0
        };
        if let Some(s) = st.socks.get_mut(sock) {
            s.reads_done = s.reads_done.max(order);
            s.queues[dir as usize].retain(|&k| k != key);
            if out.error.is_none() {
                if let OpKind::Connect { .. } = st.ops[key].kind {
                    s.connected = true;
                }
            }
        }
        // A receive that ends with an error or aborted hands its buffers
        // back truncated to the bytes that landed in them (none).
        if out.error.is_some() {
            let slot = &mut st.ops[key];
            if let (OpKind::Recv { .. }, Some(b)) = (&slot.kind, slot.bufs.as_deref_mut()) {
                b.as_bufs().set_received(out.bytes);
            }
        }
        self.deliver(st, key, out);
        (sock, dir, was_armed)
    }

    /// Hands a finished op's outcome to its consumer.
    fn deliver(self: &Arc<Self>, st: &mut State, key: usize, out: Outcome) {
        let slot = &mut st.ops[key];
        match &mut slot.notify {
            SlotNotify::Routine { ctx, id } => {
                let (ctx, id) = (ctx.clone(), *id);
                let slot = st.ops.remove(key);
                let raw = RawDone {
                    outcome: out,
                    bufs: slot.bufs,
                    engine: Engine {
                        inner: self.clone(),
                    },
                };
                ctx.queue_routine(id, raw);
            }
            SlotNotify::PortBound {
                port,
                key: pkey,
                tag,
                conv,
                ..
            } if !slot.handle => {
                let (port, pkey, tag, conv) = (port.clone(), *pkey, *tag, *conv);
                let slot = st.ops.remove(key);
                let raw = RawDone {
                    outcome: out,
                    bufs: slot.bufs,
                    engine: Engine {
                        inner: self.clone(),
                    },
                };
                port.push_op(pkey, tag, conv, raw);
            }
            notify => {
                if let SlotNotify::Event(ev) = notify {
                    ev.set();
                }
                if let Some(w) = slot.waiter.take() {
                    w.wake();
                }
                if let Some(w) = slot.waker.take() {
                    w.wake();
                }
                if slot.handle {
                    slot.outcome = Some(out);
                } else {
                    slot.outcome = Some(out);
                    Self::release_unclaimed(st, key);
                }
            }
        }
    }

    /// Arms the next ops of a queue after its head finished: on io_uring the
    /// new head is parked; on poll it is tried at once (and the next, until
    /// one would block).
    fn arm_next(self: &Arc<Self>, st: &mut State, sock: usize, dir: Dir) {
        loop {
            let Some(s) = st.socks.get(sock) else { return };
            let Some(&head) = s.queues[dir as usize].front() else {
                Self::maybe_remove_sock(st, sock);
                return;
            };
            if st.ops[head].phase != Phase::Queued {
                return;
            }
            if !s.leftover.is_empty()
                && serves_from_leftover(&st.ops[head].kind, st.ops[head].stream)
            {
                let State { ops, socks, .. } = &mut *st;
                let slot = &mut ops[head];
                if let Some(b) = slot.bufs.as_deref_mut() {
                    let out =
                        fill_from_leftover(&mut socks[sock].leftover, b.as_bufs(), &slot.kind);
                    self.finish_op(st, head, out);
                    continue;
                }
            }
            st.ops[head].phase = Phase::Armed;
            match &self.backend {
                Backend::Uring(_) => {
                    if let Err(e) = self.park(st, head) {
                        self.finish_op(st, head, Outcome::err(e, st.ops[head].done));
                        continue;
                    }
                    return;
                }
                Backend::Poll(_) => {
                    if !self.try_head(st, sock, dir) {
                        return;
                    }
                }
            }
        }
    }

    /// Poll engine: tries the armed head of a queue. True when it finished.
    fn try_head(self: &Arc<Self>, st: &mut State, sock: usize, dir: Dir) -> bool {
        let Some(s) = st.socks.get(sock) else {
            return false;
        };
        let Some(&head) = s.queues[dir as usize].front() else {
            return false;
        };
        let Some(fd) = s.fd.as_ref() else {
            return false;
        };
        let fd = fd.as_fd();
        let slot = &mut st.ops[head];
        if slot.phase != Phase::Armed {
            return false;
        }
        bump(&self.counters.direct_calls);
        let a = sys::attempt(
            fd,
            &mut slot.kind,
            slot.bufs.as_deref_mut().map(|b| b.as_bufs()),
            &mut slot.done,
            slot.stream,
        );
        match a {
            Attempt::Done(out) => {
                self.finish_op(st, head, out);
                true
            }
            Attempt::WouldBlock => false,
        }
    }

    /// Handles one CQE.
    fn on_cqe(self: &Arc<Self>, st: &mut State, (user_data, res, flags): Cqe) {
        let Backend::Uring(u) = &self.backend else {
            return;
        };
        if user_data == WAKE_TOKEN {
            let State { ring, backlog, .. } = st;
            if let Err(e) = u.on_wake(ring, flags, backlog) {
                tracing::warn!(error = %e, "re-arming the wake-up poll failed");
            }
            return;
        }
        if user_data == CANCEL_TOKEN {
            return;
        }
        let key = (user_data & 0xFFFF_FFFF) as usize;
        let seq = (user_data >> 32) as u32;
        let Some(slot) = st.ops.get_mut(key) else {
            return;
        };
        if slot.seq != seq || slot.phase != Phase::Armed {
            return;
        }
        if res == -libc::ECANCELED {
            if slot.cancel || slot.resubmits > 1000 {
                let done = slot.done;
                let (sock, dir, _) = self.finish_op(st, key, Outcome::aborted(done));
                self.arm_next(st, sock, dir);
            } else {
                // The kernel cancelled it because the thread that submitted
                // it exited; the op itself is still wanted.
                slot.resubmits += 1;
                if let Err(e) = self.park(st, key) {
                    let done = st.ops[key].done;
                    let (sock, dir, _) = self.finish_op(st, key, Outcome::err(e, done));
                    self.arm_next(st, sock, dir);
                }
            }
            return;
        }
        let Some(km) = slot.kmem.take() else { return };
        let fin = sys::uring::finish(
            &km,
            res,
            &slot.kind,
            slot.bufs.as_deref_mut().map(|b| b.as_bufs()),
            &mut slot.done,
            slot.stream,
        );
        drop(km);
        if self.adaptive_recv(slot.stream, &slot.kind) {
            // Try the next receive at once only if bytes are left (or the
            // stream ended or failed: the try sees that at once too).
            st.socks[slot.sock].recv_direct = res <= 0 || sys::uring::sock_nonempty(flags);
        }
        match fin {
            Finish::Done(out) => {
                let (sock, dir, _) = self.finish_op(st, key, out);
                self.arm_next(st, sock, dir);
            }
            Finish::Resubmit if slot.cancel => {
                // A cancelled stream send that had moved part of its bytes:
                // it ends aborted, reporting the bytes taken.
                let done = slot.done;
                let (sock, dir, _) = self.finish_op(st, key, Outcome::aborted(done));
                self.arm_next(st, sock, dir);
            }
            Finish::Resubmit => {
                if let Err(e) = self.park(st, key) {
                    let done = st.ops[key].done;
                    let (sock, dir, _) = self.finish_op(st, key, Outcome::err(e, done));
                    self.arm_next(st, sock, dir);
                }
            }
            Finish::Attempt => {
                let sock = slot.sock;
                let dir = slot.dir;
                let Some(fd) = st.socks.get(sock).and_then(|s| s.fd.as_ref()) else {
                    let (sock, dir, _) = self.finish_op(st, key, Outcome::aborted(0));
                    self.arm_next(st, sock, dir);
                    return;
                };
                let fd = fd.as_fd();
                let slot = &mut st.ops[key];
                let a = sys::attempt(
                    fd,
                    &mut slot.kind,
                    slot.bufs.as_deref_mut().map(|b| b.as_bufs()),
                    &mut slot.done,
                    slot.stream,
                );
                match a {
                    Attempt::Done(out) => {
                        self.finish_op(st, key, out);
                        self.arm_next(st, sock, dir);
                    }
                    Attempt::WouldBlock => {
                        if let Err(e) = self.park(st, key) {
                            self.finish_op(st, key, Outcome::err(e, 0));
                            self.arm_next(st, sock, dir);
                        }
                    }
                }
            }
        }
    }

    /// Reaps everything available and dispatches it, without blocking.
    /// With `submit`, SQEs pushed meanwhile (deferred starts, re-armed
    /// queues) are submitted too; without, they wait for the next kernel
    /// entry.
    fn reap_dispatch(self: &Arc<Self>, st: &mut State, nonblocking_poll: bool, submit: bool) {
        self.last_reap.store(clock_us(), Ordering::Relaxed);
        match &self.backend {
            Backend::Uring(u) => loop {
                if submit {
                    self.flush(st);
                }
                {
                    let State { ring, backlog, .. } = &mut *st;
                    u.reap(ring, backlog);
                }
                if st.backlog.is_empty() {
                    break;
                }
                while let Some(c) = st.backlog.pop_front() {
                    self.on_cqe(st, c);
                }
            },
            Backend::Poll(p) => {
                if nonblocking_poll {
                    bump(&self.counters.enter_calls);
                    let mut ready = std::mem::take(&mut st.ready);
                    if let Err(e) = p.wait(Some(Duration::ZERO), &mut ready) {
                        tracing::warn!(error = %e, "epoll_wait failed");
                    }
                    st.ready = ready;
                }
                let ready = std::mem::take(&mut st.ready);
                for &(token, dirs) in &ready {
                    let key = (token & 0xFFFF_FFFF) as usize;
                    let seq = (token >> 32) as u32;
                    if st.socks.get(key).is_none_or(|s| s.seq != seq) {
                        continue;
                    }
                    for (d, dir) in [Dir::Read, Dir::Write, Dir::Urgent].into_iter().enumerate() {
                        if dirs[d] {
                            while self.try_head(st, key, dir) {
                                self.arm_next(st, key, dir);
                            }
                        }
                    }
                }
                let mut ready = ready;
                ready.clear();
                st.ready = ready;
            }
        }
    }

    /// Reaps (and submits) without blocking when the last reap is older than
    /// [`REAP_INTERVAL_US`].
    pub(crate) fn reap_if_due(self: &Arc<Self>) {
        let last = self.last_reap.load(Ordering::Relaxed);
        if clock_us().saturating_sub(last) >= REAP_INTERVAL_US {
            let mut st = self.lock();
            self.reap_dispatch(&mut st, true, true);
        }
    }

    /// Reaps and dispatches once without blocking; submits unless this
    /// thread's submissions are deferred.
    pub(crate) fn poll_once(self: &Arc<Self>) {
        let mut st = self.lock();
        self.reap_dispatch(&mut st, true, !submits_deferred());
    }

    /// One round of "whoever waits, drives": become the driver and block in
    /// the kernel for up to `timeout` (unless `ready` already holds), or, if
    /// another thread drives, park until woken.
    pub(crate) fn drive_once(
        self: &Arc<Inner>,
        ctx: &Arc<ThreadCtx>,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut() -> bool,
    ) {
        let mut st = self.lock();
        if st.driving {
            if !st.followers.iter().any(|f| Arc::ptr_eq(f, ctx)) {
                st.followers.push(ctx.clone());
            }
            // Deferred SQEs must reach the kernel before this thread sleeps.
            self.flush(&mut st);
            drop(st);
            match timeout {
                Some(t) => thread::park_timeout(t),
                None => thread::park(),
            }
            return;
        }
        st.driving = true;
        // Unsubmitted SQEs go in with the wait below (one kernel entry for
        // both), or with the reap after it.
        self.reap_dispatch(&mut st, true, false);
        drop(st);
        set_driving(ctx, Some(self.clone()));
        if !ready() && timeout != Some(Duration::ZERO) {
            bump(&self.counters.enter_calls);
            match &self.backend {
                Backend::Uring(u) => {
                    if let Err(e) = u.wait(cap_wait(timeout)) {
                        tracing::warn!(error = %e, "io_uring wait failed");
                    }
                    if wait_slice().is_some() {
                        // Such a tool hands its lock to another thread only
                        // at a yield or after a long run of this thread's
                        // code: waits in a loop would keep it (valgrind ran
                        // a 1 s test for over 40 minutes).
                        std::thread::yield_now();
                    }
                }
                Backend::Poll(p) => {
                    let mut ready_list = Vec::new();
                    if let Err(e) = p.wait(timeout, &mut ready_list) {
                        tracing::warn!(error = %e, "epoll_wait failed");
                    }
                    let mut st = self.lock();
                    st.ready.extend(ready_list);
                }
            }
        }
        set_driving(ctx, None);
        let mut st = self.lock();
        self.reap_dispatch(&mut st, false, true);
        st.driving = false;
        let followers = std::mem::take(&mut st.followers);
        drop(st);
        for f in followers {
            f.thread.unpark();
        }
    }

    // ----- handle side ------------------------------------------------------

    pub(crate) fn is_done(self: &Arc<Self>, key: usize, seq: u32, reap: bool) -> bool {
        let mut st = self.lock();
        if reap {
            self.reap_dispatch(&mut st, true, !submits_deferred());
        }
        // A slot that is gone belonged to a routine or port operation whose
        // completion was delivered.
        match st.ops.get(key) {
            Some(s) if s.seq == seq => s.phase == Phase::Done,
            _ => true,
        }
    }

    /// Takes a finished op's outcome, waiting up to `timeout` (`None`: no
    /// limit). `None` when still in flight.
    pub(crate) fn take_result(
        self: &Arc<Inner>,
        key: usize,
        seq: u32,
        timeout: Option<Duration>,
    ) -> Option<RawDone> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let ctx = current_ctx();
        let engines = [self.clone()];
        let mut check = || {
            let mut st = self.lock();
            match st.ops.get_mut(key) {
                Some(s) if s.seq == seq && s.phase == Phase::Done => true,
                Some(s) if s.seq == seq => {
                    s.waiter = Some(ctx.clone());
                    false
                }
                _ => true,
            }
        };
        if timeout == Some(Duration::ZERO) {
            self.poll_once();
        }
        if !check()
            && (timeout == Some(Duration::ZERO) || !wait_until(&engines, deadline, &mut check))
        {
            return None;
        }
        let mut st = self.lock();
        match st.ops.get(key) {
            Some(s) if s.seq == seq && s.phase == Phase::Done => {
                let slot = st.ops.remove(key);
                Some(RawDone {
                    outcome: slot.outcome.unwrap_or_else(|| Outcome::aborted(0)),
                    bufs: slot.bufs,
                    engine: Engine {
                        inner: self.clone(),
                    },
                })
            }
            _ => None,
        }
    }

    /// The future side: the outcome if done, else remember the waker.
    pub(crate) fn poll_result(
        self: &Arc<Self>,
        key: usize,
        seq: u32,
        waker: &std::task::Waker,
    ) -> Option<RawDone> {
        let mut st = self.lock();
        match st.ops.get_mut(key) {
            Some(s) if s.seq == seq && s.phase == Phase::Done => {
                let slot = st.ops.remove(key);
                Some(RawDone {
                    outcome: slot.outcome.unwrap_or_else(|| Outcome::aborted(0)),
                    bufs: slot.bufs,
                    engine: Engine {
                        inner: self.clone(),
                    },
                })
            }
            Some(s) if s.seq == seq => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    s.waker = Some(waker.clone());
                }
                None
            }
            _ => Some(RawDone {
                outcome: Outcome::aborted(0),
                bufs: None,
                engine: Engine {
                    inner: self.clone(),
                },
            }),
        }
    }

    pub(crate) fn cancel_op(self: &Arc<Self>, key: usize, seq: u32) -> io::Result<()> {
        let mut st = self.lock();
        let r = self.cancel_locked(&mut st, key, seq);
        self.flush(&mut st);
        r
    }

    fn cancel_locked(self: &Arc<Self>, st: &mut State, key: usize, seq: u32) -> io::Result<()> {
        let not_found = || {
            io::Error::new(
                io::ErrorKind::NotFound,
                "the operation is not in flight (already complete)",
            )
        };
        let Some(slot) = st.ops.get_mut(key) else {
            return Err(not_found());
        };
        if slot.seq != seq || slot.phase == Phase::Done {
            return Err(not_found());
        }
        match (slot.phase, &self.backend) {
            (Phase::Armed, Backend::Uring(u)) => {
                if !slot.cancel {
                    slot.cancel = true;
                    let State { ring, backlog, .. } = st;
                    u.push_cancel(ring, ud(key, seq), backlog)?;
                }
                Ok(())
            }
            _ => {
                slot.cancel = true;
                let done = slot.done;
                let (sock, dir, was_armed) = self.finish_op(st, key, Outcome::aborted(done));
                if was_armed {
                    self.arm_next(st, sock, dir);
                }
                Ok(())
            }
        }
    }

    /// Frees the slot of a finished op nobody will take. Bytes a stream
    /// receive took from the kernel are kept for the socket's next receive.
    fn release_unclaimed(st: &mut State, key: usize) {
        let slot = st.ops.remove(key);
        let Some(out) = slot.outcome else { return };
        let keep = out.error.is_none()
            && out.bytes > 0
            && serves_from_leftover(&slot.kind, slot.stream)
            && !matches!(slot.kind, OpKind::Recv { flags, .. } if flags.contains(crate::op::MsgFlags::PEEK));
        let Some(sock) = st.socks.get_mut(slot.sock) else {
            return;
        };
        // Keeping the bytes must not reorder the stream: no later receive may
        // have completed, nor be parked where newer bytes would reach it
        // before these.
        let later_armed = sock.queues[Dir::Read as usize]
            .iter()
            .any(|k| st.ops.get(*k).is_some_and(|o| o.phase != Phase::Queued));
        if let (true, Some(mut b)) = (
            keep && sock.reads_done == slot.order && !later_armed,
            slot.bufs,
        ) {
            // These bytes precede any still kept: they were taken first.
            let mut kept: Vec<u8> = Vec::with_capacity(out.bytes + sock.leftover.len());
            for piece in b.as_bufs().io_slices() {
                kept.extend_from_slice(&piece);
            }
            kept.append(&mut sock.leftover);
            sock.leftover = kept;
        }
    }

    pub(crate) fn drop_handle(self: &Arc<Self>, key: usize, seq: u32) {
        let mut st = self.lock();
        match st.ops.get_mut(key) {
            Some(s) if s.seq == seq => {
                s.handle = false;
                if s.phase == Phase::Done {
                    Self::release_unclaimed(&mut st, key);
                } else {
                    let _ = self.cancel_locked(&mut st, key, seq);
                    self.flush(&mut st);
                }
            }
            _ => {}
        }
    }

    /// The model's thread-exit rule: ops the thread started are aborted,
    /// except those on sockets that survive their thread (port sockets).
    fn abort_thread(self: &Arc<Self>, tid: ThreadId) {
        let mut st = self.lock();
        let keys: Vec<(usize, u32)> = st
            .ops
            .iter()
            .filter(|(_, s)| {
                s.issuer == tid
                    && s.phase != Phase::Done
                    && !st.socks.get(s.sock).is_some_and(|x| x.survives_thread)
            })
            .map(|(k, s)| (k, s.seq))
            .collect();
        for (k, g) in keys {
            let _ = self.cancel_locked(&mut st, k, g);
        }
        self.flush(&mut st);
    }

    /// Submits work pushed while routines ran.
    pub(crate) fn flush_now(self: &Arc<Self>) {
        let mut st = self.lock();
        self.flush(&mut st);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // On io_uring, memory of ops still parked in the kernel must outlive
        // the kernel's use of it: cancel them and collect their CQEs first.
        let Backend::Uring(u) = &self.backend else {
            return;
        };
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let armed: Vec<u64> = st
            .ops
            .iter()
            .filter(|(_, s)| s.kmem.is_some())
            .map(|(k, s)| ud(k, s.seq))
            .collect();
        for t in &armed {
            let _ = u.push_cancel(&mut st.ring, *t, &mut st.backlog);
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let _ = u.submit(&mut st.ring, &mut st.backlog);
            u.reap(&mut st.ring, &mut st.backlog);
            while let Some((user_data, _, _)) = st.backlog.pop_front() {
                let key = (user_data & 0xFFFF_FFFF) as usize;
                if let Some(s) = st.ops.get_mut(key) {
                    if ud(key, s.seq) == user_data {
                        s.kmem = None;
                    }
                }
            }
            if st.ops.iter().all(|(_, s)| s.kmem.is_none()) || Instant::now() > deadline {
                break;
            }
            let _ = u.wait(Some(Duration::from_millis(10)));
        }
        if st.ops.iter().any(|(_, s)| s.kmem.is_some()) {
            // The kernel still holds some memory: leak it rather than free it.
            std::mem::forget(std::mem::take(&mut st.ops));
        }
    }
}

/// Stream receives of the normal channel are served from a socket's
/// leftover bytes.
fn serves_from_leftover(kind: &OpKind, stream: bool) -> bool {
    stream
        && matches!(kind, OpKind::Recv { flags, .. } if !flags.contains(crate::op::MsgFlags::OOB))
}

/// Completes a receive from leftover bytes (consuming them unless `PEEK`).
fn fill_from_leftover(
    leftover: &mut Vec<u8>,
    bufs: &mut dyn crate::buf::IoBufs,
    kind: &OpKind,
) -> Outcome {
    let peek =
        matches!(kind, OpKind::Recv { flags, .. } if flags.contains(crate::op::MsgFlags::PEEK));
    let mut n = 0;
    for slice in bufs.io_slices_mut().iter_mut() {
        let take = slice.len().min(leftover.len() - n);
        slice[..take].copy_from_slice(&leftover[n..n + take]);
        n += take;
    }
    bufs.set_received(n);
    if !peek {
        leftover.drain(..n);
    }
    Outcome::ok(n)
}

// ----- threads: contexts, routine queues, waits ----------------------------

/// Per-thread state shared with the engines: the thread's routine queue and
/// how to wake it.
pub(crate) struct ThreadCtx {
    pub(crate) thread: Thread,
    routines: Mutex<RoutineQueue<(usize, RawDone)>>,
    driving: Mutex<Option<Arc<Inner>>>,
}

impl fmt::Debug for ThreadCtx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadCtx")
            .field("thread", &self.thread.id())
            .finish()
    }
}

impl ThreadCtx {
    /// Wakes the thread: unparks it and, if it is blocked in an engine, ends
    /// that wait.
    pub(crate) fn wake(&self) {
        self.thread.unpark();
        let d = self
            .driving
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(e) = d {
            e.backend.wake();
        }
    }

    /// Queues a routine and wakes the thread; after the thread exited the
    /// completion is dropped here, with its buffers.
    fn queue_routine(&self, id: usize, raw: RawDone) {
        let queued = self
            .routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((id, raw));
        if queued.is_ok() {
            self.wake();
        }
    }

    pub(crate) fn has_routines(&self) -> bool {
        !self
            .routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    pub(crate) fn pop_routine(&self) -> Option<(usize, RawDone)> {
        self.routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
    }
}

fn set_driving(ctx: &ThreadCtx, e: Option<Arc<Inner>>) {
    *ctx.driving.lock().unwrap_or_else(|p| p.into_inner()) = e;
}

type RoutineFn = Box<dyn FnOnce(RawDone)>;

struct Local {
    ctx: Arc<ThreadCtx>,
    engines: RefCell<Vec<Weak<Inner>>>,
    routines: RefCell<Slab<RoutineFn>>,
    in_routine: Cell<bool>,
    /// Inside a batch (routines running, async tasks polled, a port worker
    /// between two `get_queued` calls): starts leave their SQEs for the next
    /// kernel entry instead of entering the kernel each.
    defer: Cell<u32>,
    /// Between a wait that returned work (a port packet, a set event, run
    /// routines) and the thread's next wait: starts are batched into that
    /// wait's kernel entry.
    after_wait: Cell<bool>,
}

impl Drop for Local {
    fn drop(&mut self) {
        let left = self
            .ctx
            .routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .close();
        drop(left);
        let tid = self.ctx.thread.id();
        for e in self.engines.borrow().iter().filter_map(Weak::upgrade) {
            e.abort_thread(tid);
            // Deferred starts of operations that outlive the thread (port
            // operations) reach the kernel now.
            e.flush_now();
        }
        self.routines.borrow_mut().clear();
    }
}

thread_local! {
    static LOCAL: Local = Local {
        ctx: Arc::new(ThreadCtx {
            thread: thread::current(),
            routines: Mutex::new(RoutineQueue::new(true)),
            driving: Mutex::new(None),
        }),
        engines: RefCell::new(Vec::new()),
        routines: RefCell::new(Slab::new()),
        in_routine: Cell::new(false),
        defer: Cell::new(0),
        after_wait: Cell::new(false),
    };
}

/// The calling thread's context (a detached one while the thread is
/// exiting).
pub(crate) fn current_ctx() -> Arc<ThreadCtx> {
    LOCAL.try_with(|l| l.ctx.clone()).unwrap_or_else(|_| {
        Arc::new(ThreadCtx {
            thread: thread::current(),
            routines: Mutex::new(RoutineQueue::new(false)),
            driving: Mutex::new(None),
        })
    })
}

fn note_engine(e: &Arc<Inner>) {
    let _ = LOCAL.try_with(|l| {
        let mut v = l.engines.borrow_mut();
        if !v.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(e))) {
            v.retain(|w| w.strong_count() > 0);
            v.push(Arc::downgrade(e));
        }
    });
}

/// The engines the calling thread has started operations on.
pub(crate) fn thread_engines() -> Vec<Arc<Inner>> {
    LOCAL
        .try_with(|l| {
            l.engines
                .borrow()
                .iter()
                .filter_map(Weak::upgrade)
                .collect()
        })
        .unwrap_or_default()
}

fn submits_deferred() -> bool {
    LOCAL
        .try_with(|l| l.in_routine.get() || l.defer.get() > 0 || l.after_wait.get())
        .unwrap_or(false)
}

/// A blocking wait (`get_queued`, `wait_for_events`, `sleep_ex`) begins: the
/// starts batched since the previous one are submitted by this wait's
/// kernel entry (or by [`wait_returned`]).
pub(crate) fn wait_entered() {
    let _ = LOCAL.try_with(|l| l.after_wait.set(false));
}

/// A blocking wait returns. With `work` (a packet, a set event, routines),
/// the starts the caller makes in response are batched until its next wait;
/// without (a timeout, an error), whatever is still unsubmitted goes now.
pub(crate) fn wait_returned(work: bool) {
    let _ = LOCAL.try_with(|l| l.after_wait.set(work));
    if !work {
        for e in thread_engines() {
            e.flush_now();
        }
    }
}

/// An alertable wait returns at once because routines are queued: the
/// engines still get reaped now and then (see [`Inner::reap_if_due`]).
pub(crate) fn reap_thread_engines_if_due() {
    for e in thread_engines() {
        e.reap_if_due();
    }
}

/// Runs `f` with submissions deferred: operations started inside it are
/// submitted together by the next kernel entry of this thread (any wait, or
/// the end of the batch).
pub(crate) fn batch<R>(f: impl FnOnce() -> R) -> R {
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            let last = LOCAL
                .try_with(|l| {
                    l.defer.set(l.defer.get().saturating_sub(1));
                    l.defer.get() == 0 && !l.after_wait.get()
                })
                .unwrap_or(true);
            if last {
                for e in thread_engines() {
                    e.flush_now();
                }
            }
        }
    }
    let _ = LOCAL.try_with(|l| l.defer.set(l.defer.get() + 1));
    let _end = End;
    f()
}

pub(crate) fn in_routine() -> bool {
    LOCAL.try_with(|l| l.in_routine.get()).unwrap_or(false)
}

/// Stores a routine on the calling thread; returns its id.
pub(crate) fn register_routine(f: RoutineFn) -> usize {
    LOCAL.with(|l| l.routines.borrow_mut().insert(f))
}

pub(crate) fn unregister_routine(id: usize) {
    let _ = LOCAL.try_with(|l| l.routines.borrow_mut().try_remove(id));
}

/// Runs the routines queued on the calling thread at entry, in completion
/// order. Returns how many ran. Inside a routine this runs nothing:
/// routines never nest.
pub(crate) fn run_routines() -> usize {
    let Ok(ctx) = LOCAL.try_with(|l| {
        if l.in_routine.get() {
            None
        } else {
            l.in_routine.set(true);
            Some(l.ctx.clone())
        }
    }) else {
        return 0;
    };
    let Some(ctx) = ctx else { return 0 };
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let batched = LOCAL
                .try_with(|l| {
                    l.in_routine.set(false);
                    l.after_wait.get()
                })
                .unwrap_or(false);
            // Inside a wait's batch the thread's next wait submits.
            if !batched {
                for e in thread_engines() {
                    e.flush_now();
                }
            }
        }
    }
    let _reset = Reset;
    // The routines queued at entry: ones queued meanwhile (operations the
    // routines started that completed at once) wait for the next alertable
    // wait, which reaps the engines first, so operations completing in the
    // kernel get their turn.
    let queued = ctx.routines.lock().unwrap_or_else(|p| p.into_inner()).len();
    let mut n = 0;
    for _ in 0..queued {
        let Some((id, raw)) = ctx.pop_routine() else {
            break;
        };
        let f = LOCAL.with(|l| l.routines.borrow_mut().try_remove(id));
        if let Some(f) = f {
            f(raw);
            n += 1;
        }
    }
    n
}

/// Drives `engines` until `ready()` or the deadline. True when ready.
pub(crate) fn wait_until(
    engines: &[Arc<Inner>],
    deadline: Option<Instant>,
    ready: &mut dyn FnMut() -> bool,
) -> bool {
    let ctx = current_ctx();
    for e in engines {
        e.reap_if_due();
    }
    loop {
        if ready() {
            return true;
        }
        let remaining = match deadline {
            Some(d) => {
                let now = Instant::now();
                if d <= now {
                    return false;
                }
                Some(d - now)
            }
            None => None,
        };
        match engines {
            [] => match remaining {
                Some(t) => thread::park_timeout(t),
                None => thread::park(),
            },
            [one] => one.drive_once(&ctx, remaining, ready),
            [first, rest @ ..] => {
                for e in rest {
                    e.poll_once();
                }
                let slice = Duration::from_millis(5);
                first.drive_once(&ctx, Some(remaining.map_or(slice, |r| r.min(slice))), ready);
            }
        }
    }
}
