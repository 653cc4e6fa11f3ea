//! `docs/SPEC.md`, section *events* (e01–e13).
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// SPEC e10, checked at compile time: an `Event` is `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Event>();
};

/// A wait on one event.
fn wait1(ev: &Event, timeout: Option<Duration>, alertable: bool) -> WaitOutcome {
    wait_for_events(std::slice::from_ref(ev), WaitMode::Any, timeout, alertable).unwrap()
}

/// An event bound to `e` by a pending receive on a silent connection; the
/// receive and its sockets are kept alive by the returned guard.
fn engine_bound_event(e: &Engine) -> (Event, impl Drop) {
    struct Guard {
        op: Option<Op<Vec<u8>>>,
        _sock: Socket,
        _peer: std::net::TcpStream,
    }
    impl Drop for Guard {
        fn drop(&mut self) {
            // The receive is cancelled before its socket closes.
            self.op.take();
        }
    }
    let (c, p) = std_pair(e);
    let ev = Event::new();
    let op = c.recv(vec![0u8; 1], MsgFlags::empty(), &ev).unwrap();
    assert!(op.is_pending());
    (
        ev,
        Guard {
            op: Some(op.op()),
            _sock: c,
            _peer: p,
        },
    )
}

/// Asserts that a finite wait took about `want` (±50 ms, SPEC e06).
fn assert_about(took: Duration, want: Duration) {
    let early = Duration::from_millis(50);
    assert!(
        took + early >= want && took <= want + slack(early),
        "a {want:?} wait took {took:?}"
    );
}

fn e01_manual_reset_event() {
    let ev = Event::new();
    assert!(!ev.is_set(), "a new event is unset");
    assert_eq!(
        wait1(&ev, Some(Duration::ZERO), false),
        WaitOutcome::Timeout
    );
    ev.set();
    assert!(ev.is_set());
    for _ in 0..3 {
        assert_eq!(
            wait1(&ev, Some(Duration::ZERO), false),
            WaitOutcome::Event(0)
        );
        assert!(ev.is_set(), "a wait does not reset a manual-reset event");
    }
    ev.set();
    assert!(ev.is_set(), "setting twice is harmless");
    ev.reset();
    assert!(!ev.is_set());
    assert_eq!(
        wait1(&ev, Some(Duration::ZERO), false),
        WaitOutcome::Timeout
    );
    // A clone is the same event.
    let twin = ev.clone();
    twin.set();
    assert!(ev.is_set());
    ev.reset();
    assert!(!twin.is_set());
}

fn e02_op_sets_event_also_when_completed_at_start(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    let st = c.send(b"now".to_vec(), MsgFlags::empty(), &ev).unwrap();
    assert_eq!(
        st.bytes_now(),
        Some(3),
        "a small send on an idle socket completes at start"
    );
    assert!(ev.is_set(), "an immediate completion sets the event");
    assert_eq!(st.wait().unwrap().bytes, 3);
    assert_eq!(read_n(&mut p, 3), b"now");
    // A receive whose data is already there also completes at start.
    write_all(&mut p, b"ready");
    std::thread::sleep(Duration::from_millis(20));
    let ev1 = Event::new();
    let st = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev1).unwrap();
    assert_eq!(st.bytes_now(), Some(5));
    assert!(ev1.is_set());
    assert_eq!(&st.wait().unwrap().data[..], b"ready");
    // A pending receive sets it when it completes later.
    let ev2 = Event::new();
    let op = c.recv(vec![0u8; 4], MsgFlags::empty(), &ev2).unwrap();
    assert!(op.is_pending() && !ev2.is_set());
    write_all(&mut p, b"x");
    assert_eq!(wait1(&ev2, ten(), false), WaitOutcome::Event(0));
    assert_eq!(&op.wait().unwrap().data[..], b"x");
}

fn e03_any_returns_lowest_set_index() {
    let evs: Vec<Event> = (0..8).map(|_| Event::new()).collect();
    evs[5].set();
    evs[2].set();
    evs[7].set();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(2)
    );
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(2),
        "the wait resets nothing"
    );
    evs[2].reset();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(5)
    );
    evs[0].set();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
}

fn e03_any_wakes_for_a_later_set() {
    let evs: Vec<Event> = (0..8).map(|_| Event::new()).collect();
    let ev6 = evs[6].clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        ev6.set();
    });
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(6)
    );
    t.join().unwrap();
}

fn e04_all_returns_only_when_every_event_is_set() {
    let evs: Vec<Event> = (0..3).map(|_| Event::new()).collect();
    evs[0].set();
    evs[1].set();
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, Some(Duration::from_millis(100)), false).unwrap(),
        WaitOutcome::Timeout
    );
    assert!(
        evs[0].is_set() && evs[1].is_set(),
        "an unmet wait-all changes no state"
    );
    let last = evs[2].clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        last.set();
    });
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    assert!(evs.iter().all(Event::is_set));
    t.join().unwrap();
}

fn e04_all_with_operations(e: &Engine) {
    let mut peers: Vec<_> = (0..3).map(|_| std_pair(e)).collect();
    let evs: Vec<Event> = (0..3).map(|_| Event::new()).collect();
    let ops: Vec<_> = peers
        .iter()
        .zip(&evs)
        .map(|((c, _), ev)| c.recv(vec![0u8; 4], MsgFlags::empty(), ev).unwrap().op())
        .collect();
    write_all(&mut peers[0].1, b"a");
    write_all(&mut peers[2].1, b"c");
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, Some(Duration::from_millis(100)), false).unwrap(),
        WaitOutcome::Timeout
    );
    write_all(&mut peers[1].1, b"b");
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    let got: Vec<Vec<u8>> = ops.into_iter().map(|op| op.wait().unwrap().data).collect();
    assert_eq!(got, vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]);
}

fn e05_zero_timeout_returns_timeout_at_once(e: &Engine) {
    let ev = Event::new();
    let t0 = Instant::now();
    assert_eq!(
        wait1(&ev, Some(Duration::ZERO), false),
        WaitOutcome::Timeout
    );
    assert!(t0.elapsed() < slack(25 * MS), "{:?}", t0.elapsed());
    // Also with an event an engine will set, and alertable.
    let (bound, _g) = engine_bound_event(e);
    let t0 = Instant::now();
    assert_eq!(
        wait1(&bound, Some(Duration::ZERO), false),
        WaitOutcome::Timeout
    );
    assert_eq!(
        wait1(&bound, Some(Duration::ZERO), true),
        WaitOutcome::Timeout
    );
    assert_eq!(
        wait_for_events(
            &[bound.clone(), ev.clone()],
            WaitMode::All,
            Some(Duration::ZERO),
            false
        )
        .unwrap(),
        WaitOutcome::Timeout
    );
    assert!(t0.elapsed() < slack(25 * MS), "{:?}", t0.elapsed());
    // A zero wait still sees what is set.
    ev.set();
    assert_eq!(
        wait_for_events(&[bound, ev], WaitMode::Any, Some(Duration::ZERO), false).unwrap(),
        WaitOutcome::Event(1)
    );
}

fn e06_finite_timeout_150ms() {
    let ev = Event::new();
    let t0 = Instant::now();
    assert_eq!(
        wait1(&ev, Some(Duration::from_millis(150)), false),
        WaitOutcome::Timeout
    );
    assert_about(t0.elapsed(), Duration::from_millis(150));
}

fn e06_finite_timeout_150ms_engine_bound_and_alertable(e: &Engine) {
    // With an engine bound to the event, so the wait drives it.
    let (ev, _g) = engine_bound_event(e);
    let t0 = Instant::now();
    assert_eq!(
        wait1(&ev, Some(Duration::from_millis(150)), false),
        WaitOutcome::Timeout
    );
    assert_about(t0.elapsed(), Duration::from_millis(150));
    let t0 = Instant::now();
    assert_eq!(
        wait1(&ev, Some(Duration::from_millis(150)), true),
        WaitOutcome::Timeout
    );
    assert_about(t0.elapsed(), Duration::from_millis(150));
}

fn e07_infinite_wait_released_by_another_thread(e: &Engine) {
    let ev = Event::new();
    let ev2 = ev.clone();
    let t0 = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        ev2.set();
    });
    assert_eq!(wait1(&ev, INFINITE, false), WaitOutcome::Event(0));
    assert!(t0.elapsed() < slack(SEC), "{:?}", t0.elapsed());
    t.join().unwrap();
    // Also when the waiter is driving an engine for the event.
    let (bound, _g) = engine_bound_event(e);
    let b2 = bound.clone();
    let t0 = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        b2.set();
    });
    assert_eq!(wait1(&bound, INFINITE, false), WaitOutcome::Event(0));
    assert!(t0.elapsed() < slack(SEC), "{:?}", t0.elapsed());
    t.join().unwrap();
}

fn e08_thousand_events_lowest_index() {
    let evs: Vec<Event> = (0..1000).map(|_| Event::new()).collect();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, Some(Duration::ZERO), false).unwrap(),
        WaitOutcome::Timeout
    );
    evs[999].set();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(999)
    );
    evs[998].set();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(998)
    );
    for e in &evs {
        e.reset();
    }
    let waiter = {
        let evs = evs.clone();
        std::thread::spawn(move || wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap())
    };
    std::thread::sleep(Duration::from_millis(50));
    evs[640].set();
    assert_eq!(waiter.join().unwrap(), WaitOutcome::Event(640));
}

fn e08_thousand_events_wait_all() {
    let evs: Vec<Event> = (0..1000).map(|_| Event::new()).collect();
    for e in &evs[..999] {
        e.set();
    }
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, Some(Duration::from_millis(20)), false).unwrap(),
        WaitOutcome::Timeout
    );
    evs[999].set();
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
}

fn e08_thousand_events_set_by_operations(e: &Engine) {
    // 1,000 events, each bound to a pending receive on its own socket.
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let mut socks = Vec::new();
    let mut peers = Vec::new();
    for _ in 0..500 {
        let c = Socket::tcp_for(e, &addr).unwrap();
        c.connect_wait(addr).unwrap();
        let (s, _) = l.accept_wait().unwrap();
        socks.push(c);
        peers.push(s);
    }
    let evs: Vec<Event> = (0..1000).map(|_| Event::new()).collect();
    // Two receives per socket: event 2k and 2k+1 on socket k.
    let ops: Vec<_> = evs
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            socks[i / 2]
                .recv(vec![0u8; 1], MsgFlags::empty(), ev)
                .unwrap()
                .op()
        })
        .collect();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, Some(Duration::from_millis(20)), false).unwrap(),
        WaitOutcome::Timeout
    );
    // Socket 499 gets two bytes: events 998 and 999 are set; 998 is lowest.
    peers[499]
        .send(b"xy".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        wait_for_events(&evs, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(998)
    );
    assert!(evs[999].wait(ten()));
    drop(ops);
}

fn e09_empty_list_is_invalid_input_at_once() {
    let t0 = Instant::now();
    for mode in [WaitMode::Any, WaitMode::All] {
        for alertable in [false, true] {
            let err = wait_for_events(&[] as &[Event], mode, INFINITE, alertable).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
    }
    assert!(t0.elapsed() < slack(50 * MS), "{:?}", t0.elapsed());
}

fn e09_wait_all_with_duplicate_is_invalid_input() {
    let ev = Event::new();
    let other = Event::new();
    let t0 = Instant::now();
    assert_eq!(
        wait_for_events(
            &[ev.clone(), other.clone(), ev.clone()],
            WaitMode::All,
            ten(),
            false
        )
        .unwrap_err()
        .kind(),
        ErrorKind::InvalidInput
    );
    ev.set();
    other.set();
    assert_eq!(
        wait_for_events(&[ev.clone(), ev.clone()], WaitMode::All, ten(), false)
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidInput,
        "even when all are set"
    );
    assert!(t0.elapsed() < slack(50 * MS), "{:?}", t0.elapsed());
    // A duplicate is fine for wait-any.
    assert_eq!(
        wait_for_events(&[other, ev.clone(), ev], WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
}

fn e10_event_is_send_sync_and_set_releases_all() {
    let ev = Event::new();
    let returned = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let ev = ev.clone();
            let returned = returned.clone();
            std::thread::spawn(move || {
                let o = wait_for_events(&[ev], WaitMode::Any, ten(), false).unwrap();
                returned.fetch_add(1, Ordering::SeqCst);
                o
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        returned.load(Ordering::SeqCst),
        0,
        "nobody returns before the set"
    );
    let t0 = Instant::now();
    ev.set();
    for w in waiters {
        assert_eq!(w.join().unwrap(), WaitOutcome::Event(0));
    }
    assert!(
        t0.elapsed() < slack(SEC),
        "one set released all four: {:?}",
        t0.elapsed()
    );
}

fn e10_waiters_on_an_engine_bound_event_released_by_completion(e: &Engine) {
    // Four threads wait on the event of one receive; its completion
    // releases every one of them (one drives, the others park).
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    let op = c.recv(vec![0u8; 4], MsgFlags::empty(), &ev).unwrap().op();
    let waiters: Vec<_> = (0..4)
        .map(|_| {
            let ev = ev.clone();
            std::thread::spawn(move || wait_for_events(&[ev], WaitMode::Any, ten(), false).unwrap())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    write_all(&mut p, b"all");
    for w in waiters {
        assert_eq!(w.join().unwrap(), WaitOutcome::Event(0));
    }
    assert_eq!(&op.wait().unwrap().data[..], b"all");
}

fn e11_whoever_waits_drives(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    let spinning = Arc::new(AtomicBool::new(true));
    let (tx, rx) = std::sync::mpsc::channel();
    // Thread A: starts the receive, then spins on CPU for about a second
    // (scaled: B's bound below must end inside it) without ever waiting or
    // calling into the library.
    let a = {
        let ev = ev.clone();
        let spinning = spinning.clone();
        std::thread::spawn(move || {
            let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap().op();
            tx.send(()).unwrap();
            let t0 = Instant::now();
            let mut x = 0u64;
            while t0.elapsed() < slack(SEC) {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                std::hint::black_box(x);
            }
            spinning.store(false, Ordering::SeqCst);
            (op, c)
        })
    };
    rx.recv().unwrap();
    // Thread B (here): the peer sends, B waits on the event.
    let t0 = Instant::now();
    write_all(&mut p, b"drive");
    assert_eq!(wait1(&ev, ten(), false), WaitOutcome::Event(0));
    let took = t0.elapsed();
    assert!(
        spinning.load(Ordering::SeqCst),
        "B returned only after A stopped spinning ({took:?})"
    );
    assert!(
        took < slack(500 * MS),
        "B's wait completed A's receive, in {took:?}"
    );
    let (op, _c) = a.join().unwrap();
    let d = op.wait().unwrap();
    assert!(d.error.is_none());
    assert_eq!(&d.data[..], b"drive");
}

/// e11 with the event bound while the wait is on: the waiting thread
/// starts driving the engine an operation bound the event to after its
/// wait began (the starting thread never waits).
fn e11_a_wait_drives_an_engine_bound_meanwhile(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let ev = ev.clone();
        std::thread::spawn(move || {
            tx.send(()).unwrap();
            let t0 = Instant::now();
            (wait1(&ev, ten(), false), t0.elapsed())
        })
    };
    rx.recv().unwrap();
    // The wait has begun with no engine to drive.
    std::thread::sleep(Duration::from_millis(50));
    let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap().op();
    write_all(&mut p, b"bound");
    let (got, took) = waiter.join().unwrap();
    assert_eq!(got, WaitOutcome::Event(0));
    assert!(
        took < slack(2 * SEC),
        "the wait drove the engine bound meanwhile, in {took:?}"
    );
    let d = op.wait().unwrap();
    assert!(d.error.is_none());
    assert_eq!(&d.data[..], b"bound");
}

fn e12_reuse_after_reset(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    for round in 0..3u8 {
        let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap();
        assert!(op.is_pending());
        assert!(!ev.is_set());
        write_all(&mut p, &[round; 3]);
        assert_eq!(wait1(&ev, ten(), false), WaitOutcome::Event(0));
        assert_eq!(op.wait().unwrap().data, vec![round; 3]);
        assert!(ev.is_set(), "stays set after the result was taken");
        ev.reset();
        assert_eq!(
            wait1(&ev, Some(Duration::from_millis(20)), false),
            WaitOutcome::Timeout
        );
    }
}

fn e12_event_shared_by_two_ops_set_by_first(e: &Engine) {
    let (c1, mut p1) = std_pair(e);
    let (c2, mut p2) = std_pair(e);
    let shared = Event::new();
    let a = c1
        .recv(vec![0u8; 8], MsgFlags::empty(), &shared)
        .unwrap()
        .op();
    let b = c2
        .recv(vec![0u8; 8], MsgFlags::empty(), &shared)
        .unwrap()
        .op();
    assert!(!shared.is_set());
    write_all(&mut p2, b"b");
    assert_eq!(wait1(&shared, ten(), false), WaitOutcome::Event(0));
    let a = match a.result(false).unwrap() {
        Polled::Incomplete(a) => a,
        Polled::Complete(c) => panic!("a completed without data: {:?}", c.error),
    };
    let Polled::Complete(bd) = b.result(false).unwrap() else {
        panic!("b did not complete")
    };
    assert_eq!(&bd.data[..], b"b");
    // The second completion finds it set and leaves it set.
    write_all(&mut p1, b"a");
    let ad = a.wait().unwrap();
    assert_eq!(&ad.data[..], b"a");
    assert!(shared.is_set());
    // After a reset, the shared event works again for the other one first.
    shared.reset();
    let a = c1
        .recv(vec![0u8; 8], MsgFlags::empty(), &shared)
        .unwrap()
        .op();
    let b = c2
        .recv(vec![0u8; 8], MsgFlags::empty(), &shared)
        .unwrap()
        .op();
    write_all(&mut p1, b"A");
    assert_eq!(wait1(&shared, ten(), false), WaitOutcome::Event(0));
    assert!(a.is_complete());
    assert!(!b.is_complete());
    assert_eq!(&a.wait().unwrap().data[..], b"A");
    drop(b);
}

fn e13_start_resets_an_event_set_by_hand(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    ev.set();
    let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap();
    assert!(op.is_pending());
    assert!(!ev.is_set(), "the start reset the event");
    assert_eq!(
        wait1(&ev, Some(Duration::ZERO), false),
        WaitOutcome::Timeout
    );
    assert_eq!(
        wait1(&ev, Some(Duration::from_millis(50)), false),
        WaitOutcome::Timeout
    );
    write_all(&mut p, b"now");
    assert_eq!(wait1(&ev, ten(), false), WaitOutcome::Event(0));
    assert_eq!(op.wait().unwrap().bytes, 3);
}

fn e13_start_resets_then_immediate_completion_sets(e: &Engine) {
    // A start that completes at once resets, then sets: the event is set
    // afterwards because of the operation, not because of the hand.
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    ev.set();
    let st = c.send(b"x".to_vec(), MsgFlags::empty(), &ev).unwrap();
    assert!(!st.is_pending());
    assert!(ev.is_set());
    assert_eq!(read_n(&mut p, 1), b"x");
    drop(st);
}

util::cases! {
    engine_free e01_manual_reset_event,
    e02_op_sets_event_also_when_completed_at_start,
    engine_free e03_any_returns_lowest_set_index,
    engine_free e03_any_wakes_for_a_later_set,
    engine_free e04_all_returns_only_when_every_event_is_set,
    e04_all_with_operations,
    e05_zero_timeout_returns_timeout_at_once,
    engine_free e06_finite_timeout_150ms,
    e06_finite_timeout_150ms_engine_bound_and_alertable,
    e07_infinite_wait_released_by_another_thread,
    engine_free e08_thousand_events_lowest_index,
    engine_free e08_thousand_events_wait_all,
    e08_thousand_events_set_by_operations,
    engine_free e09_empty_list_is_invalid_input_at_once,
    engine_free e09_wait_all_with_duplicate_is_invalid_input,
    engine_free e10_event_is_send_sync_and_set_releases_all,
    e10_waiters_on_an_engine_bound_event_released_by_completion,
    e11_whoever_waits_drives,
    e11_a_wait_drives_an_engine_bound_meanwhile,
    e12_reuse_after_reset,
    e12_event_shared_by_two_ops_set_by_first,
    e13_start_resets_an_event_set_by_hand,
    e13_start_resets_then_immediate_completion_sets,
}
