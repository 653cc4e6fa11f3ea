//! Socket options (`setsockopt`, `getsockopt`, with Windows' levels and
//! names) and `ioctlsocket`.

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_long, c_ulong};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::{fail, sock};
use crate::errors::*;
use crate::table::SockObj;
use crate::types::*;

/// Reads an option's integer (a `BOOL` or `DWORD`; one byte is taken as a
/// `BOOL`, as Windows does).
///
/// # Safety
/// `val` is readable for `len` bytes.
unsafe fn opt_int(val: *const c_char, len: c_int) -> Result<u32, u32> {
    if val.is_null() || len < 1 {
        return Err(WSAEFAULT);
    }
    // SAFETY: at least one (or four) readable bytes, the caller's promise.
    Ok(unsafe {
        if len >= 4 {
            val.cast::<u32>().read_unaligned()
        } else {
            u32::from(val.cast::<u8>().read())
        }
    })
}

fn raw_setsockopt(o: &SockObj, level: c_int, name: c_int, v: c_int) -> Result<(), u32> {
    o.sock
        .with_fd(|fd| {
            use std::os::fd::AsRawFd;
            // SAFETY: an `int` option value, its size passed with it; the
            // descriptor is borrowed for the call.
            let r = unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    level,
                    name,
                    (&raw const v).cast(),
                    std::mem::size_of::<c_int>() as libc::socklen_t,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
        .and_then(|r| r)
        .map_err(|e| wsa_code(&e))
}

/// `setsockopt` with Windows' levels and names (`SOL_SOCKET` is 0xffff):
/// `SO_REUSEADDR`, `SO_KEEPALIVE`, `SO_BROADCAST`, `SO_OOBINLINE`,
/// `SO_SNDBUF`, `SO_RCVBUF`, `SO_LINGER`, `SO_RCVTIMEO`/`SO_SNDTIMEO`
/// (milliseconds, for the non-overlapped calls), `SO_UPDATE_ACCEPT_CONTEXT`
/// and `SO_UPDATE_CONNECT_CONTEXT` (nothing to update on Linux: an accepted
/// or connected socket already has its addresses and options),
/// `TCP_NODELAY`, `IP_PKTINFO`, `IPV6_PKTINFO`, `IPV6_V6ONLY`. Other options
/// are `WSAENOPROTOOPT`, other levels `WSAEINVAL` (as on Windows).
///
/// # Safety
/// `val` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_setsockopt(
    s: usize,
    level: c_int,
    name: c_int,
    val: *const c_char,
    len: c_int,
) -> c_int {
    let r = sock(s).and_then(|o| {
        let io = |e: std::io::Error| wsa_code(&e);
        if (level, name) == (SOL_SOCKET, SO_LINGER) {
            if val.is_null() || len < 4 {
                return Err(WSAEFAULT);
            }
            // Windows' `LINGER` is two `u_short`s; the system's `struct
            // linger`, which a program compiled here gets, two `int`s.
            // SAFETY: `len` readable bytes (checked: 4, or 8 for the ints).
            let (on, secs) = unsafe {
                if len >= 8 {
                    let l = val.cast::<libc::linger>().read_unaligned();
                    (l.l_onoff != 0, l.l_linger.max(0) as u64)
                } else {
                    (
                        val.cast::<u16>().read_unaligned() != 0,
                        u64::from(val.cast::<u16>().add(1).read_unaligned()),
                    )
                }
            };
            let l = on.then(|| Duration::from_secs(secs));
            return o.sock.with_socket2(|s| s.set_linger(l)).map_err(io);
        }
        if (level, name) == (SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT) {
            // The value is the listening socket.
            if val.is_null() || (len as usize) < std::mem::size_of::<usize>() {
                return Err(WSAEFAULT);
            }
            // SAFETY: a readable `SOCKET` (the caller's promise).
            let l = unsafe { val.cast::<usize>().read_unaligned() };
            return sock(l).map(|_| ());
        }
        if (level, name) == (SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT) {
            // Windows' programs pass no value (NULL, 0).
            return Ok(());
        }
        // SAFETY: the caller's promise.
        let v = unsafe { opt_int(val, len) }?;
        let on = v != 0;
        match (level, name) {
            (SOL_SOCKET, SO_REUSEADDR) => {
                o.sock.with_socket2(|s| s.set_reuse_address(on)).map_err(io)
            }
            (SOL_SOCKET, SO_KEEPALIVE) => o.sock.with_socket2(|s| s.set_keepalive(on)).map_err(io),
            (SOL_SOCKET, SO_BROADCAST) => o.sock.with_socket2(|s| s.set_broadcast(on)).map_err(io),
            (SOL_SOCKET, SO_OOBINLINE) => o
                .sock
                .with_socket2(|s| s.set_out_of_band_inline(on))
                .map_err(io),
            (SOL_SOCKET, SO_SNDBUF) => o
                .sock
                .with_socket2(|s| s.set_send_buffer_size(v as usize))
                .map_err(io),
            (SOL_SOCKET, SO_RCVBUF) => o
                .sock
                .with_socket2(|s| s.set_recv_buffer_size(v as usize))
                .map_err(io),
            (SOL_SOCKET, SO_RCVTIMEO) => {
                o.rcv_timeout_ms.store(v, Ordering::Relaxed);
                Ok(())
            }
            (SOL_SOCKET, SO_SNDTIMEO) => {
                o.snd_timeout_ms.store(v, Ordering::Relaxed);
                Ok(())
            }
            (SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT) => Ok(()),
            (IPPROTO_TCP, TCP_NODELAY) => o.sock.set_nodelay(on).map_err(io),
            (IPPROTO_IP, IP_PKTINFO) => {
                raw_setsockopt(&o, libc::IPPROTO_IP, libc::IP_PKTINFO, on.into())
            }
            (IPPROTO_IPV6, IPV6_PKTINFO) => {
                raw_setsockopt(&o, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, on.into())
            }
            (IPPROTO_IPV6, IPV6_V6ONLY) => o.sock.with_socket2(|s| s.set_only_v6(on)).map_err(io),
            // Windows: an unknown level is WSAEINVAL, an unknown option of
            // a known level WSAENOPROTOOPT.
            (SOL_SOCKET | IPPROTO_TCP | IPPROTO_IP | IPPROTO_IPV6, _) => Err(WSAENOPROTOOPT),
            _ => Err(WSAEINVAL),
        }
    });
    match r {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `getsockopt`: the options `setsockopt` takes, plus `SO_ERROR` (a
/// Winsock code) and `SO_TYPE`. Values are 4 bytes (`SO_LINGER`: two
/// `u_short`s, or the system's `struct linger` when `*len` has room for
/// it).
///
/// # Safety
/// `len` is readable and writable; `val` writable for `*len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_getsockopt(
    s: usize,
    level: c_int,
    name: c_int,
    val: *mut c_char,
    len: *mut c_int,
) -> c_int {
    if val.is_null() || len.is_null() {
        return fail(WSAEFAULT);
    }
    // SAFETY: `len` readable (the caller's promise).
    if unsafe { *len } < 4 {
        return fail(WSAEFAULT);
    }
    let r = sock(s).and_then(|o| {
        let io = |e: std::io::Error| wsa_code(&e);
        let b = |r: std::io::Result<bool>| r.map(u32::from).map_err(io);
        match (level, name) {
            (SOL_SOCKET, SO_LINGER) => {
                let l = o.sock.with_socket2(|s| s.linger()).map_err(io)?;
                let (on, secs) = l.map_or((0u32, 0u32), |d| (1, d.as_secs().min(0xFFFF) as u32));
                Ok(on | (secs << 16))
            }
            (SOL_SOCKET, SO_REUSEADDR) => b(o.sock.with_socket2(|s| s.reuse_address())),
            (SOL_SOCKET, SO_KEEPALIVE) => b(o.sock.with_socket2(|s| s.keepalive())),
            (SOL_SOCKET, SO_BROADCAST) => b(o.sock.with_socket2(|s| s.broadcast())),
            (SOL_SOCKET, SO_OOBINLINE) => b(o.sock.with_socket2(|s| s.out_of_band_inline())),
            (SOL_SOCKET, SO_SNDBUF) => o
                .sock
                .with_socket2(|s| s.send_buffer_size())
                .map(|v| v as u32)
                .map_err(io),
            (SOL_SOCKET, SO_RCVBUF) => o
                .sock
                .with_socket2(|s| s.recv_buffer_size())
                .map(|v| v as u32)
                .map_err(io),
            (SOL_SOCKET, SO_RCVTIMEO) => Ok(o.rcv_timeout_ms.load(Ordering::Relaxed)),
            (SOL_SOCKET, SO_SNDTIMEO) => Ok(o.snd_timeout_ms.load(Ordering::Relaxed)),
            (SOL_SOCKET, SO_ERROR) => o
                .sock
                .with_socket2(|s| s.take_error())
                .map(|e| e.map_or(0, |e| wsa_code(&e)))
                .map_err(io),
            (SOL_SOCKET, SO_TYPE) => Ok(if o.sock.is_stream() { 1 } else { 2 }),
            (IPPROTO_TCP, TCP_NODELAY) => b(o.sock.with_socket2(|s| s.tcp_nodelay())),
            (IPPROTO_IPV6, IPV6_V6ONLY) => b(o.sock.with_socket2(|s| s.only_v6())),
            // Windows: an unknown level is WSAEINVAL, an unknown option of
            // a known level WSAENOPROTOOPT.
            (SOL_SOCKET | IPPROTO_TCP | IPPROTO_IP | IPPROTO_IPV6, _) => Err(WSAENOPROTOOPT),
            _ => Err(WSAEINVAL),
        }
    });
    match r {
        Ok(v) => {
            // SAFETY: `val` writable for `*len >= 4` bytes, `len` writable.
            unsafe {
                if (level, name) == (SOL_SOCKET, SO_LINGER) && *len >= 8 {
                    // The system's `struct linger` (two `int`s), which a
                    // program compiled here passes.
                    let l = libc::linger {
                        l_onoff: (v & 0xFFFF) as c_int,
                        l_linger: (v >> 16) as c_int,
                    };
                    val.cast::<libc::linger>().write_unaligned(l);
                    *len = 8;
                } else {
                    val.cast::<u32>().write_unaligned(v);
                    *len = 4;
                }
            }
            0
        }
        Err(c) => fail(c),
    }
}

/// `ioctlsocket`: `FIONBIO` (the non-overlapped calls stop blocking; the
/// socket itself is always non-blocking underneath) and `FIONREAD`.
///
/// # Safety
/// `argp` is readable and writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ioctlsocket(s: usize, cmd: c_long, argp: *mut c_ulong) -> c_int {
    if argp.is_null() {
        return fail(WSAEFAULT);
    }
    let r = sock(s).and_then(|o| match cmd as u32 {
        c if c == FIONBIO as u32 => {
            // SAFETY: readable (the caller's promise).
            let on = unsafe { *argp } != 0;
            // Windows: a socket selected by `WSAEventSelect` cannot be
            // made blocking.
            let selected = o
                .selected
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some();
            if !on && selected {
                return Err(WSAEINVAL);
            }
            o.nonblocking.store(on, Ordering::Relaxed);
            Ok(())
        }
        c if c == FIONREAD as u32 => {
            let n = o
                .sock
                .with_fd(|fd| {
                    use std::os::fd::AsRawFd;
                    let mut n: c_int = 0;
                    // SAFETY: FIONREAD writes one `int`; the descriptor is
                    // borrowed for the call.
                    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::FIONREAD, &raw mut n) };
                    if r == 0 {
                        Ok(n)
                    } else {
                        Err(std::io::Error::last_os_error())
                    }
                })
                .and_then(|r| r)
                .map_err(|e| wsa_code(&e))?;
            // SAFETY: writable (the caller's promise).
            unsafe { *argp = n as c_ulong };
            Ok(())
        }
        _ => Err(WSAEINVAL),
    });
    match r {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}
