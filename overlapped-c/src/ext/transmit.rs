//! `TransmitFile`: head buffer, file range and tail buffer as one
//! operation, with an optional `DisconnectEx` after it.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::io;
use std::sync::{Arc, Mutex};

use overlapped::{Notify, Op, Polled, Started};

use super::op::{Finish, start, target_of, wsa_bool};
use crate::bufs::WsaPiece;
use crate::errors::*;
use crate::inflight::Outcome;
use crate::sockets::sock;
use crate::table;
use crate::types::*;

/// `TF_DISCONNECT`.
pub const TF_DISCONNECT: u32 = 0x01;
/// `TF_REUSE_SOCKET`.
pub const TF_REUSE_SOCKET: u32 = 0x02;
/// `TF_USE_SYSTEM_THREAD`, `TF_USE_KERNEL_APC`, `TF_WRITE_BEHIND`
/// (and `TF_USE_DEFAULT_WORKER`, 0): hints, accepted.
const TF_HINTS: u32 = 0x10 | 0x20 | 0x04;

/// `TRANSMIT_FILE_BUFFERS`.
#[repr(C)]
#[derive(Debug)]
pub struct TransmitFileBuffers {
    /// `Head`.
    pub head: *mut u8,
    /// `HeadLength`.
    pub head_len: u32,
    /// `Tail`.
    pub tail: *mut u8,
    /// `TailLength`.
    pub tail_len: u32,
}

/// `TransmitFile`: the head buffer, `len` bytes of the file from
/// `OVERLAPPED.Offset`/`OffsetHigh` (0 with `ov` null; `len` 0: to the
/// end), the tail buffer, as one operation; `TF_DISCONNECT` /
/// `TF_REUSE_SOCKET` add a `DisconnectEx` after it, and the operation
/// completes when that does (with the bytes sent). `file` null sends only
/// the buffers. `per_send` is a hint (ignored).
///
/// # Safety
/// `bufs` null or a readable `TRANSMIT_FILE_BUFFERS` whose buffers stay
/// valid (with `ov`) until the completion is reported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn TransmitFile(
    s: usize,
    file: *mut c_void,
    len: u32,
    _per_send: u32,
    ov: *mut Overlapped,
    bufs: *const TransmitFileBuffers,
    flags: u32,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        if flags & !(TF_DISCONNECT | TF_REUSE_SOCKET | TF_HINTS) != 0 {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        let f = if file.is_null() {
            None
        } else {
            match table::get(file as usize) {
                Some(table::Obj::File(f)) => Some(f),
                _ => return Err((WSAEINVAL, ERROR_INVALID_HANDLE)),
            }
        };
        let offset = if ov.is_null() {
            0
        } else {
            // SAFETY: `ov` readable (the caller's promise).
            unsafe { u64::from((*ov).offset) | (u64::from((*ov).offset_high) << 32) }
        };
        // SAFETY: null or readable (the caller's promise).
        let (h, hl, t, tl) = match unsafe { bufs.as_ref() } {
            None => (std::ptr::null_mut(), 0, std::ptr::null_mut(), 0),
            Some(b) => (b.head, b.head_len, b.tail, b.tail_len),
        };
        // SAFETY: the caller keeps the buffers valid until the completion.
        let pieces = unsafe {
            [
                WsaPiece::new(h, if h.is_null() { 0 } else { hl as usize }),
                WsaPiece::new(t, if t.is_null() { 0 } else { tl as usize }),
            ]
        };
        let so = o.clone();
        let send = move |n: Notify<[WsaPiece; 2]>| -> io::Result<Started<[WsaPiece; 2]>> {
            match &f {
                Some(f) => f
                    .file
                    .with_fd(|fd| {
                        let [head, tail] = pieces;
                        so.sock
                            .transmit_file(&fd, offset, u64::from(len), head, tail, n)
                    })?
                    .map_err(|e| e.error),
                None => so
                    .sock
                    .send(pieces, overlapped::MsgFlags::empty(), n)
                    .map_err(|e| e.error),
            }
        };
        let target = target_of(s, &o);
        if flags & (TF_DISCONNECT | TF_REUSE_SOCKET) == 0 {
            let finish: Finish<[WsaPiece; 2]> = Box::new(|c| Outcome::of(&c));
            // SAFETY: the caller's promise.
            return unsafe { start(target, ov, None, finish, send) };
        }
        // The transmission reports nothing itself; the disconnect after
        // it completes once its bytes went out, and reports them (or the
        // transmission's error).
        let reuse = flags & TF_REUSE_SOCKET != 0;
        let first: Arc<Mutex<Option<Op<[WsaPiece; 2]>>>> = Arc::new(Mutex::new(None));
        let kept = first.clone();
        let finish: Finish<()> = Box::new(move |c| {
            let op = kept.lock().unwrap_or_else(|p| p.into_inner()).take();
            match op.map(|op| op.result(false)) {
                Some(Ok(Polled::Complete(tc))) if tc.error.is_some() => Outcome::of(&tc),
                Some(Ok(Polled::Complete(tc))) => {
                    let mut out = Outcome::of(&c);
                    out.bytes = tc.bytes;
                    out
                }
                _ => Outcome::of(&c),
            }
        });
        // SAFETY: the caller's promise.
        unsafe {
            start(target, ov, None, finish, move |n| {
                let op = match send(Notify::None)? {
                    Started::Now { op, .. } | Started::Pending(op) => op,
                };
                let r = o.sock.disconnect(reuse, n).map_err(|e| e.error);
                if r.is_err() {
                    let _ = op.cancel();
                }
                *first.lock().unwrap_or_else(|p| p.into_inner()) = Some(op);
                r
            })
        }
    })();
    wsa_bool(r, std::ptr::null_mut())
}
