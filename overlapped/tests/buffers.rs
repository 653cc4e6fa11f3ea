//! Buffer types of the program's own (`IoBuf`/`IoBufMut`), fixed arrays and
//! `bytes` (with the `bytes` feature) as operation buffers, on both engines:
//! sends and receives that complete at once and that wait in the kernel,
//! gathers and scatters over them. Not SPEC cases (see `overlapped::buf`).

#[path = "util/mod.rs"]
mod util;

use std::sync::{Arc, Mutex};

use overlapped::*;
use util::*;

/// A pool of fixed-capacity byte blocks: a [`Pooled`] buffer takes one and
/// gives it back when dropped.
#[derive(Clone)]
struct Pool {
    free: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Pool {
    fn new(blocks: usize, block: usize) -> Pool {
        let free: Vec<Vec<u8>> = (0..blocks).map(|_| Vec::with_capacity(block)).collect();
        // The cases count the room of a block.
        assert!(free.iter().all(|b| b.capacity() == block));
        Pool {
            free: Arc::new(Mutex::new(free)),
        }
    }
    fn take(&self) -> Pooled {
        let buf = self.free.lock().unwrap().pop().expect("a free block");
        Pooled {
            buf,
            pool: self.clone(),
        }
    }
    fn free_blocks(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

/// A pooled buffer: its bytes are `..len()` of a block; a receive appends
/// into the rest of the block (uninitialized memory) and a send sends the
/// bytes.
struct Pooled {
    buf: Vec<u8>,
    pool: Pool,
}

impl Pooled {
    fn with(pool: &Pool, bytes: &[u8]) -> Pooled {
        let mut p = pool.take();
        p.buf.extend_from_slice(bytes);
        p
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        self.pool.free.lock().unwrap().push(buf);
    }
}

// SAFETY: the bytes are `..len()` of the block, a heap allocation the value
// owns and never reallocates (it only ever fills its capacity), which a move
// does not move.
unsafe impl IoBuf for Pooled {
    fn stable_ptr(&self) -> *const u8 {
        self.buf.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.buf.len()
    }
}

// SAFETY: the room is the block's spare capacity, in the same allocation;
// `set_received` extends the length over the bytes written there.
unsafe impl IoBufMut for Pooled {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.buf.spare_capacity_mut().as_mut_ptr().cast()
    }
    fn room_len(&self) -> usize {
        self.buf.capacity() - self.buf.len()
    }
    unsafe fn set_received(&mut self, n: usize) {
        // The caller says the first `n` bytes of the room (the spare
        // capacity) were written, and `n <= room_len()`.
        // SAFETY: so those bytes are initialized and within the capacity.
        unsafe { self.buf.set_len(self.buf.len() + n) };
    }
}

fn sent(c: Completion<impl Sized>) -> usize {
    assert!(c.error.is_none(), "{:?}", c.error);
    c.bytes
}

/// A user buffer receives (waiting in the kernel, then at once) and sends
/// (at once), and goes back to its pool when dropped.
fn pooled_buffer_receives_pending_and_now_and_sends(e: &Engine) {
    let pool = Pool::new(4, 64);
    let (a, b) = tcp_pair(e);
    let recv = b
        .recv(pool.take(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending(), "nothing was sent yet");
    let s = a
        .send(
            Pooled::with(&pool, b"hello"),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(sent(s), 5);
    let r = recv.wait().unwrap();
    assert_eq!((r.bytes, &r.data.buf[..]), (5, &b"hello"[..]));
    // Received into: send it on (an echo), then receive again after the
    // bytes it holds.
    let echo = b.send(r.data, MsgFlags::empty(), Notify::None).unwrap();
    let back = echo.wait().unwrap();
    assert_eq!(back.bytes, 5);
    let got = a
        .recv(vec![0u8; 5], MsgFlags::WAITALL, Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"hello");
    a.send(b" world".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let more = b.recv(back.data, MsgFlags::WAITALL, Notify::None).unwrap();
    // `WAITALL` fills the rest of the block: send the rest.
    let rest = vec![b'.'; 64 - 11];
    a.send(rest.clone(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let more = more.wait().unwrap();
    assert_eq!(more.bytes, 59);
    let mut want = b"hello world".to_vec();
    want.extend_from_slice(&rest);
    assert_eq!(more.data.buf, want);
    drop(more);
    assert_eq!(pool.free_blocks(), 4, "every block is back in the pool");
}

/// Two user buffers gathered by one send and scattered by one receive
/// that waits in the kernel.
fn scatter_and_gather_of_two_user_buffers(e: &Engine) {
    let pool = Pool::new(4, 64);
    let (a, b) = tcp_pair(e);
    let mut small = pool.take();
    small.buf.extend_from_slice(&[b'x'; 60]); // 4 bytes of room left
    let recv = b
        .recv([small, pool.take()], MsgFlags::WAITALL, Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    // 68 bytes of room: 4 in the first, 64 in the second.
    let parts = vec![Pooled::with(&pool, b"abcdef"), {
        let mut p = pool.take();
        p.buf.resize(62, b'z');
        p
    }];
    // One block was taken for each of the four buffers.
    assert_eq!(pool.free_blocks(), 0);
    let s = a
        .send(parts, MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(sent(s), 68);
    let r = recv.wait().unwrap();
    assert!(r.error.is_none(), "{:?}", r.error);
    assert_eq!(r.bytes, 68);
    let [first, second] = r.data;
    assert_eq!(&first.buf[60..], b"abcd");
    assert_eq!(&second.buf[..2], b"ef");
    assert_eq!(second.buf[2..], [b'z'; 62]);
    drop((first, second));
    assert_eq!(pool.free_blocks(), 4);
}

/// A program's context holds its own array: boxed, it is the receive
/// buffer, and receives append to what it holds.
struct Context {
    id: u32,
    data: [u8; 32],
    filled: usize,
}

// SAFETY: the bytes are `data[..filled]`, inside the box's heap allocation,
// which a move of the box does not move.
unsafe impl IoBuf for Box<Context> {
    fn stable_ptr(&self) -> *const u8 {
        self.data.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.filled
    }
}

// SAFETY: the room is `data[filled..]`, in the same allocation, all
// initialized; `set_received` counts what landed there.
unsafe impl IoBufMut for Box<Context> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.data[self.filled..].as_mut_ptr()
    }
    fn room_len(&self) -> usize {
        self.data.len() - self.filled
    }
    unsafe fn set_received(&mut self, n: usize) {
        self.filled += n;
    }
}

fn a_context_struct_receives_into_its_own_array(e: &Engine) {
    let (a, b) = tcp_pair(e);
    let ctx = Box::new(Context {
        id: 7,
        data: [0; 32],
        filled: 0,
    });
    let recv = b.recv(ctx, MsgFlags::empty(), Notify::None).unwrap();
    assert!(recv.is_pending());
    a.send(b"head".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let ctx = recv.wait().unwrap().data;
    assert_eq!((ctx.id, ctx.filled, &ctx.data[..4]), (7, 4, &b"head"[..]));
    a.send(b"-tail".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let r = b.recv(ctx, MsgFlags::WAITALL, Notify::None).unwrap();
    a.send(vec![b'!'; 23], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let ctx = r.wait().unwrap().data;
    assert_eq!(ctx.filled, 32);
    assert_eq!(&ctx.data[..9], b"head-tail");
    // The context is a send buffer too: its filled bytes.
    let s = b.send(ctx, MsgFlags::empty(), Notify::None).unwrap().wait();
    assert_eq!(sent(s.unwrap()), 32);
}

/// Plain and boxed arrays: a pending receive into an inline array (the
/// engine boxes it before the kernel sees it), sends from arrays.
fn fixed_arrays_send_and_receive(e: &Engine) {
    let (a, b) = tcp_pair(e);
    let recv = b
        .recv([[0u8; 3]; 2], MsgFlags::WAITALL, Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    let s = a
        .send(*b"abc", MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(sent(s), 3);
    let s = a
        .send(Box::new(*b"def"), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(sent(s), 3);
    let r = recv.wait().unwrap();
    assert_eq!((r.bytes, r.data), (6, [*b"abc", *b"def"]));
    // A fixed buffer keeps its length: the completion says what landed.
    let recv = b
        .recv(Box::new([0u8; 8]), MsgFlags::empty(), Notify::None)
        .unwrap();
    a.send(&b"xy"[..], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let r = recv.wait().unwrap();
    assert_eq!((r.bytes, &r.data[..2], r.data.len()), (2, &b"xy"[..], 8));
}

/// A datagram longer than a user buffer: it is cut and flagged.
fn a_datagram_into_a_user_buffer_is_truncated_and_flagged(e: &Engine) {
    let pool = Pool::new(2, 4);
    let a = Socket::udp_bound(e, &v4()).unwrap();
    let b = Socket::udp_bound(e, &v4()).unwrap();
    let recv = b
        .recv_from(pool.take(), MsgFlags::empty(), Notify::None)
        .unwrap();
    assert!(recv.is_pending());
    a.send_to(
        Pooled::with(&pool, b"12"),
        b.local_addr().unwrap(),
        MsgFlags::empty(),
        Notify::None,
    )
    .unwrap()
    .wait()
    .unwrap();
    let r = recv.wait().unwrap();
    assert_eq!((r.bytes, &r.data.buf[..]), (2, &b"12"[..]));
    assert_eq!(r.addr, Some(a.local_addr().unwrap()));
    drop(r);
    a.send_to(
        b"123456".to_vec(),
        b.local_addr().unwrap(),
        MsgFlags::empty(),
        Notify::None,
    )
    .unwrap()
    .wait()
    .unwrap();
    let r = b
        .recv_from(pool.take(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!((r.bytes, &r.data.buf[..]), (4, &b"1234"[..]));
    assert!(r.flags.contains(RecvFlags::TRUNCATED));
}

/// A receive that completed but whose handle was dropped leaves exactly
/// the bytes it took (not those its buffer held before) to the next one.
fn a_dropped_receive_keeps_only_what_it_took(e: &Engine) {
    let pool = Pool::new(2, 16);
    let (a, b) = tcp_pair(e);
    let recv = b
        .recv(Pooled::with(&pool, b"old"), MsgFlags::empty(), Notify::None)
        .unwrap()
        .op();
    a.send(b"new".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert!(eventually(slack(5 * SEC), || recv.is_complete()));
    drop(recv);
    let r = b
        .recv(pool.take(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&r.data.buf[..], b"new");
}

#[cfg(feature = "bytes")]
mod with_bytes {
    use bytes::{Bytes, BytesMut};
    use overlapped::*;

    use crate::util::*;

    /// `BytesMut` receives into its spare capacity (appending), waiting in
    /// the kernel; `Bytes` and `BytesMut` send.
    pub(crate) fn bytes_mut_receives_into_spare_capacity(e: &Engine) {
        let (a, b) = tcp_pair(e);
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(b"old:");
        let recv = b.recv(buf, MsgFlags::WAITALL, Notify::None).unwrap();
        assert!(recv.is_pending());
        a.send(Bytes::from_static(b"0123"), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        a.send(
            BytesMut::from(&b"456789ab"[..]),
            MsgFlags::empty(),
            Notify::None,
        )
        .unwrap()
        .wait()
        .unwrap();
        let r = recv.wait().unwrap();
        assert!(r.error.is_none(), "{:?}", r.error);
        assert_eq!(r.bytes, 12);
        assert_eq!(&r.data[..], b"old:0123456789ab");
        // Sent on as it is.
        let s = b.send(r.data, MsgFlags::empty(), Notify::None).unwrap();
        assert_eq!(s.wait().unwrap().bytes, 16);
    }

    /// A `BytesMut` with no spare capacity offers no room: the zero-byte
    /// receive of the model, which completes when data is there and takes
    /// none of it.
    pub(crate) fn full_bytes_mut_is_the_zero_byte_receive(e: &Engine) {
        let (a, b) = tcp_pair(e);
        let mut full = BytesMut::with_capacity(4);
        full.extend_from_slice(b"full");
        assert_eq!(full.capacity(), full.len());
        let probe = b.recv(full, MsgFlags::empty(), Notify::None).unwrap();
        assert!(probe.is_pending());
        a.send(b"data".to_vec(), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        let r = probe.wait().unwrap();
        assert_eq!((r.bytes, &r.data[..]), (0, &b"full"[..]));
        let mut two = [BytesMut::with_capacity(2), BytesMut::with_capacity(2)];
        two[1].extend_from_slice(b"<");
        let r = b
            .recv(two, MsgFlags::WAITALL, Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(r.bytes, 3);
        assert_eq!((&r.data[0][..], &r.data[1][..]), (&b"da"[..], &b"<t"[..]));
        let r = b
            .recv(BytesMut::with_capacity(8), MsgFlags::empty(), Notify::None)
            .unwrap()
            .wait()
            .unwrap();
        assert_eq!(&r.data[..], b"a");
    }
}

/// Scatter receives of 1 to 9 `Vec`s, with the data already there (the
/// try at start) and arriving later (waiting): every byte lands in order,
/// across the engines' few-buffer path (iovecs on the stack) and the
/// many-buffer one.
fn scatter_over_few_and_many_buffers(e: &Engine) {
    let (a, b) = tcp_pair(e);
    for n in 1..=9usize {
        let msg: Vec<u8> = (0..3 * n as u8).collect();
        for already_there in [true, false] {
            if already_there {
                let s = a
                    .send(msg.clone(), MsgFlags::empty(), Notify::None)
                    .unwrap();
                assert_eq!(sent(s.wait().unwrap()), msg.len());
                // The bytes have crossed loopback before the receive starts.
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            let room: Vec<Vec<u8>> = (0..n).map(|_| vec![0u8; 3]).collect();
            let recv = b.recv(room, MsgFlags::WAITALL, Notify::None).unwrap();
            if !already_there {
                let s = a
                    .send(msg.clone(), MsgFlags::empty(), Notify::None)
                    .unwrap();
                assert_eq!(sent(s.wait().unwrap()), msg.len());
            }
            let r = recv.wait().unwrap();
            assert!(r.error.is_none(), "{n} buffers: {:?}", r.error);
            assert_eq!(r.bytes, msg.len(), "{n} buffers");
            assert_eq!(
                r.data.concat(),
                msg,
                "{n} buffers, already there: {already_there}"
            );
        }
    }
}

#[cfg(feature = "bytes")]
use with_bytes::*;

#[cfg(feature = "bytes")]
util::cases! {
    pooled_buffer_receives_pending_and_now_and_sends,
    scatter_and_gather_of_two_user_buffers,
    a_context_struct_receives_into_its_own_array,
    fixed_arrays_send_and_receive,
    a_datagram_into_a_user_buffer_is_truncated_and_flagged,
    a_dropped_receive_keeps_only_what_it_took,
    scatter_over_few_and_many_buffers,
    bytes_mut_receives_into_spare_capacity,
    full_bytes_mut_is_the_zero_byte_receive,
}

#[cfg(not(feature = "bytes"))]
util::cases! {
    pooled_buffer_receives_pending_and_now_and_sends,
    scatter_and_gather_of_two_user_buffers,
    a_context_struct_receives_into_its_own_array,
    fixed_arrays_send_and_receive,
    a_datagram_into_a_user_buffer_is_truncated_and_flagged,
    a_dropped_receive_keeps_only_what_it_took,
    scatter_over_few_and_many_buffers,
}
