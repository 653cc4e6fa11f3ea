//! The per-thread context: the thread's routine queue and how to wake it,
//! the engines it started operations on (for the thread-exit rule and
//! alertable waits), and the batching of its submissions.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use slab::Slab;

use crate::core::{Core, RawDone};
use crate::engine::Engine;
use crate::sync::{Lock, Shim, Std};
use crate::sys::block::WakeFd;
use crate::wait::drive::EngineWake;
use crate::wait::{RoutineQueue, wait_routines};

/// Per-thread state shared with the engines: the thread's routine queue and
/// how to wake it. Generic over the sync shim for the `loom` models of the
/// driving protocol (`wait/drive_models.rs`); production uses std's.
pub(crate) struct ThreadCtx<S: Shim = Std> {
    pub(crate) thread: S::Thread,
    routines: Mutex<RoutineQueue<Queued>>,
    /// The waitable timers this thread set with a routine (see
    /// [`crate::WaitableTimer`]): its alertable waits fire them.
    timers: Mutex<Vec<Weak<crate::timer::TimerShared>>>,
    blocked: S::Mutex<Blocked>,
    /// The wake-up of this thread's waits on several engines at once, made
    /// at the first such wait.
    wake_fd: OnceLock<WakeFd>,
}

/// A routine queued to a thread: an operation's completion routine (its id
/// in the thread's routine slab and the result), or a routine given by
/// [`crate::queue_routine`] or a timer.
pub(crate) enum Queued {
    Op(usize, RawDone),
    User(Box<dyn FnOnce() + Send>),
}

/// Where a thread blocks in the kernel, so that [`ThreadCtx::wake`] can end
/// that wait.
#[derive(Default)]
pub(crate) enum Blocked {
    /// Parked, or not waiting: an unpark wakes it.
    #[default]
    Parked,
    /// In this engine's blocking wait, as its driver.
    Driving(Arc<dyn EngineWake>),
    /// In a wait on several engines' descriptors and its own
    /// [`WakeFd`].
    OnEngines,
}

impl<S: Shim> fmt::Debug for ThreadCtx<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadCtx")
            .field("thread", &self.thread)
            .finish_non_exhaustive()
    }
}

impl<S: Shim> ThreadCtx<S> {
    /// The calling thread's context; `routines_open`: routines may be
    /// queued to it (not when made for a thread that is exiting).
    fn new(routines_open: bool) -> Self {
        ThreadCtx {
            thread: S::current(),
            routines: Mutex::new(RoutineQueue::new(routines_open)),
            timers: Mutex::new(Vec::new()),
            blocked: S::mutex(Blocked::Parked),
            wake_fd: OnceLock::new(),
        }
    }

    /// A context for the calling thread of a `loom` model.
    #[cfg(test)]
    pub(crate) fn for_model() -> Arc<Self> {
        Arc::new(Self::new(true))
    }

    /// Wakes the thread: unparks it and, if it is blocked in an engine, ends
    /// that wait.
    pub(crate) fn wake(&self) {
        S::unpark(&self.thread);
        let engine = self.blocked.with(|b| match b {
            Blocked::Parked => None,
            Blocked::Driving(e) => Some(e.clone()),
            Blocked::OnEngines => {
                if let Some(w) = self.wake_fd.get() {
                    w.wake();
                }
                None
            }
        });
        // Outside the lock: the engine's wake-up may enter the kernel.
        if let Some(e) = engine {
            e.wake_engine();
        }
    }

    /// This thread's wake-up for waits on several engines (made on first
    /// use; `None` when no eventfd could be made).
    pub(crate) fn wake_fd(&self) -> Option<&WakeFd> {
        if let Some(w) = self.wake_fd.get() {
            return Some(w);
        }
        match WakeFd::new() {
            Ok(w) => {
                // Only the thread itself makes it: the set cannot race.
                let _ = self.wake_fd.set(w);
                self.wake_fd.get()
            }
            Err(e) => {
                tracing::warn!(error = %e, "no eventfd for a wait on several engines");
                None
            }
        }
    }

    /// Queues a routine and wakes the thread; after the thread exited the
    /// completion is dropped here, with its buffers.
    pub(crate) fn queue_routine(&self, id: usize, raw: RawDone) {
        let queued = self
            .routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Queued::Op(id, raw));
        if queued.is_ok() {
            self.wake();
        }
    }

    /// Queues a routine given by the application (`QueueUserAPC`) and wakes
    /// the thread; gives it back when the thread has exited.
    pub(crate) fn queue_user(
        &self,
        f: Box<dyn FnOnce() + Send>,
    ) -> Result<(), Box<dyn FnOnce() + Send>> {
        let queued = self
            .routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Queued::User(f));
        match queued {
            Ok(()) => {
                self.wake();
                Ok(())
            }
            Err(Queued::User(f)) => Err(f),
            Err(Queued::Op(..)) => unreachable!("the queue gives back what it was given"),
        }
    }

    /// Whether the thread has exited (its routine queue is closed).
    pub(crate) fn exited(&self) -> bool {
        self.routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_closed()
    }

    /// Registers a timer this thread set (once).
    pub(crate) fn add_timer(&self, t: &Arc<crate::timer::TimerShared>) {
        let mut v = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        v.retain(|w| w.strong_count() > 0);
        if !v.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(t))) {
            v.push(Arc::downgrade(t));
        }
    }

    /// Forgets a timer (cancelled, or set again by another thread).
    pub(crate) fn remove_timer(&self, t: &crate::timer::TimerShared) {
        self.timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), t));
    }

    /// The live timers of this thread.
    fn live_timers(&self) -> Vec<Arc<crate::timer::TimerShared>> {
        let mut v = Vec::new();
        self.collect_timers(&mut v);
        v
    }

    /// The live timers of this thread, appended to `out`.
    fn collect_timers(&self, out: &mut Vec<Arc<crate::timer::TimerShared>>) {
        let list = self.timers.lock().unwrap_or_else(|p| p.into_inner());
        out.extend(list.iter().filter_map(Weak::upgrade));
    }

    /// Queues the routines of this thread's timers that are due (an
    /// alertable wait of the thread calls it). True when any was queued.
    pub(crate) fn fire_due_timers(&self) -> bool {
        self.timers_due().0
    }

    /// Queues the routines of this thread's timers that are due; whether
    /// any was, and when the next timer is due. One pass through a list
    /// the thread keeps (an alertable wait calls it each round: no
    /// allocation, and no clock read without a timer). Called on the
    /// thread itself.
    pub(crate) fn timers_due(&self) -> (bool, Option<std::time::Instant>) {
        // The timers are let go after the pass, outside every lock (the
        // last handle of one may drop its routine).
        crate::sync::with_kept(&TIMERS, |live| {
            self.collect_timers(live);
            let (mut fired, mut next) = (false, None);
            if live.is_empty() {
                return (fired, next);
            }
            let now = std::time::Instant::now();
            for t in live.iter() {
                if let Some(f) = t.fire_if_due(now) {
                    let _ = self
                        .routines
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(Queued::User(f));
                    fired = true;
                }
                next = match (next, t.due()) {
                    (Some(a), Some(b)) => Some(std::cmp::min(a, b)),
                    (a, b) => a.or(b),
                };
            }
            (fired, next)
        })
    }

    /// The alertable wait on this thread's routine queue (see
    /// [`wait_routines`]).
    pub(crate) fn wait_routines(
        &self,
        alertable: bool,
        block: impl FnMut(&mut dyn FnMut() -> bool) -> bool,
    ) -> bool {
        wait_routines(&self.routines, alertable, block)
    }

    pub(crate) fn has_routines(&self) -> bool {
        !self
            .routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    pub(crate) fn pop_routine(&self) -> Option<Queued> {
        self.routines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
    }
}

thread_local! {
    /// The list [`ThreadCtx::timers_due`] looks at the thread's timers
    /// through, kept between calls.
    static TIMERS: std::cell::Cell<Vec<Arc<crate::timer::TimerShared>>> =
        const { std::cell::Cell::new(Vec::new()) };
}

/// Blocks with `block` (which waits until the deadline it is given, true
/// when its condition holds first) in an alertable wait of the calling
/// thread: the deadline is shortened to the thread's next timer, and a
/// timer that comes due is fired (its routine queued), which ends the block
/// with true. Not alertable: `block` with `deadline` as is.
pub(crate) fn block_with_timers(
    ctx: &ThreadCtx,
    alertable: bool,
    deadline: Option<std::time::Instant>,
    mut block: impl FnMut(Option<std::time::Instant>) -> bool,
) -> bool {
    if !alertable {
        return block(deadline);
    }
    loop {
        let (fired, next) = ctx.timers_due();
        if fired {
            return true;
        }
        let until = match (deadline, next) {
            (Some(d), Some(n)) => Some(d.min(n)),
            (d, n) => d.or(n),
        };
        if block(until) {
            return true;
        }
        match (deadline, next) {
            (_, None) => return false,
            (Some(d), Some(n)) if d <= n => return false,
            _ => {}
        }
    }
}

/// Records where `ctx`'s thread is about to block (or that it no longer
/// does), for [`ThreadCtx::wake`].
pub(crate) fn set_blocked<S: Shim>(ctx: &ThreadCtx<S>, b: Blocked) {
    // The old value is dropped after the unlock.
    let _old = ctx.blocked.with(|x| std::mem::replace(x, b));
}

type RoutineFn = Box<dyn FnOnce(RawDone)>;

struct Local {
    ctx: Arc<ThreadCtx>,
    engines: RefCell<Vec<Weak<Core>>>,
    /// Bumped when `engines` gains one.
    engines_added: Cell<u64>,
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
    /// That wait was a port's, and this thread was the only one taking its
    /// packets: nobody else waits for this thread's next kernel entry.
    sole_worker: Cell<bool>,
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
        // Timers with a routine stop with the thread that set them.
        let timers = self.ctx.live_timers();
        for t in &timers {
            t.owner_exited(&self.ctx);
        }
        self.ctx
            .timers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        let tid = self.ctx.thread.id();
        for e in self.engines.borrow().iter().filter_map(Weak::upgrade) {
            e.thread_left();
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
        ctx: Arc::new(ThreadCtx::new(true)),
        engines: RefCell::new(Vec::new()),
        engines_added: Cell::new(0),
        routines: RefCell::new(Slab::new()),
        in_routine: Cell::new(false),
        defer: Cell::new(0),
        after_wait: Cell::new(false),
        sole_worker: Cell::new(false),
    };
}

/// The calling thread's context (a detached one while the thread is
/// exiting).
pub(crate) fn current_ctx() -> Arc<ThreadCtx> {
    LOCAL
        .try_with(|l| l.ctx.clone())
        .unwrap_or_else(|_| Arc::new(ThreadCtx::new(false)))
}

pub(crate) fn note_engine(e: &Arc<Core>) {
    let _ = LOCAL.try_with(|l| {
        let mut v = l.engines.borrow_mut();
        if !v.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(e))) {
            v.retain(|w| w.strong_count() > 0);
            v.push(Arc::downgrade(e));
            l.engines_added.set(l.engines_added.get().wrapping_add(1));
            e.thread_joined();
        }
    });
}

/// A count of the engines this thread has joined (see [`note_engine`]):
/// a wait on [`thread_engines`] looks again when it changes, without
/// collecting the list each time.
pub(crate) fn thread_engines_added() -> u64 {
    LOCAL.try_with(|l| l.engines_added.get()).unwrap_or(0)
}

/// The engines the calling thread has started operations on.
pub(crate) fn thread_engines() -> Vec<Engine> {
    let mut v = Vec::new();
    collect_thread_engines(&mut v);
    v
}

fn collect_thread_engines(out: &mut Vec<Engine>) {
    let _ = LOCAL.try_with(|l| {
        out.extend(
            l.engines
                .borrow()
                .iter()
                .filter_map(Weak::upgrade)
                .map(|inner| Engine { inner }),
        );
    });
}

/// `f` on [`thread_engines`], collected into a list the thread keeps (a
/// wait calls it each round: no allocation in the steady state; a call
/// nested in `f` gets a list of its own).
pub(crate) fn with_thread_engines<R>(f: impl FnOnce(&[Engine]) -> R) -> R {
    crate::sync::with_kept(&ENGINES, |v| {
        collect_thread_engines(v);
        f(v)
    })
}

thread_local! {
    /// The list of [`with_thread_engines`].
    static ENGINES: Cell<Vec<Engine>> = const { Cell::new(Vec::new()) };
}

/// Submits what this thread left for its next kernel entry on its engines
/// other than `driven` (those the wait it is about to block in enters,
/// which submit it themselves); with none, on all of them.
pub(crate) fn flush_engines_except(driven: &[Engine]) {
    let _ = LOCAL.try_with(|l| {
        for e in l.engines.borrow().iter().filter_map(Weak::upgrade) {
            if !driven.iter().any(|d| Arc::ptr_eq(&d.inner, &e)) {
                e.flush_now();
            }
        }
    });
}

pub(crate) fn submits_deferred() -> bool {
    LOCAL
        .try_with(|l| l.in_routine.get() || l.defer.get() > 0 || l.after_wait.get())
        .unwrap_or(false)
}

/// Whether this thread's sends may wait for its next kernel entry: it runs
/// completion routines or polls async tasks (a batch whose requests only
/// this thread submits, soon), or it answers a wait that returned work
/// (a port packet, a set event) while nobody else waits for its next
/// kernel entry: it is the only thread taking the port's packets
/// (`sole_worker`), or the only live thread that has used the engine
/// (`engine_alone`). Not for a port worker with company, nor a thread
/// sharing its engine: a request left for one thread's next kernel entry
/// waits while that thread keeps working, and its completion is handed
/// across threads (`ovl bench --scale`: two port workers did 0.91-0.94x
/// the work of one when every worker batched its sends).
pub(crate) fn sends_batched(engine_alone: bool) -> bool {
    LOCAL
        .try_with(|l| {
            l.in_routine.get()
                || l.defer.get() > 0
                || (l.after_wait.get() && (l.sole_worker.get() || engine_alone))
        })
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
///
/// `sole_worker`: the wait was a port's and this thread was the only one
/// taking its packets (see [`sends_batched`]).
pub(crate) fn wait_returned(work: bool, sole_worker: bool) {
    let _ = LOCAL.try_with(|l| {
        l.after_wait.set(work);
        l.sole_worker.set(work && sole_worker);
    });
    if !work {
        flush_engines_except(&[]);
    }
}

/// An alertable wait returns at once because routines are queued: the
/// engines still get reaped now and then (see [`Core::reap_if_due`]).
pub(crate) fn reap_thread_engines_if_due() {
    with_thread_engines(|engines| {
        for e in engines {
            e.reap_if_due();
        }
    });
}

/// Runs `f` with submissions deferred: operations started inside it are
/// submitted together by the next kernel entry of this thread (any wait, or
/// the end of the batch).
#[cfg(feature = "rt")]
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
                flush_engines_except(&[]);
            }
        }
    }
    let _ = LOCAL.try_with(|l| l.defer.set(l.defer.get() + 1));
    let _end = End;
    f()
}

/// Runs `f` with submissions deferred and leaves what it queued
/// unsubmitted: the caller hands it to someone who submits it soon (the
/// tokio driver, see [`crate::tokio`]), as [`batch`] does to its end.
#[cfg(feature = "tokio")]
pub(crate) fn leave_unsubmitted<R>(f: impl FnOnce() -> R) -> R {
    struct End;
    impl Drop for End {
        fn drop(&mut self) {
            let _ = LOCAL.try_with(|l| l.defer.set(l.defer.get().saturating_sub(1)));
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
                flush_engines_except(&[]);
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
        match ctx.pop_routine() {
            None => break,
            Some(Queued::Op(id, raw)) => {
                let f = LOCAL.with(|l| l.routines.borrow_mut().try_remove(id));
                if let Some(f) = f {
                    f(raw);
                    n += 1;
                }
            }
            Some(Queued::User(f)) => {
                f();
                n += 1;
            }
        }
    }
    n
}
