//! `docs/SPEC.md`, section *ports* (p01–p12; the port half of c08 is in
//! `close_cancel.rs`).
use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

fn packet(port: &CompletionPort) -> Packet {
    port.get_queued(ten())
        .unwrap()
        .expect("a packet within 10 s")
}

fn p01_one_packet_per_operation(e: &Engine) {
    let port = CompletionPort::new(2);
    let (c, mut p) = std_pair(e);
    port.associate(&c, 7).unwrap();
    let _op = c
        .recv(vec![0u8; 16], MsgFlags::empty(), Notify::Port(3))
        .unwrap();
    write_all(&mut p, b"packet");
    let pk = packet(&port);
    assert_eq!((pk.key, pk.tag, pk.bytes), (7, 3, 6));
    assert!(pk.error.is_none() && !pk.is_posted());
    let done = pk.into_completion::<Vec<u8>>().unwrap();
    assert_eq!(&done.data[..], b"packet");
    assert!(
        port.get_queued(Some(Duration::from_millis(50)))
            .unwrap()
            .is_none(),
        "exactly one packet"
    );
}

fn p01_failed_operation_packet(e: &Engine) {
    let port = CompletionPort::new(1);
    let (c, p) = std_pair(e);
    port.associate(&c, 8).unwrap();
    let _op = c
        .recv(vec![0u8; 16], MsgFlags::empty(), Notify::Port(1))
        .unwrap();
    socket2::SockRef::from(&p)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(p);
    let pk = packet(&port);
    assert_eq!((pk.key, pk.bytes), (8, 0));
    assert_eq!(
        pk.error.as_ref().map(|e| e.kind()),
        Some(std::io::ErrorKind::ConnectionReset)
    );
}

fn p02_get_queued_timeouts() {
    let port = CompletionPort::new(1);
    let t0 = Instant::now();
    assert!(port.get_queued(Some(Duration::ZERO)).unwrap().is_none());
    assert!(t0.elapsed() < slack(25 * MS));
    let t0 = Instant::now();
    assert!(
        port.get_queued(Some(Duration::from_millis(100)))
            .unwrap()
            .is_none()
    );
    let took = t0.elapsed();
    assert!(
        took >= 100 * MS && took < 100 * MS + slack(200 * MS),
        "{took:?}"
    );
}

fn p03_post_delivers_exactly_that_packet() {
    let port = CompletionPort::new(1);
    let p2 = port.clone();
    let waiter = std::thread::spawn(move || {
        let pk = p2.get_queued(ten()).unwrap().unwrap();
        (
            pk.key,
            pk.bytes,
            pk.is_posted(),
            pk.into_payload::<String>().unwrap(),
        )
    });
    std::thread::sleep(Duration::from_millis(20));
    port.post(42, 5, String::from("payload")).unwrap();
    assert_eq!(waiter.join().unwrap(), (42, 5, true, "payload".to_string()));
}

fn p04_packets_fifo() {
    let port = CompletionPort::new(1);
    for i in 0..5 {
        port.post(i, i, ()).unwrap();
    }
    let keys: Vec<usize> = (0..5).map(|_| packet(&port).key).collect();
    assert_eq!(keys, vec![0, 1, 2, 3, 4]);
}

fn p05_waiters_released_lifo() {
    let port = CompletionPort::new(3);
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (p, g) = (port.clone(), got.clone());
            let h = std::thread::spawn(move || {
                if let Ok(Some(pk)) = p.get_queued(ten()) {
                    g.lock().unwrap().push((w, pk.key));
                }
            });
            std::thread::sleep(Duration::from_millis(100));
            h
        })
        .collect();
    port.post(1, 0, ()).unwrap();
    assert!(eventually(slack(5 * SEC), || !got
        .lock()
        .unwrap()
        .is_empty()));
    assert_eq!(
        got.lock().unwrap()[0],
        (2, 1),
        "the last waiter (W3) gets the first packet"
    );
    port.post(2, 0, ()).unwrap();
    port.post(3, 0, ()).unwrap();
    for w in workers {
        w.join().unwrap();
    }
}

fn p06_concurrency_limit() {
    let port = CompletionPort::new(1);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(AtomicUsize::new(0));
    for i in 0..100 {
        port.post(i, 0, ()).unwrap();
    }
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (p, r, pk, h) = (port.clone(), running.clone(), peak.clone(), handled.clone());
            std::thread::spawn(move || {
                while let Ok(Some(_)) = p.get_queued(Some(Duration::from_millis(300))) {
                    let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                    pk.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(5));
                    h.fetch_add(1, Ordering::SeqCst);
                    r.fetch_sub(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(handled.load(Ordering::SeqCst), 100);
    assert_eq!(
        peak.load(Ordering::SeqCst),
        1,
        "never two workers running at once"
    );
}

fn p06_running_thread_exit_releases_a_waiter() {
    // Concurrency 1: a worker holds the only place, a second waits, a
    // packet queues behind the limit. When the first worker's thread
    // exits (without calling get_queued again), the waiter gets it.
    let port = CompletionPort::new(1);
    port.post(1, 0, ()).unwrap();
    let p1 = port.clone();
    let (took_tx, took_rx) = std::sync::mpsc::channel();
    let (exit_tx, exit_rx) = std::sync::mpsc::channel::<()>();
    let first = std::thread::spawn(move || {
        let pk = p1.get_queued(ten()).unwrap().unwrap();
        took_tx.send(pk.key).unwrap();
        exit_rx.recv().unwrap();
    });
    assert_eq!(took_rx.recv().unwrap(), 1);
    let p2 = port.clone();
    let second = std::thread::spawn(move || p2.get_queued(ten()).unwrap().map(|p| p.key));
    std::thread::sleep(Duration::from_millis(50));
    port.post(2, 0, ()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    exit_tx.send(()).unwrap();
    first.join().unwrap();
    assert_eq!(second.join().unwrap(), Some(2));
    assert!(
        t0.elapsed() < slack(5 * SEC),
        "released at the exit, not by a timeout"
    );
}

fn p07_skip_on_success(e: &Engine) {
    let port = CompletionPort::new(1);
    let (c, mut p) = std_pair(e);
    port.associate(&c, 1).unwrap();
    c.set_skip_port_on_success().unwrap();
    let st = c
        .send(b"inline".to_vec(), MsgFlags::empty(), Notify::Port(9))
        .unwrap();
    let Started::Now { bytes, op } = st else {
        panic!("a small send completes at start")
    };
    assert_eq!(bytes, 6);
    let d = op.wait().unwrap();
    assert_eq!(&d.data[..], b"inline");
    assert!(
        port.get_queued(Some(Duration::from_millis(200)))
            .unwrap()
            .is_none(),
        "no packet"
    );
    let st = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(10))
        .unwrap();
    assert!(st.is_pending());
    write_all(&mut p, b"pkt");
    let pk = packet(&port);
    assert_eq!(pk.tag, 10);
    let _ = read_n(&mut p, 6);
}

fn p08_second_association_fails(e: &Engine) {
    let (a, b) = (CompletionPort::new(1), CompletionPort::new(1));
    let (c, mut p) = std_pair(e);
    a.associate(&c, 1).unwrap();
    assert_eq!(
        b.associate(&c, 2).unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    let _op = c
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(0))
        .unwrap();
    write_all(&mut p, b"a");
    assert_eq!(packet(&a).key, 1);
}

fn p09_closing_the_port_wakes_all_waiters() {
    let port = CompletionPort::new(3);
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let p = port.clone();
            std::thread::spawn(move || p.get_queued(ten()))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    port.close();
    for w in workers {
        assert!(w.join().unwrap().is_err(), "a waiter wakes with an error");
    }
    assert!(port.post(1, 1, ()).is_err());
}

fn p10_batch_form() {
    let port = CompletionPort::new(1);
    assert!(
        port.get_queued_many(16, Some(Duration::ZERO))
            .unwrap()
            .is_empty()
    );
    for i in 0..10 {
        port.post(i, 0, ()).unwrap();
    }
    let v = port.get_queued_many(16, ten()).unwrap();
    assert_eq!(
        v.iter().map(|p| p.key).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
}

fn p12_close_posts_aborted_packets(e: &Engine) {
    let port = CompletionPort::new(1);
    let (c, _p) = std_pair(e);
    port.associate(&c, 5).unwrap();
    for t in 0..3 {
        let _ = c
            .recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(t))
            .unwrap();
    }
    c.close().unwrap();
    let mut tags: Vec<u64> = (0..3)
        .map(|_| {
            let pk = packet(&port);
            assert!(pk.error.as_ref().is_some_and(is_aborted), "{:?}", pk.error);
            let tag = pk.tag;
            let d = pk.into_completion::<Vec<u8>>().unwrap();
            assert_eq!(d.data.capacity(), 8);
            tag
        })
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, vec![0, 1, 2]);
}

fn p11_worker_starts_batched_into_its_next_wait(e: &Engine) {
    // One worker, 50 connections with data waiting: the worker takes
    // the 50 packets and starts the next 50 receives. Those starts reach
    // the kernel together with its next wait, not one kernel entry each.
    const N: usize = 50;
    let port = CompletionPort::new(1);
    let mut pairs: Vec<(Socket, std::net::TcpStream)> = (0..N).map(|_| std_pair(e)).collect();
    for (i, (c, _)) in pairs.iter().enumerate() {
        port.associate(c, i).unwrap();
        c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(0))
            .unwrap();
    }
    for (_, p) in &mut pairs {
        write_all(p, b"ping");
    }
    std::thread::sleep(Duration::from_millis(100));
    let before = e.counters().enter_calls;
    let t0 = Instant::now();
    let mut got = 0;
    while got < N {
        let pk = packet(&port);
        let c = pk.into_completion::<Vec<u8>>().unwrap();
        assert_eq!(&c.data[..], b"ping");
        got += 1;
    }
    let mut restarted = Vec::new();
    for (c, _) in &pairs {
        restarted.push(
            c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(1))
                .unwrap(),
        );
    }
    // Waits that find work also reap every 200 us (fairness): a slow run
    // (a loaded machine, valgrind) is allowed those reaps on top.
    let allowed = 10 + t0.elapsed().as_micros() / 200;
    // The next wait submits them; a second round proves they are live.
    assert!(
        port.get_queued(Some(Duration::from_millis(20)))
            .unwrap()
            .is_none()
    );
    let entries = e.counters().enter_calls - before;
    assert!(
        u128::from(entries) <= allowed,
        "{entries} kernel entries for {N} packets and {N} starts (allowed {allowed})"
    );
    for (_, p) in &mut pairs {
        write_all(p, b"pong");
    }
    for _ in 0..N {
        let pk = packet(&port);
        assert_eq!(pk.tag, 1);
        assert_eq!(&pk.into_completion::<Vec<u8>>().unwrap().data[..], b"pong");
    }
    drop(restarted);
}

fn p11_8_workers_1000_connections(e: &Engine) {
    let port = CompletionPort::new(8);
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let conns: Arc<std::sync::Mutex<std::collections::HashMap<usize, Arc<Socket>>>> =
        Arc::default();
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (p, conns) = (port.clone(), conns.clone());
            std::thread::spawn(move || {
                while let Ok(Some(pk)) = p.get_queued(Some(slack(20 * SEC))) {
                    if pk.is_posted() {
                        return;
                    }
                    let (key, tag) = (pk.key, pk.tag);
                    let d = pk.into_completion::<Vec<u8>>().unwrap();
                    let Some(s) = conns.lock().unwrap().get(&key).cloned() else {
                        continue;
                    };
                    if d.error.is_some() || (tag == 0 && d.bytes == 0) {
                        conns.lock().unwrap().remove(&key);
                        continue;
                    }
                    if tag == 0 {
                        let _ = s.send(d.data, MsgFlags::empty(), Notify::Port(1)).unwrap();
                    } else {
                        let mut b = d.data;
                        b.resize(16 * 1024, 0);
                        let _ = s.recv(b, MsgFlags::empty(), Notify::Port(0)).unwrap();
                    }
                }
            })
        })
        .collect();
    let clients: Vec<_> = (0..1000)
        .map(|i| {
            let peer = std::net::TcpStream::connect(addr).unwrap();
            let (s, _) = l.accept_wait().unwrap();
            port.associate(&s, i).unwrap();
            let s = Arc::new(s);
            conns.lock().unwrap().insert(i, s.clone());
            let _ = s
                .recv(vec![0u8; 16 * 1024], MsgFlags::empty(), Notify::Port(0))
                .unwrap();
            peer.set_read_timeout(Some(slack(20 * SEC))).unwrap();
            peer
        })
        .collect();
    let drivers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .collect::<Vec<_>>()
        .chunks(125)
        .map(|chunk| {
            let chunk: Vec<_> = chunk
                .iter()
                .map(|(i, p)| (*i, p.try_clone().unwrap()))
                .collect();
            std::thread::spawn(move || {
                for (i, mut peer) in chunk {
                    for k in 0..3usize {
                        let n = 1 + (i * 7919 + k * 104_729) % 16_000;
                        let msg: Vec<u8> = (0..n).map(|j| ((i + j + k) % 251) as u8).collect();
                        peer.write_all(&msg).unwrap();
                        let mut back = vec![0u8; n];
                        peer.read_exact(&mut back).unwrap();
                        assert!(back == msg, "connection {i} message {k}");
                    }
                }
            })
        })
        .collect();
    for d in drivers {
        d.join().expect("every byte echoed");
    }
    for _ in 0..8 {
        port.post(0, 0, ()).unwrap();
    }
    for w in workers {
        w.join().unwrap();
    }
}

util::cases! {
    p01_one_packet_per_operation,
    p01_failed_operation_packet,
    engine_free p02_get_queued_timeouts,
    engine_free p03_post_delivers_exactly_that_packet,
    engine_free p04_packets_fifo,
    engine_free p05_waiters_released_lifo,
    engine_free p06_concurrency_limit,
    engine_free p06_running_thread_exit_releases_a_waiter,
    p07_skip_on_success,
    p08_second_association_fails,
    engine_free p09_closing_the_port_wakes_all_waiters,
    engine_free p10_batch_form,
    p12_close_posts_aborted_packets,
    p11_worker_starts_batched_into_its_next_wait,
    p11_8_workers_1000_connections,
}
