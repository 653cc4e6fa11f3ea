//! Owned buffers and buffer arrays (the `WSABUF[]` of the model).
//!
//! An operation takes its buffers **by value** and hands them back when it
//! completes, on success and on failure alike. While the operation is in
//! flight the engine owns them, so the kernel can never write into memory
//! the program has already freed or reused.
//!
//! # Which types are buffers
//!
//! A type is a **send buffer** when it implements [`IoBuf`] (the bytes to
//! send) and a **receive buffer** when it also implements [`IoBufMut`] (the
//! room a receive may fill, and what to do with the bytes that landed). Both
//! are `unsafe` traits open to any type whose memory stays put while the
//! engine holds it: a program brings its own pooled, arena or framed
//! buffers by implementing them (their `# Safety` sections say exactly what
//! the kernel needs). Every receive buffer is also a send buffer: what was
//! received can be sent on without a copy (an echo or a relay).
//!
//! What an operation takes is [`IoBufs`] (sends) or [`IoBufsMut`]
//! (receives), implemented for **one** buffer and for a `Vec<_>` or an
//! array `[_; N]` of them (gather on send and scatter on receive, in array
//! order). The crate's buffers:
//!
//! | type | sends | a receive offers | on completion of a receive of `n` bytes |
//! |---|---|---|---|
//! | `Vec<u8>` | `..len()` | `..len()` | truncated to the bytes that landed |
//! | [`Slice`] | its window | its window | the window shrinks to the bytes that landed |
//! | `Box<[u8]>`, `Box<[u8; N]>`, `[u8; N]` | all of it | all of it | unchanged: the completion's `bytes` says how many landed |
//! | `bytes::BytesMut` (feature `bytes`) | `..len()` | the spare capacity `len()..capacity()` | `len()` grows by `n` (like tokio's `read_buf`) |
//! | `bytes::Bytes` (feature `bytes`), `&'static [u8]` | all of it | (send only) | |
//! | [`FixedBuf`] (a registered buffer) | `..len()` | the rest, `len()..capacity()` | `len()` grows by `n` |
//!
//! The convention for a `Vec`'s length mirrors `WSABUF.len`: a receive
//! offers `buf.len()` (fill it with `vec![0; n]` or `buf.resize(n, 0)`) and
//! truncates it to the bytes that landed, `buf.capacity()` unchanged; to
//! receive again into the same buffer restore its length
//! (`buf.resize(buf.capacity(), 0)`), the counterpart of resetting
//! `WSABUF.len` before the next `WSARecv`. A `BytesMut` follows the Rust
//! convention instead: reserve room (`buf.reserve(n)`) and the received
//! bytes are appended; one with no spare capacity offers zero bytes.
//!
//! [`Slice`] is a window into a `Vec<u8>` that keeps its length. A receive
//! shrinks the window to the bytes that landed, and widening it again costs
//! nothing, where restoring a truncated `Vec`'s length writes zeros over the
//! room (16 KiB per message in an echo loop).
//!
//! A plain array `[u8; N]` (also inside a `Vec` or an array) is a buffer
//! although its bytes live inside the value: the engine moves an
//! operation's buffers into a heap allocation of its own before it takes
//! any pointer for the kernel, and moves them out only to hand them back
//! (see [`IoBuf`]'s `# Safety`). A type of a program's own must keep its
//! bytes outside the value (a `Box`, a `Vec`, a pool's slab): implement the
//! traits for `Box<YourType>` to lend an array the type holds inline.
//!
//! [`FixedBuf`], a buffer of an engine's registered pool
//! ([`Engine::register_buffers`](crate::Engine::register_buffers)), sends
//! `..len()` and receives into the rest, appending (like `BytesMut`).
//!
//! A zero-length buffer is legal: a zero-length stream receive is the
//! readiness probe of the model (it completes with 0 when the socket becomes
//! readable and consumes nothing).
//!
//! # Registered (fixed) buffers
//!
//! [`Engine::register_buffers(count, size)`](crate::Engine::register_buffers)
//! makes the engine's pool of `count` buffers of `size` bytes
//! ([`FixedBufs`]); [`FixedBufs::take`] lends one ([`FixedBuf`]), which
//! goes back to the pool when dropped. On io_uring the pool's memory is
//! registered with the kernel (`IORING_REGISTER_BUFFERS`), and a receive or
//! a send of exactly one `FixedBuf` on a stream socket, with no flags,
//! uses the fixed-buffer opcodes when it waits in the kernel (see
//! [`FixedBuf`] for exactly when, and what the kernel measured here
//! offers). Everywhere else, and on the poll engine, a `FixedBuf` is an
//! ordinary buffer: a program written for registered buffers runs on both
//! engines. The memory is never freed while the kernel may use it: the
//! engine that registered it, the pool and every buffer keep it alive, and
//! a buffer the kernel never let go of is leaked with its operation.
//!
//! ```
//! use overlapped::{Engine, MsgFlags, Notify, Socket};
//!
//! # fn main() -> std::io::Result<()> {
//! let engine = Engine::new()?;
//! let pool = engine.register_buffers(16, 16 * 1024)?;
//! let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
//! let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
//! client.connect_wait(listener.local_addr()?)?;
//! let (server, _) = listener.accept_wait()?;
//!
//! let recv = server.recv(pool.take().unwrap(), MsgFlags::empty(), Notify::None)?;
//! let mut msg = pool.take().unwrap();
//! msg.extend_from_slice(b"ping");
//! client.send(msg, MsgFlags::empty(), Notify::None)?.wait()?;
//! let got = recv.wait()?.data;
//! assert_eq!(&got[..], b"ping");
//! // Echo it back as it is; a buffer returns to the pool when dropped.
//! server.send(got, MsgFlags::empty(), Notify::None)?.wait()?;
//! # Ok(()) }
//! ```
//!
//! # A buffer type of your own
//!
//! A receive buffer that appends to what it holds, in the spare capacity of
//! a `Vec` (which it never reallocates while it lends it):
//!
//! ```
//! use overlapped::{Engine, IoBuf, IoBufMut, MsgFlags, Notify, Socket};
//!
//! struct Frame(Vec<u8>);
//!
//! // SAFETY: the bytes are `..len()` of the `Vec`'s heap allocation, which a
//! // move does not move.
//! unsafe impl IoBuf for Frame {
//!     fn stable_ptr(&self) -> *const u8 {
//!         self.0.as_ptr()
//!     }
//!     fn bytes_len(&self) -> usize {
//!         self.0.len()
//!     }
//! }
//!
//! // SAFETY: the room is the spare capacity, in the same allocation;
//! // `set_received` extends the length over the bytes written there.
//! unsafe impl IoBufMut for Frame {
//!     fn stable_mut_ptr(&mut self) -> *mut u8 {
//!         self.0.spare_capacity_mut().as_mut_ptr().cast()
//!     }
//!     fn room_len(&self) -> usize {
//!         self.0.capacity() - self.0.len()
//!     }
//!     unsafe fn set_received(&mut self, n: usize) {
//!         // SAFETY: the engine says `n` bytes of the room were written.
//!         unsafe { self.0.set_len(self.0.len() + n) }
//!     }
//! }
//!
//! # fn main() -> std::io::Result<()> {
//! let engine = Engine::new()?;
//! let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
//! let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
//! client.connect_wait(listener.local_addr()?)?;
//! let (server, _) = listener.accept_wait()?;
//!
//! let mut frame = Frame(Vec::with_capacity(64));
//! frame.0.extend_from_slice(b"len=5:");
//! let room = frame.room_len();
//! // `WAITALL`: complete when the room is full.
//! let recv = server.recv(frame, MsgFlags::WAITALL, Notify::None)?;
//! client.send(vec![b'x'; room], MsgFlags::empty(), Notify::None)?.wait()?;
//! let frame = recv.wait()?.data;
//! assert!(frame.0.starts_with(b"len=5:xxx"));
//! assert_eq!(frame.0.len(), 6 + room);
//! // What was received can be sent on as it is.
//! let sent = server.send(frame, MsgFlags::empty(), Notify::None)?.wait()?;
//! assert_eq!(sent.bytes, 6 + room);
//! # Ok(()) }
//! ```

#![allow(unsafe_code)]

use std::any::Any;
use std::io::IoSlice;

/// The most buffers one operation may carry (Linux `UIO_MAXIOV`).
///
/// Winsock documents no limit on NT; Linux refuses more than 1,024 iovecs
/// with `EMSGSIZE`. A start with more buffers fails with
/// [`std::io::ErrorKind::InvalidInput`].
pub const IOV_MAX: usize = 1024;

/// A buffer an operation can send from: `bytes_len()` bytes at
/// `stable_ptr()`.
///
/// # Safety
///
/// The kernel reads these bytes while the operation is in flight, after the
/// call that started it has returned, so an implementation promises:
///
/// * `stable_ptr()` points at `bytes_len()` initialized bytes, all inside
///   one live allocation (the length never exceeds it);
/// * from the start of an operation that takes the value until the engine
///   hands the value back (or drops it, which it does only once the kernel
///   has let go), the pointer and length stay valid and the same on every
///   call, **even when the value itself is moved**, and nobody else writes
///   those bytes or frees them: the bytes live on the heap or in other
///   address-stable storage (a `Vec`'s or a `Box`'s allocation, a pool's
///   slab, a `'static`), never inside the value;
/// * the value may be sent to another thread (`Send`) and owns or shares
///   its memory for as long as it lives (`'static`).
///
/// (The crate's own `[u8; N]` keeps its bytes inline: it relies on the
/// engine boxing every operation's buffers before it takes a pointer, a
/// guarantee of this engine, not of the trait.)
pub unsafe trait IoBuf: Send + 'static {
    /// The first byte to send.
    fn stable_ptr(&self) -> *const u8;
    /// How many bytes to send, from [`stable_ptr`](IoBuf::stable_ptr).
    fn bytes_len(&self) -> usize;
}

/// A buffer an operation can receive into: `room_len()` bytes at
/// `stable_mut_ptr()`, and what to do with the bytes that landed.
///
/// Every receive buffer is a send buffer too ([`IoBuf`] is the supertrait):
/// a receive hands the value back and it can be sent on as it is.
///
/// # Safety
///
/// The kernel writes the room while the operation is in flight, after the
/// call that started it has returned, so an implementation promises, on top
/// of [`IoBuf`]'s rules:
///
/// * `stable_mut_ptr()` points at `room_len()` writable bytes, all inside
///   one live allocation (the length never exceeds it). The room may be
///   uninitialized: the engine never reads it and never makes a reference
///   to it before bytes land;
/// * from the start of a receive until the engine hands the value back (or
///   drops it once the kernel has let go), the pointer and length stay
///   valid and the same on every call, **even when the value itself is
///   moved**, and nobody else reads, writes or frees the room: it lives on
///   the heap or in other address-stable storage, never inside the value.
pub unsafe trait IoBufMut: IoBuf {
    /// The first byte of the room offered to a receive.
    fn stable_mut_ptr(&mut self) -> *mut u8;
    /// How many bytes of room, from
    /// [`stable_mut_ptr`](IoBufMut::stable_mut_ptr).
    fn room_len(&self) -> usize;
    /// Records a receive: its first `n` bytes of room now hold received
    /// data (`n` may be 0). The engine calls it once, when it hands the
    /// value back from a receive that completed (also with an error, with
    /// the bytes that arrived before it), and not at all when the start
    /// failed (the value comes back untouched).
    ///
    /// # Safety
    ///
    /// `n <= room_len()`, and the first `n` bytes of the room were written
    /// since the room was offered (an implementation may treat them as
    /// initialized).
    unsafe fn set_received(&mut self, n: usize);
}

// A `Vec`'s bytes are one heap allocation that a move of the `Vec` does
// not move.
// SAFETY: `..len()` is initialized and within that allocation.
unsafe impl IoBuf for Vec<u8> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

// As for `IoBuf`: the room `..len()` is initialized, in the heap allocation.
// SAFETY: that, and truncating to `n <= len()` frees nothing.
unsafe impl IoBufMut for Vec<u8> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn room_len(&self) -> usize {
        self.len()
    }
    unsafe fn set_received(&mut self, n: usize) {
        self.truncate(n);
    }
}

// The only ways to set the window check that it lies within the `Vec`'s
// length.
// SAFETY: so it is in the heap allocation, which a move does not move.
unsafe impl IoBuf for Slice {
    fn stable_ptr(&self) -> *const u8 {
        self.window().as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.end - self.start
    }
}

// As for `IoBuf`; the window is initialized (within the `Vec`'s length).
// SAFETY: that, and shrinking the window frees nothing.
unsafe impl IoBufMut for Slice {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.window_mut().as_mut_ptr()
    }
    fn room_len(&self) -> usize {
        self.end - self.start
    }
    unsafe fn set_received(&mut self, n: usize) {
        self.keep(n);
    }
}

// SAFETY: one initialized heap allocation, which a move of the box does not move.
unsafe impl IoBuf for Box<[u8]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

// SAFETY: as for `IoBuf`; recording a receive changes nothing.
unsafe impl IoBufMut for Box<[u8]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn room_len(&self) -> usize {
        self.len()
    }
    unsafe fn set_received(&mut self, _n: usize) {}
}

// SAFETY: `N` initialized bytes on the heap, which a move of the box does not move.
unsafe impl<const N: usize> IoBuf for Box<[u8; N]> {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        N
    }
}

// SAFETY: as for `IoBuf`; recording a receive changes nothing.
unsafe impl<const N: usize> IoBufMut for Box<[u8; N]> {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.as_mut_ptr()
    }
    fn room_len(&self) -> usize {
        N
    }
    unsafe fn set_received(&mut self, _n: usize) {}
}

// SAFETY: `'static` bytes are never freed and, behind `&`, never written.
unsafe impl IoBuf for &'static [u8] {
    fn stable_ptr(&self) -> *const u8 {
        self.as_ptr()
    }
    fn bytes_len(&self) -> usize {
        self.len()
    }
}

/// `BytesMut` sends `..len()` and receives into its spare capacity.
#[cfg(feature = "bytes")]
mod bytes_impls {
    use super::{IoBuf, IoBufMut};
    use bytes::{Bytes, BytesMut};

    // A `BytesMut` is a handle to heap storage that a move does not move, and
    // it alone may touch its `..capacity()` range.
    // SAFETY: that storage outlives the handle; `..len()` is initialized.
    unsafe impl IoBuf for BytesMut {
        fn stable_ptr(&self) -> *const u8 {
            self.as_ptr()
        }
        fn bytes_len(&self) -> usize {
            self.len()
        }
    }

    // The room is the spare capacity `len()..capacity()`, in the same
    // storage, which only this `BytesMut` may touch.
    // SAFETY: `set_received` extends `len()` over the `n` bytes written there.
    unsafe impl IoBufMut for BytesMut {
        fn stable_mut_ptr(&mut self) -> *mut u8 {
            self.spare_capacity_mut().as_mut_ptr().cast()
        }
        fn room_len(&self) -> usize {
            self.capacity() - self.len()
        }
        unsafe fn set_received(&mut self, n: usize) {
            let n = n.min(self.capacity() - self.len());
            // The caller says the first `n` bytes of the spare capacity were
            // written.
            // SAFETY: those are initialized now, and `len + n <= capacity`.
            unsafe { self.set_len(self.len() + n) };
        }
    }

    // A `Bytes` is a handle to immutable storage (heap or static) that stays
    // alive while any handle to it lives.
    // SAFETY: and a move of the handle does not move that storage.
    unsafe impl IoBuf for Bytes {
        fn stable_ptr(&self) -> *const u8 {
            self.as_ptr()
        }
        fn bytes_len(&self) -> usize {
            self.len()
        }
    }
}

/// A window `start..end` of an owned `Vec<u8>`: a `WSABUF` that points into
/// a larger buffer.
///
/// A send sends the window's bytes; a receive offers the window and, on
/// completion, shrinks the window to the bytes that landed in it. The
/// `Vec` itself keeps its length, so receiving again needs no refill: set
/// the window back with [`Slice::set_range`]. Two uses:
///
/// * an echo or relay loop receives into `Slice::from(vec![0; 16384])`,
///   sends the `Slice` it gets back (exactly the received bytes), then
///   widens it again, with no zeroing between messages;
/// * a framing loop appends: receive into `filled..capacity` of one buffer
///   until a whole message is there.
///
/// The window can only be set within the `Vec`'s length, and the `Vec` is
/// reachable only by value ([`Slice::into_inner`]) or read-only, so a window
/// handed to the kernel always lies inside the allocation.
#[derive(Clone, PartialEq, Eq)]
pub struct Slice {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Slice {
    /// The window `range` of `buf`.
    ///
    /// # Panics
    /// When `range` does not lie within `buf.len()` (as slice indexing does).
    pub fn new(buf: Vec<u8>, range: impl std::ops::RangeBounds<usize>) -> Slice {
        let mut s = Slice::from(buf);
        s.set_range(range);
        s
    }

    /// Moves the window to `range`.
    ///
    /// # Panics
    /// When `range` does not lie within the buffer's length.
    pub fn set_range(&mut self, range: impl std::ops::RangeBounds<usize>) {
        use std::ops::Bound;
        let len = self.buf.len();
        let start = match range.start_bound() {
            Bound::Included(&a) => a,
            Bound::Excluded(&a) => a.checked_add(1).expect("range start overflows"),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&b) => b.checked_add(1).expect("range end overflows"),
            Bound::Excluded(&b) => b,
            Bound::Unbounded => len,
        };
        assert!(
            start <= end && end <= len,
            "window {start}..{end} is not within a buffer of {len} bytes"
        );
        (self.start, self.end) = (start, end);
    }

    /// The window, as a range of the buffer.
    pub fn range(&self) -> std::ops::Range<usize> {
        self.start..self.end
    }

    /// The whole buffer, window or not.
    pub fn buffer(&self) -> &[u8] {
        &self.buf
    }

    /// The buffer, giving up the window.
    pub fn into_inner(self) -> Vec<u8> {
        self.buf
    }
}

/// The window and the buffer's length, not the bytes (a receive buffer is
/// often 16 KiB of mostly stale data).
impl std::fmt::Debug for Slice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slice")
            .field("range", &self.range())
            .field("buffer_len", &self.buf.len())
            .finish()
    }
}

/// The whole buffer as the window.
impl From<Vec<u8>> for Slice {
    fn from(buf: Vec<u8>) -> Slice {
        let end = buf.len();
        Slice { buf, start: 0, end }
    }
}

/// The window's bytes.
impl std::ops::Deref for Slice {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.window()
    }
}

impl std::ops::DerefMut for Slice {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.window_mut()
    }
}

impl Slice {
    fn window(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn window_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    /// Keeps the first `n` bytes of the window.
    fn keep(&mut self, n: usize) {
        self.end = self.start + n.min(self.end - self.start);
    }
}

/// One buffer of an operation, as the engine sees it: the user's
/// [`IoBuf`]/[`IoBufMut`] types and the crate's inline arrays.
trait TxPiece: Send + 'static {
    fn tx(&self) -> (*const u8, usize);
}

trait RxPiece: TxPiece {
    fn rx(&mut self) -> (*mut u8, usize);
    fn room(&self) -> usize;
    /// # Safety
    /// As [`IoBufMut::set_received`].
    unsafe fn landed(&mut self, n: usize);
}

impl<T: IoBuf> TxPiece for T {
    fn tx(&self) -> (*const u8, usize) {
        (self.stable_ptr(), self.bytes_len())
    }
}

impl<T: IoBufMut> RxPiece for T {
    fn rx(&mut self) -> (*mut u8, usize) {
        (self.stable_mut_ptr(), self.room_len())
    }
    fn room(&self) -> usize {
        self.room_len()
    }
    unsafe fn landed(&mut self, n: usize) {
        // SAFETY: the caller keeps `set_received`'s contract.
        unsafe { self.set_received(n) }
    }
}

/// An inline array: its bytes move with the value, which the engine keeps
/// in a box of its own from before it takes a pointer until it hands the
/// value back (`ErasedBufs`), so they stay put while the kernel sees them.
impl<const N: usize> TxPiece for [u8; N] {
    fn tx(&self) -> (*const u8, usize) {
        (self.as_ptr(), N)
    }
}

impl<const N: usize> RxPiece for [u8; N] {
    fn rx(&mut self) -> (*mut u8, usize) {
        (self.as_mut_ptr(), N)
    }
    fn room(&self) -> usize {
        N
    }
    unsafe fn landed(&mut self, _n: usize) {}
}

/// What every buffer type is to the operations: a slice of pieces. One
/// buffer is a slice of one.
trait Pieces: Send + 'static {
    type Piece: TxPiece;
    fn pieces(&self) -> &[Self::Piece];
    fn pieces_mut(&mut self) -> &mut [Self::Piece];
}

impl<P: TxPiece> Pieces for P {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        std::slice::from_ref(self)
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        std::slice::from_mut(self)
    }
}

impl<P: TxPiece> Pieces for Vec<P> {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        self
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        self
    }
}

impl<P: TxPiece, const N: usize> Pieces for [P; N] {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        self
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        self
    }
}

pub(crate) use sealed::FixedPart;

mod sealed {
    /// The window of an operation's one [`FixedBuf`](super::FixedBuf), for the engine: its
    /// pool, its index in the pool, and the window's start and length (inside
    /// that buffer). Made only from a `FixedBuf` the engine holds.
    #[derive(Debug, Clone, Copy)]
    pub struct FixedPart {
        pub(crate) pool: u64,
        pub(crate) index: u16,
        pub(crate) ptr: *mut u8,
        pub(crate) len: usize,
    }

    /// The pieces of a send, for the engine.
    pub trait Tx: Send + 'static {
        /// Start and length of each piece's bytes to send, in order.
        #[doc(hidden)]
        fn tx_each(&self, f: &mut dyn FnMut(*const u8, usize));
        /// The one piece's, when there is exactly one.
        #[doc(hidden)]
        fn tx_one(&self) -> Option<(*const u8, usize)>;
        /// The total length, `None` when it overflows.
        #[doc(hidden)]
        fn tx_len(&self) -> Option<usize>;
        /// The one piece's registered buffer, when there is exactly one
        /// piece and it is a [`FixedBuf`](super::FixedBuf).
        #[doc(hidden)]
        fn tx_fixed(&self) -> Option<FixedPart> {
            None
        }
    }
    /// The pieces of a receive, for the engine.
    pub trait Rx: Tx {
        /// Start and length of each piece's room, in order.
        #[doc(hidden)]
        fn rx_each(&mut self, f: &mut dyn FnMut(*mut u8, usize));
        #[doc(hidden)]
        fn rx_total(&self) -> Option<usize>;
        /// Records a receive of `n` bytes, scattered in array order.
        ///
        /// # Safety
        /// The first `n` bytes of the rooms, in array order, were written.
        #[doc(hidden)]
        unsafe fn rx_landed(&mut self, n: usize);
        /// The one piece's registered buffer and its room, when there is
        /// exactly one piece and it is a [`FixedBuf`](super::FixedBuf).
        #[doc(hidden)]
        fn rx_fixed(&mut self) -> Option<FixedPart> {
            None
        }
    }
}

impl<T: Pieces> sealed::Tx for T {
    fn tx_each(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for b in self.pieces() {
            let (p, n) = b.tx();
            f(p, n);
        }
    }
    fn tx_one(&self) -> Option<(*const u8, usize)> {
        match self.pieces() {
            [b] => Some(b.tx()),
            _ => None,
        }
    }
    fn tx_len(&self) -> Option<usize> {
        self.pieces()
            .iter()
            .try_fold(0usize, |acc, b| acc.checked_add(b.tx().1))
    }
    fn tx_fixed(&self) -> Option<FixedPart> {
        let [b] = self.pieces() else { return None };
        let f = (b as &dyn Any).downcast_ref::<FixedBuf>()?;
        Some(FixedPart {
            pool: f.slot.pool_id(),
            index: f.slot.index(),
            ptr: f.stable_ptr().cast_mut(),
            len: f.bytes_len(),
        })
    }
}

impl<T: Pieces> sealed::Rx for T
where
    T::Piece: RxPiece,
{
    fn rx_each(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for b in self.pieces_mut() {
            let (p, n) = b.rx();
            f(p, n);
        }
    }
    fn rx_total(&self) -> Option<usize> {
        self.pieces()
            .iter()
            .try_fold(0usize, |acc, b| acc.checked_add(b.room()))
    }
    unsafe fn rx_landed(&mut self, mut n: usize) {
        for b in self.pieces_mut() {
            let here = n.min(b.room());
            // The caller says the first `n` bytes of the rooms were written.
            // SAFETY: `here` of them are this piece's first bytes.
            unsafe { b.landed(here) };
            n -= here;
        }
    }
    fn rx_fixed(&mut self) -> Option<FixedPart> {
        let [b] = self.pieces_mut() else { return None };
        let f = (b as &mut dyn Any).downcast_mut::<FixedBuf>()?;
        Some(FixedPart {
            pool: f.slot.pool_id(),
            index: f.slot.index(),
            ptr: f.stable_mut_ptr(),
            len: f.room_len(),
        })
    }
}

/// Buffers a send can own: one [`IoBuf`] (a `Vec<u8>`, a [`Slice`], a
/// boxed slice or array, an array `[u8; N]`, a type of the program's own,
/// `bytes::Bytes` or `BytesMut` with the `bytes` feature, ...), or a
/// `Vec<_>` or array `[_; N]` of one such type (gathered in array order).
///
/// Implemented by the crate for those shapes only; bring a buffer type by
/// implementing [`IoBuf`].
pub trait IoBufs: sealed::Tx {
    /// Number of buffers in the array.
    fn buf_count(&self) -> usize;
}

/// Buffers a receive can own: one [`IoBufMut`], or a `Vec<_>` or array
/// `[_; N]` of one such type (scattered in array order).
///
/// Every `IoBufsMut` is an [`IoBufs`]: what a receive hands back can be
/// sent.
pub trait IoBufsMut: IoBufs + sealed::Rx {}

impl<T: Pieces> IoBufs for T {
    fn buf_count(&self) -> usize {
        self.pieces().len()
    }
}

impl<T: Pieces> IoBufsMut for T where T::Piece: RxPiece {}

/// Checks an operation's buffers at start: at least one buffer, at most
/// [`IOV_MAX`], and a total length that fits the kernel's `ssize_t`.
/// Returns the total length.
pub(crate) fn check_bufs(bufs: &dyn RawBufs) -> std::io::Result<usize> {
    use std::io::{Error, ErrorKind};
    let n = bufs.buf_count();
    if n == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an operation needs at least one buffer (the buffer array is empty)",
        ));
    }
    if n > IOV_MAX {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{n} buffers is more than the system allows (IOV_MAX = {IOV_MAX})"),
        ));
    }
    let total = bufs
        .total_len()
        .filter(|&t| t <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "the buffers' total length overflows",
            )
        })?;
    Ok(total)
}

/// An operation's buffers as the engine sees them: the windows of its
/// direction (the bytes to send, or the room of a receive), in array order.
pub(crate) trait RawBufs: Send {
    /// Number of buffers.
    fn buf_count(&self) -> usize;
    /// The windows' total length, `None` when it overflows.
    fn total_len(&self) -> Option<usize>;
    /// Calls `f` with the start pointer and length of each window, in
    /// order, for the kernel. A send's windows are only ever read through
    /// them (`*mut` for the iovecs).
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize));
    /// A send's windows, for a send in user space (a receive's: none).
    fn io_slices(&self) -> Vec<IoSlice<'_>>;
    /// A send's one window, when it has exactly one (the common case, which
    /// needs no iovec array); `None` for a receive.
    fn one(&self) -> Option<&[u8]>;
    /// Copies `src` into a receive's room past its first `skip` bytes, in
    /// array order: the bytes copied, and the room there was past `skip`
    /// (a send has none).
    fn copy_in(&mut self, skip: usize, src: &[u8]) -> (usize, usize);
    /// Records that the first `n` bytes of a receive's room hold received
    /// data, as the kernel (or [`copy_in`](RawBufs::copy_in)) reported
    /// writing them. The last record is applied to the buffers when they
    /// are handed back ([`take_back`]); nothing for a send.
    fn set_received(&mut self, n: usize);
    /// Appends the first `n` bytes received (at most the recorded count) to
    /// `out`, in array order (nothing for a send).
    fn received(&mut self, n: usize, out: &mut Vec<u8>);
    /// The window of the operation's direction, when the buffers are
    /// exactly one [`FixedBuf`]: the bytes to send, or a receive's room.
    fn fixed(&mut self) -> Option<FixedPart>;
}

/// Buffers with their type erased while the engine holds them: a send's
/// ([`erase_tx`]) or a receive's ([`erase_rx`]), always in the box these
/// functions make, from which only [`take_back`] moves them out.
pub(crate) trait ErasedBufs: RawBufs {
    fn as_bufs(&mut self) -> &mut dyn RawBufs;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A send's buffers.
struct Tx<B>(B);

/// A receive's buffers and the bytes recorded as received.
struct Rx<B> {
    bufs: B,
    landed: Option<usize>,
}

/// Boxes a send's buffers for the engine (before any pointer is taken).
pub(crate) fn erase_tx<B: IoBufs>(bufs: B) -> Box<dyn ErasedBufs> {
    Box::new(Tx(bufs))
}

/// Boxes a receive's buffers for the engine (before any pointer is taken).
pub(crate) fn erase_rx<B: IoBufsMut>(bufs: B) -> Box<dyn ErasedBufs> {
    Box::new(Rx { bufs, landed: None })
}

/// The buffers the engine was given, back out of their box, with a
/// receive's record applied ([`IoBufMut::set_received`]). `None` when they
/// are not a `B` (which a typed start never does).
pub(crate) fn take_back<B: 'static>(bufs: Box<dyn ErasedBufs>) -> Option<B> {
    match bufs.into_any().downcast::<Tx<B>>() {
        Ok(tx) => Some(tx.0),
        Err(any) => any.downcast::<Rx<B>>().ok().map(|rx| rx.bufs),
    }
}

impl<B: IoBufs> RawBufs for Tx<B> {
    fn buf_count(&self) -> usize {
        self.0.buf_count()
    }
    fn total_len(&self) -> Option<usize> {
        self.0.tx_len()
    }
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.0.tx_each(&mut |p, n| f(p.cast_mut(), n));
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        let mut out = Vec::with_capacity(self.0.buf_count());
        self.0.tx_each(&mut |p, n| {
            // `IoBuf` (or the inline array, boxed with `self`) promises `n`
            // initialized bytes at `p` that nobody writes while the engine
            // holds the value.
            // SAFETY: so while `&self` borrows the value.
            out.push(IoSlice::new(unsafe { std::slice::from_raw_parts(p, n) }));
        });
        out
    }
    fn one(&self) -> Option<&[u8]> {
        let (p, n) = self.0.tx_one()?;
        // SAFETY: as in `io_slices`.
        Some(unsafe { std::slice::from_raw_parts(p, n) })
    }
    fn copy_in(&mut self, _skip: usize, _src: &[u8]) -> (usize, usize) {
        (0, 0)
    }
    fn set_received(&mut self, _n: usize) {}
    fn received(&mut self, _n: usize, _out: &mut Vec<u8>) {}
    fn fixed(&mut self) -> Option<FixedPart> {
        self.0.tx_fixed()
    }
}

impl<B: IoBufsMut> RawBufs for Rx<B> {
    fn buf_count(&self) -> usize {
        self.bufs.buf_count()
    }
    fn total_len(&self) -> Option<usize> {
        self.bufs.rx_total()
    }
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.bufs.rx_each(f);
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        Vec::new()
    }
    fn one(&self) -> Option<&[u8]> {
        None
    }
    fn copy_in(&mut self, mut skip: usize, src: &[u8]) -> (usize, usize) {
        let (mut n, mut room) = (0, 0);
        self.bufs.rx_each(&mut |p, len| {
            let here = skip.min(len);
            skip -= here;
            room += len - here;
            let take = (len - here).min(src.len() - n);
            // `IoBufMut` (or the inline array, boxed with `self`) promises
            // `len` writable bytes at `p` that nobody else touches while the
            // engine holds the value; `src` is the engine's own memory.
            // SAFETY: that, and `here + take <= len`.
            unsafe {
                std::ptr::copy_nonoverlapping(src[n..].as_ptr(), p.add(here), take);
            }
            n += take;
        });
        (n, room)
    }
    fn set_received(&mut self, n: usize) {
        self.landed = Some(n.min(self.bufs.rx_total().unwrap_or(0)));
    }
    fn received(&mut self, n: usize, out: &mut Vec<u8>) {
        let mut n = n.min(self.landed.unwrap_or(0));
        self.bufs.rx_each(&mut |p, len| {
            let here = n.min(len);
            // The first `landed` bytes of the rooms were written (the
            // record's contract) and the room is valid while the engine holds
            // the value.
            // SAFETY: `here` bytes of this room are among them.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(p, here) });
            n -= here;
        });
    }
    fn fixed(&mut self) -> Option<FixedPart> {
        self.bufs.rx_fixed()
    }
}

impl<B: IoBufs> ErasedBufs for Tx<B> {
    fn as_bufs(&mut self) -> &mut dyn RawBufs {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl<B: IoBufsMut> ErasedBufs for Rx<B> {
    fn as_bufs(&mut self) -> &mut dyn RawBufs {
        self
    }
    fn into_any(mut self: Box<Self>) -> Box<dyn Any + Send> {
        if let Some(n) = self.landed.take() {
            // `RawBufs::set_received` records only bytes the kernel or
            // `copy_in` wrote at the start of the rooms.
            // SAFETY: so `n` bytes were written, at most the rooms' total length.
            unsafe { self.bufs.rx_landed(n) };
        }
        self
    }
}

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
    slot: crate::sys::fixed::Slot,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A receive of `src` as the engine does it: copied into the room, the
    /// count recorded, the buffers handed back.
    fn receive<B: IoBufsMut>(bufs: B, src: &[u8]) -> (usize, B) {
        let mut e = erase_rx(bufs);
        let (n, _) = e.copy_in(0, src);
        e.set_received(n);
        (n, take_back::<B>(e).unwrap())
    }

    #[test]
    fn scatter_truncates_in_array_order() {
        let (n, b) = receive(
            vec![vec![0u8; 3], vec![0u8; 5], vec![0u8; 100]],
            b"abcdefgh",
        );
        assert_eq!(n, 8);
        assert_eq!(b, vec![b"abc".to_vec(), b"defgh".to_vec(), vec![]]);
        assert_eq!(b[2].capacity(), 100);
    }

    #[test]
    fn slice_windows_scatter_and_keep_the_buffer() {
        let b = [Slice::new(vec![7u8; 10], 2..5), Slice::from(vec![0u8; 4])];
        let mut e = erase_rx(b);
        assert_eq!(e.total_len(), Some(7));
        assert_eq!(e.buf_count(), 2);
        assert_eq!(e.copy_in(0, b"12345"), (5, 7));
        e.set_received(5);
        let mut landed = Vec::new();
        e.received(9, &mut landed);
        assert_eq!(landed, b"12345");
        let mut b = take_back::<[Slice; 2]>(e).unwrap();
        assert_eq!((b[0].range(), b[1].range()), (2..5, 0..2));
        assert_eq!((&b[0][..], &b[1][..]), (&b"123"[..], &b"45"[..]));
        assert_eq!((b[0].buffer().len(), b[1].buffer().len()), (10, 4));
        b[1].set_range(1..=3);
        assert_eq!(b[1].len(), 3);
        assert_eq!(b[1].clone().into_inner(), vec![b'4', b'5', 0, 0]);
        assert_eq!(
            format!("{:?}", b[1]),
            "Slice { range: 1..4, buffer_len: 4 }"
        );
    }

    #[test]
    #[should_panic(expected = "not within a buffer of 4 bytes")]
    fn slice_window_beyond_the_buffer_panics() {
        let _ = Slice::new(vec![0u8; 4], 2..5);
    }

    #[test]
    fn check_rejects_empty_and_too_many() {
        assert!(check_bufs(erase_tx(Vec::<Vec<u8>>::new()).as_bufs()).is_err());
        let many: Vec<Vec<u8>> = (0..IOV_MAX + 1).map(|_| vec![0u8; 1]).collect();
        assert!(check_bufs(erase_rx(many).as_bufs()).is_err());
        let max: Vec<Vec<u8>> = (0..IOV_MAX).map(|_| vec![0u8; 1]).collect();
        assert_eq!(check_bufs(erase_tx(max).as_bufs()).unwrap(), IOV_MAX);
    }

    #[test]
    fn a_send_shows_its_bytes_and_takes_nothing_in() {
        let mut e = erase_tx([b"ab".to_vec(), b"cde".to_vec()]);
        assert_eq!(e.total_len(), Some(5));
        assert!(e.one().is_none());
        let got: Vec<u8> = e.io_slices().iter().flat_map(|s| s.to_vec()).collect();
        assert_eq!(got, b"abcde");
        assert_eq!(e.copy_in(0, b"x"), (0, 0));
        e.set_received(1);
        let b = take_back::<[Vec<u8>; 2]>(e).unwrap();
        assert_eq!(b, [b"ab".to_vec(), b"cde".to_vec()]);
        let e = erase_tx(&b"static"[..]);
        assert_eq!(e.one(), Some(&b"static"[..]));
        // Another type than the one given is not handed back.
        assert!(take_back::<Vec<u8>>(e).is_none());
    }

    #[test]
    fn fixed_arrays_keep_their_length() {
        let (n, b) = receive([[0u8; 2]; 3], b"abc");
        assert_eq!((n, b), (3, [*b"ab", [b'c', 0], [0, 0]]));
        let (n, b) = receive(Box::new([9u8; 4]), b"xy");
        assert_eq!((n, &b[..]), (2, &b"xy\x09\x09"[..]));
        let (n, b) = receive(vec![0u8; 3].into_boxed_slice(), b"abcdef");
        assert_eq!((n, &b[..]), (3, &b"abc"[..]));
    }

    #[test]
    fn every_split_of_a_receive_lands_in_array_order() {
        let src: Vec<u8> = (1..=12).collect();
        for sizes in [&[0usize, 3, 0, 4][..], &[1, 1, 1], &[5], &[2, 0, 7, 3]] {
            let total: usize = sizes.iter().sum();
            for skip in 0..=total {
                for n in 0..=total - skip {
                    let bufs: Vec<Vec<u8>> = sizes.iter().map(|&k| vec![0u8; k]).collect();
                    let mut e = erase_rx(bufs);
                    let (copied, room) = e.copy_in(skip, &src[..n]);
                    assert_eq!((copied, room), (n, total - skip));
                    e.set_received(skip + n);
                    let mut landed = Vec::new();
                    e.received(total, &mut landed);
                    assert_eq!(landed.len(), skip + n);
                    assert_eq!(&landed[skip..], &src[..n]);
                    let back = take_back::<Vec<Vec<u8>>>(e).unwrap();
                    assert_eq!(back.concat(), landed);
                    let mut left = skip + n;
                    for (b, &k) in back.iter().zip(sizes) {
                        assert_eq!(b.len(), left.min(k));
                        left -= left.min(k);
                    }
                }
            }
        }
    }

    #[test]
    fn a_start_that_fails_hands_back_untouched() {
        // Nothing recorded: a `Vec` keeps its length.
        let e = erase_rx(vec![1u8; 4]);
        assert_eq!(take_back::<Vec<u8>>(e).unwrap(), vec![1u8; 4]);
    }

    #[cfg(feature = "bytes")]
    #[test]
    fn bytes_mut_receives_into_its_spare_capacity() {
        let mut b = bytes::BytesMut::with_capacity(8);
        b.extend_from_slice(b"ab");
        let (n, b) = receive(b, b"cdefghijk");
        assert_eq!((n, &b[..]), (6, &b"abcdefgh"[..]));
        // No spare capacity: a zero-byte receive.
        let (n, b) = receive(b, b"z");
        assert_eq!((n, &b[..]), (0, &b"abcdefgh"[..]));
        // Scattered over two, then sent from both.
        let two = [
            bytes::BytesMut::with_capacity(2),
            bytes::BytesMut::with_capacity(3),
        ];
        let (n, two) = receive(two, b"12345");
        assert_eq!((n, &two[0][..], &two[1][..]), (5, &b"12"[..], &b"345"[..]));
        let e = erase_tx(two);
        assert_eq!(e.total_len(), Some(5));
        let e = erase_tx(bytes::Bytes::from_static(b"hi"));
        assert_eq!(e.one(), Some(&b"hi"[..]));
    }

    #[test]
    fn only_one_fixed_buf_shows_its_registered_window() {
        let pool = FixedBufs::new(crate::sys::fixed::Pool::new(3, 16).unwrap());
        let mut b = pool.take().unwrap();
        assert_eq!(b.extend_from_slice(b"abc"), 3);
        let index = b.index() as u16;
        // A send: the bytes `..len()`.
        let mut e = erase_tx(b);
        let f = e.fixed().expect("one FixedBuf");
        assert_eq!((f.index, f.len), (index, 3));
        let b = take_back::<FixedBuf>(e).unwrap();
        // A receive: the room past the bytes, and the count appended.
        let mut e = erase_rx(b);
        let f = e.fixed().expect("one FixedBuf");
        assert_eq!((f.index, f.len), (index, 13));
        assert_eq!(e.copy_in(0, b"defg"), (4, 13));
        e.set_received(4);
        let b = take_back::<FixedBuf>(e).unwrap();
        assert_eq!(&b[..], b"abcdefg");
        // Arrays of them, and other buffers, have none.
        let two = [b, pool.take().unwrap()];
        assert!(erase_tx(two).fixed().is_none());
        assert!(erase_rx(vec![0u8; 4]).fixed().is_none());
        assert!(erase_tx(vec![pool.take().unwrap()]).fixed().is_some());
        // Every buffer went back to the pool (the boxes above dropped).
        assert_eq!(pool.available(), 3);
    }
}
