//! The sync shim: the few primitives the blocking protocols use (a lock, a
//! flag, a thread to park and unpark), behind traits, so that the code of
//! those protocols is written once and runs on std's primitives in
//! production ([`Std`]) and on loom's in the models (`Loom`, tests only),
//! which check it over every interleaving of a few threads.
//!
//! Used by the waits of [`wait`](crate::wait) ([`Lock`]) and by the driving
//! protocol ([`wait::drive`](crate::wait::drive), [`ThreadCtx`]'s wake-up),
//! both generic over it.
//!
//! [`ThreadCtx`]: crate::thread::ThreadCtx

use std::fmt;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A lock over `T` (std's `Mutex` in production, loom's in the models).
/// A poisoned lock is used as it is: whoever panicked left the state
/// consistent or not, either way the engine goes on.
pub(crate) trait Lock<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

impl<T> Lock<T> for std::sync::Mutex<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

#[cfg(test)]
impl<T> Lock<T> for loom::sync::Mutex<T> {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().unwrap())
    }
}

/// An atomic flag (`AtomicBool`, std's or loom's).
pub(crate) trait Flag: Default + Send + Sync {
    fn load(&self, order: Ordering) -> bool;
    fn store(&self, v: bool, order: Ordering);
    /// Sets it from `false` to `true`; false when it was already set.
    fn raise(&self, success: Ordering, failure: Ordering) -> bool;
}

macro_rules! flag {
    ($t:ty) => {
        impl Flag for $t {
            fn load(&self, order: Ordering) -> bool {
                <$t>::load(self, order)
            }
            fn store(&self, v: bool, order: Ordering) {
                <$t>::store(self, v, order)
            }
            fn raise(&self, success: Ordering, failure: Ordering) -> bool {
                self.compare_exchange(false, true, success, failure).is_ok()
            }
        }
    };
}

flag!(std::sync::atomic::AtomicBool);
#[cfg(test)]
flag!(loom::sync::atomic::AtomicBool);

/// A family of primitives: threads and how they park, a lock, a flag.
pub(crate) trait Shim: Sized + Send + Sync + 'static {
    type Flag: Flag;
    type Mutex<T: Send>: Lock<T> + Send + Sync;
    type Thread: Clone + fmt::Debug + Send + Sync;

    fn mutex<T: Send>(t: T) -> Self::Mutex<T>;
    fn current() -> Self::Thread;
    /// Parks the calling thread until unparked (a wake-up given before is
    /// kept: the park then returns at once) or, with a timeout, until it
    /// passes. It may return early.
    fn park(timeout: Option<Duration>);
    fn unpark(t: &Self::Thread);
}

/// The production primitives: std's.
#[derive(Debug)]
pub(crate) struct Std;

impl Shim for Std {
    type Flag = std::sync::atomic::AtomicBool;
    type Mutex<T: Send> = std::sync::Mutex<T>;
    type Thread = std::thread::Thread;

    fn mutex<T: Send>(t: T) -> Self::Mutex<T> {
        std::sync::Mutex::new(t)
    }
    fn current() -> Self::Thread {
        std::thread::current()
    }
    fn park(timeout: Option<Duration>) {
        match timeout {
            Some(t) => std::thread::park_timeout(t),
            None => std::thread::park(),
        }
    }
    fn unpark(t: &Self::Thread) {
        t.unpark();
    }
}

/// The models' primitives: loom's (inside `loom::model` only).
///
/// A thread parks on a [`loom::sync::Notify`] of its own ([`LoomThread`]),
/// not with `loom::thread::park`: loom's unpark also makes runnable a
/// thread blocked on a lock or a condition variable (it then fails to take
/// the lock), while `std`'s touches nothing but the park token.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct Loom;

/// A loom model's thread, as [`Loom`] parks and unparks it.
#[cfg(test)]
#[derive(Clone, Debug)]
pub(crate) struct LoomThread(std::sync::Arc<loom::sync::Notify>);

#[cfg(test)]
loom::thread_local! {
    static PARKER: LoomThread = LoomThread(std::sync::Arc::new(loom::sync::Notify::new()));
}

#[cfg(test)]
impl Shim for Loom {
    type Flag = loom::sync::atomic::AtomicBool;
    type Mutex<T: Send> = loom::sync::Mutex<T>;
    type Thread = LoomThread;

    fn mutex<T: Send>(t: T) -> Self::Mutex<T> {
        loom::sync::Mutex::new(t)
    }
    fn current() -> Self::Thread {
        PARKER.with(LoomThread::clone)
    }
    /// A timed park returns at once (a timeout may end early), after giving
    /// the other threads their turn: loom has no time.
    fn park(timeout: Option<Duration>) {
        match timeout {
            Some(_) => loom::thread::yield_now(),
            None => PARKER.with(|p| p.0.wait()),
        }
    }
    fn unpark(t: &Self::Thread) {
        t.0.notify();
    }
}
