//! `docs/SPEC.md`, section *extension functions*: x07, the per-operation
//! context ([`WithContext`]) and the per-socket data of a [`TypedPort`].
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// A per-operation context that counts its drops.
#[derive(Debug)]
struct Counted {
    id: u32,
    drops: Arc<AtomicUsize>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

fn counted(id: u32, drops: &Arc<AtomicUsize>) -> Counted {
    Counted {
        id,
        drops: drops.clone(),
    }
}

/// The per-socket data of the tests: a name.
#[derive(Debug)]
struct Conn(&'static str);

type Io = WithContext<Counted, Vec<u8>>;

/// A routine's context id and bytes.
type Seen = (u32, Vec<u8>);

fn recv_io(id: u32, drops: &Arc<AtomicUsize>) -> Io {
    WithContext::new(counted(id, drops), vec![0u8; 16])
}

/// The next packet, which must be an operation's.
fn op_packet<C, D>(port: &TypedPort<C, D>) -> OpPacket<C, D>
where
    C: OpOutput,
    D: Send + Sync + 'static,
{
    match port.get_queued(ten()).unwrap() {
        Some(PacketOf::Op(p)) => p,
        Some(PacketOf::Other(p)) => panic!("not an operation's packet: {p:?}"),
        None => panic!("no packet within 10 s"),
    }
}

fn no_more<C: OpOutput, D: Send + Sync + 'static>(port: &TypedPort<C, D>) {
    assert!(
        port.get_queued(Some(Duration::from_millis(50)))
            .unwrap()
            .is_none(),
        "exactly one packet per operation"
    );
}

fn x07_context_comes_back_with_the_port_packet(e: &Engine) {
    let drops = Arc::new(AtomicUsize::new(0));
    let port: TypedPort<Io, Conn> = TypedPort::new(1);
    let (c, mut p) = std_pair(e);
    let conn = Arc::new(Conn("c"));
    port.associate(&c, conn.clone()).unwrap();
    let _op = c
        .recv(recv_io(7, &drops), MsgFlags::empty(), Notify::Port(3))
        .unwrap();
    write_all(&mut p, b"context");
    let pk = op_packet(&port);
    assert!(Arc::ptr_eq(&pk.data, &conn));
    assert_eq!(pk.tag, 3);
    let done = pk.completion;
    assert!(done.is_ok() && done.bytes == 7);
    assert_eq!(done.data.context.id, 7, "the context, moved back");
    assert_eq!(&done.data.bufs[..], b"context");
    assert_eq!(drops.load(Ordering::SeqCst), 0, "not dropped on the way");
    no_more(&port);
    // A send's context comes back too; the received bytes go out as they are.
    let echo = WithContext::new(counted(8, &drops), done.data.bufs);
    let _op = c.send(echo, MsgFlags::empty(), Notify::Port(4)).unwrap();
    let pk = op_packet(&port);
    assert_eq!((pk.tag, pk.completion.bytes), (4, 7));
    assert_eq!(pk.completion.data.context.id, 8);
    assert_eq!(read_n(&mut p, 7), b"context");
    no_more(&port);
    drop(pk);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "each context dropped once");
}

fn x07_context_comes_back_with_the_routine(e: &Engine) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (c, mut p) = std_pair(e);
    let got: Arc<std::sync::Mutex<Vec<Seen>>> = Arc::default();
    let g = got.clone();
    let _op = c
        .recv(
            recv_io(11, &drops),
            MsgFlags::empty(),
            Notify::routine(move |done: Completion<Io>| {
                let WithContext { context, bufs } = done.data;
                g.lock().unwrap().push((context.id, bufs));
            }),
        )
        .unwrap();
    write_all(&mut p, b"routine");
    let end = Instant::now() + slack(10 * SEC);
    while got.lock().unwrap().is_empty() && Instant::now() < end {
        sleep_ex(Some(Duration::from_millis(100)), true);
    }
    assert_eq!(*got.lock().unwrap(), vec![(11, b"routine".to_vec())]);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped by the routine");
    // Exactly once.
    assert_eq!(
        sleep_ex(Some(Duration::from_millis(50)), true),
        SleepOutcome::Timeout
    );
    assert_eq!(got.lock().unwrap().len(), 1);
}

fn x07_context_comes_back_with_the_result(e: &Engine) {
    let drops = Arc::new(AtomicUsize::new(0));
    let (c, mut p) = std_pair(e);
    // Pending: asked without waiting, then waited for.
    let op = c
        .recv(recv_io(21, &drops), MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    let op = match op.result(false).unwrap() {
        Polled::Incomplete(op) => op,
        Polled::Complete(_) => panic!("nothing was sent"),
    };
    write_all(&mut p, b"result");
    let done = op.wait().unwrap();
    assert_eq!(done.data.context.id, 21);
    assert_eq!(&done.data.bufs[..], b"result");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(done);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // With an event.
    let ev = Event::new();
    let started = c.recv(recv_io(22, &drops), MsgFlags::empty(), &ev).unwrap();
    write_all(&mut p, b"event");
    assert!(ev.wait(ten()), "the event is set");
    let done = started.wait().unwrap();
    assert_eq!(done.data.context.id, 22);
    assert_eq!(&done.data.bufs[..], b"event");
    drop(done);
    // An aborted operation hands its context back as well.
    let op = c
        .recv(recv_io(23, &drops), MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    op.cancel().unwrap();
    let done = op.wait().unwrap();
    assert!(done.is_aborted());
    assert_eq!(done.data.context.id, 23);
    drop(done);
    assert_eq!(drops.load(Ordering::SeqCst), 3, "each context once");
}

fn x07_per_socket_data_with_every_packet(e: &Engine) {
    let drops = Arc::new(AtomicUsize::new(0));
    let port: TypedPort<Io, Conn> = TypedPort::new(1);
    let (a, mut pa) = std_pair(e);
    let (b, mut pb) = std_pair(e);
    let (da, db) = (Arc::new(Conn("a")), Arc::new(Conn("b")));
    // Started before the association (SPEC k09): its packet carries the
    // data all the same.
    let _early = b
        .recv(recv_io(30, &drops), MsgFlags::empty(), Notify::None)
        .unwrap();
    port.associate(&a, da.clone()).unwrap();
    port.associate(&b, db.clone()).unwrap();
    let _r = a
        .recv(recv_io(31, &drops), MsgFlags::empty(), Notify::Port(1))
        .unwrap();
    write_all(&mut pb, b"bb");
    let pk = op_packet(&port);
    assert_eq!(
        (pk.data.0, pk.tag, pk.completion.data.context.id),
        ("b", 0, 30)
    );
    drop(pk);
    write_all(&mut pa, b"aa");
    let pk = op_packet(&port);
    assert_eq!((pk.data.0, pk.completion.data.context.id), ("a", 31));
    drop(pk);
    // A completion queued before the socket closes, taken after it.
    let _sent = a
        .send(
            WithContext::new(counted(32, &drops), b"x".to_vec()),
            MsgFlags::empty(),
            Notify::Port(2),
        )
        .unwrap();
    let end = Instant::now() + slack(10 * SEC);
    while e.ops_in_table() > 0 && Instant::now() < end {
        e.drive(Some(Duration::from_millis(10)));
    }
    assert_eq!(read_n(&mut pa, 1), b"x", "sent before the close");
    // A receive pending at the close: aborted, its packet after the close.
    let _pending = a
        .recv(recv_io(33, &drops), MsgFlags::empty(), Notify::Port(3))
        .unwrap();
    a.close().unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        let pk = op_packet(&port);
        assert!(Arc::ptr_eq(&pk.data, &da), "the closed socket's data");
        seen.push((
            pk.tag,
            pk.completion.data.context.id,
            pk.completion.is_aborted(),
        ));
    }
    seen.sort();
    assert_eq!(seen, vec![(2, 32, false), (3, 33, true)]);
    no_more(&port);
    // The port lets go of a closed socket's data once its last operation
    // completed; an open socket's it keeps.
    assert!(
        util::eventually(slack(5 * SEC), || Arc::strong_count(&da) == 1),
        "the closed socket's data is released ({} references)",
        Arc::strong_count(&da)
    );
    assert_eq!(Arc::strong_count(&db), 2);
    b.close().unwrap();
    assert!(util::eventually(slack(5 * SEC), || Arc::strong_count(&db) == 1));
    drop(pa);
}

fn x07_a_start_of_another_type_fails_at_the_call(e: &Engine) {
    let port: TypedPort<Io, Conn> = TypedPort::new(1);
    let (c, _p) = std_pair(e);
    port.associate(&c, Arc::new(Conn("c"))).unwrap();
    let err = c
        .recv(vec![0u8; 9], MsgFlags::empty(), Notify::Port(1))
        .unwrap_err();
    assert_eq!(err.error.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(err.bufs.len(), 9, "the buffers come back");
    // A posted packet is the port's other kind of packet.
    port.post(5, 6, "stop").unwrap();
    match port.get_queued(ten()).unwrap() {
        Some(PacketOf::Other(p)) => {
            assert_eq!((p.key, p.bytes), (5, 6));
            assert_eq!(p.into_payload::<&str>().unwrap(), "stop");
        }
        other => panic!("{other:?}"),
    }
    no_more(&port);
}

fn x07_unclaimed_contexts_are_dropped(e: &Engine) {
    let drops = Arc::new(AtomicUsize::new(0));
    let port: TypedPort<Io, Conn> = TypedPort::new(1);
    let (c, mut p) = std_pair(e);
    let conn = Arc::new(Conn("c"));
    port.associate(&c, conn.clone()).unwrap();
    // A packet taken and dropped without looking at it.
    let _op = c
        .recv(recv_io(41, &drops), MsgFlags::empty(), Notify::Port(1))
        .unwrap();
    write_all(&mut p, b"one");
    let pk = port.get_queued(ten()).unwrap().expect("a packet");
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(pk);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "dropped with its packet");
    // Packets queued when the port closes: dropped with the queue.
    for id in [42, 43] {
        let _op = c
            .recv(recv_io(id, &drops), MsgFlags::empty(), Notify::Port(1))
            .unwrap();
    }
    write_all(&mut p, b"two");
    // The first receive takes the bytes, the second stays pending until
    // the close aborts it; both packets wait in the queue.
    c.close().unwrap();
    let end = Instant::now() + slack(10 * SEC);
    while e.ops_in_table() > 0 && Instant::now() < end {
        e.drive(Some(Duration::from_millis(10)));
    }
    assert_eq!(e.ops_in_table(), 0, "both operations completed");
    assert_eq!(drops.load(Ordering::SeqCst), 1, "queued, not dropped yet");
    // An operation pending when the port closes, completed after.
    let (d, mut q) = std_pair(e);
    port.associate(&d, conn.clone()).unwrap();
    let _op = d
        .recv(recv_io(44, &drops), MsgFlags::empty(), Notify::Port(1))
        .unwrap();
    e.drive(Some(Duration::ZERO));
    port.close();
    assert!(
        util::eventually(slack(5 * SEC), || drops.load(Ordering::SeqCst) == 3),
        "{} of 3 queued contexts dropped",
        drops.load(Ordering::SeqCst)
    );
    write_all(&mut q, b"late");
    let end = Instant::now() + slack(10 * SEC);
    while drops.load(Ordering::SeqCst) < 4 && Instant::now() < end {
        e.drive(Some(Duration::from_millis(10)));
    }
    assert_eq!(drops.load(Ordering::SeqCst), 4, "completed after the close");
    d.close().unwrap();
    assert!(util::eventually(slack(5 * SEC), || Arc::strong_count(
        &conn
    ) == 1));
}

util::cases! {
    x07_context_comes_back_with_the_port_packet,
    x07_context_comes_back_with_the_routine,
    x07_context_comes_back_with_the_result,
    x07_per_socket_data_with_every_packet,
    x07_a_start_of_another_type_fails_at_the_call,
    x07_unclaimed_contexts_are_dropped,
}
