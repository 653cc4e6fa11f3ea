//! `sockaddr` in and out. The address structures and `AF_*` values are the
//! system's (the same layout as Windows' `SOCKADDR_IN`/`SOCKADDR_IN6`; only
//! `AF_INET6`'s number differs, and the program gets Linux's from the
//! system headers), so the bytes pass as they are.

#![allow(unsafe_code)]

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use socket2::SockAddr;

use crate::errors::{WSAEAFNOSUPPORT, WSAEFAULT};

/// Reads a socket address the C caller passed.
///
/// # Safety
/// `name` is readable for `len` bytes (or null).
pub unsafe fn read(name: *const libc::sockaddr, len: i32) -> Result<SocketAddr, u32> {
    if name.is_null() || len < 2 {
        return Err(WSAEFAULT);
    }
    // SAFETY: two readable bytes (checked above): the family.
    let family = i32::from(unsafe { name.cast::<libc::sa_family_t>().read_unaligned() });
    match family {
        libc::AF_INET => {
            if (len as usize) < std::mem::size_of::<libc::sockaddr_in>() {
                return Err(WSAEFAULT);
            }
            // SAFETY: a whole `sockaddr_in` is readable (checked).
            let a = unsafe { name.cast::<libc::sockaddr_in>().read_unaligned() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            if (len as usize) < std::mem::size_of::<libc::sockaddr_in6>() {
                return Err(WSAEFAULT);
            }
            // SAFETY: a whole `sockaddr_in6` is readable (checked).
            let a = unsafe { name.cast::<libc::sockaddr_in6>().read_unaligned() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => Err(WSAEAFNOSUPPORT),
    }
}

/// Writes `addr` to the caller's `name`/`len` (either may be null: then
/// nothing is written). Windows' rule: a buffer too small is `WSAEFAULT`.
///
/// # Safety
/// `len` is null or readable and writable; `name` is null or writable for
/// `*len` bytes.
pub unsafe fn write(
    addr: &SocketAddr,
    name: *mut libc::sockaddr,
    len: *mut i32,
) -> Result<(), u32> {
    if name.is_null() || len.is_null() {
        return Ok(());
    }
    let sa = SockAddr::from(*addr);
    // SAFETY: `len` is readable and writable (the caller's promise).
    let room = unsafe { *len };
    if room < 0 || (room as u32) < sa.len() {
        return Err(WSAEFAULT);
    }
    // SAFETY: `name` is writable for `room >= sa.len()` bytes; `sa` is
    // readable for `sa.len()` bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sa.as_ptr().cast::<u8>(),
            name.cast::<u8>(),
            sa.len() as usize,
        );
        *len = sa.len() as i32;
    }
    Ok(())
}
