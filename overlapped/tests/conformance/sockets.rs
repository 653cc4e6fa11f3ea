//! `docs/SPEC.md`, section *sockets* (s01–s12).
use std::net::Shutdown;
use std::time::Duration;

use overlapped::*;

use crate::util::{self, *};

fn recv_all(s: &Socket, n: usize) -> Vec<u8> {
    let mut got = Vec::new();
    while got.len() < n {
        let c = s
            .recv(vec![0u8; n - got.len()], MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        assert!(c.error.is_none(), "{:?}", c.error);
        assert!(c.bytes > 0, "stream ended early");
        got.extend_from_slice(&c.data);
    }
    got
}

fn s01_tcp_v4_bind_listen_accept_connect_as_operations(e: &Engine) {
    let (c, s) = tcp_pair_at(e, v4());
    c.send(b"v4".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(recv_all(&s, 2), b"v4");
}

fn s01_tcp_v6_bind_listen_accept_connect_as_operations(e: &Engine) {
    let l = Socket::tcp_listener(e, &v6()).unwrap();
    let addr = l.local_addr().unwrap();
    assert!(addr.is_ipv6());
    let accept = l.accept(Notify::None).unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    let conn = c.connect(addr, Notify::None).unwrap().wait().unwrap();
    assert!(conn.error.is_none());
    let a = accept.wait().unwrap();
    let s = a.data.expect("accepted");
    assert_eq!(a.addr, Some(c.local_addr().unwrap()));
    s.send(b"v6".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(recv_all(&c, 2), b"v6");
}

fn s02_udp_send_to_recv_from_reports_sender(e: &Engine) {
    let a = Socket::udp_bound(e, &v4()).unwrap();
    let b = Socket::udp_bound(e, &v4()).unwrap();
    let recv = b
        .recv_from(vec![0u8; 64], MsgFlags::empty(), Notify::None)
        .unwrap();
    let sent = a
        .send_to(
            b"dgram".to_vec(),
            b.local_addr().unwrap(),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(sent.bytes, 5);
    let got = recv.wait().unwrap();
    assert!(got.error.is_none());
    assert_eq!(&got.data[..], b"dgram");
    assert_eq!(got.addr, Some(a.local_addr().unwrap()));
}

fn s02_udp_v6(e: &Engine) {
    let a = Socket::udp_bound(e, &v6()).unwrap();
    let b = Socket::udp_bound(e, &v6()).unwrap();
    a.send_to(
        b"six".to_vec(),
        b.local_addr().unwrap(),
        MsgFlags::empty(),
        Notify::None,
    )
    .unwrap()
    .wait()
    .unwrap();
    let got = b
        .recv_from(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        (&got.data[..], got.addr),
        (&b"six"[..], Some(a.local_addr().unwrap()))
    );
}

fn s03_gather_three_buffers_in_order(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let bufs = vec![b"AB".to_vec(), b"CDE".to_vec(), b"FGH".to_vec()];
    let done = c
        .send(bufs, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.bytes, 8);
    assert_eq!(
        done.data,
        vec![b"AB".to_vec(), b"CDE".to_vec(), b"FGH".to_vec()]
    );
    assert_eq!(read_n(&mut p, 8), b"ABCDEFGH");
}

fn s04_scatter_3_5_100(e: &Engine) {
    let (c, mut p) = std_pair(e);
    write_all(&mut p, b"ABCDEFGH");
    std::thread::sleep(Duration::from_millis(20));
    let bufs = [vec![0u8; 3], vec![0u8; 5], vec![0u8; 100]];
    let done = c
        .recv(bufs, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.bytes, 8);
    assert_eq!(&done.data[0][..], b"ABC");
    assert_eq!(&done.data[1][..], b"DEFGH");
    assert!(done.data[2].is_empty());
    assert_eq!(done.data[2].capacity(), 100);
}

fn s05_datagram_truncated_flag(e: &Engine) {
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
    let got = b
        .recv_from(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert!(got.error.is_none());
    assert_eq!(got.bytes, 4);
    assert_eq!(&got.data[..], b"0123");
    assert!(got.flags.contains(RecvFlags::TRUNCATED));
}

fn s06_peek_does_not_consume(e: &Engine) {
    let (c, mut p) = std_pair(e);
    write_all(&mut p, b"peekaboo");
    std::thread::sleep(Duration::from_millis(20));
    let a = c
        .recv(vec![0u8; 8], MsgFlags::PEEK, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&a.data[..], b"peekaboo");
    let b = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&b.data[..], b"peekaboo");
}

fn s07_oob_byte_out_of_line(e: &Engine) {
    let (c, s) = tcp_pair(e);
    c.send(b"ABC".to_vec(), MsgFlags::OOB, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let normal = recv_all(&s, 2);
    assert_eq!(normal, b"AB");
    let oob = s
        .recv(vec![0u8; 1], MsgFlags::OOB, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert!(oob.error.is_none(), "{:?}", oob.error);
    assert_eq!(&oob.data[..], b"C");
    assert!(oob.flags.contains(RecvFlags::OOB));
}

fn s07_oob_receive_pends_until_urgent_byte(e: &Engine) {
    let (c, s) = tcp_pair(e);
    let op = s.recv(vec![0u8; 1], MsgFlags::OOB, Notify::None).unwrap();
    assert!(op.is_pending());
    let op = match op
        .op()
        .result_timeout(Some(Duration::from_millis(100)))
        .unwrap()
    {
        Polled::Incomplete(op) => op,
        Polled::Complete(c) => panic!("completed without urgent data: {:?}", c.error),
    };
    c.send(b"xZ".to_vec(), MsgFlags::OOB, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let got = op.result_timeout(ten()).unwrap();
    let Polled::Complete(got) = got else {
        panic!("urgent byte never received")
    };
    assert_eq!(&got.data[..], b"Z");
}

fn s08_graceful_close_completes_pending_recv_with_zero(e: &Engine) {
    let (c, p) = std_pair(e);
    let op = c
        .recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(op.is_pending());
    p.shutdown(Shutdown::Both).unwrap();
    drop(p);
    let got = op.wait().unwrap();
    assert!(got.error.is_none());
    assert_eq!(got.bytes, 0);
}

/// The end of the stream already queued behind the last bytes: receives
/// that drain the bytes in pieces, then one more, see the end at once (an
/// engine that waits for a readiness report here never gets one).
fn s08_end_queued_behind_the_last_bytes_completes_the_next_receive(e: &Engine) {
    let (c, mut p) = std_pair(e);
    write_all(&mut p, b"abcdef");
    p.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    // The engine takes in every readiness report there is now: none will
    // come for these bytes or this end again.
    e.poll();
    let mut got = Vec::new();
    loop {
        let d = c
            .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op()
            .result_timeout(ten())
            .unwrap();
        let Polled::Complete(d) = d else {
            panic!("a receive on a stream whose end is queued stays pending");
        };
        assert!(d.error.is_none(), "{:?}", d.error);
        if d.bytes == 0 {
            break;
        }
        got.extend_from_slice(&d.data);
    }
    assert_eq!(&got[..], b"abcdef");
}

fn s08_reset_completes_pending_recv_with_reset(e: &Engine) {
    let (c, p) = std_pair(e);
    let op = c
        .recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
        .unwrap();
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p);
    let got = op.wait().unwrap();
    assert_eq!(
        got.error.map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );
}

fn s09_send_after_reset_errors_without_sigpipe(e: &Engine) {
    // With k01: connection reset (never broken pipe), at the call once the
    // engine knows of the reset.
    let (c, p) = std_pair(e);
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p);
    std::thread::sleep(Duration::from_millis(50));
    let mut saw_error = false;
    for _ in 0..10 {
        match c.send(vec![1u8; 1024], MsgFlags::empty(), Notify::None) {
            Err(err) => {
                assert_eq!(
                    err.error.kind(),
                    std::io::ErrorKind::ConnectionReset,
                    "{}",
                    err.error
                );
                saw_error = true;
                break;
            }
            Ok(st) => {
                if let Some(err) = st.wait().unwrap().error {
                    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
                    saw_error = true;
                    break;
                }
            }
        }
    }
    assert!(saw_error, "sends to a reset peer must fail");
}

fn s10_connect_refused(e: &Engine) {
    let addr = {
        let l = std::net::TcpListener::bind(v4()).unwrap();
        l.local_addr().unwrap()
    };
    let c = Socket::tcp_for(e, &addr).unwrap();
    let err = match c.connect(addr, Notify::None) {
        Err(err) => err.error,
        Ok(st) => st.wait().unwrap().error.expect("connect must fail"),
    };
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

fn s11_accept_returns_overlapped_socket_and_peer(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let op = l.accept(Notify::None).unwrap();
    let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let got = op.wait().unwrap();
    assert!(got.error.is_none());
    assert_eq!(got.addr, Some(peer.local_addr().unwrap()));
    let s = got.data.unwrap();
    // The new socket is overlapped: a receive with nothing there pends.
    assert!(
        s.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap()
            .is_pending()
    );
}

fn s12_send_on_unconnected_tcp_fails_at_start(e: &Engine) {
    let s = Socket::tcp_for(e, &v4()).unwrap();
    let ev = Event::new();
    let err = s.send(b"x".to_vec(), MsgFlags::empty(), &ev).unwrap_err();
    assert_eq!(err.error.kind(), std::io::ErrorKind::NotConnected);
    assert_eq!(&err.bufs[..], b"x");
    assert!(
        !ev.wait(Some(Duration::from_millis(50))),
        "a failed start never signals"
    );
    assert_eq!(e.ops_in_table(), 0);
}

util::cases! {
    s01_tcp_v4_bind_listen_accept_connect_as_operations,
    s01_tcp_v6_bind_listen_accept_connect_as_operations,
    s02_udp_send_to_recv_from_reports_sender,
    s02_udp_v6,
    s03_gather_three_buffers_in_order,
    s04_scatter_3_5_100,
    s05_datagram_truncated_flag,
    s06_peek_does_not_consume,
    s07_oob_byte_out_of_line,
    s07_oob_receive_pends_until_urgent_byte,
    s08_graceful_close_completes_pending_recv_with_zero,
    s08_end_queued_behind_the_last_bytes_completes_the_next_receive,
    s08_reset_completes_pending_recv_with_reset,
    s09_send_after_reset_errors_without_sigpipe,
    s10_connect_refused,
    s11_accept_returns_overlapped_socket_and_peer,
    s12_send_on_unconnected_tcp_fails_at_start,
}
