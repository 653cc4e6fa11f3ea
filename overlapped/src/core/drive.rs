//! "Whoever waits, drives", the engine's side: the engine as the driving
//! protocol sees it (its [`Driven`] impl; the protocol itself, engine-free
//! and checked by `loom`, is [`crate::wait::drive`]), the reap interval,
//! the wait slice, and the wait loop every blocking call uses, on one
//! engine or several.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use super::{Core, Sock, Watch};
use crate::engine::Engine;
use crate::sync::Std;
use crate::sys::Wakeup;
use crate::sys::block::block_on_watching;
use crate::thread::{Blocked, ThreadCtx, current_ctx, set_blocked, submits_deferred};
pub(crate) use crate::wait::drive::DriveState;
use crate::wait::drive::{self, Driven};
use rustix::event::PollFlags;
use std::os::fd::{AsFd, BorrowedFd};

/// Waits that find work without entering the kernel still reap completions
/// at least this often, so operations completing in the kernel are not
/// starved by ones that complete at once.
pub(crate) const REAP_INTERVAL_US: u64 = 200;

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

/// The engine clock: microseconds on the monotonic clock (only differences
/// mean something), read several times per message on a port, so in
/// integer arithmetic (see [`monotonic_us`](crate::sys::monotonic_us));
/// `Instant` where that clock cannot be read.
pub(crate) fn clock_us() -> u64 {
    crate::sys::monotonic_us().unwrap_or_else(|| {
        static ORIGIN: OnceLock<Instant> = OnceLock::new();
        let d = ORIGIN.get_or_init(Instant::now).elapsed();
        d.as_secs() * 1_000_000 + u64::from(d.subsec_micros())
    })
}

/// True when [`REAP_INTERVAL_US`] has passed between the time in `last` and
/// `now` (µs, [`clock_us`]); the one caller that sees it first also
/// moves `last` to `now`.
pub(crate) fn interval_passed(last: &AtomicU64, now: u64) -> bool {
    let prev = last.load(Ordering::Relaxed);
    now.saturating_sub(prev) >= REAP_INTERVAL_US
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

thread_local! {
    /// The list this thread reaps into, kept between reaps (a reap nested
    /// in a dispatch takes a new one).
    static FOUND: std::cell::Cell<Vec<Wakeup>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The engine in the driving protocol ([`crate::wait::drive`]).
impl Driven for Core {
    type Sync = Std;
    type Found = Wakeup;

    fn drive_state(&self) -> &DriveState {
        &self.drive
    }
    fn flush(&self) {
        self.backend.flush();
    }
    fn reap(&self, poll_now: bool, out: &mut Vec<Wakeup>) -> bool {
        self.backend.reap(poll_now, out)
    }
    fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Wakeup>) {
        self.backend.wait(cap_wait(timeout), out);
        if wait_slice().is_some() {
            // Such a tool hands its lock to another thread only at a
            // yield or after a long run of this thread's code.
            std::thread::yield_now();
        }
    }
    fn wake(&self) {
        self.backend.wake();
    }
    fn dispatch_all(self: &Arc<Self>, found: &mut Vec<Wakeup>) {
        for w in found.drain(..) {
            self.dispatch(&w);
        }
    }
    fn note_reap(&self) {
        self.last_reap.store(clock_us(), Ordering::Relaxed);
    }
    fn reap_due(&self) -> bool {
        let last = self.last_reap.load(Ordering::Relaxed);
        clock_us().saturating_sub(last) >= REAP_INTERVAL_US
    }
    fn scratch(&self) -> Vec<Wakeup> {
        FOUND.with(std::cell::Cell::take)
    }
    fn keep_scratch(&self, found: Vec<Wakeup>) {
        debug_assert!(found.is_empty());
        FOUND.with(|f| f.set(found));
    }
}

impl Core {
    /// Reaps everything available and dispatches it, without blocking, as
    /// a thread that does not drive (see [`drive::reap_dispatch`]).
    pub(crate) fn reap_dispatch(self: &Arc<Self>, poll_now: bool, submit: bool) {
        drive::reap_dispatch(self, false, poll_now, submit);
    }

    /// Reaps (and submits) without blocking when the last reap is older than
    /// [`REAP_INTERVAL_US`].
    pub(crate) fn reap_if_due(self: &Arc<Self>) {
        drive::reap_if_due(self);
    }

    /// Reaps and dispatches once without blocking; submits unless this
    /// thread's submissions are deferred.
    pub(crate) fn poll_once(self: &Arc<Self>) {
        self.reap_dispatch(true, !submits_deferred());
    }

    /// Submits what this thread left for its next kernel entry.
    pub(crate) fn flush_now(&self) {
        self.backend.flush();
    }

    /// One round of "whoever waits, drives" (see [`drive::drive_once`]).
    pub(crate) fn drive_once(
        self: &Arc<Core>,
        ctx: &Arc<ThreadCtx>,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut() -> bool,
    ) {
        drive::drive_once(self, ctx, timeout, ready);
    }
}

/// Drives `engines` until `ready()` or the deadline. True when ready.
pub(crate) fn wait_until(
    engines: &[Engine],
    deadline: Option<Instant>,
    ready: &mut dyn FnMut() -> bool,
) -> bool {
    let ctx = current_ctx();
    crate::thread::flush_engines_except(engines);
    if let [one] = engines {
        return drive::drive_until(&one.inner, &ctx, deadline, ready);
    }
    for e in engines {
        e.inner.reap_if_due();
    }
    loop {
        if ready() {
            return true;
        }
        let Some(remaining) = drive::remaining(deadline) else {
            return false;
        };
        match engines {
            [] => match remaining {
                Some(t) => thread::park_timeout(t),
                None => thread::park(),
            },
            several => wait_on_engines(several, &[], &ctx, remaining, ready, &mut []),
        }
    }
}

/// [`wait_until`] that also watches sockets selected into the events
/// waited on (SPEC t04, see `core/waits.rs`): it blocks in `poll(2)` on
/// the engines' descriptors (driving none of them) and the sockets'; a
/// socket that turned ready is looked at and what it shows recorded, and
/// the wait returns true for its caller to look again (its event may be
/// set, and what to watch changed). True when ready or a socket fired.
pub(crate) fn wait_watching(
    engines: &[Engine],
    watches: &[(Engine, Arc<Sock>, Watch)],
    deadline: Option<Instant>,
    ready: &mut dyn FnMut() -> bool,
) -> bool {
    let ctx = current_ctx();
    crate::thread::flush_engines_except(engines);
    let fds: Vec<(BorrowedFd<'_>, PollFlags)> = watches
        .iter()
        .map(|(_, _, w)| (w.fd.as_fd(), w.flags))
        .collect();
    let mut fired = vec![PollFlags::empty(); watches.len()];
    loop {
        if ready() {
            return true;
        }
        let Some(remaining) = drive::remaining(deadline) else {
            return false;
        };
        wait_on_engines(engines, &fds, &ctx, remaining, ready, &mut fired);
        let mut any = false;
        for ((e, sock, w), rev) in watches.iter().zip(fired.iter_mut()) {
            if !rev.is_empty() {
                e.inner.select_fired(sock, w.flags, *rev);
                *rev = PollFlags::empty();
                any = true;
            }
        }
        if any {
            return true;
        }
    }
}

/// One round of a wait on several engines: submit and reap each, then (unless
/// `ready` holds) block until one of their descriptors turns readable, the
/// thread is woken or `timeout` passes, and reap again. The thread drives
/// none of them (it does not hold their `driving` flag): a thread that
/// waits on one of them alone still becomes its driver, and both see its
/// completions.
///
/// Several threads may block on one engine's descriptor this way. A
/// completion wakes each of them in the kernel, but `poll(2)` looks again
/// before it returns and sleeps on when another thread already reaped it.
/// Measured (four port workers over two engines, one packet at a time, 200
/// packets, both engines): one `poll(2)` and about one `futex` per packet,
/// 38 us from the peer's write to the worker's packet (median). A variant
/// in which one thread at a time blocked on each engine, the others
/// following it as with one engine, made two `poll(2)` and four `futex`
/// per packet and took 65 us: the engine's waiter blocked again after each
/// packet it reaped for another worker, and each time it left, it woke its
/// followers.
///
/// `watch`: sockets' descriptors to wake for too ([`wait_watching`]); what
/// each reported goes to its `fired` entry.
fn wait_on_engines(
    engines: &[Engine],
    watch: &[(BorrowedFd<'_>, PollFlags)],
    ctx: &Arc<ThreadCtx>,
    timeout: Option<Duration>,
    ready: &mut dyn FnMut() -> bool,
    fired: &mut [PollFlags],
) {
    let slice = Duration::from_millis(5);
    let Some(wake) = ctx.wake_fd() else {
        // No eventfd to be woken through: drive the first engine in slices,
        // looking at the others (and the sockets) between them.
        let t = Some(timeout.map_or(slice, |t| t.min(slice)));
        for e in engines.iter().skip(1) {
            e.inner.poll_once();
        }
        if !watch.is_empty() {
            poll_watch(watch, fired);
        }
        match engines.first() {
            Some(first) => first.inner.drive_once(ctx, t, ready),
            None => thread::park_timeout(slice),
        }
        return;
    };
    // What the kernel already finished may satisfy the wait (io_uring's
    // reap reads memory; the poll engine's readiness shows in the wait
    // below).
    for e in engines {
        e.inner.reap_dispatch(false, true);
    }
    // From here a wake-up writes the eventfd; `ready` is checked after it
    // can, so none is lost.
    set_blocked(ctx, Blocked::OnEngines);
    let mut readable = vec![false; engines.len()];
    if timeout != Some(Duration::ZERO) && !ready() {
        let fds: Vec<_> = engines
            .iter()
            .map(|e| e.inner.backend.pollable_fd())
            .collect();
        if let Some(first) = engines.first() {
            first.inner.backend.calls().enter();
        }
        if let Err(e) =
            block_on_watching(&fds, watch, wake, cap_wait(timeout), &mut readable, fired)
        {
            tracing::warn!(error = %e, "poll on the engines' descriptors failed");
            // Not a busy loop on a persistent error.
            thread::park_timeout(timeout.map_or(slice, |t| t.min(slice)));
        }
        if wait_slice().is_some() {
            std::thread::yield_now();
        }
    }
    set_blocked(ctx, Blocked::Parked);
    for (e, r) in engines.iter().zip(readable) {
        // io_uring's reap is free; the poll engine asks the kernel only when
        // its epoll set turned readable.
        e.inner.reap_dispatch(r, true);
    }
}

/// What `watch` reports now (a poll with no timeout), into `fired`.
fn poll_watch(watch: &[(BorrowedFd<'_>, PollFlags)], fired: &mut [PollFlags]) {
    let mut set: Vec<rustix::event::PollFd<'_>> = watch
        .iter()
        .map(|(fd, f)| rustix::event::PollFd::new(fd, *f))
        .collect();
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut set, Some(&zero)).is_ok() {
        for (f, p) in fired.iter_mut().zip(&set) {
            *f = p.revents();
        }
    }
}
