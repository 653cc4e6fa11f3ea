//! `docs/SPEC.md`, section *threads and waits*, t04: `WSAEventSelect` and
//! `WSAEnumNetworkEvents` (the rest of the section is `waits.rs`).
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

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

util::cases! {
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
}
