//! The Microsoft extension functions (`WSAIoctl` with
//! `SIO_GET_EXTENSION_FUNCTION_POINTER`: `AcceptEx`,
//! `GetAcceptExSockaddrs`, `ConnectEx`, `DisconnectEx`, `TransmitFile`,
//! `WSARecvMsg`; `WSASendMsg`), and the start of any operation whose
//! completion carries more than `WSABUF`s (these, and the file operations
//! of [`files`](crate::files)).
//!
//! Every such operation is started by [`start`]: the notification mode is
//! chosen as for `WSASend` (a routine, the port, the `hEvent`, or a
//! private event), the in-flight table holds its handle
//! ([`AnyOp::Ext`]), and a [`Finish`] turns its completion into Windows'
//! [`Outcome`] while it writes the call's other outputs into the caller's
//! memory (`AcceptEx`'s addresses, a `WSAMSG`'s name, control data and
//! flags) — right before the completion is reported, whichever way that
//! is: the routine, the port packet ([`packet_outcome`], called by
//! `port.rs`), or the call that takes a consumer's result.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use overlapped::{
    Accepted, Completion, Control, Event, Notify, Op, OpOutput, Packet, PktInfo, Polled, RecvFlags,
    Started,
};
use socket2::SockAddr;

use crate::bufs::{WsaBufs, WsaPiece};
use crate::errors::{self, *};
use crate::inflight::{self, AnyOp, Held, Outcome};
use crate::sockets::{fail, msg_flags, sock};
use crate::table;
use crate::types::*;

/// A Winsock code and a Win32 code (`WSAGetLastError` / `GetLastError`
/// are one value: the call sets the one its family reports).
pub type Codes = (u32, u32);

/// `WSA_IO_PENDING` / `ERROR_IO_PENDING` (the same number).
pub const PENDING: Codes = (WSA_IO_PENDING, WSA_IO_PENDING);

/// `WSAEMSGSIZE`.
pub const WSAEMSGSIZE: u32 = 10040;
/// `ERROR_MORE_DATA`.
pub const ERROR_MORE_DATA: u32 = 234;
/// `MSG_TRUNC` (Windows' value).
pub const MSG_TRUNC: u32 = 0x0100;
/// `MSG_CTRUNC` (Windows' value).
pub const MSG_CTRUNC: u32 = 0x0200;
/// `TF_DISCONNECT`.
pub const TF_DISCONNECT: u32 = 0x01;
/// `TF_REUSE_SOCKET`.
pub const TF_REUSE_SOCKET: u32 = 0x02;
/// `TF_USE_SYSTEM_THREAD`, `TF_USE_KERNEL_APC`, `TF_WRITE_BEHIND`
/// (and `TF_USE_DEFAULT_WORKER`, 0): hints, accepted.
const TF_HINTS: u32 = 0x10 | 0x20 | 0x04;
/// `SIO_GET_EXTENSION_FUNCTION_POINTER`.
pub const SIO_GET_EXTENSION_FUNCTION_POINTER: u32 = 0xC800_0006;

/// Turns a completion into Windows' outcome, writing the call's other
/// outputs into the caller's memory (still valid: the completion is being
/// reported).
pub type Finish<T> = Box<dyn FnOnce(Completion<T>) -> Outcome + Send>;

/// An operation of any completion type, as the in-flight table holds it.
pub trait ExtOp: Send + fmt::Debug {
    /// `HasOverlappedIoCompleted` without taking the result.
    fn is_complete(&self) -> bool;
    /// `CancelIoEx` on this operation.
    fn cancel(&self) -> io::Result<()>;
    /// The outcome when complete (non-blocking); the operation back when
    /// not.
    fn take(self: Box<Self>) -> io::Result<Result<Outcome, Box<dyn ExtOp>>>;
}

/// An operation handle with its finisher (`None`: the completion goes to
/// a routine or a port, which finish it; the handle only cancels).
struct Typed<T: OpOutput> {
    op: Op<T>,
    finish: Option<Finish<T>>,
}

impl<T: OpOutput> fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed").finish_non_exhaustive()
    }
}

impl<T: OpOutput + 'static> ExtOp for Typed<T>
where
    Op<T>: Send,
{
    fn is_complete(&self) -> bool {
        self.op.is_complete()
    }

    fn cancel(&self) -> io::Result<()> {
        self.op.cancel()
    }

    fn take(self: Box<Self>) -> io::Result<Result<Outcome, Box<dyn ExtOp>>> {
        let Typed { op, finish } = *self;
        Ok(match op.result(false)? {
            Polled::Complete(c) => Ok(match finish {
                Some(f) => f(c),
                None => Outcome::of(&c),
            }),
            Polled::Incomplete(op) => Err(Box::new(Typed { op, finish })),
        })
    }
}

/// The finisher of an operation that reports by port packet, by its
/// `LPOVERLAPPED`.
// The packet comes back whole when it is not this operation's (as
// `Packet::into_completion` gives it back).
type PortFinish = Box<dyn FnOnce(Packet) -> Result<Outcome, Packet> + Send>;

fn port_map() -> MutexGuard<'static, HashMap<usize, PortFinish>> {
    static MAP: OnceLock<Mutex<HashMap<usize, PortFinish>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// The outcome of a port packet of an operation [`start`] began (its
/// other outputs written); the packet back when it is not one.
#[allow(clippy::result_large_err)]
pub fn packet_outcome(ov: *mut Overlapped, p: Packet) -> Result<Outcome, Packet> {
    let f = port_map().remove(&(ov as usize));
    match f {
        Some(f) => f(p),
        None => Err(p),
    }
}

/// What [`start`] needs of the object the operation runs on.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// Its handle value (`CancelIoEx` finds the operation by it).
    pub handle: usize,
    /// Associated with a completion port.
    pub associated: bool,
    /// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` is set.
    pub skip_port: bool,
}

enum Mode {
    Consumer(Event, usize),
    Port,
    Routine(CompletionRoutine),
}

fn both(e: &io::Error) -> Codes {
    errors::both_codes(e)
}

fn done(out: &Outcome) -> Result<usize, Codes> {
    if out.wsa != 0 {
        Err((out.wsa, out.win32))
    } else {
        Ok(out.bytes)
    }
}

/// Starts one operation as `WSASend` starts its own: with `ov` null the
/// call waits for it (not overlapped); otherwise it is reported by the
/// routine, a packet on the port (when `target` is associated and
/// `hEvent`'s low bit is clear), or `hEvent` (maybe null). `go` starts
/// the library's operation with the notification it is given.
///
/// `Ok(bytes)`: completed at once (and still reported, unless it was taken
/// inline: by an event or none, or skipping the port); `Err(PENDING)`: in
/// flight; any other `Err`: nothing started (or, inline, it failed).
///
/// # Safety
/// `ov` is null or a valid `OVERLAPPED` that stays valid until the
/// completion is reported; `finish`'s own pointers likewise.
pub unsafe fn start<T>(
    target: Target,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
    finish: Finish<T>,
    go: impl FnOnce(Notify<T>) -> io::Result<Started<T>>,
) -> Result<usize, Codes>
where
    T: OpOutput + 'static,
    Op<T>: Send,
{
    if ov.is_null() {
        if routine.is_some() {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        let op = match go(Notify::None).map_err(|e| both(&e))? {
            Started::Now { op, .. } | Started::Pending(op) => op,
        };
        let c = op.wait().map_err(|e| both(&e))?;
        return done(&finish(c));
    }
    // SAFETY: `ov` is readable (the caller's promise).
    let h_event = unsafe { (*ov).h_event } as usize;
    let mode = if let Some(r) = routine {
        Mode::Routine(r)
    } else if target.associated && h_event & 1 == 0 {
        if h_event != 0 {
            match table::event(h_event) {
                Some(e) => e.event.reset(),
                None => return Err((ERROR_INVALID_HANDLE, ERROR_INVALID_HANDLE)),
            }
        }
        Mode::Port
    } else if h_event & !1 != 0 {
        match table::event(h_event & !1) {
            Some(e) => Mode::Consumer(e.event, h_event & !1),
            None => return Err((ERROR_INVALID_HANDLE, ERROR_INVALID_HANDLE)),
        }
    } else {
        Mode::Consumer(Event::new(), 0)
    };
    let seq = inflight::begin(ov, target.handle, None).map_err(|c| (c, ERROR_INVALID_PARAMETER))?;
    let ov_addr = ov as usize;
    let slot: Arc<Mutex<Option<Finish<T>>>> = Arc::new(Mutex::new(None));
    let mut local = None;
    let notify = match &mode {
        Mode::Consumer(ev, _) => {
            local = Some(finish);
            Notify::Event(ev.clone())
        }
        Mode::Port => {
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(finish);
            let s = slot.clone();
            #[allow(clippy::result_large_err)]
            let f: PortFinish = Box::new(move |p: Packet| {
                let c = p.into_completion::<T>()?;
                let f = s.lock().unwrap_or_else(|p| p.into_inner()).take();
                Ok(match f {
                    Some(f) => f(c),
                    None => Outcome::of(&c),
                })
            });
            port_map().insert(ov_addr, f);
            Notify::Port(ov_addr as u64)
        }
        Mode::Routine(r) => {
            let r = *r;
            Notify::routine(move |c: Completion<T>| {
                let out = finish(c);
                let ov = ov_addr as *mut Overlapped;
                inflight::reported(ov, Some(seq));
                // SAFETY: the `OVERLAPPED` stays valid until this
                // completion is reported (Windows' contract); the routine
                // is called as Windows calls it, on the starting thread in
                // its alertable wait.
                unsafe {
                    inflight::finish(ov, &out, None);
                    r(out.wsa, out.bytes as u32, ov, out.flags);
                }
            })
        }
    };
    // SAFETY: `ov` is writable (the caller's promise).
    unsafe { inflight::mark_pending(ov) };
    let forget = |slot_taken: bool| {
        inflight::forget(ov, seq);
        if slot_taken {
            port_map().remove(&ov_addr);
        }
    };
    let is_port = matches!(mode, Mode::Port);
    let held = |op: Op<T>, finish: Option<Finish<T>>| -> Held {
        let any = AnyOp::Ext(Box::new(Typed { op, finish }));
        match &mode {
            Mode::Consumer(event, event_handle) => Held::Consumer {
                op: any,
                event: event.clone(),
                event_handle: *event_handle,
            },
            _ => Held::Notified(Some(any)),
        }
    };
    match go(notify) {
        Err(e) => {
            forget(is_port);
            Err(both(&e))
        }
        Ok(Started::Pending(op)) => {
            inflight::fill(ov, seq, held(op, local));
            Err(PENDING)
        }
        Ok(Started::Now { bytes, op }) => {
            let inline = match mode {
                Mode::Consumer(..) => true,
                Mode::Port => target.skip_port,
                Mode::Routine(_) => false,
            };
            if !inline {
                inflight::fill(
                    ov,
                    seq,
                    Held::Notified(Some(AnyOp::Ext(Box::new(Typed { op, finish: None })))),
                );
                return Ok(bytes);
            }
            match op.result(false) {
                Ok(Polled::Complete(c)) => {
                    forget(is_port);
                    let f = local.or_else(|| slot.lock().unwrap_or_else(|p| p.into_inner()).take());
                    let out = match f {
                        Some(f) => f(c),
                        None => Outcome::of(&c),
                    };
                    // SAFETY: the caller's promise for `ov`.
                    unsafe { inflight::finish(ov, &out, None) };
                    done(&out)
                }
                Ok(Polled::Incomplete(op)) => {
                    inflight::fill(ov, seq, held(op, local));
                    Err(PENDING)
                }
                Err(e) => {
                    forget(is_port);
                    Err(both(&e))
                }
            }
        }
    }
}

/// A Winsock call's `BOOL` result: `TRUE`, or `FALSE` with the Winsock
/// code set (`WSA_IO_PENDING` for an operation in flight).
fn wsa_bool(r: Result<usize, Codes>, bytes_out: *mut u32) -> c_int {
    match r {
        Ok(n) => {
            if !bytes_out.is_null() {
                // SAFETY: the caller's out pointer, null or writable.
                unsafe { *bytes_out = n as u32 };
            }
            TRUE
        }
        Err((wsa, _)) => {
            errors::set_last(wsa);
            FALSE
        }
    }
}

/// A Winsock call's `int` result: 0, or `SOCKET_ERROR` with the code set.
fn wsa_int(r: Result<usize, Codes>, bytes_out: *mut u32) -> c_int {
    if wsa_bool(r, bytes_out) == TRUE {
        0
    } else {
        SOCKET_ERROR
    }
}

fn target_of(s: usize, o: &crate::table::SockObj) -> Target {
    use std::sync::atomic::Ordering;
    Target {
        handle: s,
        associated: o.associated.load(Ordering::Acquire),
        skip_port: o.skip_port.load(Ordering::Acquire),
    }
}

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

/// `ConnectEx`: connects `s` to `name`, then sends `send_len` bytes of
/// `send_buf`; `sent` gets the bytes sent on an immediate completion.
/// **(ours)** An unbound socket is bound for the caller (Windows fails
/// with `WSAEINVAL`).
///
/// # Safety
/// `name` readable for `namelen` bytes (during the call); `send_buf` and
/// `ov` valid until the completion is reported; `sent` null or writable.
unsafe extern "C" fn connect_ex(
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
unsafe extern "C" fn disconnect_ex(
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

/// `WSAMSG`, laid out as on 64-bit Windows.
#[repr(C)]
#[derive(Debug)]
pub struct WsaMsg {
    /// `name`: the sender (receive) or destination (send); may be null.
    pub name: *mut libc::sockaddr,
    /// `namelen`.
    pub namelen: c_int,
    /// `lpBuffers`.
    pub buffers: *mut WsaBuf,
    /// `dwBufferCount`.
    pub count: u32,
    /// `Control`: the control data (Windows' `WSACMSGHDR` layout).
    pub control: WsaBuf,
    /// `dwFlags`.
    pub flags: u32,
}

/// `sizeof(WSACMSGHDR)`: `SIZE_T cmsg_len; INT cmsg_level; INT cmsg_type;`
/// (the data follows it, already aligned).
const CMSG_HDR: usize = 16;

/// `WSA_CMSG_SPACE(n)`.
const fn cmsg_space(n: usize) -> usize {
    CMSG_HDR + ((n + 7) & !7)
}

/// One control message in Windows' terms: `IP_PKTINFO` / `IPV6_PKTINFO`
/// with Windows' levels, types and `IN_PKTINFO` layout; any other message
/// as it came.
fn windows_message(m: &overlapped::ControlMessage<'_>) -> (i32, i32, Vec<u8>) {
    match PktInfo::from_message(m) {
        Some(PktInfo {
            addr: IpAddr::V4(a),
            ifindex,
        }) => {
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&ifindex.to_ne_bytes());
            (IPPROTO_IP, IP_PKTINFO, d)
        }
        Some(PktInfo {
            addr: IpAddr::V6(a),
            ifindex,
        }) => {
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&ifindex.to_ne_bytes());
            (IPPROTO_IPV6, IPV6_PKTINFO, d)
        }
        None => (m.level, m.kind, m.data.to_vec()),
    }
}

/// Writes the control messages into the caller's control buffer in
/// Windows' layout; the bytes written, and whether some did not fit.
///
/// # Safety
/// `buf` is writable for `room` bytes.
unsafe fn write_control(control: &Control, buf: *mut u8, room: usize) -> (usize, bool) {
    let mut at = 0;
    for m in control.messages() {
        let (level, kind, data) = windows_message(&m);
        let space = cmsg_space(data.len());
        if buf.is_null() || at + space > room {
            return (at, true);
        }
        // SAFETY: `space` bytes at `at` are in the caller's buffer.
        unsafe {
            let p = buf.add(at);
            std::ptr::write_bytes(p, 0, space);
            p.cast::<usize>().write_unaligned(CMSG_HDR + data.len());
            p.add(8).cast::<i32>().write_unaligned(level);
            p.add(12).cast::<i32>().write_unaligned(kind);
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(CMSG_HDR), data.len());
        }
        at += space;
    }
    (at, false)
}

/// The caller's control messages (Windows' layout) as the library's.
///
/// # Safety
/// `buf` is readable for `len` bytes.
unsafe fn read_control(buf: *const u8, len: usize) -> Result<Control, Codes> {
    let mut c = Control::new();
    if buf.is_null() || len == 0 {
        return Ok(c);
    }
    let mut at = 0;
    while at + CMSG_HDR <= len {
        // SAFETY: a whole header is readable (checked).
        let (clen, level, kind) = unsafe {
            let p = buf.add(at);
            (
                p.cast::<usize>().read_unaligned(),
                p.add(8).cast::<i32>().read_unaligned(),
                p.add(12).cast::<i32>().read_unaligned(),
            )
        };
        // `at < len` here: compared this way, a huge `cmsg_len` from the
        // caller cannot wrap the sum.
        if clen < CMSG_HDR || clen > len - at {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        // SAFETY: `clen` bytes at `at` are readable (checked).
        let data = unsafe { std::slice::from_raw_parts(buf.add(at + CMSG_HDR), clen - CMSG_HDR) };
        match (level, kind) {
            (IPPROTO_IP, IP_PKTINFO) if data.len() >= 8 => {
                let a: [u8; 4] = data[..4].try_into().expect("4 bytes");
                let i = u32::from_ne_bytes(data[4..8].try_into().expect("4 bytes"));
                c.push_pktinfo(PktInfo::new(IpAddr::from(a), i));
            }
            (IPPROTO_IPV6, IPV6_PKTINFO) if data.len() >= 20 => {
                let a: [u8; 16] = data[..16].try_into().expect("16 bytes");
                let i = u32::from_ne_bytes(data[16..20].try_into().expect("4 bytes"));
                c.push_pktinfo(PktInfo::new(IpAddr::from(a), i));
            }
            _ => c.push(level, kind, data),
        }
        at += cmsg_space(clen - CMSG_HDR);
    }
    Ok(c)
}

/// `WSARecvMsg`: a receive into `msg`'s buffers; when it completes, the
/// sender goes to `name`/`namelen`, the control messages (Windows' layout:
/// `IP_PKTINFO` as `IN_PKTINFO`) to `Control` (its `len` set to their
/// bytes) and `MSG_TRUNC`/`MSG_CTRUNC`/`MSG_OOB` to `dwFlags`.
///
/// # Safety
/// Windows' contract: `msg`, the memory it points at and `ov` stay valid
/// until the completion is reported (the `WSABUF` array only during the
/// call); `received` null or writable.
unsafe extern "C" fn wsa_recv_msg(
    s: usize,
    msg: *mut WsaMsg,
    received: *mut u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        // SAFETY: null or readable (the caller's promise).
        let m = unsafe { msg.as_ref() }.ok_or((WSAEFAULT, ERROR_INVALID_PARAMETER))?;
        if m.count == 0 {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        if m.buffers.is_null() {
            return Err((WSAEFAULT, ERROR_INVALID_PARAMETER));
        }
        let flags = msg_flags(m.flags).map_err(|c| (c, c))?;
        // SAFETY: the caller keeps the buffers' memory until the completion.
        let bufs = unsafe { WsaPiece::from_array(m.buffers, m.count as usize) };
        // Linux's messages take more room than Windows' (IN_PKTINFO is 8
        // bytes, in_pktinfo 12): what does not fit the caller's buffer once
        // converted is cut there.
        let room = m.control.len as usize;
        let control = Control::with_capacity(if room == 0 { 0 } else { room * 2 + 64 });
        let msg_addr = msg as usize;
        let finish: Finish<(WsaBufs, Control)> = Box::new(move |c| {
            let mut out = Outcome::of(&c);
            let m = msg_addr as *mut WsaMsg;
            // SAFETY: the caller keeps the `WSAMSG` and what it points at
            // valid until the completion is reported (now).
            unsafe {
                if let Some(a) = &c.addr {
                    let _ = crate::addr::write(a, (*m).name, &raw mut (*m).namelen);
                }
                let (n, cut) =
                    write_control(&c.data.1, (*m).control.buf, (*m).control.len as usize);
                (*m).control.len = n as u32;
                let mut f = out.flags;
                if c.flags.contains(RecvFlags::TRUNCATED) {
                    f |= MSG_TRUNC;
                }
                if cut || c.flags.contains(RecvFlags::CTRUNC) {
                    f |= MSG_CTRUNC;
                    if out.wsa == 0 {
                        out.wsa = WSAEMSGSIZE;
                        out.win32 = ERROR_MORE_DATA;
                        out.status = errors::status_of(Some((WSAEMSGSIZE, ERROR_MORE_DATA)));
                    }
                }
                (*m).flags = f;
                out.flags = f;
            }
            out
        });
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &o), ov, routine, finish, |n| {
                o.sock
                    .recv_msg(bufs, control, flags, n)
                    .map_err(|e| e.error)
            })
        }
    })();
    wsa_int(r, received)
}

/// `WSASendMsg`: `msg`'s buffers as one datagram to `name` (null: the
/// connected peer) with its control messages (`IP_PKTINFO` /
/// `IPV6_PKTINFO`: the source address; others pass as they are).
///
/// # Safety
/// Windows' contract: `msg` and its `name`, control and `WSABUF` array
/// are read during the call; the buffers' memory and `ov` stay valid until
/// the completion is reported; `sent` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSASendMsg(
    s: usize,
    msg: *mut WsaMsg,
    flags: u32,
    sent: *mut u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        // SAFETY: null or readable (the caller's promise).
        let m = unsafe { msg.as_ref() }.ok_or((WSAEFAULT, ERROR_INVALID_PARAMETER))?;
        if m.count == 0 {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        if m.buffers.is_null() {
            return Err((WSAEFAULT, ERROR_INVALID_PARAMETER));
        }
        let f = msg_flags(flags).map_err(|c| (c, c))?;
        let to = if m.name.is_null() || m.namelen <= 0 {
            None
        } else {
            // SAFETY: readable for `namelen` bytes (the caller's promise).
            Some(unsafe { crate::addr::read(m.name, m.namelen) }.map_err(|c| (c, c))?)
        };
        // SAFETY: readable for `len` bytes (the caller's promise).
        let control = unsafe { read_control(m.control.buf, m.control.len as usize) }?;
        // SAFETY: the caller keeps the buffers' memory until the completion.
        let bufs = unsafe { WsaPiece::from_array(m.buffers, m.count as usize) };
        let finish: Finish<(WsaBufs, Control)> = Box::new(|c| Outcome::of(&c));
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &o), ov, routine, finish, |n| {
                o.sock
                    .send_msg(bufs, control, to, f, n)
                    .map_err(|e| e.error)
            })
        }
    })();
    wsa_int(r, sent)
}

/// The GUIDs of `SIO_GET_EXTENSION_FUNCTION_POINTER`, as their 16 bytes
/// in memory (`Data1`..`Data3` little-endian).
fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..4].copy_from_slice(&d1.to_le_bytes());
    g[4..6].copy_from_slice(&d2.to_le_bytes());
    g[6..8].copy_from_slice(&d3.to_le_bytes());
    g[8..].copy_from_slice(&d4);
    g
}

/// The function an extension GUID names.
fn extension(g: &[u8; 16]) -> Option<usize> {
    let ms = [0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92];
    type AcceptExFn = unsafe extern "C" fn(
        usize,
        usize,
        *mut c_void,
        u32,
        u32,
        u32,
        *mut u32,
        *mut Overlapped,
    ) -> c_int;
    type SockaddrsFn = unsafe extern "C" fn(
        *mut c_void,
        u32,
        u32,
        u32,
        *mut *mut libc::sockaddr,
        *mut c_int,
        *mut *mut libc::sockaddr,
        *mut c_int,
    );
    type ConnectExFn = unsafe extern "C" fn(
        usize,
        *const libc::sockaddr,
        c_int,
        *mut c_void,
        u32,
        *mut u32,
        *mut Overlapped,
    ) -> c_int;
    type DisconnectExFn = unsafe extern "C" fn(usize, *mut Overlapped, u32, u32) -> c_int;
    type TransmitFileFn = unsafe extern "C" fn(
        usize,
        *mut c_void,
        u32,
        u32,
        *mut Overlapped,
        *const TransmitFileBuffers,
        u32,
    ) -> c_int;
    type RecvMsgFn = unsafe extern "C" fn(
        usize,
        *mut WsaMsg,
        *mut u32,
        *mut Overlapped,
        Option<CompletionRoutine>,
    ) -> c_int;
    type SendMsgFn = unsafe extern "C" fn(
        usize,
        *mut WsaMsg,
        u32,
        *mut u32,
        *mut Overlapped,
        Option<CompletionRoutine>,
    ) -> c_int;
    let table: [([u8; 16], usize); 7] = [
        (
            guid(0xb536_7df1, 0xcbac, 0x11cf, ms),
            AcceptEx as AcceptExFn as usize,
        ),
        (
            guid(0xb536_7df2, 0xcbac, 0x11cf, ms),
            GetAcceptExSockaddrs as SockaddrsFn as usize,
        ),
        (
            guid(
                0x25a2_07b9,
                0xddf3,
                0x4660,
                [0x8e, 0xe9, 0x76, 0xe5, 0x8c, 0x74, 0x06, 0x3e],
            ),
            connect_ex as ConnectExFn as usize,
        ),
        (
            guid(
                0x7fda_2e11,
                0x8630,
                0x436f,
                [0xa0, 0x31, 0xf5, 0x36, 0xa6, 0xee, 0xc1, 0x57],
            ),
            disconnect_ex as DisconnectExFn as usize,
        ),
        (
            guid(0xb536_7df0, 0xcbac, 0x11cf, ms),
            TransmitFile as TransmitFileFn as usize,
        ),
        (
            guid(
                0xf689_d7c8,
                0x6f1f,
                0x436b,
                [0x8a, 0x53, 0xe5, 0x4f, 0xe3, 0x51, 0xc3, 0x22],
            ),
            wsa_recv_msg as RecvMsgFn as usize,
        ),
        (
            guid(
                0xa441_e712,
                0x754f,
                0x43ca,
                [0x84, 0xa7, 0x0d, 0xee, 0x44, 0xcf, 0x60, 0x6d],
            ),
            WSASendMsg as SendMsgFn as usize,
        ),
    ];
    table.iter().find(|(id, _)| id == g).map(|(_, f)| *f)
}

/// `WSAIoctl`: `SIO_GET_EXTENSION_FUNCTION_POINTER` (the GUID in, the
/// function pointer out: `AcceptEx`, `GetAcceptExSockaddrs`, `ConnectEx`,
/// `DisconnectEx`, `TransmitFile`, `WSARecvMsg`, `WSASendMsg`), and
/// `FIONBIO` / `FIONREAD` as `ioctlsocket`. Each completes at once: `ov`
/// and `routine` are not used. Other codes: `WSAEINVAL`.
///
/// # Safety
/// `inbuf` readable for `inlen` bytes, `outbuf` writable for `outlen`
/// bytes, `returned` null or writable.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAIoctl(
    s: usize,
    code: u32,
    inbuf: *mut c_void,
    inlen: u32,
    outbuf: *mut c_void,
    outlen: u32,
    returned: *mut u32,
    _ov: *mut Overlapped,
    _routine: Option<CompletionRoutine>,
) -> c_int {
    if let Err(c) = sock(s) {
        return fail(c);
    }
    let out_n = |n: u32| {
        if !returned.is_null() {
            // SAFETY: null or writable (the caller's promise).
            unsafe { *returned = n };
        }
    };
    match code {
        SIO_GET_EXTENSION_FUNCTION_POINTER => {
            if inbuf.is_null() || inlen < 16 || outbuf.is_null() || (outlen as usize) < 8 {
                return fail(WSAEFAULT);
            }
            // SAFETY: 16 readable bytes (checked).
            let g = unsafe { inbuf.cast::<[u8; 16]>().read_unaligned() };
            let Some(f) = extension(&g) else {
                return fail(WSAEINVAL);
            };
            // SAFETY: 8 writable bytes (checked).
            unsafe { outbuf.cast::<usize>().write_unaligned(f) };
            out_n(8);
            0
        }
        c if c == FIONBIO as u32 || c == FIONREAD as u32 => {
            let (p, n) = if c == FIONBIO as u32 {
                (inbuf, inlen)
            } else {
                (outbuf, outlen)
            };
            if p.is_null() || n < 4 {
                return fail(WSAEFAULT);
            }
            // SAFETY: 4 readable bytes (checked).
            let mut v = std::ffi::c_ulong::from(unsafe { p.cast::<u32>().read_unaligned() });
            // SAFETY: `v` is a valid argument.
            let r = unsafe { crate::sockets::ioctlsocket(s, c as i32 as std::ffi::c_long, &mut v) };
            if r == 0 && c == FIONREAD as u32 {
                // SAFETY: 4 writable bytes (checked).
                unsafe { p.cast::<u32>().write_unaligned(v as u32) };
                out_n(4);
            } else if r == 0 {
                out_n(0);
            }
            r
        }
        _ => fail(WSAEINVAL),
    }
}
