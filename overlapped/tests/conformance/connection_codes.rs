//! SPEC section *connection state and error codes*, k08–k12: a routine on
//! a port socket and the port resolved at completion, the Windows code of
//! every ending, duplicated handles, and every notification reporting the
//! same edges. The section starts in `connection_state.rs` (k01–k04) and
//! `connection_calls.rs` (k05–k07). Every case runs once per notification
//! — result, event, routine, port — on both engines (through
//! `util::notif`).
use std::cell::RefCell;
use std::io::ErrorKind;
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::notif::*;
use crate::util::{self, *};

fn k08_routine_on_a_port_socket_fails_at_the_call(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let port = CompletionPort::new(1);
    port.associate(&c, 1).unwrap();
    let ran = Rc::new(RefCell::new(0));
    let r = ran.clone();
    let err = c
        .recv(
            vec![0u8; 8],
            MsgFlags::empty(),
            Notify::routine(move |_| *r.borrow_mut() += 1),
        )
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput, "{}", err.error);
    assert_eq!(err.bufs.capacity(), 8, "the buffer comes back");
    let r = ran.clone();
    let err = c
        .send(
            b"x".to_vec(),
            MsgFlags::empty(),
            Notify::routine(move |_| *r.borrow_mut() += 1),
        )
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
    write_all(&mut p, b"data");
    assert_eq!(sleep_ex(Some(QUIET), true), SleepOutcome::Timeout);
    assert_eq!(*ran.borrow(), 0, "the routine never runs");
    assert!(
        port.get_queued(Some(QUIET)).unwrap().is_none(),
        "nothing is posted"
    );
    assert_eq!(e.ops_in_table(), 0);
}

fn k08_routine_started_before_the_association_stays_a_routine(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let st = c
        .recv(
            vec![0u8; 8],
            MsgFlags::empty(),
            Notify::routine(move |d: Completion<Vec<u8>>| *g.borrow_mut() = Some(d.data)),
        )
        .unwrap();
    assert!(st.is_pending());
    let port = CompletionPort::new(1);
    port.associate(&c, 1).unwrap();
    write_all(&mut p, b"data");
    let end = Instant::now() + slack(10 * SEC);
    while got.borrow().is_none() {
        assert!(Instant::now() < end, "the routine did not run");
        sleep_ex(Some(Duration::from_millis(100)), true);
    }
    assert_eq!(got.borrow().as_deref(), Some(&b"data"[..]));
    assert!(port.get_queued(Some(QUIET)).unwrap().is_none(), "no packet");
}

fn k09_accept_started_before_the_association_posts_to_the_port(e: &Engine) {
    // Started with a port notify, and with none.
    for tag in [Some(3u64), None] {
        let l = Socket::tcp_listener(e, &v4()).unwrap();
        let op = l
            .accept(tag.map_or(Notify::None, Notify::Port))
            .unwrap()
            .op();
        let port = CompletionPort::new(1);
        port.associate(&l, 9).unwrap();
        l.close().unwrap();
        let pk = port
            .get_queued(ten())
            .unwrap()
            .expect("the aborted accept's packet");
        assert_eq!((pk.key, pk.tag), (9, tag.unwrap_or(0)));
        let err = pk.error.as_ref().expect("aborted");
        assert!(is_aborted(err), "{err}");
        assert_eq!((wsa_error(err), win32_error(err)), (Some(995), Some(995)));
        let d = pk.into_completion::<Option<Socket>>().unwrap();
        assert!(d.data.is_none());
        if tag.is_none() {
            // The handle's result went to the port.
            assert!(op.result(false).is_err());
        }
    }
}

fn k09_receive_started_before_the_association_posts_its_data(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let _op = c
        .recv(vec![0u8; 16], MsgFlags::empty(), Notify::Port(4))
        .unwrap();
    let port = CompletionPort::new(1);
    port.associate(&c, 10).unwrap();
    write_all(&mut p, b"later");
    let pk = port.get_queued(ten()).unwrap().expect("a packet");
    assert_eq!((pk.key, pk.tag, pk.bytes), (10, 4, 5));
    assert_eq!(&pk.into_completion::<Vec<u8>>().unwrap().data[..], b"later");
}

fn k09_without_a_port_the_handle_takes_a_result_completed_at_start(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let st = c
        .send(b"now".to_vec(), MsgFlags::empty(), Notify::Port(1))
        .unwrap();
    let Started::Now { bytes, op } = st else {
        panic!("a small send completes at start")
    };
    assert_eq!(bytes, 3);
    assert_eq!(&op.wait().unwrap().data[..], b"now");
    assert_eq!(read_n(&mut p, 3), b"now");
}

fn k10_cancel_is_operation_aborted(e: &Engine) {
    for via in VIAS {
        let (c, _p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 8, MsgFlags::empty());
        op.op.cancel().unwrap();
        let d = op.complete();
        let err = d.error.as_ref().expect("aborted");
        assert!(is_aborted(err), "{via:?}: {err}");
        assert_eq!(
            (d.wsa_error(), d.win32_error()),
            (Some(995), Some(995)),
            "{via:?}"
        );
        assert_eq!(d.data.capacity(), 8);
    }
}

fn k10_close_ends_a_tcp_receive_connection_aborted(e: &Engine) {
    for via in VIAS {
        let (c, _p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 8, MsgFlags::empty());
        c.close().unwrap();
        let d = op.complete();
        let err = d.error.as_ref().expect("aborted");
        assert!(is_aborted(err), "{via:?}: {err}");
        assert_eq!(err.kind(), ErrorKind::ConnectionAborted, "{via:?}");
        assert_eq!(
            (d.wsa_error(), d.win32_error()),
            (Some(10053), Some(1236)),
            "{via:?}"
        );
    }
}

fn k10_close_ends_accepts_and_udp_receives_operation_aborted(e: &Engine) {
    for via in VIAS {
        let l = Socket::tcp_listener(e, &v4()).unwrap();
        let n = via.on(&l);
        let op = n.start(|no| l.accept(no)).unwrap();
        l.close().unwrap();
        let d = op.complete();
        assert!(d.is_aborted(), "{via:?}: {:?}", d.error);
        assert_eq!(
            (d.wsa_error(), d.win32_error()),
            (Some(995), Some(995)),
            "{via:?}"
        );

        let u = Socket::udp_bound(e, &v4()).unwrap();
        let n = via.on(&u);
        let op = n
            .start(|no| u.recv_from(vec![0u8; 8], MsgFlags::empty(), no))
            .unwrap();
        u.close().unwrap();
        let d = op.complete();
        assert!(d.is_aborted(), "{via:?}: {:?}", d.error);
        assert_eq!(
            (d.wsa_error(), d.win32_error()),
            (Some(995), Some(995)),
            "{via:?}"
        );
    }
}

fn k10_thread_exit_is_operation_aborted(e: &Engine) {
    let (c, _p) = std_pair(e);
    let c = Arc::new(c);
    let ev = Event::new();
    let (c2, ev2) = (c.clone(), ev.clone());
    let op =
        std::thread::spawn(move || c2.recv(vec![0u8; 8], MsgFlags::empty(), &ev2).unwrap().op())
            .join()
            .unwrap();
    assert!(ev.wait(ten()));
    let Polled::Complete(d) = op.result(false).unwrap() else {
        panic!("event set, op incomplete")
    };
    assert!(d.is_aborted(), "{:?}", d.error);
    assert_eq!((d.wsa_error(), d.win32_error()), (Some(995), Some(995)));
}

fn k10_start_errors_and_truncation_have_their_codes(e: &Engine) {
    let s = Socket::tcp_for(e, &v4()).unwrap();
    let err = s
        .send(b"x".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap_err()
        .error;
    assert_eq!(err.kind(), ErrorKind::NotConnected);
    assert_eq!(
        (wsa_error(&err), win32_error(&err)),
        (Some(10057), Some(1229))
    );
    let err = s
        .send(Vec::<Vec<u8>>::new(), MsgFlags::empty(), Notify::None)
        .unwrap_err()
        .error;
    assert_eq!(
        (wsa_error(&err), win32_error(&err)),
        (Some(10022), Some(87))
    );
    s.close().unwrap();
    let err = s
        .send(b"x".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap_err()
        .error;
    assert_eq!(wsa_error(&err), Some(10038));

    let a = Socket::udp_bound(e, &v4()).unwrap();
    let b = Socket::udp_bound(e, &v4()).unwrap();
    a.send_to(
        b"0123456789".to_vec(),
        b.local_addr().unwrap(),
        MsgFlags::empty(),
        Notify::None,
    )
    .unwrap()
    .wait()
    .unwrap();
    let d = b
        .recv_from(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(d.bytes, 4);
    assert_eq!((d.wsa_error(), d.win32_error()), (Some(10040), Some(234)));
}

fn k11_closing_one_handle_aborts_nothing(e: &Engine) {
    for via in VIAS {
        let l = Socket::tcp_listener(e, &v4()).unwrap();
        let to = l.local_addr().unwrap();
        let l2 = l.try_clone().unwrap();
        let n = via.on(&l);
        let op = n.start(|no| l.accept(no)).unwrap();
        l.close().unwrap();
        assert_eq!(
            l.accept(Notify::None).unwrap_err().error.raw_os_error(),
            Some(libc::EBADF)
        );
        let op = op.pending_after(Duration::from_millis(50));
        let _client = std::net::TcpStream::connect(to).unwrap();
        let d = op.complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert!(
            d.data.is_some(),
            "{via:?}: the accept completes with its socket"
        );
        assert!(l2.local_addr().is_ok(), "the other handle still works");

        // A receive started on a handle since closed gets the data.
        let (c, mut p) = std_pair(e);
        let c2 = c.try_clone().unwrap();
        let n = via.on(&c2);
        let op = n.recv(&c2, 8, MsgFlags::empty());
        c2.close().unwrap();
        write_all(&mut p, b"shared");
        let d = op.complete();
        assert_eq!(&d.data[..], b"shared", "{via:?}: {:?}", d.error);
        drop(c);
    }
}

/// The handle an operation was started on closes while a duplicate stays
/// open: the operation is untouched (no event set, no packet, no routine,
/// still pending) and completes normally later; its notification happens
/// then, once. For each direction queue: a receive, a send the peer has
/// not taken yet, an `OOB` receive.
fn k11_closing_the_handle_an_operation_was_started_on_touches_nothing(e: &Engine) {
    const BIG: usize = 1 << 20;
    for via in VIAS {
        for started_on_clone in [false, true] {
            let what = format!("{via:?} (started on the clone: {started_on_clone})");
            let (a, mut p) = std_pair(e);
            let b = a.try_clone().unwrap();
            let (on, other) = if started_on_clone { (&b, &a) } else { (&a, &b) };
            let n = via.on(on);
            let recv = n.recv(on, 8, MsgFlags::empty());
            on.close().unwrap();
            let recv = recv.pending_after(Duration::from_millis(50));
            n.assert_quiet();
            write_all(&mut p, b"later");
            let d = recv.complete();
            assert!(d.error.is_none(), "{what}: {:?}", d.error);
            assert_eq!(&d.data[..], b"later", "{what}");
            // Nothing more follows (the event, set by the completion, is
            // reset first).
            n.ev.reset();
            n.assert_quiet();
            assert!(other.local_addr().is_ok(), "the other handle still works");

            // A send the peer has not taken yet.
            let (a, mut p) = std_pair(e);
            a.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
            let b = a.try_clone().unwrap();
            let (on, _other) = if started_on_clone { (&b, &a) } else { (&a, &b) };
            let n = via.on(on);
            let send = n
                .start(|no| on.send(vec![7u8; BIG], MsgFlags::empty(), no))
                .unwrap();
            on.close().unwrap();
            let send = send.pending_after(Duration::from_millis(50));
            n.assert_quiet();
            // The peer reads on its own thread while this one waits (on
            // poll, the waiting thread drives the send).
            let reader = std::thread::spawn(move || read_n(&mut p, BIG));
            let d = send.complete();
            let got = reader.join().unwrap();
            assert!(got.len() == BIG && got.iter().all(|&x| x == 7), "{what}");
            assert!(d.error.is_none(), "{what}: {:?}", d.error);
            assert_eq!(d.bytes, BIG, "{what}");

            // An `OOB` receive, answered by the byte that comes later.
            let (a, p) = std_pair(e);
            let b = a.try_clone().unwrap();
            let (on, _other) = if started_on_clone { (&b, &a) } else { (&a, &b) };
            let n = via.on(on);
            let oob = n.recv(on, 1, MsgFlags::OOB);
            on.close().unwrap();
            let oob = oob.pending_after(Duration::from_millis(50));
            n.assert_quiet();
            socket2::SockRef::from(&p).send_out_of_band(b"U").unwrap();
            let d = oob.complete();
            assert_eq!(
                (&d.data[..], d.flags.contains(RecvFlags::OOB)),
                (&b"U"[..], true),
                "{what}: {:?}",
                d.error
            );
        }
    }
}

fn k11_the_last_handle_closing_aborts(e: &Engine) {
    for via in VIAS {
        let (c, _p) = std_pair(e);
        let c2 = c.try_clone().unwrap();
        let c3 = c2.try_clone().unwrap();
        let n = via.on(&c);
        let op = n.recv(&c, 8, MsgFlags::empty());
        drop(c);
        c3.close().unwrap();
        let op = op.pending_after(Duration::from_millis(50));
        c2.close().unwrap();
        let d = op.complete();
        assert!(d.is_aborted(), "{via:?}: {:?}", d.error);
        assert_eq!(d.win32_error(), Some(1236), "{via:?}");
    }
}

/// The edges answer the same whichever way the operation's end is made
/// known: a start error after `shutdown(Write)` and a completion after a
/// reset give one code (errno, Winsock, Win32) through every notification.
fn k12_every_notification_reports_the_same_edges(e: &Engine) {
    let codes = |err: &std::io::Error| {
        (
            err.kind(),
            err.raw_os_error(),
            wsa_error(err),
            win32_error(err),
        )
    };
    let mut seen = Vec::new();
    for via in VIAS {
        let (c, p) = std_pair(e);
        let n = via.on(&c);
        c.shutdown(Shutdown::Write).unwrap();
        let start = codes(&n.send_err(&c));
        let op = n.recv(&c, 16, MsgFlags::empty());
        reset(p);
        let d = op.complete();
        let end = d
            .error
            .as_ref()
            .map(codes)
            .unwrap_or_else(|| panic!("{via:?}: completed with {} bytes", d.bytes));
        seen.push((via, start, end));
    }
    let (_, start, end) = seen[0];
    assert_eq!(start.1, Some(libc::ESHUTDOWN));
    assert_eq!(end.0, ErrorKind::ConnectionReset);
    for (via, s, d) in &seen {
        assert_eq!(
            (s, d),
            (&start, &end),
            "{via:?} differs from {:?}",
            seen[0].0
        );
    }
}

util::cases! {
    k08_routine_on_a_port_socket_fails_at_the_call,
    k08_routine_started_before_the_association_stays_a_routine,
    k09_accept_started_before_the_association_posts_to_the_port,
    k09_receive_started_before_the_association_posts_its_data,
    k09_without_a_port_the_handle_takes_a_result_completed_at_start,
    k10_cancel_is_operation_aborted,
    k10_close_ends_a_tcp_receive_connection_aborted,
    k10_close_ends_accepts_and_udp_receives_operation_aborted,
    k10_thread_exit_is_operation_aborted,
    k10_start_errors_and_truncation_have_their_codes,
    k11_closing_one_handle_aborts_nothing,
    k11_closing_the_handle_an_operation_was_started_on_touches_nothing,
    k11_the_last_handle_closing_aborts,
    k12_every_notification_reports_the_same_edges,
}
