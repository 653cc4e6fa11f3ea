//! SPEC section *events* (e01–e13).
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::*;

const TEN: Option<Duration> = Some(Duration::from_secs(10));

cases! {
    fn e01_manual_reset_event(_e: &Engine) {
        let ev = Event::new();
        assert!(!ev.is_set());
        ev.set();
        assert!(ev.is_set());
        assert_eq!(wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, Some(Duration::ZERO), false).unwrap(), WaitOutcome::Event(0));
        assert!(ev.is_set(), "a wait does not reset a manual-reset event");
        ev.reset();
        assert!(!ev.is_set());
    }

    fn e02_op_sets_event_also_when_completed_at_start(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let ev = Event::new();
        let st = c.send(b"now".to_vec(), MsgFlags::empty(), &ev).unwrap();
        assert!(!st.is_pending());
        assert!(ev.is_set(), "an immediate completion sets the event");
        let ev2 = Event::new();
        let op = c.recv(vec![0u8; 4], MsgFlags::empty(), &ev2).unwrap();
        assert!(op.is_pending() && !ev2.is_set());
        write_all(&mut p, b"x");
        assert!(ev2.wait(TEN));
        assert_eq!(op.wait().unwrap().bytes, 1);
    }

    fn e03_any_returns_lowest_set_index(_e: &Engine) {
        let evs: Vec<Event> = (0..8).map(|_| Event::new()).collect();
        evs[5].set();
        evs[2].set();
        assert_eq!(wait_for_events(&evs, WaitMode::Any, TEN, false).unwrap(), WaitOutcome::Event(2));
        evs[2].reset();
        assert_eq!(wait_for_events(&evs, WaitMode::Any, TEN, false).unwrap(), WaitOutcome::Event(5));
    }

    fn e04_all_returns_only_when_every_event_is_set(_e: &Engine) {
        let evs: Vec<Event> = (0..3).map(|_| Event::new()).collect();
        evs[0].set();
        evs[1].set();
        assert_eq!(wait_for_events(&evs, WaitMode::All, Some(Duration::from_millis(100)), false).unwrap(), WaitOutcome::Timeout);
        evs[2].set();
        assert_eq!(wait_for_events(&evs, WaitMode::All, TEN, false).unwrap(), WaitOutcome::Event(0));
        assert!(evs.iter().all(Event::is_set));
    }

    fn e05_zero_timeout_polls(_e: &Engine) {
        let t0 = Instant::now();
        assert_eq!(wait_for_events(&[Event::new()], WaitMode::Any, Some(Duration::ZERO), false).unwrap(), WaitOutcome::Timeout);
        assert!(t0.elapsed() < Duration::from_millis(5));
    }

    fn e06_finite_timeout(e: &Engine) {
        // With an engine bound to the event, so the wait drives it.
        let (c, _p) = std_pair(e);
        let ev = Event::new();
        let _op = c.recv(vec![0u8; 1], MsgFlags::empty(), &ev).unwrap();
        let t0 = Instant::now();
        assert_eq!(wait_for_events(&[ev], WaitMode::Any, Some(Duration::from_millis(150)), false).unwrap(), WaitOutcome::Timeout);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(150) && took < Duration::from_millis(200), "{took:?}");
    }

    fn e07_infinite_wait_released_by_another_thread(_e: &Engine) {
        let ev = Event::new();
        let ev2 = ev.clone();
        let t0 = Instant::now();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            ev2.set();
        });
        assert_eq!(wait_for_events(&[ev], WaitMode::Any, INFINITE, false).unwrap(), WaitOutcome::Event(0));
        assert!(t0.elapsed() < SEC);
    }

    fn e08_thousand_events_lowest_index(_e: &Engine) {
        let evs: Vec<Event> = (0..1000).map(|_| Event::new()).collect();
        evs[999].set();
        assert_eq!(wait_for_events(&evs, WaitMode::Any, TEN, false).unwrap(), WaitOutcome::Event(999));
        evs[998].set();
        assert_eq!(wait_for_events(&evs, WaitMode::Any, TEN, false).unwrap(), WaitOutcome::Event(998));
        let waiter = {
            let evs = evs.clone();
            std::thread::spawn(move || {
                for e in &evs {
                    e.reset();
                }
                wait_for_events(&evs, WaitMode::Any, TEN, false).unwrap()
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        evs[640].set();
        assert_eq!(waiter.join().unwrap(), WaitOutcome::Event(640));
    }

    fn e09_empty_list_and_duplicates(_e: &Engine) {
        assert_eq!(wait_for_events(&[], WaitMode::Any, TEN, false).unwrap_err().kind(), ErrorKind::InvalidInput);
        let ev = Event::new();
        assert_eq!(wait_for_events(&[ev.clone(), ev.clone()], WaitMode::All, TEN, false).unwrap_err().kind(), ErrorKind::InvalidInput);
        ev.set();
        assert_eq!(wait_for_events(&[ev.clone(), ev], WaitMode::Any, TEN, false).unwrap(), WaitOutcome::Event(0));
    }

    fn e10_event_is_send_sync_and_set_releases_all(_e: &Engine) {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Event>();
        let ev = Event::new();
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let ev = ev.clone();
                std::thread::spawn(move || wait_for_events(&[ev], WaitMode::Any, TEN, false).unwrap())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(50));
        ev.set();
        for w in waiters {
            assert_eq!(w.join().unwrap(), WaitOutcome::Event(0));
        }
    }

    fn e11_whoever_waits_drives(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let ev = Event::new();
        let spinning = Arc::new(AtomicBool::new(true));
        let (tx, rx) = std::sync::mpsc::channel();
        let a = {
            let ev = ev.clone();
            let spinning = spinning.clone();
            std::thread::spawn(move || {
                let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap().op();
                tx.send(()).unwrap();
                let t0 = Instant::now();
                while spinning.load(Ordering::Relaxed) && t0.elapsed() < Duration::from_secs(3) {
                    std::hint::spin_loop();
                }
                (op, c)
            })
        };
        rx.recv().unwrap();
        let t0 = Instant::now();
        write_all(&mut p, b"drive");
        assert_eq!(wait_for_events(&[ev], WaitMode::Any, TEN, false).unwrap(), WaitOutcome::Event(0));
        assert!(t0.elapsed() < Duration::from_secs(1), "B's wait completed A's receive");
        spinning.store(false, Ordering::Relaxed);
        let (op, _c) = a.join().unwrap();
        assert_eq!(&op.wait().unwrap().data[..], b"drive");
    }

    fn e12_reuse_after_reset_and_shared_event(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let ev = Event::new();
        let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap();
        write_all(&mut p, b"one");
        assert!(ev.wait(TEN));
        assert_eq!(op.wait().unwrap().bytes, 3);
        ev.reset();
        let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap();
        assert!(!ev.is_set());
        write_all(&mut p, b"two!");
        assert!(ev.wait(TEN));
        assert_eq!(op.wait().unwrap().bytes, 4);
        // One event, two operations: set by whichever completes first.
        let (c2, mut p2) = std_pair(e);
        let shared = Event::new();
        let a = c.recv(vec![0u8; 8], MsgFlags::empty(), &shared).unwrap().op();
        let b = c2.recv(vec![0u8; 8], MsgFlags::empty(), &shared).unwrap().op();
        write_all(&mut p2, b"b");
        assert!(shared.wait(TEN));
        let a = match a.result(false).unwrap() {
            Polled::Incomplete(a) => a,
            Polled::Complete(_) => panic!("a got nothing"),
        };
        let Polled::Complete(bd) = b.result(false).unwrap() else { panic!("b completed") };
        assert_eq!(&bd.data[..], b"b");
        drop(a);
    }

    fn e13_start_resets_the_event(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let ev = Event::new();
        ev.set();
        let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap();
        assert!(op.is_pending());
        assert_eq!(wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, Some(Duration::ZERO), false).unwrap(), WaitOutcome::Timeout);
        write_all(&mut p, b"now");
        assert!(ev.wait(TEN));
        assert_eq!(op.wait().unwrap().bytes, 3);
    }
}
