//! One table for every `SOCKET` and `HANDLE` the program holds: sockets,
//! events, completion ports and threads. A value is a key that is never
//! reused (a multiple of 4, as Windows' handles are), so a closed handle
//! stays invalid instead of reaching whatever was opened after it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use overlapped::{CompletionPort, Event, Op, Socket};

/// A socket of the program.
#[derive(Debug)]
pub struct SockObj {
    /// The overlapped socket.
    pub sock: Socket,
    /// Associated with a completion port: operations without an event
    /// whose low bit is set post their packets there.
    pub associated: AtomicBool,
    /// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` is set.
    pub skip_port: AtomicBool,
    /// `FIONBIO` on: the non-overlapped calls do not block.
    pub nonblocking: AtomicBool,
    /// `SO_RCVTIMEO` in milliseconds (0: none), for `recv` and `recvfrom`.
    pub rcv_timeout_ms: AtomicU32,
    /// `SO_SNDTIMEO` in milliseconds (0: none), for `send` and `sendto`.
    pub snd_timeout_ms: AtomicU32,
    /// The accept a non-blocking `accept` left in flight (it is asked
    /// again by the next call, so no connection is lost to a cancel).
    pub pending_accept: Mutex<Option<Op<Option<Socket>>>>,
    /// The connect a non-blocking `connect` left in flight.
    pub pending_connect: Mutex<Option<Op<()>>>,
    /// The socket's `WSAEventSelect`: the event and the `FD_*` mask (an
    /// accepted socket takes its listener's).
    pub selected: Mutex<Option<(Event, u32)>>,
}

impl SockObj {
    /// A table entry for `sock`.
    pub fn new(sock: Socket) -> SockObj {
        SockObj {
            sock,
            associated: AtomicBool::new(false),
            skip_port: AtomicBool::new(false),
            nonblocking: AtomicBool::new(false),
            rcv_timeout_ms: AtomicU32::new(0),
            snd_timeout_ms: AtomicU32::new(0),
            pending_accept: Mutex::new(None),
            pending_connect: Mutex::new(None),
            selected: Mutex::new(None),
        }
    }
}

/// An event object; `auto_reset` for `CreateEvent(.., FALSE, ..)`.
#[derive(Debug, Clone)]
pub struct EventObj {
    /// The event.
    pub event: Event,
    /// Reset by the wait that saw it set.
    pub auto_reset: bool,
}

/// A thread made by `CreateThread` / `_beginthreadex`.
#[derive(Debug)]
pub struct ThreadObj {
    /// Set when the thread's function returned.
    pub done: Event,
    /// The value it returned.
    pub exit_code: AtomicU32,
}

/// What a handle refers to.
#[derive(Debug, Clone)]
pub enum Obj {
    /// A `SOCKET`.
    Socket(Arc<SockObj>),
    /// A `WSAEVENT` / event `HANDLE`.
    Event(EventObj),
    /// A completion port `HANDLE`.
    Port(CompletionPort),
    /// A thread `HANDLE`.
    Thread(Arc<ThreadObj>),
    /// A file `HANDLE` (`CreateFile`).
    File(Arc<crate::files::FileObj>),
    /// A waitable timer `HANDLE` (`CreateWaitableTimer`).
    Timer(Arc<overlapped::WaitableTimer>),
}

#[derive(Debug, Default)]
struct Table {
    objs: HashMap<usize, Obj>,
    next: usize,
}

fn table() -> MutexGuard<'static, Table> {
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            Mutex::new(Table {
                objs: HashMap::new(),
                next: 0x100,
            })
        })
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Adds an object; returns its handle value.
pub fn insert(obj: Obj) -> usize {
    let mut t = table();
    t.next += 4;
    let h = t.next;
    t.objs.insert(h, obj);
    h
}

/// The object behind a handle value.
pub fn get(h: usize) -> Option<Obj> {
    table().objs.get(&h).cloned()
}

/// Takes a handle out of the table.
pub fn remove(h: usize) -> Option<Obj> {
    table().objs.remove(&h)
}

/// The socket behind `s`.
pub fn socket(s: usize) -> Option<Arc<SockObj>> {
    match get(s) {
        Some(Obj::Socket(o)) => Some(o),
        _ => None,
    }
}

/// The event behind `h`.
pub fn event(h: usize) -> Option<EventObj> {
    match get(h) {
        Some(Obj::Event(e)) => Some(e),
        _ => None,
    }
}

/// The completion port behind `h`.
pub fn port(h: usize) -> Option<CompletionPort> {
    match get(h) {
        Some(Obj::Port(p)) => Some(p),
        _ => None,
    }
}

/// Takes every socket out of the table (the last `WSACleanup`).
pub fn remove_sockets() -> Vec<Arc<SockObj>> {
    let mut t = table();
    let keys: Vec<usize> = t
        .objs
        .iter()
        .filter(|(_, o)| matches!(o, Obj::Socket(_)))
        .map(|(k, _)| *k)
        .collect();
    keys.into_iter()
        .filter_map(|k| match t.objs.remove(&k) {
            Some(Obj::Socket(s)) => Some(s),
            _ => None,
        })
        .collect()
}
