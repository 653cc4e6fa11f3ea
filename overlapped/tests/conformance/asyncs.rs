//! `docs/SPEC.md`, section *async* (a01–a07): operations as futures on the
//! small runtime in `overlapped::rt`, dropping each kind of pending
//! operation's future (and reads at random points while data streams in),
//! the `rt` socket types and the `futures-io` adapters.
use std::future::Future;
use std::io::Write;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use overlapped::*;
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::util::{self, *};

fn recv_buf(n: usize) -> Vec<u8> {
    vec![0u8; n]
}

fn settles(e: &Engine) {
    assert!(
        eventually(slack(5 * SEC), || {
            e.poll();
            e.ops_in_table() == 0
        }),
        "dropped operations were released"
    );
}

fn read_some(
    s: &mut rt::TcpStream,
    out: &mut [u8],
) -> impl Future<Output = std::io::Result<usize>> {
    std::future::poll_fn(move |cx| {
        futures_io::AsyncRead::poll_read(std::pin::Pin::new(&mut *s), cx, out)
    })
}

fn a01_awaited_op_resolves_to_result_and_buffers(e: &Engine) {
    let (c, s) = tcp_pair(e);
    let (r, data) = rt::block_on(async {
        let recv = s
            .recv(recv_buf(16), MsgFlags::empty(), Notify::None)
            .unwrap()
            .op();
        let (w, _) = c
            .send(b"hello".to_vec(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .op()
            .await;
        assert_eq!(w.unwrap(), 5);
        recv.await
    });
    assert_eq!(r.unwrap(), 5);
    assert_eq!(&data[..], b"hello");
    assert_eq!(data.capacity(), 16);
}

fn a02_completed_at_start_resolves_on_first_poll(e: &Engine) {
    let (c, _s) = tcp_pair(e);
    let started = c
        .send(b"now".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert_eq!(
        started.bytes_now(),
        Some(3),
        "a small send on an idle socket completes at start"
    );
    let mut op = std::pin::pin!(started.op());
    let mut cx = Context::from_waker(Waker::noop());
    match op.as_mut().poll(&mut cx) {
        Poll::Ready((r, b)) => {
            assert_eq!(r.unwrap(), 3);
            assert_eq!(&b[..], b"now");
        }
        Poll::Pending => panic!("an immediate completion must resolve on the first poll"),
    }
}

fn a03_1000_tasks_echo_concurrently(e: &Engine) {
    let l = std::rc::Rc::new(Socket::tcp_listener(e, &v4()).unwrap());
    let addr = l.local_addr().unwrap();
    const PAIRS: usize = 500;
    let total = rt::block_on(async {
        // 500 server tasks, each accepting one connection and echoing it.
        let servers: Vec<_> = (0..PAIRS)
            .map(|_| {
                let l = l.clone();
                rt::spawn(async move {
                    let (r, sock) = l.accept(Notify::None).unwrap().op().await;
                    r.unwrap();
                    let sock = sock.unwrap();
                    let mut buf = recv_buf(4096);
                    loop {
                        buf.resize(4096, 0);
                        let (r, b) = sock
                            .recv(buf, MsgFlags::empty(), Notify::None)
                            .unwrap()
                            .op()
                            .await;
                        let n = r.unwrap();
                        if n == 0 {
                            break;
                        }
                        let (w, b) = sock
                            .send(b, MsgFlags::empty(), Notify::None)
                            .unwrap()
                            .op()
                            .await;
                        assert_eq!(w.unwrap(), n);
                        buf = b;
                    }
                })
            })
            .collect();
        // 500 client tasks, each sending a pattern and checking the echo.
        let clients: Vec<_> = (0..PAIRS)
            .map(|i| {
                let e = e.clone();
                rt::spawn(async move {
                    let c = Socket::tcp_for(&e, &addr).unwrap();
                    let (r, ()) = c.connect(addr, Notify::None).unwrap().op().await;
                    r.unwrap();
                    let msg: Vec<u8> = (0..(100 + i * 7)).map(|k| (k * 31 + i) as u8).collect();
                    let (w, _) = c
                        .send(msg.clone(), MsgFlags::empty(), Notify::None)
                        .unwrap()
                        .op()
                        .await;
                    assert_eq!(w.unwrap(), msg.len());
                    let mut got = Vec::new();
                    while got.len() < msg.len() {
                        let (r, b) = c
                            .recv(
                                recv_buf(msg.len() - got.len()),
                                MsgFlags::empty(),
                                Notify::None,
                            )
                            .unwrap()
                            .op()
                            .await;
                        assert!(r.unwrap() > 0, "echo ended early");
                        got.extend_from_slice(&b);
                    }
                    assert_eq!(got, msg, "client {i}");
                    c.shutdown(std::net::Shutdown::Write).unwrap();
                    msg.len()
                })
            })
            .collect();
        let mut total = 0;
        for c in clients {
            total += c.await;
        }
        for s in servers {
            s.await;
        }
        total
    });
    assert_eq!(total, (0..PAIRS).map(|i| 100 + i * 7).sum::<usize>());
}

fn a03_a_task_whose_reads_complete_at_once_lets_others_run(e: &Engine) {
    // The peer writes 64 KiB first, so every 16-byte read completes at
    // start; the reading task still yields now and then, and the other
    // task runs long before the reader is done.
    let (c, mut p) = std_pair(e);
    write_all(&mut p, &vec![7u8; 64 * 1024]);
    std::thread::sleep(Duration::from_millis(50));
    let stream = rt::TcpStream::from_socket(c);
    let (ran_at, reads) = rt::block_on(async move {
        let reads = std::rc::Rc::new(std::cell::Cell::new(0usize));
        let r2 = reads.clone();
        let other = rt::spawn(async move { r2.get() });
        let mut buf = vec![0u8; 16];
        let mut total = 0;
        while total < 64 * 1024 {
            buf.resize(16, 0);
            let (r, b) = stream.read_owned(buf).await;
            buf = b;
            total += r.unwrap();
            reads.set(reads.get() + 1);
        }
        (other.await, reads.get())
    });
    assert_eq!(reads, 4096);
    assert!(
        ran_at <= 64,
        "the other task first ran after {ran_at} of {reads} reads"
    );
}

fn a03_tasks_that_stay_ready_do_not_starve_waiting_operations(e: &Engine) {
    // One task never waits (it yields in a loop); another awaits a receive
    // parked in the kernel. The data arrives while the first still spins:
    // the receive must complete, the runtime reaping the engine although a
    // task is always ready.
    let (c, mut p) = std_pair(e);
    let stream = rt::TcpStream::from_socket(c);
    let peer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        write_all(&mut p, b"late");
        p
    });
    let got = rt::block_on(async move {
        let done = std::rc::Rc::new(std::cell::Cell::new(false));
        let d2 = done.clone();
        let reader = rt::spawn(async move {
            let (r, b) = stream.read_owned(vec![0u8; 16]).await;
            d2.set(true);
            (r.map(|n| b[..n].to_vec()), stream)
        });
        let end = std::time::Instant::now() + slack(5 * SEC);
        while !done.get() && std::time::Instant::now() < end {
            rt::yield_now().await;
        }
        assert!(done.get(), "the receive did not complete while a task spun");
        reader.await.0
    });
    assert_eq!(got.unwrap(), b"late");
    drop(peer.join().unwrap());
}

fn a03_async_udp_send_to_recv_from(e: &Engine) {
    let a = rt::UdpSocket::bind(e, v4()).unwrap();
    let b = rt::UdpSocket::bind(e, v4()).unwrap();
    let (ba, bb) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    rt::block_on(async {
        let (r, _) = a.send_to(b"datagram".to_vec(), bb).await;
        assert_eq!(r.unwrap(), 8);
        let (r, buf) = b.recv_from(vec![0u8; 64]).await;
        let (n, from) = r.unwrap();
        assert_eq!((n, from), (8, Some(ba)));
        assert_eq!(&buf[..], b"datagram");
    });
}

fn a04_dropping_a_pending_read_cancels_it_once(e: &Engine) {
    let (_c, s) = tcp_pair(e);
    let before = e.counters();
    let op = s
        .recv(recv_buf(8), MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    let r = rt::block_on(rt::timeout(Duration::from_millis(50), op));
    assert!(r.is_err(), "the read must still be pending");
    assert!(
        eventually(slack(5 * SEC), || {
            e.poll();
            e.ops_in_table() == 0
        }),
        "the dropped read's slot is released once the engine saw its completion"
    );
    let after = e.counters();
    assert_eq!(
        after.cancelled - before.cancelled,
        1,
        "completed exactly once, aborted"
    );
    assert_eq!(after.completed_later - before.completed_later, 1);
}

fn a04_drop_pending_accept_connect_send_recv_from(e: &Engine) {
    // accept: dropped, then a new accept gets the next client.
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    drop(rt::block_on(rt::timeout(
        Duration::from_millis(20),
        l.accept(Notify::None).unwrap().op(),
    )));
    settles(e);
    let _peer = std::net::TcpStream::connect(addr).unwrap();
    let (s, _) = l.accept_wait().unwrap();
    // send: a large send dropped while pending completes once inside.
    s.with_socket2(|x| x.set_send_buffer_size(4096)).unwrap();
    let big = s
        .send(vec![1u8; 4 << 20], MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(big.is_pending());
    drop(big);
    settles(e);
    // recv_from on UDP.
    let u = Socket::udp_bound(e, &v4()).unwrap();
    drop(rt::block_on(rt::timeout(
        Duration::from_millis(20),
        u.recv_from(vec![0u8; 8], MsgFlags::empty(), Notify::None)
            .unwrap()
            .op(),
    )));
    settles(e);
    let v = Socket::udp_bound(e, &v4()).unwrap();
    v.send_to(
        b"after".to_vec(),
        u.local_addr().unwrap(),
        MsgFlags::empty(),
        Notify::None,
    )
    .unwrap()
    .wait()
    .unwrap();
    let d = u
        .recv_from(vec![0u8; 8], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&d.data[..], b"after");
    // connect: to a listener that never accepts (the handshake
    // completes in the kernel), dropped right after it starts.
    let c = Socket::tcp_for(e, &addr).unwrap();
    drop(c.connect(addr, Notify::None));
    settles(e);
}

fn a05_no_byte_lost_after_dropped_reads(e: &Engine) {
    let (c, s) = tcp_pair(e);
    // Data arrives while a read is in flight and the read is dropped
    // without being polled again: its bytes must reach the next read.
    let mut expected = Vec::new();
    let mut got = Vec::new();
    for round in 0..200u32 {
        let op = s
            .recv(recv_buf(64), MsgFlags::empty(), Notify::None)
            .unwrap();
        let msg = format!("m{round:04};").into_bytes();
        expected.extend_from_slice(&msg);
        c.send(msg, MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        if round % 3 == 0 {
            std::thread::sleep(Duration::from_micros(200));
            e.poll();
        }
        drop(op);
    }
    c.shutdown(std::net::Shutdown::Write).unwrap();
    loop {
        let c = s
            .recv(recv_buf(4096), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        assert!(c.error.is_none());
        if c.bytes == 0 {
            break;
        }
        got.extend_from_slice(&c.data);
    }
    assert_eq!(
        String::from_utf8_lossy(&got),
        String::from_utf8_lossy(&expected)
    );
}

fn a05_random_drops_while_10000_messages_stream_in(e: &Engine) {
    let l = std::net::TcpListener::bind(v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    c.connect_wait(addr).unwrap();
    let (mut peer, _) = l.accept().unwrap();
    let writer = std::thread::spawn(move || {
        let mut rng = SmallRng::seed_from_u64(7);
        for i in 0..10_000u32 {
            peer.write_all(&i.to_le_bytes()).unwrap();
            if rng.random_range(0..8) == 0 {
                std::thread::sleep(Duration::from_micros(rng.random_range(0..200)));
            }
        }
    });
    let mut rng = SmallRng::seed_from_u64(11);
    let mut got: Vec<u8> = Vec::new();
    while got.len() < 40_000 {
        let op = c
            .recv(
                vec![0u8; rng.random_range(1..64)],
                MsgFlags::empty(),
                Notify::None,
            )
            .unwrap()
            .op();
        if rng.random_range(0..3) == 0 {
            // Drop it at a random point: maybe before, maybe after
            // the kernel filled it.
            let wait = Duration::from_micros(rng.random_range(0..300));
            if let Ok((r, b)) = rt::block_on(rt::timeout(wait, op)) {
                assert!(r.unwrap() > 0);
                got.extend_from_slice(&b);
            }
        } else {
            let (r, b) = rt::block_on(op);
            assert!(r.unwrap() > 0);
            got.extend_from_slice(&b);
        }
    }
    writer.join().unwrap();
    assert_eq!(got.len(), 40_000, "no byte duplicated");
    for (i, w) in got.chunks(4).enumerate() {
        assert_eq!(
            u32::from_le_bytes(w.try_into().unwrap()),
            i as u32,
            "no byte lost or reordered"
        );
    }
}

fn a06_timeout_fires_and_cancels_a_read(e: &Engine) {
    let (_c, s) = tcp_pair(e);
    let before = e.counters();
    let t0 = std::time::Instant::now();
    let r = rt::block_on(rt::timeout(
        Duration::from_millis(100),
        s.recv(recv_buf(8), MsgFlags::empty(), Notify::None)
            .unwrap()
            .op(),
    ));
    let took = t0.elapsed();
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::TimedOut);
    assert!(
        took >= Duration::from_millis(90) && took < slack(2 * SEC),
        "{took:?}"
    );
    assert!(eventually(slack(5 * SEC), || {
        e.poll();
        e.counters().cancelled > before.cancelled
    }));
}

fn a07_async_read_write_adapters_pass_bytes_unchanged(e: &Engine) {
    let l = rt::TcpListener::bind(e, v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let msg: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let got = rt::block_on(async {
        let m2 = msg.clone();
        let e2 = e.clone();
        let writer = rt::spawn(async move {
            let mut c = rt::TcpStream::connect(&e2, addr).await.unwrap();
            let mut off = 0;
            while off < m2.len() {
                let n = std::future::poll_fn(|cx| {
                    futures_io::AsyncWrite::poll_write(std::pin::Pin::new(&mut c), cx, &m2[off..])
                })
                .await
                .unwrap();
                off += n;
            }
            std::future::poll_fn(|cx| {
                futures_io::AsyncWrite::poll_close(std::pin::Pin::new(&mut c), cx)
            })
            .await
            .unwrap();
        });
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 3000];
        loop {
            let n = read_some(&mut s, &mut chunk).await.unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&chunk[..n]);
        }
        writer.await;
        got
    });
    assert_eq!(got.len(), msg.len());
    assert!(got == msg, "bytes changed in the adapters");
}

util::cases! {
    a01_awaited_op_resolves_to_result_and_buffers,
    a02_completed_at_start_resolves_on_first_poll,
    a03_1000_tasks_echo_concurrently,
    a03_a_task_whose_reads_complete_at_once_lets_others_run,
    a03_tasks_that_stay_ready_do_not_starve_waiting_operations,
    a03_async_udp_send_to_recv_from,
    a04_dropping_a_pending_read_cancels_it_once,
    a04_drop_pending_accept_connect_send_recv_from,
    a05_no_byte_lost_after_dropped_reads,
    a05_random_drops_while_10000_messages_stream_in,
    a06_timeout_fires_and_cancels_a_read,
    a07_async_read_write_adapters_pass_bytes_unchanged,
}
