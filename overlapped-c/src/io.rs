//! The overlapped calls: `WSASend`, `WSARecv`, `WSASendTo`, `WSARecvFrom`,
//! their results, and cancellation.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use overlapped::{Completion, Event, Notify, Polled, StartError, Started};

use crate::bufs::{WsaBufs, WsaPiece};
use crate::errors::{self, *};
use crate::inflight::{self, AnyOp, FromPtrs, Harvest, Held, Outcome};
use crate::sockets::{fail, msg_flags, sock};
use crate::table;
use crate::types::*;

/// Which call.
#[derive(Debug, Clone, Copy)]
enum Call {
    Send,
    Recv,
    SendTo(SocketAddr),
    RecvFrom,
}

/// How the completion is made known.
enum Mode {
    /// The handle takes the result; the event tells when.
    Consumer(Event, usize),
    /// A packet on the socket's port.
    Port,
    /// A completion routine.
    Routine,
}

impl Mode {
    /// How the in-flight table keeps an operation started this way.
    fn held(self, op: AnyOp) -> Held {
        match self {
            Mode::Consumer(event, event_handle) => Held::Consumer {
                op,
                event,
                event_handle,
            },
            Mode::Port | Mode::Routine => Held::Notified(Some(op)),
        }
    }
}

/// Writes the immediate results a call reports (`lpNumberOfBytes...`,
/// `lpFlags`).
///
/// # Safety
/// Each pointer is null or writable.
unsafe fn report_now(bytes_out: *mut u32, flags_out: *mut u32, bytes: usize, flags: u32) {
    // SAFETY: the caller's promise.
    unsafe {
        if !bytes_out.is_null() {
            *bytes_out = bytes as u32;
        }
        if !flags_out.is_null() {
            *flags_out = flags;
        }
    }
}

/// A call with a null `lpOverlapped`: a non-overlapped send or receive
/// into the same buffers (copied, so nothing outlives the call).
///
/// # Safety
/// `bufs` holds `count` valid `WSABUF`s; the out pointers are null or
/// writable; `from`/`fromlen` as for `recvfrom`.
#[allow(clippy::too_many_arguments)]
unsafe fn blocking(
    s: usize,
    bufs: *const WsaBuf,
    count: usize,
    bytes_out: *mut u32,
    flags: u32,
    flags_out: *mut u32,
    call: Call,
    from: (*mut libc::sockaddr, *mut c_int),
) -> c_int {
    // SAFETY: `count` readable `WSABUF`s (the caller's promise).
    let arr = unsafe { std::slice::from_raw_parts(bufs, count) };
    match call {
        Call::Send | Call::SendTo(_) => {
            let mut data = Vec::new();
            for b in arr {
                if b.len > 0 {
                    // SAFETY: each `WSABUF` is readable for `len` bytes.
                    data.extend_from_slice(unsafe {
                        std::slice::from_raw_parts(b.buf, b.len as usize)
                    });
                }
            }
            let to = match call {
                Call::SendTo(a) => Some(a),
                _ => None,
            };
            let r = sock(s).and_then(|o| {
                let f = msg_flags(flags)?;
                let op = match to {
                    None => o.sock.send(data, f, Notify::None),
                    Some(a) => o.sock.send_to(data, a, f, Notify::None),
                }
                .map_err(|e| wsa_code(&e.error))?
                .op();
                let c = crate::sockets::wait_op(
                    op,
                    o.nonblocking.load(Ordering::Relaxed),
                    o.snd_timeout_ms.load(Ordering::Relaxed),
                )?;
                match c.error {
                    Some(e) if c.bytes == 0 => Err(wsa_code(&e)),
                    _ => Ok(c.bytes),
                }
            });
            match r {
                Ok(n) => {
                    // SAFETY: the caller's promise.
                    unsafe { report_now(bytes_out, std::ptr::null_mut(), n, 0) };
                    0
                }
                Err(c) => fail(c),
            }
        }
        Call::Recv | Call::RecvFrom => {
            let total: usize = arr.iter().map(|b| b.len as usize).sum();
            let r = crate::sockets::sync_recv(s, total, flags, matches!(call, Call::RecvFrom));
            let c = match r {
                Ok(c) => c,
                Err(code) => return fail(code),
            };
            let mut off = 0;
            for b in arr {
                let n = (b.len as usize).min(c.data.len() - off);
                if n > 0 {
                    // SAFETY: each `WSABUF` is writable for `len >= n` bytes.
                    unsafe { std::ptr::copy_nonoverlapping(c.data.as_ptr().add(off), b.buf, n) };
                }
                off += n;
            }
            if let Some(a) = &c.addr {
                // SAFETY: the caller's promise.
                if let Err(code) = unsafe { crate::addr::write(a, from.0, from.1) } {
                    return fail(code);
                }
            }
            let o = Outcome::of(&c);
            // SAFETY: the caller's promise.
            unsafe { report_now(bytes_out, flags_out, c.bytes, o.flags) };
            if o.wsa != 0 && !(c.error.is_some() && c.bytes > 0) {
                fail(o.wsa)
            } else {
                0
            }
        }
    }
}

/// The common body of the four overlapped calls.
///
/// # Safety
/// The Windows contract of `WSASend`/`WSARecv`: `bufs` holds `count`
/// `WSABUF`s (read during the call); their memory, `ov`, and `from`'s
/// pointers stay valid until the completion is reported; out pointers are
/// null or writable.
#[allow(clippy::too_many_arguments)]
unsafe fn start(
    s: usize,
    bufs: *const WsaBuf,
    count: u32,
    bytes_out: *mut u32,
    flags: u32,
    flags_out: *mut u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
    call: Call,
    from: (*mut libc::sockaddr, *mut c_int),
) -> c_int {
    let o = match sock(s) {
        Ok(o) => o,
        Err(c) => return fail(c),
    };
    if count == 0 {
        return fail(WSAEINVAL);
    }
    if bufs.is_null() {
        return fail(WSAEFAULT);
    }
    let mflags = match msg_flags(flags) {
        Ok(f) => f,
        Err(c) => return fail(c),
    };
    if ov.is_null() {
        if routine.is_some() {
            return fail(WSAEINVAL);
        }
        // SAFETY: the caller's promise.
        return unsafe {
            blocking(
                s,
                bufs,
                count as usize,
                bytes_out,
                flags,
                flags_out,
                call,
                from,
            )
        };
    }
    // SAFETY: `ov` is readable (the caller's promise).
    let h_event = unsafe { (*ov).h_event } as usize;
    let mode = if routine.is_some() {
        Mode::Routine
    } else if o.associated.load(Ordering::Acquire) && h_event & 1 == 0 {
        // A port packet reports it; an event in `hEvent` is also reset now
        // and set when the packet is taken (`port.rs`).
        if h_event != 0 {
            match table::event(h_event) {
                Some(e) => e.event.reset(),
                None => return fail(ERROR_INVALID_HANDLE),
            }
        }
        Mode::Port
    } else if h_event & !1 != 0 {
        match table::event(h_event & !1) {
            Some(e) => Mode::Consumer(e.event, h_event & !1),
            None => return fail(ERROR_INVALID_HANDLE),
        }
    } else {
        Mode::Consumer(Event::new(), 0)
    };
    let from_ptrs = FromPtrs::new(from.0, from.1);
    let seq = match inflight::begin(ov, s, from_ptrs) {
        Ok(seq) => seq,
        Err(c) => return fail(c),
    };
    // SAFETY: the caller keeps every `WSABUF`'s memory valid until the
    // completion is reported, Windows' contract.
    let pieces = unsafe { WsaPiece::from_array(bufs, count as usize) };
    let notify: Notify<WsaBufs> = match &mode {
        Mode::Consumer(ev, _) => Notify::Event(ev.clone()),
        Mode::Port => Notify::Port(ov as u64),
        Mode::Routine => {
            let r = routine.expect("a routine mode has a routine");
            let ov_addr = ov as usize;
            Notify::routine(move |c: Completion<WsaBufs>| {
                let out = Outcome::of(&c);
                drop(c);
                let ov = ov_addr as *mut Overlapped;
                let from = inflight::reported(ov, Some(seq));
                // SAFETY: the `OVERLAPPED` and `lpFrom` stay valid until
                // this completion is reported (Windows' contract); the
                // program's routine is called as Windows calls it, on the
                // thread that started the operation, in its alertable wait.
                unsafe {
                    inflight::finish(ov, &out, from);
                    r(out.wsa, out.bytes as u32, ov, out.flags);
                }
            })
        }
    };
    // SAFETY: `ov` is writable (the caller's promise).
    unsafe { inflight::mark_pending(ov) };
    let started = match call {
        Call::Send => o.sock.send(pieces, mflags, notify),
        Call::Recv => o.sock.recv(pieces, mflags, notify),
        Call::SendTo(a) => o.sock.send_to(pieces, a, mflags, notify),
        Call::RecvFrom => o.sock.recv_from(pieces, mflags, notify),
    };
    match started {
        Err(StartError { error, .. }) => {
            inflight::forget(ov, seq);
            fail(wsa_code(&error))
        }
        Ok(Started::Pending(op)) => {
            inflight::fill(ov, seq, mode.held(AnyOp::Bufs(op)));
            fail(WSA_IO_PENDING)
        }
        Ok(Started::Now { bytes, op }) => {
            let inline = match mode {
                Mode::Consumer(..) => true,
                Mode::Port => o.skip_port.load(Ordering::Acquire),
                Mode::Routine => false,
            };
            if !inline {
                // The routine or the port packet reports it; the
                // `OVERLAPPED` is written then.
                inflight::fill(ov, seq, Held::Notified(Some(AnyOp::Bufs(op))));
                // SAFETY: the caller's promise.
                unsafe { report_now(bytes_out, flags_out, bytes, 0) };
                return 0;
            }
            match op.result(false) {
                Ok(Polled::Complete(c)) => {
                    let out = Outcome::of(&c);
                    drop(c);
                    inflight::forget(ov, seq);
                    // SAFETY: the caller's promise for `ov`, `from` and the
                    // out pointers.
                    unsafe {
                        inflight::finish(ov, &out, from_ptrs);
                        report_now(bytes_out, flags_out, out.bytes, out.flags);
                    }
                    if out.wsa != 0 { fail(out.wsa) } else { 0 }
                }
                Ok(Polled::Incomplete(op)) => {
                    inflight::fill(ov, seq, mode.held(AnyOp::Bufs(op)));
                    fail(WSA_IO_PENDING)
                }
                Err(e) => {
                    inflight::forget(ov, seq);
                    fail(wsa_code(&e))
                }
            }
        }
    }
}

/// `WSASend`.
///
/// # Safety
/// Windows' contract: `bufs` holds `count` `WSABUF`s; their memory and
/// `ov` stay valid until the completion is reported (with `ov` null the
/// call is not overlapped and nothing outlives it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSASend(
    s: usize,
    bufs: *const WsaBuf,
    count: u32,
    sent: *mut u32,
    flags: u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    let none = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the caller's promise.
    unsafe {
        start(
            s,
            bufs,
            count,
            sent,
            flags,
            std::ptr::null_mut(),
            ov,
            routine,
            Call::Send,
            none,
        )
    }
}

/// `WSARecv`: `flags` is read at the call and written on an immediate
/// completion.
///
/// # Safety
/// As `WSASend`; `flags` is readable and writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSARecv(
    s: usize,
    bufs: *const WsaBuf,
    count: u32,
    received: *mut u32,
    flags: *mut u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    if flags.is_null() {
        return fail(WSAEFAULT);
    }
    // SAFETY: `flags` readable (the caller's promise).
    let f = unsafe { *flags };
    let none = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the caller's promise.
    unsafe {
        start(
            s,
            bufs,
            count,
            received,
            f,
            flags,
            ov,
            routine,
            Call::Recv,
            none,
        )
    }
}

/// `WSASendTo`.
///
/// # Safety
/// As `WSASend`; `to` is readable for `tolen` bytes (during the call).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSASendTo(
    s: usize,
    bufs: *const WsaBuf,
    count: u32,
    sent: *mut u32,
    flags: u32,
    to: *const libc::sockaddr,
    tolen: c_int,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    // SAFETY: the caller's promise.
    let addr = match unsafe { crate::addr::read(to, tolen) } {
        Ok(a) => a,
        Err(c) => return fail(c),
    };
    let none = (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: the caller's promise.
    unsafe {
        start(
            s,
            bufs,
            count,
            sent,
            flags,
            std::ptr::null_mut(),
            ov,
            routine,
            Call::SendTo(addr),
            none,
        )
    }
}

/// `WSARecvFrom`: `from`/`fromlen` receive the sender when the operation
/// completes, so they stay valid until then (Windows' contract).
///
/// # Safety
/// As `WSARecv`; `from` and `fromlen` are null or valid until the
/// completion is reported.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSARecvFrom(
    s: usize,
    bufs: *const WsaBuf,
    count: u32,
    received: *mut u32,
    flags: *mut u32,
    from: *mut libc::sockaddr,
    fromlen: *mut c_int,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    if flags.is_null() {
        return fail(WSAEFAULT);
    }
    // SAFETY: `flags` readable (the caller's promise).
    let f = unsafe { *flags };
    // SAFETY: the caller's promise.
    unsafe {
        start(
            s,
            bufs,
            count,
            received,
            f,
            flags,
            ov,
            routine,
            Call::RecvFrom,
            (from, fromlen),
        )
    }
}

/// The completion on `ov`, waiting for it when `wait` (`None`: still in
/// flight).
///
/// # Safety
/// `ov` is a valid `OVERLAPPED`.
unsafe fn overlapped_result(ov: *mut Overlapped, wait: bool) -> Option<Outcome> {
    loop {
        // SAFETY: the caller's promise.
        let h = unsafe { inflight::harvest(ov) };
        // SAFETY: the caller's promise.
        if let Some(o) = unsafe { Outcome::read(ov) } {
            return Some(o);
        }
        if !wait {
            return None;
        }
        match h {
            Harvest::Pending(Some(ev)) => {
                ev.wait(None);
            }
            // A routine's or a port's operation: the `OVERLAPPED` is
            // written when its routine runs or its packet is taken.
            _ => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

/// Whose codes a result call reports: Winsock's (`WSAGetLastError`) or
/// Win32's (`GetLastError`).
#[derive(Clone, Copy)]
enum Family {
    Winsock,
    Win32,
}

/// `WSAGetOverlappedResult` and `GetOverlappedResult`, which differ only
/// in the codes they report (`family`): a null pointer, an unknown handle,
/// the operation's own error. `flags` gets the receive flags unless null.
///
/// # Safety
/// `ov` is null or a valid `OVERLAPPED` of an operation on `h`; `bytes`
/// and `flags` null or writable.
unsafe fn overlapped_result_call(
    family: Family,
    h: usize,
    ov: *mut Overlapped,
    bytes: *mut u32,
    wait: c_int,
    flags: *mut u32,
) -> c_int {
    let (fault, no_handle) = match family {
        Family::Winsock => (WSAEFAULT, WSAENOTSOCK),
        Family::Win32 => (ERROR_INVALID_PARAMETER, ERROR_INVALID_HANDLE),
    };
    if ov.is_null() || bytes.is_null() {
        errors::set_last(fault);
        return FALSE;
    }
    if table::get(h).is_none() {
        errors::set_last(no_handle);
        return FALSE;
    }
    // SAFETY: the caller's promise.
    match unsafe { overlapped_result(ov, wait != 0) } {
        None => {
            errors::set_last(WSA_IO_INCOMPLETE);
            FALSE
        }
        Some(o) => {
            // SAFETY: the caller's promise.
            unsafe { report_now(bytes, flags, o.bytes, o.flags) };
            let code = match family {
                Family::Winsock => o.wsa,
                Family::Win32 => o.win32,
            };
            if code != 0 {
                errors::set_last(code);
                FALSE
            } else {
                TRUE
            }
        }
    }
}

/// `WSAGetOverlappedResult`: the Winsock code of a failed operation; the
/// flags come from `Offset`, as Windows keeps them.
///
/// # Safety
/// `ov` is a valid `OVERLAPPED` of an operation on `s`; `bytes` writable;
/// `flags` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAGetOverlappedResult(
    s: usize,
    ov: *mut Overlapped,
    bytes: *mut u32,
    wait: c_int,
    flags: *mut u32,
) -> c_int {
    // SAFETY: the same contract.
    unsafe { overlapped_result_call(Family::Winsock, s, ov, bytes, wait, flags) }
}

/// `GetOverlappedResult`: as `WSAGetOverlappedResult`, with the Win32
/// code (`ERROR_NETNAME_DELETED` for a reset, ...).
///
/// # Safety
/// As `WSAGetOverlappedResult`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetOverlappedResult(
    h: *mut std::ffi::c_void,
    ov: *mut Overlapped,
    bytes: *mut u32,
    wait: c_int,
) -> c_int {
    // SAFETY: the same contract; no flags are asked for.
    unsafe {
        overlapped_result_call(
            Family::Win32,
            h as usize,
            ov,
            bytes,
            wait,
            std::ptr::null_mut(),
        )
    }
}

/// `HasOverlappedIoCompleted` (a macro on Windows that reads `Internal`;
/// here a call, so the result is taken first).
///
/// # Safety
/// `ov` is a valid `OVERLAPPED`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ovl_HasOverlappedIoCompleted(ov: *mut Overlapped) -> c_int {
    if ov.is_null() {
        return FALSE;
    }
    // SAFETY: the caller's promise.
    c_int::from(unsafe { overlapped_result(ov, false) }.is_some())
}

/// How many operations of a socket or file handle `cancel_all` found, or
/// `ERROR_INVALID_HANDLE` for any other handle.
fn cancel_all(h: usize) -> Result<usize, u32> {
    let r = match table::get(h) {
        Some(table::Obj::Socket(o)) => o.sock.cancel_all(),
        Some(table::Obj::File(f)) => f.file.cancel_all(),
        _ => return Err(ERROR_INVALID_HANDLE),
    };
    r.map_err(|e| errors::both_codes(&e).1)
}

/// `CancelIoEx(h, ov)`: cancels the operation on `ov` (every operation of
/// the socket or file when `ov` is null). `ERROR_NOT_FOUND` when none was
/// pending.
///
/// # Safety
/// `ov` is null or the `OVERLAPPED` of an operation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CancelIoEx(h: *mut std::ffi::c_void, ov: *mut Overlapped) -> c_int {
    let h = h as usize;
    let r = if ov.is_null() {
        match cancel_all(h) {
            Ok(0) => Err(ERROR_NOT_FOUND),
            Ok(_) => Ok(()),
            Err(c) => Err(c),
        }
    } else if matches!(
        table::get(h),
        Some(table::Obj::Socket(_) | table::Obj::File(_))
    ) {
        inflight::cancel(h, ov)
    } else {
        Err(ERROR_INVALID_HANDLE)
    };
    match r {
        Ok(()) => TRUE,
        Err(c) => {
            errors::set_last(c);
            FALSE
        }
    }
}

/// `CancelIo(h)`: cancels every pending operation of the socket or file
/// (Windows limits it to those the calling thread started; here it is all
/// of them).
#[unsafe(no_mangle)]
pub extern "C" fn CancelIo(h: *mut std::ffi::c_void) -> c_int {
    match cancel_all(h as usize) {
        Ok(_) => TRUE,
        Err(c) => {
            errors::set_last(c);
            FALSE
        }
    }
}

/// `SetFileCompletionNotificationModes`: `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS`
/// and `FILE_SKIP_SET_EVENT_ON_HANDLE` (the socket's completions no longer
/// signal the socket as a waitable object), each one-way.
#[unsafe(no_mangle)]
pub extern "C" fn SetFileCompletionNotificationModes(h: *mut std::ffi::c_void, flags: u8) -> c_int {
    let Some(o) = table::socket(h as usize) else {
        errors::set_last(ERROR_INVALID_HANDLE);
        return FALSE;
    };
    if flags & !(FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE) != 0 {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    if flags & FILE_SKIP_COMPLETION_PORT_ON_SUCCESS != 0 {
        if let Err(e) = o.sock.set_skip_port_on_success() {
            errors::set_last(errors::both_codes(&e).1);
            return FALSE;
        }
        o.skip_port.store(true, Ordering::Release);
    }
    if flags & FILE_SKIP_SET_EVENT_ON_HANDLE != 0 {
        if let Err(e) = o.sock.set_skip_event_on_handle() {
            errors::set_last(errors::both_codes(&e).1);
            return FALSE;
        }
    }
    TRUE
}
