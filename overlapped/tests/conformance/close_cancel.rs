//! `docs/SPEC.md`, section *close and cancel* (c01–c08; c08 on a socket
//! with and without a completion port).
use std::cell::RefCell;
use std::io::{ErrorKind, Read};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// Takes a result within ten seconds or fails the case.
fn done_within_ten<T: OpOutput>(op: Op<T>) -> Completion<T> {
    match op.result_timeout(ten()).unwrap() {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => panic!("the operation did not complete within 10 s"),
    }
}

/// Receives from `s` until `into` holds `n` bytes.
fn recv_until(s: &Socket, into: &mut Vec<u8>, n: usize) {
    while into.len() < n {
        let st = s
            .recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)
            .unwrap();
        let d = done_within_ten(st.op());
        assert!(d.error.is_none(), "{:?}", d.error);
        assert!(d.bytes > 0, "the stream ended early");
        assert_eq!(d.bytes, d.data.len());
        into.extend_from_slice(&d.data);
    }
}

/// What receive buffers of the race cases are filled with before the start.
const FILL: u8 = 0xEE;

/// Checks one completion of a cancel race: aborted with nothing consumed, or
/// successful with some data. Returns the data taken.
fn race_outcome(d: Completion<Vec<u8>>, aborted: &mut u32) -> Vec<u8> {
    if d.is_aborted() {
        *aborted += 1;
        assert_eq!(d.bytes, 0, "an aborted receive consumed nothing");
        assert!(
            d.data.iter().all(|&b| b == FILL),
            "nothing landed in the buffer"
        );
        assert_eq!(d.data.capacity(), 4, "the buffer came back");
        Vec::new()
    } else {
        assert!(d.error.is_none(), "neither aborted nor ok: {:?}", d.error);
        assert!(d.bytes > 0);
        assert_eq!(d.bytes, d.data.len());
        d.data
    }
}

fn c01_close_aborts_pending_receives_with_buffers(e: &Engine) {
    let (c, _p) = std_pair(e);
    let evs: Vec<Event> = (0..4).map(|_| Event::new()).collect();
    let ops: Vec<_> = evs
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            let st = c
                .recv(vec![i as u8; 32 + i], MsgFlags::empty(), ev)
                .unwrap();
            assert!(st.is_pending());
            st.op()
        })
        .collect();
    assert_eq!(e.ops_in_table(), 4);
    c.close().unwrap();
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0),
        "every event is set"
    );
    for (i, op) in ops.into_iter().enumerate() {
        let d = done_within_ten(op);
        assert!(d.is_aborted(), "op {i}: {:?}", d.error);
        assert_eq!(d.bytes, 0);
        assert_eq!(d.data.capacity(), 32 + i, "op {i} got its own buffer back");
        assert!(
            d.data.iter().all(|&b| b == i as u8),
            "op {i}: nothing landed"
        );
    }
    assert_eq!(e.ops_in_table(), 0);
    // The closed socket refuses new work at start.
    let err = c
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.raw_os_error(), Some(libc::EBADF));
}

fn c01_aborted_receive_buffers_truncated_to_bytes_landed(e: &Engine) {
    // buf.rs: on completion each receive buffer is truncated to the bytes
    // that landed in it — for an aborted receive, none.
    let (c, _p) = std_pair(e);
    let one = c
        .recv(vec![1u8; 16], MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    let arr = c
        .recv(
            [vec![2u8; 3], vec![3u8; 5]],
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap()
        .op();
    let cancelled = c
        .recv(vec![4u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    cancelled.cancel().unwrap();
    let d = done_within_ten(cancelled);
    assert!(d.is_aborted());
    assert_eq!(
        (d.data.len(), d.data.capacity()),
        (0, 8),
        "cancelled receive: truncated to 0, capacity kept"
    );
    c.close().unwrap();
    let d = done_within_ten(one);
    assert!(d.is_aborted());
    assert_eq!(
        (d.data.len(), d.data.capacity()),
        (0, 16),
        "closed receive: truncated to 0, capacity kept"
    );
    let d = done_within_ten(arr);
    assert!(d.is_aborted());
    assert_eq!([d.data[0].len(), d.data[1].len()], [0, 0]);
    assert_eq!([d.data[0].capacity(), d.data[1].capacity()], [3, 5]);
}

fn c01_drop_of_socket_aborts_pending_receives(e: &Engine) {
    let (c, _p) = std_pair(e);
    let ops: Vec<_> = (0..4)
        .map(|_| {
            c.recv(
                [vec![0u8; 3], vec![0u8; 5]],
                MsgFlags::empty(),
                Notify::None,
            )
            .unwrap()
            .op()
        })
        .collect();
    drop(c);
    for op in ops {
        let d = done_within_ten(op);
        assert!(d.is_aborted(), "{:?}", d.error);
        assert_eq!([d.data[0].capacity(), d.data[1].capacity()], [3, 5]);
    }
}

fn c02_cancel_aborts_and_sets_event(e: &Engine) {
    let (c, _p) = std_pair(e);
    let before = e.counters().cancelled;
    let ev = Event::new();
    let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap().op();
    op.cancel().unwrap();
    assert!(ev.wait(ten()), "the cancelled op's event is set");
    let op = match op.result(false).unwrap() {
        Polled::Complete(d) => {
            assert!(d.is_aborted(), "{:?}", d.error);
            assert_eq!(d.bytes, 0);
            assert_eq!(d.data.capacity(), 8);
            None
        }
        Polled::Incomplete(op) => Some(op),
    };
    assert!(op.is_none(), "the event was set, so the op is complete");
    assert_eq!(e.counters().cancelled - before, 1);
    assert_eq!(e.ops_in_table(), 0);
}

fn c02_cancel_of_completed_op_is_not_found(e: &Engine) {
    let (c, mut p) = std_pair(e);
    write_all(&mut p, b"x");
    let op = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    assert!(eventually(slack(5 * SEC), || op.is_complete()));
    assert_eq!(op.cancel().unwrap_err().kind(), ErrorKind::NotFound);
    let d = op.wait().unwrap();
    assert!(d.error.is_none());
    assert_eq!(&d.data[..], b"x");
}

fn c02_cancel_runs_routine_with_aborted(e: &Engine) {
    let (c, _p) = std_pair(e);
    let seen: Rc<RefCell<Vec<(bool, usize, usize)>>> = Rc::default();
    let s2 = seen.clone();
    let op = c
        .recv(
            vec![0u8; 8],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                s2.borrow_mut()
                    .push((d.is_aborted(), d.bytes, d.data.capacity()));
            }),
        )
        .unwrap()
        .op();
    op.cancel().unwrap();
    assert!(
        seen.borrow().is_empty(),
        "the routine does not run inside cancel"
    );
    assert_eq!(sleep_ex(ten(), true), SleepOutcome::IoCompletion);
    assert_eq!(
        *seen.borrow(),
        vec![(true, 0, 8)],
        "ran once, aborted, with the buffer"
    );
    assert_eq!(op.cancel().unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(20)), true),
        SleepOutcome::Timeout,
        "and only once"
    );
}

fn c03_cancel_races_completion_10000(e: &Engine) {
    let (c, s) = tcp_pair(e);
    let before = e.counters().cancelled;
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let mut aborted = 0u32;
    for i in 0..10_000u32 {
        let ev = Event::new();
        let st = s.recv(vec![FILL; 4], MsgFlags::empty(), &ev).unwrap();
        assert!(st.is_pending(), "round {i}: nothing was there");
        let op = st.op();
        let msg = i.to_le_bytes();
        let send = |c: &Socket| {
            let d = c
                .send(msg.to_vec(), MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(d.bytes, 4);
        };
        let must_abort = i % 4 == 1;
        match i % 4 {
            0 => {
                send(&c);
                let _ = op.cancel();
            }
            1 => {
                op.cancel().unwrap();
                send(&c);
            }
            2 => {
                send(&c);
                e.poll();
                let _ = op.cancel();
            }
            _ => {
                send(&c);
                let t0 = Instant::now();
                let spin = Duration::from_micros(u64::from(i % 97));
                while t0.elapsed() < spin {
                    std::hint::spin_loop();
                }
                let _ = op.cancel();
            }
        }
        expected.extend_from_slice(&msg);
        // Exactly once: the event is set and the handle has the result.
        assert!(ev.wait(ten()), "round {i}: the op never completed");
        let d = done_within_ten(op);
        if must_abort {
            assert!(
                d.is_aborted(),
                "round {i}: cancelled before any data: {:?}",
                d.error
            );
        }
        got.extend_from_slice(&race_outcome(d, &mut aborted));
        // Whatever the cancelled receive did not take is still there.
        recv_until(&s, &mut got, expected.len());
        assert_eq!(got.len(), expected.len(), "round {i}: no byte duplicated");
    }
    eprintln!("c03: {aborted} of 10000 rounds aborted");
    assert_eq!(got, expected, "no byte lost, duplicated or reordered");
    assert!(aborted >= 2500, "the cancel-first rounds abort: {aborted}");
    assert_eq!(e.counters().cancelled - before, u64::from(aborted));
    assert_eq!(e.ops_in_table(), 0);
}

fn c03_cancel_races_peer_thread_10000(e: &Engine) {
    // The peer writes from another thread while the case thread cancels
    // and a third thread drives the engine, so completion and cancel
    // really race on both engines.
    let (c, mut p) = std_pair(e);
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (e, stop) = (e.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                e.drive(Some(Duration::from_millis(1)));
            }
        })
    };
    let go = Arc::new(Barrier::new(2));
    let writer = {
        let go = go.clone();
        std::thread::spawn(move || {
            for i in 0..10_000u32 {
                go.wait();
                write_all(&mut p, &i.to_le_bytes());
            }
            p
        })
    };
    let mut expected = Vec::new();
    let mut got = Vec::new();
    let mut aborted = 0u32;
    for i in 0..10_000u32 {
        let op = c
            .recv(vec![FILL; 4], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op();
        go.wait();
        let t0 = Instant::now();
        let spin = Duration::from_micros(u64::from(i % 61));
        while t0.elapsed() < spin {
            std::hint::spin_loop();
        }
        let _ = op.cancel();
        let d = done_within_ten(op);
        got.extend_from_slice(&race_outcome(d, &mut aborted));
        expected.extend_from_slice(&i.to_le_bytes());
        recv_until(&c, &mut got, expected.len());
    }
    let _p = writer.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    driver.join().unwrap();
    eprintln!("c03 (peer thread): {aborted} of 10000 rounds aborted");
    assert_eq!(
        got, expected,
        "no byte lost, duplicated or reordered ({aborted} aborted)"
    );
    assert_eq!(e.ops_in_table(), 0);
}

fn c04_cancel_all_is_per_socket(e: &Engine) {
    let (a, mut pa) = std_pair(e);
    let (b, mut pb) = std_pair(e);
    let evs: Vec<Event> = (0..3).map(|_| Event::new()).collect();
    let oa: Vec<_> = evs
        .iter()
        .map(|ev| a.recv(vec![0u8; 4], MsgFlags::empty(), ev).unwrap().op())
        .collect();
    let evb = Event::new();
    let ob = b.recv(vec![0u8; 4], MsgFlags::empty(), &evb).unwrap().op();
    assert_eq!(a.cancel_all().unwrap(), 3);
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    for op in oa {
        let d = done_within_ten(op);
        assert!(d.is_aborted(), "{:?}", d.error);
        assert_eq!(d.data.capacity(), 4);
    }
    assert!(
        !evb.wait(Some(Duration::from_millis(50))),
        "the other socket's op is untouched"
    );
    assert!(!ob.is_complete());
    assert_eq!(a.cancel_all().unwrap(), 0, "nothing left to cancel");
    write_all(&mut pb, b"kept");
    let d = done_within_ten(ob);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(&d.data[..], b"kept");
    // The cancelled socket still works.
    write_all(&mut pa, b"more");
    let d = done_within_ten(
        a.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op(),
    );
    assert_eq!(&d.data[..], b"more");
}

fn c04_cancel_all_covers_both_directions(e: &Engine) {
    let (a, _pa) = std_pair(e);
    let (b, _pb) = std_pair(e);
    for s in [&a, &b] {
        s.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
    }
    let sa = a
        .send(vec![1u8; 4 << 20], MsgFlags::empty(), Notify::None)
        .unwrap();
    let ra = a
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap();
    let sb = b
        .send(vec![1u8; 4 << 20], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(sa.is_pending() && ra.is_pending() && sb.is_pending());
    assert_eq!(a.cancel_all().unwrap(), 2);
    let d = done_within_ten(sa.op());
    assert!(d.is_aborted(), "{:?}", d.error);
    assert!(d.bytes < 4 << 20);
    assert!(done_within_ten(ra.op()).is_aborted());
    std::thread::sleep(Duration::from_millis(20));
    let sb = sb.op();
    assert!(!sb.is_complete(), "b's send is still in flight");
    sb.cancel().unwrap();
    assert!(done_within_ten(sb).is_aborted());
}

fn c05_drop_cancels_and_later_data_is_not_lost(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let before = e.counters().cancelled;
    let st = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(st.is_pending());
    drop(st);
    assert!(
        eventually(slack(5 * SEC), || {
            e.poll();
            e.ops_in_table() == 0
        }),
        "the dropped op's slot (and buffer) was released"
    );
    assert_eq!(e.counters().cancelled - before, 1);
    write_all(&mut p, b"after");
    let d = done_within_ten(
        c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op(),
    );
    assert_eq!(&d.data[..], b"after");
}

fn c05_drop_races_arrival_no_byte_lost(e: &Engine) {
    // The peer's bytes race the drop: the dropped receive either got
    // cancelled (the bytes stay in the socket) or took them (the engine
    // keeps them for the next receive). Either way the next receive gets
    // every byte, in order.
    let (c, mut p) = std_pair(e);
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for i in 0..2_000u32 {
        let st = c
            .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap();
        assert!(st.is_pending(), "round {i}");
        write_all(&mut p, &i.to_le_bytes());
        expected.extend_from_slice(&i.to_le_bytes());
        match i % 3 {
            0 => {}
            1 => e.poll(),
            _ => std::thread::sleep(Duration::from_micros(u64::from(i % 50))),
        }
        drop(st);
        recv_until(&c, &mut got, expected.len());
    }
    assert_eq!(got, expected);
    assert!(eventually(slack(5 * SEC), || {
        e.poll();
        e.ops_in_table() == 0
    }));
}

fn c06_close_with_pending_large_send(e: &Engine) {
    let (c, mut p) = std_pair(e);
    c.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
    let n = 4 << 20;
    let payload: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let st = c.send(payload, MsgFlags::empty(), Notify::None).unwrap();
    assert!(
        st.is_pending(),
        "4 MiB cannot go at once through a 4 KiB send buffer"
    );
    // Let some of it flow: the peer reads a little first.
    let head = read_n(&mut p, 1000);
    c.close().unwrap();
    let d = done_within_ten(st.op());
    assert!(d.is_aborted() || d.error.is_none(), "{:?}", d.error);
    assert!(d.bytes <= n);
    if d.error.is_none() {
        assert_eq!(d.bytes, n, "a successful stream send sent everything");
    }
    assert_eq!(d.data.len(), n, "the send's buffer came back whole");
    p.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut seen = head;
    let mut buf = vec![0u8; 65536];
    loop {
        match p.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(k) => seen.extend_from_slice(&buf[..k]),
        }
    }
    assert!(
        seen.len() <= d.bytes,
        "the peer saw {} bytes, the send reports {}",
        seen.len(),
        d.bytes
    );
    assert!(
        seen.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
        "the bytes the peer saw are the payload's prefix"
    );
    assert_eq!(e.ops_in_table(), 0);
}

fn c07_no_fd_or_buffer_leaks_over_1000_cycles(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    // A drop counter: every routine closure holds a clone of `token`.
    let token = Arc::new(());
    let ran = Rc::new(std::cell::Cell::new(0u32));
    let base = fd_count();
    for i in 0..1000 {
        let c = Socket::tcp_for(e, &addr).unwrap();
        c.connect_wait(addr).unwrap();
        let (s, _) = l.accept_wait().unwrap();
        // Pending ops of every notify kind, on both ends and directions.
        let ev = Event::new();
        let kept = s.recv(vec![0u8; 64], MsgFlags::empty(), &ev).unwrap();
        let dropped = c
            .recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)
            .unwrap();
        let (t, r) = (token.clone(), ran.clone());
        let routine = c.recv(
            vec![0u8; 64],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                let _t = &t;
                assert!(d.is_aborted() || d.error.is_none());
                r.set(r.get() + 1);
            }),
        );
        assert!(kept.is_pending() && dropped.is_pending() && routine.unwrap().is_pending());
        if i % 2 == 0 {
            drop(dropped);
            c.close().unwrap();
            s.close().unwrap();
        } else {
            s.close().unwrap();
            drop(c);
            drop(dropped);
        }
        assert!(ev.wait(ten()));
        // Closing `c` first may end `s`'s receive with the peer's FIN.
        let d = done_within_ten(kept.op());
        assert!(
            d.is_aborted() || (d.error.is_none() && d.bytes == 0),
            "{:?}",
            d.error
        );
        sleep_ex(Some(Duration::ZERO), true);
    }
    assert!(
        eventually(slack(10 * SEC), || {
            sleep_ex(Some(Duration::ZERO), true);
            e.poll();
            e.ops_in_table() == 0 && fd_count() <= base && Arc::strong_count(&token) == 1
        }),
        "fds {} vs {base}, ops {}, routines alive {}",
        fd_count(),
        e.ops_in_table(),
        Arc::strong_count(&token) - 1
    );
    assert_eq!(ran.get(), 1000, "every routine ran exactly once");
}

fn c08_thread_exit_aborts_its_ops_and_sets_event(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let c = Arc::new(c);
    let ev = Event::new();
    let (c2, ev2) = (c.clone(), ev.clone());
    let op = std::thread::spawn(move || {
        let st = c2.recv(vec![0u8; 8], MsgFlags::empty(), &ev2).unwrap();
        assert!(st.is_pending());
        st.op()
    })
    .join()
    .unwrap();
    assert!(
        ev.wait(ten()),
        "the exit of the issuing thread completes its operation"
    );
    let d = done_within_ten(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    assert_eq!(d.data.capacity(), 8);
    // The socket itself is fine: data still arrives to a new receive.
    write_all(&mut p, b"alive");
    let d = done_within_ten(
        c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op(),
    );
    assert_eq!(&d.data[..], b"alive");
}

fn c08_thread_exit_aborts_only_that_threads_ops(e: &Engine) {
    let (a, mut pa) = std_pair(e);
    let (b, _pb) = std_pair(e);
    let (mine_sock, mut pm) = std_pair(e);
    b.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
    // This thread's own op must survive the other thread's exit.
    let mine_ev = Event::new();
    let mine = mine_sock
        .recv(vec![0u8; 8], MsgFlags::empty(), &mine_ev)
        .unwrap()
        .op();
    let (a, b) = (Arc::new(a), Arc::new(b));
    let evs: Vec<Event> = (0..3).map(|_| Event::new()).collect();
    let exited = Arc::new(AtomicBool::new(false));
    let ops = {
        let (a, b, evs, exited) = (a.clone(), b.clone(), evs.clone(), exited.clone());
        std::thread::spawn(move || {
            let r1 = a.recv(vec![0u8; 8], MsgFlags::empty(), &evs[0]).unwrap();
            let r2 = a.recv(vec![0u8; 8], MsgFlags::empty(), &evs[1]).unwrap();
            let s1 = b
                .send(vec![7u8; 4 << 20], MsgFlags::empty(), &evs[2])
                .unwrap();
            assert!(r1.is_pending() && r2.is_pending() && s1.is_pending());
            exited.store(true, Ordering::SeqCst);
            (r1.op(), r2.op(), s1.op())
        })
        .join()
        .unwrap()
    };
    assert!(exited.load(Ordering::SeqCst));
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    let (r1, r2, s1) = ops;
    assert!(done_within_ten(r1).is_aborted());
    assert!(done_within_ten(r2).is_aborted());
    let s = done_within_ten(s1);
    assert!(s.is_aborted(), "{:?}", s.error);
    assert!(
        !mine_ev.wait(Some(Duration::from_millis(50))),
        "another thread's op is untouched"
    );
    write_all(&mut pm, b"mine");
    assert_eq!(&done_within_ten(mine).data[..], b"mine");
    write_all(&mut pa, b"a-ok");
    assert_eq!(
        &done_within_ten(
            a.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap()
                .op()
        )
        .data[..],
        b"a-ok"
    );
}

fn c08_port_op_survives_thread_exit(e: &Engine) {
    let port = CompletionPort::new(1);
    let (c, mut p) = std_pair(e);
    let c = Arc::new(c);
    port.associate(&c, 4).unwrap();
    let c2 = c.clone();
    std::thread::spawn(move || {
        let _ = c2
            .recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(0))
            .unwrap();
    })
    .join()
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    write_all(&mut p, b"later");
    let pk = port
        .get_queued(ten())
        .unwrap()
        .expect("a packet within 10 s");
    assert!(pk.error.is_none(), "{:?}", pk.error);
    assert_eq!(&pk.into_completion::<Vec<u8>>().unwrap().data[..], b"later");
}

fn c08_event_op_on_a_port_socket_is_cancelled_at_thread_exit(e: &Engine) {
    // Only an op whose completion goes to the port survives its thread.
    let port = CompletionPort::new(1);
    let (c, mut p) = std_pair(e);
    let c = Arc::new(c);
    port.associate(&c, 4).unwrap();
    let ev = Event::new();
    let (c2, ev2) = (c.clone(), ev.clone());
    let op = std::thread::spawn(move || {
        let st = c2.recv(vec![0u8; 8], MsgFlags::empty(), &ev2).unwrap();
        assert!(st.is_pending());
        st.op()
    })
    .join()
    .unwrap();
    assert!(
        ev.wait(ten()),
        "the exit of the issuing thread completes its operation"
    );
    let d = match op.result(false).unwrap() {
        Polled::Complete(d) => d,
        Polled::Incomplete(_) => panic!("event set, operation incomplete"),
    };
    assert!(d.is_aborted(), "{:?}", d.error);
    assert_eq!(d.win32_error(), Some(995));
    assert_eq!(d.data.capacity(), 8);
    assert!(
        port.get_queued(Some(Duration::from_millis(50)))
            .unwrap()
            .is_none(),
        "an event op posts nothing"
    );
    write_all(&mut p, b"alive");
    let _ = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(1))
        .unwrap();
    assert_eq!(
        &port
            .get_queued(ten())
            .unwrap()
            .expect("a packet within 10 s")
            .into_completion::<Vec<u8>>()
            .unwrap()
            .data[..],
        b"alive"
    );
}

util::cases! {
    c01_close_aborts_pending_receives_with_buffers,
    c01_aborted_receive_buffers_truncated_to_bytes_landed,
    c01_drop_of_socket_aborts_pending_receives,
    c02_cancel_aborts_and_sets_event,
    c02_cancel_of_completed_op_is_not_found,
    c02_cancel_runs_routine_with_aborted,
    c03_cancel_races_completion_10000,
    c03_cancel_races_peer_thread_10000,
    c04_cancel_all_is_per_socket,
    c04_cancel_all_covers_both_directions,
    c05_drop_cancels_and_later_data_is_not_lost,
    c05_drop_races_arrival_no_byte_lost,
    c06_close_with_pending_large_send,
    c07_no_fd_or_buffer_leaks_over_1000_cycles,
    c08_thread_exit_aborts_its_ops_and_sets_event,
    c08_thread_exit_aborts_only_that_threads_ops,
    c08_port_op_survives_thread_exit,
    c08_event_op_on_a_port_socket_is_cancelled_at_thread_exit,
}
