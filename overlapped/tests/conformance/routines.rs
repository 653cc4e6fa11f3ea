//! `docs/SPEC.md`, section *routines*, r01–r05: a routine runs once, on
//! the thread that started its operation, only in an alertable wait, and
//! what the alertable waits return. r06–r09 are `routine_queue.rs`.
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::routine::*;
use crate::util::{self, *};

/// What a routine saw, kept for assertions outside it.
#[derive(Debug, PartialEq)]
struct Seen {
    error: Option<std::io::ErrorKind>,
    bytes: usize,
    flags: RecvFlags,
    data: Vec<u8>,
}

/// A send routine's byte count and buffers.
type SentBack = Option<(usize, Vec<Vec<u8>>)>;

fn seen_of(d: Completion<Vec<u8>>) -> Seen {
    Seen {
        error: d.error.map(|e| e.kind()),
        bytes: d.bytes,
        flags: d.flags,
        data: d.data,
    }
}

fn r01_routine_runs_once_with_result_and_buffers(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let s2 = seen.clone();
    let st = c
        .recv(
            vec![0u8; 16],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                s2.borrow_mut().push(seen_of(d));
            }),
        )
        .unwrap();
    assert!(st.is_pending());
    write_all(&mut p, b"routine");
    alertable_until(|| !seen.borrow().is_empty());
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(50)), true),
        SleepOutcome::Timeout
    );
    let seen = seen.borrow();
    assert_eq!(seen.len(), 1, "exactly once");
    assert_eq!(
        seen[0],
        Seen {
            error: None,
            bytes: 7,
            flags: RecvFlags::empty(),
            data: b"routine".to_vec()
        }
    );
}

fn r01_routine_gets_flags_error_and_send_buffers(e: &Engine) {
    // Flags: a truncated datagram.
    let a = Socket::udp_bound(e, &v4()).unwrap();
    let b = Socket::udp_bound(e, &v4()).unwrap();
    let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
    let s2 = seen.clone();
    b.recv_from(
        vec![0u8; 4],
        MsgFlags::empty(),
        Notify::routine(move |d: Completion<Vec<u8>>| s2.borrow_mut().push(seen_of(d))),
    )
    .unwrap();
    a.send_to(
        b"0123456789".to_vec(),
        b.local_addr().unwrap(),
        MsgFlags::empty(),
        Notify::None,
    )
    .unwrap()
    .wait()
    .unwrap();
    alertable_until(|| !seen.borrow().is_empty());
    assert_eq!(
        seen.borrow()[0],
        Seen {
            error: None,
            bytes: 4,
            flags: RecvFlags::TRUNCATED,
            data: b"0123".to_vec()
        }
    );
    // Error: a reset connection.
    let (c, p) = std_pair(e);
    let s3 = seen.clone();
    c.recv(
        vec![0u8; 8],
        MsgFlags::empty(),
        Notify::routine(move |d: Completion<Vec<u8>>| s3.borrow_mut().push(seen_of(d))),
    )
    .unwrap();
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p);
    alertable_until(|| seen.borrow().len() == 2);
    let s = &seen.borrow()[1];
    assert_eq!(
        (s.error, s.bytes),
        (Some(std::io::ErrorKind::ConnectionReset), 0)
    );
    // A send's routine gets the sent buffers back.
    let (c, mut p) = std_pair(e);
    let sent: Rc<RefCell<SentBack>> = Rc::default();
    let s4 = sent.clone();
    c.send(
        vec![b"ab".to_vec(), b"cde".to_vec()],
        MsgFlags::empty(),
        Notify::routine(move |d: Completion<Vec<Vec<u8>>>| {
            assert!(d.error.is_none());
            *s4.borrow_mut() = Some((d.bytes, d.data));
        }),
    )
    .unwrap();
    alertable_until(|| sent.borrow().is_some());
    assert_eq!(
        sent.borrow_mut().take(),
        Some((5, vec![b"ab".to_vec(), b"cde".to_vec()]))
    );
    assert_eq!(read_n(&mut p, 5), b"abcde");
}

fn r01_a_chain_of_immediate_routines_does_not_starve_a_pending_one(e: &Engine) {
    // Connection A has 64 KiB waiting: its routine re-posts a 4-byte
    // receive, which completes at once, 16,384 times. Connection B's
    // receive is pending; its byte arrives while A's chain runs. B's
    // routine runs long before the chain ends: each alertable wait runs
    // the routines queued at its start, and the engine is reaped between
    // waits.
    const CHAIN: usize = 16 * 1024;
    let (a, mut pa) = std_pair(e);
    let (b, mut pb) = std_pair(e);
    write_all(&mut pa, &vec![1u8; 4 * CHAIN]);
    let a_count = Rc::new(Cell::new(0usize));
    let b_seen_at = Rc::new(Cell::new(None::<usize>));
    let b2 = b_seen_at.clone();
    let ac = a_count.clone();
    b.recv(
        vec![0u8; 1],
        MsgFlags::empty(),
        Notify::routine(move |d: Completion<Vec<u8>>| {
            assert_eq!(d.bytes, 1);
            b2.set(Some(ac.get()));
        }),
    )
    .unwrap();
    fn post(a: Rc<Socket>, count: Rc<Cell<usize>>) {
        let (a2, c2) = (a.clone(), count.clone());
        a.recv(
            vec![0u8; 4],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                assert!(d.error.is_none());
                c2.set(c2.get() + d.bytes / 4);
                if c2.get() < CHAIN {
                    post(a2, c2);
                }
            }),
        )
        .unwrap();
    }
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(2));
        write_all(&mut pb, b"x");
        pb
    });
    post(Rc::new(a), a_count.clone());
    let (ac, bs) = (a_count.clone(), b_seen_at.clone());
    alertable_until(move || ac.get() >= CHAIN && bs.get().is_some());
    let _pb = writer.join().unwrap();
    let at = b_seen_at.get().unwrap();
    assert!(
        at < CHAIN * 3 / 4,
        "B's routine ran after {at} of A's {CHAIN} routines"
    );
}

fn r02_routine_runs_only_on_the_issuing_thread(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let me = std::thread::current().id();
    let (ran, r2) = counter();
    let ran_on = Rc::new(Cell::new(None));
    let on2 = ran_on.clone();
    let op = c
        .recv(
            vec![0u8; 4],
            MsgFlags::empty(),
            Notify::routine(move |_| {
                on2.set(Some(std::thread::current().id()));
                bump(&r2);
            }),
        )
        .unwrap()
        .op();
    write_all(&mut p, b"x");
    // Another thread drives the engine (so the op completes) and waits
    // alertably: the routine is not its to run.
    let other = {
        let e = e.clone();
        std::thread::spawn(move || {
            let mut outcomes = Vec::new();
            for _ in 0..4 {
                e.drive(Some(Duration::from_millis(20)));
                outcomes.push(sleep_ex(Some(Duration::from_millis(30)), true));
                outcomes.push(
                    match wait_for_events(
                        &[Event::new()],
                        WaitMode::Any,
                        Some(Duration::from_millis(30)),
                        true,
                    )
                    .unwrap()
                    {
                        WaitOutcome::Timeout => SleepOutcome::Timeout,
                        _ => SleepOutcome::IoCompletion,
                    },
                );
            }
            outcomes
        })
    };
    let outcomes = other.join().unwrap();
    assert!(
        outcomes.iter().all(|o| *o == SleepOutcome::Timeout),
        "{outcomes:?}"
    );
    assert!(
        op.is_complete(),
        "the operation completed (driven by the other thread)"
    );
    assert_eq!(ran.get(), 0);
    // The issuer's alertable wait runs it.
    assert_eq!(sleep_ex(ten(), true), SleepOutcome::IoCompletion);
    assert_eq!(ran.get(), 1);
    assert_eq!(ran_on.get(), Some(me));
}

fn r03_not_run_outside_an_alertable_wait(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let (ran, r2) = counter();
    let op = c
        .recv(
            vec![0u8; 4],
            MsgFlags::empty(),
            Notify::routine(move |_| bump(&r2)),
        )
        .unwrap()
        .op();
    write_all(&mut p, b"x");
    busy(Duration::from_millis(200));
    assert_eq!(ran.get(), 0, "busy work runs no routine");
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(100)), false),
        SleepOutcome::Timeout
    );
    assert!(op.is_complete(), "the operation completed");
    assert_eq!(ran.get(), 0, "a non-alertable sleep runs no routine");
    let ev = Event::new();
    assert_eq!(
        wait_for_events(
            std::slice::from_ref(&ev),
            WaitMode::Any,
            Some(Duration::from_millis(50)),
            false
        )
        .unwrap(),
        WaitOutcome::Timeout
    );
    assert_eq!(ran.get(), 0, "a non-alertable event wait runs no routine");
    assert_eq!(
        sleep_ex(Some(Duration::ZERO), true),
        SleepOutcome::IoCompletion
    );
    assert_eq!(ran.get(), 1);
}

fn r04_sleep_ex_infinite_returns_io_completion(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let (ran, r2) = counter();
    for _ in 0..3 {
        let r = r2.clone();
        c.recv(
            vec![0u8; 1],
            MsgFlags::empty(),
            Notify::routine(move |_| bump(&r)),
        )
        .unwrap();
    }
    write_all(&mut p, b"abc");
    let t0 = Instant::now();
    assert_eq!(sleep_ex(INFINITE, true), SleepOutcome::IoCompletion);
    assert!(ran.get() >= 1, "it returned after routines ran");
    while ran.get() < 3 && t0.elapsed() < slack(10 * SEC) {
        assert_eq!(sleep_ex(INFINITE, true), SleepOutcome::IoCompletion);
    }
    assert_eq!(ran.get(), 3);
    assert!(t0.elapsed() < slack(SEC), "{:?}", t0.elapsed());
}

fn r04_sleep_ex_returns_timeout_after_the_time(e: &Engine) {
    // Nothing at all on this thread.
    let t0 = Instant::now();
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(100)), true),
        SleepOutcome::Timeout
    );
    let took = t0.elapsed();
    assert!(
        took >= 100 * MS && took < 100 * MS + slack(200 * MS),
        "{took:?}"
    );
    // With a pending routine op that does not complete.
    let (c, _p) = std_pair(e);
    let (ran, r2) = counter();
    c.recv(
        vec![0u8; 1],
        MsgFlags::empty(),
        Notify::routine(move |_| bump(&r2)),
    )
    .unwrap();
    let t0 = Instant::now();
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(100)), true),
        SleepOutcome::Timeout
    );
    let took = t0.elapsed();
    assert!(
        took >= 100 * MS && took < 100 * MS + slack(200 * MS),
        "{took:?}"
    );
    assert_eq!(ran.get(), 0);
    let t0 = Instant::now();
    assert_eq!(sleep_ex(Some(Duration::ZERO), true), SleepOutcome::Timeout);
    assert!(t0.elapsed() < slack(25 * MS), "{:?}", t0.elapsed());
}

fn r05_alertable_event_wait_returns_io_completion(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let (ran, r2) = counter();
    c.recv(
        vec![0u8; 4],
        MsgFlags::empty(),
        Notify::routine(move |_| bump(&r2)),
    )
    .unwrap();
    write_all(&mut p, b"x");
    let never = Event::new();
    let t0 = Instant::now();
    assert_eq!(
        wait_for_events(std::slice::from_ref(&never), WaitMode::Any, ten(), true).unwrap(),
        WaitOutcome::IoCompletion
    );
    assert!(t0.elapsed() < slack(SEC), "{:?}", t0.elapsed());
    assert_eq!(ran.get(), 1);
    assert!(!never.is_set());
    // Also in a wait-all.
    let (ran2, r3) = counter();
    c.recv(
        vec![0u8; 4],
        MsgFlags::empty(),
        Notify::routine(move |_| bump(&r3)),
    )
    .unwrap();
    write_all(&mut p, b"y");
    let set = Event::new();
    set.set();
    assert_eq!(
        wait_for_events(&[set, never], WaitMode::All, ten(), true).unwrap(),
        WaitOutcome::IoCompletion
    );
    assert_eq!(ran2.get(), 1);
}

fn r05_routines_queued_at_entry_run_before_a_set_event(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let (ran, r2) = counter();
    let op = c
        .recv(
            vec![0u8; 4],
            MsgFlags::empty(),
            Notify::routine(move |_| bump(&r2)),
        )
        .unwrap()
        .op();
    write_all(&mut p, b"y");
    assert!(eventually(slack(5 * SEC), || op.is_complete()));
    let ev = Event::new();
    ev.set();
    assert_eq!(
        wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, ten(), true).unwrap(),
        WaitOutcome::IoCompletion
    );
    assert_eq!(ran.get(), 1);
    assert_eq!(
        wait_for_events(&[ev], WaitMode::Any, ten(), true).unwrap(),
        WaitOutcome::Event(0)
    );
}

util::cases! {
    r01_routine_runs_once_with_result_and_buffers,
    r01_routine_gets_flags_error_and_send_buffers,
    r01_a_chain_of_immediate_routines_does_not_starve_a_pending_one,
    r02_routine_runs_only_on_the_issuing_thread,
    r03_not_run_outside_an_alertable_wait,
    r04_sleep_ex_infinite_returns_io_completion,
    r04_sleep_ex_returns_timeout_after_the_time,
    r05_alertable_event_wait_returns_io_completion,
    r05_routines_queued_at_entry_run_before_a_set_event,
}
