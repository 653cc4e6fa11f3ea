//! Fault tests: tiny rings that force a full submission queue and a
//! completion-queue overflow, close with many pending operations, accepts
//! through a port, cancel-versus-complete races, a peer reset in the middle
//! of a send and queued receives, and the extension operations (`accept_ex`,
//! `transmit_file`, `disconnect` with reuse) through the same tiny rings
//! (SPEC x08).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use overlapped::{Engine, Event, MsgFlags, Notify, Op, Polled, Socket, WaitMode, wait_for_events};

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

/// An engine whose ring has 2 entries (completion queue of 4) on io_uring;
/// a default engine on poll, which has no ring.
fn tiny_engine(kind: Kind) -> Engine {
    match kind {
        Kind::Uring => util::builder(kind).ring_entries(2).build().unwrap(),
        _ => util::engine(kind),
    }
}

/// Drives `e` until `done` says so or `limit` passes; false on the limit.
fn drive_until(e: &Engine, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        e.drive(Some(Duration::from_millis(5)));
    }
}

/// Takes a result within `slack(20 s)` or fails the case.
fn take<T: overlapped::OpOutput>(op: Op<T>, what: &str) -> overlapped::Completion<T> {
    match op.result_timeout(Some(slack(20 * SEC))).unwrap() {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => panic!("{what} lost"),
    }
}

/// A temporary file holding `bytes`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!(
            "ovl-faults-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, bytes).unwrap();
        TempFile(path)
    }
    fn open(&self) -> std::fs::File {
        std::fs::File::open(&self.0).unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn pattern(seed: usize, n: usize) -> Vec<u8> {
    (0..n).map(|i| ((i * 7 + seed * 13) % 251) as u8).collect()
}

/// A std peer's reads to the end of the stream, slowly (`pause` after each
/// read of at most `chunk` bytes), on a thread of its own.
fn slow_reader(
    mut peer: TcpStream,
    chunk: usize,
    pause: Duration,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut b = vec![0u8; chunk];
        loop {
            match peer.read(&mut b) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) => panic!("peer read after {} bytes: {e}", got.len()),
            }
            std::thread::sleep(pause);
        }
    })
}

/// 120 `accept_ex`s pending at once on a ring of 2 entries (every third
/// into a caller-made socket, every third without room for data, the rest
/// with room) and 120 clients, every fifth silent at first: every accept
/// completes exactly once, with its own client (no client twice) and that
/// client's first data; a silent client holds its accept without holding up
/// the others; late data completes them; the accepts still pending are
/// then cancelled or aborted by the listener's close, each with its buffer
/// back, and the connections they took are closed; nothing stays in the op
/// table.
fn x08_accept_ex_many_through_a_tiny_ring(kind: Kind) {
    use overlapped::Accepted;
    const N: usize = 120;
    let e = tiny_engine(kind);
    let l = Socket::tcp_listener(&e, &util::v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let into = |i: usize| i % 3 == 0;
    let room = |i: usize| if i % 3 == 1 { 0 } else { 32 };
    let targets: Vec<Option<Socket>> = (0..N)
        .map(|i| into(i).then(|| Socket::tcp_for(&e, &addr).unwrap()))
        .collect();
    let mut ops: Vec<Option<Op<Accepted<Vec<u8>>>>> = (0..N)
        .map(|i| {
            let st = l
                .accept_ex(targets[i].as_ref(), vec![0u8; room(i)], Notify::None)
                .unwrap();
            assert!(st.is_pending(), "accept {i} completed with no client");
            Some(st.op())
        })
        .collect();
    let silent = |k: usize| k % 5 == 4;
    let first = |k: usize| format!("client {k:04}").into_bytes();
    let late = |k: usize| format!("late {k:04}").into_bytes();
    let mut clients: Vec<TcpStream> = (0..N)
        .map(|k| {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(slack(10 * SEC))).unwrap();
            if !silent(k) {
                c.write_all(&first(k)).unwrap();
            }
            c
        })
        .collect();
    let by_addr: HashMap<SocketAddr, usize> = clients
        .iter()
        .enumerate()
        .map(|(k, c)| (c.local_addr().unwrap(), k))
        .collect();
    // Per client: accepted by which accept, with which socket.
    let mut seen: Vec<Option<usize>> = vec![None; N];
    let mut socks: Vec<Option<Socket>> = (0..N).map(|_| None).collect();
    // Takes the accepts that completed; checks each against its client.
    let reap = |ops: &mut Vec<Option<Op<Accepted<Vec<u8>>>>>,
                seen: &mut Vec<Option<usize>>,
                socks: &mut Vec<Option<Socket>>,
                clients: &mut Vec<TcpStream>| {
        for (i, slot) in ops.iter_mut().enumerate() {
            if !slot.as_ref().is_some_and(|op| op.is_complete()) {
                continue;
            }
            let c = match slot.take().unwrap().result(false).unwrap() {
                Polled::Complete(c) => c,
                Polled::Incomplete(_) => panic!("accept {i}: complete, then not"),
            };
            assert!(c.error.is_none(), "accept {i}: {:?}", c.error);
            let peer = c.data.peer_addr.expect("the client's address");
            assert_eq!(c.addr, Some(peer));
            assert_eq!(c.data.local_addr, Some(addr));
            let k = *by_addr.get(&peer).expect("one of the clients");
            assert_eq!(seen[k], None, "client {k} accepted twice");
            seen[k] = Some(i);
            if room(i) == 0 {
                assert_eq!((c.bytes, c.data.bufs.len()), (0, 0));
            } else {
                let want = if silent(k) { late(k) } else { first(k) };
                assert_eq!(c.bytes, want.len(), "accept {i}, client {k}");
                assert_eq!(c.data.bufs, want, "accept {i}, client {k}");
            }
            let s = match &targets[i] {
                Some(t) => {
                    assert!(c.data.socket.is_none(), "accept {i} went into its socket");
                    assert_eq!(t.peer_addr().unwrap(), peer);
                    t.try_clone().unwrap()
                }
                None => c.data.socket.expect("the accepted socket"),
            };
            // The socket is the client's connection: a word each way.
            let word = format!("to {k:04}").into_bytes();
            s.send(word.clone(), MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(util::read_n(&mut clients[k], word.len()), word);
            socks[k] = Some(s);
        }
    };
    // Every talking client is accepted, with its data.
    let talkers_done = |seen: &Vec<Option<usize>>| (0..N).all(|k| silent(k) || seen[k].is_some());
    let deadline = Instant::now() + slack(20 * SEC);
    while !talkers_done(&seen) {
        assert!(Instant::now() < deadline, "accepts lost: {seen:?}");
        e.drive(Some(Duration::from_millis(5)));
        reap(&mut ops, &mut seen, &mut socks, &mut clients);
    }
    // What the accepts without room left in the talkers' sockets is there.
    for k in (0..N).filter(|&k| !silent(k)) {
        if room(seen[k].unwrap()) == 0 {
            let d = socks[k]
                .as_ref()
                .unwrap()
                .recv(vec![0u8; 32], MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(d.data, first(k), "client {k}'s first data");
        }
    }
    // Half of the silent clients speak: their accepts complete.
    for k in (0..N).filter(|&k| silent(k) && k % 2 == 0) {
        clients[k].write_all(&late(k)).unwrap();
    }
    let late_done =
        |seen: &Vec<Option<usize>>| (0..N).all(|k| !silent(k) || k % 2 == 1 || seen[k].is_some());
    while !late_done(&seen) {
        assert!(Instant::now() < deadline, "late accepts lost: {seen:?}");
        e.drive(Some(Duration::from_millis(5)));
        reap(&mut ops, &mut seen, &mut socks, &mut clients);
    }
    for k in (0..N).filter(|&k| silent(k) && k % 2 == 0) {
        if room(seen[k].unwrap()) == 0 {
            let d = socks[k]
                .as_ref()
                .unwrap()
                .recv(vec![0u8; 32], MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(d.data, late(k), "client {k}'s late data");
        }
    }
    // The rest: one accept per still silent client, each has taken its
    // connection or will; half are cancelled, the listener's close aborts
    // the others.
    for _ in 0..10 {
        e.drive(Some(Duration::from_millis(5)));
    }
    reap(&mut ops, &mut seen, &mut socks, &mut clients);
    let left: Vec<usize> = (0..N).filter(|&i| ops[i].is_some()).collect();
    let unseen = (0..N).filter(|&k| seen[k].is_none()).count();
    assert_eq!(left.len(), unseen, "one accept per client");
    assert!(
        !left.is_empty(),
        "some silent clients wait in accepts with room"
    );
    for &i in left.iter().step_by(2) {
        ops[i].as_ref().unwrap().cancel().unwrap();
    }
    l.close().unwrap();
    for i in left {
        let c = take(ops[i].take().unwrap(), "an aborted accept");
        assert!(c.is_aborted(), "accept {i}: {:?}", c.error);
        assert_eq!(c.bytes, 0);
        assert!(c.data.socket.is_none());
        assert_eq!(c.data.bufs.capacity(), room(i), "accept {i}'s buffer");
        if let Some(t) = &targets[i] {
            assert!(t.peer_addr().is_err(), "accept {i}'s socket is free");
        }
    }
    // The clients nobody accepted see their connection closed.
    for k in (0..N).filter(|&k| seen[k].is_none()) {
        assert!(silent(k) && k % 2 == 1);
        let mut b = [0u8; 1];
        assert!(
            matches!(clients[k].read(&mut b), Ok(0) | Err(_)),
            "client {k}'s connection is closed"
        );
    }
    assert!(ops.iter().all(Option::is_none));
    drop(socks);
    drop(targets);
    assert!(
        drive_until(&e, slack(5 * SEC), || e.ops_in_table() == 0),
        "operations left in the table: {}",
        e.ops_in_table()
    );
}

/// Four `transmit_file`s of about 3 MiB (head, region, tail) through a
/// ring of 2 entries to peers that read slowly through small socket
/// buffers, a second transmit queued behind the first on one socket: the
/// two that run to the end deliver exactly their bytes, in order; one
/// cancelled and one ended by its socket's close complete aborted with the
/// bytes they sent, and the peer gets exactly those bytes; every buffer
/// comes back; nothing stays in the op table.
fn x08_transmit_file_through_a_tiny_ring_to_slow_readers(kind: Kind) {
    const LEN: usize = 3 << 20;
    let e = tiny_engine(kind);
    let content = pattern(0, LEN);
    let f = TempFile::new("transmit", &content);
    let small = 64 * 1024;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket2::SockRef::from(&l)
        .set_recv_buffer_size(small)
        .unwrap();
    let addr = l.local_addr().unwrap();
    struct Run {
        sock: Socket,
        ops: Vec<Op<[Vec<u8>; 2]>>,
        /// Per transmit: head, region, tail as sent.
        want: Vec<Vec<u8>>,
        reader: std::thread::JoinHandle<Vec<u8>>,
    }
    let runs: Vec<Run> = (0..4)
        .map(|i| {
            let sock = Socket::tcp_for(&e, &addr).unwrap();
            sock.with_socket2(|s| s.set_send_buffer_size(small))
                .unwrap();
            sock.connect_wait(addr).unwrap();
            let (peer, _) = l.accept().unwrap();
            peer.set_read_timeout(Some(slack(10 * SEC))).unwrap();
            let times = if i == 0 { 2 } else { 1 };
            let (mut ops, mut want) = (Vec::new(), Vec::new());
            for t in 0..times {
                let head = format!("head {i}.{t}:").into_bytes();
                let tail = format!(":tail {i}.{t}").into_bytes();
                let (off, len) = (1000 * i + 1 + t, LEN - 1000 * i - 777 * t - 1);
                let st = sock
                    .transmit_file(
                        &f.open(),
                        off as u64,
                        len as u64,
                        head.clone(),
                        tail.clone(),
                        Notify::None,
                    )
                    .unwrap();
                assert!(st.is_pending(), "3 MiB fit 64 KiB socket buffers");
                ops.push(st.op());
                want.push([head, content[off..off + len].to_vec(), tail].concat());
            }
            let reader = slow_reader(peer, 16 * 1024, Duration::from_micros(300));
            Run {
                sock,
                ops,
                want,
                reader,
            }
        })
        .collect();
    // Let them run a little, then cancel the third and close the fourth.
    for _ in 0..10 {
        e.drive(Some(Duration::from_millis(5)));
    }
    runs[2].ops[0]
        .cancel()
        .expect("the transmit is still pending");
    runs[3].sock.close().unwrap();
    for (i, run) in runs.into_iter().enumerate() {
        let mut expect = Vec::new();
        for (t, (op, want)) in run.ops.into_iter().zip(&run.want).enumerate() {
            let c = take(op, "a transmit");
            let head_len = format!("head {i}.{t}:").len();
            let [h, tl] = &c.data;
            assert_eq!(
                (&h[..head_len], &tl[..]),
                (&want[..head_len], &want[want.len() - tl.len()..]),
                "transmit {i}.{t}: its buffers come back"
            );
            if i < 2 {
                assert!(c.error.is_none(), "transmit {i}.{t}: {:?}", c.error);
                assert_eq!(c.bytes, want.len(), "transmit {i}.{t}");
            } else {
                assert!(c.is_aborted(), "transmit {i}.{t}: {:?}", c.error);
                assert!(c.bytes < want.len(), "transmit {i}.{t}: {}", c.bytes);
            }
            expect.extend_from_slice(&want[..c.bytes]);
        }
        if i < 3 {
            run.sock.shutdown(std::net::Shutdown::Write).unwrap();
        }
        let got = run.reader.join().unwrap();
        assert_eq!(got.len(), expect.len(), "transmit {i}: bytes delivered");
        assert!(got == expect, "transmit {i}: the bytes delivered differ");
    }
    assert!(
        drive_until(&e, slack(5 * SEC), || e.ops_in_table() == 0),
        "operations left in the table: {}",
        e.ops_in_table()
    );
}

/// 40 rounds of one socket handle through a ring of 2 entries: connected
/// (by `connect`, or by an `accept_ex` into it), a 256 KiB send, a pending
/// receive and `disconnect(reuse)` behind the send; the peer reads the
/// send's bytes, then the end; the receive ends aborted, the disconnect
/// succeeds once, the handle keeps its descriptor. Every fourth round the
/// disconnect is first cancelled while the send waits for a reader (it
/// completes aborted, the connection stays); the last one is ended by the
/// socket's close. Nothing stays in the op table.
fn x08_disconnect_reuse_cycles_through_a_tiny_ring(kind: Kind) {
    let e = tiny_engine(kind);
    let l = Socket::tcp_listener(&e, &util::v4()).unwrap();
    let l_addr = l.local_addr().unwrap();
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let std_addr = std_l.local_addr().unwrap();
    let s = Socket::tcp_for(&e, &std_addr).unwrap();
    let fd = s.raw_fd();
    for round in 0..41usize {
        let peer = if round % 2 == 0 {
            s.connect_wait(std_addr).unwrap();
            std_l.accept().unwrap().0
        } else {
            let op = l.accept_ex(Some(&s), vec![0u8; 16], Notify::None).unwrap();
            let mut c = TcpStream::connect(l_addr).unwrap();
            let hello = format!("round {round}").into_bytes();
            c.write_all(&hello).unwrap();
            let d = take(op.op(), "an accept into the socket");
            assert!(d.error.is_none(), "round {round}: {:?}", d.error);
            assert_eq!(d.data.bufs, hello);
            assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
            c
        };
        peer.set_read_timeout(Some(slack(10 * SEC))).unwrap();
        assert_eq!(
            s.raw_fd(),
            fd,
            "round {round}: the handle keeps its descriptor"
        );
        // Small buffers (a reused socket is a fresh one each round): the
        // send waits for the reader.
        s.with_socket2(|s| s.set_send_buffer_size(32 * 1024))
            .unwrap();
        socket2::SockRef::from(&peer)
            .set_recv_buffer_size(32 * 1024)
            .unwrap();
        let data = pattern(round, 256 * 1024);
        let send = s
            .send(data.clone(), MsgFlags::empty(), Notify::None)
            .unwrap();
        let recv = s
            .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op();
        if round == 40 {
            // Ended by the close of its socket.
            let ev = Event::new();
            let disc = s.disconnect(true, &ev).unwrap().op();
            s.close().unwrap();
            assert!(ev.wait(Some(slack(10 * SEC))));
            let d = take(disc, "a disconnect");
            assert!(d.is_aborted(), "{:?}", d.error);
            assert!(take(recv, "a receive").is_aborted());
            let d = send.wait().unwrap();
            assert_eq!(d.data.len(), data.len());
            break;
        }
        if round % 4 == 3 {
            // Cancelled while the send ahead of it waits for the reader.
            let disc = s.disconnect(true, Notify::None).unwrap();
            assert!(disc.is_pending());
            let disc = disc.op();
            disc.cancel().unwrap();
            let d = take(disc, "a cancelled disconnect");
            assert!(d.is_aborted(), "round {round}: {:?}", d.error);
            assert!(s.peer_addr().is_ok(), "round {round}: still connected");
        }
        let ev = Event::new();
        let disc = s.disconnect(true, &ev).unwrap();
        assert!(disc.is_pending(), "a disconnect starts pending");
        // The peer reads the send's bytes and the end of the stream, and
        // closes its end at once: its close races the reuse, and the
        // receive of the old connection still ends aborted (an end of
        // stream or a reset of the old connection teaches the fresh socket
        // nothing: the next round's connection works).
        let want = data.len();
        let reader = std::thread::spawn(move || {
            let mut peer = peer;
            let got = util::read_n(&mut peer, want);
            let mut b = [0u8; 1];
            let end = peer.read(&mut b);
            (got, end.ok())
        });
        let d = take(send.op(), "a send");
        assert!(d.error.is_none(), "round {round}: {:?}", d.error);
        assert_eq!(d.bytes, data.len());
        assert!(ev.wait(Some(slack(10 * SEC))));
        let d = take(disc.op(), "a disconnect");
        assert!(d.error.is_none(), "round {round}: {:?}", d.error);
        assert_eq!(d.bytes, 0);
        let r = take(recv, "a receive");
        assert!(r.is_aborted(), "round {round}: {:?}", r.error);
        assert_eq!((r.bytes, r.data.capacity()), (0, 8));
        let (got, end) = reader.join().unwrap();
        assert!(got == data, "round {round}: the bytes");
        assert_eq!(
            end,
            Some(0),
            "round {round}: the peer read the end of the stream"
        );
        assert!(s.peer_addr().is_err(), "round {round}: not connected");
    }
    drop(s);
    assert!(
        drive_until(&e, slack(5 * SEC), || e.ops_in_table() == 0),
        "operations left in the table: {}",
        e.ops_in_table()
    );
}

util::cases! {
    tiny_ring_full_sq_and_cq_overflow_lose_nothing,
    close_with_1000_pending_ops_aborts_all,
    accept_through_a_port,
    cancel_races_100000,
    peer_reset_mid_send_and_receives,
    recv_msg_in_a_tiny_ring_loses_nothing_and_close_aborts_all,
    x08_accept_ex_many_through_a_tiny_ring,
    x08_transmit_file_through_a_tiny_ring_to_slow_readers,
    x08_disconnect_reuse_cycles_through_a_tiny_ring,
}
