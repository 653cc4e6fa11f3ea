//! [`Slice`]: a window of an owned `Vec<u8>` (a `WSABUF` into a larger buffer).

#![allow(unsafe_code)]

use super::{IoBuf, IoBufMut};

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
