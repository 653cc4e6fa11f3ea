//! SPEC section *connection state and error codes*, k05–k07: the calls'
//! own rules on a connection — urgent data, connecting, `WAITALL`
//! receives. The section starts in `connection_state.rs` (k01–k04) and
//! ends in `connection_codes.rs` (k08–k12). Every case that completes or
//! fails an operation runs once per notification — result, event,
//! routine, port — on both engines (k12, through `util::notif`): a start
//! error posts, sets and queues nothing; a completion arrives through
//! each.
use std::io::ErrorKind;
use std::net::Shutdown;
use std::time::Duration;

use overlapped::*;

use crate::util::notif::*;
use crate::util::{self, *};

/// Receives until `n` bytes came (plain receives, no notification).
fn recv_n(s: &Socket, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let c = s
            .recv(vec![0u8; n - got.len()], MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        assert!(c.error.is_none() && c.bytes > 0, "{:?}", c.error);
        got.extend_from_slice(&c.data);
    }
    got
}

fn k05_oob_receive_gets_the_byte_normal_receives_passed(e: &Engine) {
    for via in VIAS {
        for first in [16, 2] {
            let (c, s) = tcp_pair(e);
            let n = via.on(&s);
            c.send(b"ABC".to_vec(), MsgFlags::OOB, Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            c.send(b"DEF".to_vec(), MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let a = s
                .recv(vec![0u8; first], MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(&a.data[..], b"AB", "a normal receive stops at the mark");
            assert_eq!(
                recv_n(&s, 3),
                b"DEF",
                "the urgent byte is not in the stream"
            );
            let d = n.recv(&s, 1, MsgFlags::OOB).complete();
            assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
            assert_eq!(&d.data[..], b"C", "{via:?}");
            assert!(d.flags.contains(RecvFlags::OOB));
        }
    }
}

fn k05_oob_receive_pends_until_an_urgent_byte_arrives(e: &Engine) {
    for via in VIAS {
        let (c, s) = tcp_pair(e);
        let n = via.on(&s);
        let op = n
            .recv(&s, 1, MsgFlags::OOB)
            .pending_after(Duration::from_millis(100));
        c.send(b"xZ".to_vec(), MsgFlags::OOB, Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let d = op.complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!(&d.data[..], b"Z", "{via:?}");
    }
}

fn k05_urgent_byte_arriving_while_receives_wait_is_kept(e: &Engine) {
    for via in VIAS {
        // An OOB receive and a normal receive wait; the urgent byte comes
        // alone, where the normal receive would read past it.
        let (c, s) = tcp_pair(e);
        let n = via.on(&s);
        let normal = s
            .recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op();
        let oob = n.recv(&s, 1, MsgFlags::OOB);
        std::thread::sleep(Duration::from_millis(5));
        c.send(b"C".to_vec(), MsgFlags::OOB, Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let d = oob.complete();
        assert_eq!(
            (&d.data[..], d.flags.contains(RecvFlags::OOB)),
            (&b"C"[..], true),
            "{via:?}: {:?}",
            d.error
        );
        let normal = match normal
            .result_timeout(Some(Duration::from_millis(30)))
            .unwrap()
        {
            Polled::Incomplete(op) => op,
            Polled::Complete(d) => panic!("{via:?}: the normal receive got {:?}", &d.data[..]),
        };
        // Once the socket has seen an OOB receive, a byte that comes
        // while only a normal receive waits is kept for the next one.
        c.send(b"D".to_vec(), MsgFlags::OOB, Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let normal = match normal
            .result_timeout(Some(Duration::from_millis(50)))
            .unwrap()
        {
            Polled::Incomplete(op) => op,
            Polled::Complete(d) => panic!("{via:?}: the normal receive got {:?}", &d.data[..]),
        };
        let d = n.recv(&s, 1, MsgFlags::OOB).complete();
        assert_eq!(&d.data[..], b"D", "{via:?}: {:?}", d.error);
        c.send(b"xy".to_vec(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let Polled::Complete(d) = normal.result_timeout(ten()).unwrap() else {
            panic!("no data")
        };
        assert_eq!(&d.data[..], b"xy", "{via:?}");
    }
}

/// An engine of `e`'s kind with the urgent watch on
/// (`EngineBuilder::watch_urgent`).
fn watching_urgent(e: &Engine) -> Engine {
    let choice = match e.kind() {
        EngineKind::Uring => probe::EngineChoice::Uring,
        _ => probe::EngineChoice::Poll,
    };
    Engine::builder()
        .choice(choice)
        .watch_urgent(true)
        .build()
        .unwrap()
}

fn k05_urgent_byte_arriving_alone_before_any_oob_receive_is_kept(e: &Engine) {
    // A normal receive waits on a socket that never started an OOB
    // receive; the urgent byte comes alone, then data after it. The poll
    // engine always keeps the byte; io_uring does with `watch_urgent`
    // (without it, the receive waiting in the kernel reads past the byte
    // and Linux drops it: see the porting guide).
    let e = &watching_urgent(e);
    for via in VIAS {
        let (c, s) = tcp_pair(e);
        let n = via.on(&s);
        let normal = n
            .recv(&s, 16, MsgFlags::empty())
            .pending_after(Duration::from_millis(20));
        c.send(b"U".to_vec(), MsgFlags::OOB, Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        c.send(b"after".to_vec(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let d = normal.complete();
        assert_eq!(&d.data[..], b"after", "{via:?}: {:?}", d.error);
        let d = n.recv(&s, 1, MsgFlags::OOB).complete();
        assert_eq!(
            (&d.data[..], d.flags.contains(RecvFlags::OOB)),
            (&b"U"[..], true),
            "{via:?}: {:?}",
            d.error
        );
    }
}

/// On an engine with the urgent watch on, the urgent byte and data after
/// it both arrived before any receive was started (nothing drove the
/// engine meanwhile): the first normal receive returns only the data, and
/// the `OOB` receive after it the byte.
fn k05_urgent_byte_and_data_before_any_receive_are_both_kept(e: &Engine) {
    let e = &watching_urgent(e);
    for via in VIAS {
        // A std peer: sending through the engine would drive it, and its
        // readiness reports would show the byte to the engine first.
        let (s, mut p) = std_pair(e);
        let n = via.on(&s);
        socket2::SockRef::from(&p).send_out_of_band(b"U").unwrap();
        write_all(&mut p, b"data");
        std::thread::sleep(Duration::from_millis(30));
        let d = n.recv(&s, 16, MsgFlags::empty()).complete();
        assert_eq!(&d.data[..], b"data", "{via:?}: {:?}", d.error);
        let d = n.recv(&s, 1, MsgFlags::OOB).complete();
        assert_eq!(
            (&d.data[..], d.flags.contains(RecvFlags::OOB)),
            (&b"U"[..], true),
            "{via:?}: {:?}",
            d.error
        );

        // The same with an `OOB` receive already waiting (started before
        // the byte came): whichever sees the byte first, the `OOB` receive
        // gets it and the normal receive the data.
        let oob = n
            .recv(&s, 1, MsgFlags::OOB)
            .pending_after(Duration::from_millis(20));
        socket2::SockRef::from(&p).send_out_of_band(b"V").unwrap();
        write_all(&mut p, b"more");
        std::thread::sleep(Duration::from_millis(30));
        let d = s
            .recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(&d.data[..], b"more", "{via:?}: {:?}", d.error);
        let d = oob.complete();
        assert_eq!(&d.data[..], b"V", "{via:?}: {:?}", d.error);
    }
}

fn k05_oob_receive_with_oobinline_fails_at_the_call(e: &Engine) {
    for via in VIAS {
        let (c, s) = tcp_pair(e);
        let n = via.on(&s);
        s.with_socket2(|s| s.set_out_of_band_inline(true)).unwrap();
        c.send(b"ABC".to_vec(), MsgFlags::OOB, Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let err = n.recv_err(&s, MsgFlags::OOB);
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{via:?}: {err}");
        assert_eq!(wsa_error(&err), Some(10022));
        assert_eq!(recv_n(&s, 3), b"ABC", "the urgent byte is in the stream");
    }
}

fn k06_connect_on_a_listening_socket_is_invalid(e: &Engine) {
    for via in VIAS {
        let l = Socket::tcp_listener(e, &v4()).unwrap();
        let n = via.on(&l);
        let to = dead_addr(false);
        let err = n.start_err(|no| l.connect(to, no));
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{via:?}: {err}");
    }
}

fn k06_connect_on_a_connected_socket_is_isconn(e: &Engine) {
    for via in VIAS {
        let (c, s) = tcp_pair(e);
        let n = via.on(&c);
        let to = s.local_addr().unwrap();
        let err = n.start_err(|no| c.connect(to, no));
        assert_eq!(err.raw_os_error(), Some(libc::EISCONN), "{via:?}: {err}");
        assert_eq!(wsa_error(&err), Some(10056));
    }
}

fn k06_while_connecting_a_second_connect_and_transfers_fail_at_the_call(e: &Engine) {
    for via in VIAS {
        // A listener whose accept queue is full drops new SYNs: a
        // connect to it stays in flight (the SYN is retried after 1 s).
        let l = Socket::tcp_for(e, &v4()).unwrap();
        l.bind(&v4()).unwrap();
        l.listen(0).unwrap();
        let to = l.local_addr().unwrap();
        let _queued = std::net::TcpStream::connect(to).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let c = Socket::tcp_for(e, &to).unwrap();
        let n = via.on(&c);
        let connect = c.connect(to, Notify::None).unwrap();
        assert!(
            connect.is_pending(),
            "{via:?}: connect to a full backlog completed at once"
        );
        let connect = match connect
            .op()
            .result_timeout(Some(Duration::from_millis(100)))
            .unwrap()
        {
            Polled::Incomplete(op) => op,
            Polled::Complete(d) => panic!("{via:?}: the connect completed: {:?}", d.error),
        };
        let err = n.start_err(|no| c.connect(to, no));
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{via:?}: {err}");
        let err = n.recv_err(&c, MsgFlags::empty());
        assert_eq!(err.kind(), ErrorKind::NotConnected, "{via:?}: {err}");
        assert_eq!(wsa_error(&err), Some(10057));
        assert_eq!(n.send_err(&c).kind(), ErrorKind::NotConnected, "{via:?}");
        c.close().unwrap();
        let d = connect.result_timeout(ten()).unwrap();
        let Polled::Complete(d) = d else {
            panic!("close ends the connect")
        };
        assert!(d.is_aborted(), "{:?}", d.error);
    }
}

/// **(ours)**: Windows' `ConnectEx` needs a bound socket.
fn k06_connect_binds_an_unbound_socket(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let to = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &to).unwrap();
    c.connect_wait(to).unwrap();
    assert_ne!(c.local_addr().unwrap().port(), 0);
}

fn k07_waitall_receive_completes_only_when_full(e: &Engine) {
    for via in VIAS {
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 100, MsgFlags::WAITALL);
        write_all(&mut p, &[1u8; 60]);
        let op = op.pending_after(Duration::from_millis(50));
        write_all(&mut p, &[2u8; 40]);
        let d = op.complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!(d.bytes, 100, "{via:?}");
        assert!(d.data[..60].iter().all(|&b| b == 1) && d.data[60..].iter().all(|&b| b == 2));
    }
}

fn k07_waitall_scatter_fills_every_buffer(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let op = c
        .recv(
            [vec![0u8; 3], vec![0u8; 5]],
            MsgFlags::WAITALL,
            Notify::None,
        )
        .unwrap();
    write_all(&mut p, b"ABCD");
    std::thread::sleep(Duration::from_millis(30));
    write_all(&mut p, b"EFGH");
    let d = op.wait().unwrap();
    assert_eq!(d.bytes, 8);
    assert_eq!(
        (&d.data[0][..], &d.data[1][..]),
        (&b"ABC"[..], &b"DEFGH"[..])
    );
}

fn k07_waitall_receive_ends_with_what_arrived(e: &Engine) {
    for via in VIAS {
        // End of stream: success with the bytes that came.
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 100, MsgFlags::WAITALL);
        write_all(&mut p, &[7u8; 60]);
        let op = op.pending_after(Duration::from_millis(30));
        p.shutdown(Shutdown::Write).unwrap();
        let d = op.complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!((d.bytes, d.data.len()), (60, 60), "{via:?}");

        // Reset: the error, with the bytes that came.
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 100, MsgFlags::WAITALL);
        write_all(&mut p, &[8u8; 60]);
        let op = op.pending_after(Duration::from_millis(30));
        reset(p);
        let d = op.complete();
        assert_eq!(
            d.error.as_ref().map(|e| e.kind()),
            Some(ErrorKind::ConnectionReset),
            "{via:?}"
        );
        assert_eq!((d.bytes, d.data.len()), (60, 60), "{via:?}");
        assert!(d.data.iter().all(|&b| b == 8));

        // Abort: aborted, with the bytes that came.
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 100, MsgFlags::WAITALL);
        write_all(&mut p, &[9u8; 60]);
        let op = op.pending_after(Duration::from_millis(30));
        op.op.cancel().unwrap();
        let d = op.complete();
        assert!(d.is_aborted(), "{via:?}: {:?}", d.error);
        assert_eq!((d.bytes, d.data.len()), (60, 60), "{via:?}");
    }
}

fn k07_waitall_needs_a_stream_receive_of_the_normal_channel(e: &Engine) {
    for via in VIAS {
        let (c, _p) = std_pair(e);
        let n = via.on(&c);
        for flags in [
            MsgFlags::WAITALL | MsgFlags::PEEK,
            MsgFlags::WAITALL | MsgFlags::OOB,
        ] {
            let err = n.recv_err(&c, flags);
            assert_eq!(
                err.raw_os_error(),
                Some(libc::EOPNOTSUPP),
                "{via:?} {flags:?}: {err}"
            );
            assert_eq!(wsa_error(&err), Some(10045));
        }
        let u = Socket::udp_bound(e, &v4()).unwrap();
        let n = via.on(&u);
        let err = n.start_err(|no| u.recv_from(vec![0u8; 8], MsgFlags::WAITALL, no));
        assert_eq!(err.raw_os_error(), Some(libc::EOPNOTSUPP), "{via:?}: {err}");
    }
}

util::cases! {
    k05_oob_receive_gets_the_byte_normal_receives_passed,
    k05_oob_receive_pends_until_an_urgent_byte_arrives,
    k05_urgent_byte_arriving_while_receives_wait_is_kept,
    k05_urgent_byte_arriving_alone_before_any_oob_receive_is_kept,
    k05_urgent_byte_and_data_before_any_receive_are_both_kept,
    k05_oob_receive_with_oobinline_fails_at_the_call,
    k06_connect_on_a_listening_socket_is_invalid,
    k06_connect_on_a_connected_socket_is_isconn,
    k06_while_connecting_a_second_connect_and_transfers_fail_at_the_call,
    k06_connect_binds_an_unbound_socket,
    k07_waitall_receive_completes_only_when_full,
    k07_waitall_scatter_fills_every_buffer,
    k07_waitall_receive_ends_with_what_arrived,
    k07_waitall_needs_a_stream_receive_of_the_normal_channel,
}
