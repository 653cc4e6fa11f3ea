//! Event objects (`WSAEVENT`) and the wait for many events
//! (`WSAWaitForMultipleEvents`).
//!
//! Events are manual-reset: [`Event::set`] releases every waiter and the
//! event stays set until [`Event::reset`]. An operation started with an event
//! resets it at start and sets it on completion (also when it completed at
//! start). Waits drive the engines whose operations will set the events
//! ("whoever waits, drives").

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use smallvec::SmallVec;

use crate::core::{Sock, Watch, Watched, wait_until, wait_watching};
use crate::engine::{Engine, WeakEngine};
use crate::net::Socket;
use crate::thread::{
    ThreadCtx, block_with_timers, current_ctx, in_routine, reap_thread_engines_if_due,
    run_routines, thread_engines, thread_engines_added, wait_entered, wait_returned,
};
use crate::wait::{Signal, SignalWait, wait_signals};

/// A manual-reset event object. Cheap to clone (a shared handle); `Send +
/// Sync`; dropping one handle never disturbs a waiter holding another.
#[derive(Clone, Default)]
pub struct Event {
    inner: Arc<EvInner>,
}

#[derive(Default)]
struct EvInner {
    sig: Mutex<Signal<Arc<ThreadCtx>>>,
    /// The engine of the last operation started with this event: a wait
    /// drives it.
    engine: Mutex<Option<WeakEngine>>,
    /// Bumped when `engine` changes: a wait compares the sum over its
    /// events instead of collecting their engines again.
    binds: std::sync::atomic::AtomicU64,
    /// The sockets selected into this event (`WSAEventSelect`), which a
    /// wait on it watches (see `core/waits.rs`).
    selected: Mutex<Selected>,
}

/// The sockets an event was selected into, and a count of the changes to
/// what its waiters should watch of them.
#[derive(Default)]
struct Selected {
    socks: Vec<(WeakEngine, Weak<Sock>)>,
    changes: u64,
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

impl Event {
    /// `WSACreateEvent`: a new event, not set.
    #[doc(alias = "WSACreateEvent")]
    pub fn new() -> Event {
        Event::default()
    }

    fn lock(&self) -> MutexGuard<'_, Signal<Arc<ThreadCtx>>> {
        self.inner.sig.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `WSASetEvent`: sets the event and releases every waiter.
    #[doc(alias = "WSASetEvent")]
    pub fn set(&self) {
        self.inner.set_and_wake();
    }

    /// The event as the core sets it when an operation completes (a share
    /// of the same event, no allocation).
    pub(crate) fn signal(&self) -> Arc<dyn crate::core::Signal> {
        self.inner.clone()
    }

    /// `WSAResetEvent`: clears the event.
    #[doc(alias = "WSAResetEvent")]
    pub fn reset(&self) {
        self.lock().reset();
    }

    /// True when set. Never blocks.
    pub fn is_set(&self) -> bool {
        self.lock().is_set()
    }

    /// Waits for this one event (see [`wait_for_events`]). True when set,
    /// false on timeout.
    pub fn wait(&self, timeout: Option<Duration>) -> bool {
        matches!(
            wait_for_events(std::slice::from_ref(self), WaitMode::Any, timeout, false),
            Ok(WaitOutcome::Event(0))
        )
    }

    pub(crate) fn bind_engine(&self, e: &Engine) {
        {
            let mut engine = self.inner.engine.lock().unwrap_or_else(|p| p.into_inner());
            if engine.as_ref().is_some_and(|w| w.is(e)) {
                return;
            }
            *engine = Some(e.downgrade());
            self.inner
                .binds
                .fetch_add(1, std::sync::atomic::Ordering::Release);
        }
        // Waiters re-read the engines to drive.
        let waiters = self.lock().waiters();
        for w in waiters {
            w.wake();
        }
    }

    fn engine(&self) -> Option<Engine> {
        self.inner
            .engine
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .and_then(WeakEngine::upgrade)
    }

    pub(crate) fn same(&self, other: &Event) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    fn selected(&self) -> MutexGuard<'_, Selected> {
        self.inner
            .selected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// `sock` (of `engine`) is being selected into this event: waits on
    /// the event watch it from now on.
    pub(crate) fn note_selected(&self, engine: &Engine, sock: &Arc<Sock>) {
        let mut sel = self.selected();
        let known = sel
            .socks
            .iter()
            .any(|(_, s)| std::ptr::eq(s.as_ptr(), Arc::as_ptr(sock)));
        if !known {
            sel.socks.push((engine.downgrade(), Arc::downgrade(sock)));
        }
    }

    /// What the waiters should watch of the selected sockets changed: they
    /// look again.
    pub(crate) fn rewatch(&self) {
        self.selected().changes += 1;
        let waiters = self.lock().waiters();
        for w in waiters {
            w.wake();
        }
    }

    fn select_changes(&self) -> u64 {
        self.selected().changes
    }

    /// The selected sockets with their engines; those gone are forgotten.
    fn selected_socks(&self) -> Vec<(Engine, Arc<Sock>)> {
        let mut sel = self.selected();
        let mut out = Vec::new();
        sel.socks.retain(|(e, s)| match (e.upgrade(), s.upgrade()) {
            (Some(e), Some(s)) => {
                out.push((e, s));
                true
            }
            _ => false,
        });
        out
    }

    /// What a wait on this event watches now: the selected sockets'
    /// descriptors, for their events still enabled. A socket no longer
    /// selected into the event is forgotten.
    fn watches(&self, out: &mut Vec<(Engine, Arc<Sock>, Watch)>) {
        let mut gone = Vec::new();
        for (e, sock) in self.selected_socks() {
            match e.inner.select_watch(&sock, self) {
                Watched::Gone => gone.push(sock),
                Watched::Quiet => {}
                Watched::Watch(w) => out.push((e, sock, w)),
            }
        }
        if !gone.is_empty() {
            self.selected().socks.retain(|(_, s)| {
                !gone
                    .iter()
                    .any(|g| std::ptr::eq(s.as_ptr(), Arc::as_ptr(g)))
            });
        }
    }
}

impl EvInner {
    fn set_and_wake(&self) {
        let waiters = self.sig.lock().unwrap_or_else(|p| p.into_inner()).set();
        for w in waiters {
            w.wake();
        }
    }
}

impl crate::core::Signal for EvInner {
    fn set(&self) {
        self.set_and_wake();
    }
}

/// An object [`wait_for_events`] can wait on: an [`Event`], a [`Socket`]
/// (signalled on each completion of its operations, see SPEC t03), a
/// reference to one, or a [`Waitable`] to mix both in one list.
pub trait AsWaitable {
    /// The event that stands for the object in a wait (for an event,
    /// itself).
    fn waitable_event(&self) -> Cow<'_, Event>;
}

impl AsWaitable for Event {
    fn waitable_event(&self) -> Cow<'_, Event> {
        Cow::Borrowed(self)
    }
}

impl<T: AsWaitable + ?Sized> AsWaitable for &T {
    fn waitable_event(&self) -> Cow<'_, Event> {
        (**self).waitable_event()
    }
}

/// An event or a socket, to wait on both in one [`wait_for_events`] list.
///
/// # Examples
///
/// ```
/// use overlapped::{Engine, Event, Socket, WaitMode, WaitOutcome, Waitable, wait_for_events};
/// use std::time::Duration;
///
/// # fn main() -> std::io::Result<()> {
/// let engine = Engine::new()?;
/// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
/// let stop = Event::new();
/// let list = [Waitable::from(&stop), Waitable::from(&listener)];
/// let r = wait_for_events(&list, WaitMode::Any, Some(Duration::ZERO), false)?;
/// assert_eq!(r, WaitOutcome::Timeout);
/// stop.set();
/// let r = wait_for_events(&list, WaitMode::Any, Some(Duration::ZERO), false)?;
/// assert_eq!(r, WaitOutcome::Event(0));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub enum Waitable<'a> {
    /// An event object.
    Event(&'a Event),
    /// A socket's handle.
    Socket(&'a Socket),
}

impl<'a> From<&'a Event> for Waitable<'a> {
    fn from(e: &'a Event) -> Self {
        Waitable::Event(e)
    }
}

impl<'a> From<&'a Socket> for Waitable<'a> {
    fn from(s: &'a Socket) -> Self {
        Waitable::Socket(s)
    }
}

impl AsWaitable for Waitable<'_> {
    fn waitable_event(&self) -> Cow<'_, Event> {
        match self {
            Waitable::Event(e) => e.waitable_event(),
            Waitable::Socket(s) => s.waitable_event(),
        }
    }
}

/// Wait for any one event, or for all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// Return when at least one is set: the lowest set index.
    Any,
    /// Return when all are set at once.
    All,
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WaitOutcome {
    /// `WSA_WAIT_EVENT_0 + i`: for [`WaitMode::Any`] the lowest index among
    /// the set events; for [`WaitMode::All`] always 0.
    Event(usize),
    /// `WSA_WAIT_TIMEOUT`.
    Timeout,
    /// `WSA_WAIT_IO_COMPLETION`: an alertable wait ran one or more
    /// completion routines; wait again.
    IoCompletion,
}

/// `WSAWaitForMultipleEvents(events, mode, timeout, alertable)`, also
/// `WaitForMultipleObjectsEx` over events and sockets ([`AsWaitable`]).
///
/// * `timeout`: `None` waits without limit; `Some(Duration::ZERO)` polls.
/// * Any number of events (Winsock's limit of 64 is lifted).
/// * `alertable`: the calling thread's queued completion routines run
///   inside the wait, which then returns [`WaitOutcome::IoCompletion`]; when
///   routines are queued at entry they run first, even if an event is
///   already set. Inside a completion routine waits are never alertable
///   (routines do not nest).
/// * The wait drives the engines of the operations bound to the events (and,
///   when alertable, those the thread started operations on).
/// * A socket in the list is signalled by each completion of its
///   operations and reset when one starts (unless it opted out with
///   [`Socket::set_skip_event_on_handle`]); the completions before its
///   first wait count too.
/// * An alertable wait also ends for the routines of the thread's
///   [`WaitableTimer`](crate::WaitableTimer)s.
///
/// # Errors
/// `InvalidInput` for an empty list, or for the same event twice in a
/// [`WaitMode::All`] wait.
#[doc(alias = "WSAWaitForMultipleEvents")]
pub fn wait_for_events<W: AsWaitable>(
    objects: &[W],
    mode: WaitMode,
    timeout: Option<Duration>,
    alertable: bool,
) -> io::Result<WaitOutcome> {
    // Inline for the usual handful of objects: no allocation per wait.
    let events: SmallVec<[Cow<'_, Event>; 8]> =
        objects.iter().map(AsWaitable::waitable_event).collect();
    if events.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "wait on an empty list of events",
        ));
    }
    if mode == WaitMode::All {
        for (i, a) in events.iter().enumerate() {
            if events[..i].iter().any(|b| a.same(b)) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the same event appears twice in a wait-all list",
                ));
            }
        }
    }
    wait_entered();
    let r = wait_inner(&events, mode, timeout, alertable);
    wait_returned(!matches!(r, WaitOutcome::Timeout), false);
    if r == WaitOutcome::IoCompletion {
        run_routines();
    }
    Ok(r)
}

/// The wait itself; routines are run by the caller.
fn wait_inner(
    events: &[Cow<'_, Event>],
    mode: WaitMode,
    timeout: Option<Duration>,
    alertable: bool,
) -> WaitOutcome {
    let alertable = alertable && !in_routine();
    let ctx = current_ctx();
    if alertable && (ctx.fire_due_timers() || ctx.has_routines()) {
        reap_thread_engines_if_due();
        return WaitOutcome::IoCompletion;
    }
    let deadline = timeout.map(|t| Instant::now() + t);
    let engines_of = || {
        let mut v: Vec<Engine> = Vec::new();
        let mut push = |e: Engine| {
            if !v.iter().any(|x| x.same(&e)) {
                v.push(e);
            }
        };
        for e in events.iter().filter_map(|e| e.engine()) {
            push(e);
        }
        // The engines of the selected sockets: their operations (which
        // silence readiness events while pending) complete.
        for ev in events {
            for (e, _) in ev.selected_socks() {
                push(e);
            }
        }
        if alertable {
            for e in thread_engines() {
                push(e);
            }
        }
        v
    };
    // What changes the engines to drive or the sockets to watch: an event
    // bound to another engine, a change to a selection, an engine the
    // thread joined (alertable).
    let changes = || {
        events
            .iter()
            .map(|e| e.inner.binds.load(std::sync::atomic::Ordering::Acquire) + e.select_changes())
            .fold(0u64, u64::wrapping_add)
            .wrapping_add(if alertable { thread_engines_added() } else { 0 })
    };
    // Drive the engines of the events (and, alertable, the thread's); again
    // when that set changes. Watch the sockets selected into the events
    // (SPEC t04), again when what to watch of them changes.
    let block = |ready: &mut dyn FnMut() -> bool| {
        block_with_timers(&ctx, alertable, deadline, |until| {
            let seen = changes();
            let engines = engines_of();
            let mut watches = Vec::new();
            for ev in events {
                ev.watches(&mut watches);
            }
            let mut ready = || ready() || changes() != seen;
            if watches.is_empty() {
                wait_until(&engines, until, &mut ready)
            } else {
                wait_watching(&engines, &watches, until, &mut ready)
            }
        })
    };
    let sigs: SmallVec<[&Mutex<Signal<Arc<ThreadCtx>>>; 8]> =
        events.iter().map(|e| &e.inner.sig).collect();
    let r = wait_signals(
        &sigs,
        mode == WaitMode::All,
        &ctx,
        |w| Arc::ptr_eq(w, &ctx),
        || alertable && ctx.has_routines(),
        block,
    );
    match r {
        SignalWait::Signalled(i) => WaitOutcome::Event(i),
        SignalWait::Interrupted => WaitOutcome::IoCompletion,
        SignalWait::TimedOut => WaitOutcome::Timeout,
    }
}
