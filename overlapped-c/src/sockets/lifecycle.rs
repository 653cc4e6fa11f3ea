//! A socket's life: creating it (`socket`, `WSASocketA`/`W`), `bind`,
//! `listen`, `accept` (and `WSAAccept`), `connect`, `shutdown` and
//! `closesocket`.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use overlapped::{Domain, Notify, Polled, Socket, Type};

use super::blocking::wait_op;
use super::startup::engine;
use super::{fail, sock};
use crate::errors::{self, *};
use crate::table::{self, Obj, SockObj};
use crate::types::*;

fn new_socket(af: c_int, ty: c_int) -> usize {
    let made = engine().and_then(|e| {
        if ty != libc::SOCK_STREAM && ty != libc::SOCK_DGRAM {
            return Err(WSAEINVAL);
        }
        if af != libc::AF_INET && af != libc::AF_INET6 {
            return Err(WSAEAFNOSUPPORT);
        }
        Socket::new(&e, Domain::from(af), Type::from(ty)).map_err(|e| wsa_code(&e))
    });
    match made {
        Ok(s) => table::insert(Obj::Socket(Arc::new(SockObj::new(s)))),
        Err(code) => {
            errors::set_last(code);
            INVALID_SOCKET
        }
    }
}

/// `WSASocketA`: every socket is overlapped-capable (`WSA_FLAG_OVERLAPPED`
/// or not); `lpProtocolInfo` and `g` are not supported (must be null / 0).
///
/// # Safety
/// None beyond passing a null `info`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSASocketA(
    af: c_int,
    ty: c_int,
    _protocol: c_int,
    info: *mut std::ffi::c_void,
    g: u32,
    _flags: u32,
) -> usize {
    if !info.is_null() || g != 0 {
        errors::set_last(WSAEINVAL);
        return INVALID_SOCKET;
    }
    new_socket(af, ty)
}

/// `WSASocketW`: as `WSASocketA`.
///
/// # Safety
/// As `WSASocketA`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSASocketW(
    af: c_int,
    ty: c_int,
    protocol: c_int,
    info: *mut std::ffi::c_void,
    g: u32,
    flags: u32,
) -> usize {
    // SAFETY: the same contract.
    unsafe { WSASocketA(af, ty, protocol, info, g, flags) }
}

/// `socket` (the header maps the name to this symbol).
#[unsafe(no_mangle)]
pub extern "C" fn ovl_socket(af: c_int, ty: c_int, _protocol: c_int) -> usize {
    new_socket(af, ty)
}

/// `closesocket`: pending operations complete aborted; the handle is gone.
#[unsafe(no_mangle)]
pub extern "C" fn closesocket(s: usize) -> c_int {
    if table::socket(s).is_none() {
        return fail(WSAENOTSOCK);
    }
    match table::remove(s) {
        Some(Obj::Socket(o)) => {
            o.pending_accept
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            o.pending_connect
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            match o.sock.close() {
                Ok(()) => 0,
                Err(e) => fail(wsa_code(&e)),
            }
        }
        _ => fail(WSAENOTSOCK),
    }
}

/// `bind`.
///
/// # Safety
/// `name` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_bind(s: usize, name: *const libc::sockaddr, len: c_int) -> c_int {
    // SAFETY: the caller's promise.
    let r = sock(s).and_then(|o| unsafe { crate::addr::read(name, len) }.map(|a| (o, a)));
    match r.and_then(|(o, a)| o.sock.bind(&a).map_err(|e| wsa_code(&e))) {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `listen`.
#[unsafe(no_mangle)]
pub extern "C" fn ovl_listen(s: usize, backlog: c_int) -> c_int {
    let backlog = if backlog == 0x7fff_ffff {
        1024
    } else {
        backlog.max(1)
    };
    match sock(s).and_then(|o| o.sock.listen(backlog).map_err(|e| wsa_code(&e))) {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `accept`: waits for a connection (or, on a non-blocking socket, fails
/// with `WSAEWOULDBLOCK`; the accept stays in flight for the next call, so
/// no connection is lost). The new socket takes the listener's
/// `WSAEventSelect`, as on Windows.
///
/// # Safety
/// `addr`/`addrlen` are null, or `addrlen` is readable and writable and
/// `addr` writable for `*addrlen` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_accept(
    s: usize,
    addr: *mut libc::sockaddr,
    addrlen: *mut c_int,
) -> usize {
    let got = sock(s).and_then(|o| {
        let nb = o.nonblocking.load(Ordering::Relaxed);
        let mut slot = o.pending_accept.lock().unwrap_or_else(|p| p.into_inner());
        let op = match slot.take() {
            Some(op) => op,
            None => o
                .sock
                .accept(Notify::None)
                .map_err(|e| wsa_code(&e.error))?
                .op(),
        };
        let selected = o
            .selected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        let c = if nb {
            match op.result(false).map_err(|e| wsa_code(&e))? {
                Polled::Complete(c) => c,
                // Under `WSAEventSelect` no accept may stay in flight: it
                // would take the next connection, which must raise
                // `FD_ACCEPT` instead. Cancelled, it gives the connection
                // it won the race for, or `WSAEWOULDBLOCK`.
                Polled::Incomplete(op) if selected => {
                    drop(slot);
                    wait_op(op, true, 0)?
                }
                Polled::Incomplete(op) => {
                    *slot = Some(op);
                    return Err(WSAEWOULDBLOCK);
                }
            }
        } else {
            drop(slot);
            wait_op(op, false, 0)?
        };
        if let Some(e) = &c.error {
            return Err(wsa_code(e));
        }
        match (c.data, c.addr) {
            (Some(new), Some(peer)) => Ok((new, peer)),
            _ => Err(WSASYSCALLFAILURE),
        }
    });
    match got {
        Ok((new, peer)) => {
            // SAFETY: the caller's promise.
            if let Err(c) = unsafe { crate::addr::write(&peer, addr, addrlen) } {
                let _ = new.close();
                errors::set_last(c);
                return INVALID_SOCKET;
            }
            let new = SockObj::new(new);
            // The accepted socket takes the listener's `WSAEventSelect`
            // (Windows: "the same properties as the listening socket").
            let inherited = sock(s)
                .ok()
                .and_then(|l| l.selected.lock().unwrap_or_else(|p| p.into_inner()).clone());
            if let Some((event, mask)) = inherited {
                if let Err(c) = crate::select::select(&new, Some(event), mask) {
                    let _ = new.sock.close();
                    errors::set_last(c);
                    return INVALID_SOCKET;
                }
            }
            table::insert(Obj::Socket(Arc::new(new)))
        }
        Err(c) => {
            errors::set_last(c);
            INVALID_SOCKET
        }
    }
}

/// `connect`: waits for the connection (non-blocking: `WSAEWOULDBLOCK`,
/// then `WSAEALREADY` while it is in flight and `WSAEISCONN` once made).
///
/// # Safety
/// `name` is readable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_connect(s: usize, name: *const libc::sockaddr, len: c_int) -> c_int {
    let r = sock(s).and_then(|o| {
        let mut slot = o.pending_connect.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(op) = slot.take() {
            return match op.result(false).map_err(|e| wsa_code(&e))? {
                Polled::Complete(c) => match c.error {
                    None => Err(10056), // WSAEISCONN
                    Some(e) => Err(wsa_code(&e)),
                },
                Polled::Incomplete(op) => {
                    *slot = Some(op);
                    Err(10037) // WSAEALREADY
                }
            };
        }
        // SAFETY: the caller's promise.
        let a = unsafe { crate::addr::read(name, len) }?;
        let op = o
            .sock
            .connect(a, Notify::None)
            .map_err(|e| wsa_code(&e.error))?
            .op();
        if o.nonblocking.load(Ordering::Relaxed) {
            return match op.result(false).map_err(|e| wsa_code(&e))? {
                Polled::Complete(c) => c.error.map_or(Ok(()), |e| Err(wsa_code(&e))),
                Polled::Incomplete(op) => {
                    *slot = Some(op);
                    Err(WSAEWOULDBLOCK)
                }
            };
        }
        drop(slot);
        let c = wait_op(op, false, 0)?;
        c.error.map_or(Ok(()), |e| Err(wsa_code(&e)))
    });
    match r {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `shutdown` (`SD_RECEIVE` 0, `SD_SEND` 1, `SD_BOTH` 2).
#[unsafe(no_mangle)]
pub extern "C" fn ovl_shutdown(s: usize, how: c_int) -> c_int {
    let how = match how {
        0 => Shutdown::Read,
        1 => Shutdown::Write,
        2 => Shutdown::Both,
        _ => return fail(WSAEINVAL),
    };
    match sock(s).and_then(|o| o.sock.shutdown(how).map_err(|e| wsa_code(&e))) {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `WSAAccept` without a condition function: `accept`. A condition
/// function is not supported (`WSAEOPNOTSUPP`).
///
/// # Safety
/// As `accept`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAAccept(
    s: usize,
    addr: *mut libc::sockaddr,
    addrlen: *mut c_int,
    condition: *mut std::ffi::c_void,
    _data: usize,
) -> usize {
    if !condition.is_null() {
        errors::set_last(WSAEOPNOTSUPP);
        return INVALID_SOCKET;
    }
    // SAFETY: the same contract.
    unsafe { ovl_accept(s, addr, addrlen) }
}
