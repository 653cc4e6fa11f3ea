//! The op table: sockets in a sharded registry, each socket's operations in
//! a slab inside the socket's own lock, and the one token encoding that
//! names a socket or an operation to a backend.

use std::collections::VecDeque;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::thread::ThreadId;

use slab::Slab;

use super::SlotNotify;
use crate::sys::{Bufs, Dir, Hints, OpKind, Outcome, Parked, SockSys};
use crate::thread::ThreadCtx;

/// Registry shards: socket creation and the lookup of a completion's socket
/// lock one shard, chosen by the socket's key.
const SHARDS: usize = 32;

/// Most operations of one socket held at once (in flight or with a result
/// not yet taken): an operation's index in its socket has 16 bits.
pub(crate) const MAX_OPS_PER_SOCKET: usize = 0xFFFF;

/// The index in [`SockState::queues`] of the operations that wait aside.
pub(crate) const ASIDE: usize = 4;

/// The sockets of an engine, by key.
pub(crate) struct Registry {
    shards: Box<[Mutex<Slab<Arc<Sock>>>]>,
    next_shard: AtomicUsize,
    next_gen: AtomicU32,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
            next_shard: AtomicUsize::new(0),
            next_gen: AtomicU32::new(1),
        }
    }

    /// Adds a socket built by `make` from its key and generation.
    pub(crate) fn insert(&self, make: impl FnOnce(u32, u32) -> Sock) -> Arc<Sock> {
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
        let seq = self.next_gen.fetch_add(1, Ordering::Relaxed) & 0x7FFF_FFFF;
        let mut s = lock(&self.shards[shard]);
        let entry = s.vacant_entry();
        let key = (entry.key() * SHARDS + shard) as u32;
        let sock = Arc::new(make(key, seq));
        entry.insert(sock.clone());
        sock
    }

    /// The socket under `key`.
    pub(crate) fn get(&self, key: u32) -> Option<Arc<Sock>> {
        let (idx, shard) = (key as usize / SHARDS, key as usize % SHARDS);
        lock(&self.shards[shard]).get(idx).cloned()
    }

    /// Forgets `sock` (its key may then be reused); a no-op when it is
    /// already gone.
    pub(crate) fn remove(&self, sock: &Sock) {
        let (idx, shard) = (sock.key as usize / SHARDS, sock.key as usize % SHARDS);
        let mut s = lock(&self.shards[shard]);
        if s.get(idx)
            .is_some_and(|x| std::ptr::eq(Arc::as_ptr(x), sock))
        {
            s.remove(idx);
        }
    }

    /// Every socket (a snapshot).
    pub(crate) fn all(&self) -> Vec<Arc<Sock>> {
        let mut v = Vec::new();
        for s in self.shards.iter() {
            v.extend(lock(s).iter().map(|(_, x)| x.clone()));
        }
        v
    }
}

/// A socket's entry: its key and generation, and its state behind its own
/// lock (the only lock an operation's start, completion or cancel takes,
/// besides the notification's own).
pub(crate) struct Sock {
    pub(crate) key: u32,
    pub(crate) seq: u32,
    /// One bit per direction: an operation of that direction is queued, or
    /// about to be tried. Read without the lock, so a readiness report for
    /// a socket nobody waits on costs no lock (the poll engine reports every
    /// change of a busy socket).
    busy: AtomicU8,
    /// The backend's readiness hints.
    pub(crate) hints: Hints,
    st: Mutex<SockState>,
}

impl fmt::Debug for Sock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sock")
            .field("key", &self.key)
            .field("seq", &self.seq)
            .finish()
    }
}

impl Sock {
    pub(crate) fn new(key: u32, seq: u32, st: SockState) -> Sock {
        Sock {
            key,
            seq,
            busy: AtomicU8::new(0),
            hints: Hints::default(),
            st: Mutex::new(st),
        }
    }

    /// Locks the socket's state; unlocking records which directions are
    /// busy, then runs what was put aside (see [`SockState::later`]).
    pub(crate) fn lock(&self) -> SockGuard<'_> {
        SockGuard {
            sock: self,
            st: ManuallyDrop::new(lock(&self.st)),
        }
    }

    /// Marks `dir` busy (the caller holds the lock) before an attempt whose
    /// failure parks the operation: a readiness report that arrives
    /// meanwhile then waits for the lock instead of being skipped.
    pub(crate) fn mark_busy(&self, dir: Dir) {
        self.busy.fetch_or(1 << dir as u8, Ordering::SeqCst);
    }

    /// Whether a direction among `dirs` is busy (see [`Sock::busy`]).
    pub(crate) fn busy_in(&self, dirs: &[bool; 3]) -> bool {
        let b = self.busy.load(Ordering::SeqCst);
        (0..3).any(|d| dirs[d] && b & (1 << d) != 0)
    }
}

/// The lock of a socket's state.
pub(crate) struct SockGuard<'a> {
    sock: &'a Sock,
    /// Dropped only in `SockGuard`'s `Drop`, before what the state put
    /// aside.
    st: ManuallyDrop<MutexGuard<'a, SockState>>,
}

impl Deref for SockGuard<'_> {
    type Target = SockState;
    fn deref(&self) -> &SockState {
        &self.st
    }
}

impl DerefMut for SockGuard<'_> {
    fn deref_mut(&mut self) -> &mut SockState {
        &mut self.st
    }
}

impl Drop for SockGuard<'_> {
    #[allow(unsafe_code)]
    #[inline]
    fn drop(&mut self) {
        let mut b = 0u8;
        for (d, q) in self.st.queues.iter().enumerate() {
            if !q.is_empty() {
                b |= 1 << d;
            }
        }
        self.sock.busy.store(b, Ordering::Release);
        if !self.st.later.is_empty() {
            self.unlock_then_run_later();
            return;
        }
        // `st` is not used again: this is the guard's drop.
        // SAFETY: so it is dropped exactly once.
        unsafe { ManuallyDrop::drop(&mut self.st) };
    }
}

impl SockGuard<'_> {
    /// The end of the guard's drop when work was put aside: unlocks, then
    /// runs it. What was put aside leaves with the thread's spare list
    /// (empty, its capacity kept): no allocation in the steady state.
    #[allow(unsafe_code)]
    #[cold]
    #[inline(never)]
    fn unlock_then_run_later(&mut self) {
        let mut batch = SPARE.take();
        std::mem::swap(&mut batch, &mut self.st.later);
        // Called only from the guard's drop, as its last use of `st`.
        // SAFETY: so it is dropped exactly once.
        unsafe { ManuallyDrop::drop(&mut self.st) };
        for l in batch.drain(..) {
            l.run();
        }
        SPARE.set(batch);
    }
}

thread_local! {
    /// The list [`SockGuard`]'s drop swaps in for the one it runs.
    static SPARE: std::cell::Cell<Vec<Later>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Work a socket's lock put aside, run once it is let go: user code (a
/// buffer's `Drop`, an async task's waker) and the system calls of waking a
/// thread (a futex, an eventfd write, or `io_uring_enter` for a thread
/// blocked in an io_uring engine) never run under it.
pub(crate) enum Later {
    /// Dropped: what a finished operation nobody takes left (a user
    /// buffer, an accepted descriptor, whose drop is a `close(2)`).
    Bufs(Box<dyn crate::buf::ErasedBufs>),
    Fd(OwnedFd),
    /// The event of an operation whose result waits in its slot.
    Set(Arc<dyn super::Signal>),
    /// A thread waiting for such an operation.
    Wake(Arc<ThreadCtx>),
    /// An async task awaiting one.
    Waker(Waker),
    /// The per-handle data of a closed socket whose last operation
    /// completed (its drop may drop the program's connection state).
    Data(super::PortData),
}

impl Later {
    fn run(self) {
        match self {
            Later::Bufs(b) => drop(b),
            Later::Fd(fd) => drop(fd),
            Later::Set(ev) => ev.set(),
            Later::Wake(t) => t.wake(),
            Later::Waker(w) => w.wake(),
            Later::Data(d) => drop(d),
        }
    }
}

pub(crate) struct SockState {
    /// Shared with the user closures of `with_fd` (run without the lock):
    /// the descriptor is closed when the last holder lets it go.
    pub(crate) fd: Option<Arc<OwnedFd>>,
    pub(crate) stream: bool,
    pub(crate) connected: bool,
    pub(crate) bound: bool,
    pub(crate) closed: bool,
    /// The connection state Windows answers from at the call (SPEC
    /// k01–k06; see [`super::conn`]).
    pub(crate) conn: Conn,
    /// The urgent byte taken from the kernel before a normal receive passed
    /// it (Linux drops it then), for the next `OOB` receive (SPEC k05).
    pub(crate) urgent: Option<u8>,
    /// Open handles of the socket (`Socket` and its clones, SPEC k11): the
    /// socket closes with the last.
    pub(crate) handles: usize,
    /// Slot indexes of the direction queues, in posting order (the fourth,
    /// a file's operations, all parked at once: see [`Dir::File`]), and (at
    /// [`ASIDE`]) of the operations that wait off their queue on a
    /// descriptor of their own (see `OpKind::waits_aside`).
    pub(crate) queues: [VecDeque<u16>; 5],
    /// A pending `AcceptEx` on another socket will take its connection
    /// into this one (SPEC x02); the socket learns the outcome on its next
    /// call.
    pub(crate) reserved: Option<Arc<crate::sys::ext::Target>>,
    pub(crate) port: Option<super::PortLink>,
    pub(crate) skip_on_success: bool,
    /// Bytes a stream receive took from the kernel after its handle was
    /// dropped: served to the next receives first, so no byte is lost.
    pub(crate) leftover: Vec<u8>,
    /// Posting order of the read-direction ops, and the highest order that
    /// took bytes (a dropped receive's bytes are kept only when no later
    /// receive has taken newer bytes).
    pub(crate) reads_posted: u64,
    pub(crate) reads_done: u64,
    /// The backend's own per-socket state.
    pub(crate) sys: SockSys,
    pub(crate) ops: Slab<Slot>,
    /// Put aside under the lock, run after it (see [`Later`]).
    pub(crate) later: Vec<Later>,
    /// The socket's part in waits (SPEC t03, t04).
    pub(crate) waits: super::waits::SockWaits,
    next_gen: u16,
}

impl SockState {
    pub(crate) fn new(
        fd: Arc<OwnedFd>,
        stream: bool,
        connected: bool,
        bound: bool,
        sys: SockSys,
    ) -> Self {
        SockState {
            fd: Some(fd),
            stream,
            connected,
            bound,
            closed: false,
            conn: Conn::default(),
            urgent: None,
            handles: 1,
            queues: Default::default(),
            port: None,
            skip_on_success: false,
            leftover: Vec::new(),
            reads_posted: 0,
            reads_done: 0,
            sys,
            ops: Slab::new(),
            later: Vec::new(),
            reserved: None,
            waits: Default::default(),
            next_gen: 1,
        }
    }

    /// A generation for a new slot (15 bits, never `0x7FFF`: no operation
    /// token equals a backend's reserved ones or has the top bit the poll
    /// engine marks a descriptor watched aside with).
    pub(crate) fn new_gen(&mut self) -> u16 {
        let g = self.next_gen;
        self.next_gen = if g >= 0x7FFE { 1 } else { g + 1 };
        g
    }

    /// The slot `key` if it has generation `seq`.
    pub(crate) fn slot(&mut self, key: u16, seq: u16) -> Option<&mut Slot> {
        self.ops.get_mut(key as usize).filter(|s| s.seq == seq)
    }

    pub(crate) fn idle(&self) -> bool {
        self.queues.iter().all(VecDeque::is_empty)
    }
}

/// What the engine knows of a socket's connection beyond the kernel's
/// answers: Linux forgets a reset after reporting it once, has no
/// receive-side shutdown that keeps pending receives, and has no notion of a
/// connect in progress for the other operations.
#[derive(Debug, Default)]
pub(crate) struct Conn {
    /// `listen` was called.
    pub(crate) listening: bool,
    /// A connect operation is in flight.
    pub(crate) connecting: bool,
    /// The connection was reset, and how (SPEC k01): every later receive
    /// and send fails at the call with its error.
    pub(crate) broken: Option<super::conn::Broken>,
    /// A receive read the end of the stream while the peer was still
    /// connected: the peer closed gracefully, and a reset that follows
    /// answers a send of ours ([`Broken::Aborted`](super::conn::Broken)).
    pub(crate) peer_closed: bool,
    /// `shutdown(Read)`, kept in user space: the kernel's would complete
    /// pending receives with 0 bytes.
    pub(crate) read_shut: bool,
    /// `shutdown(Write)`.
    pub(crate) write_shut: bool,
}

/// Where an operation is.
#[derive(Debug)]
pub(crate) enum SlotState {
    /// Waiting behind other operations of its direction.
    Queued,
    /// Head of its queue, parked with the backend (which holds its buffers).
    Armed(Parked),
    /// Finished; the outcome waits for the handle.
    Done(Outcome),
    /// A tombstone: the backend was handed the operation and never
    /// answered (it panicked). Its request may still be in the kernel, so
    /// the slot is never freed, armed again or completed, which keeps its
    /// token (and its socket, which stays in the registry) from being
    /// reused; the memory the request may use was leaked when the unwind
    /// dropped it (see `sys::uring::InFlight`). The operation never
    /// completes; later cancels, closes and drops leave it alone.
    Lost,
}

/// One operation.
pub(crate) struct Slot {
    pub(crate) seq: u16,
    pub(crate) kind: OpKind,
    pub(crate) dir: Dir,
    pub(crate) stream: bool,
    /// The buffers while the slot is not armed.
    pub(crate) bufs: Bufs,
    pub(crate) done: usize,
    pub(crate) state: SlotState,
    pub(crate) cancel: bool,
    /// Cancelled because its socket closed (the abort's cause, SPEC k10).
    pub(crate) closing: bool,
    pub(crate) immediate: bool,
    pub(crate) notify: SlotNotify,
    /// A handle will take the result.
    pub(crate) handle: bool,
    pub(crate) waiter: Option<Arc<ThreadCtx>>,
    pub(crate) waker: Option<Waker>,
    pub(crate) issuer: ThreadId,
    /// Posting order among the socket's read-direction ops.
    pub(crate) order: u64,
    /// What its end can teach the connection state (taken at start, before
    /// a receive's buffers are truncated to what arrived).
    pub(crate) learn: super::conn::Learn,
}

/// An operation's token: socket key, slot index, slot generation.
pub(crate) fn op_token(sock: u32, slot: u16, seq: u16) -> u64 {
    sock as u64 | (slot as u64) << 32 | (seq as u64) << 48
}

/// The parts of an operation's token.
pub(crate) fn op_of(token: u64) -> (u32, u16, u16) {
    (token as u32, (token >> 32) as u16, (token >> 48) as u16)
}

/// A socket's token: key and generation.
pub(crate) fn sock_token(key: u32, seq: u32) -> u64 {
    key as u64 | (seq as u64) << 32
}

/// The parts of a socket's token.
pub(crate) fn sock_of(token: u64) -> (u32, u32) {
    (token as u32, (token >> 32) as u32)
}
