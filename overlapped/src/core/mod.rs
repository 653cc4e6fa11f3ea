//! The engine-neutral core ([`Core`]): the op table, per-socket direction
//! queues, starts, completion and dispatch, and "whoever waits, drives".
//!
//! # Design notes
//!
//! * **Locks.** Each socket's state (its descriptor, direction queues and
//!   operations) sits behind the socket's own lock. A start, a completion, a
//!   cancel or a readiness retry takes that lock only (plus, to notify, the
//!   port's queue or the routine queue). The registry's shards are locked
//!   only to add, find or remove a socket (registering with epoll comes
//!   after); the ring's completion lock only to copy entries; its
//!   submission lock to copy entries and, when the submission queue is
//!   full, across the `io_uring_enter` that empties it (the one system call
//!   under a lock all threads of an engine take). The registered-buffer
//!   lock is held across `Engine::register_buffers` (it allocates, probes
//!   the kernel with a ring of its own and registers): once per engine,
//!   never on an operation's path.
//!
//!   Under a socket's lock run only that socket's own system calls (the
//!   non-blocking try at start, a readiness retry, taking an urgent byte,
//!   `getpeername`/`SO_ERROR` to tell an end of stream from a reset), its
//!   requests' pushes, and the wake of the thread a port packet or a
//!   completion routine is queued to (a futex wake, an eventfd write, or
//!   `io_uring_enter` for a thread blocked in an io_uring engine: queued
//!   there, they keep the socket's completion order). User code never runs
//!   under it: `with_fd`/`with_socket2` closures run unlocked, and an
//!   operation's event, waiting thread and async waker are told, and what
//!   nobody takes is dropped, after it is let go ([`table::Later`]). See
//!   `docs/DESIGN.md`, "Scaling across threads".
//! * **Op table.** An operation lives in a slab inside its socket; its token
//!   is the socket's key, the slot's index and a generation ([`table`]). A
//!   slot is freed only once the operation's final completion was reaped
//!   *and* its consumer (handle, routine, port) took the result, so a token
//!   is never reused while a completion for it can still arrive.
//! * **Order.** Each socket has three direction queues (read, write,
//!   urgent). Only the head of a queue is parked with the backend; the next
//!   is armed when the head completes. io_uring would otherwise fill and send
//!   operations parked on one socket in reverse order.
//! * **Completed now.** A start whose queue is empty first tries the
//!   operation non-blocking (the backend may skip the try, see
//!   `sys/uring`): success is the model's *completed now*; an error is a
//!   start failure, after which no completion ever follows.
//! * **Batched submission.** Requests of starts made while a thread answers
//!   a wait, runs routines or polls async tasks go to the kernel with that
//!   thread's next kernel entry, unless another thread is blocked in the
//!   engine (it could not submit them). A socket's requests are always
//!   submitted before its descriptor closes.
//! * **Whoever waits, drives.** One thread at a time blocks in the engine's
//!   kernel wait; it then reaps and dispatches. Other waiters park and are
//!   woken by what they wait for or when the driver leaves ([`drive`]).
//! * **Threads.** The model's thread-exit rule (SPEC c08) is applied by a
//!   thread-local guard ([`crate::thread`]), identically on both engines.
//! * **Connection state.** Each socket keeps what Windows answers from at
//!   the call and Linux forgets or does differently: a reset seen, a
//!   receive side shut in user space, a write side shut, a connect in
//!   flight, a listener ([`conn`]). Those answers are start errors, never
//!   completions. The urgent byte a normal receive would read past is taken
//!   out of the kernel and held for the next `OOB` receive.
//! * **Ports at completion.** An operation's port is looked up when it
//!   completes (SPEC k09): a socket associated after the start still gets
//!   the packet.

mod complete;
pub(crate) mod conn;
mod drive;
mod end;
mod ext;
mod handle;
mod leftover;
mod start;
pub(crate) mod table;
mod waits;

use std::fmt;

pub(crate) use drive::{
    DriveState, clock_us as drive_clock_us, interval_passed, wait_until, wait_watching,
};
pub(crate) use table::{Registry, Sock};
pub(crate) use waits::{Watch, Watched};

use std::any::{Any, TypeId};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use crate::buf::ErasedBufs;
use crate::engine::Engine;
use crate::sys::{Backend, EngineKind, Outcome};
use crate::thread::ThreadCtx;

/// The engine-neutral core of one engine: its backend, its sockets (and in
/// them the op table), the drive state and the counters. An
/// [`Engine`] is a shared handle on it; its methods (in this module's
/// files) start, complete, dispatch and cancel operations the same way on
/// every backend.
pub(crate) struct Core {
    pub(crate) kind: EngineKind,
    pub(crate) reason: String,
    pub(crate) backend: Backend,
    pub(crate) socks: Registry,
    pub(crate) drive: DriveState,
    pub(crate) counters: AtomicCounters,
    /// When completions were last reaped (µs since the engine clock's origin).
    pub(crate) last_reap: AtomicU64,
    /// Live threads that have started operations on the engine.
    threads: AtomicUsize,
    /// This core, for the results it hands to consumers
    /// ([`RawDone::engine`]).
    me: Weak<Core>,
    /// The last handle on the engine went (set by its drop, see
    /// [`Core::end`]): results are no longer delivered.
    ended: bool,
    /// The tokio driver's wake-up for requests left for its next turn
    /// (see [`crate::tokio`]).
    #[cfg(feature = "tokio")]
    pub(crate) kick: crate::tokio::Kick,
}

/// The counters a [`crate::Counters`] snapshot is read from (with the
/// backend's own), per thread ([`crate::sync::Counters`]), indexed by
/// [`count`].
pub(crate) type AtomicCounters = crate::sync::Counters<4>;

/// The indices of [`AtomicCounters`].
pub(crate) mod count {
    pub(crate) const SUBMITTED: usize = 0;
    pub(crate) const COMPLETED_NOW: usize = 1;
    pub(crate) const COMPLETED_LATER: usize = 2;
    pub(crate) const CANCELLED: usize = 3;
}

impl Core {
    /// The core of a new engine of `kind` over `backend`.
    pub(crate) fn new(kind: EngineKind, reason: String, backend: Backend) -> Arc<Core> {
        Arc::new_cyclic(|me| Core {
            kind,
            reason,
            backend,
            socks: Registry::new(),
            drive: DriveState::default(),
            counters: AtomicCounters::default(),
            last_reap: AtomicU64::new(drive_clock_us()),
            threads: AtomicUsize::new(0),
            me: me.clone(),
            ended: false,
            #[cfg(feature = "tokio")]
            kick: crate::tokio::Kick::default(),
        })
    }

    /// A handle on this core's engine. Whoever calls into the core holds
    /// one, except the core's own drop, which delivers nothing (see
    /// [`Core::deliver`]).
    pub(crate) fn engine(&self) -> Engine {
        match self.me.upgrade() {
            Some(inner) => Engine { inner },
            None => unreachable!("an engine's core used after its last handle"),
        }
    }

    /// A thread started its first operation on the engine.
    pub(crate) fn thread_joined(&self) {
        self.threads.fetch_add(1, Ordering::Relaxed);
    }
    /// A thread that had started operations on the engine exits.
    pub(crate) fn thread_left(&self) {
        self.threads.fetch_sub(1, Ordering::Relaxed);
    }
    /// Only one live thread has started operations on the engine.
    pub(crate) fn one_thread(&self) -> bool {
        self.threads.load(Ordering::Relaxed) == 1
    }
}

/// What the core needs of an event object: to be set on completion.
pub(crate) trait Signal: Send + Sync {
    fn set(&self);
}

/// What the core needs of a completion port: to queue a finished
/// operation's packet (with the socket's per-handle data, if any). A
/// closed port gives the operation back, to be dropped after the socket's
/// lock (its buffers may hold the program's context).
pub(crate) trait PortSink: Send + Sync {
    fn push_op(
        &self,
        key: usize,
        tag: u64,
        data: Option<PortData>,
        conv: Convert,
        raw: RawDone,
    ) -> Option<RawDone>;
}

/// The per-handle data a socket was associated with (a typed port's
/// `Arc<D>`), carried by every packet of the socket.
pub(crate) type PortData = Arc<dyn Any + Send + Sync>;

/// A socket's association with a port: the port, the completion key, the
/// per-handle data, and the one completion type a typed port takes (a
/// start of another type fails at the call).
pub(crate) struct PortLink {
    pub(crate) sink: Arc<dyn PortSink>,
    pub(crate) key: usize,
    /// A typed port's part (boxed: most sockets have none, and a socket's
    /// state stays small).
    pub(crate) typed: Option<Box<TypedLink>>,
}

/// What a typed port adds to an association: the per-handle data and the
/// one completion type the port takes.
pub(crate) struct TypedLink {
    pub(crate) data: PortData,
    pub(crate) ty: TypeId,
}

/// The typed conversion of a finished operation (for a port packet), and
/// the type it makes: the function writes the completion into the
/// `Option<Completion<T>>` it is given (no allocation on the way).
pub(crate) type Convert = (TypeId, fn(RawDone, &mut dyn Any));

/// How a finished operation is made known.
pub(crate) enum SlotNotify {
    /// No notify was chosen: resolved at start to [`SlotNotify::None`] on a
    /// socket associated with a port (the per-operation "no packet"), else
    /// to a [`SlotNotify::Port`] packet with tag 0 if the socket is
    /// associated before the operation completes (SPEC k09).
    Default {
        conv: Convert,
    },
    /// Only the handle.
    None,
    Event(Arc<dyn Signal>),
    Routine {
        ctx: Arc<ThreadCtx>,
        id: usize,
    },
    /// A packet on the socket's port, looked up when the operation completes
    /// (SPEC k09). With no port then, the handle takes the result (if it
    /// is the consumer) or nobody does.
    Port {
        tag: u64,
        conv: Convert,
    },
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

/// Names one operation: its slot index and generation in its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpId {
    pub(crate) key: u16,
    pub(crate) seq: u16,
}

/// What a start produced: the operation's id, the byte count when it
/// completed now, and whether the handle takes the result.
#[derive(Debug)]
pub(crate) struct StartOk {
    pub(crate) id: OpId,
    pub(crate) now: Option<usize>,
    pub(crate) handle: bool,
}

fn bad_handle() -> std::io::Error {
    std::io::Error::from_raw_os_error(libc::EBADF)
}
