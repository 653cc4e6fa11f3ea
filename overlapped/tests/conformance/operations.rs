//! `docs/SPEC.md`, section *operations* (o01–o14).
use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

fn pending<T: OpOutput>(st: Started<T>) -> Op<T> {
    assert!(st.is_pending(), "expected a pending start");
    st.op()
}

fn o01_small_send_completes_at_start_with_count(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let st = c
        .send(b"hello".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert_eq!(st.bytes_now(), Some(5));
    let Polled::Complete(done) = st.op().result(false).unwrap() else {
        panic!("result must be ready")
    };
    assert_eq!(done.bytes, 5);
    assert_eq!(&done.data[..], b"hello");
    assert_eq!(read_n(&mut p, 5), b"hello");
}

fn o02_recv_pending_incomplete_then_complete(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let op = pending(
        c.recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    let op = match op.result(false).unwrap() {
        Polled::Incomplete(op) => op,
        Polled::Complete(_) => panic!("nothing was sent"),
    };
    write_all(&mut p, b"hi");
    let Polled::Complete(done) = op.result(true).unwrap() else {
        panic!()
    };
    assert_eq!(&done.data[..], b"hi");
}

fn o03_wait_returns_soon_after_data_from_another_thread(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let op = pending(
        c.recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    let t0 = Instant::now();
    let h = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        write_all(&mut p, b"late");
        p
    });
    let done = op.wait().unwrap();
    let took = t0.elapsed();
    assert_eq!(&done.data[..], b"late");
    assert!(
        took >= Duration::from_millis(45) && took < slack(SEC),
        "{took:?}"
    );
    drop(h.join());
}

fn o04_is_complete_is_cheap_and_true_after(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let op = pending(
        c.recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    let t0 = Instant::now();
    assert!(!op.is_complete());
    assert!(t0.elapsed() < slack(50 * MS), "{:?}", t0.elapsed());
    write_all(&mut p, b"x");
    assert!(eventually(slack(5 * SEC), || op.is_complete()));
    assert_eq!(op.wait().unwrap().bytes, 1);
}

fn o05_buffers_come_back_unchanged_in_count_order_capacity(e: &Engine) {
    let (c, mut p) = std_pair(e);
    write_all(&mut p, b"0123456789");
    std::thread::sleep(Duration::from_millis(20));
    let bufs = vec![vec![0u8; 4], vec![0u8; 4], vec![0u8; 64]];
    let done = c
        .recv(bufs, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(done.data.len(), 3);
    assert_eq!(
        done.data.iter().map(Vec::capacity).collect::<Vec<_>>(),
        vec![4, 4, 64]
    );
    assert_eq!(done.data.concat(), b"0123456789");
}

fn o05_slice_windows_are_what_is_sent_and_received(e: &Engine) {
    let (c, mut p) = std_pair(e);
    // A send sends the window only.
    let out = Slice::new(b"..hello..".to_vec(), 2..7);
    let done = c
        .send(out, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((done.bytes, done.data.range()), (5, 2..7));
    assert_eq!(read_n(&mut p, 5), b"hello");
    // A pending receive (the kernel's path) fills the window from its
    // start and shrinks it; the bytes around it and the length stay.
    let op = pending(
        c.recv(
            Slice::new(vec![0xAA; 16], 4..12),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap(),
    );
    write_all(&mut p, b"abc");
    let got = op.wait().unwrap().data;
    assert_eq!((got.range(), &got[..]), (4..7, &b"abc"[..]));
    assert_eq!(
        got.buffer(),
        &[[0xAA; 4].as_slice(), b"abc", &[0xAA; 9]].concat()[..]
    );
    // Data already there (the at-once path), scattered over two windows.
    write_all(&mut p, b"0123456789");
    std::thread::sleep(Duration::from_millis(20));
    let bufs = [Slice::new(vec![0u8; 8], 6..), Slice::from(vec![0u8; 64])];
    let done = c
        .recv(bufs, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let [a, b] = done.data;
    assert_eq!(
        (&a[..], a.range(), &b[..], b.range()),
        (&b"01"[..], 6..8, &b"23456789"[..], 0..8)
    );
    assert_eq!((a.buffer().len(), b.buffer().len()), (8, 64));
    // Widening the window again is all a next receive needs.
    let mut b = b;
    b.set_range(..);
    write_all(&mut p, b"xyz");
    let done = c
        .recv(b, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&done.data[..], b"xyz");
}

fn o06_sixteen_recvs_fill_in_posting_order(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ops: Vec<_> = (0..16)
        .map(|_| {
            pending(
                c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
                    .unwrap(),
            )
        })
        .collect();
    let msg: Vec<u8> = (0..64u8).collect();
    write_all(&mut p, &msg);
    let mut got = Vec::new();
    for op in ops {
        let d = op.wait().unwrap();
        assert_eq!(d.bytes, 4);
        got.extend_from_slice(&d.data);
    }
    assert_eq!(got, msg);
}

fn o06_four_recvs_then_one_16_byte_write(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let ops: Vec<_> = (0..4)
        .map(|_| {
            pending(
                c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
                    .unwrap(),
            )
        })
        .collect();
    write_all(&mut p, b"AAAABBBBCCCCDDDD");
    let got: Vec<Vec<u8>> = ops.into_iter().map(|op| op.wait().unwrap().data).collect();
    assert_eq!(
        got,
        vec![
            b"AAAA".to_vec(),
            b"BBBB".to_vec(),
            b"CCCC".to_vec(),
            b"DDDD".to_vec()
        ]
    );
}

fn o07_sixteen_sends_arrive_in_posting_order(e: &Engine) {
    let (c, mut p) = std_pair(e);
    c.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
    socket2::SockRef::from(&p)
        .set_recv_buffer_size(4096)
        .unwrap();
    let mut pending_seen = false;
    let ops: Vec<_> = (0..16u8)
        .map(|i| {
            let st = c
                .send(vec![i; 64 * 1024], MsgFlags::empty(), Notify::None)
                .unwrap();
            pending_seen |= st.is_pending();
            st.op()
        })
        .collect();
    assert!(pending_seen, "the send buffer was meant to fill");
    // The peer reads on its own thread while this one waits on the
    // operations (whoever waits, drives).
    let reader = std::thread::spawn(move || {
        let mut all = vec![0u8; 16 * 64 * 1024];
        p.read_exact(&mut all).unwrap();
        all
    });
    for op in ops {
        let d = op.wait().unwrap();
        assert!(d.error.is_none());
        assert_eq!(d.bytes, 64 * 1024);
    }
    let all = reader.join().unwrap();
    for (i, block) in all.chunks(64 * 1024).enumerate() {
        assert!(
            block.iter().all(|&b| b == i as u8),
            "block {i} out of order or interleaved"
        );
    }
}

fn o08_8mib_send_completes_whole(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let n = 8 << 20;
    let st = c
        .send(vec![7u8; n], MsgFlags::empty(), Notify::None)
        .unwrap();
    let reader = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        let mut buf = vec![0u8; n];
        p.read_exact(&mut buf).unwrap();
        buf.iter().all(|&b| b == 7)
    });
    let d = st.wait().unwrap();
    assert!(d.error.is_none());
    assert_eq!(d.bytes, n);
    assert!(reader.join().unwrap());
}

fn o09_empty_array_rejected(e: &Engine) {
    let (c, _p) = std_pair(e);
    let err = c
        .send(Vec::<Vec<u8>>::new(), MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
    let err = c
        .recv(Vec::<Vec<u8>>::new(), MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
}

fn o09_zero_length_send_and_readiness_receive(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let s = c
        .send(Vec::<u8>::new(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(s.bytes, 0);
    let op = pending(
        c.recv(Vec::<u8>::new(), MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    let op = match op.result_timeout(Some(Duration::from_millis(200))).unwrap() {
        Polled::Incomplete(op) => op,
        Polled::Complete(_) => panic!("a zero-length receive pends until readable"),
    };
    write_all(&mut p, b"Q");
    let d = op.wait().unwrap();
    assert!(d.error.is_none());
    assert_eq!(d.bytes, 0);
    let next = c
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(
        &next.data[..],
        b"Q",
        "the readiness receive consumed nothing"
    );
}

fn o09_unbound_udp_recv_from_is_invalid_input(e: &Engine) {
    let u = Socket::udp_for(e, &v4()).unwrap();
    let err = u
        .recv_from(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.bufs.capacity(), 4);
}

fn o10_iov_max_limits(e: &Engine) {
    let (c, mut p) = std_pair(e);
    let too_many: Vec<Vec<u8>> = (0..IOV_MAX + 1).map(|_| vec![1u8]).collect();
    let err = c
        .send(too_many, MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.bufs.len(), IOV_MAX + 1);
    let max: Vec<Vec<u8>> = (0..IOV_MAX).map(|_| vec![1u8]).collect();
    let d = c
        .send(max, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(d.bytes, IOV_MAX);
    assert_eq!(read_n(&mut p, IOV_MAX).len(), IOV_MAX);
}

fn o11_bad_handle_fails_at_start(e: &Engine) {
    let (c, _p) = std_pair(e);
    c.close().unwrap();
    let ev = Event::new();
    let err = c.recv(vec![0u8; 4], MsgFlags::empty(), &ev).unwrap_err();
    assert_eq!(err.error.raw_os_error(), Some(libc::EBADF));
    assert!(!ev.wait(Some(Duration::from_millis(50))));
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    let err = Socket::from_fd(e, std::os::fd::OwnedFd::from(file)).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTSOCK));
}

fn o11_op_on_listening_socket_fails_at_start(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let err = l
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::NotConnected);
    let err = l
        .send(vec![1u8; 4], MsgFlags::empty(), Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::NotConnected);
    assert_eq!(e.ops_in_table(), 0);
}

fn o12_result_taken_once(e: &Engine) {
    let (c, mut p) = std_pair(e);
    // `result` and `wait` consume the handle: a second take does not
    // compile. An incomplete result hands the same handle back.
    let op = pending(
        c.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    let Polled::Incomplete(op) = op.result(false).unwrap() else {
        panic!()
    };
    write_all(&mut p, b"once");
    let _done = op.wait().unwrap();
    // A routine's operation has no result to take at the handle.
    let r = c
        .recv(vec![0u8; 4], MsgFlags::empty(), Notify::routine(|_| {}))
        .unwrap()
        .op();
    assert_eq!(r.result(false).unwrap_err().kind(), ErrorKind::InvalidInput);
}

fn o13_10000_pending_receives(e: &Engine) {
    let l = Socket::tcp_listener(e, &v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let mut pairs = Vec::new();
    let mut ops = Vec::new();
    for _ in 0..5000 {
        let c = Socket::tcp_for(e, &addr).unwrap();
        c.connect_wait(addr).unwrap();
        let (s, _) = l.accept_wait().unwrap();
        ops.push(pending(
            s.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap(),
        ));
        ops.push(pending(
            c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap(),
        ));
        pairs.push((c, s));
    }
    for (i, (c, s)) in pairs.iter().enumerate() {
        c.send(
            (i as u32).to_le_bytes().to_vec(),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap();
        s.send(
            (i as u32 + 1_000_000).to_le_bytes().to_vec(),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap();
    }
    for (k, op) in ops.into_iter().enumerate() {
        let d = op.wait().unwrap();
        let want = if k % 2 == 0 {
            (k / 2) as u32
        } else {
            (k / 2) as u32 + 1_000_000
        };
        assert_eq!(&d.data[..], &want.to_le_bytes(), "receive {k}");
    }
}

fn o14_counters_match(e: &Engine) {
    let (c, s) = tcp_pair(e);
    let base = e.counters();
    // One immediate send, one pending receive completed later, one
    // pending receive cancelled.
    let r1 = pending(
        s.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    let w = c
        .send(b"abcd".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(!w.is_pending());
    drop(w.op().wait().unwrap());
    r1.wait().unwrap();
    let r2 = pending(
        s.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None)
            .unwrap(),
    );
    r2.cancel().unwrap();
    assert!(r2.wait().unwrap().is_aborted());
    let now = e.counters();
    assert_eq!(now.submitted - base.submitted, 3);
    assert_eq!(now.completed_now - base.completed_now, 1);
    assert_eq!(now.completed_later - base.completed_later, 2);
    assert_eq!(now.cancelled - base.cancelled, 1);
    assert!(now.enter_calls > base.enter_calls);
}

util::cases! {
    o01_small_send_completes_at_start_with_count,
    o02_recv_pending_incomplete_then_complete,
    o03_wait_returns_soon_after_data_from_another_thread,
    o04_is_complete_is_cheap_and_true_after,
    o05_buffers_come_back_unchanged_in_count_order_capacity,
    o05_slice_windows_are_what_is_sent_and_received,
    o06_sixteen_recvs_fill_in_posting_order,
    o06_four_recvs_then_one_16_byte_write,
    o07_sixteen_sends_arrive_in_posting_order,
    o08_8mib_send_completes_whole,
    o09_empty_array_rejected,
    o09_zero_length_send_and_readiness_receive,
    o09_unbound_udp_recv_from_is_invalid_input,
    o10_iov_max_limits,
    o11_bad_handle_fails_at_start,
    o11_op_on_listening_socket_fails_at_start,
    o12_result_taken_once,
    o13_10000_pending_receives,
    o14_counters_match,
}
