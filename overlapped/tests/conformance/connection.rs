//! SPEC section *connection state and error codes* (k01–k12). Every case
//! that completes or fails an operation runs once per notification —
//! result, event, routine, port — on both engines (k12): a start error
//! posts, sets and queues nothing; a completion arrives through each.
use std::cell::RefCell;
use std::io::{ErrorKind, Read};
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// How long a check that nothing happened waits.
const QUIET: Duration = Duration::from_millis(50);
/// The completion key of sockets associated for the port notification.
const KEY: usize = 77;
/// The tag of operations started with the port notification.
const TAG: u64 = 5;

/// The four ways an operation's end is made known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Via {
    Result,
    Event,
    Routine,
    Port,
}

const VIAS: [Via; 4] = [Via::Result, Via::Event, Via::Routine, Via::Port];

/// A notification set up for one socket (the port one associates it).
struct Notif {
    via: Via,
    ev: Event,
    port: Option<CompletionPort>,
}

impl Via {
    fn on(self, s: &Socket) -> Notif {
        let port = (self == Via::Port).then(|| {
            let p = CompletionPort::new(1);
            p.associate(s, KEY).unwrap();
            p
        });
        Notif {
            via: self,
            ev: Event::new(),
            port,
        }
    }
}

/// An operation started with a [`Notif`].
struct Pending<T: OpOutput> {
    via: Via,
    op: Op<T>,
    got: Rc<RefCell<Option<Completion<T>>>>,
    ev: Event,
    port: Option<CompletionPort>,
}

impl Notif {
    fn start<T: OpOutput, B>(
        &self,
        f: impl FnOnce(Notify<T>) -> Result<Started<T>, StartError<B>>,
    ) -> Result<Pending<T>, StartError<B>> {
        let got: Rc<RefCell<Option<Completion<T>>>> = Rc::default();
        let notify = match self.via {
            Via::Result => Notify::None,
            Via::Event => Notify::Event(self.ev.clone()),
            Via::Routine => {
                let g = got.clone();
                Notify::routine(move |c| *g.borrow_mut() = Some(c))
            }
            Via::Port => Notify::Port(TAG),
        };
        let op = f(notify)?.op();
        Ok(Pending {
            via: self.via,
            op,
            got,
            ev: self.ev.clone(),
            port: self.port.clone(),
        })
    }

    /// A start that must fail: its error (with the buffers), once it is
    /// checked that nothing was set, queued or posted for it.
    fn start_fail<T: OpOutput, B>(
        &self,
        f: impl FnOnce(Notify<T>) -> Result<Started<T>, StartError<B>>,
    ) -> StartError<B> {
        let e = match self.start(f) {
            Err(e) => e,
            Ok(p) => panic!("{:?}: the start succeeded", p.via),
        };
        self.assert_quiet();
        e
    }

    fn start_err<T: OpOutput, B>(
        &self,
        f: impl FnOnce(Notify<T>) -> Result<Started<T>, StartError<B>>,
    ) -> std::io::Error {
        self.start_fail(f).error
    }

    fn assert_quiet(&self) {
        match self.via {
            Via::Result => {}
            Via::Event => assert!(!self.ev.wait(Some(QUIET)), "the event was set"),
            Via::Routine => assert_eq!(
                sleep_ex(Some(QUIET), true),
                SleepOutcome::Timeout,
                "a routine ran"
            ),
            Via::Port => {
                let p = self.port.as_ref().unwrap();
                let pk = p.get_queued(Some(QUIET)).unwrap();
                assert!(pk.is_none(), "a packet was posted: {pk:?}");
            }
        }
    }

    /// Starts a receive of `n` bytes.
    fn recv(&self, s: &Socket, n: usize, flags: MsgFlags) -> Pending<Vec<u8>> {
        self.start(|no| s.recv(vec![0u8; n], flags, no))
            .unwrap_or_else(|e| panic!("{:?}: receive start: {}", self.via, e.error))
    }

    /// A receive that must fail at the call; its buffer comes back.
    fn recv_err(&self, s: &Socket, flags: MsgFlags) -> std::io::Error {
        let e = self.start_fail(|no| s.recv(vec![0u8; 16], flags, no));
        assert_eq!(
            (e.bufs.len(), e.bufs.capacity()),
            (16, 16),
            "the buffer comes back"
        );
        e.error
    }

    /// A send that must fail at the call; its buffer comes back.
    fn send_err(&self, s: &Socket) -> std::io::Error {
        let e = self.start_fail(|no| s.send(b"data".to_vec(), MsgFlags::empty(), no));
        assert_eq!(&e.bufs[..], b"data", "the buffer comes back");
        e.error
    }
}

impl<T: OpOutput> Pending<T> {
    /// The completion, through the notification (within ten seconds).
    fn complete(self) -> Completion<T> {
        match self.via {
            Via::Result => match self.op.result_timeout(ten()).unwrap() {
                Polled::Complete(c) => c,
                Polled::Incomplete(_) => panic!("no completion within 10 s"),
            },
            Via::Event => {
                assert!(self.ev.wait(ten()), "the event was not set within 10 s");
                match self.op.result(false).unwrap() {
                    Polled::Complete(c) => c,
                    Polled::Incomplete(_) => panic!("event set, operation incomplete"),
                }
            }
            Via::Routine => {
                let end = Instant::now() + slack(10 * SEC);
                while self.got.borrow().is_none() {
                    assert!(Instant::now() < end, "the routine did not run within 10 s");
                    sleep_ex(Some(Duration::from_millis(100)), true);
                }
                self.got.borrow_mut().take().unwrap()
            }
            Via::Port => {
                let p = self.port.as_ref().unwrap();
                let pk = p.get_queued(ten()).unwrap().expect("a packet within 10 s");
                assert_eq!((pk.key, pk.tag), (KEY, TAG));
                pk.into_completion::<T>().unwrap()
            }
        }
    }

    /// Checks the operation is still pending after `d`.
    fn pending_after(self, d: Duration) -> Self {
        match self.via {
            Via::Result => match self.op.result_timeout(Some(d)).unwrap() {
                Polled::Incomplete(op) => Pending { op, ..self },
                Polled::Complete(c) => panic!("completed: {:?}", c.error),
            },
            Via::Event => {
                assert!(!self.ev.wait(Some(d)), "the event was set");
                self
            }
            Via::Routine => {
                sleep_ex(Some(d), true);
                assert!(self.got.borrow().is_none(), "the routine ran");
                self
            }
            Via::Port => {
                let pk = self.port.as_ref().unwrap().get_queued(Some(d)).unwrap();
                assert!(pk.is_none(), "a packet was posted");
                self
            }
        }
    }
}

/// Resets the connection from the std peer (linger 0, then close).
fn reset(p: std::net::TcpStream) {
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p);
}

fn errno(e: &std::io::Error) -> Option<i32> {
    e.raw_os_error()
}

/// A loopback address where nothing listens (TCP or UDP).
fn dead_addr(udp: bool) -> std::net::SocketAddr {
    if udp {
        std::net::UdpSocket::bind(v4())
            .unwrap()
            .local_addr()
            .unwrap()
    } else {
        std::net::TcpListener::bind(v4())
            .unwrap()
            .local_addr()
            .unwrap()
    }
}

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

/// The error a completion must carry (it must not have succeeded).
fn failed<T>(d: Completion<T>, via: Via) -> std::io::Error {
    d.error
        .unwrap_or_else(|| panic!("{via:?}: completed with {} bytes", d.bytes))
}

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
        assert_eq!(errno(&err), Some(libc::ESHUTDOWN), "{via:?}: {err}");
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
        assert_eq!(errno(&err), Some(libc::ESHUTDOWN), "{via:?}: {err}");
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
        assert_eq!(errno(&err), Some(libc::EISCONN), "{via:?}: {err}");
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
                errno(&err),
                Some(libc::EOPNOTSUPP),
                "{via:?} {flags:?}: {err}"
            );
            assert_eq!(wsa_error(&err), Some(10045));
        }
        let u = Socket::udp_bound(e, &v4()).unwrap();
        let n = via.on(&u);
        let err = n.start_err(|no| u.recv_from(vec![0u8; 8], MsgFlags::WAITALL, no));
        assert_eq!(errno(&err), Some(libc::EOPNOTSUPP), "{via:?}: {err}");
    }
}

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
