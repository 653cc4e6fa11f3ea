//! The driving protocol ("whoever waits, drives"), engine-free: one thread
//! at a time blocks in an engine's kernel wait (the driver); the others
//! waiting on that engine park as its followers until it leaves; a thread
//! blocked either way is woken through its [`ThreadCtx`] (an unpark, and
//! the engine's wake-up when it drives); a non-blocking reap that takes a
//! wake-up meant for the driver passes it on.
//!
//! Generic over the engine ([`Driven`]: production's engine, or the models'
//! fake) and, through it, over the sync shim ([`crate::sync`]), so that the
//! `loom` models (`drive_models.rs`) run this very code with a backend
//! whose wait blocks on a loom primitive.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::sync::{Flag, Lock, Shim, Std};
use crate::thread::{Blocked, ThreadCtx, set_blocked};

/// The engine as the driving protocol sees it.
pub(crate) trait Driven: Send + Sync + Sized + 'static {
    /// The primitives its threads block and wake with.
    type Sync: Shim;
    /// What a reap finds: a completion, or readiness, to dispatch.
    type Found;

    fn drive_state(&self) -> &DriveState<Self::Sync>;
    /// Hands queued requests to the kernel (nothing when none are queued).
    fn flush(&self);
    /// Collects what finished, without blocking (`poll_now`: the poll
    /// engine asks the kernel). True when it took a [`wake`](Self::wake)-up:
    /// one meant for the thread blocked in [`wait`](Self::wait).
    fn reap(&self, poll_now: bool, out: &mut Vec<Self::Found>) -> bool;
    /// Blocks until something finished, a [`wake`](Self::wake)-up came or
    /// `timeout` passed, submitting queued requests on the way in; collects
    /// what finished. A wake-up it takes was meant for its caller.
    fn wait(&self, timeout: Option<Duration>, out: &mut Vec<Self::Found>);
    /// Ends a blocking [`wait`](Self::wait) in progress on another thread,
    /// or the next one to begin.
    fn wake(&self);
    /// Hands each of `found` (drained) to its consumer.
    fn dispatch_all(self: &Arc<Self>, found: &mut Vec<Self::Found>);
    /// A reap begins (for [`reap_due`](Self::reap_due)).
    fn note_reap(&self);
    /// The last reap is old enough for a wait that does not block to reap
    /// again.
    fn reap_due(&self) -> bool;
    /// An empty list to reap into (one the thread kept, so that a reap
    /// allocates nothing in the steady state).
    fn scratch(&self) -> Vec<Self::Found> {
        Vec::new()
    }
    /// The list back (drained), for the thread's next reap.
    fn keep_scratch(&self, _found: Vec<Self::Found>) {}
}

/// An engine a thread blocks in, as its [`ThreadCtx`] holds it
/// ([`Blocked::Driving`]): what ends that wait.
pub(crate) trait EngineWake: Send + Sync {
    fn wake_engine(&self);
}

impl<E: Driven> EngineWake for E {
    fn wake_engine(&self) {
        self.wake();
    }
}

/// Who blocks in the engine's kernel wait, and who waits for it to leave.
pub(crate) struct DriveState<S: Shim = Std> {
    driving: S::Flag,
    followers: S::Mutex<Vec<Arc<ThreadCtx<S>>>>,
}

impl<S: Shim> Default for DriveState<S> {
    fn default() -> Self {
        DriveState {
            driving: S::Flag::default(),
            followers: S::mutex(Vec::new()),
        }
    }
}

impl<S: Shim> fmt::Debug for DriveState<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriveState")
            .field("driving", &self.is_driving())
            .finish_non_exhaustive()
    }
}

impl<S: Shim> DriveState<S> {
    /// True while a thread is (or is about to be) blocked in the kernel.
    pub(crate) fn is_driving(&self) -> bool {
        self.driving.load(Ordering::Acquire)
    }
}

/// Reaps everything available and dispatches it, without blocking. With
/// `submit`, requests queued meanwhile are submitted too; without, they
/// wait for the next kernel entry. `poll_now`: the poll engine asks the
/// kernel for readiness. `driver`: the caller is the thread that drives
/// (blocks in the kernel). Any other caller that takes a wake-up while a
/// thread drives wakes the engine again: the wake-up was meant for the
/// driver, which would sleep on without it.
pub(crate) fn reap_dispatch<E: Driven>(e: &Arc<E>, driver: bool, poll_now: bool, submit: bool) {
    e.note_reap();
    let mut found = e.scratch();
    let mut poll_now = poll_now;
    let mut woke = false;
    loop {
        if submit {
            e.flush();
        }
        woke |= e.reap(poll_now, &mut found);
        poll_now = false;
        if found.is_empty() {
            break;
        }
        e.dispatch_all(&mut found);
    }
    e.keep_scratch(found);
    if woke && !driver && e.drive_state().is_driving() {
        e.wake();
    }
}

/// Reaps (and submits) without blocking when [`Driven::reap_due`].
pub(crate) fn reap_if_due<E: Driven>(e: &Arc<E>) {
    if e.reap_due() {
        reap_dispatch(e, false, true, true);
    }
}

/// One round of "whoever waits, drives": become the driver and block in
/// the kernel for up to `timeout` (unless `ready` already holds), or, if
/// another thread drives, park until woken.
pub(crate) fn drive_once<E: Driven>(
    e: &Arc<E>,
    ctx: &Arc<ThreadCtx<E::Sync>>,
    timeout: Option<Duration>,
    ready: &mut dyn FnMut() -> bool,
) {
    let d = e.drive_state();
    if !d.driving.raise(Ordering::AcqRel, Ordering::Acquire) {
        d.followers.with(|f| {
            if !f.iter().any(|x| Arc::ptr_eq(x, ctx)) {
                f.push(ctx.clone());
            }
        });
        // The driver may have left between the two steps above: then
        // nobody would unpark this thread.
        if d.is_driving() {
            // Deferred requests must reach the kernel before this thread
            // sleeps.
            e.flush();
            if !ready() {
                <E::Sync as Shim>::park(timeout);
            }
        }
        return;
    }
    // Unsubmitted requests go in with the wait below (one kernel entry
    // for both), or with the reap after it. Reaping first is free on
    // io_uring; the poll engine asks the kernel only when no blocking
    // wait follows (that wait returns at once with what is ready).
    let block = timeout != Some(Duration::ZERO);
    reap_dispatch(e, true, !block, false);
    // From here a wake-up of this thread wakes the engine; `ready` is
    // checked after that, so none is lost.
    set_blocked(ctx, Blocked::Driving(e.clone()));
    let mut found = e.scratch();
    if block && !ready() {
        e.wait(timeout, &mut found);
    }
    set_blocked(ctx, Blocked::Parked);
    e.dispatch_all(&mut found);
    e.keep_scratch(found);
    reap_dispatch(e, true, false, true);
    d.driving.store(false, Ordering::Release);
    let followers = d.followers.with(std::mem::take);
    for f in followers {
        <E::Sync as Shim>::unpark(&f.thread);
    }
}

/// The time left until `deadline`: `None` when it passed, `Some(None)`
/// without one.
pub(crate) fn remaining(deadline: Option<Instant>) -> Option<Option<Duration>> {
    match deadline {
        Some(d) => {
            let now = Instant::now();
            (d > now).then(|| Some(d - now))
        }
        None => Some(None),
    }
}

/// Drives `e` until `ready()` or the deadline: the wait of a thread on one
/// engine. True when ready.
pub(crate) fn drive_until<E: Driven>(
    e: &Arc<E>,
    ctx: &Arc<ThreadCtx<E::Sync>>,
    deadline: Option<Instant>,
    ready: &mut dyn FnMut() -> bool,
) -> bool {
    reap_if_due(e);
    loop {
        if ready() {
            return true;
        }
        let Some(timeout) = remaining(deadline) else {
            return false;
        };
        drive_once(e, ctx, timeout, ready);
    }
}
