//! `AcceptEx` and `GetAcceptExSockaddrs`: the accept into a caller-made
//! socket, and the two address slots it writes after the data room.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::net::SocketAddr;

use overlapped::Accepted;
use socket2::SockAddr;

use super::op::{Finish, both, start, target_of, wsa_bool};
use crate::bufs::{WsaBufs, WsaPiece};
use crate::errors::*;
use crate::inflight::Outcome;
use crate::sockets::sock;
use crate::types::*;

/// Bytes of the family's `sockaddr`.
fn sockaddr_len(a: &SocketAddr) -> usize {
    match a {
        SocketAddr::V4(_) => std::mem::size_of::<libc::sockaddr_in>(),
        SocketAddr::V6(_) => std::mem::size_of::<libc::sockaddr_in6>(),
    }
}

/// Where, from the start of an address slot of `AcceptEx`'s buffer, the
/// address goes: the first 8-aligned byte after the 4-byte header (so the
/// program may read the `sockaddr` in place).
fn slot_offset(slot: *const u8) -> usize {
    let a = slot as usize + 4;
    ((a + 7) & !7) - slot as usize
}

/// Writes one address slot: `u16` length, `u16` offset, the `sockaddr`.
///
/// # Safety
/// `slot` is writable for `room` bytes, `room >= slot_offset + the
/// address's length` (checked at the start of `AcceptEx`).
unsafe fn write_slot(slot: *mut u8, room: usize, addr: Option<SocketAddr>) {
    let sa = addr.map(SockAddr::from);
    let off = slot_offset(slot);
    let len = sa.as_ref().map_or(0, |a| a.len() as usize);
    let len = if off + len > room { 0 } else { len };
    // SAFETY: the caller's promise; the header is 4 bytes, the address
    // fits (checked above).
    unsafe {
        slot.cast::<u16>().write_unaligned(len as u16);
        slot.add(2).cast::<u16>().write_unaligned(off as u16);
        if let Some(a) = &sa {
            if len > 0 {
                std::ptr::copy_nonoverlapping(a.as_ptr().cast::<u8>(), slot.add(off), len);
            }
        }
    }
}

/// `AcceptEx`: accepts a connection of listener `s` into the caller-made
/// socket `accept_s`, with its first `recv_len` bytes of data into `buf`
/// (0: completes at the accept), and writes the local and remote
/// addresses into the two slots that follow the data room
/// (`GetAcceptExSockaddrs` reads them). Each slot must hold at least the
/// family's `sockaddr` plus 16 bytes (`WSAEINVAL`).
///
/// # Safety
/// Windows' contract: `buf` is writable for `recv_len + local_len +
/// remote_len` bytes, and it and `ov` stay valid until the completion is
/// reported; `received` is null or writable.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn AcceptEx(
    s: usize,
    accept_s: usize,
    buf: *mut c_void,
    recv_len: u32,
    local_len: u32,
    remote_len: u32,
    received: *mut u32,
    ov: *mut Overlapped,
) -> c_int {
    let r = (|| {
        let l = sock(s).map_err(|c| (c, c))?;
        let a = sock(accept_s).map_err(|c| (c, c))?;
        if s == accept_s || ov.is_null() {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        if buf.is_null() {
            return Err((WSAEFAULT, ERROR_INVALID_PARAMETER));
        }
        let fam = l.sock.local_addr().map_err(|e| both(&e))?;
        let need = sockaddr_len(&fam) + 16;
        if (local_len as usize) < need || (remote_len as usize) < need {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        let (base, rl, ll, ml) = (
            buf as usize,
            recv_len as usize,
            local_len as usize,
            remote_len as usize,
        );
        let finish: Finish<Accepted<WsaBufs>> = Box::new(move |c| {
            let out = Outcome::of(&c);
            let p = base as *mut u8;
            // SAFETY: the caller keeps the buffer valid until the
            // completion is reported (now); the slots' sizes were checked.
            unsafe {
                write_slot(p.add(rl), ll, c.data.local_addr);
                write_slot(p.add(rl + ll), ml, c.data.peer_addr);
            }
            out
        });
        // SAFETY: the data room, the caller's until the completion (no
        // room: one empty piece, and the accept completes at once).
        let bufs: WsaBufs = vec![unsafe { WsaPiece::new(buf.cast(), rl) }];
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &l), ov, None, finish, |n| {
                l.sock
                    .accept_ex(Some(&a.sock), bufs, n)
                    .map_err(|e| e.error)
            })
        }
    })();
    wsa_bool(r, received)
}

/// Reads one address slot.
///
/// # Safety
/// `slot` is readable for `room` bytes; the out pointers are null or
/// writable.
unsafe fn read_slot(slot: *mut u8, room: usize, addr: *mut *mut libc::sockaddr, len: *mut c_int) {
    // SAFETY: the caller's promise.
    let (l, off) = unsafe {
        (
            usize::from(slot.cast::<u16>().read_unaligned()),
            usize::from(slot.add(2).cast::<u16>().read_unaligned()),
        )
    };
    let ok = room >= 4 && off >= 4 && off + l <= room;
    // SAFETY: the out pointers are null or writable.
    unsafe {
        if !addr.is_null() {
            *addr = if ok {
                slot.add(off).cast()
            } else {
                std::ptr::null_mut()
            };
        }
        if !len.is_null() {
            *len = if ok { l as c_int } else { 0 };
        }
    }
}

/// `GetAcceptExSockaddrs`: pointers to the local and remote addresses
/// `AcceptEx` wrote into `buf` (given the same three lengths), and their
/// lengths.
///
/// # Safety
/// `buf` is the buffer of a completed `AcceptEx` with these lengths; the
/// out pointers are null or writable.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetAcceptExSockaddrs(
    buf: *mut c_void,
    recv_len: u32,
    local_len: u32,
    remote_len: u32,
    local: *mut *mut libc::sockaddr,
    local_size: *mut c_int,
    remote: *mut *mut libc::sockaddr,
    remote_size: *mut c_int,
) {
    if buf.is_null() {
        for (a, l) in [(local, local_size), (remote, remote_size)] {
            // SAFETY: null or writable (the caller's promise).
            unsafe {
                if !a.is_null() {
                    *a = std::ptr::null_mut();
                }
                if !l.is_null() {
                    *l = 0;
                }
            }
        }
        return;
    }
    let p = buf.cast::<u8>();
    let (rl, ll, ml) = (recv_len as usize, local_len as usize, remote_len as usize);
    // SAFETY: the caller's promise: the buffer AcceptEx filled.
    unsafe {
        read_slot(p.add(rl), ll, local, local_size);
        read_slot(p.add(rl + ll), ml, remote, remote_size);
    }
}
