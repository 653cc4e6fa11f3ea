//! `docs/SPEC.md`, section *threads and waits* (t01–t05).
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

/// A wait on `ev` that must time out (nothing recorded, or nothing new).
fn quiet(ev: &Event) -> bool {
    !ev.wait(Some(Duration::from_millis(60)))
}

/// Waits on `ev`, then enumerates `s`'s events (resetting `ev`).
fn next_events(s: &Socket, ev: &Event) -> NetworkEventsRecord {
    assert!(ev.wait(ten()), "the event was set");
    let r = s.enum_network_events(Some(ev)).unwrap();
    assert!(!ev.is_set(), "enumerating reset the event");
    r
}

/// Enumerates (without waiting) until `want` is recorded; what came with it.
fn enum_until(s: &Socket, want: NetworkEvents) -> NetworkEvents {
    let mut seen = NetworkEvents::empty();
    assert!(
        eventually(slack(10 * SEC), || {
            seen |= s.enum_network_events(None).unwrap().events();
            seen.contains(want)
        }),
        "{want:?} recorded (saw {seen:?})"
    );
    seen
}

fn t04_read_event_is_recorded_once_and_reenabled_by_a_receive(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::READ | NetworkEvents::CLOSE)
        .unwrap();
    assert!(quiet(&ev), "nothing to read yet");
    assert_eq!(
        c.enum_network_events(None).unwrap().events(),
        NetworkEvents::empty()
    );
    write_all(&mut p, b"abc");
    let r = next_events(&c, &ev);
    assert_eq!(r.events(), NetworkEvents::READ);
    assert_eq!(r.error_code(NetworkEvents::READ), 0);
    // Enumerating cleared the record and re-enabled nothing: more data
    // raises no event until a receive.
    write_all(&mut p, b"de");
    assert!(quiet(&ev));
    assert_eq!(
        c.enum_network_events(None).unwrap().events(),
        NetworkEvents::empty()
    );
    // A receive that leaves data behind: recorded again.
    let got = c
        .recv(vec![0u8; 2], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"ab");
    assert_eq!(next_events(&c, &ev).events(), NetworkEvents::READ);
    let got = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"cde");
    assert!(quiet(&ev), "all was received");
    // Nobody waits: the enumeration looks at the socket itself.
    write_all(&mut p, b"f");
    assert_eq!(enum_until(&c, NetworkEvents::READ), NetworkEvents::READ);
    assert!(!ev.is_set(), "recorded by the enumeration, taken at once");
}

fn t04_a_waiter_on_another_thread_sees_the_selection_and_the_data(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    let waiter = {
        let ev = ev.clone();
        std::thread::spawn(move || ev.wait(ten()))
    };
    // The waiter blocks before the socket is selected into its event.
    std::thread::sleep(Duration::from_millis(30));
    c.event_select(&ev, NetworkEvents::READ).unwrap();
    std::thread::sleep(Duration::from_millis(30));
    write_all(&mut p, b"x");
    assert!(waiter.join().unwrap(), "woken by the read event");
    assert_eq!(
        c.enum_network_events(Some(&ev)).unwrap().events(),
        NetworkEvents::READ
    );
    // Blocked while a receive re-enables the event from another thread.
    let waiter = {
        let ev = ev.clone();
        std::thread::spawn(move || ev.wait(ten()))
    };
    std::thread::sleep(Duration::from_millis(30));
    let got = c
        .recv(vec![0u8; 1], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"x");
    write_all(&mut p, b"y");
    assert!(
        waiter.join().unwrap(),
        "woken after the re-enabling receive"
    );
    assert_eq!(
        c.enum_network_events(Some(&ev)).unwrap().events(),
        NetworkEvents::READ
    );
}

fn t04_data_taken_by_a_pending_receive_raises_no_read_event(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::READ).unwrap();
    let op = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(op.is_pending());
    write_all(&mut p, b"taken");
    // The wait drives the socket's engine: the receive completes, and its
    // data raised no event.
    assert!(quiet(&ev));
    let got = op.op().wait().unwrap();
    assert_eq!(&got.data[..], b"taken");
    assert_eq!(
        c.enum_network_events(None).unwrap().events(),
        NetworkEvents::empty()
    );
    // With no receive pending, data raises it (the receive re-enabled it).
    write_all(&mut p, b"seen");
    assert_eq!(next_events(&c, &ev).events(), NetworkEvents::READ);
}

fn t04_accept_event_rules(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let ev = Event::new();
    l.event_select(&ev, NetworkEvents::ACCEPT).unwrap();
    assert!(quiet(&ev));
    let _c1 = std::net::TcpStream::connect(addr).unwrap();
    assert_eq!(next_events(&l, &ev).events(), NetworkEvents::ACCEPT);
    // Not again until an accept.
    let _c2 = std::net::TcpStream::connect(addr).unwrap();
    assert!(quiet(&ev));
    // An accept takes one; the one still waiting is recorded at once.
    let (a1, _) = l.accept_wait().unwrap();
    assert_eq!(next_events(&l, &ev).events(), NetworkEvents::ACCEPT);
    let (a2, _) = l.accept_wait().unwrap();
    assert!(quiet(&ev), "none left to accept");
    // A connection a pending accept takes raises no event.
    let op = l.accept(Notify::None).unwrap();
    assert!(op.is_pending());
    let _c3 = std::net::TcpStream::connect(addr).unwrap();
    assert!(quiet(&ev));
    let a3 = op.op().wait().unwrap().data.expect("accepted");
    assert_eq!(
        l.enum_network_events(None).unwrap().events(),
        NetworkEvents::empty()
    );
    drop((a1, a2, a3));
}

fn t04_connect_and_write_events(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::CONNECT | NetworkEvents::WRITE)
        .unwrap();
    assert!(quiet(&ev), "not connected: nothing to tell");
    let op = c.connect(addr, Notify::None).unwrap();
    let mut seen = NetworkEvents::empty();
    let t0 = Instant::now();
    while seen != NetworkEvents::CONNECT | NetworkEvents::WRITE {
        assert!(t0.elapsed() < slack(10 * SEC), "saw {seen:?}");
        let r = next_events(&c, &ev);
        assert_eq!(r.error_code(NetworkEvents::CONNECT), 0);
        assert!(!seen.intersects(r.events()), "each once");
        seen |= r.events();
    }
    assert!(op.wait().unwrap().error.is_none());
    // Once each: WRITE again only after a send that went pending.
    assert!(quiet(&ev));
    let st = c
        .send(b"hello".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert_eq!(st.wait().unwrap().bytes, 5);
    // A refused connect: CONNECT with WSAECONNREFUSED.
    let gone = {
        let l = std::net::TcpListener::bind(v4()).unwrap();
        l.local_addr().unwrap()
    };
    let d = Socket::tcp_for(e, &gone).unwrap();
    let ev2 = Event::new();
    d.event_select(&ev2, NetworkEvents::CONNECT | NetworkEvents::WRITE)
        .unwrap();
    match d.connect(gone, Notify::None) {
        Ok(op) => {
            let r = next_events(&d, &ev2);
            assert_eq!(r.events(), NetworkEvents::CONNECT);
            assert_eq!(r.error_code(NetworkEvents::CONNECT), 10061);
            assert_eq!(
                r.error(NetworkEvents::CONNECT).unwrap().kind(),
                ErrorKind::ConnectionRefused
            );
            assert!(op.wait().unwrap().error.is_some());
        }
        // Refused at the call: no operation, no event (as on Windows).
        Err(se) => {
            assert_eq!(se.error.kind(), ErrorKind::ConnectionRefused);
            assert!(quiet(&ev2));
        }
    }
    assert!(quiet(&ev2), "no WRITE on a socket that never connected");
}

fn t04_write_event_comes_back_after_a_send_went_pending(e: &Engine) {
    let (c, mut p) = std_pair(e);
    c.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::WRITE).unwrap();
    // Connected with room: recorded at once.
    assert_eq!(next_events(&c, &ev).events(), NetworkEvents::WRITE);
    assert!(quiet(&ev));
    // Sends until one goes pending (the peer reads nothing).
    let mut ops = Vec::new();
    let mut sent = 0usize;
    loop {
        let st = c
            .send(vec![7u8; 64 * 1024], MsgFlags::empty(), Notify::None)
            .unwrap();
        sent += 64 * 1024;
        let pending = st.is_pending();
        ops.push(st.op());
        if pending {
            break;
        }
        assert!(sent < 64 << 20, "a send went pending");
    }
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut got = 0usize;
        while got < sent {
            let n = std::io::Read::read(&mut p, &mut buf).unwrap();
            assert!(n > 0);
            got += n;
        }
        p
    });
    // Room came back: recorded again.
    let mut seen = NetworkEvents::empty();
    assert!(eventually(slack(10 * SEC), || {
        if ev.wait(Some(Duration::from_millis(20))) {
            seen |= c.enum_network_events(Some(&ev)).unwrap().events();
        }
        seen.contains(NetworkEvents::WRITE)
    }));
    for op in ops {
        assert!(op.wait().unwrap().error.is_none());
    }
    drop(reader.join().unwrap());
}

fn t04_close_event_graceful_after_the_data_and_reset_with_its_error(e: &Engine) {
    // Graceful: the data first, then CLOSE with no error once it was read.
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::READ | NetworkEvents::CLOSE)
        .unwrap();
    write_all(&mut p, b"last");
    drop(p);
    let seen = enum_until(&c, NetworkEvents::READ);
    assert!(!seen.contains(NetworkEvents::CLOSE), "data still to read");
    ev.reset();
    let got = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"last");
    let r = next_events(&c, &ev);
    assert_eq!(r.events(), NetworkEvents::CLOSE);
    assert_eq!(r.error_code(NetworkEvents::CLOSE), 0);
    assert!(r.error(NetworkEvents::CLOSE).is_none());
    // Once.
    let got = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(got.bytes, 0);
    assert!(quiet(&ev));
    // Reset: CLOSE with WSAECONNRESET, and the connection stays reset.
    let (c, p) = std_pair(e);
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::CLOSE | NetworkEvents::READ)
        .unwrap();
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p);
    let r = next_events(&c, &ev);
    assert_eq!(r.events(), NetworkEvents::CLOSE);
    assert_eq!(r.error_code(NetworkEvents::CLOSE), 10054);
    assert_eq!(
        r.error(NetworkEvents::CLOSE).unwrap().kind(),
        ErrorKind::ConnectionReset
    );
    let err = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::ConnectionReset);
    assert!(quiet(&ev), "told once");
}

fn t04_oob_event_and_its_reenabling_receive(e: &Engine) {
    let (c, p) = std_pair(e);
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::OOB).unwrap();
    let urgent = |b: u8| {
        assert_eq!(
            socket2::SockRef::from(&p).send_out_of_band(&[b]).unwrap(),
            1
        );
    };
    urgent(b'!');
    assert_eq!(next_events(&c, &ev).events(), NetworkEvents::OOB);
    let got = c
        .recv(vec![0u8; 1], MsgFlags::OOB, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"!");
    assert!(quiet(&ev), "the urgent byte was taken");
    urgent(b'?');
    assert_eq!(next_events(&c, &ev).events(), NetworkEvents::OOB);
}

fn t04_empty_mask_cancels_and_a_closed_socket_fails(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ev = Event::new();
    c.event_select(&ev, NetworkEvents::READ).unwrap();
    write_all(&mut p, b"x");
    assert_eq!(enum_until(&c, NetworkEvents::READ), NetworkEvents::READ);
    // A second selection clears the record; the data is recorded again.
    ev.reset();
    c.event_select(&ev, NetworkEvents::READ).unwrap();
    assert!(ev.wait(ten()));
    // An empty mask cancels: nothing recorded, nothing signalled.
    c.event_select(&ev, NetworkEvents::empty()).unwrap();
    ev.reset();
    write_all(&mut p, b"y");
    assert!(quiet(&ev));
    assert_eq!(
        c.enum_network_events(None).unwrap().events(),
        NetworkEvents::empty()
    );
    // Closing a selected socket ends its selection; a wait on the event
    // neither spins nor wakes.
    let (d, mut q) = std_pair(e);
    let ev2 = Event::new();
    d.event_select(&ev2, NetworkEvents::READ | NetworkEvents::CLOSE)
        .unwrap();
    d.close().unwrap();
    write_all(&mut q, b"z");
    assert!(quiet(&ev2));
    // Bad input: a closed socket, at the call (WSAENOTSOCK).
    let err = d.event_select(&ev2, NetworkEvents::READ).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert_eq!(wsa_error(&err), Some(10038));
    let err = d.enum_network_events(Some(&ev2)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
}

fn t04_events_of_several_sockets_in_one_wait(e: &Engine) {
    let (a, mut pa) = std_pair(e);
    let (b, mut pb) = std_pair(e);
    let (ea, eb) = (Event::new(), Event::new());
    a.event_select(&ea, NetworkEvents::READ).unwrap();
    b.event_select(&eb, NetworkEvents::READ).unwrap();
    let list = [&ea, &eb];
    assert_eq!(
        wait_for_events(&list, WaitMode::Any, Some(Duration::from_millis(50)), false).unwrap(),
        WaitOutcome::Timeout
    );
    write_all(&mut pb, b"b");
    assert_eq!(
        wait_for_events(&list, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(1)
    );
    assert_eq!(
        b.enum_network_events(Some(&eb)).unwrap().events(),
        NetworkEvents::READ
    );
    write_all(&mut pa, b"a");
    assert_eq!(
        wait_for_events(&list, WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    // One event for both sockets.
    let shared = Event::new();
    let (c, mut pc) = std_pair(e);
    let (d, mut pd) = std_pair(e);
    c.event_select(&shared, NetworkEvents::READ).unwrap();
    d.event_select(&shared, NetworkEvents::READ).unwrap();
    write_all(&mut pd, b"d");
    assert!(shared.wait(ten()));
    assert_eq!(
        c.enum_network_events(None).unwrap().events(),
        NetworkEvents::empty()
    );
    assert_eq!(
        d.enum_network_events(Some(&shared)).unwrap().events(),
        NetworkEvents::READ
    );
    write_all(&mut pc, b"c");
    assert!(shared.wait(ten()));
    assert_eq!(
        c.enum_network_events(Some(&shared)).unwrap().events(),
        NetworkEvents::READ
    );
}

/// t04 (Windows' rule): a socket accepted from a selected listener takes
/// the listener's selection (its event and mask), by `accept` and by
/// `accept_ex`, whether the accept completed at its start or later.
fn t04_an_accepted_socket_takes_its_listeners_selection(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let ev = Event::new();
    l.event_select(&ev, NetworkEvents::ACCEPT | NetworkEvents::READ)
        .unwrap();
    // Pending, then completed by the connection.
    let pending = l.accept(Notify::None).unwrap();
    let mut c1 = std::net::TcpStream::connect(addr).unwrap();
    let s1 = pending.wait().unwrap().data.expect("the accepted socket");
    // Completed at its start: the connection was there.
    let mut c2 = std::net::TcpStream::connect(addr).unwrap();
    assert!(
        eventually(slack(10 * SEC), || l
            .enum_network_events(None)
            .unwrap()
            .contains(NetworkEvents::ACCEPT)),
        "the second connection"
    );
    let s2 = l
        .accept_ex(None, Vec::<u8>::new(), Notify::None)
        .unwrap()
        .wait()
        .unwrap()
        .data
        .socket
        .expect("the accepted socket");
    for (s, c) in [(&s1, &mut c1), (&s2, &mut c2)] {
        assert_eq!(
            s.enum_network_events(None).unwrap().events(),
            NetworkEvents::empty()
        );
        write_all(c, b"x");
        let r = next_events(s, &ev);
        assert_eq!(
            r.events(),
            NetworkEvents::READ,
            "the listener's event and mask"
        );
    }
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
    t04_read_event_is_recorded_once_and_reenabled_by_a_receive,
    t04_a_waiter_on_another_thread_sees_the_selection_and_the_data,
    t04_data_taken_by_a_pending_receive_raises_no_read_event,
    t04_accept_event_rules,
    t04_connect_and_write_events,
    t04_write_event_comes_back_after_a_send_went_pending,
    t04_close_event_graceful_after_the_data_and_reset_with_its_error,
    t04_oob_event_and_its_reenabling_receive,
    t04_empty_mask_cancels_and_a_closed_socket_fails,
    t04_events_of_several_sockets_in_one_wait,
    t04_an_accepted_socket_takes_its_listeners_selection,
    t05_timer_routine_runs_once_per_period_on_the_setting_thread,
    t05_a_timer_stops_with_its_thread,
}
