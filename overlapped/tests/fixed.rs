//! Registered (fixed) buffers (`Engine::register_buffers`, `FixedBuf`) on
//! both engines: echoes through them (waiting in the kernel and at once), a
//! large transfer checked byte for byte, a buffer of another engine's pool,
//! an engine dropped while fixed-buffer operations are in flight, bad
//! inputs, and the io_uring engine's use of the fixed opcodes (its
//! `fixed_ops` counter, as far as `probe::fixed_support` says this kernel
//! takes them). Not SPEC cases (see `overlapped::buf::FixedBuf`).

#[path = "util/mod.rs"]
mod util;

use std::collections::VecDeque;
use std::io::ErrorKind;
use std::time::Duration;

use overlapped::*;
use util::*;

/// The fixed opcodes this engine uses: (receive, send).
fn uses_fixed(e: &Engine) -> (bool, bool) {
    let f = probe::fixed_support();
    match e.kind() {
        EngineKind::Uring => (f.read_waits, f.send_zc),
        _ => (false, false),
    }
}

/// The engine's fixed-buffer requests: (receives, sends).
fn fixed(e: &Engine) -> (u64, u64) {
    let c = e.counters();
    (c.fixed_recvs, c.fixed_sends)
}

fn filled(pool: &FixedBufs, bytes: &[u8]) -> FixedBuf {
    let mut b = pool.take().expect("a free buffer");
    assert_eq!(b.extend_from_slice(bytes), bytes.len());
    b
}

fn ok<T>(c: Completion<T>) -> Completion<T> {
    assert!(c.error.is_none(), "{:?}", c.error);
    c
}

/// Receives into `b` after what it holds until it holds `n` bytes (one
/// receive may take fewer).
fn fill_to(s: &Socket, mut b: FixedBuf, n: usize) -> FixedBuf {
    while b.len() < n {
        b = ok(s
            .recv(b, MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap())
        .data;
    }
    b
}

/// A receive that waits in the kernel (the fixed read on io_uring), an
/// echo of the buffer it hands back (sent as it is), and a receive whose
/// bytes are there at once (the ordinary try, same memory).
fn echo_pending_and_now(e: &Engine) {
    let pool = e.register_buffers(4, 4096).unwrap();
    let (a, b) = tcp_pair(e);
    let before = e.counters().fixed_recvs;
    let recv = b
        .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending(), "nothing was sent yet");
    let s = ok(a
        .send(filled(&pool, b"hello"), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap());
    assert_eq!(s.bytes, 5);
    drop(s);
    let r = ok(recv.wait().unwrap());
    assert_eq!((r.bytes, &r.data[..]), (5, &b"hello"[..]));
    assert_eq!(r.data.capacity(), 4096);
    let (fixed_recv, _) = uses_fixed(e);
    let after = e.counters().fixed_recvs;
    if fixed_recv {
        assert_eq!(after - before, 1, "the waiting receive used READ_FIXED");
    } else {
        assert_eq!(after, before);
    }
    // Echo: the received buffer is sent back as it is.
    let echo = ok(b
        .send(r.data, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap());
    assert_eq!(echo.bytes, 5);
    // The bytes are there by now: a receive that completes at its start
    // (the ordinary try, into the registered memory).
    std::thread::sleep(Duration::from_millis(20));
    let now = a
        .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(!now.is_pending(), "the echoed bytes were there");
    let mut got = ok(now.wait().unwrap()).data.to_vec();
    while got.len() < 5 {
        let r = ok(a
            .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap());
        assert!(r.bytes > 0, "end of stream");
        got.extend_from_slice(&r.data);
    }
    assert_eq!(got, b"hello");
    // Received into again after what it holds, then cleared.
    let mut back = echo.data;
    assert_eq!(&back[..], b"hello");
    let more = b.recv(back, MsgFlags::empty(), Notify::None).unwrap();
    a.send(b" world".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    back = fill_to(&b, ok(more.wait().unwrap()).data, 11);
    assert_eq!(&back[..], b"hello world");
    back.clear();
    assert!(back.is_empty());
    assert_eq!(back.remaining(), 4096);
    drop(back);
    assert_eq!(pool.available(), 4, "every buffer is back in the pool");
}

/// 8 MiB through 64 KiB buffers, at most 8 sends in flight (queued sends
/// wait in the kernel: the fixed send on io_uring), received on another
/// thread, which starts late, into buffers of the same pool and checked
/// byte for byte.
fn large_transfer_byte_for_byte(e: &Engine) {
    const SIZE: usize = 64 * 1024;
    const SENDS: usize = 128;
    let pool = e.register_buffers(16, SIZE).unwrap();
    let (a, b) = tcp_pair(e);
    // Small socket buffers: sends wait for the reader.
    a.with_socket2(|s| s.set_send_buffer_size(32 * 1024))
        .unwrap();
    b.with_socket2(|s| s.set_recv_buffer_size(32 * 1024))
        .unwrap();
    let byte = |i: usize| (i.wrapping_mul(31) ^ (i >> 9)) as u8;
    let total = SIZE * SENDS;
    let before = fixed(e);
    let rpool = pool.clone();
    let reader = std::thread::spawn(move || {
        // Late: the first sends fill the socket buffers, the next ones wait
        // in the kernel.
        std::thread::sleep(slack(Duration::from_millis(50)));
        let mut at = 0usize;
        while at < total {
            let r = b
                .recv(rpool.take().unwrap(), MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert!(r.error.is_none(), "{:?}", r.error);
            assert!(r.bytes > 0, "end of stream at {at}");
            for (k, &v) in r.data.iter().enumerate() {
                assert_eq!(v, byte(at + k), "byte {}", at + k);
            }
            at += r.bytes;
        }
        at
    });
    let mut flying = VecDeque::new();
    for s in 0..SENDS {
        if flying.len() == 8 {
            let op: Started<FixedBuf> = flying.pop_front().unwrap();
            assert_eq!(ok(op.wait().unwrap()).bytes, SIZE);
        }
        let mut buf = pool.take().expect("a free buffer");
        let chunk: Vec<u8> = (0..SIZE).map(|k| byte(s * SIZE + k)).collect();
        buf.extend_from_slice(&chunk);
        flying.push_back(a.send(buf, MsgFlags::empty(), Notify::None).unwrap());
    }
    for op in flying {
        assert_eq!(ok(op.wait().unwrap()).bytes, SIZE);
    }
    assert_eq!(reader.join().unwrap(), total);
    let after = fixed(e);
    let used = (after.0 - before.0, after.1 - before.1);
    let (r, w) = uses_fixed(e);
    // Sends waited in the kernel (the late reader); receives may all have
    // found their bytes at once.
    assert_eq!(used.1 > 0, w, "fixed (reads, sends): {used:?}");
    assert!(r || used.0 == 0, "fixed (reads, sends): {used:?}");
    eprintln!("{}: fixed (reads, sends): {used:?}", e.kind());
    assert_eq!(pool.available(), 16);
}

/// A Unix stream socket (no zero-copy send: the kernel refuses `SEND_ZC`
/// there, and the engine sends the socket's fixed buffers the ordinary
/// way): 2 MiB through fixed buffers to a late reader, and a receive that
/// waits in the kernel.
fn unix_stream_socket(e: &Engine) {
    use std::io::{Read, Write};
    const SIZE: usize = 64 * 1024;
    let pool = e.register_buffers(4, SIZE).unwrap();
    let (ours, mut peer) = std::os::unix::net::UnixStream::pair().unwrap();
    peer.set_read_timeout(Some(slack(10 * SEC))).unwrap();
    let s = Socket::from_fd(e, ours.into()).unwrap();
    let byte = |i: usize| (i % 251) as u8;
    let reader = std::thread::spawn(move || {
        std::thread::sleep(slack(Duration::from_millis(50)));
        let mut got = vec![0u8; 32 * SIZE];
        peer.read_exact(&mut got).unwrap();
        for (i, &v) in got.iter().enumerate() {
            assert_eq!(v, byte(i), "byte {i}");
        }
        peer.write_all(b"back").unwrap();
        peer
    });
    let mut pending = 0;
    for k in 0..32 {
        let mut b = pool.take().unwrap();
        let chunk: Vec<u8> = (0..SIZE).map(|i| byte(k * SIZE + i)).collect();
        b.extend_from_slice(&chunk);
        let op = s.send(b, MsgFlags::empty(), Notify::None).unwrap();
        pending += op.is_pending() as usize;
        assert_eq!(ok(op.wait().unwrap()).bytes, SIZE);
    }
    assert!(pending > 0, "a send waited for the reader");
    let recv = s
        .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    let _peer = reader.join().unwrap();
    let r = fill_to(&s, ok(recv.wait().unwrap()).data, 4);
    assert_eq!(&r[..], b"back");
    assert_eq!(fixed(e).1, 0, "no fixed send got through");
}

/// A buffer of another engine's pool works on this engine (the ordinary
/// path: this engine never registered that memory).
fn buffer_of_another_engines_pool(e: &Engine) {
    let other = Engine::with_kind(e.kind()).unwrap();
    let theirs = other.register_buffers(2, 256).unwrap();
    let _ours = e.register_buffers(2, 256).unwrap();
    let (a, b) = tcp_pair(e);
    let before = fixed(e);
    let recv = b
        .recv(theirs.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    ok(
        a.send(filled(&theirs, b"foreign"), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap(),
    );
    let r = ok(recv.wait().unwrap());
    assert_eq!(&r.data[..], b"foreign");
    assert_eq!(fixed(e), before, "no fixed request for it");
    assert_eq!(fixed(&other), (0, 0));
    drop(r);
    assert_eq!(theirs.available(), 2);
}

/// Scatter arrays, flags and zero-byte receives take the ordinary path
/// with the same memory.
fn arrays_and_flags_take_the_ordinary_path(e: &Engine) {
    let pool = e.register_buffers(6, 8).unwrap();
    let (a, b) = tcp_pair(e);
    let before = fixed(e);
    let two = b
        .recv(
            [pool.take().unwrap(), pool.take().unwrap()],
            MsgFlags::WAITALL,
            Notify::None,
        )
        .unwrap();
    assert!(two.is_pending());
    let probe = a
        .recv(pool.take().unwrap(), MsgFlags::PEEK, Notify::None)
        .unwrap();
    assert!(probe.is_pending());
    let gather = [filled(&pool, b"01234567"), filled(&pool, b"89abcdef")];
    ok(a.send(gather, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap());
    let [x, y] = ok(two.wait().unwrap()).data;
    assert_eq!((&x[..], &y[..]), (&b"01234567"[..], &b"89abcdef"[..]));
    b.send(x, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let peeked = ok(probe.wait().unwrap());
    assert!(!peeked.data.is_empty() && b"01234567".starts_with(&peeked.data));
    assert_eq!(fixed(e), before, "no fixed request");
    drop((y, peeked));
    assert!(eventually(slack(5 * SEC), || pool.available() == 6));
}

/// Sends `buf` again and again on `a` (whose peer never reads) until a
/// send waits in the kernel: that send.
fn send_until_pending(a: &Socket, mut buf: FixedBuf) -> Started<FixedBuf> {
    for _ in 0..2000 {
        let op = a.send(buf, MsgFlags::empty(), Notify::None).unwrap();
        if op.is_pending() {
            return op;
        }
        buf = ok(op.wait().unwrap()).data;
    }
    panic!("no send waited in the kernel after 2000 sends");
}

/// The engine goes (every handle dropped) while a fixed receive and a
/// fixed send wait in the kernel: no crash, the buffers come back to the
/// pool, and the pool's memory is still there to use.
fn dropping_the_engine_with_fixed_ops_in_flight(kind: Kind) {
    let e = engine(kind);
    let pool = e.register_buffers(4, 64 * 1024).unwrap();
    let (a, b) = tcp_pair(&e);
    let recv = b
        .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    // Send until a send waits in the kernel (the peer never reads, the
    // socket buffers fill up).
    let mut buf = pool.take().unwrap();
    buf.extend_from_slice(&[9u8; 64 * 1024]);
    let send = send_until_pending(&a, buf);
    // Both wait in the kernel: with the fixed opcodes where this engine
    // uses them.
    let (r, w) = uses_fixed(&e);
    let (fr, fw) = fixed(&e);
    assert_eq!((fr > 0, fw > 0), (r, w), "fixed (reads, sends): {fr}, {fw}");
    std::thread::sleep(Duration::from_millis(20));
    drop((recv, send, a, b));
    drop(e);
    assert!(
        eventually(slack(10 * SEC), || pool.available() == 4),
        "the buffers came back: {pool:?}"
    );
    // The memory is still the pool's to use.
    let mut all: Vec<FixedBuf> = (0..4).map(|_| pool.take().unwrap()).collect();
    for (i, b) in all.iter_mut().enumerate() {
        b.extend_from_slice(&vec![i as u8; 64 * 1024]);
    }
    for (i, b) in all.iter().enumerate() {
        assert!(b.iter().all(|&v| v == i as u8));
    }
}

/// Cancels of a fixed receive and of a fixed send that wait in the
/// kernel: both end aborted (the send with the bytes it moved), their
/// buffers come back, and a receive at end of stream completes with 0.
fn cancel_and_end_of_stream(e: &Engine) {
    let pool = e.register_buffers(4, 64 * 1024).unwrap();
    let (a, _b) = tcp_pair(e);
    // `a` receives (nothing comes) and sends to `b`, which never reads.
    let recv = a
        .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    let mut buf = pool.take().unwrap();
    buf.extend_from_slice(&[5u8; 64 * 1024]);
    let send = send_until_pending(&a, buf);
    assert_eq!(a.cancel_all().unwrap(), 2);
    let r = recv.wait().unwrap();
    assert!(r.error.as_ref().is_some_and(is_aborted), "{:?}", r.error);
    assert_eq!((r.bytes, r.data.len()), (0, 0));
    // The cancel may come after the kernel took every byte (a zero-copy
    // send may queue past the send buffer): then the send succeeds.
    let s = send.wait().unwrap();
    match &s.error {
        None => assert_eq!(s.bytes, 64 * 1024),
        Some(err) => assert!(is_aborted(err) && s.bytes < 64 * 1024, "{err:?}"),
    }
    assert_eq!(
        s.data.len(),
        64 * 1024,
        "a send's buffer comes back as it was"
    );
    drop((r, s));
    assert_eq!(pool.available(), 4);
    // End of stream: a fixed receive waiting in the kernel completes with 0.
    let (c, d) = tcp_pair(e);
    let recv = d
        .recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    c.shutdown(std::net::Shutdown::Write).unwrap();
    let r = ok(recv.wait().unwrap());
    assert_eq!((r.bytes, r.data.len()), (0, 0));
}

/// Bad sizes, a second pool, an empty pool: clear errors, no panic.
fn bad_inputs(e: &Engine) {
    let invalid = |count, size| {
        let err = e.register_buffers(count, size).unwrap_err();
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidInput,
            "{count} x {size}: {err}"
        );
    };
    invalid(0, 64);
    invalid(4, 0);
    invalid((1 << 14) + 1, 1);
    invalid(1, (1 << 30) + 1);
    invalid(usize::MAX, 2);
    let pool = e.register_buffers(2, 16).unwrap();
    assert_eq!(
        (pool.count(), pool.buf_size(), pool.available()),
        (2, 16, 2)
    );
    let err = e.register_buffers(2, 16).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    let (x, y) = (pool.take().unwrap(), pool.take().unwrap());
    assert!(pool.take().is_none(), "an empty pool has nothing to take");
    assert_eq!((x.index().min(y.index()), x.index().max(y.index())), (0, 1));
    let mut x = x;
    assert_eq!(x.extend_from_slice(&[1u8; 20]), 16, "only what fits");
    assert_eq!(x.remaining(), 0);
    x.truncate(3);
    assert_eq!(&x[..], &[1, 1, 1]);
    drop((x, y));
    assert_eq!(pool.available(), 2);
}

util::cases! {
    echo_pending_and_now,
    large_transfer_byte_for_byte,
    unix_stream_socket,
    buffer_of_another_engines_pool,
    arrays_and_flags_take_the_ordinary_path,
    dropping_the_engine_with_fixed_ops_in_flight,
    cancel_and_end_of_stream,
    bad_inputs,
}
