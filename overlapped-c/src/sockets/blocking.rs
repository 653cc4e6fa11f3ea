//! The non-overlapped `send`/`recv` family: each runs as an operation the
//! call waits for ([`wait_op`]), so it keeps the engine's order with
//! overlapped ones.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};
use std::sync::atomic::Ordering;
use std::time::Duration;

use overlapped::{Completion, Notify, Op, OpOutput, Polled};

use super::{fail, msg_flags, sock};
use crate::errors::*;

/// Waits for an operation a non-overlapped call started: at most
/// `timeout_ms` (0: no limit), or not at all on a non-blocking socket. An
/// operation that does not finish in time is cancelled; one that moved no
/// bytes then fails with `WSAEWOULDBLOCK` (non-blocking) or
/// `WSAETIMEDOUT`.
pub fn wait_op<T: OpOutput>(
    op: Op<T>,
    nonblocking: bool,
    timeout_ms: u32,
) -> Result<Completion<T>, u32> {
    let timeout = if nonblocking {
        Some(Duration::ZERO)
    } else if timeout_ms == 0 {
        None
    } else {
        Some(Duration::from_millis(timeout_ms.into()))
    };
    let op = match op.result_timeout(timeout) {
        Ok(Polled::Complete(c)) => return Ok(c),
        Ok(Polled::Incomplete(op)) => op,
        Err(e) => return Err(wsa_code(&e)),
    };
    let _ = op.cancel();
    match op.wait() {
        Ok(c) if c.is_aborted() && c.bytes == 0 => Err(if nonblocking {
            WSAEWOULDBLOCK
        } else {
            WSAETIMEDOUT
        }),
        Ok(mut c) => {
            if c.is_aborted() {
                c.error = None;
            }
            Ok(c)
        }
        Err(e) => Err(wsa_code(&e)),
    }
}

fn sync_send(
    s: usize,
    data: Vec<u8>,
    flags: c_int,
    to: Option<std::net::SocketAddr>,
) -> Result<usize, u32> {
    let o = sock(s)?;
    let flags = msg_flags(flags as u32)?;
    let op = match to {
        None => o.sock.send(data, flags, Notify::None),
        Some(a) => o.sock.send_to(data, a, flags, Notify::None),
    }
    .map_err(|e| wsa_code(&e.error))?
    .op();
    let c = wait_op(
        op,
        o.nonblocking.load(Ordering::Relaxed),
        o.snd_timeout_ms.load(Ordering::Relaxed),
    )?;
    match c.error {
        Some(e) if c.bytes == 0 => Err(wsa_code(&e)),
        _ => Ok(c.bytes),
    }
}

/// The completion of a non-overlapped receive of up to `len` bytes.
pub fn sync_recv(s: usize, len: usize, flags: u32, from: bool) -> Result<Completion<Vec<u8>>, u32> {
    let o = sock(s)?;
    let flags = msg_flags(flags)?;
    let room = vec![0u8; len];
    let op = if from {
        o.sock.recv_from(room, flags, Notify::None)
    } else {
        o.sock.recv(room, flags, Notify::None)
    }
    .map_err(|e| wsa_code(&e.error))?
    .op();
    wait_op(
        op,
        o.nonblocking.load(Ordering::Relaxed),
        o.rcv_timeout_ms.load(Ordering::Relaxed),
    )
}

/// The bytes of a non-overlapped send, copied.
///
/// # Safety
/// `buf` is readable for `len > 0` bytes (any pointer when `len` is 0).
unsafe fn copy_in(buf: *const c_char, len: c_int) -> Vec<u8> {
    if len <= 0 {
        return Vec::new();
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(buf.cast::<u8>(), len as usize) }.to_vec()
}

/// `send`: returns when every byte was taken (blocking socket).
///
/// # Safety
/// `buf` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_send(s: usize, buf: *const c_char, len: c_int, flags: c_int) -> c_int {
    if len < 0 || (buf.is_null() && len > 0) {
        return fail(WSAEFAULT);
    }
    // SAFETY: `len` readable bytes at `buf` (the caller's promise).
    let data = unsafe { copy_in(buf, len) };
    match sync_send(s, data, flags, None) {
        Ok(n) => n as c_int,
        Err(c) => fail(c),
    }
}

/// `sendto`.
///
/// # Safety
/// `buf` is readable for `len` bytes, `to` for `tolen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_sendto(
    s: usize,
    buf: *const c_char,
    len: c_int,
    flags: c_int,
    to: *const libc::sockaddr,
    tolen: c_int,
) -> c_int {
    if len < 0 || (buf.is_null() && len > 0) {
        return fail(WSAEFAULT);
    }
    // SAFETY: the caller's promise.
    let addr = match unsafe { crate::addr::read(to, tolen) } {
        Ok(a) => a,
        Err(c) => return fail(c),
    };
    // SAFETY: `len` readable bytes at `buf` (the caller's promise).
    let data = unsafe { copy_in(buf, len) };
    match sync_send(s, data, flags, Some(addr)) {
        Ok(n) => n as c_int,
        Err(c) => fail(c),
    }
}

/// Copies a non-overlapped receive out; a truncated datagram is
/// `WSAEMSGSIZE` with the buffer filled, as on Windows.
///
/// # Safety
/// `buf` is writable for `c.data.len()` bytes.
unsafe fn deliver(c: &Completion<Vec<u8>>, buf: *mut c_char) -> Result<usize, u32> {
    // SAFETY: the caller's promise; `data` holds the bytes that landed.
    unsafe { std::ptr::copy_nonoverlapping(c.data.as_ptr(), buf.cast::<u8>(), c.data.len()) };
    match (&c.error, c.wsa_error()) {
        // An error after some bytes: the bytes are the answer.
        (Some(_), _) if c.bytes > 0 => Ok(c.bytes),
        (_, Some(code)) => Err(code),
        (_, None) => Ok(c.bytes),
    }
}

/// `recv`.
///
/// # Safety
/// `buf` is writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_recv(s: usize, buf: *mut c_char, len: c_int, flags: c_int) -> c_int {
    if len < 0 || (buf.is_null() && len > 0) {
        return fail(WSAEFAULT);
    }
    // SAFETY: `buf` writable for `len >= data.len()` bytes.
    match sync_recv(s, len as usize, flags as u32, false).and_then(|c| unsafe { deliver(&c, buf) })
    {
        Ok(n) => n as c_int,
        Err(c) => fail(c),
    }
}

/// `recvfrom`.
///
/// # Safety
/// `buf` is writable for `len` bytes; `from`/`fromlen` as for `accept`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_recvfrom(
    s: usize,
    buf: *mut c_char,
    len: c_int,
    flags: c_int,
    from: *mut libc::sockaddr,
    fromlen: *mut c_int,
) -> c_int {
    if len < 0 || (buf.is_null() && len > 0) {
        return fail(WSAEFAULT);
    }
    let r = sync_recv(s, len as usize, flags as u32, true).and_then(|c| {
        if let Some(a) = &c.addr {
            // SAFETY: the caller's promise.
            unsafe { crate::addr::write(a, from, fromlen) }?;
        }
        // SAFETY: `buf` writable for `len >= data.len()` bytes.
        unsafe { deliver(&c, buf) }
    });
    match r {
        Ok(n) => n as c_int,
        Err(c) => fail(c),
    }
}
