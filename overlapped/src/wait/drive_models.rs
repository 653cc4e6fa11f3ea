//! `loom` models of the driving protocol: every interleaving of a few
//! threads running the production code of [`drive`](super::drive)
//! ([`drive_until`](drive::drive_until), [`drive_once`](drive::drive_once),
//! [`reap_dispatch`](drive::reap_dispatch) and its passing on of a wake-up
//! taken by a thread that does not drive), [`DriveState`], and
//! [`ThreadCtx::wake`] with [`Blocked`](crate::thread::Blocked), over a
//! fake engine ([`Fake`]) whose `wait` blocks on a loom `Notify` until a
//! completion is posted (an unpark of the thread does not end it), and whose `wake` posts one, de-duplicated
//! as io_uring's ring does it (`wake_pending`, set until the wake-up's
//! completion is reaped; a wake-up made while it is set adds nothing).
//!
//! Each model asserts that every waiter returns with its operation
//! finished: a lost wake-up leaves a thread blocked in the fake kernel or
//! parked for good, and loom reports the deadlock.

use std::sync::Arc;
use std::time::Duration;

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::{Mutex, Notify};
use loom::thread;

use super::drive::{self, DriveState, Driven};
use crate::sync::Loom;
use crate::thread::ThreadCtx;

type Ctx = Arc<ThreadCtx<Loom>>;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// A completion in the fake ring.
#[derive(Debug)]
enum Cqe {
    /// The operation of this number finished in the kernel.
    Op(usize),
    /// A wake-up's no-op.
    Wake,
}

/// The fake kernel's queues: requests pushed but not submitted (only
/// wake-ups' no-ops here), and completions posted but not reaped.
#[derive(Debug, Default)]
struct Ring {
    sq: Vec<Cqe>,
    cq: Vec<Cqe>,
}

/// An operation as its waiter sees it (the op table's slot).
#[derive(Debug, Default)]
struct Slot {
    done: bool,
    waiter: Option<Ctx>,
}

/// The fake engine.
#[derive(Debug)]
struct Fake {
    drive: DriveState<Loom>,
    ring: Mutex<Ring>,
    /// Notified when completions are posted: what ends a blocked `wait`.
    /// One thread at a time may wait on it (loom checks): the driver.
    posted: Notify,
    /// A wake-up's no-op is queued or posted and not yet reaped.
    wake_pending: AtomicBool,
    /// How many of the next wake-ups fail to submit their no-op: it stays
    /// in the submission queue, for the next kernel entry (io_uring's
    /// `wake` when its `submit` fails).
    failing_submits: AtomicUsize,
    ops: Mutex<Vec<Slot>>,
}

impl Fake {
    fn new(ops: usize) -> Arc<Self> {
        Arc::new(Fake {
            drive: DriveState::default(),
            ring: Mutex::new(Ring::default()),
            posted: Notify::new(),
            wake_pending: AtomicBool::new(false),
            failing_submits: AtomicUsize::new(0),
            ops: Mutex::new((0..ops).map(|_| Slot::default()).collect()),
        })
    }

    /// A kernel entry: what was pushed is submitted; a no-op completes at
    /// once.
    fn submit(&self, r: &mut Ring) {
        if !r.sq.is_empty() {
            let sq = std::mem::take(&mut r.sq);
            r.cq.extend(sq);
            self.posted.notify();
        }
    }

    /// The kernel finishes operation `id`: its completion is posted.
    fn complete_in_kernel(&self, id: usize) {
        self.ring.lock().unwrap().cq.push(Cqe::Op(id));
        self.posted.notify();
    }

    /// Operation `id` finished: it is marked done and its waiter woken
    /// (the core's `deliver`; also how an operation that completes at
    /// start, on the thread that starts it, is made known).
    fn deliver(&self, id: usize) {
        let waiter = {
            let mut ops = self.ops.lock().unwrap();
            ops[id].done = true;
            ops[id].waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }

    /// The wait for operation `id`, shaped as the production one (the
    /// handle's `take_result`): a check that registers the waiter, then the
    /// drive loop of a thread waiting on one engine.
    fn wait_op(self: &Arc<Self>, ctx: &Ctx, id: usize) {
        let mut check = || {
            let mut ops = self.ops.lock().unwrap();
            if ops[id].done {
                return true;
            }
            ops[id].waiter = Some(ctx.clone());
            false
        };
        assert!(check() || drive::drive_until(self, ctx, None, &mut check));
    }
}

impl Driven for Fake {
    type Sync = Loom;
    type Found = usize;

    fn drive_state(&self) -> &DriveState<Loom> {
        &self.drive
    }

    fn flush(&self) {
        self.submit(&mut self.ring.lock().unwrap());
    }

    fn reap(&self, _poll_now: bool, out: &mut Vec<usize>) -> bool {
        let mut woke = false;
        for c in self.ring.lock().unwrap().cq.drain(..) {
            match c {
                Cqe::Op(id) => out.push(id),
                Cqe::Wake => {
                    self.wake_pending.swap(false, Ordering::AcqRel);
                    woke = true;
                }
            }
        }
        woke
    }

    fn wait(&self, timeout: Option<Duration>, out: &mut Vec<usize>) {
        assert_eq!(timeout, None, "the models wait without a deadline");
        loop {
            {
                let mut r = self.ring.lock().unwrap();
                self.submit(&mut r);
                if !r.cq.is_empty() {
                    break;
                }
            }
            // A completion posted since the check above has notified: the
            // wait returns at once.
            self.posted.wait();
        }
        // As the io_uring backend: the wait returns, then the queue is
        // reaped (another thread may reap it first).
        let _ = self.reap(false, out);
    }

    fn wake(&self) {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let mut r = self.ring.lock().unwrap();
        r.sq.push(Cqe::Wake);
        let fails = self
            .failing_submits
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok();
        if !fails {
            self.submit(&mut r);
        }
    }

    fn dispatch_all(self: &Arc<Self>, found: &mut Vec<usize>) {
        for id in found.drain(..) {
            self.deliver(id);
        }
    }

    fn note_reap(&self) {}

    /// Every wait reaps first, as one entered after the reap interval: the
    /// waiter takes what is posted without driving.
    fn reap_due(&self) -> bool {
        true
    }
}

fn spawn_waiter(e: &Arc<Fake>, ids: &'static [usize]) -> thread::JoinHandle<()> {
    let e = e.clone();
    thread::spawn(move || {
        let ctx = ThreadCtx::for_model();
        for &id in ids {
            e.wait_op(&ctx, id);
        }
    })
}

fn all_done(e: &Fake) -> bool {
    e.ops.lock().unwrap().iter().all(|s| s.done)
}

/// (a) Two threads wait on the engine, each for its own operation; the
/// kernel finishes both. Whichever drives reaps both completions and
/// delivers the other's (its follower is woken), or leaves and hands the
/// driving over; or the one that follows reaps them in its wait's first
/// reap, delivering the driver's operation, whose wake-up of the engine
/// that same reap may take next: it passes it on. Both return.
#[test]
fn driver_delivers_kernel_completions_to_follower() {
    model(|| {
        let e = Fake::new(2);
        let w0 = spawn_waiter(&e, &[0]);
        let w1 = spawn_waiter(&e, &[1]);
        e.complete_in_kernel(1);
        e.complete_in_kernel(0);
        w0.join().unwrap();
        w1.join().unwrap();
        assert!(all_done(&e));
    });
}

/// (b) A thread waits for its operation, driving; another finishes it
/// (it completed at start there) and wakes the waiter, which wakes the
/// engine; a third reaps the engine without driving (`Engine::poll`, a
/// wait's first reap) and may take that wake-up: it passes it on, or the
/// driver sleeps on.
#[test]
fn non_driver_passes_on_a_wake_up_it_took() {
    model(|| {
        let e = Fake::new(1);
        let w = spawn_waiter(&e, &[0]);
        let e2 = e.clone();
        let finisher = thread::spawn(move || e2.deliver(0));
        drive::reap_dispatch(&e, false, true, true);
        w.join().unwrap();
        finisher.join().unwrap();
    });
}

/// (c) Two threads wait on the engine, one driving, the other following
/// (or taking the driver's wake-up in its first reap); a third finishes
/// both operations on its side, so a wake-up may land while the driver is
/// between its last check and its block. Both return.
#[test]
fn wake_between_check_and_block_with_two_waiters() {
    model(|| {
        let e = Fake::new(2);
        let w0 = spawn_waiter(&e, &[0]);
        let w1 = spawn_waiter(&e, &[1]);
        e.deliver(0);
        e.deliver(1);
        w0.join().unwrap();
        w1.join().unwrap();
    });
}

/// (d) A wake-up whose no-op fails to submit stays in the submission
/// queue with `wake_pending` set, so a later wake-up adds nothing; the
/// next kernel entry (the driver's wait, or here a reap of a thread that
/// does not drive, made after both wake-ups) posts it, and a thread that
/// does not drive passes it on to the driver.
///
/// The reap comes after the failed submit here: when nothing enters the
/// kernel after it while the driver is already blocked, the no-op is
/// never submitted and the driver sleeps on (loom finds that interleaving
/// when the reap may run first).
#[test]
fn wake_up_stranded_by_a_failed_submit_reaches_the_driver() {
    model(|| {
        let e = Fake::new(1);
        e.failing_submits.store(1, Ordering::Release);
        let w = spawn_waiter(&e, &[0]);
        let e2 = e.clone();
        let finisher = thread::spawn(move || {
            e2.deliver(0);
            // Another wake-up of the engine (a second waker's).
            e2.wake();
        });
        finisher.join().unwrap();
        drive::reap_dispatch(&e, false, true, true);
        w.join().unwrap();
    });
}
