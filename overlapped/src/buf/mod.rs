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
//! A message operation ([`Socket::recv_msg`](crate::Socket::recv_msg),
//! [`Socket::send_msg`](crate::Socket::send_msg)) takes a [`Control`]
//! buffer besides its buffers (the `Control` of `WSAMSG`): a receive offers
//! its capacity as room for the control messages, a send sends its bytes.
//! The engine owns it with the buffers and hands both back.
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

mod context;
mod control;
mod fixed;
mod held;
mod slice;
#[cfg(test)]
mod tests;

pub use context::WithContext;
pub use control::{Control, ControlMessage, ControlMessages, PktInfo};
pub use fixed::{FixedBuf, FixedBufs};
#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub(crate) use held::KeptRx;
pub(crate) use held::{ErasedBufs, RawBufs, check_bufs, erase_rx, erase_tx, take_back};
pub use held::{IoBufs, IoBufsMut};
pub(crate) use held::{erase_msg_rx, erase_msg_tx, take_back_msg};
pub use slice::Slice;
