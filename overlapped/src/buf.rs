//! Owned buffers and buffer arrays (the `WSABUF[]` of the model).
//!
//! An operation takes its buffers **by value** and hands them back when it
//! completes, on success and on failure alike. While the operation is in
//! flight the engine owns them, so the kernel can never write into memory
//! the program has already freed or reused.
//!
//! The convention for a buffer's length mirrors `WSABUF.len`:
//!
//! * **send**: the bytes `buf[..buf.len()]` are sent; an array is gathered in
//!   array order.
//! * **receive**: `buf.len()` is the room offered (fill it with
//!   `vec![0; n]` or `buf.resize(n, 0)`); an array is scattered in array
//!   order. On completion each buffer is **truncated to the bytes that landed
//!   in it**, so `buf` is exactly the data received and `buf.capacity()` is
//!   unchanged. To receive again into the same buffer, restore its length
//!   (`buf.resize(buf.capacity(), 0)`) — the counterpart of resetting
//!   `WSABUF.len` before the next `WSARecv`.
//!
//! [`Slice`] is the other buffer: a window into a `Vec<u8>` that keeps its
//! length. A receive shrinks the window to the bytes that landed, and
//! widening it again costs nothing, where restoring a truncated `Vec`'s
//! length writes zeros over the room (16 KiB per message in an echo loop).
//!
//! A zero-length buffer is legal: a zero-length stream receive is the
//! readiness probe of the model (it completes with 0 when the socket becomes
//! readable and consumes nothing).
//!
//! The trait is sealed: only buffer types whose bytes live on the heap, at an
//! address that does not change when the value is moved, can be lent to the
//! kernel.

use std::any::Any;
use std::io::{IoSlice, IoSliceMut};

/// The most buffers one operation may carry (Linux `UIO_MAXIOV`).
///
/// Winsock documents no limit on NT; Linux refuses more than 1,024 iovecs
/// with `EMSGSIZE`. A start with more buffers fails with
/// [`std::io::ErrorKind::InvalidInput`].
pub const IOV_MAX: usize = 1024;

mod sealed {
    pub trait Sealed {}
}

/// Buffers an operation can own: one `Vec<u8>` or [`Slice`], or a
/// `Vec<_>` or array `[_; N]` of them.
///
/// Sealed: implemented only for types whose bytes are heap allocations that
/// stay put when the value moves.
pub trait IoBufs: sealed::Sealed + Send + 'static {
    /// Number of buffers in the array.
    fn buf_count(&self) -> usize;
    /// The buffers' lengths, in array order.
    #[doc(hidden)]
    fn lens(&self, out: &mut Vec<usize>);
    /// Slices over each buffer's `..len()` bytes, for sending.
    #[doc(hidden)]
    fn io_slices(&self) -> Vec<IoSlice<'_>>;
    /// Mutable slices over each buffer's `..len()` bytes, for receiving.
    #[doc(hidden)]
    fn io_slices_mut(&mut self) -> Vec<IoSliceMut<'_>>;
    /// Start pointer and length of each buffer, for the kernel.
    #[doc(hidden)]
    fn raw_parts(&mut self, out: &mut Vec<(*mut u8, usize)>);
    /// After a receive of `n` bytes: truncate each buffer, in array order, to
    /// the bytes that landed in it.
    #[doc(hidden)]
    fn set_received(&mut self, n: usize);
    /// The buffer's bytes, when the array holds exactly one (the common
    /// case, which needs no iovec array).
    #[doc(hidden)]
    fn one(&mut self) -> Option<&mut [u8]>;
    /// The total length, `None` when it overflows.
    #[doc(hidden)]
    fn total_len(&self) -> Option<usize>;
}

/// One buffer of an array: a `Vec<u8>` (its `..len()`) or a [`Slice`] (its
/// window). The operations see only the window.
trait Piece {
    fn window(&self) -> &[u8];
    fn window_mut(&mut self) -> &mut [u8];
    /// Keeps the first `n` bytes of the window (`n <= window().len()`).
    fn keep(&mut self, n: usize);
}

impl Piece for Vec<u8> {
    fn window(&self) -> &[u8] {
        self
    }
    fn window_mut(&mut self) -> &mut [u8] {
        self
    }
    fn keep(&mut self, n: usize) {
        self.truncate(n);
    }
}

impl Piece for Slice {
    fn window(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
    fn window_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }
    fn keep(&mut self, n: usize) {
        self.end = self.start + n.min(self.end - self.start);
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

/// What every buffer type is to the operations: a slice of pieces. One
/// buffer is a slice of one.
trait Pieces {
    type Piece: Piece;
    fn pieces(&self) -> &[Self::Piece];
    fn pieces_mut(&mut self) -> &mut [Self::Piece];
}

impl Pieces for Vec<u8> {
    type Piece = Vec<u8>;
    fn pieces(&self) -> &[Vec<u8>] {
        std::slice::from_ref(self)
    }
    fn pieces_mut(&mut self) -> &mut [Vec<u8>] {
        std::slice::from_mut(self)
    }
}

impl Pieces for Slice {
    type Piece = Slice;
    fn pieces(&self) -> &[Slice] {
        std::slice::from_ref(self)
    }
    fn pieces_mut(&mut self) -> &mut [Slice] {
        std::slice::from_mut(self)
    }
}

impl<P: Piece> Pieces for Vec<P> {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        self
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        self
    }
}

impl<P: Piece, const N: usize> Pieces for [P; N] {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        self
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        self
    }
}

/// The buffer types: one `Vec<u8>` or [`Slice`], and `Vec<_>` and `[_; N]`
/// of either.
impl<T: Pieces + Send + 'static> sealed::Sealed for T {}
impl<T: Pieces + Send + 'static> IoBufs for T {
    fn buf_count(&self) -> usize {
        self.pieces().len()
    }
    fn lens(&self, out: &mut Vec<usize>) {
        out.extend(self.pieces().iter().map(|b| b.window().len()));
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        self.pieces()
            .iter()
            .map(|b| IoSlice::new(b.window()))
            .collect()
    }
    fn io_slices_mut(&mut self) -> Vec<IoSliceMut<'_>> {
        self.pieces_mut()
            .iter_mut()
            .map(|b| IoSliceMut::new(b.window_mut()))
            .collect()
    }
    fn raw_parts(&mut self, out: &mut Vec<(*mut u8, usize)>) {
        out.extend(self.pieces_mut().iter_mut().map(|b| {
            let w = b.window_mut();
            (w.as_mut_ptr(), w.len())
        }));
    }
    fn set_received(&mut self, mut n: usize) {
        for b in self.pieces_mut() {
            let here = n.min(b.window().len());
            b.keep(here);
            n -= here;
        }
    }
    fn one(&mut self) -> Option<&mut [u8]> {
        match self.pieces_mut() {
            [b] => Some(b.window_mut()),
            _ => None,
        }
    }
    fn total_len(&self) -> Option<usize> {
        self.pieces()
            .iter()
            .try_fold(0usize, |acc, b| acc.checked_add(b.window().len()))
    }
}

/// Checks a buffer array at start: at least one buffer, at most
/// [`IOV_MAX`], and a total length that fits the kernel's `ssize_t`.
/// Returns the total length.
pub(crate) fn check_bufs<B: IoBufs>(bufs: &B) -> std::io::Result<usize> {
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

/// Buffers with their type erased while the engine holds them.
pub(crate) trait ErasedBufs: Send {
    fn as_bufs(&mut self) -> &mut dyn IoBufs;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

impl<B: IoBufs> ErasedBufs for B {
    fn as_bufs(&mut self) -> &mut dyn IoBufs {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_truncates_in_array_order() {
        let mut b = vec![vec![0u8; 3], vec![0u8; 5], vec![0u8; 100]];
        b.set_received(8);
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 5, 0]);
        assert_eq!(b[2].capacity(), 100);
    }

    #[test]
    fn slice_windows_scatter_and_keep_the_buffer() {
        let mut b = [Slice::new(vec![7u8; 10], 2..5), Slice::from(vec![0u8; 4])];
        assert_eq!(b.total_len(), Some(7));
        let mut lens = Vec::new();
        b.lens(&mut lens);
        assert_eq!(lens, vec![3, 4]);
        b.set_received(5);
        assert_eq!((b[0].range(), b[1].range()), (2..5, 0..2));
        assert_eq!((b[0].buffer().len(), b[1].buffer().len()), (10, 4));
        b[1].set_range(1..=3);
        assert_eq!(b[1].len(), 3);
        assert_eq!(b[1].clone().into_inner(), vec![0u8; 4]);
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
        assert!(check_bufs(&Vec::<Vec<u8>>::new()).is_err());
        let many: Vec<Vec<u8>> = (0..IOV_MAX + 1).map(|_| vec![0u8; 1]).collect();
        assert!(check_bufs(&many).is_err());
        let max: Vec<Vec<u8>> = (0..IOV_MAX).map(|_| vec![0u8; 1]).collect();
        assert_eq!(check_bufs(&max).unwrap(), IOV_MAX);
    }
}
