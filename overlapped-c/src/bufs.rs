//! The caller's `WSABUF` memory as operation buffers.
//!
//! On Windows the program owns the bytes a `WSABUF` points at and keeps
//! them valid until the operation's completion is reported; the array of
//! `WSABUF`s itself may go as soon as the call returns. [`WsaBufs`] is a
//! copy of that array: each piece a pointer and a length into the caller's
//! memory, handed to the engine as [`IoBufs`](overlapped::IoBufs) /
//! [`IoBufsMut`](overlapped::IoBufsMut) (a `Vec` of pieces). Only the C
//! entry points make one ([`WsaPiece::new`] is `unsafe`): the promise the
//! buffer traits ask for is the C caller's.

#![allow(unsafe_code)]

use overlapped::{IoBuf, IoBufMut};

use crate::types::WsaBuf;

/// One `WSABUF`: `len` bytes at `ptr`, in the C caller's memory.
#[derive(Debug)]
pub struct WsaPiece {
    ptr: *mut u8,
    len: usize,
}

/// A `WSABUF` array as operation buffers.
pub type WsaBufs = Vec<WsaPiece>;

impl WsaPiece {
    /// A piece over `len` bytes at `ptr`.
    ///
    /// # Safety
    /// `ptr` is valid for reads (a send) or reads and writes (a receive) of
    /// `len` bytes, nobody else writes them (nor, for a receive, reads
    /// them), and they stay so until the operation that takes the piece has
    /// completed — or, for an operation that failed to start, until the
    /// call returns. (Windows' contract for `WSABUF` memory.) `len` may be
    /// 0 with any pointer.
    pub unsafe fn new(ptr: *mut u8, len: usize) -> WsaPiece {
        WsaPiece {
            ptr: if len == 0 {
                std::ptr::NonNull::dangling().as_ptr()
            } else {
                ptr
            },
            len,
        }
    }

    /// Pieces over a C `WSABUF` array.
    ///
    /// # Safety
    /// `bufs` points at `count` readable `WSABUF`s, each keeping
    /// [`WsaPiece::new`]'s contract.
    pub unsafe fn from_array(bufs: *const WsaBuf, count: usize) -> WsaBufs {
        // SAFETY: the caller says `count` `WSABUF`s are readable at `bufs`.
        let arr = unsafe { std::slice::from_raw_parts(bufs, count) };
        arr.iter()
            // SAFETY: the caller keeps each buffer's contract.
            .map(|b| unsafe { WsaPiece::new(b.buf, b.len as usize) })
            .collect()
    }
}

// SAFETY: the memory is the C caller's, which may be touched from any
// thread; the piece is only a pointer and a length.
unsafe impl Send for WsaPiece {}

// SAFETY: `WsaPiece::new`'s contract is exactly `IoBuf`'s: the bytes stay
// valid and unwritten by others until the engine hands the piece back, and
// they live in the caller's memory, not in the piece, so a move of the
// piece moves nothing.
unsafe impl IoBuf for WsaPiece {
    fn stable_ptr(&self) -> *const u8 {
        self.ptr
    }
    fn bytes_len(&self) -> usize {
        self.len
    }
}

// SAFETY: as for `IoBuf`, with the bytes writable and untouched by others
// (the contract of a receive's `WSABUF`); recording a receive changes
// nothing here (the byte count goes to the caller's `OVERLAPPED`).
unsafe impl IoBufMut for WsaPiece {
    fn stable_mut_ptr(&mut self) -> *mut u8 {
        self.ptr
    }
    fn room_len(&self) -> usize {
        self.len
    }
    unsafe fn set_received(&mut self, _n: usize) {}
}
