//! The state machines behind the three blocking waits, free of the engine so
//! they can be model-checked with `loom` (see `loom_models` below).
//!
//! Each lives inside a mutex owned by its user ([`crate::port`],
//! [`crate::event`], the thread contexts of [`crate::driver`]) and follows
//! one wake protocol:
//!
//! * a waiter registers itself and checks its condition under the lock, then
//!   parks (unlocked); it re-checks after every wake-up;
//! * a waker changes the state under the lock, takes the waiters to wake out
//!   of it, and wakes them after unlocking.
//!
//! Park and unpark keep a token, so a wake that lands between the waiter's
//! check and its park is not lost. The `loom` models run this protocol with
//! these very types over every interleaving of a few threads.

use std::collections::VecDeque;

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
    pub(crate) fn push(&mut self, p: P) -> Result<Option<W>, P> {
        if self.closed {
            return Err(p);
        }
        if self.running.len() < self.concurrency && self.packets.is_empty() {
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
        if self.packets.is_empty() || self.running.len() >= self.concurrency {
            return None;
        }
        self.waiters.last().map(|(_, _, w)| w.clone())
    }
}

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

/// A thread's queue of completion routines. Once the thread exits the queue
/// is closed: a routine queued after that is refused (its completion is
/// dropped with its buffers by the caller), so nothing waits forever in a
/// queue no thread will run.
#[derive(Debug)]
pub(crate) struct RoutineQueue<R> {
    open: bool,
    queue: VecDeque<R>,
}

impl<R> RoutineQueue<R> {
    pub(crate) fn new(open: bool) -> Self {
        RoutineQueue {
            open,
            queue: VecDeque::new(),
        }
    }

    /// Queues a routine; gives it back when the thread has exited.
    pub(crate) fn push(&mut self, r: R) -> Result<(), R> {
        if !self.open {
            return Err(r);
        }
        self.queue.push_back(r);
        Ok(())
    }

    pub(crate) fn pop(&mut self) -> Option<R> {
        self.queue.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The thread exits: closes the queue and returns what was still queued.
    pub(crate) fn close(&mut self) -> VecDeque<R> {
        self.open = false;
        std::mem::take(&mut self.queue)
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
        assert_eq!(q.push(10), Ok(Some("b")));
        assert_eq!(q.push(11), Ok(Some("a")));
        assert_eq!(q.running(), 2);
        // Concurrency reached: the next packets queue.
        assert_eq!(q.push(12), Ok(None));
        assert_eq!(q.push(13), Ok(None));
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
        assert_eq!(q.push(14), Err(14));
        assert_eq!(q.enter(1), Err(Closed));
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

/// `loom` models: every interleaving of a few threads running the wait
/// protocol over the types above. Each asserts the rule the SPEC names:
/// every packet or routine is delivered exactly once, the concurrency limit
/// holds, LIFO release, and no wake-up is lost (loom reports a deadlock if
/// every thread parks).
#[cfg(test)]
mod loom_models {
    use super::*;
    use loom::sync::atomic::{AtomicUsize, Ordering};
    use loom::sync::{Arc, Mutex};
    use loom::thread::{self, Thread};

    type Port = Arc<(Mutex<PortQueue<u32, Thread, usize>>, AtomicUsize)>;

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(3);
        b.check(f);
    }

    fn post(port: &Port, p: u32) {
        let w = port.0.lock().unwrap().push(p).expect("open port");
        if let Some(t) = w {
            t.unpark();
        }
    }

    /// `get_queued` without a timeout, as `CompletionPort::get_queued_many`
    /// runs it (minus the engine driving).
    fn get(port: &Port, me: usize, max: usize) -> Result<Vec<u32>, Closed> {
        let id = port.0.lock().unwrap().enter(me)?;
        let mut out = Vec::new();
        loop {
            {
                let mut q = port.0.lock().unwrap();
                if q.take(id, me, max, &mut out) {
                    // Released to run: the limit must hold.
                    assert!(q.running() <= q.concurrency());
                    let now = port.1.fetch_add(1, Ordering::SeqCst) + 1;
                    assert!(now <= q.concurrency(), "{now} threads running");
                    return Ok(out);
                }
                if q.is_closed() {
                    return Err(Closed);
                }
                q.register(id, me, thread::current());
            }
            // Woken by a grant, a packet or close; spurious wake-ups just
            // loop.
            thread::park();
        }
    }

    /// The worker leaves the running state (it calls `get_queued` again or
    /// exits).
    fn done(port: &Port, me: usize) {
        port.1.fetch_sub(1, Ordering::SeqCst);
        let w = port.0.lock().unwrap().thread_exit(me);
        if let Some(t) = w {
            t.unpark();
        }
    }

    fn new_port(concurrency: usize) -> Port {
        Arc::new((Mutex::new(PortQueue::new(concurrency)), AtomicUsize::new(0)))
    }

    #[test]
    fn port_every_packet_once_under_concurrency_one() {
        model(|| {
            let port = new_port(1);
            let workers: Vec<_> = (0..2)
                .map(|me| {
                    let port = port.clone();
                    thread::spawn(move || {
                        let got = get(&port, me, 1).unwrap();
                        done(&port, me);
                        got
                    })
                })
                .collect();
            post(&port, 1);
            post(&port, 2);
            let mut all: Vec<u32> = workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect();
            all.sort_unstable();
            assert_eq!(all, [1, 2]);
        });
    }

    #[test]
    fn port_fifo_to_one_worker() {
        model(|| {
            let port = new_port(1);
            let p2 = port.clone();
            let poster = thread::spawn(move || {
                post(&p2, 1);
                post(&p2, 2);
                post(&p2, 3);
            });
            let mut seen = Vec::new();
            while seen.len() < 3 {
                seen.extend(get(&port, 0, 2).unwrap());
                done(&port, 0);
            }
            poster.join().unwrap();
            assert_eq!(seen, [1, 2, 3]);
        });
    }

    #[test]
    fn port_releases_last_waiter_first() {
        model(|| {
            let port = new_port(2);
            let order = Arc::new(Mutex::new(Vec::new()));
            // Worker 1 registers, then worker 2; the test posts only once
            // both wait.
            let spawn = |me: usize| {
                let port = port.clone();
                let order = order.clone();
                thread::spawn(move || {
                    let got = get(&port, me, 1).unwrap();
                    order.lock().unwrap().push((me, got[0]));
                    done(&port, me);
                })
            };
            let w1 = spawn(1);
            while port.0.lock().unwrap().waiters().count() < 1 {
                thread::yield_now();
            }
            let w2 = spawn(2);
            while port.0.lock().unwrap().waiters().count() < 2 {
                thread::yield_now();
            }
            post(&port, 7);
            post(&port, 8);
            w1.join().unwrap();
            w2.join().unwrap();
            let order = order.lock().unwrap();
            // The first packet went to worker 2, the last to wait.
            assert!(order.contains(&(2, 7)), "{order:?}");
            assert!(order.contains(&(1, 8)), "{order:?}");
        });
    }

    #[test]
    fn port_close_wakes_waiters() {
        model(|| {
            let port = new_port(1);
            let p2 = port.clone();
            let w = thread::spawn(move || get(&p2, 1, 1));
            let (waiters, dropped) = port.0.lock().unwrap().close();
            for t in waiters {
                t.unpark();
            }
            assert!(dropped.is_empty());
            assert_eq!(w.join().unwrap(), Err(Closed));
        });
    }

    type Ev = Arc<Mutex<Signal<Thread>>>;

    fn set(e: &Ev) {
        let waiters = e.lock().unwrap().set();
        for t in waiters {
            t.unpark();
        }
    }

    /// `wait_for_events` without a timeout, as `event::wait_for_events`
    /// runs it (minus the engine driving). Returns the lowest set index
    /// (any) or 0 (all).
    fn wait(events: &[Ev], all: bool) -> usize {
        let check = || {
            let set: Vec<bool> = events.iter().map(|e| e.lock().unwrap().is_set()).collect();
            if all {
                set.iter().all(|s| *s).then_some(0)
            } else {
                set.iter().position(|s| *s)
            }
        };
        if let Some(i) = check() {
            return i;
        }
        for e in events {
            e.lock().unwrap().add_waiter(thread::current());
        }
        let me = thread::current().id();
        let i = loop {
            if let Some(i) = check() {
                break i;
            }
            thread::park();
        };
        for e in events {
            e.lock().unwrap().remove_waiter(|t| t.id() == me);
        }
        i
    }

    #[test]
    fn event_wait_any_sees_a_set() {
        model(|| {
            let evs: Vec<Ev> = (0..2).map(|_| Ev::default()).collect();
            let e1 = evs[1].clone();
            let setter = thread::spawn(move || set(&e1));
            assert_eq!(wait(&evs, false), 1);
            setter.join().unwrap();
        });
    }

    #[test]
    fn event_wait_all_sees_both() {
        model(|| {
            let evs: Vec<Ev> = (0..2).map(|_| Ev::default()).collect();
            let setters: Vec<_> = evs
                .iter()
                .map(|e| {
                    let e = e.clone();
                    thread::spawn(move || set(&e))
                })
                .collect();
            assert_eq!(wait(&evs, true), 0);
            for s in setters {
                s.join().unwrap();
            }
            assert!(evs.iter().all(|e| e.lock().unwrap().waiters().is_empty()));
        });
    }

    #[test]
    fn event_reset_then_set_wakes() {
        model(|| {
            let ev = Ev::default();
            set(&ev);
            ev.lock().unwrap().reset();
            let e2 = ev.clone();
            let setter = thread::spawn(move || set(&e2));
            assert_eq!(wait(std::slice::from_ref(&ev), false), 0);
            setter.join().unwrap();
        });
    }

    #[test]
    fn routine_queue_each_routine_once_across_exit() {
        model(|| {
            let q = Arc::new(Mutex::new(RoutineQueue::new(true)));
            let ran = Arc::new(AtomicUsize::new(0));
            let refused = Arc::new(AtomicUsize::new(0));
            let owner = {
                let q = q.clone();
                let ran = ran.clone();
                thread::spawn(move || {
                    // An alertable wait runs what is queued, then the thread
                    // exits; its exit drops what is left.
                    while let Some(_r) = q.lock().unwrap().pop() {
                        ran.fetch_add(1, Ordering::SeqCst);
                    }
                    q.lock().unwrap().close().len()
                })
            };
            let producers: Vec<_> = (0..2)
                .map(|r| {
                    let q = q.clone();
                    let refused = refused.clone();
                    thread::spawn(move || {
                        if q.lock().unwrap().push(r).is_err() {
                            refused.fetch_add(1, Ordering::SeqCst);
                        }
                    })
                })
                .collect();
            for p in producers {
                p.join().unwrap();
            }
            let dropped = owner.join().unwrap();
            // Every routine ran, was dropped at exit, or was refused: once.
            assert_eq!(
                ran.load(Ordering::SeqCst) + dropped + refused.load(Ordering::SeqCst),
                2
            );
            assert!(q.lock().unwrap().is_empty());
        });
    }
}
