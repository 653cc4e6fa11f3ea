//! Fault tests: tiny rings that force a full submission queue and a
//! completion-queue overflow, close with many pending operations, accepts
//! through a port, cancel-versus-complete races, a peer reset in the middle
//! of a send and queued receives.

use std::time::Duration;

use overlapped::{Engine, Event, MsgFlags, Notify, Socket, WaitMode, wait_for_events};

#[path = "util/mod.rs"]
mod util;

use util::{Kind, SEC, slack, tcp_pairs, ten};

/// 1,000 receives parked in a ring of 2 entries (completion queue of 4):
/// every push beyond two flushes the submission queue, and the completions
/// overflow the completion queue. No completion may be lost. (On the poll
/// engine, which has no ring, the same operations through a default engine.)
fn tiny_ring_full_sq_and_cq_overflow_lose_nothing(kind: Kind) {
    let e = match kind {
        Kind::Uring => util::builder(kind).ring_entries(2).build().unwrap(),
        _ => util::engine(kind),
    };
    let ps = tcp_pairs(&e, 500);
    let mut ops = Vec::new();
    for (c, s) in &ps {
        for sock in [c, s] {
            let st = sock
                .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap();
            assert!(st.is_pending());
            ops.push(st.op());
        }
    }
    for (i, (c, s)) in ps.iter().enumerate() {
        let m = (i as u32).to_be_bytes().to_vec();
        s.send(m.clone(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        c.send(m, MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
    }
    for (k, op) in ops.into_iter().enumerate() {
        let c = match op.result_timeout(Some(slack(20 * SEC))).unwrap() {
            overlapped::Polled::Complete(c) => c,
            overlapped::Polled::Incomplete(_) => panic!("receive {k} lost"),
        };
        assert!(c.error.is_none(), "{:?}", c.error);
        assert_eq!(&c.data[..], &((k / 2) as u32).to_be_bytes());
    }
    assert_eq!(e.ops_in_table(), 0);
}

/// Closing a socket with 1,000 pending receives completes every one of them
/// aborted, with its buffer, and sets each event.
fn close_with_1000_pending_ops_aborts_all(e: &Engine) {
    let ps = tcp_pairs(e, 1);
    let (_c, s) = &ps[0];
    let mut ops = Vec::new();
    let mut evs = Vec::new();
    for _ in 0..1000 {
        let ev = Event::new();
        ops.push(s.recv(vec![0u8; 16], MsgFlags::empty(), &ev).unwrap().op());
        evs.push(ev);
    }
    s.close().unwrap();
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, Some(slack(20 * SEC)), false).unwrap(),
        overlapped::WaitOutcome::Event(0)
    );
    for op in ops {
        let c = op.wait().unwrap();
        assert!(c.is_aborted(), "{:?}", c.error);
        assert_eq!(c.data.capacity(), 16);
    }
    assert_eq!(e.ops_in_table(), 0);
}

/// An accept whose completion goes to a port: the new socket is registered
/// with the engine when the worker converts the packet (no lock is held).
fn accept_through_a_port(e: &Engine) {
    let port = overlapped::CompletionPort::new(1);
    let l = Socket::tcp_listener(e, &"127.0.0.1:0".parse().unwrap()).unwrap();
    port.associate(&l, 9).unwrap();
    let _op = l.accept(Notify::Port(1)).unwrap();
    let peer = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let p = port.get_queued(ten()).unwrap().expect("packet");
    assert_eq!((p.key, p.tag), (9, 1));
    let c = p.into_completion::<Option<Socket>>().unwrap();
    let s = c.data.expect("accepted socket");
    assert_eq!(c.addr, Some(peer.local_addr().unwrap()));
    s.send(b"ok".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
}

/// 100,000 cancel-versus-complete races on one connection: every receive
/// completes exactly once, aborted with nothing taken or with its data, and
/// every byte sent is received once, in order.
fn cancel_races_100000(e: &Engine) {
    let ps = tcp_pairs(e, 1);
    let (c, s) = &ps[0];
    let mut expect = 0u32;
    let mut stream: Vec<u8> = Vec::new();
    let mut pos = 0usize;
    for i in 0..100_000u32 {
        let op = s
            .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op();
        c.send(i.to_le_bytes().to_vec(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        if i % 2 == 0 {
            let _ = op.cancel();
        }
        let d = op.wait().unwrap();
        if d.error.is_none() {
            stream.extend_from_slice(&d.data);
        } else {
            assert!(d.is_aborted() && d.bytes == 0);
        }
        // Catch up so each round starts with an empty socket.
        while stream.len() < (i as usize + 1) * 4 {
            let d = s
                .recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert!(d.error.is_none() && d.bytes > 0);
            stream.extend_from_slice(&d.data);
        }
        while pos + 4 <= stream.len() {
            let v = u32::from_le_bytes(stream[pos..pos + 4].try_into().unwrap());
            assert_eq!(v, expect, "byte stream out of order or duplicated");
            expect += 1;
            pos += 4;
        }
    }
    assert_eq!(expect, 100_000);
    assert_eq!(e.ops_in_table(), 0);
}

/// The peer resets the connection while a large send is parked part-way
/// (the socket buffers are full) and three receives are queued: every
/// operation completes exactly once (the send with the reset, the receives
/// with an error or the end of the stream), each with its buffers back, and
/// the send reports the bytes it moved.
fn peer_reset_mid_send_and_receives(e: &Engine) {
    use std::io::Read;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    c.connect_wait(addr).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    const BIG: usize = 16 << 20;
    let send = c
        .send(vec![5u8; BIG], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(send.is_pending(), "16 MiB cannot fit the socket buffers");
    let recvs: Vec<_> = (0..3)
        .map(|_| {
            c.recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)
                .unwrap()
        })
        .collect();
    // Take some of the send, so it is part-way, then reset.
    let mut got = vec![0u8; 256 * 1024];
    let mut taken = 0;
    while taken < got.len() {
        taken += peer.read(&mut got[taken..]).unwrap();
    }
    socket2::SockRef::from(&peer)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(peer);
    let done = send.wait().unwrap();
    let err = done.error.expect("a send into a reset connection fails");
    assert!(
        matches!(
            err.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    assert!(
        done.bytes >= taken && done.bytes < BIG,
        "{} bytes",
        done.bytes
    );
    assert_eq!(done.data.len(), BIG, "the send's buffer comes back whole");
    for r in recvs {
        // The reset error is reported once (here to the send); later reads
        // of the socket see the end of the stream.
        let d = r.wait().unwrap();
        if let Some(err) = &d.error {
            assert!(
                overlapped::is_aborted(err)
                    || matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
                    ),
                "{err}"
            );
        }
        assert_eq!(d.bytes, 0);
        assert_eq!(d.data.capacity(), 64);
    }
    assert_eq!(e.ops_in_table(), 0);
}

/// 200 `recv_msg`s with control rooms parked in a ring of 2 entries (the
/// submission queue fills, the completion queue overflows): every datagram
/// arrives with its packet information; then 200 more are aborted by
/// closing their sockets, each with its buffer and control buffer back.
/// (On the poll engine, through a default engine.)
fn recv_msg_in_a_tiny_ring_loses_nothing_and_close_aborts_all(kind: Kind) {
    use overlapped::{Control, Polled};
    let e = match kind {
        Kind::Uring => util::builder(kind).ring_entries(2).build().unwrap(),
        _ => util::engine(kind),
    };
    let any = "0.0.0.0:0".parse().unwrap();
    let socks: Vec<Socket> = (0..200)
        .map(|_| {
            let s = Socket::udp_bound(&e, &any).unwrap();
            s.set_pktinfo(true).unwrap();
            s
        })
        .collect();
    let start = |s: &Socket, notify: Notify<(Vec<u8>, Control)>| {
        let st = s
            .recv_msg(
                vec![0u8; 8],
                Control::with_capacity(Control::PKTINFO_SPACE),
                MsgFlags::empty(),
                notify,
            )
            .unwrap();
        assert!(st.is_pending());
        st.op()
    };
    let ops: Vec<_> = socks.iter().map(|s| start(s, Notify::None)).collect();
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = |i: usize| std::net::Ipv4Addr::new(127, 0, 0, 1 + (i % 3) as u8);
    for (i, s) in socks.iter().enumerate() {
        let port = s.local_addr().unwrap().port();
        peer.send_to(&(i as u32).to_be_bytes(), (to(i), port))
            .unwrap();
    }
    for (i, op) in ops.into_iter().enumerate() {
        let c = match op.result_timeout(Some(slack(20 * SEC))).unwrap() {
            Polled::Complete(c) => c,
            Polled::Incomplete(_) => panic!("recv_msg {i} lost"),
        };
        assert!(c.error.is_none(), "{:?}", c.error);
        let (data, control) = c.data;
        assert_eq!(&data[..], &(i as u32).to_be_bytes());
        let info = control.pktinfo().expect("packet information");
        assert_eq!(info.addr, std::net::IpAddr::V4(to(i)));
    }
    let evs: Vec<Event> = (0..socks.len()).map(|_| Event::new()).collect();
    let ops: Vec<_> = socks
        .iter()
        .zip(&evs)
        .map(|(s, ev)| start(s, Notify::from(ev)))
        .collect();
    for s in &socks {
        s.close().unwrap();
    }
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, Some(slack(20 * SEC)), false).unwrap(),
        overlapped::WaitOutcome::Event(0)
    );
    for op in ops {
        let c = match op.result(false).unwrap() {
            Polled::Complete(c) => c,
            Polled::Incomplete(_) => panic!("event set, recv_msg incomplete"),
        };
        assert!(c.is_aborted(), "{:?}", c.error);
        assert_eq!(c.data.0.capacity(), 8);
        assert!(c.data.1.is_empty());
        assert_eq!(c.data.1.capacity(), Control::PKTINFO_SPACE);
    }
    assert_eq!(e.ops_in_table(), 0);
}

util::cases! {
    tiny_ring_full_sq_and_cq_overflow_lose_nothing,
    close_with_1000_pending_ops_aborts_all,
    accept_through_a_port,
    cancel_races_100000,
    peer_reset_mid_send_and_receives,
    recv_msg_in_a_tiny_ring_loses_nothing_and_close_aborts_all,
}
