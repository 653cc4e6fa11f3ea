//! An extension or file operation: how it starts and reports, [`start`], the
//! in-flight handle of any completion type ([`ExtOp`]), the finishers
//! kept for port packets ([`packet_outcome`]), and the Winsock results of
//! the extension calls.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::c_int;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use overlapped::{Completion, Event, Notify, Op, OpOutput, Packet, Polled, Started};

use crate::errors::{self, *};
use crate::inflight::{self, AnyOp, Held, Outcome};
use crate::table;
use crate::types::*;

/// A Winsock code and a Win32 code (`WSAGetLastError` / `GetLastError`
/// are one value: the call sets the one its family reports).
pub type Codes = (u32, u32);

/// `WSA_IO_PENDING` / `ERROR_IO_PENDING` (the same number).
pub const PENDING: Codes = (WSA_IO_PENDING, WSA_IO_PENDING);

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

pub(super) fn both(e: &io::Error) -> Codes {
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
pub(super) fn wsa_bool(r: Result<usize, Codes>, bytes_out: *mut u32) -> c_int {
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
pub(super) fn wsa_int(r: Result<usize, Codes>, bytes_out: *mut u32) -> c_int {
    if wsa_bool(r, bytes_out) == TRUE {
        0
    } else {
        SOCKET_ERROR
    }
}

pub(super) fn target_of(s: usize, o: &crate::table::SockObj) -> Target {
    use std::sync::atomic::Ordering;
    Target {
        handle: s,
        associated: o.associated.load(Ordering::Acquire),
        skip_port: o.skip_port.load(Ordering::Acquire),
    }
}
