//! The operations in flight, by their `LPOVERLAPPED`, and the writing of
//! an `OVERLAPPED` when its operation completes.
//!
//! Windows writes `Internal` (the `NTSTATUS`) and `InternalHigh` (the byte
//! count) before it reports a completion: before it sets the event, queues
//! the completion routine or posts the port packet. Here:
//!
//! * a **completion routine** writes them, on the thread that started the
//!   operation, right before the program's routine runs;
//! * a **port packet** writes them in `GetQueuedCompletionStatus(Ex)`,
//!   before the call returns the `LPOVERLAPPED`;
//! * an operation with an **event** (or none) is taken from its handle
//!   (non-blocking) by every call that can report it to the program: the
//!   wait that returns its event (`WSAWaitForMultipleEvents`,
//!   `WaitForSingleObject`, `WaitForMultipleObjects`),
//!   `WSAGetOverlappedResult`, `GetOverlappedResult` and
//!   `HasOverlappedIoCompleted`, which the header makes a call. A program
//!   that learns of the completion only by reading `Internal` without any
//!   of these calls sees `STATUS_PENDING` until it makes one.
//!
//! `Offset` receives the flags a receive reports (`MSG_OOB`), which is
//! where `WSAGetOverlappedResult` takes `lpdwFlags` from.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use overlapped::{Completion, Event, Op, Polled, RecvFlags};

use crate::bufs::WsaBufs;
use crate::errors::{self, ERROR_NOT_FOUND, STATUS_PENDING, WSAEINVAL, WSASYSCALLFAILURE};
use crate::types::{MSG_OOB, Overlapped};

/// How an operation ended, as Windows reports it.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The `NTSTATUS` for `Internal`.
    pub status: u32,
    /// The Winsock code (0: success).
    pub wsa: u32,
    /// The Win32 code (0: success).
    pub win32: u32,
    /// Bytes transferred.
    pub bytes: usize,
    /// Receive flags out (`MSG_OOB`).
    pub flags: u32,
    /// The sender of a `WSARecvFrom`.
    pub addr: Option<SocketAddr>,
}

impl Outcome {
    /// The outcome of a completion.
    pub fn of<T>(c: &Completion<T>) -> Outcome {
        let codes = match (&c.error, c.wsa_error()) {
            (_, Some(wsa)) => Some((wsa, c.win32_error().unwrap_or(wsa))),
            (Some(_), None) => Some((WSASYSCALLFAILURE, WSASYSCALLFAILURE)),
            (None, None) => None,
        };
        let (wsa, win32) = codes.unwrap_or((0, 0));
        Outcome {
            status: errors::status_of(codes),
            wsa,
            win32,
            bytes: c.bytes,
            flags: if c.flags.contains(RecvFlags::OOB) {
                MSG_OOB
            } else {
                0
            },
            addr: c.addr,
        }
    }

    /// The outcome an `OVERLAPPED` holds (`None` while pending).
    ///
    /// # Safety
    /// `ov` points at a readable `OVERLAPPED`.
    pub unsafe fn read(ov: *mut Overlapped) -> Option<Outcome> {
        // SAFETY: the caller's promise; `Internal` is read atomically
        // (another thread may write it) and published last by `finish`.
        let status = unsafe { AtomicUsize::from_ptr(&raw mut (*ov).internal) }
            .load(Ordering::Acquire) as u32;
        if status == STATUS_PENDING {
            return None;
        }
        let (wsa, win32) = errors::codes_of(status).unwrap_or((0, 0));
        // SAFETY: as above; these were written before `Internal`.
        let (bytes, flags) = unsafe { ((*ov).internal_high, (*ov).offset) };
        Some(Outcome {
            status,
            wsa,
            win32,
            bytes,
            flags,
            addr: None,
        })
    }
}

/// Where a `WSARecvFrom` writes its sender: `lpFrom` and `lpFromlen`.
#[derive(Debug, Clone, Copy)]
pub struct FromPtrs {
    name: usize,
    len: usize,
}

impl FromPtrs {
    /// The caller's `lpFrom`/`lpFromlen` (kept as numbers: the caller keeps
    /// them alive until the completion, Windows' rule).
    pub fn new(name: *mut libc::sockaddr, len: *mut i32) -> Option<FromPtrs> {
        (!name.is_null() && !len.is_null()).then_some(FromPtrs {
            name: name as usize,
            len: len as usize,
        })
    }
}

/// Marks an operation's `OVERLAPPED` in flight: `Internal` is
/// `STATUS_PENDING`, `InternalHigh` 0.
///
/// # Safety
/// `ov` points at a writable `OVERLAPPED`.
pub unsafe fn mark_pending(ov: *mut Overlapped) {
    // SAFETY: the caller's promise.
    unsafe {
        (*ov).internal_high = 0;
        AtomicUsize::from_ptr(&raw mut (*ov).internal)
            .store(STATUS_PENDING as usize, Ordering::Release);
    }
}

/// Writes a completion into the caller's `OVERLAPPED` (and the sender
/// into `lpFrom`), `Internal` last.
///
/// # Safety
/// `ov` points at a writable `OVERLAPPED`; `from`'s pointers, when given,
/// are still valid (the caller keeps all of them until the completion is
/// reported: Windows' contract).
pub unsafe fn finish(ov: *mut Overlapped, o: &Outcome, from: Option<FromPtrs>) {
    if let (Some(f), Some(addr)) = (from, &o.addr) {
        // SAFETY: the caller's promise for `lpFrom`/`lpFromlen`. A buffer
        // too small stays unwritten (Windows reports WSAEFAULT at the call
        // in that case; here the datagram is not lost for it).
        let _ =
            unsafe { crate::addr::write(addr, f.name as *mut libc::sockaddr, f.len as *mut i32) };
    }
    // SAFETY: the caller's promise for `ov`; `Internal` is published last.
    unsafe {
        (*ov).internal_high = o.bytes;
        (*ov).offset = o.flags;
        AtomicUsize::from_ptr(&raw mut (*ov).internal).store(o.status as usize, Ordering::Release);
    }
}

/// An operation's handle, whatever it hands back. The operation kinds
/// still to come (an accept's new socket, a connect's nothing, a file
/// read's bytes) are further variants, each with its own conversion to an
/// [`Outcome`].
#[derive(Debug)]
pub enum AnyOp {
    /// A send or receive on the caller's `WSABUF` memory.
    Bufs(Op<WsaBufs>),
    /// An extension function's or a file's operation (`ext/`).
    Ext(Box<dyn crate::ext::ExtOp>),
}

impl AnyOp {
    /// `HasOverlappedIoCompleted` without taking the result.
    pub fn is_complete(&self) -> bool {
        match self {
            AnyOp::Bufs(op) => op.is_complete(),
            AnyOp::Ext(op) => op.is_complete(),
        }
    }

    /// `CancelIoEx` on this operation.
    pub fn cancel(&self) -> std::io::Result<()> {
        match self {
            AnyOp::Bufs(op) => op.cancel(),
            AnyOp::Ext(op) => op.cancel(),
        }
    }

    /// The outcome when complete (non-blocking); the handle back when not.
    pub fn take(self) -> std::io::Result<Result<Outcome, AnyOp>> {
        match self {
            AnyOp::Bufs(op) => Ok(match op.result(false)? {
                Polled::Complete(c) => Ok(Outcome::of(&c)),
                Polled::Incomplete(op) => Err(AnyOp::Bufs(op)),
            }),
            AnyOp::Ext(op) => Ok(op.take()?.map_err(AnyOp::Ext)),
        }
    }
}

/// The handle of an operation in flight.
#[derive(Debug)]
pub enum Held {
    /// The handle takes the result; `event` is set when it completes (the
    /// caller's `hEvent`, table handle `event_handle`, or a private one
    /// with `event_handle == 0`).
    Consumer {
        /// The operation.
        op: AnyOp,
        /// The event it sets.
        event: Event,
        /// The event's handle value (0: private).
        event_handle: usize,
    },
    /// The completion goes to a routine or a port; the handle only
    /// cancels it (`None` once it completed at the start).
    Notified(Option<AnyOp>),
}

#[derive(Debug)]
enum State {
    /// The start call has not returned yet.
    Starting,
    Running(Held),
    /// Reported before the start call stored the handle.
    Reported,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    sock: usize,
    from: Option<FromPtrs>,
    state: State,
}

fn map() -> MutexGuard<'static, HashMap<usize, Entry>> {
    static MAP: OnceLock<Mutex<HashMap<usize, Entry>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// Registers a start on `ov`. `WSAEINVAL` when `ov` is already in flight
/// (an `OVERLAPPED` serves one operation at a time).
pub fn begin(ov: *mut Overlapped, sock: usize, from: Option<FromPtrs>) -> Result<u64, u32> {
    let mut m = map();
    if let Some(e) = m.get(&(ov as usize)) {
        let free = match &e.state {
            State::Reported => true,
            State::Running(Held::Consumer { op, .. }) => op.is_complete(),
            _ => false,
        };
        if !free {
            return Err(WSAEINVAL);
        }
    }
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    m.insert(
        ov as usize,
        Entry {
            seq,
            sock,
            from,
            state: State::Starting,
        },
    );
    Ok(seq)
}

/// The start returned a pending or completed operation: keep its handle
/// (unless it was reported meanwhile).
pub fn fill(ov: *mut Overlapped, seq: u64, held: Held) {
    let mut m = map();
    let Some(e) = m.get_mut(&(ov as usize)) else {
        return;
    };
    if e.seq != seq {
        return;
    }
    match e.state {
        State::Starting => e.state = State::Running(held),
        _ => {
            m.remove(&(ov as usize));
        }
    }
}

/// The start failed, or its result was taken inline: forget it.
pub fn forget(ov: *mut Overlapped, seq: u64) {
    let mut m = map();
    if m.get(&(ov as usize)).is_some_and(|e| e.seq == seq) {
        m.remove(&(ov as usize));
    }
}

/// The operation on `ov` is being reported (a routine with its `seq`, or
/// a port packet with `None`): forget it; returns where its sender goes.
pub fn reported(ov: *mut Overlapped, seq: Option<u64>) -> Option<FromPtrs> {
    let mut m = map();
    let e = m.get_mut(&(ov as usize))?;
    if seq.is_some_and(|s| s != e.seq) {
        return None;
    }
    let from = e.from;
    match e.state {
        State::Starting => e.state = State::Reported,
        State::Running(_) => {
            m.remove(&(ov as usize));
        }
        State::Reported => {}
    }
    from
}

/// What [`harvest`] found.
#[derive(Debug)]
pub enum Harvest {
    /// Complete: the `OVERLAPPED` holds the result.
    Done,
    /// Still in flight; the event it will set, when it has one.
    Pending(Option<Event>),
    /// Not an operation whose handle takes the result (a routine's or a
    /// port's, or unknown): the `OVERLAPPED` is the only record.
    NotHeld,
}

/// Takes the result of the operation on `ov` if it is complete, writing
/// it into the `OVERLAPPED`.
///
/// # Safety
/// `ov` is writable when it is in flight (Windows' contract).
pub unsafe fn harvest(ov: *mut Overlapped) -> Harvest {
    loop {
        let mut m = map();
        let Some(e) = m.get_mut(&(ov as usize)) else {
            return Harvest::NotHeld;
        };
        match &e.state {
            State::Starting => {
                // The start call on another thread is about to store the
                // handle.
                drop(m);
                std::thread::yield_now();
                continue;
            }
            State::Running(Held::Consumer { .. }) => {}
            _ => return Harvest::NotHeld,
        }
        let Some(entry) = m.remove(&(ov as usize)) else {
            return Harvest::NotHeld;
        };
        let State::Running(Held::Consumer {
            op,
            event,
            event_handle,
        }) = entry.state
        else {
            unreachable!("checked above")
        };
        match op.take() {
            Ok(Ok(o)) => {
                // SAFETY: `ov` and the sender pointers are the caller's,
                // valid until this completion is reported (now).
                unsafe { finish(ov, &o, entry.from) };
                return Harvest::Done;
            }
            Ok(Err(op)) => {
                let ev = event.clone();
                m.insert(
                    ov as usize,
                    Entry {
                        state: State::Running(Held::Consumer {
                            op,
                            event,
                            event_handle,
                        }),
                        ..entry
                    },
                );
                return Harvest::Pending(Some(ev));
            }
            // Only a routine's or a port's handle refuses; a consumer
            // never does.
            Err(_) => return Harvest::NotHeld,
        }
    }
}

/// After a wait saw some of these events set: takes the results of the
/// operations bound to them (see the module docs).
pub fn harvest_events(handles: &[usize]) {
    let ovs: Vec<usize> = map()
        .iter()
        .filter(|(_, e)| match &e.state {
            State::Running(Held::Consumer {
                event,
                event_handle,
                ..
            }) => handles.contains(event_handle) && event.is_set(),
            _ => false,
        })
        .map(|(k, _)| *k)
        .collect();
    for ov in ovs {
        // SAFETY: a consumer operation's `OVERLAPPED` stays valid until its
        // completion is reported, which this does.
        unsafe { harvest(ov as *mut Overlapped) };
    }
}

/// `CancelIoEx(sock, ov)`: asks the operation on `ov` to cancel.
pub fn cancel(sock: usize, ov: *mut Overlapped) -> Result<(), u32> {
    loop {
        let m = map();
        let Some(e) = m.get(&(ov as usize)).filter(|e| e.sock == sock) else {
            return Err(ERROR_NOT_FOUND);
        };
        let op = match &e.state {
            State::Starting => {
                drop(m);
                std::thread::yield_now();
                continue;
            }
            State::Reported => return Err(ERROR_NOT_FOUND),
            State::Running(Held::Consumer { op, .. } | Held::Notified(Some(op))) => op,
            State::Running(Held::Notified(None)) => return Err(ERROR_NOT_FOUND),
        };
        return op.cancel().map_err(|_| ERROR_NOT_FOUND);
    }
}
