//! `docs/SPEC.md`, section *extension functions*: `WSARecvMsg` /
//! `WSASendMsg` (x06) and their cancel / close / exactly-once cases (x08),
//! through every notification.
use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::rc::Rc;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// A message operation's handle (buffer and control buffer).
type MsgOp = Op<(Vec<u8>, Control)>;

/// How a case learns of a completion.
#[derive(Debug, Clone, Copy)]
enum Via {
    Handle,
    Event,
    Routine,
    Port,
}

const VIA: [Via; 4] = [Via::Handle, Via::Event, Via::Routine, Via::Port];

/// A socket and how its operations notify: for `Port`, the port it is
/// associated with (key 7).
struct On<'a> {
    s: &'a Socket,
    via: Via,
    port: Option<CompletionPort>,
}

fn on(s: &Socket, via: Via) -> On<'_> {
    let port = matches!(via, Via::Port).then(|| {
        let port = CompletionPort::new(1);
        port.associate(s, 7).unwrap();
        port
    });
    On { s, via, port }
}

/// Starts an operation notified as `on` says, runs `then`, and returns the
/// completion, taken the way `on.via` says, within ten seconds. A routine
/// must run exactly once, a port packet come once.
fn complete_via<T: OpOutput>(
    on: &On<'_>,
    start: impl FnOnce(Notify<T>) -> Started<T>,
    then: impl FnOnce(),
) -> Completion<T> {
    match on.via {
        Via::Handle => {
            let op = start(Notify::None).op();
            then();
            match op.result_timeout(ten()).unwrap() {
                Polled::Complete(c) => c,
                Polled::Incomplete(_) => panic!("no completion within 10 s"),
            }
        }
        Via::Event => {
            let ev = Event::new();
            let op = start(Notify::from(&ev)).op();
            then();
            assert!(ev.wait(ten()), "the event was not set within 10 s");
            match op.result(false).unwrap() {
                Polled::Complete(c) => c,
                Polled::Incomplete(_) => panic!("event set, operation incomplete"),
            }
        }
        Via::Routine => {
            let got: Rc<RefCell<Vec<Completion<T>>>> = Rc::default();
            let g = got.clone();
            let _op = start(Notify::routine(move |c| g.borrow_mut().push(c))).op();
            then();
            let deadline = Instant::now() + ten().unwrap();
            while got.borrow().is_empty() && Instant::now() < deadline {
                sleep_ex(Some(Duration::from_millis(50)), true);
            }
            // Another alertable wait runs nothing more.
            sleep_ex(Some(Duration::from_millis(20)), true);
            let mut got = got.borrow_mut();
            assert_eq!(got.len(), 1, "the routine runs exactly once");
            got.pop().unwrap()
        }
        Via::Port => {
            let port = on.port.as_ref().expect("a port socket");
            let _op = start(Notify::Port(9)).op();
            then();
            let pk = port
                .get_queued(ten())
                .unwrap()
                .expect("a packet within 10 s");
            assert_eq!(pk.key, 7);
            assert_eq!(pk.tag, 9);
            let c = pk.into_completion::<T>().unwrap();
            assert!(
                port.get_queued(Some(Duration::from_millis(20)))
                    .unwrap()
                    .is_none(),
                "one packet per operation"
            );
            c
        }
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A std UDP socket on `at`, for the peer's side.
fn peer(at: &str) -> UdpSocket {
    let p = UdpSocket::bind(at).unwrap();
    p.set_read_timeout(ten()).unwrap();
    p
}

/// The machine's IPv6 loopback works (binding `[::1]` succeeds).
fn ipv6_loopback() -> bool {
    UdpSocket::bind("[::1]:0").is_ok()
}

/// Receives one datagram with `recv_msg` on `s`, notified `via`, after
/// `send` ran (before the start when `now`, else after it).
fn recv_one(
    on: &On<'_>,
    room: usize,
    now: bool,
    send: impl FnOnce(),
) -> Completion<(Vec<u8>, Control)> {
    let mut send = Some(send);
    if now {
        (send.take().unwrap())();
    }
    let s = on.s;
    complete_via(
        on,
        |n| {
            s.recv_msg(
                vec![0u8; 64],
                Control::with_capacity(room),
                MsgFlags::empty(),
                n,
            )
            .unwrap()
        },
        || {
            if let Some(f) = send {
                f();
            }
        },
    )
}

/// The index of the loopback interface.
fn lo_index() -> u32 {
    std::fs::read_to_string("/sys/class/net/lo/ifindex")
        .expect("the loopback interface's index")
        .trim()
        .parse()
        .unwrap()
}

/// Takes a result within ten seconds or fails the case.
fn within_ten<T: OpOutput>(op: Op<T>) -> Completion<T> {
    match op.result_timeout(ten()).unwrap() {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => panic!("no completion within 10 s"),
    }
}

fn x06_pktinfo_v4_tells_which_local_address(e: &Engine) {
    let lo = lo_index();
    for via in VIA {
        let s = Socket::udp_bound(e, &"0.0.0.0:0".parse().unwrap()).unwrap();
        let o = on(&s, via);
        s.set_pktinfo(true).unwrap();
        let port = s.local_addr().unwrap().port();
        let c = peer("127.0.0.1:0");
        for (to, now) in [
            ("127.0.0.1", true),
            ("127.0.0.2", false),
            ("127.0.0.2", true),
        ] {
            let dst = SocketAddr::new(ip(to), port);
            let d = recv_one(&o, Control::PKTINFO_SPACE, now, || {
                c.send_to(b"where?", dst).unwrap();
            });
            assert!(d.error.is_none(), "{via:?} {to}: {:?}", d.error);
            assert_eq!(d.bytes, 6);
            assert_eq!(d.flags, RecvFlags::empty(), "{via:?} {to}");
            assert_eq!(d.addr, Some(c.local_addr().unwrap()));
            let (data, control) = d.data;
            assert_eq!(&data[..], b"where?");
            assert!(control.len() <= Control::PKTINFO_SPACE);
            let info = control
                .pktinfo()
                .expect("IP_PKTINFO came with the datagram");
            assert_eq!(info.addr, ip(to), "{via:?}: the address it was sent to");
            assert_eq!(info.ifindex, lo, "{via:?}: it arrived on loopback");
            let m: Vec<_> = control.messages().collect();
            assert_eq!(m.len(), 1);
            assert_eq!(
                (m[0].level, m[0].kind),
                (libc::IPPROTO_IP, libc::IP_PKTINFO)
            );
        }
    }
}

fn x06_pktinfo_v6_tells_the_local_address(e: &Engine) {
    if !ipv6_loopback() {
        println!("x06_pktinfo_v6: SKIPPED: no IPv6 loopback on this machine");
        return;
    }
    let lo = lo_index();
    for via in VIA {
        // A dual-stack socket: IPv6 datagrams and IPv4 ones.
        let s = Socket::udp_bound(e, &"[::]:0".parse().unwrap()).unwrap();
        let o = on(&s, via);
        s.set_pktinfo(true).unwrap();
        let port = s.local_addr().unwrap().port();
        let c6 = peer("[::1]:0");
        let d = recv_one(&o, Control::PKTINFO_SPACE, false, || {
            c6.send_to(b"v6", SocketAddr::new(ip("::1"), port)).unwrap();
        });
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!((d.bytes, d.addr), (2, Some(c6.local_addr().unwrap())));
        let (data, control) = d.data;
        assert_eq!(&data[..], b"v6");
        let info = control
            .pktinfo()
            .expect("IPV6_PKTINFO came with the datagram");
        assert_eq!(info, PktInfo::new(ip("::1"), lo), "{via:?}");

        // An IPv4 datagram on the dual-stack socket: its packet
        // information names the IPv4 address it was sent to.
        let c4 = peer("127.0.0.1:0");
        let d = recv_one(&o, 2 * Control::PKTINFO_SPACE, true, || {
            c4.send_to(b"v4", SocketAddr::new(ip("127.0.0.2"), port))
                .unwrap();
        });
        assert!(d.error.is_none(), "{via:?}: {:?}", d.error);
        assert_eq!(d.bytes, 2);
        assert!(!d.flags.contains(RecvFlags::CTRUNC), "{via:?}");
        let (_, control) = d.data;
        let infos: Vec<PktInfo> = control
            .messages()
            .filter_map(|m| PktInfo::from_message(&m))
            .collect();
        assert!(!infos.is_empty(), "{via:?}: packet information came");
        for i in &infos {
            let v4 = match i.addr {
                IpAddr::V6(a) => a.to_ipv4_mapped().map(IpAddr::V4),
                v4 => Some(v4),
            };
            assert_eq!(v4, Some(ip("127.0.0.2")), "{via:?}: {infos:?}");
            assert_eq!(i.ifindex, lo);
        }
    }
}

fn x06_control_too_small_is_wsaemsgsize_with_the_payload(e: &Engine) {
    for via in VIA {
        let s = Socket::udp_bound(e, &util::v4()).unwrap();
        let o = on(&s, via);
        s.set_pktinfo(true).unwrap();
        let dst = s.local_addr().unwrap();
        let c = peer("127.0.0.1:0");
        // No room at all; room for a message's header only; room for
        // half of an IP_PKTINFO message. Completed at start and pending.
        for (room, now) in [
            (0, true),
            (Control::space(0), false),
            (20, true),
            (20, false),
        ] {
            let d = recv_one(&o, room, now, || {
                c.send_to(b"payload", dst).unwrap();
            });
            assert!(d.error.is_none(), "{via:?} {room}: {:?}", d.error);
            assert_eq!(d.bytes, 7, "{via:?} {room}: the payload's bytes");
            assert!(d.flags.contains(RecvFlags::CTRUNC), "{via:?} {room}");
            assert!(!d.flags.contains(RecvFlags::TRUNCATED), "{via:?} {room}");
            assert_eq!(d.wsa_error(), Some(10040), "{via:?} {room}: WSAEMSGSIZE");
            assert_eq!(d.win32_error(), Some(234), "{via:?} {room}");
            let (data, control) = d.data;
            assert_eq!(&data[..], b"payload");
            assert!(control.len() <= control.capacity());
            assert_eq!(control.pktinfo(), None, "{via:?} {room}: no whole message");
        }
        // Room enough: no flag, no error.
        let d = recv_one(&o, Control::PKTINFO_SPACE, false, || {
            c.send_to(b"payload", dst).unwrap();
        });
        assert_eq!(d.flags, RecvFlags::empty());
        assert_eq!(d.wsa_error(), None);
    }
}

fn x06_send_msg_chooses_the_source_address(e: &Engine) {
    let r = peer("127.0.0.1:0");
    let to = r.local_addr().unwrap();
    for via in VIA {
        let s = Socket::udp_bound(e, &"0.0.0.0:0".parse().unwrap()).unwrap();
        let o = on(&s, via);
        let port = s.local_addr().unwrap().port();
        for from in ["127.0.0.2", "127.0.0.3", "127.0.0.1"] {
            let mut control = Control::new();
            control.push_pktinfo(PktInfo::new(ip(from), 0));
            let len = control.len();
            let d = complete_via(
                &o,
                |n| {
                    s.send_msg(
                        vec![b"gather ".to_vec(), b"sent".to_vec()],
                        control,
                        Some(to),
                        MsgFlags::empty(),
                        n,
                    )
                    .unwrap()
                },
                || {},
            );
            assert!(d.error.is_none(), "{via:?} {from}: {:?}", d.error);
            assert_eq!(d.bytes, 11);
            let (bufs, control) = d.data;
            assert_eq!(bufs.len(), 2, "the buffers come back");
            assert_eq!(control.len(), len, "the control bytes come back");
            let mut b = [0u8; 32];
            let (n, src) = r.recv_from(&mut b).unwrap();
            assert_eq!(&b[..n], b"gather sent");
            assert_eq!(
                src,
                SocketAddr::new(ip(from), port),
                "{via:?}: the source chosen"
            );
        }
    }
    // A source address that is not local is the system's error.
    let s = Socket::udp_bound(e, &"0.0.0.0:0".parse().unwrap()).unwrap();
    let mut control = Control::new();
    control.push_pktinfo(PktInfo::new(ip("192.0.2.1"), 0));
    let res = s.send_msg(
        b"x".to_vec(),
        control,
        Some(to),
        MsgFlags::empty(),
        Notify::None,
    );
    let err = match res {
        Err(e) => e.error,
        Ok(st) => within_ten(st.op()).error.expect("a non-local source fails"),
    };
    // EINVAL, or ENETUNREACH where no route leads to it.
    assert!(
        matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENETUNREACH)),
        "{err}"
    );
    let mut b = [0u8; 4];
    r.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    assert!(r.recv_from(&mut b).is_err(), "nothing was sent");
}

/// A UDP server on the wildcard address answers each request from the
/// address the request was sent to: the reply's `send_msg` starts inside
/// the request's completion routine (on io_uring it then goes through the
/// ring with the next kernel entry).
fn x06_a_reply_leaves_from_the_address_the_request_came_to(e: &Engine) {
    let s = Rc::new(Socket::udp_bound(e, &"0.0.0.0:0".parse().unwrap()).unwrap());
    s.set_pktinfo(true).unwrap();
    let port = s.local_addr().unwrap().port();
    let c = peer("127.0.0.1:0");
    for to in ["127.0.0.2", "127.0.0.3", "127.0.0.1"] {
        let reply: Rc<RefCell<Option<MsgOp>>> = Rc::default();
        let (s2, r2) = (s.clone(), reply.clone());
        let _op = s
            .recv_msg(
                vec![0u8; 16],
                Control::with_capacity(Control::PKTINFO_SPACE),
                MsgFlags::empty(),
                Notify::routine(move |d: Completion<(Vec<u8>, Control)>| {
                    assert!(d.error.is_none(), "{:?}", d.error);
                    let (mut data, control) = d.data;
                    let info = control.pktinfo().expect("IP_PKTINFO");
                    let mut answer = Control::new();
                    answer.push_pktinfo(PktInfo::new(info.addr, 0));
                    data.extend_from_slice(b"!");
                    let st = s2
                        .send_msg(data, answer, d.addr, MsgFlags::empty(), Notify::None)
                        .unwrap();
                    *r2.borrow_mut() = Some(st.op());
                }),
            )
            .unwrap();
        c.send_to(b"ping", SocketAddr::new(ip(to), port)).unwrap();
        let deadline = Instant::now() + ten().unwrap();
        while reply.borrow().is_none() && Instant::now() < deadline {
            sleep_ex(Some(Duration::from_millis(50)), true);
        }
        let op = reply.borrow_mut().take().expect("the routine ran");
        let d = within_ten(op);
        assert!(d.error.is_none(), "{:?}", d.error);
        assert_eq!(d.bytes, 5);
        let mut b = [0u8; 16];
        let (n, from) = c.recv_from(&mut b).unwrap();
        assert_eq!(&b[..n], b"ping!");
        assert_eq!(from, SocketAddr::new(ip(to), port), "the reply's source");
    }
}

fn x06_on_a_stream_socket_data_without_control(e: &Engine) {
    let (c, s) = tcp_pair(e);
    let recv = s
        .recv_msg(
            vec![0u8; 16],
            Control::with_capacity(Control::PKTINFO_SPACE),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap();
    let sent = c
        .send_msg(
            b"stream".to_vec(),
            Control::new(),
            None,
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((sent.error.is_none(), sent.bytes), (true, 6));
    let d = within_ten(recv.op());
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.flags, RecvFlags::empty(), "nothing truncated");
    let (data, control) = d.data;
    assert_eq!(&data[..], b"stream");
    assert!(control.is_empty(), "no control data on a stream");
    assert_eq!(control.capacity(), Control::PKTINFO_SPACE);
    // Control data to send on a stream: refused at the call, all back.
    let mut control = Control::new();
    control.push_pktinfo(PktInfo::new(ip("127.0.0.1"), 0));
    let err = c
        .send_msg(
            b"no".to_vec(),
            control.clone(),
            None,
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap_err();
    assert_eq!(err.error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(err.bufs, (b"no".to_vec(), control));
}

/// A pending `recv_msg`, and the datagram socket and peer it waits on.
fn pending_recv_msg(s: &Socket, notify: Notify<(Vec<u8>, Control)>) -> MsgOp {
    let st = s
        .recv_msg(
            vec![0u8; 32],
            Control::with_capacity(Control::PKTINFO_SPACE),
            MsgFlags::empty(),
            notify,
        )
        .unwrap();
    assert!(st.is_pending());
    st.op()
}

/// An aborted `recv_msg`: nothing taken, both buffers back.
fn assert_aborted(d: &Completion<(Vec<u8>, Control)>) {
    assert!(d.is_aborted(), "{:?}", d.error);
    assert_eq!(d.wsa_error(), Some(995));
    assert_eq!(d.bytes, 0);
    assert_eq!(d.data.0.capacity(), 32, "the buffer comes back");
    assert!(d.data.1.is_empty());
    assert_eq!(
        d.data.1.capacity(),
        Control::PKTINFO_SPACE,
        "the control buffer comes back"
    );
}

fn x08_recv_msg_cancel_and_close_abort_it_once(e: &Engine) {
    let c = peer("127.0.0.1:0");
    // Cancel (each notification), then a datagram is not lost.
    for via in VIA {
        let s = Socket::udp_bound(e, &util::v4()).unwrap();
        let o = on(&s, via);
        s.set_pktinfo(true).unwrap();
        let d = complete_via(
            &o,
            |n| {
                s.recv_msg(
                    vec![0u8; 32],
                    Control::with_capacity(Control::PKTINFO_SPACE),
                    MsgFlags::empty(),
                    n,
                )
                .unwrap()
            },
            || {
                assert_eq!(s.cancel_all().unwrap(), 1);
            },
        );
        assert_aborted(&d);
        let dst = s.local_addr().unwrap();
        let d = recv_one(&o, Control::PKTINFO_SPACE, false, || {
            c.send_to(b"after", dst).unwrap();
        });
        assert_eq!(&d.data.0[..], b"after", "{via:?}");
        assert!(d.data.1.pktinfo().is_some());
    }
    // Close (each notification): aborted once.
    for via in VIA {
        let s = Socket::udp_bound(e, &util::v4()).unwrap();
        let o = on(&s, via);
        let d = complete_via(
            &o,
            |n| {
                s.recv_msg(
                    vec![0u8; 32],
                    Control::with_capacity(Control::PKTINFO_SPACE),
                    MsgFlags::empty(),
                    n,
                )
                .unwrap()
            },
            || s.close().unwrap(),
        );
        assert_aborted(&d);
    }
    // Op::cancel, and cancel after completion is NotFound.
    let s = Socket::udp_bound(e, &util::v4()).unwrap();
    let op = pending_recv_msg(&s, Notify::None);
    op.cancel().unwrap();
    let d = within_ten(op);
    assert_aborted(&d);
    let op = pending_recv_msg(&s, Notify::None);
    c.send_to(b"x", s.local_addr().unwrap()).unwrap();
    assert!(util::eventually(Duration::from_secs(10), || op.is_complete()));
    assert_eq!(
        op.cancel().unwrap_err().kind(),
        std::io::ErrorKind::NotFound
    );
    let d = within_ten(op);
    assert_eq!(&d.data.0[..], b"x");
}

fn x08_recv_msg_dropped_handle_and_cancel_races_lose_no_datagram(e: &Engine) {
    let s = Socket::udp_bound(e, &util::v4()).unwrap();
    s.set_pktinfo(true).unwrap();
    let dst = s.local_addr().unwrap();
    let c = peer("127.0.0.1:0");
    // A dropped handle cancels: the next datagram goes to the next receive.
    drop(pending_recv_msg(&s, Notify::None));
    let d = recv_one(&on(&s, Via::Handle), Control::PKTINFO_SPACE, false, || {
        c.send_to(b"next", dst).unwrap();
    });
    assert_eq!(&d.data.0[..], b"next");
    // Cancels racing arrivals: each operation completes once, aborted
    // with nothing taken or with a whole datagram; every datagram is
    // received once.
    // Fewer rounds than the datagrams the socket's receive queue holds
    // (about 256 small ones by default): every aborted receive leaves its
    // datagram queued.
    let rounds = 100u32;
    let mut got = Vec::new();
    let mut aborted = 0;
    for i in 0..rounds {
        let op = s
            .recv_msg(
                vec![0u8; 8],
                Control::with_capacity(Control::PKTINFO_SPACE),
                MsgFlags::empty(),
                Notify::None,
            )
            .unwrap()
            .op();
        c.send_to(&i.to_be_bytes(), dst).unwrap();
        let _ = op.cancel();
        let d = within_ten(op);
        if d.is_aborted() {
            aborted += 1;
            assert_eq!(d.bytes, 0);
            assert!(d.data.1.is_empty(), "no control data");
        } else {
            assert!(d.error.is_none(), "{:?}", d.error);
            assert_eq!(d.bytes, 4);
            assert!(d.data.1.pktinfo().is_some());
            got.push(u32::from_be_bytes(d.data.0[..4].try_into().unwrap()));
        }
    }
    // What the aborted receives left is there for later ones.
    for _ in 0..aborted {
        let d = within_ten(
            s.recv_msg(
                vec![0u8; 8],
                Control::with_capacity(Control::PKTINFO_SPACE),
                MsgFlags::empty(),
                Notify::None,
            )
            .unwrap()
            .op(),
        );
        assert!(d.error.is_none(), "{:?}", d.error);
        got.push(u32::from_be_bytes(d.data.0[..4].try_into().unwrap()));
    }
    got.sort_unstable();
    assert_eq!(got, (0..rounds).collect::<Vec<_>>(), "every datagram once");
}

util::cases! {
    x06_pktinfo_v4_tells_which_local_address,
    x06_pktinfo_v6_tells_the_local_address,
    x06_control_too_small_is_wsaemsgsize_with_the_payload,
    x06_send_msg_chooses_the_source_address,
    x06_a_reply_leaves_from_the_address_the_request_came_to,
    x06_on_a_stream_socket_data_without_control,
    x08_recv_msg_cancel_and_close_abort_it_once,
    x08_recv_msg_dropped_handle_and_cancel_races_lose_no_datagram,
}
