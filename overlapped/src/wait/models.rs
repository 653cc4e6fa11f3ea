//! `loom` models: every interleaving of a few threads running the
//! production waits of this module ([`get_queued`], [`wait_signals`],
//! [`wait_routines`], all on [`wait_loop`](super::wait_loop)) with loom's
//! mutex and park. Each asserts the rule the SPEC names: every packet or
//! routine is delivered exactly once, the concurrency limit holds, LIFO
//! release, and no wake-up is lost (loom reports a deadlock if every thread
//! parks). The engine driving is left out here (`block` parks);
//! `drive_models.rs` models it.

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread::{self, Thread};

use super::routines::wait_routines;
use super::signal::SignalWait;
use super::*;

type Port = Arc<(Mutex<PortQueue<u32, Thread, usize>>, AtomicUsize)>;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(f);
}

/// The models' `block`: park until woken (a wake-up before the park is
/// kept by the park token).
fn block(ready: &mut dyn FnMut() -> bool) -> bool {
    if !ready() {
        thread::park();
    }
    true
}

fn post(port: &Port, p: u32) {
    let w = port.0.lock().unwrap().push(p, None).expect("open port");
    if let Some(t) = w {
        t.unpark();
    }
}

/// `get_queued` without a timeout, through the production wait.
fn get(port: &Port, me: usize, max: usize) -> Result<Vec<u32>, Closed> {
    let mut got = Vec::new();
    get_queued(
        &port.0,
        me,
        &thread::current(),
        max,
        &mut got,
        || false,
        block,
    )?;
    // Released to run: the limit must hold.
    let q = port.0.lock().unwrap();
    assert!(q.running() <= q.concurrency());
    let now = port.1.fetch_add(1, Ordering::SeqCst) + 1;
    assert!(now <= q.concurrency(), "{now} threads running");
    Ok(got)
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
        // Worker 1 registers, then worker 2; the test posts only once both
        // wait.
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

/// `wait_for_events` without a timeout, through the production wait.
fn wait(events: &[Ev], all: bool) -> usize {
    let refs: Vec<&Mutex<Signal<Thread>>> = events.iter().map(|e| &**e).collect();
    let me = thread::current().id();
    let r = wait_signals(
        &refs,
        all,
        &thread::current(),
        |t| t.id() == me,
        || false,
        block,
    );
    match r {
        SignalWait::Signalled(i) => i,
        other => panic!("an unbounded wait ended with {other:?}"),
    }
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

#[test]
fn alertable_wait_sees_a_queued_routine() {
    model(|| {
        let q = Arc::new(Mutex::new(RoutineQueue::new(true)));
        let owner = thread::current();
        let q2 = q.clone();
        let producer = thread::spawn(move || {
            q2.lock().unwrap().push(1u32).unwrap();
            // The queuing side wakes the thread the routine belongs to.
            owner.unpark();
        });
        assert!(wait_routines(&*q, true, block));
        assert_eq!(q.lock().unwrap().pop(), Some(1));
        producer.join().unwrap();
    });
}
