//! Registered buffers: [`FixedBufs`] and [`FixedBuf`].

#![allow(unsafe_code)]

use super::{IoBuf, IoBufMut};

/// A pool of registered buffers: `count` buffers of `size` bytes each,
/// from [`Engine::register_buffers`](crate::Engine::register_buffers).
///
/// On an io_uring engine the pool's memory is registered with the kernel
/// (`IORING_REGISTER_BUFFERS`) and some operations on one [`FixedBuf`] use
/// the fixed-buffer opcodes (see [`FixedBuf`]); on the poll engine it is a
/// pool of ordinary buffers, so a program runs unchanged on both.
///
/// Cheap to clone (a shared handle). The memory lives while the pool, any
/// of its buffers, or the engine that registered it lives; it is never
/// freed while the kernel may still use it.
#[derive(Clone)]
pub struct FixedBufs {
    pool: std::sync::Arc<crate::sys::fixed::Pool>,
}

impl std::fmt::Debug for FixedBufs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBufs")
            .field("count", &self.count())
            .field("buf_size", &self.buf_size())
            .field("available", &self.available())
            .finish()
    }
}

impl FixedBufs {
    pub(crate) fn new(pool: std::sync::Arc<crate::sys::fixed::Pool>) -> FixedBufs {
        FixedBufs { pool }
    }

    /// A free buffer, empty (`len() == 0`), or `None` when every buffer is
    /// taken. It returns to the pool when dropped.
    pub fn take(&self) -> Option<FixedBuf> {
        Some(FixedBuf {
            slot: self.pool.take()?,
            len: 0,
        })
    }

    /// How many buffers the pool holds.
    pub fn count(&self) -> usize {
        self.pool.count()
    }

    /// The size of each buffer ([`FixedBuf::capacity`]).
    pub fn buf_size(&self) -> usize {
        self.pool.size()
    }

    /// How many buffers are free now.
    pub fn available(&self) -> usize {
        self.pool.available()
    }
}

/// One buffer of a [`FixedBufs`] pool: `capacity()` bytes of which the
/// first `len()` hold data. It returns to its pool when dropped.
///
/// A send sends `..len()`; a receive offers the rest, `len()..capacity()`,
/// and appends what lands (like `bytes::BytesMut`): [`clear`](Self::clear)
/// it to receive from the start again. So an echo receives into it, sends
/// it back as it is, clears it and receives again.
///
/// # Where the fixed opcodes are used
///
/// On an io_uring engine that registered the buffer's pool, an operation
/// whose buffers are exactly **one** `FixedBuf`, on a **stream** socket,
/// with **no** flags, uses the registered buffer when it waits in the
/// kernel:
///
/// * a receive: `IORING_OP_READ_FIXED` (a `read(2)` of the socket into the
///   room);
/// * a send: `IORING_OP_SEND_ZC` with `IORING_RECVSEND_FIXED_BUF` and
///   `MSG_NOSIGNAL` (never a `SIGPIPE`). The send completes only once the
///   kernel's notification says it let go of the buffer (on TCP, once the
///   bytes were acknowledged), so a fixed send that waited in the kernel
///   may complete later than an ordinary one would. Plain `IORING_OP_SEND`
///   refuses the fixed-buffer flag (`EINVAL` on Linux 6.18, measured), and
///   `WRITE_FIXED` on a socket is `write(2)`, which may raise `SIGPIPE`.
///
/// A fixed receive's completion does not say whether bytes are left in the
/// socket, so after one that took bytes the engine looks for an urgent
/// byte (one `recv(MSG_OOB)` system call; SPEC k05), and the socket's next
/// receive goes to the kernel without a try first.
///
/// [`probe::fixed_support`](crate::probe::fixed_support) says which of the
/// two this kernel does (`ovl doctor` prints it), and
/// [`Counters::fixed_recvs`](crate::Counters::fixed_recvs) and
/// [`fixed_sends`](crate::Counters::fixed_sends) count the requests that
/// used a registered buffer. A socket whose protocol has no zero-copy send
/// (a Unix stream socket from [`Socket::from_fd`](crate::Socket::from_fd))
/// refuses the first fixed send (`EOPNOTSUPP`, not counted); it and the
/// socket's later sends then take the ordinary path. Everything else takes the ordinary path
/// with the same memory: an operation that completes at its start (a
/// non-blocking try in user space), scatter and gather arrays, flags
/// (`PEEK`, `OOB`, `WAITALL`, ...), datagram sockets, a zero-byte receive,
/// the poll engine, and a buffer whose pool another engine registered.
pub struct FixedBuf {
    pub(super) slot: crate::sys::fixed::Slot,
    len: usize,
}

impl std::fmt::Debug for FixedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FixedBuf")
            .field("index", &self.slot.index())
            .field("len", &self.len)
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl FixedBuf {
    /// The buffer's size.
    pub fn capacity(&self) -> usize {
        self.slot.capacity()
    }
    /// The bytes it holds (what a send sends).
    pub fn len(&self) -> usize {
        self.len
    }
    /// True when it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Room left for a receive or [`extend_from_slice`](Self::extend_from_slice).
    pub fn remaining(&self) -> usize {
        self.capacity() - self.len
    }
    /// The buffer's index in its pool (the index registered with the
    /// kernel).
    pub fn index(&self) -> usize {
        self.slot.index() as usize
    }
    /// Forgets the bytes it holds (`len()` becomes 0).
    pub fn clear(&mut self) {
        self.len = 0;
    }
    /// Keeps the first `n` bytes (no-op when it holds fewer).
    pub fn truncate(&mut self, n: usize) {
        self.len = self.len.min(n);
    }
    /// Appends as much of `src` as fits; returns how many bytes it took.
    pub fn extend_from_slice(&mut self, src: &[u8]) -> usize {
        let n = src.len().min(self.remaining());
        let at = self.len;
        self.slot.bytes_mut(at + n)[at..].copy_from_slice(&src[..n]);
        self.len += n;
        n
    }
}

/// The bytes it holds, `..len()`.
impl std::ops::Deref for FixedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.slot.bytes(self.len)
    }
}

impl std::ops::DerefMut for FixedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.slot.bytes_mut(self.len)
    }
}

// The bytes are `..len()` of the slot's buffer (`len <= capacity`, kept by
// every method), initialized (zeroed at allocation), in the pool's region,
// which a move does not move and which the slot keeps alive.
// SAFETY: and only the slot's owner touches them.
unsafe impl IoBuf for FixedBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.slot.ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len
    }
}

// The room is `len()..capacity()` of the same buffer.
// SAFETY: `set_received` extends `len` over the `n <= room` bytes written there.
unsafe impl IoBufMut for FixedBuf {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.slot.ptr().wrapping_add(self.len)
    }
    fn room_len(&self) -> usize {
        self.remaining()
    }
    unsafe fn set_received(&mut self, n: usize) {
        self.len += n.min(self.remaining());
    }
}
