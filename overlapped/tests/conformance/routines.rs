//! SPEC section *routines* (r01–r09).
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::*;

const TEN: Option<Duration> = Some(Duration::from_secs(10));

fn counter() -> (Rc<Cell<u32>>, Rc<Cell<u32>>) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), c)
}

/// Sleeps alertably until `done()` or ten seconds.
fn alertable_until(mut done: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !done() && Instant::now() < end {
        sleep_ex(Some(Duration::from_millis(100)), true);
    }
    assert!(done(), "routine did not run in time");
}

cases! {
    fn r01_routine_runs_once_with_result_and_buffers(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let seen = Rc::new(RefCell::new(Vec::new()));
        let s2 = seen.clone();
        c.recv(vec![0u8; 16], MsgFlags::empty(), Notify::routine(move |d: Completion<Vec<u8>>| {
            s2.borrow_mut().push((d.error.is_none(), d.bytes, d.flags, d.data));
        }))
        .unwrap();
        write_all(&mut p, b"routine");
        alertable_until(|| !seen.borrow().is_empty());
        sleep_ex(Some(Duration::from_millis(50)), true);
        let seen = seen.borrow();
        assert_eq!(seen.len(), 1, "exactly once");
        assert_eq!(seen[0], (true, 7, RecvFlags::empty(), b"routine".to_vec()));
    }

    fn r02_routine_runs_only_on_the_issuing_thread(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let me = std::thread::current().id();
        let (ran, r2) = counter();
        c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::routine(move |_| {
            assert_eq!(std::thread::current().id(), me);
            r2.set(r2.get() + 1);
        }))
        .unwrap();
        write_all(&mut p, b"x");
        let other = std::thread::spawn(|| (0..3).map(|_| sleep_ex(Some(Duration::from_millis(50)), true)).collect::<Vec<_>>());
        assert!(other.join().unwrap().iter().all(|o| *o == SleepOutcome::Timeout));
        assert_eq!(ran.get(), 0);
        alertable_until(|| ran.get() == 1);
    }

    fn r03_not_run_outside_an_alertable_wait(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let (ran, r2) = counter();
        let op = c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::routine(move |_| r2.set(r2.get() + 1))).unwrap().op();
        write_all(&mut p, b"x");
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(200) {
            std::hint::spin_loop();
        }
        sleep_ex(Some(Duration::from_millis(100)), false);
        assert!(op.is_complete(), "the operation completed");
        assert_eq!(ran.get(), 0, "but its routine waits for an alertable wait");
        assert_eq!(sleep_ex(Some(Duration::ZERO), true), SleepOutcome::IoCompletion);
        assert_eq!(ran.get(), 1);
    }

    fn r04_sleep_ex_outcomes(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let (ran, r2) = counter();
        for _ in 0..3 {
            let r = r2.clone();
            c.recv(vec![0u8; 1], MsgFlags::empty(), Notify::routine(move |_| r.set(r.get() + 1))).unwrap();
        }
        write_all(&mut p, b"abc");
        let mut outcome = SleepOutcome::Timeout;
        let end = Instant::now() + Duration::from_secs(10);
        while ran.get() < 3 && Instant::now() < end {
            outcome = sleep_ex(INFINITE, true);
        }
        assert_eq!(outcome, SleepOutcome::IoCompletion);
        assert_eq!(ran.get(), 3);
        let t0 = Instant::now();
        assert_eq!(sleep_ex(Some(Duration::from_millis(100)), true), SleepOutcome::Timeout);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(300), "{took:?}");
    }

    fn r05_alertable_event_wait_returns_io_completion(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let (ran, r2) = counter();
        c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::routine(move |_| r2.set(1))).unwrap();
        write_all(&mut p, b"x");
        let never = Event::new();
        assert_eq!(wait_for_events(std::slice::from_ref(&never), WaitMode::Any, TEN, true).unwrap(), WaitOutcome::IoCompletion);
        assert_eq!(ran.get(), 1);
        assert!(!never.is_set());
        // Event set and routine queued at entry: routines first, then the event.
        let (ran2, r3) = counter();
        let st = c.recv(vec![0u8; 0], MsgFlags::empty(), Notify::routine(move |_| r3.set(1))).unwrap();
        write_all(&mut p, b"y");
        drop(st);
        let ev = Event::new();
        ev.set();
        std::thread::sleep(Duration::from_millis(20));
        e.poll();
        assert_eq!(wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, TEN, true).unwrap(), WaitOutcome::IoCompletion);
        assert_eq!(ran2.get(), 1);
        assert_eq!(wait_for_events(&[ev], WaitMode::Any, TEN, true).unwrap(), WaitOutcome::Event(0));
    }

    fn r06_ready_routines_all_run_in_completion_order(e: &Engine) {
        let pairs: Vec<_> = (0..3).map(|_| std_pair(e)).collect();
        let order = Rc::new(RefCell::new(Vec::new()));
        for (i, (c, _)) in pairs.iter().enumerate() {
            let o = order.clone();
            c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::routine(move |_| o.borrow_mut().push(i))).unwrap();
        }
        let mut peers: Vec<_> = pairs.into_iter().map(|(c, p)| (Some(c), p)).collect();
        // Complete them in the order 2, 0, 1, driving non-alertably between.
        for &i in &[2usize, 0, 1] {
            write_all(&mut peers[i].1, b"go");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(50) {
                sleep_ex(Some(Duration::from_millis(10)), false);
            }
        }
        assert!(order.borrow().is_empty());
        assert_eq!(sleep_ex(Some(Duration::ZERO), true), SleepOutcome::IoCompletion);
        assert_eq!(*order.borrow(), vec![2, 0, 1], "all ran in one wait, in completion order");
        for p in &mut peers {
            p.0.take();
        }
    }

    fn r07_echo_pattern_10000_round_trips(e: &Engine) {
        let (c, s) = tcp_pair(e);
        let s = Rc::new(s);
        let rounds = Rc::new(Cell::new(0u32));
        fn post_recv(s: Rc<Socket>, rounds: Rc<Cell<u32>>, buf: Vec<u8>) {
            let s2 = s.clone();
            s.recv(buf, MsgFlags::empty(), Notify::routine(move |d: Completion<Vec<u8>>| {
                if d.error.is_some() || d.bytes == 0 {
                    return;
                }
                let s3 = s2.clone();
                s2.send(d.data, MsgFlags::empty(), Notify::routine(move |d: Completion<Vec<u8>>| {
                    rounds.set(rounds.get() + 1);
                    let mut b = d.data;
                    b.resize(64, 0);
                    post_recv(s3, rounds, b);
                }))
                .unwrap();
            }))
            .unwrap();
        }
        post_recv(s.clone(), rounds.clone(), vec![0u8; 64]);
        // The client side on the same thread, also with routines.
        let c = Rc::new(c);
        let done = Rc::new(Cell::new(0u32));
        fn ping(c: Rc<Socket>, done: Rc<Cell<u32>>, n: u32) {
            if n == 0 {
                return;
            }
            let c2 = c.clone();
            c.send(n.to_le_bytes().to_vec(), MsgFlags::empty(), Notify::routine(move |_| {
                let c3 = c2.clone();
                c2.recv(vec![0u8; 4], MsgFlags::empty(), Notify::routine(move |d: Completion<Vec<u8>>| {
                    assert_eq!(d.data, n.to_le_bytes());
                    done.set(done.get() + 1);
                    ping(c3, done, n - 1);
                }))
                .unwrap();
            }))
            .unwrap();
        }
        ping(c.clone(), done.clone(), 10_000);
        let end = Instant::now() + Duration::from_secs(50);
        while done.get() < 10_000 && Instant::now() < end {
            sleep_ex(Some(Duration::from_millis(100)), true);
        }
        assert_eq!(done.get(), 10_000);
        assert_eq!(rounds.get(), 10_000);
    }

    fn r08_immediate_completion_routine_runs_in_next_alertable_wait(e: &Engine) {
        let (c, _p) = std_pair(e);
        let (ran, r2) = counter();
        let st = c.send(b"now".to_vec(), MsgFlags::empty(), Notify::routine(move |_| r2.set(r2.get() + 1))).unwrap();
        assert!(!st.is_pending());
        assert_eq!(ran.get(), 0, "not inside the start call");
        assert_eq!(sleep_ex(Some(Duration::ZERO), true), SleepOutcome::IoCompletion);
        assert_eq!(ran.get(), 1);
    }

    fn r08_routines_never_nest(e: &Engine) {
        let (c, _p) = std_pair(e);
        let depth = Rc::new(Cell::new(0u32));
        let max = Rc::new(Cell::new(0u32));
        let (d2, m2) = (depth.clone(), max.clone());
        let c = Rc::new(c);
        let c2 = c.clone();
        c.send(b"a".to_vec(), MsgFlags::empty(), Notify::routine(move |_| {
            d2.set(d2.get() + 1);
            m2.set(m2.get().max(d2.get()));
            let (d3, m3) = (d2.clone(), m2.clone());
            // Completes at once; its routine must not run inside this one,
            // even in an alertable wait here.
            c2.send(b"b".to_vec(), MsgFlags::empty(), Notify::routine(move |_| {
                d3.set(d3.get() + 1);
                m3.set(m3.get().max(d3.get()));
                d3.set(d3.get() - 1);
            }))
            .unwrap();
            assert_eq!(sleep_ex(Some(Duration::from_millis(10)), true), SleepOutcome::Timeout);
            d2.set(d2.get() - 1);
        }))
        .unwrap();
        alertable_until(|| max.get() >= 1);
        sleep_ex(Some(Duration::from_millis(50)), true);
        sleep_ex(Some(Duration::from_millis(50)), true);
        assert_eq!(max.get(), 1, "a routine never ran inside another");
    }

    fn r09_thread_exit_with_pending_ops_and_queued_routines(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let c = std::sync::Arc::new(c);
        let base = fd_count();
        let c2 = c.clone();
        std::thread::spawn(move || {
            // A queued routine (completed at start, never run) and a pending one.
            c2.send(b"q".to_vec(), MsgFlags::empty(), Notify::routine(|_| panic!("must not run"))).unwrap();
            c2.recv(vec![0u8; 8], MsgFlags::empty(), Notify::routine(|_| panic!("must not run"))).unwrap();
        })
        .join()
        .unwrap();
        assert!(eventually(5 * SEC, || {
            e.poll();
            e.ops_in_table() == 0
        }), "the exited thread's ops were released");
        assert!(fd_count() <= base);
        // Another thread is undisturbed.
        write_all(&mut p, b"fine");
        let d = c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None).unwrap().wait().unwrap();
        assert_eq!(&d.data[..], b"fine");
    }
}
