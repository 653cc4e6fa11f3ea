//! Backends: the only code that talks to the kernel about operations.
//!
//! # The backend contract
//!
//! The engine-neutral core (`crate::core`) keeps the op table, the
//! per-socket direction queues and the notifications. It never looks inside
//! a backend: it calls [`Backend`], whose methods are the whole contract.
//! A backend provides:
//!
//! 1. **Sockets**: [`register`](Backend::register) /
//!    [`deregister`](Backend::deregister) a descriptor under the core's
//!    socket token, and [`SockSys`], the per-socket state it keeps (inside
//!    the socket's lock).
//! 2. **The try at start** ([`try_now`](Backend::try_now)): the
//!    non-blocking [`attempt()`] (shared by every backend), or no try when the
//!    backend knows it would find nothing (poll: no readiness since the
//!    last one found nothing, see [`Hints`]) or when the request is better
//!    batched into the thread's next kernel entry (io_uring).
//! 3. **Parking** the head operation of a direction queue
//!    ([`arm`](Backend::arm)): it either finishes at once or becomes a
//!    [`Parked`] value that owns the operation's buffers (and, on io_uring,
//!    the memory the kernel reads and writes) until the backend gives them
//!    back in a [`Step::Done`].
//! 4. **Progress**: [`reap`](Backend::reap) (never blocks) and
//!    [`wait`](Backend::wait) (blocks up to a timeout) report [`Wakeup`]s;
//!    the core routes each to its operation or socket and calls
//!    [`progress`](Backend::progress), which interprets it (CQE results,
//!    resubmission of requests the kernel cancelled on its own, readiness and
//!    retries) and answers parked-again or done.
//! 5. **Cancel** of a parked operation ([`cancel`](Backend::cancel)):
//!    done at once, or asked of the kernel (the answer comes as a wakeup).
//!    A **kick** ([`kick`](Backend::kick)) is the core's way to say that
//!    what it knows of the socket changed for a parked operation (an urgent
//!    byte it took out of the kernel, a socket that now uses urgent data).
//! 6. **Submission**: [`flush`](Backend::flush) hands queued requests to the
//!    kernel; [`wake`](Backend::wake) ends a blocking wait on another thread.
//! 7. **A pollable descriptor** ([`pollable_fd`](Backend::pollable_fd)),
//!    readable while [`reap`](Backend::reap) has something to find and
//!    after a [`wake`](Backend::wake): a thread that waits on several
//!    engines blocks on all of them through it ([`block`]), and tokio's
//!    reactor drives an engine through it.
//!
//! No backend call is made while a lock shared by all threads of an engine
//! is held: the core holds at most the lock of the socket concerned.
//!
//! Adding a backend is one new file (its type, its [`Parked`] and
//! [`SockSys`] variants and, if its requests complete, its [`Reaped`] one)
//! and one arm in each `match` below: no match over backends has a
//! catch-all arm, so the compiler lists every arm a new backend owes.
//! Policy stays in the backend's own file: [`Backend`]'s methods only
//! dispatch.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use crate::buf::{ErasedBufs, RawBufs};
use crate::flags::{MsgFlags, RecvFlags};

mod attempt;
pub(crate) mod block;
mod clock;
pub(crate) mod ext;
pub(crate) mod fixed;
pub(crate) mod guess;
mod hints;
pub(crate) mod msg;
pub(crate) mod poll;
pub(crate) mod pool;
pub(crate) mod probe;
pub(crate) mod tcp;
#[cfg(feature = "tokio")]
pub(crate) mod tokio;
pub(crate) mod uring;

/// Test hook: makes the next backend call of a kind panic on this thread,
/// as a bug inside a backend would (the core's panic-safety tests).
#[cfg(test)]
pub(crate) mod fault {
    use std::cell::Cell;

    /// A unit test that needs io_uring, where it cannot run: skips with the
    /// reason, or fails when `OVERLAPPED_TEST_REQUIRE_URING` is set (as
    /// `.ci/run` does where io_uring works; the integration tests' rule).
    pub(crate) fn skip_uring(why: &dyn std::fmt::Display) {
        let required = std::env::var("OVERLAPPED_TEST_REQUIRE_URING").is_ok_and(|v| v != "0");
        assert!(!required, "io_uring unavailable: {why}");
        eprintln!("SKIPPED: io_uring unavailable: {why}");
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Call {
        Progress,
        Cancel,
        /// Not a panic: io_uring's next accept completion on this thread
        /// reads as `EAGAIN` (its connection closed), as the kernel answers
        /// a request it ran where it may not wait.
        AcceptEagain,
    }

    thread_local! {
        static NEXT: Cell<Option<Call>> = const { Cell::new(None) };
    }

    /// The next `call` on this thread panics (or, for `AcceptEagain`, reads
    /// as `EAGAIN`).
    pub(crate) fn inject(call: Call) {
        NEXT.with(|n| n.set(Some(call)));
    }

    /// Whether `call` was set for this thread (and clears it).
    pub(crate) fn take(call: Call) -> bool {
        let set = NEXT.with(|n| n.get()) == Some(call);
        if set {
            NEXT.with(|n| n.set(None));
        }
        set
    }

    pub(super) fn hit(call: Call) {
        if NEXT.with(|n| n.get()) == Some(call) {
            NEXT.with(|n| n.set(None));
            panic!("injected panic in the backend's {call:?}");
        }
    }
}

/// Which engine drives an [`Engine`](crate::Engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EngineKind {
    /// io_uring: operations run in the kernel, completions are reaped from
    /// the completion queue.
    Uring,
    /// epoll: operations are tried non-blocking and retried on readiness.
    Poll,
}

impl EngineKind {
    /// The engine's short name, as accepted by `OVERLAPPED_ENGINE`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Uring => "uring",
            EngineKind::Poll => "poll",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Direction queues of a socket. At most one operation per direction is
/// parked in the kernel (or waiting for readiness) at a time, which is how
/// posting order becomes filling/sending order on both engines. The
/// fourth queue holds a file's operations, which promise no order: every
/// one of them is parked at once (SPEC f02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
    Urgent = 2,
    File = 3,
}

/// One row per operation.
#[derive(Debug)]
pub(crate) enum OpKind {
    /// `WSASend` / `WSASendTo`: gather send; streams complete only when every
    /// byte is taken.
    Send {
        flags: MsgFlags,
        to: Option<SocketAddr>,
    },
    /// `WSARecv` / `WSARecvFrom`: scatter receive.
    Recv { flags: MsgFlags, want_addr: bool },
    /// `AcceptEx`: a new non-blocking, close-on-exec socket and its peer.
    Accept,
    /// `AcceptEx` with a receive buffer, or into a caller-made socket
    /// (SPEC x01, x02).
    AcceptEx(Box<ext::AcceptEx>),
    /// `ConnectEx`: `started` is false until the first `connect(2)` ran;
    /// `sending`: connected, sending the operation's data (SPEC x03).
    Connect {
        addr: SocketAddr,
        started: bool,
        sending: bool,
    },
    /// `DisconnectEx` (SPEC x04); `reuse`: the socket takes a new accept or
    /// connect afterwards.
    Disconnect { reuse: bool },
    /// `TransmitFile` (SPEC x05).
    Transmit(Box<ext::Transmit>),
    /// `ReadFile` on a file opened overlapped: scatter read at `offset`
    /// (ignored by a pipe or a device that has no position).
    FileRead { offset: u64 },
    /// `WriteFile` on a file opened overlapped: gather write at `offset`;
    /// it completes when every byte is written, or with an error that
    /// reports the bytes written.
    FileWrite { offset: u64 },
}

impl OpKind {
    pub(crate) fn dir(&self) -> Dir {
        match self {
            OpKind::Send { .. }
            | OpKind::Connect { .. }
            | OpKind::Disconnect { .. }
            | OpKind::Transmit(_) => Dir::Write,
            OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB) => Dir::Urgent,
            OpKind::Recv { .. } | OpKind::Accept | OpKind::AcceptEx(_) => Dir::Read,
            OpKind::FileRead { .. } | OpKind::FileWrite { .. } => Dir::File,
        }
    }

    /// A file's read or write (see [`Dir::File`]).
    pub(crate) fn is_file(&self) -> bool {
        matches!(self, OpKind::FileRead { .. } | OpKind::FileWrite { .. })
    }

    /// An operation that writes into its buffers (a receive, a file read,
    /// an `AcceptEx`'s first data): its outcome counts the bytes written at
    /// the start of their room.
    pub(crate) fn fills(&self) -> bool {
        matches!(
            self,
            OpKind::Recv { .. } | OpKind::FileRead { .. } | OpKind::AcceptEx(_)
        )
    }

    /// An `AcceptEx` that took its connection and waits for its first data:
    /// it waits off its listener's queue, on the connection's readiness.
    pub(crate) fn waits_aside(&self) -> bool {
        matches!(self, OpKind::AcceptEx(a) if a.conn.is_some())
    }

    /// The descriptor the operation waits on: the socket's, or for an
    /// `AcceptEx` that waits aside, its connection's.
    pub(crate) fn wait_fd<'a>(&'a self, sock: BorrowedFd<'a>) -> BorrowedFd<'a> {
        match self {
            OpKind::AcceptEx(a) => a.conn_fd().unwrap_or(sock),
            _ => sock,
        }
    }

    /// An operation the start never tries: it completes pending even when
    /// it could finish at once (`DisconnectEx`, as on Windows).
    pub(crate) fn always_pends(&self) -> bool {
        matches!(self, OpKind::Disconnect { .. })
    }
}

/// What a finished attempt produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) error: Option<io::Error>,
    pub(crate) bytes: usize,
    pub(crate) flags: RecvFlags,
    pub(crate) addr: Option<SocketAddr>,
    /// The local address of an `AcceptEx`'s connection (boxed: every
    /// operation's slot holds an outcome, and few have one).
    pub(crate) local: Option<Box<SocketAddr>>,
    /// The listener's `WSAEventSelect`, which a socket it accepted takes
    /// (Windows' rule; boxed as `local`).
    pub(crate) select: Option<Box<(crate::Event, crate::NetworkEvents)>>,
    pub(crate) fd: Option<OwnedFd>,
    /// A stream receive of the normal channel took bytes and may have
    /// stopped at the urgent mark: the next one would read past the urgent
    /// byte, which Linux then drops (the core takes it first, SPEC k05).
    pub(crate) check_urgent: bool,
    /// A stream receive of the normal channel took bytes and `TCP_INQ`
    /// said none were left behind them (false when unknown).
    pub(crate) drained: bool,
}

impl Outcome {
    pub(crate) fn ok(bytes: usize) -> Self {
        Outcome {
            error: None,
            bytes,
            flags: RecvFlags::empty(),
            addr: None,
            local: None,
            select: None,
            fd: None,
            check_urgent: false,
            drained: false,
        }
    }
    pub(crate) fn err(error: io::Error, bytes: usize) -> Self {
        Outcome {
            error: Some(error),
            ..Outcome::ok(bytes)
        }
    }
    pub(crate) fn aborted(bytes: usize) -> Self {
        Outcome::err(crate::flags::aborted_error(), bytes)
    }
}

/// Result of one non-blocking attempt.
#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub(crate) use attempt::send_plain;
pub(crate) use attempt::{attempt, oob_inline, serve_urgent, take_urgent, to_io};

#[derive(Debug)]
pub(crate) enum Attempt {
    Done(Outcome),
    WouldBlock,
}

impl OpKind {
    /// A receive of the normal channel on a stream without `PEEK`: the one
    /// whose try at start adapts on io_uring.
    pub(crate) fn is_plain_stream_recv(&self, stream: bool) -> bool {
        stream
            && matches!(self, OpKind::Recv { flags, .. }
                if !flags.contains(MsgFlags::OOB) && !flags.contains(MsgFlags::PEEK))
    }
}

/// System calls a backend made, for [`Counters`](crate::Counters), per
/// thread ([`crate::sync::Counters`]): kernel entries to submit or wait,
/// and non-blocking tries of an operation.
#[derive(Debug, Default)]
pub(crate) struct Calls(crate::sync::Counters<2>);

impl Calls {
    const ENTER: usize = 0;
    const DIRECT: usize = 1;

    pub(crate) fn enter(&self) {
        self.0.bump(Self::ENTER);
    }
    pub(crate) fn direct(&self) {
        self.0.bump(Self::DIRECT);
    }
    pub(crate) fn entered(&self) -> u64 {
        self.0.get(Self::ENTER)
    }
    pub(crate) fn tried(&self) -> u64 {
        self.0.get(Self::DIRECT)
    }
}

pub(crate) use clock::{coarse_ms, monotonic_us};
pub(crate) use hints::{Hints, empty_still_trusted};

/// With the urgent watch on (`watch`), a normal stream receive's try at
/// start first takes an urgent byte the socket holds into `urgent` (the
/// caller hands it on to the socket's `OOB` receives): a receive that starts
/// at the urgent mark reads past the byte, and Linux then drops it (SPEC
/// k05). The readiness that announced the byte may not have been reaped yet
/// (nothing drove the engine since it came), so only a look at the socket
/// tells: one more system call per such try. Both backends' tries at start
/// call it just before their attempt.
fn urgent_first(
    watch: bool,
    calls: &Calls,
    fd: BorrowedFd<'_>,
    kind: &OpKind,
    stream: bool,
    urgent: &mut Option<u8>,
) {
    if watch && urgent.is_none() && kind.is_plain_stream_recv(stream) {
        calls.direct();
        *urgent = take_urgent(fd);
    }
}

/// Per-socket state of a backend, kept inside the socket's lock.
#[derive(Debug)]
pub(crate) enum SockSys {
    Uring(uring::RecvPolicy),
    Poll(poll::ReadPolicy),
}

impl SockSys {
    /// io_uring's state of the socket; `None` on another backend's socket
    /// (never met: [`Backend::new_sock`] makes the backend's own).
    fn uring(&mut self) -> Option<&mut uring::RecvPolicy> {
        match self {
            SockSys::Uring(p) => Some(p),
            SockSys::Poll(_) => None,
        }
    }

    /// The poll engine's state of the socket; `None` on another backend's
    /// socket (never met, as for [`uring`](Self::uring)).
    fn poll(&mut self) -> Option<&mut poll::ReadPolicy> {
        match self {
            SockSys::Poll(p) => Some(p),
            SockSys::Uring(_) => None,
        }
    }
}

/// What the core tells a backend about one operation.
pub(crate) struct OpRef<'a> {
    /// The socket's descriptor.
    pub(crate) fd: Option<BorrowedFd<'a>>,
    /// The same descriptor, shared: a file operation run on a worker
    /// thread keeps it open until it returns (a close meanwhile must not
    /// let its number name another file).
    pub(crate) shared_fd: Option<&'a std::sync::Arc<OwnedFd>>,
    /// The core's token for this operation (unique while it is parked).
    pub(crate) token: u64,
    pub(crate) kind: &'a mut OpKind,
    /// Progress of a stream send across attempts.
    pub(crate) done: &'a mut usize,
    pub(crate) stream: bool,
    /// The core asked to cancel the operation.
    pub(crate) cancel: bool,
    pub(crate) sock: &'a mut SockSys,
    pub(crate) hints: &'a Hints,
    /// The socket's held urgent byte (an `OOB` receive takes it first).
    pub(crate) urgent: &'a mut Option<u8>,
}

impl OpRef<'_> {
    /// The same reference, for a call that takes it by value.
    pub(crate) fn reborrow(&mut self) -> OpRef<'_> {
        OpRef {
            fd: self.fd,
            shared_fd: self.shared_fd,
            token: self.token,
            kind: self.kind,
            done: self.done,
            stream: self.stream,
            cancel: self.cancel,
            sock: self.sock,
            hints: self.hints,
            urgent: self.urgent,
        }
    }
}

/// Buffers as the core stores them.
pub(crate) type Bufs = Option<Box<dyn ErasedBufs>>;

/// A parked operation: owns its buffers (and the kernel's memory) until the
/// backend hands them back in [`Step::Done`]. Dropping it anywhere else is
/// safe: what the kernel may still use is leaked, never freed.
#[derive(Debug)]
pub(crate) enum Parked {
    Uring(uring::InFlight),
    Poll(poll::Waiting),
    /// A file operation on the poll engine's worker pool.
    Pool(pool::Job),
}

/// The answer of [`Backend::arm`], [`Backend::progress`] and
/// [`Backend::cancel`].
pub(crate) enum Step {
    Parked(Parked),
    Done(Outcome, Bufs),
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Parked(p) => f.debug_tuple("Parked").field(p).finish(),
            Step::Done(o, _) => f.debug_tuple("Done").field(o).finish_non_exhaustive(),
        }
    }
}

/// Something a reap or a wait found: the completion of a parked operation
/// (io_uring) or the readiness of a socket (poll), under the core's token.
#[derive(Debug)]
pub(crate) enum Wakeup {
    Op {
        token: u64,
        reaped: Reaped,
    },
    Sock {
        token: u64,
        dirs: [bool; 3],
        /// The peer ended the stream, or the socket failed.
        ended: bool,
    },
}

/// The kernel's answer to a parked operation's request, one arm per backend
/// whose requests complete (poll's operations only see readiness). Only
/// that backend's reap path can make one (io_uring: its [`Cqe`](uring::Cqe)
/// is made only in `ring.rs`), so holding one proves the request it answers
/// is over: the backend may then take the operation's kernel memory back.
#[derive(Debug)]
pub(crate) enum Reaped {
    Uring(uring::Cqe),
    /// The poll engine: the descriptor an operation waits on by itself (an
    /// `AcceptEx`'s connection) is ready.
    Ready,
    /// A job of the poll engine's file pool finished (only a worker makes
    /// one: its result is in the job).
    Pool(pool::Finished),
}

/// The engine behind an [`Engine`](crate::Engine): one arm per backend.
#[derive(Debug)]
pub(crate) struct Backend {
    imp: Imp,
    calls: Calls,
    /// The registered-buffer pool. Declared after `imp`: the ring is torn
    /// down before this reference to the pool's memory goes (see
    /// [`fixed`]'s memory rule).
    fixed: std::sync::Mutex<Option<std::sync::Arc<fixed::Pool>>>,
    /// Sockets watch for urgent data from the start: on io_uring their
    /// normal stream receives park as readiness polls; on both engines a
    /// normal stream receive's try at start looks for an urgent byte first.
    watch_urgent: bool,
}

#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per engine, never moved
enum Imp {
    Uring(uring::Uring),
    Poll(poll::Poll),
}

impl Backend {
    /// Sets up a backend of `kind`.
    /// `watch_urgent`: on io_uring, every socket's normal stream receives
    /// park as readiness polls from the start, as after the socket's first
    /// `OOB` receive; on both engines the try of a normal stream receive at
    /// start takes a held urgent byte out first (see
    /// [`EngineBuilder::watch_urgent`](crate::EngineBuilder::watch_urgent)).
    pub(crate) fn new(
        kind: EngineKind,
        ring_entries: u32,
        watch_urgent: bool,
    ) -> io::Result<Backend> {
        let imp = match kind {
            EngineKind::Uring => Imp::Uring(uring::Uring::new(ring_entries)?),
            EngineKind::Poll => Imp::Poll(poll::Poll::new()?),
        };
        Ok(Backend {
            imp,
            calls: Calls::default(),
            fixed: std::sync::Mutex::new(None),
            watch_urgent,
        })
    }

    /// Makes the engine's pool of `count` registered buffers of `size`
    /// bytes (io_uring registers its memory with the kernel; poll keeps
    /// ordinary memory). One per engine.
    pub(crate) fn register_fixed(
        &self,
        count: usize,
        size: usize,
    ) -> io::Result<std::sync::Arc<fixed::Pool>> {
        let mut held = self.fixed.lock().unwrap_or_else(|p| p.into_inner());
        if held.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this engine already registered its buffers (one pool per engine)",
            ));
        }
        let pool = fixed::Pool::new(count, size)?;
        match &self.imp {
            // The pool is held in `self.fixed` from here on, until after
            // the ring is gone (field order).
            Imp::Uring(u) => u.register_fixed(&pool)?,
            Imp::Poll(_) => {}
        }
        *held = Some(std::sync::Arc::clone(&pool));
        Ok(pool)
    }

    /// The system calls made so far.
    pub(crate) fn calls(&self) -> &Calls {
        &self.calls
    }

    /// Requests pushed to the ring that used a registered buffer: fixed
    /// reads, fixed sends.
    pub(crate) fn fixed_ops(&self) -> (u64, u64) {
        match &self.imp {
            Imp::Uring(u) => u.fixed_ops(),
            Imp::Poll(_) => (0, 0),
        }
    }

    /// Fresh per-socket state.
    pub(crate) fn new_sock(&self) -> SockSys {
        match &self.imp {
            Imp::Uring(_) => SockSys::Uring(uring::RecvPolicy::new(self.watch_urgent)),
            Imp::Poll(_) => SockSys::Poll(poll::ReadPolicy::default()),
        }
    }

    /// Registers a new socket under the core's socket token.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        match &self.imp {
            Imp::Uring(_) => Ok(()),
            Imp::Poll(p) => p.register(fd, token),
        }
    }

    /// Forgets a socket before its descriptor is closed.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) {
        match &self.imp {
            Imp::Uring(_) => {}
            Imp::Poll(p) => p.deregister(fd),
        }
    }

    /// The try of a start whose queue is empty: `None` when the backend
    /// does not try (the operation is parked instead). `deferred`: the
    /// starting thread will enter the kernel soon anyway (it answers a wait,
    /// runs routines or polls tasks).
    pub(crate) fn try_now(
        &self,
        op: OpRef<'_>,
        bufs: Option<&mut dyn RawBufs>,
        deferred: bool,
    ) -> Option<Attempt> {
        let (watch, calls) = (self.watch_urgent, &self.calls);
        match (&self.imp, &*op.sock) {
            (Imp::Uring(_), SockSys::Uring(_)) => uring::try_now(op, bufs, deferred, watch, calls),
            (Imp::Poll(_), SockSys::Poll(_) | SockSys::Uring(_))
            | (Imp::Uring(_), SockSys::Poll(_)) => poll::try_now(op, bufs, watch, calls),
        }
    }

    /// Parks the head operation of a direction queue. `tried`: the start
    /// just tried it and it would block, or [`try_now`](Self::try_now)
    /// declined to try (an attempt now would find nothing).
    ///
    /// # Safety
    /// `op.token` must not belong to another operation of this backend that
    /// is parked (its [`Parked`] value not yet handed back in a
    /// [`Step::Done`]): a completion is matched to its operation by token,
    /// and the kernel memory freed on completion is the one of the
    /// operation the token names.
    #[allow(unsafe_code)]
    pub(crate) unsafe fn arm(&self, op: OpRef<'_>, bufs: Bufs, tried: bool) -> Step {
        match &self.imp {
            // SAFETY: the caller keeps the token unique (see above).
            Imp::Uring(u) => unsafe { u.arm(op, bufs) },
            // Regular files are always "ready" for epoll: a worker runs it.
            Imp::Poll(p) if op.kind.is_file() => p.files().submit(op, bufs),
            Imp::Poll(p) => p.arm(op, bufs, tried, &self.calls),
        }
    }

    /// Interprets a wakeup for a parked operation (for a socket wakeup, the
    /// head operation of a direction that may progress).
    pub(crate) fn progress(&self, op: OpRef<'_>, parked: Parked, wakeup: &Wakeup) -> Step {
        #[cfg(test)]
        fault::hit(fault::Call::Progress);
        match (&self.imp, parked) {
            (Imp::Uring(u), Parked::Uring(f)) => u.progress(op, f, wakeup, &self.calls),
            (Imp::Poll(p), Parked::Poll(w)) => p.progress(op, w, &self.calls),
            (Imp::Poll(_) | Imp::Uring(_), Parked::Pool(j)) => pool::progress(j),
            // Another backend's operation (never met): left as it is.
            (Imp::Uring(_), parked @ Parked::Poll(_))
            | (Imp::Poll(_), parked @ Parked::Uring(_)) => Step::Parked(parked),
        }
    }

    /// Cancels a parked operation: done at once, or the kernel is asked and
    /// the operation completes *aborted* through a later wakeup.
    pub(crate) fn cancel(&self, op: OpRef<'_>, parked: Parked) -> Step {
        #[cfg(test)]
        fault::hit(fault::Call::Cancel);
        match (&self.imp, parked) {
            (Imp::Uring(u), Parked::Uring(f)) => u.cancel(op, f),
            (Imp::Poll(_) | Imp::Uring(_), Parked::Poll(w)) => poll::cancel(op, w),
            (Imp::Poll(_) | Imp::Uring(_), Parked::Pool(j)) => pool::cancel(op, j),
            // Another backend's operation (never met): left as it is.
            (Imp::Poll(_), parked @ Parked::Uring(_)) => Step::Parked(parked),
        }
    }

    /// What the core knows of the socket changed for a parked operation:
    /// an `OOB` receive can take the urgent byte the core took out of the
    /// kernel for it, or a normal receive is on a socket that now uses
    /// urgent data (see each backend's `kick`).
    pub(crate) fn kick(&self, op: OpRef<'_>, parked: Parked) -> Step {
        match (&self.imp, parked) {
            (Imp::Uring(u), Parked::Uring(f)) => u.kick(op, f),
            (Imp::Poll(p), Parked::Poll(w)) => p.kick(op, w, &self.calls),
            // Another backend's operation (never met): left as it is; a
            // file job has nothing to learn about urgent data.
            (_, parked @ Parked::Pool(_))
            | (Imp::Uring(_), parked @ Parked::Poll(_))
            | (Imp::Poll(_), parked @ Parked::Uring(_)) => Step::Parked(parked),
        }
    }

    /// Collects what finished, without blocking. `poll_now`: on poll, ask the
    /// kernel (`epoll_wait` with a zero timeout). True when it took a
    /// [`wake`](Self::wake)-up: one meant for the thread blocked in
    /// [`wait`](Self::wait), which a caller that is not that thread passes
    /// on (a blocked wait that finds its wake-up taken sleeps on).
    pub(crate) fn reap(&self, poll_now: bool, out: &mut Vec<Wakeup>) -> bool {
        match &self.imp {
            Imp::Uring(u) => u.reap(out),
            Imp::Poll(p) => p.reap(poll_now, out, &self.calls),
        }
    }

    /// Blocks until something finished, [`wake`](Self::wake) was called or
    /// `timeout` passed; submits queued requests on the way in.
    pub(crate) fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Wakeup>) {
        self.calls.enter();
        match &self.imp {
            Imp::Uring(u) => u.wait_and_reap(timeout, out),
            Imp::Poll(p) => {
                if let Err(e) = p.wait(timeout, out) {
                    tracing::warn!(error = %e, "epoll_wait failed");
                }
            }
        }
    }

    /// Hands queued requests to the kernel (a no-op when none are queued);
    /// on io_uring also moves completions the kernel kept after a
    /// completion-queue overflow into the queue, for the next reap.
    pub(crate) fn flush(&self) {
        match &self.imp {
            Imp::Uring(u) => u.submit_if_needed(&self.calls),
            Imp::Poll(_) => {}
        }
    }

    /// The descriptor that becomes readable when [`reap`](Self::reap) (after
    /// a [`flush`](Self::flush)) has something to find, for an event loop
    /// that drives the engine without blocking in it: io_uring's ring (its
    /// completion queue), or the epoll set. Both engines route
    /// [`wake`](Self::wake) through it.
    pub(crate) fn pollable_fd(&self) -> BorrowedFd<'_> {
        match &self.imp {
            Imp::Uring(u) => u.pollable_fd(),
            Imp::Poll(p) => p.pollable_fd(),
        }
    }

    /// Ends a blocking [`wait`](Self::wait) in progress on another thread.
    pub(crate) fn wake(&self) {
        match &self.imp {
            Imp::Uring(u) => u.wake(),
            Imp::Poll(p) => p.wake(),
        }
    }
}
