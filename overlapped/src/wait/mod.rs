//! The three blocking waits of the model — a port's `get_queued`, the wait
//! for events, the alertable wait for routines — as engine-free state
//! machines and **one** wait loop ([`wait_loop`]) that all three use in
//! production, generic over a small sync shim ([`crate::sync`]) so that the
//! `loom` models (`models.rs`) run the very same code over every
//! interleaving of a few threads. [`drive`] does the same for the driving
//! protocol: who blocks in an engine, and how a wake-up reaches it.
//!
//! The wake protocol:
//!
//! * a waiter checks its condition under the object's lock and, when it does
//!   not hold, registers itself there; then it blocks (unlocked) and checks
//!   again after every wake-up;
//! * a waker changes the state under the lock, takes the waiters to wake out
//!   of it, and wakes them after unlocking.
//!
//! Blocking keeps a token (park/unpark, or the engine's wake-up), so a wake
//! that lands between the waiter's check and its block is not lost.

pub(crate) mod drive;
mod port;
mod routines;
mod signal;

#[cfg(test)]
mod drive_models;
#[cfg(test)]
mod models;

#[cfg(test)]
use port::Closed;
pub(crate) use port::{Got, PortQueue, get_queued};
pub(crate) use routines::{RoutineQueue, wait_routines};
pub(crate) use signal::{Signal, SignalWait, wait_signals};

pub(crate) use crate::sync::Lock;

/// The one wait loop.
///
/// * `check` runs the waiter's condition under the object's lock: `Some`
///   ends the wait; `None` means the waiter is registered to be woken.
/// * `block` blocks until the `ready` it is given holds (true) or the
///   deadline passes (false); in production it drives the engines
///   ("whoever waits, drives"), in the models it parks.
/// * `timed_out` gives the answer when the deadline passed (a last check,
///   and the waiter's registration undone).
pub(crate) fn wait_loop<R>(
    mut check: impl FnMut() -> Option<R>,
    mut ready: impl FnMut() -> bool,
    mut block: impl FnMut(&mut dyn FnMut() -> bool) -> bool,
    timed_out: impl FnOnce() -> R,
) -> R {
    loop {
        if let Some(r) = check() {
            return r;
        }
        if !block(&mut ready) {
            return timed_out();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_grants_lifo_and_queues_fifo() {
        let mut q: PortQueue<u32, &str, u8> = PortQueue::new(2);
        let a = q.enter(1).unwrap();
        q.register(a, 1, "a");
        let b = q.enter(2).unwrap();
        q.register(b, 2, "b");
        // The last waiter to register is released first.
        assert_eq!(q.push(10, None), Ok(Some("b")));
        assert_eq!(q.push(11, None), Ok(Some("a")));
        assert_eq!(q.running(), 2);
        // Concurrency reached: the next packets queue.
        assert_eq!(q.push(12, None), Ok(None));
        assert_eq!(q.push(13, None), Ok(None));
        let mut out = Vec::new();
        assert!(q.take(b, 2, 1, &mut out));
        assert_eq!(out, [10]);
        // Thread 2 enters its next wait: one running, so it may take the
        // oldest queued packet.
        let b2 = q.enter(2).unwrap();
        assert!(q.ready(b2));
        out.clear();
        assert!(q.take(b2, 2, 8, &mut out));
        assert_eq!(out, [12, 13]);
        let (waiters, dropped) = q.close();
        assert_eq!(waiters, Vec::<&str>::new());
        assert_eq!(dropped, [11]);
        assert_eq!(q.push(14, None), Err(14));
        assert_eq!(q.enter(1), Err(Closed));
    }

    #[test]
    fn port_grants_a_waiting_pusher_its_own_packet() {
        let mut q: PortQueue<u32, &str, u8> = PortQueue::new(2);
        let a = q.enter(1).unwrap();
        q.register(a, 1, "a");
        let b = q.enter(2).unwrap();
        q.register(b, 2, "b");
        // Thread 1 reaped the completion while it waited: it takes the
        // packet itself, and nobody is woken...
        assert_eq!(q.push(10, Some(1)), Ok(None));
        assert!(q.ready(a));
        assert!(!q.ready(b));
        // ...while a packet from elsewhere goes to the last waiter.
        assert_eq!(q.push(11, Some(3)), Ok(Some("b")));
        // With the concurrency reached, a waiting pusher queues like any.
        assert_eq!(q.push(12, Some(1)), Ok(None));
        let mut out = Vec::new();
        assert!(q.take(a, 1, 1, &mut out));
        assert_eq!(out, [10]);
        // A pusher behind queued packets keeps their order: it queues.
        let a2 = q.enter(1).unwrap();
        q.register(a2, 1, "a");
        assert_eq!(q.push(13, Some(1)), Ok(None));
        out.clear();
        assert!(q.take(a2, 1, 8, &mut out));
        assert_eq!(out, [12, 13]);
    }

    #[test]
    fn routine_queue_refuses_after_close() {
        let mut q = RoutineQueue::new(true);
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.close(), [1]);
        assert_eq!(q.push(2), Err(2));
        assert!(q.is_empty());
    }
}
