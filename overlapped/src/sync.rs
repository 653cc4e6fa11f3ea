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

/// Runs `f` on the list the thread keeps in `key`: taken empty, cleared
/// and put back after `f`, so a call that runs often allocates nothing in
/// the steady state. Its elements are dropped after `f` returns (outside
/// whatever `f` locked). A call nested in `f`, or on a thread whose locals
/// are gone, gets a fresh list.
pub(crate) fn with_kept<T: 'static, R>(
    key: &'static std::thread::LocalKey<std::cell::Cell<Vec<T>>>,
    f: impl FnOnce(&mut Vec<T>) -> R,
) -> R {
    let mut v = key.try_with(std::cell::Cell::take).unwrap_or_default();
    v.clear();
    let r = f(&mut v);
    v.clear();
    let _ = key.try_with(move |c| c.set(v));
    r
}

/// Counters that many threads bump without sharing a cache line: each
/// thread adds to its own shard (chosen once per thread), and a read sums
/// the shards. An engine-wide counter bumped by every operation made two
/// threads on one engine trade that line at each bump (the
/// `lock incq` was the hottest instruction of an operation's start in the
/// two-worker port benchmark). `N`: how many counters.
pub(crate) struct Counters<const N: usize> {
    shards: Box<[Shard<N>; SHARDS]>,
}

/// Shards per counter set: threads beyond this share shards (still
/// correct, only contended).
const SHARDS: usize = 16;

/// One thread's counters, alone on their cache lines (two lines: the
/// adjacent-line prefetcher pairs them).
#[repr(align(128))]
struct Shard<const N: usize>([std::sync::atomic::AtomicU64; N]);

impl<const N: usize> Default for Counters<N> {
    fn default() -> Self {
        Counters {
            shards: Box::new(std::array::from_fn(|_| {
                Shard(std::array::from_fn(|_| {
                    std::sync::atomic::AtomicU64::new(0)
                }))
            })),
        }
    }
}

impl<const N: usize> fmt::Debug for Counters<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries((0..N).map(|i| self.get(i))).finish()
    }
}

impl<const N: usize> Counters<N> {
    /// Adds 1 to counter `i` (this thread's shard).
    pub(crate) fn bump(&self, i: usize) {
        self.shards[shard()].0[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Takes 1 from counter `i` (a bump taken back; the shard's value may
    /// wrap, the sum does not).
    pub(crate) fn unbump(&self, i: usize) {
        self.shards[shard()].0[i].fetch_sub(1, Ordering::Relaxed);
    }

    /// Counter `i`: the sum of the shards.
    pub(crate) fn get(&self, i: usize) -> u64 {
        self.shards
            .iter()
            .fold(0u64, |a, s| a.wrapping_add(s.0[i].load(Ordering::Relaxed)))
    }
}

/// The calling thread's shard, handed out round-robin at its first bump.
fn shard() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: std::cell::Cell<usize> = const { std::cell::Cell::new(usize::MAX) };
    }
    MINE.try_with(|m| {
        let v = m.get();
        if v != usize::MAX {
            return v;
        }
        let v = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
        m.set(v);
        v
    })
    .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::Counters;

    #[test]
    fn sharded_counters_sum_every_thread() {
        let c = std::sync::Arc::new(Counters::<2>::default());
        let threads: Vec<_> = (0..20)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        c.bump(0);
                    }
                    c.bump(1);
                    c.unbump(1);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get(0), 20_000);
        assert_eq!(c.get(1), 0);
    }
}
