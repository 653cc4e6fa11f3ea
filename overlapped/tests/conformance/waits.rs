//! `docs/SPEC.md`, section *threads and waits*: t01–t03 and t05 (queued
//! routines, alertable port waits, sockets as waitable objects, waitable
//! timers); t04, `WSAEventSelect`, is `event_select.rs`.
use std::io::ErrorKind;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// SPEC t01, checked at compile time: a thread handle and a timer are
/// `Send + Sync`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ThreadHandle>();
    send_sync::<WaitableTimer>();
};

/// A receive with a completion routine pending on a silent connection of
/// `e`: the calling thread's alertable waits drive `e` from then on.
fn drive_engine_here(e: &Engine) -> (Op<Vec<u8>>, Socket, std::net::TcpStream) {
    let (c, p) = std_pair(e);
    let op = c
        .recv(
            vec![0u8; 1],
            MsgFlags::empty(),
            Notify::routine(|_: Completion<Vec<u8>>| {}),
        )
        .unwrap();
    assert!(op.is_pending());
    (op.op(), c, p)
}

fn t01_queued_routine_runs_in_the_next_alertable_wait(e: &Engine) {
    let e = e.clone();
    let (tx, rx) = mpsc::channel();
    let (ran_tx, ran_rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        let (_op, _c, _p) = drive_engine_here(&e);
        tx.send(ThreadHandle::current()).unwrap();
        // Not alertable: the routine waits.
        assert_eq!(
            sleep_ex(Some(Duration::from_millis(100)), false),
            SleepOutcome::Timeout
        );
        assert!(ran_rx.try_recv().is_err(), "ran outside an alertable wait");
        // Blocked in the engine when the routine is queued, or not yet.
        let t0 = Instant::now();
        assert_eq!(sleep_ex(ten(), true), SleepOutcome::IoCompletion);
        assert!(t0.elapsed() < slack(5 * SEC));
        let (ran_on, n) = ran_rx.try_recv().expect("the routine ran in the wait");
        assert_eq!(ran_on, std::thread::current().id(), "on the target thread");
        assert_eq!(n, 1);
        // A routine queued while the thread blocks in an alertable wait for
        // events wakes it too.
        let ev = Event::new();
        tx.send(ThreadHandle::current()).unwrap();
        assert_eq!(
            wait_for_events(&[ev], WaitMode::Any, ten(), true).unwrap(),
            WaitOutcome::IoCompletion
        );
        assert_eq!(ran_rx.try_recv().unwrap().1, 2);
    });
    let h = rx.recv().unwrap();
    assert!(!h.has_exited());
    let t = ran_tx.clone();
    queue_routine(&h, move || {
        t.send((std::thread::current().id(), 1)).unwrap();
    })
    .unwrap();
    let h2 = rx.recv().unwrap();
    assert_eq!(h2.id(), h.id());
    std::thread::sleep(Duration::from_millis(50));
    queue_routine(&h2, move || {
        ran_tx.send((std::thread::current().id(), 2)).unwrap();
    })
    .unwrap();
    worker.join().unwrap();
}

fn t01_queueing_to_an_exited_thread_fails(e: &Engine) {
    let e = e.clone();
    let left = Arc::new(());
    let l = left.clone();
    let worker = std::thread::spawn(move || {
        let _busy = drive_engine_here(&e);
        let h = ThreadHandle::current();
        // Queued but never run: dropped with the thread.
        queue_routine(&h, move || drop(l)).unwrap();
        h
    });
    let h = worker.join().unwrap();
    assert!(h.has_exited());
    assert_eq!(Arc::strong_count(&left), 1, "dropped with its thread");
    let l = left.clone();
    let err = queue_routine(&h, move || drop(l)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
    assert_eq!(Arc::strong_count(&left), 1, "nothing kept after the error");
}

fn t02_alertable_port_wait_runs_routines_when_no_packet(e: &Engine) {
    let port = CompletionPort::new(1);
    let (s, _p) = std_pair(e);
    port.associate(&s, 1).unwrap();
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    queue_routine(&ThreadHandle::current(), move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    // Not alertable: the routine stays queued.
    let got = port
        .get_queued_ex(Some(Duration::from_millis(50)), false)
        .unwrap();
    assert!(matches!(got, PortWait::Timeout), "{got:?}");
    assert!(port.get_queued(Some(Duration::ZERO)).unwrap().is_none());
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    let got = port.get_queued_ex(ten(), true).unwrap();
    assert!(matches!(got, PortWait::IoCompletion), "{got:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    // A completion routine of an operation on the thread's engine ends an
    // alertable port wait too (the wait drives that engine).
    let (c, mut peer) = std_pair(e);
    let r = ran.clone();
    let op = c
        .recv(
            vec![0u8; 4],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| {
                assert_eq!(d.data, b"ping");
                r.fetch_add(1, Ordering::SeqCst);
            }),
        )
        .unwrap();
    assert!(op.is_pending());
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        write_all(&mut peer, b"ping");
        peer
    });
    let other = CompletionPort::new(1);
    let got = other.get_queued_ex(ten(), true).unwrap();
    assert!(matches!(got, PortWait::IoCompletion), "{got:?}");
    assert_eq!(ran.load(Ordering::SeqCst), 2);
    drop(writer.join().unwrap());
    // A routine queued by another thread while this one blocks.
    let h = ThreadHandle::current();
    let r = ran.clone();
    let queuer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        queue_routine(&h, move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    });
    let t0 = Instant::now();
    let got = port.get_queued_many_ex(8, ten(), true).unwrap();
    assert!(matches!(got, PortWait::IoCompletion), "{got:?}");
    assert!(t0.elapsed() < slack(5 * SEC));
    assert_eq!(ran.load(Ordering::SeqCst), 3);
    queuer.join().unwrap();
}

fn t02_a_packet_comes_before_queued_routines(e: &Engine) {
    let port = CompletionPort::new(1);
    let (s, _p) = std_pair(e);
    port.associate(&s, 1).unwrap();
    let ran = Arc::new(AtomicU32::new(0));
    let r = ran.clone();
    queue_routine(&ThreadHandle::current(), move || {
        r.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    port.post(7, 3, "first").unwrap();
    port.post(8, 4, "second").unwrap();
    match port.get_queued_ex(ten(), true).unwrap() {
        PortWait::Got(p) => assert_eq!((p.key, p.bytes), (7, 3)),
        other => panic!("{other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the routine stays queued");
    match port.get_queued_many_ex(8, ten(), true).unwrap() {
        PortWait::Got(v) => assert_eq!(v.iter().map(|p| p.key).collect::<Vec<_>>(), [8]),
        other => panic!("{other:?}"),
    }
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(matches!(
        port.get_queued_ex(ten(), true).unwrap(),
        PortWait::IoCompletion
    ));
    assert_eq!(ran.load(Ordering::SeqCst), 1);
    assert!(matches!(
        port.get_queued_ex(Some(Duration::from_millis(20)), true)
            .unwrap(),
        PortWait::Timeout
    ));
    assert!(port.get_queued_many_ex(0, ten(), true).is_err());
    port.close();
    let err = port.get_queued_ex(ten(), true).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BrokenPipe);
}

fn t03_socket_is_signalled_on_each_completion(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let op = c
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(op.is_pending());
    let r = wait_for_events(&[&c], WaitMode::Any, Some(Duration::from_millis(50)), false);
    assert_eq!(r.unwrap(), WaitOutcome::Timeout, "nothing completed yet");
    write_all(&mut p, b"one");
    assert_eq!(
        wait_for_events(&[&c], WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    assert_eq!(op.op().wait().unwrap().bytes, 3);
    // A start resets the handle; the next completion signals it again,
    // also beside an event in one list.
    let op = c
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(op.is_pending());
    let stop = Event::new();
    let list = [Waitable::from(&stop), Waitable::from(&c)];
    let r = wait_for_events(&list, WaitMode::Any, Some(Duration::from_millis(50)), false);
    assert_eq!(r.unwrap(), WaitOutcome::Timeout);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        write_all(&mut p, b"two");
        p
    });
    assert_eq!(
        wait_for_events(&list, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(1)
    );
    assert_eq!(op.op().wait().unwrap().bytes, 3);
    // A send (completed at start or later) signals it too.
    let st = c
        .send(b"x".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert_eq!(st.wait().unwrap().bytes, 1);
    assert_eq!(
        wait_for_events(&[&c], WaitMode::Any, Some(Duration::ZERO), false).unwrap(),
        WaitOutcome::Event(0)
    );
    stop.set();
    assert_eq!(
        wait_for_events(&list, WaitMode::All, Some(Duration::ZERO), false).unwrap(),
        WaitOutcome::Event(0)
    );
    drop(writer.join().unwrap());
}

fn t03_a_socket_that_opted_out_is_not_signalled(e: &Engine) {
    let (c, mut p) = std_pair(e);
    c.set_skip_event_on_handle().unwrap();
    let ev = Event::new();
    let op = c.recv(vec![0u8; 4], MsgFlags::empty(), &ev).unwrap();
    assert!(op.is_pending());
    write_all(&mut p, b"data");
    // The operation's own event is set; the socket's handle is not.
    assert_eq!(
        wait_for_events(&[&ev], WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    assert_eq!(
        wait_for_events(&[&c], WaitMode::Any, Some(Duration::from_millis(50)), false).unwrap(),
        WaitOutcome::Timeout
    );
    assert_eq!(op.op().wait().unwrap().bytes, 4);
    // Bad input: a closed socket.
    let (d, _q) = std_pair(e);
    d.close().unwrap();
    assert_eq!(
        d.set_skip_event_on_handle().unwrap_err().raw_os_error(),
        Some(libc::EBADF)
    );
}

fn t05_timer_routine_runs_once_per_period_on_the_setting_thread(e: &Engine) {
    let (_op, _c, _p) = drive_engine_here(e);
    let runs = Arc::new(AtomicU32::new(0));
    let me = std::thread::current().id();
    let r = runs.clone();
    let timer = WaitableTimer::new();
    let period = Duration::from_millis(20);
    let t0 = Instant::now();
    timer
        .set(period, Some(period), move || {
            assert_eq!(std::thread::current().id(), me, "on the setting thread");
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    assert!(timer.is_set());
    // Not alertable: nothing runs.
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(70)), false),
        SleepOutcome::Timeout
    );
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    // The missed periods run once, then once per period, in every kind of
    // alertable wait.
    assert_eq!(sleep_ex(ten(), true), SleepOutcome::IoCompletion);
    assert_eq!(runs.load(Ordering::SeqCst), 1, "missed periods coalesce");
    let ev = Event::new();
    assert_eq!(
        wait_for_events(&[&ev], WaitMode::Any, ten(), true).unwrap(),
        WaitOutcome::IoCompletion
    );
    let port = CompletionPort::new(1);
    assert!(matches!(
        port.get_queued_ex(ten(), true).unwrap(),
        PortWait::IoCompletion
    ));
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    let mid = Instant::now();
    while mid.elapsed() < Duration::from_millis(200) {
        sleep_ex(Some(Duration::from_millis(200)), true);
    }
    let n = runs.load(Ordering::SeqCst);
    let most = 3 + (t0.elapsed().as_millis() / period.as_millis()) as u32;
    assert!(n >= 5 && n <= most, "{n} runs, at most {most}");
    // Cancelled: no more runs.
    timer.cancel();
    assert!(!timer.is_set());
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(60)), true),
        SleepOutcome::Timeout
    );
    assert_eq!(runs.load(Ordering::SeqCst), n);
    // Set again, once, then dropped before it is due: no run.
    let r = runs.clone();
    timer
        .set(Duration::from_millis(10), None, move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    assert_eq!(sleep_ex(ten(), true), SleepOutcome::IoCompletion);
    assert_eq!(runs.load(Ordering::SeqCst), n + 1);
    assert!(!timer.is_set(), "a one-shot timer is done");
    let r = runs.clone();
    timer
        .set(Duration::from_millis(10), Some(period), move || {
            r.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    drop(timer);
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(60)), true),
        SleepOutcome::Timeout
    );
    assert_eq!(runs.load(Ordering::SeqCst), n + 1);
    // Bad input: a zero period.
    let t = WaitableTimer::new();
    let err = t.set(period, Some(Duration::ZERO), || ()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

fn t05_a_timer_stops_with_its_thread(e: &Engine) {
    let e = e.clone();
    let timer = Arc::new(WaitableTimer::new());
    let t = timer.clone();
    let runs = Arc::new(AtomicU32::new(0));
    let r = runs.clone();
    std::thread::spawn(move || {
        let _busy = drive_engine_here(&e);
        let r2 = r.clone();
        t.set(
            Duration::from_millis(5),
            Some(Duration::from_millis(5)),
            move || {
                r2.fetch_add(1, Ordering::SeqCst);
            },
        )
        .unwrap();
        let end = Instant::now() + slack(10 * SEC);
        while r.load(Ordering::SeqCst) < 2 && Instant::now() < end {
            sleep_ex(Some(Duration::from_millis(100)), true);
        }
    })
    .join()
    .unwrap();
    let n = runs.load(Ordering::SeqCst);
    assert!(n >= 2, "{n} runs");
    assert!(!timer.is_set(), "cancelled when its thread exited");
    // Its routine (and what it holds) went with it.
    assert_eq!(Arc::strong_count(&runs), 1);
}

util::cases! {
    t01_queued_routine_runs_in_the_next_alertable_wait,
    t01_queueing_to_an_exited_thread_fails,
    t02_alertable_port_wait_runs_routines_when_no_packet,
    t02_a_packet_comes_before_queued_routines,
    t03_socket_is_signalled_on_each_completion,
    t03_a_socket_that_opted_out_is_not_signalled,
    t05_timer_routine_runs_once_per_period_on_the_setting_thread,
    t05_a_timer_stops_with_its_thread,
}
