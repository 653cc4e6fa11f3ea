//! Waitable timers with a completion routine (`SetWaitableTimer` with an
//! APC): the routine runs in an alertable wait of the thread that set the
//! timer, once per period.
//!
//! No thread keeps the time: the alertable waits of the thread that set a
//! timer ([`sleep_ex`](crate::sleep_ex), alertable
//! [`wait_for_events`](crate::wait_for_events), alertable port waits) end
//! no later than its due time, queue its routine to the thread and return
//! *I/O completion* after running it. A thread that is not in an alertable
//! wait when the time comes finds the routine queued at its next one.
//!
//! Rules we chose where Windows leaves room:
//!
//! * **Missed periods coalesce.** A thread that comes to an alertable wait
//!   several periods late runs the routine once, and the next run is due at
//!   the next multiple of the period from the first due time.
//! * **Cancel means never again.** [`WaitableTimer::cancel`], setting the
//!   timer again, and dropping it also drop a run already queued but not
//!   yet run.
//! * **Thread exit.** A timer whose thread exits is cancelled.

use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use crate::thread::{ThreadCtx, current_ctx};

type TimerRoutine = Arc<Mutex<Box<dyn FnMut() + Send>>>;

/// A waitable timer whose routine runs in the alertable waits of the
/// thread that set it. `Send + Sync`; dropping it cancels it.
///
/// # Examples
///
/// ```
/// use overlapped::{SleepOutcome, WaitableTimer, sleep_ex};
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicU32, Ordering};
/// use std::time::Duration;
///
/// let ticks = Arc::new(AtomicU32::new(0));
/// let t = ticks.clone();
/// let timer = WaitableTimer::new();
/// timer
///     .set(Duration::from_millis(5), Some(Duration::from_millis(5)), move || {
///         t.fetch_add(1, Ordering::Relaxed);
///     })
///     .unwrap();
/// while ticks.load(Ordering::Relaxed) < 3 {
///     assert_eq!(sleep_ex(Some(Duration::from_secs(5)), true), SleepOutcome::IoCompletion);
/// }
/// timer.cancel();
/// ```
#[doc(alias = "CreateWaitableTimer")]
pub struct WaitableTimer {
    shared: Arc<TimerShared>,
}

/// A timer's state, shared with the thread that set it (which holds it
/// weakly: the timer stops when its last handle goes).
#[derive(Default)]
pub(crate) struct TimerShared {
    st: Mutex<TimerState>,
}

#[derive(Default)]
struct TimerState {
    due: Option<Instant>,
    period: Option<Duration>,
    routine: Option<TimerRoutine>,
    /// Bumped by every set and cancel: a run queued before is dropped.
    generation: u64,
    owner: Option<Weak<ThreadCtx>>,
}

impl fmt::Debug for WaitableTimer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("WaitableTimer")
            .field("due", &st.due)
            .field("period", &st.period)
            .finish_non_exhaustive()
    }
}

impl Default for WaitableTimer {
    fn default() -> Self {
        WaitableTimer::new()
    }
}

impl WaitableTimer {
    /// `CreateWaitableTimer`: a timer that is not set.
    pub fn new() -> WaitableTimer {
        WaitableTimer {
            shared: Arc::new(TimerShared::default()),
        }
    }

    /// `SetWaitableTimer(timer, due, period, routine)`: `routine` runs on
    /// the calling thread, in its first alertable wait once `due` has
    /// passed, then once per `period` (`None`: once). Setting a timer that
    /// is set replaces its time and routine (a run already queued is
    /// dropped).
    ///
    /// # Errors
    /// `InvalidInput` for a zero `period`; `BrokenPipe` when called while
    /// the calling thread exits (no alertable wait would run the routine).
    #[doc(alias = "SetWaitableTimer")]
    pub fn set(
        &self,
        due: Duration,
        period: Option<Duration>,
        routine: impl FnMut() + Send + 'static,
    ) -> io::Result<()> {
        if period == Some(Duration::ZERO) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a periodic timer with a zero period",
            ));
        }
        let ctx = current_ctx();
        if ctx.exited() {
            return Err(thread_exited());
        }
        let old = {
            let mut st = self.shared.lock();
            st.generation += 1;
            st.due = Some(Instant::now() + due);
            st.period = period;
            st.routine = Some(Arc::new(Mutex::new(Box::new(routine))));
            st.owner.replace(Arc::downgrade(&ctx))
        };
        if let Some(old) = old.and_then(|w| w.upgrade()) {
            if !Arc::ptr_eq(&old, &ctx) {
                old.remove_timer(&self.shared);
            }
        }
        ctx.add_timer(&self.shared);
        Ok(())
    }

    /// `CancelWaitableTimer`: the routine runs no more (not even a run
    /// already queued). The timer may be set again.
    #[doc(alias = "CancelWaitableTimer")]
    pub fn cancel(&self) {
        let owner = {
            let mut st = self.shared.lock();
            st.generation += 1;
            st.due = None;
            st.period = None;
            st.routine = None;
            st.owner.take()
        };
        if let Some(owner) = owner.and_then(|w| w.upgrade()) {
            owner.remove_timer(&self.shared);
        }
    }

    /// True while the timer is set (it has a run to come).
    pub fn is_set(&self) -> bool {
        self.shared.lock().due.is_some()
    }
}

impl Drop for WaitableTimer {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl TimerShared {
    fn lock(&self) -> MutexGuard<'_, TimerState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the routine is next due.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.lock().due
    }

    /// At or after the due time: the run to queue to the owner thread, and
    /// the timer moves to its next period (or stops).
    pub(crate) fn fire_if_due(self: &Arc<Self>, now: Instant) -> Option<Box<dyn FnOnce() + Send>> {
        let mut st = self.lock();
        let due = st.due.filter(|d| *d <= now)?;
        let routine = st.routine.clone()?;
        st.due = st.period.map(|p| next_due(due, p, now));
        if st.due.is_none() {
            st.routine = None;
        }
        let generation = st.generation;
        let me = Arc::downgrade(self);
        Some(Box::new(move || {
            let Some(t) = me.upgrade() else { return };
            if t.lock().generation != generation {
                return;
            }
            // The timer's lock is not held: the routine may set or cancel it.
            let mut f = routine.lock().unwrap_or_else(|p| p.into_inner());
            (*f)();
        }))
    }

    /// The thread that set the timer exits: the timer is cancelled.
    pub(crate) fn owner_exited(&self, ctx: &Arc<ThreadCtx>) {
        let mut st = self.lock();
        let mine = st
            .owner
            .as_ref()
            .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(ctx)));
        if mine {
            st.generation += 1;
            st.due = None;
            st.period = None;
            st.routine = None;
            st.owner = None;
        }
    }
}

/// The first multiple of `period` after `due` that is later than `now`
/// (missed periods coalesce).
fn next_due(due: Instant, period: Duration, now: Instant) -> Instant {
    let missed = now.saturating_duration_since(due).as_nanos() / period.as_nanos().max(1);
    let n = u32::try_from(missed + 1).unwrap_or(u32::MAX);
    period
        .checked_mul(n)
        .and_then(|d| due.checked_add(d))
        .unwrap_or(now + period)
}

pub(crate) fn thread_exited() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the thread has exited: it runs no more routines",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missed_periods_coalesce() {
        let t0 = Instant::now();
        let p = Duration::from_millis(10);
        assert_eq!(next_due(t0, p, t0), t0 + p);
        assert_eq!(next_due(t0, p, t0 + Duration::from_millis(35)), t0 + 4 * p);
        assert_eq!(next_due(t0, p, t0 + Duration::from_millis(40)), t0 + 5 * p);
    }
}
