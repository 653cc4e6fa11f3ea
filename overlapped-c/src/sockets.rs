//! Winsock's socket calls: start-up, sockets, addresses, options, and the
//! non-overlapped `send`/`recv` family (run as an operation the call waits
//! for, so they keep the engine's order with overlapped ones).

#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_long, c_ulong};
use std::net::Shutdown;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use overlapped::{
    Completion, Domain, Engine, MsgFlags, Notify, Op, OpOutput, Polled, Socket, Type,
};

use crate::errors::{self, *};
use crate::table::{self, Obj, SockObj};
use crate::types::*;

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The engine, once `WSAStartup` ran.
pub fn engine() -> Result<Engine, u32> {
    if STARTED.load(Ordering::Acquire) == 0 {
        return Err(WSANOTINITIALISED);
    }
    Engine::global().map_err(|_| WSASYSNOTREADY)
}

/// Sets the last error and returns `SOCKET_ERROR`.
pub fn fail(code: u32) -> c_int {
    errors::set_last(code);
    SOCKET_ERROR
}

/// The socket behind `s`, or `WSAENOTSOCK`.
pub fn sock(s: usize) -> Result<Arc<SockObj>, u32> {
    table::socket(s).ok_or(WSAENOTSOCK)
}

/// Windows' send/receive flags as the library's (`MSG_PARTIAL` is
/// accepted and ignored); other bits are `WSAEOPNOTSUPP`.
pub fn msg_flags(f: u32) -> Result<MsgFlags, u32> {
    MsgFlags::from_bits(f & !MSG_PARTIAL).ok_or(WSAEOPNOTSUPP)
}

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

/// `WSAStartup`: as Windows' Winsock 2, which serves versions 1.0 to 2.2:
/// a request in that range gets it (`wVersion`), a higher one 2.2, one
/// below 1.0 `WSAVERNOTSUPPORTED`; `wHighVersion` is 2.2. Makes the engine
/// (`OVERLAPPED_ENGINE` picks it): `WSASYSNOTREADY` when none can run.
///
/// # Safety
/// `data` is null or points at a writable `WSADATA`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAStartup(version: u16, data: *mut WsaData) -> c_int {
    if data.is_null() {
        return WSAEFAULT as c_int;
    }
    let (major, minor) = (version & 0xFF, version >> 8);
    let granted = if (major, minor) > (2, 2) {
        0x0202
    } else {
        version
    };
    let engine = Engine::global();
    let mut d = WsaData {
        version: granted,
        high_version: 0x0202,
        max_sockets: 0,
        max_udp_dg: 0,
        vendor_info: std::ptr::null_mut(),
        description: [0; 257],
        system_status: [0; 129],
    };
    let desc = b"overlapped (Winsock overlapped I/O on Linux)";
    d.description[..desc.len()].copy_from_slice(desc);
    let status = match &engine {
        Ok(e) => format!("Running on the {} engine", e.kind().name()),
        Err(e) => format!("No engine: {e}"),
    };
    let n = status.len().min(128);
    d.system_status[..n].copy_from_slice(&status.as_bytes()[..n]);
    // SAFETY: `data` is writable (the caller's promise).
    unsafe { data.write(d) };
    if major < 1 {
        return WSAVERNOTSUPPORTED as c_int;
    }
    if engine.is_err() {
        return WSASYSNOTREADY as c_int;
    }
    STARTED.fetch_add(1, Ordering::AcqRel);
    0
}

/// `WSACleanup`: the last one closes every socket still open.
#[unsafe(no_mangle)]
pub extern "C" fn WSACleanup() -> c_int {
    let prev = STARTED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    match prev {
        Err(_) => fail(WSANOTINITIALISED),
        Ok(1) => {
            for s in table::remove_sockets() {
                let _ = s.sock.close();
            }
            0
        }
        Ok(_) => 0,
    }
}

/// `WSAGetLastError` (the same value as `GetLastError`).
#[unsafe(no_mangle)]
pub extern "C" fn WSAGetLastError() -> c_int {
    errors::last() as c_int
}

/// `WSASetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn WSASetLastError(code: c_int) {
    errors::set_last(code as u32);
}

/// `GetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn GetLastError() -> u32 {
    errors::last()
}

/// `SetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn SetLastError(code: u32) {
    errors::set_last(code);
}

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
