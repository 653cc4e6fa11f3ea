//! `docs/SPEC.md`, section *extension functions*: `AcceptEx` with data and
//! into a caller-made socket, `ConnectEx` with data, `DisconnectEx` with
//! reuse, `TransmitFile` (x01–x05), and their cancel / close /
//! exactly-once behaviour (x08). x06 and x07 have files of their own.
use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::rc::Rc;
use std::time::Duration;

use overlapped::*;

use crate::util::{self, *};

/// Takes a result within ten seconds or fails the case.
fn done<T: OpOutput>(op: Op<T>) -> Completion<T> {
    match op.result_timeout(ten()).unwrap() {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => panic!("the operation did not complete within 10 s"),
    }
}

/// Drives `e` for about `ms` milliseconds, then says whether `op` is still
/// in flight.
fn still_pending<T: OpOutput>(e: &Engine, op: &Op<T>, ms: u64) -> bool {
    for _ in 0..ms / 10 {
        e.drive(Some(Duration::from_millis(10)));
    }
    !op.is_complete()
}

/// Whether the peer of `c` closed the connection (end-of-stream or reset),
/// within ten seconds; a read that times out says no.
fn closed(c: &mut TcpStream) -> bool {
    let mut b = [0u8; 1];
    match c.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

fn client(addr: std::net::SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(slack(10 * SEC))).unwrap();
    c
}

/// A temporary file holding `bytes`, removed when dropped.
struct TempFile(std::path::PathBuf);

impl TempFile {
    fn new(tag: &str, bytes: &[u8]) -> TempFile {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "ovl-x05-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
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

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

/// x01: the accept waits for the first data; it completes with that data
/// and both addresses, and the new socket works.
fn x01_accept_with_data_completes_with_first_data(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let op = l.accept_ex(None, vec![0u8; 64], Notify::None).unwrap().op();
    let mut c = client(addr);
    assert!(
        still_pending(e, &op, 100),
        "the accept completed before any data came"
    );
    c.write_all(b"first request").unwrap();
    let d = done(op);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.bytes, 13);
    assert_eq!(&d.data.bufs[..], b"first request");
    assert_eq!(d.data.peer_addr, Some(c.local_addr().unwrap()));
    assert_eq!(d.addr, Some(c.local_addr().unwrap()));
    assert_eq!(d.data.local_addr, Some(addr));
    let s = d.data.socket.expect("the new socket");
    s.send(b"reply".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(read_n(&mut c, 5), b"reply");
}

/// x01: a client that closes without sending completes the accept with 0
/// bytes.
fn x01_accept_with_data_zero_bytes_when_client_closes(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let st = l.accept_ex(None, vec![0u8; 64], Notify::None).unwrap();
    drop(client(l.local_addr().unwrap()));
    let d = done(st.op());
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.bytes, 0);
    assert!(d.data.bufs.is_empty());
    assert!(d.data.socket.is_some());
}

/// x01: with no room for data the accept completes on connect.
fn x01_accept_without_room_completes_on_connect(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let st = l.accept_ex(None, Vec::<u8>::new(), Notify::None).unwrap();
    let c = client(l.local_addr().unwrap());
    let d = done(st.op());
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.bytes, 0);
    assert_eq!(d.data.peer_addr, Some(c.local_addr().unwrap()));
    assert!(d.data.socket.is_some());
}

/// x01: a silent client holds one accept; the next connection completes
/// the listener's next accept meanwhile.
fn x01_silent_client_does_not_hold_up_other_accepts(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let first = l.accept_ex(None, vec![0u8; 16], Notify::None).unwrap().op();
    let second = l.accept_ex(None, vec![0u8; 16], Notify::None).unwrap().op();
    let mut silent = client(addr);
    assert!(still_pending(e, &first, 50));
    let mut talker = client(addr);
    talker.write_all(b"hello").unwrap();
    let d = done(second);
    assert_eq!(&d.data.bufs[..], b"hello");
    assert_eq!(d.data.peer_addr, Some(talker.local_addr().unwrap()));
    assert!(!first.is_complete());
    silent.write_all(b"late").unwrap();
    let d = done(first);
    assert_eq!(&d.data.bufs[..], b"late");
    assert_eq!(d.data.peer_addr, Some(silent.local_addr().unwrap()));
}

/// x01 through an event, a completion routine and a port packet.
fn x01_accept_with_data_every_notification(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    // Event.
    let ev = Event::new();
    let op = l.accept_ex(None, vec![0u8; 8], &ev).unwrap().op();
    client(addr).write_all(b"ev").unwrap();
    assert!(ev.wait(ten()));
    assert_eq!(&done(op).data.bufs[..], b"ev");
    // Routine.
    let got = Rc::new(Cell::new(0usize));
    let g = got.clone();
    l.accept_ex(
        None,
        vec![0u8; 8],
        Notify::routine(move |d: Completion<Accepted<Vec<u8>>>| {
            assert_eq!(&d.data.bufs[..], b"rt");
            assert!(d.data.socket.is_some());
            g.set(g.get() + 1);
        }),
    )
    .unwrap();
    client(addr).write_all(b"rt").unwrap();
    let deadline = std::time::Instant::now() + slack(10 * SEC);
    while got.get() == 0 && std::time::Instant::now() < deadline {
        sleep_ex(Some(Duration::from_millis(50)), true);
    }
    assert_eq!(got.get(), 1);
    // Port.
    let port = CompletionPort::new(1);
    port.associate(&l, 7).unwrap();
    l.accept_ex(None, vec![0u8; 8], Notify::Port(9)).unwrap();
    client(addr).write_all(b"pt").unwrap();
    let p = port.get_queued(ten()).unwrap().expect("a packet");
    assert_eq!((p.key, p.tag, p.bytes), (7, 9, 2));
    let d = p.into_completion::<Accepted<Vec<u8>>>().unwrap();
    assert_eq!(&d.data.bufs[..], b"pt");
}

/// x02: the connection goes into a caller-made socket, which is reserved
/// while the accept is pending.
fn x02_accept_into_caller_socket(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let target = Socket::tcp_for(e, &addr).unwrap();
    let op = l
        .accept_ex(Some(&target), vec![0u8; 16], Notify::None)
        .unwrap()
        .op();
    let err = target.connect(addr, Notify::None).unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput, "{:?}", err.error);
    assert_eq!(wsa_error(&err.error), Some(10022));
    let second = l.accept_ex(Some(&target), Vec::<u8>::new(), Notify::None);
    assert_eq!(
        second.map(|_| ()).unwrap_err().error.kind(),
        ErrorKind::InvalidInput
    );
    let mut c = client(addr);
    c.write_all(b"into").unwrap();
    let d = done(op);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(&d.data.bufs[..], b"into");
    assert!(
        d.data.socket.is_none(),
        "the connection went into the target"
    );
    assert_eq!(target.peer_addr().unwrap(), c.local_addr().unwrap());
    target
        .send(b"back".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(read_n(&mut c, 4), b"back");
    c.write_all(b"more").unwrap();
    let r = target
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&r.data[..], b"more");
}

/// x02: an accept that ends without a connection frees its socket.
fn x02_cancelled_accept_releases_the_socket(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let target = Socket::tcp_for(e, &l.local_addr().unwrap()).unwrap();
    let op = l
        .accept_ex(Some(&target), vec![0u8; 16], Notify::None)
        .unwrap()
        .op();
    op.cancel().unwrap();
    let d = done(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    let other = TcpListener::bind(v4()).unwrap();
    target.connect_wait(other.local_addr().unwrap()).unwrap();
}

/// x02: closing the reserved socket ends its accept at once, aborted;
/// an accept into a socket that is cancelled after it took its
/// connection closes that connection and leaves the socket free.
fn x02_close_or_cancel_of_a_reserved_socket(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let target = Socket::tcp_for(e, &addr).unwrap();
    let op = l
        .accept_ex(Some(&target), vec![0u8; 16], Notify::None)
        .unwrap()
        .op();
    target.close().unwrap();
    let d = done(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    // The listener goes on: the next accept takes the next client.
    let next = l
        .accept_ex(None, Vec::<u8>::new(), Notify::None)
        .unwrap()
        .op();
    let c = client(addr);
    assert_eq!(done(next).data.peer_addr, Some(c.local_addr().unwrap()));
    // Cancelled while waiting for its first data: the connection closes.
    let target = Socket::tcp_for(e, &addr).unwrap();
    let op = l
        .accept_ex(Some(&target), vec![0u8; 16], Notify::None)
        .unwrap()
        .op();
    let mut silent = client(addr);
    assert!(still_pending(e, &op, 50));
    op.cancel().unwrap();
    assert!(done(op).is_aborted());
    assert!(closed(&mut silent), "the connection was closed");
    assert!(target.peer_addr().is_err(), "the socket is not connected");
    let other = TcpListener::bind(v4()).unwrap();
    target.connect_wait(other.local_addr().unwrap()).unwrap();
}

/// x03: the data of a connect goes out after the connection; the
/// completion counts it.
fn x03_connect_with_data(e: &Engine) {
    let l = TcpListener::bind(v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let s = Socket::tcp_for(e, &addr).unwrap();
    let data = pattern(100_000);
    let st = s.connect_with(addr, data.clone(), Notify::None).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    peer.set_read_timeout(Some(slack(10 * SEC))).unwrap();
    let reader = std::thread::spawn(move || read_n(&mut peer, 100_000));
    let d = done(st.op());
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.bytes, 100_000);
    assert_eq!(reader.join().unwrap(), data);
    // Connected: the socket sends and a second connect is refused.
    let again = s.connect(addr, Notify::None).unwrap_err();
    assert_eq!(again.error.raw_os_error(), Some(libc::EISCONN));
}

/// x04: a half close as an operation: pending, then success with 0 bytes;
/// sends fail with "shutdown" afterwards, the peer reads end-of-stream, and
/// receiving still works.
fn x04_disconnect_half_closes_as_an_operation(e: &Engine) {
    let (s, mut peer) = std_pair(e);
    let st = s.disconnect(false, Notify::None).unwrap();
    assert!(st.is_pending(), "a disconnect starts pending");
    let d = done(st.op());
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.bytes, 0);
    let err = s
        .send(b"x".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.raw_os_error(), Some(libc::ESHUTDOWN));
    let mut end = [0u8; 1];
    assert_eq!(
        peer.read(&mut end).unwrap(),
        0,
        "the peer reads end-of-stream"
    );
    peer.write_all(b"still").unwrap();
    let r = s
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&r.data[..], b"still");
}

/// x04: the sends started before a disconnect go out before it.
fn x04_disconnect_after_pending_sends(e: &Engine) {
    let (s, mut peer) = std_pair(e);
    let data = pattern(4 << 20);
    let send = s
        .send(data.clone(), MsgFlags::empty(), Notify::None)
        .unwrap();
    let disc = s.disconnect(false, Notify::None).unwrap();
    let reader = std::thread::spawn(move || {
        let mut got = Vec::new();
        peer.read_to_end(&mut got).unwrap();
        got
    });
    assert_eq!(done(send.op()).bytes, 4 << 20);
    assert!(done(disc.op()).error.is_none());
    assert_eq!(reader.join().unwrap(), data);
}

/// x04: not connected → *not connected* at the call.
fn x04_disconnect_on_unconnected_socket_is_not_connected(e: &Engine) {
    let s = Socket::tcp_for(e, &v4()).unwrap();
    let err = s.disconnect(false, Notify::None).unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::NotConnected, "{:?}", err.error);
    let u = Socket::udp_bound(e, &v4()).unwrap();
    let err = u.disconnect(false, Notify::None).unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::NotConnected, "{:?}", err.error);
}

/// x04: with reuse the same handle takes a new connect, and then (reused
/// again) a new accept.
fn x04_disconnect_with_reuse_takes_connect_and_accept(e: &Engine) {
    let (s, mut peer) = std_pair(e);
    let fd = s.raw_fd();
    let pending = s
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    let d = done(s.disconnect(true, Notify::None).unwrap().op());
    assert!(d.error.is_none(), "{:?}", d.error);
    // The old connection is gone: its receive ended aborted, the peer reads
    // its end.
    assert!(done(pending).is_aborted());
    assert!(closed(&mut peer), "the old connection closed");
    assert_eq!(s.raw_fd(), fd, "the handle keeps its descriptor");
    // A new connect.
    let other = TcpListener::bind(v4()).unwrap();
    s.connect_wait(other.local_addr().unwrap()).unwrap();
    let (mut p2, _) = other.accept().unwrap();
    s.send(b"two".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    p2.set_read_timeout(Some(slack(10 * SEC))).unwrap();
    assert_eq!(read_n(&mut p2, 3), b"two");
    // Reused again, into an accept.
    assert!(
        done(s.disconnect(true, Notify::None).unwrap().op())
            .error
            .is_none()
    );
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let op = l.accept_ex(Some(&s), vec![0u8; 8], Notify::None).unwrap();
    let mut c = client(l.local_addr().unwrap());
    c.write_all(b"three").unwrap();
    let d = done(op.op());
    assert_eq!(&d.data.bufs[..], b"three");
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
}

/// x05: head, file region and tail as one operation.
fn x05_transmit_file_head_region_tail(e: &Engine) {
    let content = pattern(3 << 20);
    let f = TempFile::new("region", &content);
    let (s, mut peer) = std_pair(e);
    let file = f.open();
    let head = b"HEAD:".to_vec();
    let tail = b":TAIL".to_vec();
    let (off, len) = (1000usize, (2 << 20) + 17);
    let st = s
        .transmit_file(&file, off as u64, len as u64, head, tail, Notify::None)
        .unwrap();
    drop(file);
    let total = 5 + len + 5;
    let reader = std::thread::spawn(move || read_n(&mut peer, total));
    let d = done(st.op());
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(d.bytes, total);
    let [h, t] = d.data;
    assert_eq!((&h[..], &t[..]), (&b"HEAD:"[..], &b":TAIL"[..]));
    let got = reader.join().unwrap();
    assert_eq!(&got[..5], b"HEAD:");
    assert!(got[5..5 + len] == content[off..off + len], "the region");
    assert_eq!(&got[5 + len..], b":TAIL");
    // Length 0: to the end of the file, without head and tail.
    let (s, mut peer) = std_pair(e);
    let st = s
        .transmit_file(&f.open(), 3 << 19, 0, Vec::new(), Vec::new(), Notify::None)
        .unwrap();
    let rest = (3 << 20) - (3 << 19);
    let reader = std::thread::spawn(move || read_n(&mut peer, rest));
    assert_eq!(done(st.op()).bytes, rest);
    assert!(reader.join().unwrap() == content[3 << 19..]);
}

/// x05: bad input fails at the call.
fn x05_transmit_file_bad_input(e: &Engine) {
    let f = TempFile::new("bad", &pattern(100));
    let (s, _peer) = std_pair(e);
    let past = s
        .transmit_file(&f.open(), 101, 0, Vec::new(), Vec::new(), Notify::None)
        .unwrap_err();
    assert_eq!(past.error.kind(), ErrorKind::InvalidInput);
    assert_eq!(wsa_error(&past.error), Some(10022));
    let long = s
        .transmit_file(&f.open(), 50, 51, b"h".to_vec(), Vec::new(), Notify::None)
        .unwrap_err();
    assert_eq!(long.error.kind(), ErrorKind::InvalidInput);
    assert_eq!(&long.bufs[0][..], b"h", "the buffers come back");
    let unconnected = Socket::tcp_for(e, &v4()).unwrap();
    let err = unconnected
        .transmit_file(&f.open(), 0, 0, Vec::new(), Vec::new(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::NotConnected, "{:?}", err.error);
    let udp = Socket::udp_bound(e, &v4()).unwrap();
    let err = udp
        .transmit_file(&f.open(), 0, 0, Vec::new(), Vec::new(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::NotConnected, "{:?}", err.error);
    let dir = std::fs::File::open(std::env::temp_dir()).unwrap();
    let err = s
        .transmit_file(&dir, 0, 0, Vec::new(), Vec::new(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
}

/// x08: each extension operation, pending, is cancelled and aborted by
/// close like a receive: it completes once, aborted, with its buffers; an
/// accept that had taken its connection closes that connection.
fn x08_extension_ops_cancel_and_close(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    // An accept waiting for a connection, cancelled.
    let op = l.accept_ex(None, vec![0u8; 32], Notify::None).unwrap().op();
    op.cancel().unwrap();
    let d = done(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    assert_eq!(d.data.bufs.capacity(), 32, "the buffer comes back");
    assert!(d.data.socket.is_none());
    // An accept waiting for its first data, cancelled: the connection it
    // took is closed.
    let op = l.accept_ex(None, vec![0u8; 32], Notify::None).unwrap().op();
    let mut c = client(addr);
    assert!(still_pending(e, &op, 50));
    op.cancel().unwrap();
    // Closed when the accept ends, before its result is taken.
    for _ in 0..5 {
        e.drive(Some(Duration::from_millis(10)));
    }
    assert!(closed(&mut c), "the connection was closed");
    let d = done(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    assert!(d.data.socket.is_none());
    // A transmit that fills the socket, ended by close of its socket.
    let f = TempFile::new("x08", &pattern(16 << 20));
    let (s, peer) = std_pair(e);
    let st = s
        .transmit_file(&f.open(), 0, 0, b"h".to_vec(), Vec::new(), Notify::None)
        .unwrap();
    let op = st.op();
    assert!(still_pending(e, &op, 50), "16 MiB fit the socket");
    s.close().unwrap();
    let d = done(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    assert!(d.bytes > 0 && d.bytes < (16 << 20) + 1, "{}", d.bytes);
    assert_eq!(&d.data[0][..], b"h");
    drop(peer);
    // Every op of the listener, aborted by its close, each once.
    let count = Rc::new(Cell::new(0u32));
    for _ in 0..3 {
        let k = count.clone();
        l.accept_ex(
            None,
            vec![0u8; 8],
            Notify::routine(move |d: Completion<Accepted<Vec<u8>>>| {
                assert!(d.is_aborted(), "{:?}", d.error);
                k.set(k.get() + 1);
            }),
        )
        .unwrap();
    }
    let _waiting = client(addr);
    for _ in 0..5 {
        e.drive(Some(Duration::from_millis(10)));
    }
    l.close().unwrap();
    for _ in 0..20 {
        sleep_ex(Some(Duration::from_millis(10)), true);
    }
    assert_eq!(count.get(), 3, "every accept completed once");
    let _ = Shutdown::Both;
}

/// x08: a disconnect races a close; a connect with data, cancelled while
/// its data waits for room, reports what it sent: each completes once.
fn x08_disconnect_and_connect_complete_once(e: &Engine) {
    for _ in 0..50 {
        let (s, _peer) = std_pair(e);
        let n = Rc::new(Cell::new(0u32));
        let k = n.clone();
        s.disconnect(
            false,
            Notify::routine(move |_d: Completion<()>| k.set(k.get() + 1)),
        )
        .unwrap();
        s.close().unwrap();
        for _ in 0..100 {
            if n.get() > 0 {
                break;
            }
            sleep_ex(Some(Duration::from_millis(5)), true);
        }
        sleep_ex(Some(Duration::from_millis(1)), true);
        assert_eq!(n.get(), 1);
    }
    let l = TcpListener::bind(v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let s = Socket::tcp_for(e, &addr).unwrap();
    let op = s
        .connect_with(addr, pattern(32 << 20), Notify::None)
        .unwrap()
        .op();
    let (_peer, _) = l.accept().unwrap();
    assert!(still_pending(e, &op, 50), "32 MiB fit the socket");
    op.cancel().unwrap();
    let d = done(op);
    assert!(d.is_aborted(), "{:?}", d.error);
    assert!(d.bytes > 0, "the bytes sent before the cancel");
    assert_eq!(d.data.len(), 32 << 20);
}

util::cases! {
    x01_accept_with_data_completes_with_first_data,
    x01_accept_with_data_zero_bytes_when_client_closes,
    x01_accept_without_room_completes_on_connect,
    x01_silent_client_does_not_hold_up_other_accepts,
    x01_accept_with_data_every_notification,
    x02_accept_into_caller_socket,
    x02_cancelled_accept_releases_the_socket,
    x02_close_or_cancel_of_a_reserved_socket,
    x03_connect_with_data,
    x04_disconnect_half_closes_as_an_operation,
    x04_disconnect_after_pending_sends,
    x04_disconnect_on_unconnected_socket_is_not_connected,
    x04_disconnect_with_reuse_takes_connect_and_accept,
    x05_transmit_file_head_region_tail,
    x05_transmit_file_bad_input,
    x08_extension_ops_cancel_and_close,
    x08_disconnect_and_connect_complete_once,
}
