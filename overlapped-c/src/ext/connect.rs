//! `ConnectEx` and `DisconnectEx` (reached through `WSAIoctl`'s function
//! pointers only).

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use super::op::{Finish, start, target_of, wsa_bool};
use super::transmit::TF_REUSE_SOCKET;
use crate::bufs::{WsaBufs, WsaPiece};
use crate::errors::*;
use crate::inflight::Outcome;
use crate::sockets::sock;
use crate::types::*;

/// `ConnectEx`: connects `s` to `name`, then sends `send_len` bytes of
/// `send_buf`; `sent` gets the bytes sent on an immediate completion.
/// **(ours)** An unbound socket is bound for the caller (Windows fails
/// with `WSAEINVAL`).
///
/// # Safety
/// `name` readable for `namelen` bytes (during the call); `send_buf` and
/// `ov` valid until the completion is reported; `sent` null or writable.
pub(super) unsafe extern "C" fn connect_ex(
    s: usize,
    name: *const libc::sockaddr,
    namelen: c_int,
    send_buf: *mut c_void,
    send_len: u32,
    sent: *mut u32,
    ov: *mut Overlapped,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        if ov.is_null() {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        // SAFETY: the caller's promise.
        let addr = unsafe { crate::addr::read(name, namelen) }.map_err(|c| (c, c))?;
        let n = if send_buf.is_null() {
            0
        } else {
            send_len as usize
        };
        // SAFETY: the caller's until the completion (no data: one empty
        // piece).
        let bufs: WsaBufs = vec![unsafe { WsaPiece::new(send_buf.cast(), n) }];
        let finish: Finish<WsaBufs> = Box::new(|c| Outcome::of(&c));
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &o), ov, None, finish, |n| {
                o.sock.connect_with(addr, bufs, n).map_err(|e| e.error)
            })
        }
    })();
    wsa_bool(r, sent)
}

/// `DisconnectEx`: closes the sending side (the peer reads the end), or
/// with `TF_REUSE_SOCKET` the connection, leaving the socket ready for
/// another `AcceptEx` or `ConnectEx`. `ov` null: waits for it.
///
/// # Safety
/// `ov` null or valid until the completion is reported.
pub(super) unsafe extern "C" fn disconnect_ex(
    s: usize,
    ov: *mut Overlapped,
    flags: u32,
    reserved: u32,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        if reserved != 0 || flags & !TF_REUSE_SOCKET != 0 {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        let reuse = flags & TF_REUSE_SOCKET != 0;
        let finish: Finish<()> = Box::new(|c| Outcome::of(&c));
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &o), ov, None, finish, |n| {
                o.sock.disconnect(reuse, n).map_err(|e| e.error)
            })
        }
    })();
    wsa_bool(r, std::ptr::null_mut())
}
