//! Model-based test: random sequences of sends, receives (`recv` and
//! `recv_msg`), cancels, drops and waits over two connections, on both
//! engines, checked against the SPEC's reference model:
//!
//! * every operation completes exactly once (its result is taken once, and
//!   the op table is empty at the end);
//! * a cancelled receive either completes aborted with nothing consumed or
//!   completes with its data;
//! * the bytes every connection delivers, in posting order of the receives,
//!   then drained after the end, equal the bytes sent, in order: nothing
//!   lost, duplicated or reordered — also when a receive's handle was
//!   dropped after the kernel had filled it.

use std::time::Duration;

use overlapped::{Control, MsgFlags, Notify, Op, OpOutput, Polled, Socket};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;

#[path = "util/mod.rs"]
mod util;

use util::{Kind, SEC, eventually, slack};

#[derive(Debug, Clone)]
enum Action {
    Send { conn: usize, len: usize },
    Recv { conn: usize, len: usize, msg: bool },
    Cancel { pick: usize },
    Drop { pick: usize },
    Wait { pick: usize },
    Poll,
}

fn action() -> impl Strategy<Value = Action> {
    prop_oneof![
        3 => (0..2usize, 1..3000usize).prop_map(|(conn, len)| Action::Send { conn, len }),
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

struct Conn {
    client: Socket,
    server: Socket,
    sent: Vec<u8>,
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

fn run(kind: Kind, actions: Vec<Action>) {
    let e = util::engine(kind);
    let mut conns: Vec<Conn> = util::tcp_pairs(&e, 2)
        .into_iter()
        .map(|(client, server)| Conn {
            client,
            server,
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
                let data = pattern(conn, k.sent.len(), len);
                k.sent.extend_from_slice(&data);
                let c = k
                    .client
                    .send(data, MsgFlags::empty(), Notify::None)
                    .unwrap()
                    .wait()
                    .unwrap();
                assert!(c.error.is_none());
                assert_eq!(c.bytes, len);
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
    // The end: no more data comes; settle every receive, then drain.
    for (ci, k) in conns.iter_mut().enumerate() {
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
        assert_eq!(got.len(), k.sent.len(), "conn {ci}: byte count");
        assert!(got == k.sent, "conn {ci}: bytes differ from what was sent");
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

util::cases! {
    model,
}
