//! "Whoever waits, drives": reaping and dispatching, the one blocking wait
//! in the kernel at a time, and the wait loop every blocking call uses.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::engine::{Engine, Inner};
use crate::sys::Wakeup;
use crate::sys::block::block_on;
use crate::thread::{Blocked, ThreadCtx, current_ctx, set_blocked, submits_deferred};

/// Waits that find work without entering the kernel still reap completions
/// at least this often, so operations completing in the kernel are not
/// starved by ones that complete at once.
pub(crate) const REAP_INTERVAL_US: u64 = 200;

/// Who blocks in the engine's kernel wait, and who waits for it to leave.
#[derive(Debug, Default)]
pub(crate) struct DriveState {
    driving: AtomicBool,
    followers: Mutex<Vec<Arc<ThreadCtx>>>,
}

impl DriveState {
    /// True while a thread is (or is about to be) blocked in the kernel.
    pub(crate) fn is_driving(&self) -> bool {
        self.driving.load(Ordering::Acquire)
    }
}

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

pub(crate) fn clock_us() -> u64 {
    clock_us_at(Instant::now())
}

/// `at` on the engine clock (µs since its origin): lets a caller that read
/// the clock for a deadline use that one reading (a clock read is not free
/// in a VM: about 50 ns here).
pub(crate) fn clock_us_at(at: Instant) -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    at.saturating_duration_since(*ORIGIN.get_or_init(Instant::now))
        .as_micros() as u64
}

/// True when [`REAP_INTERVAL_US`] has passed between the time in `last` and
/// `now` (µs, [`clock_us_at`]); the one caller that sees it first also
/// moves `last` to `now`.
pub(crate) fn interval_passed(last: &AtomicU64, now: u64) -> bool {
    let prev = last.load(Ordering::Relaxed);
    now.saturating_sub(prev) >= REAP_INTERVAL_US
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl Inner {
    fn dispatch_all(self: &Arc<Self>, found: &mut Vec<Wakeup>) {
        for w in found.drain(..) {
            self.dispatch(&w);
        }
    }

    /// Reaps everything available and dispatches it, without blocking.
    /// With `submit`, requests queued meanwhile are submitted too; without,
    /// they wait for the next kernel entry. `poll_now`: the poll engine asks
    /// the kernel for readiness.
    pub(crate) fn reap_dispatch(self: &Arc<Self>, poll_now: bool, submit: bool) {
        self.reap_dispatch_as(false, poll_now, submit);
    }

    /// [`reap_dispatch`](Self::reap_dispatch); `driver`: the caller is the
    /// thread that drives (blocks in the kernel). Any other caller that
    /// takes a wake-up while a thread drives wakes the engine again: the
    /// wake-up was meant for the driver, which would sleep on without it.
    fn reap_dispatch_as(self: &Arc<Self>, driver: bool, poll_now: bool, submit: bool) {
        self.last_reap.store(clock_us(), Ordering::Relaxed);
        let mut found = Vec::new();
        let mut poll_now = poll_now;
        let mut woke = false;
        loop {
            if submit {
                self.backend.flush();
            }
            woke |= self.backend.reap(poll_now, &mut found);
            poll_now = false;
            if found.is_empty() {
                break;
            }
            self.dispatch_all(&mut found);
        }
        if woke && !driver && self.drive.is_driving() {
            self.backend.wake();
        }
    }

    /// Reaps (and submits) without blocking when the last reap is older than
    /// [`REAP_INTERVAL_US`].
    pub(crate) fn reap_if_due(self: &Arc<Self>) {
        let last = self.last_reap.load(Ordering::Relaxed);
        if clock_us().saturating_sub(last) >= REAP_INTERVAL_US {
            self.reap_dispatch(true, true);
        }
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

    /// One round of "whoever waits, drives": become the driver and block in
    /// the kernel for up to `timeout` (unless `ready` already holds), or, if
    /// another thread drives, park until woken.
    pub(crate) fn drive_once(
        self: &Arc<Inner>,
        ctx: &Arc<ThreadCtx>,
        timeout: Option<Duration>,
        ready: &mut dyn FnMut() -> bool,
    ) {
        let d = &self.drive;
        if d.driving
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            {
                let mut f = d.followers.lock().unwrap_or_else(|p| p.into_inner());
                if !f.iter().any(|x| Arc::ptr_eq(x, ctx)) {
                    f.push(ctx.clone());
                }
            }
            // The driver may have left between the two steps above: then
            // nobody would unpark this thread.
            if d.is_driving() {
                // Deferred requests must reach the kernel before this thread
                // sleeps.
                self.backend.flush();
                if !ready() {
                    match timeout {
                        Some(t) => thread::park_timeout(t),
                        None => thread::park(),
                    }
                }
            }
            return;
        }
        // Unsubmitted requests go in with the wait below (one kernel entry
        // for both), or with the reap after it. Reaping first is free on
        // io_uring; the poll engine asks the kernel only when no blocking
        // wait follows (that wait returns at once with what is ready).
        let block = timeout != Some(Duration::ZERO);
        self.reap_dispatch_as(true, !block, false);
        set_blocked(ctx, Blocked::Driving(self.clone()));
        let mut found = Vec::new();
        if block && !ready() {
            self.backend.wait(cap_wait(timeout), &mut found);
            if wait_slice().is_some() {
                // Such a tool hands its lock to another thread only at a
                // yield or after a long run of this thread's code.
                std::thread::yield_now();
            }
        }
        set_blocked(ctx, Blocked::Parked);
        self.dispatch_all(&mut found);
        self.reap_dispatch_as(true, false, true);
        d.driving.store(false, Ordering::Release);
        let followers = std::mem::take(&mut *d.followers.lock().unwrap_or_else(|p| p.into_inner()));
        for f in followers {
            f.thread.unpark();
        }
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
    for e in engines {
        e.inner.reap_if_due();
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
            [one] => one.inner.drive_once(&ctx, remaining, ready),
            several => wait_on_engines(several, &ctx, remaining, ready),
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
fn wait_on_engines(
    engines: &[Engine],
    ctx: &Arc<ThreadCtx>,
    timeout: Option<Duration>,
    ready: &mut dyn FnMut() -> bool,
) {
    let Some(wake) = ctx.wake_fd() else {
        // No eventfd to be woken through: drive the first engine in slices,
        // looking at the others between them.
        let slice = Duration::from_millis(5);
        for e in &engines[1..] {
            e.inner.poll_once();
        }
        engines[0]
            .inner
            .drive_once(ctx, Some(timeout.map_or(slice, |t| t.min(slice))), ready);
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
        engines[0].inner.backend.calls().enter();
        if let Err(e) = block_on(&fds, wake, cap_wait(timeout), &mut readable) {
            tracing::warn!(error = %e, "poll on the engines' descriptors failed");
            // Not a busy loop on a persistent error.
            thread::park_timeout(timeout.map_or(Duration::from_millis(5), |t| {
                t.min(Duration::from_millis(5))
            }));
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
