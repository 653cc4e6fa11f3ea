//! A completion port's queue and its wait (`get_queued`).

use std::collections::VecDeque;

use super::{Lock, wait_loop};

/// A completion port's queue: packets, waiting threads, threads released to
/// run. `P` is a packet, `W` a handle that wakes a waiter, `T` a thread's
/// identity.
///
/// * Packets are delivered first-in first-out.
/// * A packet queued while fewer than `concurrency` threads run and nothing
///   is queued is granted at once to the waiter that registered last (LIFO).
/// * A thread counts as running from the moment it is handed a packet until
///   it enters the next wait (or exits).
#[derive(Debug)]
pub(crate) struct PortQueue<P, W, T> {
    concurrency: usize,
    packets: VecDeque<P>,
    waiters: Vec<(u64, T, W)>,
    grants: Vec<(u64, P)>,
    running: Vec<T>,
    /// Every thread that has waited on the port and not exited.
    workers: Vec<T>,
    closed: bool,
    next_waiter: u64,
}

/// The port was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

impl<P, W, T: PartialEq + Copy> PortQueue<P, W, T> {
    pub(crate) fn new(concurrency: usize) -> Self {
        PortQueue {
            concurrency: concurrency.max(1),
            packets: VecDeque::new(),
            waiters: Vec::new(),
            grants: Vec::new(),
            running: Vec::new(),
            workers: Vec::new(),
            closed: false,
            next_waiter: 0,
        }
    }

    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    /// Threads released to run right now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> usize {
        self.running.len()
    }

    /// Queues a packet. Returns the waiter to wake when it was granted to
    /// one; gives the packet back when the port is closed.
    ///
    /// `pusher`: the thread that queues it, when that thread is itself in
    /// a wait on this port (a worker that reaped the completion from the
    /// kernel while it waited). It is running already, so it is the waiter
    /// released: the reason for the last-in first-out order (keep the
    /// thread that is warm running, wake nobody) taken one step further.
    /// It is not woken (`Ok(None)`): it looks at its grant when its wait
    /// round ends.
    pub(crate) fn push(&mut self, p: P, pusher: Option<T>) -> Result<Option<W>, P> {
        if self.closed {
            return Err(p);
        }
        if self.running.len() < self.concurrency && self.packets.is_empty() {
            let me = pusher.and_then(|me| self.waiters.iter().rposition(|(_, t, _)| *t == me));
            if let Some(i) = me {
                let (id, thread, _) = self.waiters.remove(i);
                self.running.push(thread);
                self.grants.push((id, p));
                return Ok(None);
            }
            if let Some((id, thread, w)) = self.waiters.pop() {
                // The released thread counts as running from now on.
                self.running.push(thread);
                self.grants.push((id, p));
                return Ok(Some(w));
            }
        }
        self.packets.push_back(p);
        Ok(None)
    }

    /// A thread enters a wait: it stops counting as running and gets a
    /// waiter id.
    pub(crate) fn enter(&mut self, me: T) -> Result<u64, Closed> {
        self.forget_running(me);
        if !self.workers.contains(&me) {
            self.workers.push(me);
        }
        if self.closed {
            return Err(Closed);
        }
        self.next_waiter += 1;
        Ok(self.next_waiter)
    }

    fn forget_running(&mut self, me: T) {
        if let Some(i) = self.running.iter().position(|t| *t == me) {
            self.running.swap_remove(i);
        }
    }

    /// Takes up to `max` packets for waiter `id` (its grant first). True
    /// when it got any: the thread then runs and no longer waits.
    pub(crate) fn take(&mut self, id: u64, me: T, max: usize, out: &mut Vec<P>) -> bool {
        if let Some(i) = self.grants.iter().position(|(g, _)| *g == id) {
            out.push(self.grants.swap_remove(i).1);
            // Counted as running when the packet was handed over; counted
            // again once below.
            self.forget_running(me);
        } else if !self.packets.is_empty() && self.running.len() < self.concurrency {
            out.extend(self.packets.pop_front());
        }
        if out.is_empty() {
            return false;
        }
        while out.len() < max {
            match self.packets.pop_front() {
                Some(p) => out.push(p),
                None => break,
            }
        }
        self.running.push(me);
        self.leave(id);
        true
    }

    /// Whether `me` is the only thread that takes the port's packets (the
    /// only one that has waited on it and not exited).
    pub(crate) fn sole_worker(&self, me: T) -> bool {
        self.workers.iter().all(|t| *t == me)
    }

    /// Registers waiter `id` (once; it keeps its place in the LIFO order).
    pub(crate) fn register(&mut self, id: u64, me: T, w: W) {
        if !self.waiters.iter().any(|(i, ..)| *i == id) {
            self.waiters.push((id, me, w));
        }
    }

    /// Whether waiter `id` has something to take, or the port closed.
    pub(crate) fn ready(&self, id: u64) -> bool {
        self.closed
            || self.grants.iter().any(|(g, _)| *g == id)
            || (!self.packets.is_empty() && self.running.len() < self.concurrency)
    }

    /// Waiter `id` stops waiting (timeout).
    pub(crate) fn leave(&mut self, id: u64) {
        self.waiters.retain(|(i, ..)| *i != id);
    }

    /// The waiters, e.g. to wake them all.
    pub(crate) fn waiters(&self) -> impl Iterator<Item = &W> {
        self.waiters.iter().map(|(_, _, w)| w)
    }

    /// Closes the port: returns the waiters to wake and the packets to drop
    /// (outside the lock: dropping a packet drops its buffers).
    pub(crate) fn close(&mut self) -> (Vec<W>, Vec<P>) {
        self.closed = true;
        self.running.clear();
        let mut dropped: Vec<P> = self.packets.drain(..).collect();
        dropped.extend(self.grants.drain(..).map(|(_, p)| p));
        let waiters = self.waiters.drain(..).map(|(_, _, w)| w).collect();
        (waiters, dropped)
    }

    /// A thread exited: it no longer counts as running. Returns the waiter
    /// to wake when that frees a place for a queued packet.
    pub(crate) fn thread_exit(&mut self, me: T) -> Option<W>
    where
        W: Clone,
    {
        self.running.retain(|t| *t != me);
        self.workers.retain(|t| *t != me);
        if self.packets.is_empty() || self.running.len() >= self.concurrency {
            return None;
        }
        self.waiters.last().map(|(_, _, w)| w.clone())
    }
}

/// How [`get_queued`] ended (when the port is open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Got {
    /// `me` is the port's only worker ([`PortQueue::sole_worker`]), read
    /// under the same lock as the take.
    pub(crate) sole: bool,
    /// No packet was taken because `interrupted` held (an alertable wait's
    /// routines are queued).
    pub(crate) interrupted: bool,
}

/// `get_queued` on `q`: up to `max` packets for thread `me` (woken through
/// `waker`), appended to `out`, blocking with `block` (see [`wait_loop`]).
/// None are appended when the deadline passed, or when no packet is queued
/// and `interrupted()` holds (an alertable wait: packets come before
/// routines).
pub(crate) fn get_queued<P, W: Clone, T: PartialEq + Copy>(
    q: &impl Lock<PortQueue<P, W, T>>,
    me: T,
    waker: &W,
    max: usize,
    out: &mut Vec<P>,
    mut interrupted: impl FnMut() -> bool,
    block: impl FnMut(&mut dyn FnMut() -> bool) -> bool,
) -> Result<Got, Closed> {
    // The thread enters the wait (it stops counting as running) in the same
    // critical section as its first take: one pass through the port's lock
    // when a packet is queued.
    let id = std::cell::Cell::new(None);
    let out = std::cell::RefCell::new(out);
    let interrupted = std::cell::RefCell::new(&mut interrupted);
    let got = |q: &PortQueue<P, W, T>, interrupted: bool| Got {
        sole: q.sole_worker(me),
        interrupted,
    };
    wait_loop(
        || {
            q.with(|q| {
                let i = match id.get() {
                    Some(i) => i,
                    None => match q.enter(me) {
                        Ok(i) => {
                            id.set(Some(i));
                            i
                        }
                        Err(c) => return Some(Err(c)),
                    },
                };
                if q.take(i, me, max, &mut out.borrow_mut()) {
                    Some(Ok(got(q, false)))
                } else if q.is_closed() {
                    Some(Err(Closed))
                } else if (interrupted.borrow_mut())() {
                    q.leave(i);
                    Some(Ok(got(q, true)))
                } else {
                    q.register(i, me, waker.clone());
                    None
                }
            })
        },
        || q.with(|q| id.get().is_some_and(|i| q.ready(i))) || (interrupted.borrow_mut())(),
        block,
        || {
            q.with(|q| {
                if let Some(i) = id.get() {
                    if !q.take(i, me, max, &mut out.borrow_mut()) {
                        q.leave(i);
                    }
                }
                Ok(got(q, false))
            })
        },
    )
}
