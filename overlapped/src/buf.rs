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
//! A zero-length buffer is legal: a zero-length stream receive is the
//! readiness probe of the model (it completes with 0 when the socket becomes
//! readable and consumes nothing).
//!
//! The trait is sealed: only buffer types whose bytes live on the heap, at an
//! address that does not change when the value is moved, can be lent to the
//! kernel.

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

/// Buffers an operation can own: one `Vec<u8>`, a `Vec<Vec<u8>>`, or an
/// array `[Vec<u8>; N]`.
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
    /// The buffer, when the array holds exactly one (the common case, which
    /// needs no iovec array).
    #[doc(hidden)]
    fn one(&mut self) -> Option<&mut Vec<u8>>;
    /// The total length, `None` when it overflows.
    #[doc(hidden)]
    fn total_len(&self) -> Option<usize>;
}

fn checked_total<'a>(mut bufs: impl Iterator<Item = &'a Vec<u8>>) -> Option<usize> {
    bufs.try_fold(0usize, |acc, b| acc.checked_add(b.len()))
}

fn truncate_all<'a>(bufs: impl Iterator<Item = &'a mut Vec<u8>>, mut n: usize) {
    for b in bufs {
        let here = n.min(b.len());
        b.truncate(here);
        n -= here;
    }
}

impl sealed::Sealed for Vec<u8> {}
impl IoBufs for Vec<u8> {
    fn buf_count(&self) -> usize {
        1
    }
    fn lens(&self, out: &mut Vec<usize>) {
        out.push(self.len());
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        vec![IoSlice::new(self)]
    }
    fn io_slices_mut(&mut self) -> Vec<IoSliceMut<'_>> {
        vec![IoSliceMut::new(self)]
    }
    fn raw_parts(&mut self, out: &mut Vec<(*mut u8, usize)>) {
        out.push((self.as_mut_ptr(), self.len()));
    }
    fn set_received(&mut self, n: usize) {
        truncate_all(std::iter::once(self), n);
    }
    fn one(&mut self) -> Option<&mut Vec<u8>> {
        Some(self)
    }
    fn total_len(&self) -> Option<usize> {
        Some(self.len())
    }
}

/// The buffer arrays: `Vec<Vec<u8>>` and `[Vec<u8>; N]` share one
/// implementation (both deref to `[Vec<u8>]`).
macro_rules! impl_buf_array {
    ($([$($gen:tt)*] $ty:ty),* $(,)?) => {$(
        impl<$($gen)*> sealed::Sealed for $ty {}
        impl<$($gen)*> IoBufs for $ty {
            fn buf_count(&self) -> usize {
                self.len()
            }
            fn lens(&self, out: &mut Vec<usize>) {
                out.extend(self.iter().map(Vec::len));
            }
            fn io_slices(&self) -> Vec<IoSlice<'_>> {
                self.iter().map(|b| IoSlice::new(b)).collect()
            }
            fn io_slices_mut(&mut self) -> Vec<IoSliceMut<'_>> {
                self.iter_mut().map(|b| IoSliceMut::new(b)).collect()
            }
            fn raw_parts(&mut self, out: &mut Vec<(*mut u8, usize)>) {
                out.extend(self.iter_mut().map(|b| (b.as_mut_ptr(), b.len())));
            }
            fn set_received(&mut self, n: usize) {
                truncate_all(self.iter_mut(), n);
            }
            fn one(&mut self) -> Option<&mut Vec<u8>> {
                match &mut self[..] {
                    [b] => Some(b),
                    _ => None,
                }
            }
            fn total_len(&self) -> Option<usize> {
                checked_total(self.iter())
            }
        }
    )*};
}

impl_buf_array!([] Vec<Vec<u8>>, [const N: usize] [Vec<u8>; N]);

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
    fn check_rejects_empty_and_too_many() {
        assert!(check_bufs(&Vec::<Vec<u8>>::new()).is_err());
        let many: Vec<Vec<u8>> = (0..IOV_MAX + 1).map(|_| vec![0u8; 1]).collect();
        assert!(check_bufs(&many).is_err());
        let max: Vec<Vec<u8>> = (0..IOV_MAX).map(|_| vec![0u8; 1]).collect();
        assert_eq!(check_bufs(&max).unwrap(), IOV_MAX);
    }
}
