//! SPEC section *connection state and error codes*, k01–k04: a connection
//! reset by its peer, shut down on either side, and a UDP peer with no
//! listener. The section goes on in `connection_calls.rs` (k05–k07) and
//! `connection_codes.rs` (k08–k12). Every case that completes or fails an
//! operation runs once per notification — result, event, routine, port —
//! on both engines (k12, through `util::notif`): a start error posts, sets
//! and queues nothing; a completion arrives through each.
use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::time::Duration;

use overlapped::*;

use crate::util::notif::*;
use crate::util::{self, *};

/// A connection whose std peer reset it 50 ms ago, with nothing pending:
/// the engine's end and its notification.
fn reset_idle(e: &Engine, via: Via) -> (Socket, Notif) {
    let (c, p) = std_pair(e);
    let n = via.on(&c);
    reset_then_pause(p);
    (c, n)
}

/// Resets the connection from the std peer, then waits 50 ms: the reset
/// has arrived, and no receive may trust an earlier "the socket is empty".
fn reset_then_pause(p: std::net::TcpStream) {
    reset(p);
    std::thread::sleep(Duration::from_millis(50));
}

fn k01_pending_receive_completes_with_reset_then_every_start_fails(e: &Engine) {
    for via in VIAS {
        let (c, p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 16, MsgFlags::empty());
        reset(p);
        let d = op.complete();
        let err = failed(d, via);
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{via:?}");
        assert_eq!(
            (wsa_error(&err), win32_error(&err)),
            (Some(10054), Some(64))
        );
        for _ in 0..2 {
            assert_eq!(
                n.recv_err(&c, MsgFlags::empty()).kind(),
                ErrorKind::ConnectionReset,
                "{via:?}"
            );
            assert_eq!(n.send_err(&c).kind(), ErrorKind::ConnectionReset, "{via:?}");
        }
        assert_eq!(e.ops_in_table(), 0);
    }
}

fn k01_reset_with_nothing_pending_fails_receives_and_sends_at_the_call(e: &Engine) {
    for via in VIAS {
        let (c, n) = reset_idle(e, via);
        for _ in 0..2 {
            assert_eq!(
                n.recv_err(&c, MsgFlags::empty()).kind(),
                ErrorKind::ConnectionReset,
                "{via:?}"
            );
            assert_eq!(n.send_err(&c).kind(), ErrorKind::ConnectionReset, "{via:?}");
        }
        // Told first to a send, the reset fails receives too.
        let (c, n) = reset_idle(e, via);
        assert_eq!(n.send_err(&c).kind(), ErrorKind::ConnectionReset, "{via:?}");
        assert_eq!(
            n.recv_err(&c, MsgFlags::empty()).kind(),
            ErrorKind::ConnectionReset,
            "{via:?}"
        );
    }
}

fn k01_reset_after_an_exchange_fails_the_next_receive_at_the_call(e: &Engine) {
    for via in VIAS {
        // Receives that waited and emptied the socket: the engine has
        // reason to think the next receive would find nothing (and skips
        // its try for a few milliseconds). After a pause, a reset the
        // engine has not seen still fails the next receive at the call.
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        for _ in 0..6 {
            let op = n
                .recv(&c, 16, MsgFlags::empty())
                .pending_after(Duration::from_millis(5));
            write_all(&mut p, b"ping");
            let d = op.complete();
            assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
            assert_eq!(d.bytes, 4, "{via:?}");
        }
        reset_then_pause(p);
        assert_eq!(
            n.recv_err(&c, MsgFlags::empty()).kind(),
            ErrorKind::ConnectionReset,
            "{via:?}"
        );
        assert_eq!(n.send_err(&c).kind(), ErrorKind::ConnectionReset, "{via:?}");
    }
}

fn k01_reset_after_a_cancelled_receive_fails_the_next_receive_at_the_call(e: &Engine) {
    for via in VIAS {
        // A receive that found nothing and was cancelled: the engine last
        // saw the socket empty. After a pause, a reset it has not seen
        // fails the next receive at the call.
        let (c, p) = std_pair(e);
        let n = via.on(&c);
        let pending = n
            .recv(&c, 16, MsgFlags::empty())
            .pending_after(Duration::from_millis(5));
        pending.op.cancel().unwrap();
        let d = pending.complete();
        assert!(
            d.error.as_ref().is_some_and(is_aborted),
            "{via:?}: {:?}",
            d.error
        );
        reset_then_pause(p);
        assert_eq!(
            n.recv_err(&c, MsgFlags::empty()).kind(),
            ErrorKind::ConnectionReset,
            "{via:?}"
        );
    }
}

fn k01_reset_linux_reported_elsewhere_never_reads_as_end_of_stream(e: &Engine) {
    for via in VIAS {
        // Linux reports a reset once: here `SO_ERROR` takes it before any
        // operation, after which Linux's receive returns 0 and its send
        // EPIPE. The engine still answers "reset".
        let (c, n) = reset_idle(e, via);
        let taken = c.with_socket2(|s| s.take_error()).unwrap();
        assert_eq!(taken.map(|e| e.kind()), Some(ErrorKind::ConnectionReset));
        assert_eq!(
            n.recv_err(&c, MsgFlags::empty()).kind(),
            ErrorKind::ConnectionReset,
            "{via:?}"
        );
        assert_eq!(n.send_err(&c).kind(), ErrorKind::ConnectionReset, "{via:?}");

        let (c, n) = reset_idle(e, via);
        let _ = c.with_socket2(|s| s.take_error()).unwrap();
        assert_eq!(n.send_err(&c).kind(), ErrorKind::ConnectionReset, "{via:?}");
    }
}

fn k01_zero_byte_receive_on_a_reset_connection_never_reads_zero(e: &Engine) {
    for via in VIAS {
        // The readiness probe of the model: on a reset connection it fails
        // (at the call, or as a completion when it was waiting), never 0.
        let (c, n) = reset_idle(e, via);
        let _ = c.with_socket2(|s| s.take_error()).unwrap();
        let e0 = n.start_err(|no| c.recv(Vec::<u8>::new(), MsgFlags::empty(), no));
        assert_eq!(e0.kind(), ErrorKind::ConnectionReset, "{via:?}");

        let (c, p) = std_pair(e);
        let n = via.on(&c);
        let op = n
            .start(|no| c.recv(Vec::<u8>::new(), MsgFlags::empty(), no))
            .unwrap_or_else(|err| panic!("{via:?}: {}", err.error))
            .pending_after(Duration::from_millis(50));
        reset(p);
        let d = op.complete();
        let err = failed(d, via);
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{via:?}");
        assert_eq!(
            n.start_err(|no| c.recv(Vec::<u8>::new(), MsgFlags::empty(), no))
                .kind(),
            ErrorKind::ConnectionReset,
            "{via:?}"
        );
    }
}

fn k01_graceful_close_still_reads_zero(e: &Engine) {
    for via in VIAS {
        let (c, p) = std_pair(e);
        let n = via.on(&c);
        p.shutdown(Shutdown::Write).unwrap();
        let d = n.recv(&c, 16, MsgFlags::empty()).complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!(d.bytes, 0);
        drop(p);
    }
}

/// The peer shuts its side down and closes (a graceful close); our send
/// still succeeds, and the peer's stack answers it with a reset. Windows
/// then fails the receive and the sends that follow with
/// `WSAECONNABORTED`, not `WSAECONNRESET` (Linux holds `EPIPE` as the
/// socket's error, not `ECONNRESET`). Whether or not a receive read the
/// end of the stream before the send.
fn k01_reset_answering_a_send_after_a_graceful_close_is_connection_aborted(e: &Engine) {
    let aborted = |err: std::io::Error, via: Via, what: &str| {
        assert_eq!(
            (err.kind(), wsa_error(&err)),
            (ErrorKind::ConnectionAborted, Some(10053)),
            "{via:?}, {what}: {err}"
        );
    };
    for via in VIAS {
        for read_the_end_first in [false, true] {
            let (c, p) = std_pair(e);
            let n = via.on(&c);
            p.shutdown(Shutdown::Write).unwrap();
            drop(p);
            std::thread::sleep(Duration::from_millis(50));
            if read_the_end_first {
                let d = n.recv(&c, 16, MsgFlags::empty()).complete();
                assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
                assert_eq!(d.bytes, 0, "{via:?}: the end of the stream");
            }
            let d = n
                .start(|no| c.send(b"late".to_vec(), MsgFlags::empty(), no))
                .unwrap_or_else(|err| panic!("{via:?}: the send failed: {}", err.error))
                .complete();
            assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
            assert_eq!(d.bytes, 4, "{via:?}");
            // The reset the send drew arrives.
            std::thread::sleep(Duration::from_millis(50));
            if read_the_end_first {
                // The send comes first. Started in answer to a wait that
                // returned work, it may go to the kernel batched (a start
                // may always be pending): then its completion fails.
                let err = match n.start(|no| c.send(b"more".to_vec(), MsgFlags::empty(), no)) {
                    Err(err) => {
                        n.assert_quiet();
                        err.error
                    }
                    Ok(pending) => failed(pending.complete(), via),
                };
                aborted(err, via, "the first send");
            } else {
                aborted(n.recv_err(&c, MsgFlags::empty()), via, "the receive");
            }
            for _ in 0..2 {
                aborted(n.send_err(&c), via, "a send");
                aborted(n.recv_err(&c, MsgFlags::empty()), via, "a receive");
            }
            assert_eq!(e.ops_in_table(), 0);
        }
    }
}

fn k02_shutdown_read_keeps_pending_receives_for_later_data(e: &Engine) {
    for via in VIAS {
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        let op = n.recv(&c, 16, MsgFlags::empty());
        c.shutdown(Shutdown::Read).unwrap();
        let op = op.pending_after(Duration::from_millis(100));
        write_all(&mut p, b"late");
        let d = op.complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!(&d.data[..], b"late", "{via:?}");
    }
}

fn k02_receive_after_shutdown_read_fails_at_the_call(e: &Engine) {
    for via in VIAS {
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        write_all(&mut p, b"queued");
        std::thread::sleep(Duration::from_millis(20));
        c.shutdown(Shutdown::Read).unwrap();
        let err = n.recv_err(&c, MsgFlags::empty());
        assert_eq!(err.raw_os_error(), Some(libc::ESHUTDOWN), "{via:?}: {err}");
        assert_eq!(
            (wsa_error(&err), win32_error(&err)),
            (Some(10058), Some(233))
        );
        assert_eq!(
            n.recv_err(&c, MsgFlags::PEEK).raw_os_error(),
            Some(libc::ESHUTDOWN)
        );
        // Sending still works.
        let d = n
            .start(|no| c.send(b"out".to_vec(), MsgFlags::empty(), no))
            .unwrap()
            .complete();
        assert_eq!((d.error.is_none(), d.bytes), (true, 3), "{via:?}");
        assert_eq!(read_n(&mut p, 3), b"out");
    }
}

fn k03_send_after_shutdown_write_fails_at_the_call(e: &Engine) {
    for via in VIAS {
        let (c, mut p) = std_pair(e);
        let n = via.on(&c);
        c.shutdown(Shutdown::Write).unwrap();
        let err = n.send_err(&c);
        assert_eq!(err.raw_os_error(), Some(libc::ESHUTDOWN), "{via:?}: {err}");
        assert_eq!(wsa_error(&err), Some(10058));
        c.shutdown(Shutdown::Write)
            .expect("a second shutdown(Write) is fine");
        let mut rest = Vec::new();
        assert_eq!(
            p.read_to_end(&mut rest).unwrap(),
            0,
            "the peer reads end-of-stream"
        );
        write_all(&mut p, b"back");
        let d = n.recv(&c, 16, MsgFlags::empty()).complete();
        assert_eq!(&d.data[..], b"back", "{via:?}: receiving still works");
    }
}

fn k04_connected_udp_sends_survive_port_unreachable(e: &Engine) {
    for via in VIAS {
        let a = Socket::udp_bound(e, &v4()).unwrap();
        a.connect_wait(dead_addr(true)).unwrap();
        let n = via.on(&a);
        for i in 0..10 {
            let d = n
                .start(|no| a.send(vec![i as u8; 8], MsgFlags::empty(), no))
                .unwrap_or_else(|err| panic!("{via:?}: send {i} failed at the call: {}", err.error))
                .complete();
            assert!(d.error.is_none(), "{via:?}: send {i}: {:?}", d.error);
            assert_eq!(d.bytes, 8);
            // Room for the ICMP error to come back.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

fn k04_udp_receive_told_of_port_unreachable_is_connection_reset(e: &Engine) {
    for via in VIAS {
        // Windows: WSAECONNRESET (ERROR_PORT_UNREACHABLE through a port);
        // Linux: ECONNREFUSED.
        let a = Socket::udp_bound(e, &v4()).unwrap();
        a.connect_wait(dead_addr(true)).unwrap();
        let n = via.on(&a);
        let op = n
            .recv(&a, 16, MsgFlags::empty())
            .pending_after(Duration::from_millis(20));
        let d = n
            .start(|no| a.send(b"anyone?".to_vec(), MsgFlags::empty(), no))
            .unwrap_or_else(|err| panic!("{via:?}: {}", err.error))
            .complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        let d = op.complete();
        let err = failed(d, via);
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{via:?}: {err}");
        assert_eq!(
            (wsa_error(&err), win32_error(&err)),
            (Some(10054), Some(1234)),
            "{via:?}"
        );
    }
}

fn k04_send_to_port_zero_succeeds(e: &Engine) {
    for via in VIAS {
        let a = Socket::udp_bound(e, &v4()).unwrap();
        let n = via.on(&a);
        let zero: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
        let d = n
            .start(|no| a.send_to(b"nowhere".to_vec(), zero, MsgFlags::empty(), no))
            .unwrap_or_else(|err| panic!("{via:?}: {}", err.error))
            .complete();
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!(d.bytes, 7);
    }
}

util::cases! {
    k01_pending_receive_completes_with_reset_then_every_start_fails,
    k01_reset_with_nothing_pending_fails_receives_and_sends_at_the_call,
    k01_reset_after_an_exchange_fails_the_next_receive_at_the_call,
    k01_reset_after_a_cancelled_receive_fails_the_next_receive_at_the_call,
    k01_reset_linux_reported_elsewhere_never_reads_as_end_of_stream,
    k01_zero_byte_receive_on_a_reset_connection_never_reads_zero,
    k01_graceful_close_still_reads_zero,
    k01_reset_answering_a_send_after_a_graceful_close_is_connection_aborted,
    k02_shutdown_read_keeps_pending_receives_for_later_data,
    k02_receive_after_shutdown_read_fails_at_the_call,
    k03_send_after_shutdown_write_fails_at_the_call,
    k04_connected_udp_sends_survive_port_unreachable,
    k04_udp_receive_told_of_port_unreachable_is_connection_reset,
    k04_send_to_port_zero_succeeds,
}
