//! The engine: [`Engine`], its builder and its counters. An engine is a
//! shared handle on its engine-neutral core (`core::Core`: the backend, the
//! socket registry, the drive state).

use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::core::{Core, count};
use crate::sys::probe::{EngineChoice, resolve};
use crate::sys::{Backend, EngineKind};

/// Default submission-queue size of an io_uring engine.
pub const DEFAULT_RING_ENTRIES: u32 = 256;

/// A snapshot of an engine's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
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
    /// Receives handed to io_uring as `READ_FIXED` into a registered
    /// buffer ([`Engine::register_buffers`]). Always 0 on the poll engine.
    pub fixed_recvs: u64,
    /// Sends handed to io_uring as `SEND_ZC` from a registered buffer (each
    /// push counts: a send resumed after a short completion too; not one
    /// the socket refused, see [`FixedBuf`](crate::FixedBuf)). Always 0 on
    /// the poll engine.
    pub fixed_sends: u64,
}

/// An engine: one io_uring ring or one epoll set, its op table, and the
/// sockets created on it. Any number of threads may use one engine at once:
/// each socket has its own lock, and no lock shared by the engine's threads
/// is held across a system call (but io_uring's submission lock across the
/// submit that empties a full submission queue). Cheap to clone (a shared
/// handle).
///
/// Choose the engine at run time with [`Engine::new`] (honours
/// `OVERLAPPED_ENGINE=auto|uring|poll`) or [`Engine::builder`]; the choice
/// and its reason are available from [`kind`](Engine::kind) and
/// [`reason`](Engine::reason).
#[derive(Clone)]
pub struct Engine {
    pub(crate) inner: Arc<Core>,
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
    watch_urgent: bool,
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
    /// Keeps Windows' answer for urgent data (SPEC k05) in every order it
    /// can arrive in (Linux drops an urgent byte that a normal receive
    /// reads past; the engine takes the byte out of the kernel first and
    /// keeps it for the next `OOB` receive):
    ///
    /// * on io_uring, for an urgent byte that arrives alone while a normal
    ///   receive waits on a socket that has not started an `OOB` receive
    ///   yet: every socket's normal stream receives wait as readiness
    ///   polls (the poll engine waits so anyway; a socket on io_uring
    ///   turns this on for itself with its first `OOB` receive);
    /// * on both engines, for an urgent byte (and data after it) that
    ///   arrived before a normal receive was started, before the engine
    ///   saw its readiness: the try of a normal stream receive at start
    ///   looks for an urgent byte first.
    ///
    /// Off by default, for programs that use urgent data: a normal receive
    /// that is tried at start, or waits on io_uring, costs one more system
    /// call.
    pub fn watch_urgent(mut self, on: bool) -> Self {
        self.watch_urgent = on;
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
        let backend = Backend::new(kind, self.ring_entries, self.watch_urgent)?;
        static LOGGED: std::sync::Once = std::sync::Once::new();
        LOGGED.call_once(
            || tracing::info!(engine = %kind, reason = %reason, "overlapped engine chosen"),
        );
        Ok(Engine {
            inner: Core::new(kind, reason, backend),
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
            watch_urgent: false,
        }
    }

    /// An engine of this kind (no fallback).
    ///
    /// # Errors
    /// See [`EngineBuilder::build`].
    pub fn with_kind(kind: EngineKind) -> io::Result<Engine> {
        Engine::builder().choice(EngineChoice::from(kind)).build()
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
            submitted: c.get(count::SUBMITTED),
            completed_now: c.get(count::COMPLETED_NOW),
            completed_later: c.get(count::COMPLETED_LATER),
            cancelled: c.get(count::CANCELLED),
            enter_calls: self.inner.backend.calls().entered(),
            direct_calls: self.inner.backend.calls().tried(),
            fixed_recvs: self.inner.backend.fixed_ops().0,
            fixed_sends: self.inner.backend.fixed_ops().1,
        }
    }

    /// Makes the engine's pool of `count` registered buffers of `size`
    /// bytes each (see [`FixedBuf`](crate::buf::FixedBuf) for what they
    /// change). On io_uring the memory is registered with the kernel
    /// (`IORING_REGISTER_BUFFERS`; it counts against `RLIMIT_MEMLOCK`); on
    /// poll the pool is ordinary memory, so a program is portable. One pool
    /// per engine; the memory lives while the engine, the pool or any of
    /// its buffers does. The first registration on io_uring in a process
    /// also runs [`probe::fixed_support`](crate::probe::fixed_support)
    /// (about 50 ms), which decides the fixed opcodes the engine uses.
    ///
    /// # Errors
    /// [`InvalidInput`](io::ErrorKind::InvalidInput): `count` or `size` is
    /// 0, `count` is above 16,384 or `size` above 1 GiB (the kernel's
    /// limits), or their product overflows;
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists): the engine already
    /// registered a pool; the kernel's refusal (`ENOMEM` past
    /// `RLIMIT_MEMLOCK`, ...), with the sizes in the message.
    ///
    /// # Examples
    ///
    /// ```
    /// use overlapped::{Engine, MsgFlags, Notify, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let pool = engine.register_buffers(8, 4096)?;
    /// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
    /// let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
    /// client.connect_wait(listener.local_addr()?)?;
    /// let (server, _peer) = listener.accept_wait()?;
    ///
    /// // A receive into a registered buffer, then a send from one.
    /// let recv = server.recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)?;
    /// let mut out = pool.take().unwrap();
    /// out.extend_from_slice(b"registered");
    /// assert_eq!(client.send(out, MsgFlags::empty(), Notify::None)?.wait()?.bytes, 10);
    /// let got = recv.wait()?;
    /// assert_eq!(&got.data[..], b"registered");
    /// drop(got); // the buffers go back to the pool
    /// assert!(pool.take().is_some());
    /// # Ok(()) }
    /// ```
    pub fn register_buffers(&self, count: usize, size: usize) -> io::Result<crate::buf::FixedBufs> {
        let pool = self.inner.backend.register_fixed(count, size)?;
        Ok(crate::buf::FixedBufs::new(pool))
    }

    /// Operations whose slots are still held (in flight, or complete with a
    /// result not yet taken). Zero once everything finished and was taken.
    pub fn ops_in_table(&self) -> usize {
        self.inner.ops_held()
    }

    /// Reaps and dispatches finished work without blocking: operations
    /// that finished complete (their events are set, routines queued,
    /// packets posted, futures woken). Requests queued meanwhile are
    /// submitted, unless the calling thread batches its submissions (it
    /// answers a wait, see the crate docs, "When operations reach the
    /// kernel").
    ///
    /// With [`as_fd`](AsFd::as_fd), this lets any event loop drive the
    /// engine without a thread blocked in it; `overlapped::tokio` (feature
    /// `tokio`) does so for tokio.
    pub fn poll(&self) {
        self.inner.poll_once();
    }

    /// Drives the engine for up to `timeout`: blocks until some work finished
    /// or the time passed.
    pub fn drive(&self, timeout: Option<Duration>) {
        let ctx = crate::thread::current_ctx();
        self.inner.drive_once(&ctx, timeout, &mut || false);
    }
}

/// The engine's pollable descriptor, for an event loop that drives the
/// engine itself: it is readable while [`Engine::poll`] has completions (or
/// readiness) to find. On io_uring it is the ring (readable while
/// completions wait in its completion queue); on poll, the epoll set
/// (readable while a socket's readiness waits to be taken). Both engines
/// route their wake-ups through it.
///
/// Wait for it to be readable (level or edge), then call [`Engine::poll`];
/// with an edge-triggered loop, clear the readiness *before* that call, so
/// a completion arriving during it makes the descriptor ready again. Do not
/// read from, write to or close it. `overlapped::tokio` (feature `tokio`)
/// is this loop for tokio's reactor.
impl AsFd for Engine {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.backend.pollable_fd()
    }
}

/// A handle that does not keep its engine alive.
#[derive(Clone)]
pub(crate) struct WeakEngine(std::sync::Weak<Core>);

impl WeakEngine {
    pub(crate) fn upgrade(&self) -> Option<Engine> {
        self.0.upgrade().map(|inner| Engine { inner })
    }
    pub(crate) fn is(&self, e: &Engine) -> bool {
        std::ptr::eq(self.0.as_ptr(), Arc::as_ptr(&e.inner))
    }
    pub(crate) fn is_alive(&self) -> bool {
        self.0.strong_count() > 0
    }
}

impl Engine {
    pub(crate) fn downgrade(&self) -> WeakEngine {
        WeakEngine(Arc::downgrade(&self.inner))
    }
    pub(crate) fn same(&self, other: &Engine) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
    /// Reaps and dispatches without blocking, and submits whatever is
    /// queued whichever thread calls it (an event loop's driver: nothing
    /// may wait for a kernel entry of its thread).
    #[cfg(feature = "tokio")]
    pub(crate) fn poll_and_submit(&self) {
        self.inner.reap_dispatch(true, true);
    }
    /// Reaps (and submits) when the last reap is older than the reap
    /// interval.
    pub(crate) fn reap_if_due(&self) {
        self.inner.reap_if_due();
    }
}
