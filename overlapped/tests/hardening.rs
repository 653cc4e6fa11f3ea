//! The engine's hardening cases: defects a close reading found that no
//! conformance case caught, each written so that it failed on the code
//! before its fix (the commit that fixed it says how it failed).
//!
//! * A cancel, close or drop that reaches an operation whose readiness poll
//!   already fired (its completion not yet reaped) still ends it: on
//!   io_uring the kernel's cancel then finds nothing, and the engine must
//!   not park the operation again.
//! * Rings of one and two entries with hundreds of operations completing
//!   together while other threads start more: a full submission queue and a
//!   completion-queue overflow met inside a push never deadlock.

use std::io::Write;
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use overlapped::{Engine, MsgFlags, Notify, Polled, Socket};

#[path = "util/mod.rs"]
mod util;

use util::{Kind, MS, SEC, slack, std_pair};

/// The peer sends one urgent byte, alone.
fn send_urgent(peer: &TcpStream, byte: u8) {
    // SAFETY: a valid connected socket and a one-byte buffer.
    let n = unsafe {
        libc::send(
            peer.as_raw_fd(),
            (&raw const byte).cast(),
            1,
            libc::MSG_OOB | libc::MSG_NOSIGNAL,
        )
    };
    assert_eq!(n, 1, "send(MSG_OOB): {}", std::io::Error::last_os_error());
}

/// A socket whose normal receives wait as readiness polls on io_uring: it
/// took one urgent byte with an `OOB` receive already.
fn urgent_user(e: &Engine) -> (Socket, TcpStream) {
    let (s, peer) = std_pair(e);
    send_urgent(&peer, b'!');
    let c = s
        .recv(vec![0u8; 1], MsgFlags::OOB, Notify::None)
        .unwrap()
        .op()
        .result_timeout(Some(slack(5 * SEC)))
        .unwrap();
    let Polled::Complete(c) = c else {
        panic!("the first urgent byte never came")
    };
    assert_eq!(&c.data[..], b"!");
    (s, peer)
}

/// How the operation is given up.
#[derive(Clone, Copy, Debug)]
enum GiveUp {
    Cancel,
    Close,
    Drop,
}

/// A pending normal receive on a socket that uses urgent data; a lone
/// urgent byte fires its readiness poll; before anyone reaps that, the
/// receive is given up. It must end aborted (cancel, close) or leave the
/// engine (drop), never stay parked.
fn receive_given_up_after_its_poll_fired(e: &Engine, how: GiveUp) {
    let (s, peer) = urgent_user(e);
    let op = s
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(op.is_pending());
    let op = op.op();
    send_urgent(&peer, b'?');
    // The poll fires in the kernel; nobody drives the engine meanwhile.
    std::thread::sleep(5 * MS);
    give_up(e, &s, op, how, "receive");
    drop(peer);
}

/// Gives up `op` (a pending receive on `s`) as `how` says, and checks that
/// it ends: aborted (cancel, close), or gone from the engine (drop).
fn give_up(e: &Engine, s: &Socket, op: overlapped::Op<Vec<u8>>, how: GiveUp, what: &str) {
    match how {
        GiveUp::Cancel => op.cancel().unwrap(),
        GiveUp::Close => s.close().unwrap(),
        GiveUp::Drop => {
            drop(op);
            let left = util::eventually(slack(3 * SEC), || {
                e.drive(Some(10 * MS));
                e.ops_in_table() == 0
            });
            assert!(left, "a dropped {what} stayed in the engine");
            return;
        }
    }
    match op.result_timeout(Some(slack(3 * SEC))).unwrap() {
        Polled::Complete(c) => assert!(c.is_aborted(), "{how:?}: {:?}", c.error),
        Polled::Incomplete(_) => panic!("{how:?}: the {what} is still pending"),
    }
    assert_eq!(e.ops_in_table(), 0);
}

fn watching(kind: Kind) -> Engine {
    util::builder(kind).watch_urgent(true).build().unwrap()
}

fn cancel_reaches_a_receive_whose_poll_fired(e: &Engine) {
    receive_given_up_after_its_poll_fired(e, GiveUp::Cancel);
}

fn close_reaches_a_receive_whose_poll_fired(e: &Engine) {
    receive_given_up_after_its_poll_fired(e, GiveUp::Close);
}

fn drop_reaches_a_receive_whose_poll_fired(e: &Engine) {
    receive_given_up_after_its_poll_fired(e, GiveUp::Drop);
}

/// The same on an engine that watches urgent data from the start (no `OOB`
/// receive first): every normal receive waits as a readiness poll.
fn cancel_reaches_a_receive_whose_poll_fired_watch_urgent(kind: Kind) {
    let e = watching(kind);
    let (s, mut peer) = std_pair(&e);
    let op = s
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    send_urgent(&peer, b'?');
    std::thread::sleep(5 * MS);
    op.cancel().unwrap();
    match op.result_timeout(Some(slack(3 * SEC))).unwrap() {
        Polled::Complete(c) => assert!(c.is_aborted(), "{:?}", c.error),
        Polled::Incomplete(_) => panic!("the receive is still pending"),
    }
    // The urgent byte is kept for the socket's next `OOB` receive, and the
    // socket still works.
    peer.write_all(b"data").unwrap();
    let c = s
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&c.data[..], b"data");
    let c = s
        .recv(vec![0u8; 1], MsgFlags::OOB, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&c.data[..], b"?");
}

/// The same for an `OOB` receive, the other kind that waits as a readiness
/// poll and finds nothing when tried: its poll fired on a lone urgent byte,
/// which a normal read of the descriptor then passed (Linux drops it: the
/// `OOB` receive's try finds nothing). A cancel, close or drop in between
/// must end it. (A connect, the third such kind, never finds nothing once
/// its poll fired.)
fn oob_receive_given_up_after_its_poll_fired(e: &Engine, how: GiveUp) {
    let (s, mut peer) = std_pair(e);
    let op = s.recv(vec![0u8; 1], MsgFlags::OOB, Notify::None).unwrap();
    assert!(op.is_pending());
    let op = op.op();
    send_urgent(&peer, b'!');
    peer.write_all(b"xyz").unwrap();
    std::thread::sleep(5 * MS);
    // Past the mark, behind the engine's back: the urgent byte is gone.
    let mut got = [0u8; 8];
    let n = s
        .with_fd(|fd| rustix::net::recv(fd, &mut got, rustix::net::RecvFlags::DONTWAIT))
        .unwrap()
        .unwrap();
    assert_eq!(&got[..n.0], b"xyz");
    give_up(e, &s, op, how, "OOB receive");
}

fn cancel_reaches_an_oob_receive_whose_poll_fired(e: &Engine) {
    oob_receive_given_up_after_its_poll_fired(e, GiveUp::Cancel);
}

fn close_reaches_an_oob_receive_whose_poll_fired(e: &Engine) {
    oob_receive_given_up_after_its_poll_fired(e, GiveUp::Close);
}

fn drop_reaches_an_oob_receive_whose_poll_fired(e: &Engine) {
    oob_receive_given_up_after_its_poll_fired(e, GiveUp::Drop);
}

/// Rings of 1 and 2 entries (completion queues of 2 and 4): hundreds of
/// receives complete together while three other threads start more
/// receives and sends. Pushes meet a full submission queue, their submits a
/// completion queue in overflow, and the backlog poll ends (a multishot
/// poll ends when its completion cannot be posted) and is armed again:
/// inside a push that holds the submission lock. Every operation completes,
/// with its own bytes, and nothing hangs. (Kernels that answer a submit with
/// `EBUSY` while completions overflow reach the re-arm inside a push this
/// way; the ring's unit test `backlog_poll_ended_inside_a_full_push_is_armed_again`
/// forces that answer on any kernel.)
fn tiny_rings_under_load_never_deadlock(kind: Kind) {
    for entries in [1, 2] {
        let e = match kind {
            Kind::Uring => util::builder(kind).ring_entries(entries).build().unwrap(),
            _ => util::engine(kind),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let e2 = e.clone();
        std::thread::spawn(move || {
            tiny_ring_round(&e2);
            let _ = tx.send(());
        });
        rx.recv_timeout(slack(30 * SEC))
            .unwrap_or_else(|_| panic!("a ring of {entries} entries hung"));
    }
}

fn tiny_ring_round(e: &Engine) {
    const PAIRS: usize = 300;
    const ROUNDS: usize = 8;
    let pairs = std::sync::Arc::new(util::tcp_pairs(e, PAIRS));
    let mut threads = Vec::new();
    for t in 0..3usize {
        let pairs = pairs.clone();
        threads.push(std::thread::spawn(move || {
            // Each thread owns a third of the pairs: it parks a receive on
            // every one of them, then answers them all at once, so their
            // completions arrive together while the other threads push.
            for round in 0..ROUNDS {
                let mine: Vec<_> = pairs.iter().skip(t).step_by(3).collect();
                let recvs: Vec<_> = mine
                    .iter()
                    .map(|(_, s)| {
                        s.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                            .unwrap()
                            .op()
                    })
                    .collect();
                let sends: Vec<_> = mine
                    .iter()
                    .enumerate()
                    .map(|(i, (c, _))| {
                        let m = ((round * PAIRS + i) as u64).to_be_bytes().to_vec();
                        c.send(m, MsgFlags::empty(), Notify::None).unwrap().op()
                    })
                    .collect();
                for s in sends {
                    let d = s.wait().unwrap();
                    assert!(d.error.is_none(), "{:?}", d.error);
                }
                for (i, r) in recvs.into_iter().enumerate() {
                    let d = r.wait().unwrap();
                    assert!(d.error.is_none(), "{:?}", d.error);
                    assert_eq!(d.data, ((round * PAIRS + i) as u64).to_be_bytes());
                }
            }
        }));
    }
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(e.ops_in_table(), 0);
}

/// Runs `f` on its own thread; fails if it does not return in 10 s (a
/// deadlock).
fn within_10s(what: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    rx.recv_timeout(slack(10 * SEC))
        .unwrap_or_else(|_| panic!("{what}: deadlocked"));
}

/// A closure given to `with_fd` or `with_socket2` runs without the
/// socket's lock: it may use the same socket (start and wait for an
/// operation, ask its address, close it), and the descriptor it was given
/// stays open until it returns.
fn closure_on_the_descriptor_may_use_the_socket(e: &Engine) {
    let (s, mut peer) = std_pair(e);
    within_10s("with_fd", move || {
        let local = s.with_fd(|_| s.local_addr().unwrap()).unwrap();
        assert_eq!(local, s.local_addr().unwrap());
        let sent = s
            .with_socket2(|_| {
                s.send(b"abc".to_vec(), MsgFlags::empty(), Notify::None)?
                    .wait()
            })
            .unwrap();
        assert_eq!(sent.bytes, 3);
        assert_eq!(util::read_n(&mut peer, 3), b"abc");
        let still = s
            .with_fd(|fd| {
                s.close().unwrap();
                // Closed for the model, open for the closure.
                rustix::net::getsockname(fd).is_ok()
            })
            .unwrap();
        assert!(still, "the descriptor was closed under the closure");
        assert!(s.with_fd(|_| ()).is_err(), "a closed socket's descriptor");
    });
}

/// A receive buffer whose `Drop` uses the socket it was given to.
struct UsesSocketOnDrop {
    v: Vec<u8>,
    sock: Option<Socket>,
}

// SAFETY: the bytes are the `Vec`'s, as for `Vec<u8>`.
unsafe impl overlapped::IoBuf for UsesSocketOnDrop {
    fn stable_ptr(&self) -> *const u8 {
        self.v.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.v.len()
    }
}

// SAFETY: the room is the `Vec`'s heap allocation, as for `Vec<u8>`.
unsafe impl overlapped::IoBufMut for UsesSocketOnDrop {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.v.as_mut_ptr()
    }
    fn room_len(&self) -> usize {
        self.v.len()
    }
    unsafe fn set_received(&mut self, n: usize) {
        self.v.truncate(n);
    }
}

impl Drop for UsesSocketOnDrop {
    fn drop(&mut self) {
        if let Some(s) = self.sock.take() {
            s.local_addr().unwrap();
            s.close().unwrap();
        }
    }
}

/// The buffer of an operation nobody takes (its handle dropped) is dropped
/// after the socket's lock is let go: its `Drop` may use the socket.
fn dropped_buffer_may_use_the_socket(e: &Engine) {
    let (s, peer) = std_pair(e);
    let clone = s.try_clone().unwrap();
    within_10s("a buffer's drop", move || {
        let buf = UsesSocketOnDrop {
            v: vec![0u8; 8],
            sock: Some(clone),
        };
        let op = s.recv(buf, MsgFlags::empty(), Notify::None).unwrap();
        assert!(op.is_pending());
        drop(op);
        assert!(util::eventually(slack(3 * SEC), || {
            s.engine().drive(Some(10 * MS));
            s.engine().ops_in_table() == 0
        }));
        // The clone closed from the buffer's `Drop`; this handle is open.
        s.local_addr().unwrap();
        drop(peer);
    });
}

/// An async task's waker that uses the socket its operation is on.
struct UsesSocketWaker {
    sock: Socket,
    woken: std::sync::atomic::AtomicBool,
}

impl std::task::Wake for UsesSocketWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.sock.local_addr().unwrap();
        self.woken.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The waker of an awaited operation, and the thread waiting for one, are
/// woken after the socket's lock is let go: a waker (user code) may use
/// the socket.
fn waker_may_use_the_socket(e: &Engine) {
    use std::future::Future;
    let (s, mut peer) = std_pair(e);
    let e = e.clone();
    within_10s("a waker", move || {
        let w = std::sync::Arc::new(UsesSocketWaker {
            sock: s.try_clone().unwrap(),
            woken: Default::default(),
        });
        let waker = std::task::Waker::from(w.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let mut op = Box::pin(
            s.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap()
                .op(),
        );
        assert!(op.as_mut().poll(&mut cx).is_pending());
        peer.write_all(b"hi").unwrap();
        // This thread drives: the completion (and its waker) runs here.
        assert!(util::eventually(slack(3 * SEC), || {
            e.drive(Some(10 * MS));
            w.woken.load(std::sync::atomic::Ordering::SeqCst)
        }));
        match op.as_mut().poll(&mut cx) {
            std::task::Poll::Ready((n, data)) => {
                assert_eq!(n.unwrap(), 2);
                assert_eq!(&data[..], b"hi");
            }
            std::task::Poll::Pending => panic!("woken but not complete"),
        }
    });
}

util::cases! {
    cancel_reaches_a_receive_whose_poll_fired,
    close_reaches_a_receive_whose_poll_fired,
    drop_reaches_a_receive_whose_poll_fired,
    cancel_reaches_a_receive_whose_poll_fired_watch_urgent,
    cancel_reaches_an_oob_receive_whose_poll_fired,
    close_reaches_an_oob_receive_whose_poll_fired,
    drop_reaches_an_oob_receive_whose_poll_fired,
    tiny_rings_under_load_never_deadlock,
    closure_on_the_descriptor_may_use_the_socket,
    dropped_buffer_may_use_the_socket,
    waker_may_use_the_socket,
}
