//! Addresses: a socket's own and its peer's (`getsockname`,
//! `getpeername`), and an address as text (`WSAAddressToStringA`).

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};

use super::{fail, sock};
use crate::errors::*;

/// Writes a socket's address for `getsockname`/`getpeername`.
///
/// # Safety
/// `len` is readable and writable, `name` writable for `*len` bytes.
unsafe fn name_out(
    addr: Result<std::net::SocketAddr, u32>,
    name: *mut libc::sockaddr,
    len: *mut c_int,
) -> c_int {
    // SAFETY: the caller's promise.
    match addr.and_then(|a| unsafe { crate::addr::write(&a, name, len) }) {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `getsockname`.
///
/// # Safety
/// As for `accept`'s `addr`/`addrlen`, both required.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_getsockname(
    s: usize,
    name: *mut libc::sockaddr,
    len: *mut c_int,
) -> c_int {
    if name.is_null() || len.is_null() {
        return fail(WSAEFAULT);
    }
    let addr = sock(s).and_then(|o| o.sock.local_addr().map_err(|e| wsa_code(&e)));
    // SAFETY: the caller's promise.
    unsafe { name_out(addr, name, len) }
}

/// `getpeername`.
///
/// # Safety
/// As for `getsockname`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_getpeername(
    s: usize,
    name: *mut libc::sockaddr,
    len: *mut c_int,
) -> c_int {
    if name.is_null() || len.is_null() {
        return fail(WSAEFAULT);
    }
    let addr = sock(s).and_then(|o| o.sock.peer_addr().map_err(|e| wsa_code(&e)));
    // SAFETY: the caller's promise.
    unsafe { name_out(addr, name, len) }
}

/// `WSAAddressToStringA`: `a.b.c.d:port`, `[v6%scope]:port` (without the
/// port when it is 0, as Windows writes them). `WSAEFAULT` with the length
/// needed (with the NUL) in `*len` when the buffer is too small.
///
/// # Safety
/// `sa` is readable for `salen` bytes; `len` readable and writable; `out`
/// writable for `*len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAAddressToStringA(
    sa: *const libc::sockaddr,
    salen: u32,
    info: *mut std::ffi::c_void,
    out: *mut c_char,
    len: *mut u32,
) -> c_int {
    if !info.is_null() {
        return fail(WSAEINVAL);
    }
    if out.is_null() || len.is_null() {
        return fail(WSAEFAULT);
    }
    // SAFETY: the caller's promise.
    let addr = match unsafe { crate::addr::read(sa, salen.min(i32::MAX as u32) as c_int) } {
        Ok(a) => a,
        Err(c) => return fail(c),
    };
    let text = match (addr, addr.port()) {
        (std::net::SocketAddr::V6(a), 0) if a.scope_id() != 0 => {
            format!("{}%{}", a.ip(), a.scope_id())
        }
        (a, 0) => a.ip().to_string(),
        (a, _) => a.to_string(),
    };
    let need = text.len() + 1;
    // SAFETY: `len` readable and writable (the caller's promise).
    let room = unsafe { *len } as usize;
    // SAFETY: as above.
    unsafe { *len = need as u32 };
    if room < need {
        return fail(WSAEFAULT);
    }
    // SAFETY: `out` writable for `room >= need` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), out.cast::<u8>(), text.len());
        *out.add(text.len()) = 0;
    }
    0
}
