//! Model-based test: random sequences of sends, `transmit_file`s,
//! receives (`recv` and `recv_msg`), cancels, drops and waits over two
//! connections, on both engines, checked against the SPEC's reference
//! model:
//!
//! * every operation completes exactly once (its result is taken once, and
//!   the op table is empty at the end);
//! * a cancelled receive either completes aborted with nothing consumed or
//!   completes with its data;
//! * a `transmit_file` (head, file region, tail) completes once, with its
//!   buffers, sending exactly the bytes it reports (all of them, or a
//!   prefix when a cancel aborted it), in posting order among the sends
//!   (SPEC x05, x08);
//! * the bytes every connection delivers, in posting order of the receives,
//!   then drained after the end, equal the bytes sent, in order: nothing
//!   lost, duplicated or reordered — also when a receive's handle was
//!   dropped after the kernel had filled it.
//!
//! A second model does the same for `accept_ex` (with and without room for
//! the first data, into a caller-made socket or not) and `disconnect` with
//! reuse, against clients that connect, speak, stay silent or close in a
//! random order: every accept completes exactly once, with the first data
//! of the client it took (a prefix of its message; 0 bytes when it closed
//! without a word), no client is taken twice, and the sockets it filled or
//! reused work (SPEC x01, x02, x04, x08).

use std::time::Duration;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use overlapped::{Accepted, Control, MsgFlags, Notify, Op, OpOutput, Polled, Socket};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

#[path = "util/mod.rs"]
mod util;

use util::{Kind, SEC, eventually, slack};

#[derive(Debug, Clone)]
enum Action {
    Send {
        conn: usize,
        len: usize,
    },
    Transmit {
        conn: usize,
        off: usize,
        len: usize,
        head: usize,
    },
    Recv {
        conn: usize,
        len: usize,
        msg: bool,
    },
    Cancel {
        pick: usize,
    },
    Drop {
        pick: usize,
    },
    Wait {
        pick: usize,
    },
    Poll,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..2usize, 1..3000usize).prop_map(|(conn, len)| Action::Send { conn, len }),
        1 => (0..2usize, 0..FILE_LEN, 0..4000usize, 0..64usize)
            .prop_map(|(conn, off, len, head)| Action::Transmit { conn, off, len, head }),
        3 => (0..2usize, 0..2000usize, any::<bool>())
            .prop_map(|(conn, len, msg)| Action::Recv { conn, len, msg }),
        1 => any::<usize>().prop_map(|pick| Action::Cancel { pick }),
        1 => any::<usize>().prop_map(|pick| Action::Drop { pick }),
        2 => any::<usize>().prop_map(|pick| Action::Wait { pick }),
        1 => Just(Action::Poll),
    ]
}

/// A receive's handle: `recv`, or `recv_msg` (on a stream: data without
/// control).
enum Pending {
    Plain(Op<Vec<u8>>),
    Msg(Op<(Vec<u8>, Control)>),
}

impl Pending {
    fn cancel(&self) {
        let _ = match self {
            Pending::Plain(op) => op.cancel(),
            Pending::Msg(op) => op.cancel(),
        };
    }
}

/// A receive: its handle while not taken, and the data taken from it.
type Recv = (Option<Pending>, Vec<u8>);

/// The length of the file `transmit_file`s send regions of.
const FILE_LEN: usize = 16 * 1024;

/// What a connection's client sent, in posting order: a send's bytes, or
/// the bytes a `transmit_file` was to send and the index of its handle.
enum Sent {
    Bytes(Vec<u8>),
    Transmit(Vec<u8>, usize),
}

/// A `transmit_file`: its handle while not taken, then the bytes it
/// reported.
type Transmit = (Option<Op<[Vec<u8>; 2]>>, usize);

struct Conn {
    client: Socket,
    server: Socket,
    /// Bytes of sends so far (the pattern's position).
    sent_len: usize,
    sent: Vec<Sent>,
    /// Receives in posting order: Some(handle) while not taken; the data
    /// taken so far per receive.
    recvs: Vec<Recv>,
}

fn pattern(conn: usize, from: usize, len: usize) -> Vec<u8> {
    (from..from + len)
        .map(|i| ((i * 7 + conn * 13) % 251) as u8)
        .collect()
}

fn take(op: Pending, limit: Duration) -> Result<Vec<u8>, Pending> {
    match op {
        Pending::Plain(op) => take_op(op, limit, |d| d).map_err(Pending::Plain),
        Pending::Msg(op) => take_op(op, limit, |(d, control)| {
            assert!(control.is_empty(), "no control data on a stream");
            d
        })
        .map_err(Pending::Msg),
    }
}

fn take_op<T: OpOutput>(
    op: Op<T>,
    limit: Duration,
    data: impl FnOnce(T) -> Vec<u8>,
) -> Result<Vec<u8>, Op<T>> {
    match op.result_timeout(Some(limit)).expect("handle op") {
        Polled::Complete(c) => {
            let (error, bytes) = (c.error, c.bytes);
            let d = data(c.data);
            match &error {
                None => assert_eq!(bytes, d.len()),
                Some(e) => {
                    assert!(overlapped::is_aborted(e), "unexpected error {e}");
                    assert!(d.is_empty() || bytes == 0);
                }
            }
            Ok(if error.is_none() { d } else { Vec::new() })
        }
        Polled::Incomplete(op) => Err(op),
    }
}

/// Takes a `transmit_file`'s result when it is there (or within `limit`):
/// it completed once, with its buffers; success moved all of `want`, an
/// abort a prefix of it. Its bytes, or the handle back.
fn take_transmit(
    op: Op<[Vec<u8>; 2]>,
    want: &[u8],
    head: &[u8],
    limit: Duration,
) -> Result<usize, Op<[Vec<u8>; 2]>> {
    match op.result_timeout(Some(limit)).expect("handle op") {
        Polled::Complete(c) => {
            assert_eq!(c.data[0], head, "the head buffer comes back");
            assert!(c.data[1].is_empty(), "the (empty) tail comes back");
            match &c.error {
                None => assert_eq!(c.bytes, want.len()),
                Some(e) => {
                    assert!(overlapped::is_aborted(e), "unexpected error {e}");
                    assert!(c.bytes <= want.len());
                }
            }
            Ok(c.bytes)
        }
        Polled::Incomplete(op) => Err(op),
    }
}

fn run(kind: Kind, actions: Vec<Action>) {
    let e = util::engine(kind);
    let content: Vec<u8> = (0..FILE_LEN).map(|i| (i * 11 % 253) as u8).collect();
    let path = std::env::temp_dir().join(format!(
        "ovl-model-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, &content).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let mut transmits: Vec<Transmit> = Vec::new();
    // Per transmit: the bytes it was to send and its head.
    let mut wants: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut conns: Vec<Conn> = util::tcp_pairs(&e, 2)
        .into_iter()
        .map(|(client, server)| Conn {
            client,
            server,
            sent_len: 0,
            sent: Vec::new(),
            recvs: Vec::new(),
        })
        .collect();
    let pending = |conns: &Vec<Conn>| -> Vec<(usize, usize)> {
        conns
            .iter()
            .enumerate()
            .flat_map(|(c, k)| {
                k.recvs
                    .iter()
                    .enumerate()
                    .filter(|r| r.1.0.is_some())
                    .map(move |(i, _)| (c, i))
            })
            .collect()
    };
    for a in actions {
        match a {
            Action::Send { conn, len } => {
                let k = &mut conns[conn];
                let data = pattern(conn, k.sent_len, len);
                k.sent_len += len;
                k.sent.push(Sent::Bytes(data.clone()));
                let c = k
                    .client
                    .send(data, MsgFlags::empty(), Notify::None)
                    .unwrap()
                    .wait()
                    .unwrap();
                assert!(c.error.is_none());
                assert_eq!(c.bytes, len);
            }
            Action::Transmit {
                conn,
                off,
                len,
                head,
            } => {
                let k = &mut conns[conn];
                // 1 byte at least: a length of 0 means "to the end of the
                // file".
                let len = len.clamp(1, FILE_LEN - off);
                let head_bytes = vec![head as u8; head];
                let want = [&head_bytes[..], &content[off..off + len]].concat();
                let st = k
                    .client
                    .transmit_file(
                        &file,
                        off as u64,
                        len as u64,
                        head_bytes.clone(),
                        Vec::new(),
                        Notify::None,
                    )
                    .unwrap();
                k.sent.push(Sent::Transmit(want.clone(), transmits.len()));
                transmits.push((Some(st.op()), 0));
                wants.push((want, head_bytes));
            }
            Action::Recv { conn, len, msg } => {
                let k = &mut conns[conn];
                let op = if msg {
                    let control = Control::with_capacity(64);
                    Pending::Msg(
                        k.server
                            .recv_msg(vec![0u8; len], control, MsgFlags::empty(), Notify::None)
                            .unwrap()
                            .op(),
                    )
                } else {
                    Pending::Plain(
                        k.server
                            .recv(vec![0u8; len], MsgFlags::empty(), Notify::None)
                            .unwrap()
                            .op(),
                    )
                };
                k.recvs.push((Some(op), Vec::new()));
            }
            Action::Cancel { pick } | Action::Wait { pick }
                if pick % 3 == 0 && transmits.iter().any(|t| t.0.is_some()) =>
            {
                let open: Vec<usize> = (0..transmits.len())
                    .filter(|&i| transmits[i].0.is_some())
                    .collect();
                let i = open[pick / 3 % open.len()];
                if matches!(a, Action::Cancel { .. }) {
                    let _ = transmits[i].0.as_ref().unwrap().cancel();
                } else {
                    let op = transmits[i].0.take().unwrap();
                    match take_transmit(op, &wants[i].0, &wants[i].1, Duration::from_millis(20)) {
                        Ok(n) => transmits[i].1 = n,
                        Err(op) => transmits[i].0 = Some(op),
                    }
                }
            }
            Action::Cancel { pick } | Action::Drop { pick } | Action::Wait { pick } => {
                let p = pending(&conns);
                if p.is_empty() {
                    continue;
                }
                let (c, i) = p[pick % p.len()];
                // Dropping is modelled on the newest receive of a connection:
                // its bytes (if the kernel filled it) go to the next receive.
                // (An older one whose successors already took newer bytes
                // gives its bytes up with it, like a buffer thrown away.)
                if matches!(a, Action::Drop { .. }) {
                    if i + 1 == conns[c].recvs.len() {
                        conns[c].recvs[i].0 = None;
                    }
                    continue;
                }
                let slot = &mut conns[c].recvs[i];
                match a {
                    Action::Cancel { .. } => {
                        slot.0.as_ref().unwrap().cancel();
                    }
                    _ => {
                        let op = slot.0.take().unwrap();
                        match take(op, Duration::from_millis(20)) {
                            Ok(d) => slot.1 = d,
                            Err(op) => slot.0 = Some(op),
                        }
                    }
                }
            }
            Action::Poll => e.poll(),
        }
    }
    // The end: every transmit completes; no more data comes; settle every
    // receive, then drain.
    for (i, t) in transmits.iter_mut().enumerate() {
        if let Some(op) = t.0.take() {
            t.1 = take_transmit(op, &wants[i].0, &wants[i].1, slack(10 * SEC))
                .unwrap_or_else(|_| panic!("transmit {i} never completed"));
        }
    }
    for (ci, k) in conns.iter_mut().enumerate() {
        let sent: Vec<u8> = k
            .sent
            .iter()
            .flat_map(|s| match s {
                Sent::Bytes(b) => &b[..],
                Sent::Transmit(want, i) => &want[..transmits[*i].1],
            })
            .copied()
            .collect();
        k.client.shutdown(std::net::Shutdown::Write).unwrap();
        for (op, data) in k.recvs.iter_mut() {
            if let Some(op) = op.take() {
                *data = take(op, slack(10 * SEC))
                    .unwrap_or_else(|_| panic!("conn {ci}: a receive never completed"));
            }
        }
        let mut got: Vec<u8> = k.recvs.iter().flat_map(|r| r.1.iter().copied()).collect();
        loop {
            let c = k
                .server
                .recv(vec![0u8; 4096], MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert!(c.error.is_none());
            if c.bytes == 0 {
                break;
            }
            got.extend_from_slice(&c.data);
        }
        assert_eq!(got.len(), sent.len(), "conn {ci}: byte count");
        assert!(got == sent, "conn {ci}: bytes differ from what was sent");
    }
    drop(conns);
    assert!(
        eventually(slack(SEC), || {
            e.poll();
            e.ops_in_table() == 0
        }),
        "operations left in the table: {}",
        e.ops_in_table()
    );
}

/// 48 random sequences of 1 to 59 actions on one engine (and the
/// sequences saved in `model.proptest-regressions` first), shrunk to the
/// smallest failing one on a failure.
fn model(kind: Kind) {
    let config = ProptestConfig {
        cases: 48,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&proptest::collection::vec(action(), 1..60), |actions| {
        run(kind, actions);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

#[derive(Debug, Clone)]
enum AcceptAction {
    /// An `accept_ex` with `room` bytes for the first data, into a socket
    /// of the pool (`into`) or not.
    Start {
        room: usize,
        into: bool,
    },
    /// A client connects; unless `silent`, it sends its message at once.
    Connect {
        silent: bool,
    },
    /// A silent client sends its message.
    Speak {
        pick: usize,
    },
    /// A client closes (maybe before any accept took it).
    Close {
        pick: usize,
    },
    Cancel {
        pick: usize,
    },
    Wait {
        pick: usize,
    },
    /// A socket an accept filled echoes a byte, then disconnects with
    /// reuse; a pool socket goes back to the pool.
    Reuse {
        pick: usize,
    },
}

fn accept_action() -> impl Strategy<Value = AcceptAction> {
    prop_oneof![
        3 => (prop_oneof![Just(0usize), 1..64usize], any::<bool>())
            .prop_map(|(room, into)| AcceptAction::Start { room, into }),
        3 => any::<bool>().prop_map(|silent| AcceptAction::Connect { silent }),
        2 => any::<usize>().prop_map(|pick| AcceptAction::Speak { pick }),
        1 => any::<usize>().prop_map(|pick| AcceptAction::Close { pick }),
        1 => any::<usize>().prop_map(|pick| AcceptAction::Cancel { pick }),
        2 => any::<usize>().prop_map(|pick| AcceptAction::Wait { pick }),
        1 => any::<usize>().prop_map(|pick| AcceptAction::Reuse { pick }),
    ]
}

/// A client: its stream (until closed), its address, its message, and
/// whether it sent it.
struct Client {
    stream: Option<TcpStream>,
    addr: SocketAddr,
    msg: Vec<u8>,
    spoke: bool,
    /// Taken by an accept (at most one may).
    taken: bool,
}

/// A pending accept: its handle, its room, and the pool socket it fills.
struct PendingAccept {
    op: Op<Accepted<Vec<u8>>>,
    room: usize,
    into: Option<usize>,
}

/// A socket an accept filled: its own, or a pool socket's index; and the
/// client it serves.
enum Served {
    Own(Socket, usize),
    Pool(usize, usize),
}

fn run_accepts(kind: Kind, actions: Vec<AcceptAction>) {
    let e = util::engine(kind);
    let listener = Socket::tcp_listener(&e, &util::v4()).unwrap();
    let addr = listener.local_addr().unwrap();
    let pool: Vec<Socket> = (0..4)
        .map(|_| Socket::tcp_for(&e, &addr).unwrap())
        .collect();
    let mut free: Vec<usize> = (0..pool.len()).collect();
    let mut clients: Vec<Client> = Vec::new();
    let mut pending: Vec<PendingAccept> = Vec::new();
    let mut served: Vec<Served> = Vec::new();
    // Checks a completed accept against the clients; what it filled joins
    // `served`, its pool socket (when it failed) goes back to the pool.
    let settle = |room: usize,
                  into: Option<usize>,
                  c: overlapped::Completion<Accepted<Vec<u8>>>,
                  clients: &mut Vec<Client>,
                  served: &mut Vec<Served>,
                  free: &mut Vec<usize>| {
        if let Some(err) = &c.error {
            assert!(overlapped::is_aborted(err), "unexpected error {err}");
            assert_eq!(c.data.bufs.capacity(), room, "the buffer comes back");
            assert!(c.data.socket.is_none());
            free.extend(into);
            return;
        }
        let peer = c.data.peer_addr.expect("the peer's address");
        assert_eq!(c.data.local_addr, Some(addr));
        let who = clients
            .iter()
            .position(|k| k.addr == peer)
            .expect("an accept took a connection of no client");
        let k = &mut clients[who];
        assert!(!k.taken, "client {who} was taken twice");
        k.taken = true;
        assert_eq!(c.bytes, c.data.bufs.len());
        if room == 0 {
            assert_eq!(c.bytes, 0);
        } else if c.bytes == 0 {
            assert!(
                !k.spoke || k.msg.is_empty(),
                "0 bytes from a client that spoke"
            );
        } else {
            assert!(
                k.msg.starts_with(&c.data.bufs),
                "client {who}: the first data"
            );
        }
        match (into, c.data.socket) {
            (Some(i), None) => {
                assert_eq!(pool[i].peer_addr().unwrap(), peer);
                served.push(Served::Pool(i, who));
            }
            (None, Some(s)) => served.push(Served::Own(s, who)),
            (into, s) => panic!("into {into:?} and a socket: {}", s.is_some()),
        }
    };
    for a in actions {
        match a {
            AcceptAction::Start { room, into } => {
                let into = if into { free.pop() } else { None };
                let target = into.map(|i| &pool[i]);
                let op = listener
                    .accept_ex(target, vec![0u8; room], Notify::None)
                    .unwrap()
                    .op();
                pending.push(PendingAccept { op, room, into });
            }
            AcceptAction::Connect { silent } => {
                let n = clients.len();
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(slack(10 * SEC))).unwrap();
                let msg = format!("client {n} says hello").into_bytes();
                if !silent {
                    stream.write_all(&msg).unwrap();
                }
                let addr = stream.local_addr().unwrap();
                clients.push(Client {
                    stream: Some(stream),
                    addr,
                    msg,
                    spoke: !silent,
                    taken: false,
                });
            }
            AcceptAction::Speak { pick } | AcceptAction::Close { pick } if !clients.is_empty() => {
                let n = clients.len();
                let k = &mut clients[pick % n];
                if matches!(a, AcceptAction::Speak { .. }) {
                    if let (false, Some(s)) = (k.spoke, k.stream.as_mut()) {
                        s.write_all(&k.msg).unwrap();
                        k.spoke = true;
                    }
                } else {
                    k.stream = None;
                }
            }
            AcceptAction::Cancel { pick } if !pending.is_empty() => {
                let _ = pending[pick % pending.len()].op.cancel();
            }
            AcceptAction::Wait { pick } if !pending.is_empty() => {
                let a = pending.swap_remove(pick % pending.len());
                match a
                    .op
                    .result_timeout(Some(Duration::from_millis(20)))
                    .unwrap()
                {
                    Polled::Complete(c) => {
                        settle(a.room, a.into, c, &mut clients, &mut served, &mut free)
                    }
                    Polled::Incomplete(op) => pending.push(PendingAccept { op, ..a }),
                }
            }
            AcceptAction::Reuse { pick } if !served.is_empty() => {
                let s = served.swap_remove(pick % served.len());
                let (sock, who) = match &s {
                    Served::Own(sock, who) => (sock, *who),
                    Served::Pool(i, who) => (&pool[*i], *who),
                };
                // The connection works, then ends for reuse; a client that
                // closed may have reset it (Windows: the send or the
                // disconnect fails, and the socket is not reused).
                let open = clients[who].stream.is_some();
                let sent = sock
                    .send(b"!".to_vec(), MsgFlags::empty(), Notify::None)
                    .map(|st| st.wait().unwrap().error);
                let mut reused = match &sent {
                    Ok(None) => true,
                    Ok(Some(e)) | Err(overlapped::StartError { error: e, .. }) => {
                        assert!(!open, "a send to an open client failed: {e}");
                        false
                    }
                };
                if reused {
                    match sock.disconnect(true, Notify::None) {
                        Ok(st) => {
                            let d = st.wait().unwrap();
                            assert!(!open || d.error.is_none(), "{:?}", d.error);
                            reused = d.error.is_none();
                        }
                        Err(e) => {
                            assert!(
                                !open,
                                "a disconnect from an open client failed: {}",
                                e.error
                            );
                            reused = false;
                        }
                    }
                }
                if let Some(stream) = clients[who].stream.as_mut() {
                    let mut b = [0u8; 1];
                    assert_eq!(stream.read(&mut b).unwrap(), 1, "client {who}: the byte");
                    assert_eq!(stream.read(&mut b).unwrap(), 0, "client {who}: the end");
                }
                if !reused {
                    continue;
                }
                if let Served::Pool(i, _) = s {
                    free.push(i);
                }
            }
            _ => {}
        }
    }
    // The end: every pending accept is cancelled and completes exactly once.
    for a in &pending {
        let _ = a.op.cancel();
    }
    for a in pending {
        let c = match a.op.result_timeout(Some(slack(10 * SEC))).unwrap() {
            Polled::Complete(c) => c,
            Polled::Incomplete(_) => panic!("an accept never completed after its cancel"),
        };
        settle(a.room, a.into, c, &mut clients, &mut served, &mut free);
    }
    drop(served);
    drop(pool);
    drop(listener);
    assert!(
        eventually(slack(SEC), || {
            e.poll();
            e.ops_in_table() == 0
        }),
        "operations left in the table: {}",
        e.ops_in_table()
    );
}

/// 48 random sequences of 1 to 39 accept actions on one engine, shrunk to
/// the smallest failing one on a failure.
fn accept_model(kind: Kind) {
    let config = ProptestConfig {
        cases: 48,
        source_file: Some(file!()),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(
        &proptest::collection::vec(accept_action(), 1..40),
        |actions| {
            run_accepts(kind, actions);
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}

util::cases! {
    model,
    accept_model,
}
