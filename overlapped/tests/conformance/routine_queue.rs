//! `docs/SPEC.md`, section *routines*, r06–r09: a thread's queue of
//! routines — their order, routines that start more, routines of
//! operations completed at start, and what a thread that exits leaves.
//! r01–r05 are `routines.rs`.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::routine::*;
use crate::util::{self, *};

fn r06_ready_routines_all_run_in_completion_order(e: &Engine) {
    let mut pairs: Vec<_> = (0..4).map(|_| std_pair(e)).collect();
    let order = Rc::new(RefCell::new(Vec::new()));
    let ops: Vec<_> = pairs
        .iter()
        .enumerate()
        .map(|(i, (c, _))| {
            let o = order.clone();
            c.recv(
                vec![0u8; 4],
                MsgFlags::empty(),
                Notify::routine(move |_| o.borrow_mut().push(i)),
            )
            .unwrap()
            .op()
        })
        .collect();
    // Complete them in the order 2, 0, 3, 1, driving non-alertably
    // between, so each completes before the next is written.
    for &i in &[2usize, 0, 3, 1] {
        write_all(&mut pairs[i].1, b"go");
        let t0 = Instant::now();
        while !ops[i].is_complete() && t0.elapsed() < slack(10 * SEC) {
            sleep_ex(Some(Duration::from_millis(5)), false);
        }
        assert!(ops[i].is_complete());
    }
    assert!(order.borrow().is_empty());
    assert_eq!(
        sleep_ex(Some(Duration::ZERO), true),
        SleepOutcome::IoCompletion
    );
    assert_eq!(
        *order.borrow(),
        vec![2, 0, 3, 1],
        "all ran in one wait, in completion order"
    );
    assert_eq!(
        sleep_ex(Some(Duration::ZERO), true),
        SleepOutcome::Timeout,
        "none left"
    );
}

fn r06_immediate_and_later_completions_in_order(e: &Engine) {
    // Completed-at-start ops queue their routines at start; later ones
    // when they complete: one alertable wait runs them all in that order.
    let (c, mut p) = std_pair(e);
    let order = Rc::new(RefCell::new(Vec::new()));
    let push = |tag: &'static str| {
        let o = order.clone();
        Notify::routine(move |_: Completion<Vec<u8>>| o.borrow_mut().push(tag))
    };
    let r = c
        .recv(vec![0u8; 4], MsgFlags::empty(), push("recv"))
        .unwrap()
        .op();
    let s1 = c
        .send(b"1".to_vec(), MsgFlags::empty(), push("send1"))
        .unwrap();
    assert!(!s1.is_pending());
    write_all(&mut p, b"r");
    while !r.is_complete() {
        sleep_ex(Some(Duration::from_millis(5)), false);
    }
    let s2 = c
        .send(b"2".to_vec(), MsgFlags::empty(), push("send2"))
        .unwrap();
    assert!(!s2.is_pending());
    assert_eq!(
        sleep_ex(Some(Duration::ZERO), true),
        SleepOutcome::IoCompletion
    );
    assert_eq!(*order.borrow(), vec!["send1", "recv", "send2"]);
}

fn r07_echo_pattern_10000_round_trips(e: &Engine) {
    let (c, s) = tcp_pair(e);
    let s = Rc::new(s);
    let rounds = Rc::new(Cell::new(0u32));
    // Server: recv → (routine) send → (routine) recv ..., all routines.
    fn post_recv(s: Rc<Socket>, rounds: Rc<Cell<u32>>, mut buf: Vec<u8>) {
        let s2 = s.clone();
        buf.resize(buf.capacity().max(64), 0);
        s.recv(
            buf,
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                if d.error.is_some() || d.bytes == 0 {
                    return;
                }
                let s3 = s2.clone();
                s2.send(
                    d.data,
                    MsgFlags::empty(),
                    Notify::routine(move |d: Completion<Vec<u8>>| {
                        assert!(d.error.is_none(), "{:?}", d.error);
                        bump(&rounds);
                        post_recv(s3, rounds, d.data);
                    }),
                )
                .unwrap();
            }),
        )
        .unwrap();
    }
    post_recv(s.clone(), rounds.clone(), vec![0u8; 64]);
    // Client on the same thread, also with routines: send n, receive the
    // echo (exactly 4 bytes, however they arrive), then the next.
    let c = Rc::new(c);
    let done = Rc::new(Cell::new(0u32));
    fn ping(c: Rc<Socket>, done: Rc<Cell<u32>>, n: u32) {
        if n == 0 {
            return;
        }
        let c2 = c.clone();
        c.send(
            n.to_le_bytes().to_vec(),
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                assert!(d.error.is_none(), "{:?}", d.error);
                pong(c2, done, n, Vec::new());
            }),
        )
        .unwrap();
    }
    fn pong(c: Rc<Socket>, done: Rc<Cell<u32>>, n: u32, have: Vec<u8>) {
        let c2 = c.clone();
        c.recv(
            vec![0u8; 4 - have.len()],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                assert!(d.error.is_none() && d.bytes > 0, "{:?}", d.error);
                let mut have = have;
                have.extend_from_slice(&d.data);
                if have.len() < 4 {
                    return pong(c2, done, n, have);
                }
                assert_eq!(have, n.to_le_bytes());
                bump(&done);
                ping(c2, done, n - 1);
            }),
        )
        .unwrap();
    }
    ping(c.clone(), done.clone(), 10_000);
    let end = Instant::now() + slack(50 * SEC);
    while done.get() < 10_000 && Instant::now() < end {
        sleep_ex(Some(Duration::from_millis(100)), true);
    }
    assert_eq!(done.get(), 10_000);
    assert_eq!(rounds.get(), 10_000);
    // The server's next receive is pending; closing ends it (its routine
    // sees the abort and stops the chain).
    s.close().unwrap();
    sleep_ex(Some(Duration::from_millis(50)), true);
    assert!(eventually(slack(5 * SEC), || {
        sleep_ex(Some(Duration::ZERO), true);
        e.ops_in_table() == 0
    }));
}

fn r08_immediate_completion_routine_runs_in_next_alertable_wait(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let (ran, r2) = counter();
    let st = c
        .send(
            b"now".to_vec(),
            MsgFlags::empty(),
            Notify::routine(move |_| bump(&r2)),
        )
        .unwrap();
    assert!(!st.is_pending());
    assert_eq!(ran.get(), 0, "not inside the start call");
    busy(Duration::from_millis(20));
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(20)), false),
        SleepOutcome::Timeout
    );
    assert_eq!(ran.get(), 0, "nor in a non-alertable wait");
    assert_eq!(
        sleep_ex(Some(Duration::ZERO), true),
        SleepOutcome::IoCompletion
    );
    assert_eq!(ran.get(), 1);
    // A receive whose data was already there: the same.
    write_all(&mut p, b"here");
    std::thread::sleep(Duration::from_millis(20));
    let got = Rc::new(RefCell::new(Vec::new()));
    let g2 = got.clone();
    let st = c
        .recv(
            vec![0u8; 8],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| *g2.borrow_mut() = d.data),
        )
        .unwrap();
    assert_eq!(st.bytes_now(), Some(4));
    assert!(got.borrow().is_empty(), "not inside the start call");
    let ev = Event::new();
    assert_eq!(
        wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, ten(), true).unwrap(),
        WaitOutcome::IoCompletion
    );
    assert_eq!(&got.borrow()[..], b"here");
}

fn r08_alertable_wait_inside_a_routine_runs_no_routine(e: &Engine) {
    let (c, _p) = std_pair(e);
    let depth = Rc::new(Cell::new(0u32));
    let max = Rc::new(Cell::new(0u32));
    let inner_ran = Rc::new(Cell::new(false));
    let nested: Rc<RefCell<Vec<String>>> = Rc::default();
    let (d2, m2, i2, n2) = (
        depth.clone(),
        max.clone(),
        inner_ran.clone(),
        nested.clone(),
    );
    let c = Rc::new(c);
    let c2 = c.clone();
    c.send(
        b"a".to_vec(),
        MsgFlags::empty(),
        Notify::routine(move |_| {
            d2.set(d2.get() + 1);
            m2.set(m2.get().max(d2.get()));
            let (d3, m3, i3) = (d2.clone(), m2.clone(), i2.clone());
            // Completes at once; its routine must not run inside this one,
            // even in an alertable wait here.
            c2.send(
                b"b".to_vec(),
                MsgFlags::empty(),
                Notify::routine(move |_| {
                    d3.set(d3.get() + 1);
                    m3.set(m3.get().max(d3.get()));
                    i3.set(true);
                    d3.set(d3.get() - 1);
                }),
            )
            .unwrap();
            n2.borrow_mut().push(format!(
                "{:?}",
                sleep_ex(Some(Duration::from_millis(10)), true)
            ));
            let never = Event::new();
            n2.borrow_mut().push(format!(
                "{:?}",
                wait_for_events(
                    std::slice::from_ref(&never),
                    WaitMode::Any,
                    Some(Duration::from_millis(10)),
                    true
                )
                .unwrap()
            ));
            n2.borrow_mut()
                .push(format!("{:?}", sleep_ex(Some(Duration::ZERO), true)));
            n2.borrow_mut().push(format!("inner ran: {}", i2.get()));
            d2.set(d2.get() - 1);
        }),
    )
    .unwrap();
    assert_eq!(sleep_ex(ten(), true), SleepOutcome::IoCompletion);
    assert_eq!(
        *nested.borrow(),
        vec!["Timeout", "Timeout", "Timeout", "inner ran: false"],
        "nested alertable waits ran nothing"
    );
    alertable_until(|| inner_ran.get());
    assert_eq!(max.get(), 1, "a routine never ran inside another");
}

fn r09_thread_exit_with_pending_ops_and_queued_routines(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let (c9, mut p9) = std_pair(e);
    let c = Arc::new(c);
    let base = fd_count();
    // A drop counter: each routine closure of the exiting thread holds a
    // clone of `token`.
    let token = Arc::new(());
    let ran = Arc::new(AtomicBool::new(false));
    // Another thread with its own routine op, undisturbed throughout.
    let (bystander_tx, bystander_rx) = std::sync::mpsc::channel::<()>();
    let bystander = std::thread::spawn(move || {
        let got = Rc::new(RefCell::new(None));
        let g2 = got.clone();
        c9.recv(
            vec![0u8; 8],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| *g2.borrow_mut() = Some(d.data)),
        )
        .unwrap();
        bystander_tx.send(()).unwrap();
        let end = Instant::now() + slack(10 * SEC);
        while got.borrow().is_none() && Instant::now() < end {
            sleep_ex(Some(Duration::from_millis(50)), true);
        }
        got.borrow_mut().take()
    });
    bystander_rx.recv().unwrap();
    let base_ops = e.ops_in_table();
    assert_eq!(base_ops, 1, "the bystander's receive");
    {
        let (c2, t, ran) = (c.clone(), token.clone(), ran.clone());
        std::thread::spawn(move || {
            // A queued routine (completed at start, never run), a
            // pending receive and a pending large send.
            let (t1, t2, t3) = (t.clone(), t.clone(), t);
            let (r1, r2, r3) = (ran.clone(), ran.clone(), ran);
            let q = c2
                .send(
                    b"q".to_vec(),
                    MsgFlags::empty(),
                    Notify::routine(move |_| {
                        let _t = &t1;
                        r1.store(true, Ordering::SeqCst);
                    }),
                )
                .unwrap();
            assert!(!q.is_pending());
            let r = c2
                .recv(
                    vec![0u8; 8],
                    MsgFlags::empty(),
                    Notify::routine(move |_| {
                        let _t = &t2;
                        r2.store(true, Ordering::SeqCst);
                    }),
                )
                .unwrap();
            assert!(r.is_pending());
            c2.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
            let s = c2
                .send(
                    vec![5u8; 4 << 20],
                    MsgFlags::empty(),
                    Notify::routine(move |_| {
                        let _t = &t3;
                        r3.store(true, Ordering::SeqCst);
                    }),
                )
                .unwrap();
            assert!(s.is_pending());
        })
        .join()
        .unwrap();
    }
    assert!(
        eventually(slack(5 * SEC), || {
            e.poll();
            e.ops_in_table() == base_ops && Arc::strong_count(&token) == 1
        }),
        "the exited thread's ops and routines were released: ops {} (base {base_ops}), routines {}",
        e.ops_in_table(),
        Arc::strong_count(&token) - 1
    );
    assert!(
        !ran.load(Ordering::SeqCst),
        "an exited thread's routine never runs"
    );
    assert!(fd_count() <= base, "fds {} vs {base}", fd_count());
    // Other threads are undisturbed: the bystander's routine runs...
    write_all(&mut p9, b"still");
    assert_eq!(bystander.join().unwrap().as_deref(), Some(&b"still"[..]));
    // ...and this thread's operations on the same socket work.
    let (ran_here, r) = counter();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g2 = got.clone();
    c.recv(
        vec![0u8; 8],
        MsgFlags::empty(),
        Notify::routine(move |d: Completion<Vec<u8>>| {
            *g2.borrow_mut() = d.data;
            bump(&r);
        }),
    )
    .unwrap();
    // The exited thread's "q" and part of its large send reached the peer;
    // skip what arrived, then check a fresh exchange.
    p.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut sink = vec![0u8; 1 << 16];
    while let Ok(n) = std::io::Read::read(&mut p, &mut sink) {
        if n == 0 {
            break;
        }
    }
    write_all(&mut p, b"fine");
    alertable_until(|| ran_here.get() == 1);
    assert_eq!(&got.borrow()[..], b"fine");
}

util::cases! {
    r06_ready_routines_all_run_in_completion_order,
    r06_immediate_and_later_completions_in_order,
    r07_echo_pattern_10000_round_trips,
    r08_immediate_completion_routine_runs_in_next_alertable_wait,
    r08_alertable_wait_inside_a_routine_runs_no_routine,
    r09_thread_exit_with_pending_ops_and_queued_routines,
}
