//! A manual-reset event's state and the wait for many of them
//! (`WSAWaitForMultipleEvents`).

use super::{Lock, wait_loop};

/// A manual-reset event's state: set or not, and who waits on it.
#[derive(Debug)]
pub(crate) struct Signal<W> {
    set: bool,
    waiters: Vec<W>,
}

impl<W> Default for Signal<W> {
    fn default() -> Self {
        Signal {
            set: false,
            waiters: Vec::new(),
        }
    }
}

impl<W: Clone> Signal<W> {
    /// Sets the event; returns the waiters to wake (all of them: a
    /// manual-reset event releases every waiter).
    pub(crate) fn set(&mut self) -> Vec<W> {
        self.set = true;
        self.waiters.clone()
    }

    pub(crate) fn reset(&mut self) {
        self.set = false;
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set
    }

    pub(crate) fn waiters(&self) -> Vec<W> {
        self.waiters.clone()
    }

    pub(crate) fn add_waiter(&mut self, w: W) {
        self.waiters.push(w);
    }

    /// Removes one registration of the waiter `is_me` picks.
    pub(crate) fn remove_waiter(&mut self, is_me: impl Fn(&W) -> bool) {
        if let Some(i) = self.waiters.iter().position(is_me) {
            self.waiters.swap_remove(i);
        }
    }
}

/// How [`wait_signals`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SignalWait {
    /// Any: the lowest set index; all: 0.
    Signalled(usize),
    /// `interrupted` held (an alertable wait's routines are queued).
    Interrupted,
    TimedOut,
}

/// Waits until one of `sigs` is set (or all of them, with `all`), or
/// `interrupted()` holds, blocking with `block` (see [`wait_loop`]).
/// `waker` is registered on every signal while the wait blocks; `is_me`
/// finds it again to unregister it.
pub(crate) fn wait_signals<W: Clone, L: Lock<Signal<W>>>(
    sigs: &[&L],
    all: bool,
    waker: &W,
    is_me: impl Fn(&W) -> bool,
    mut interrupted: impl FnMut() -> bool,
    block: impl FnMut(&mut dyn FnMut() -> bool) -> bool,
) -> SignalWait {
    let state = || -> Option<usize> {
        if all {
            sigs.iter().all(|s| s.with(|s| s.is_set())).then_some(0)
        } else {
            sigs.iter().position(|s| s.with(|s| s.is_set()))
        }
    };
    let mut check = move || -> Option<SignalWait> {
        if interrupted() {
            return Some(SignalWait::Interrupted);
        }
        state().map(SignalWait::Signalled)
    };
    if let Some(r) = check() {
        return r;
    }
    for s in sigs {
        s.with(|s| s.add_waiter(waker.clone()));
    }
    let check = std::cell::RefCell::new(check);
    let r = wait_loop(
        || (check.borrow_mut())(),
        || (check.borrow_mut())().is_some(),
        block,
        || (check.borrow_mut())().unwrap_or(SignalWait::TimedOut),
    );
    for s in sigs {
        s.with(|s| s.remove_waiter(&is_me));
    }
    r
}
