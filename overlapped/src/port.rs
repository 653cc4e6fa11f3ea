//! Completion ports (`CreateIoCompletionPort`, `GetQueuedCompletionStatus`,
//! `PostQueuedCompletionStatus`).
//!
//! A port is a queue of packets shared by a pool of worker threads. Sockets
//! are associated with it under a key; operations started on them with
//! [`Notify::Port`](crate::Notify::Port) queue a [`Packet`] when they
//! complete, and [`CompletionPort::post`] queues user packets.
//!
//! * Packets are delivered first-in first-out.
//! * Waiting threads are released last-in first-out: a packet is handed to
//!   the thread that started waiting most recently.
//! * **Concurrency.** At most `concurrency` threads are released to run at
//!   once. A thread counts as running from the return of
//!   [`get_queued`](CompletionPort::get_queued) until it calls it again (or
//!   exits). Windows also stops counting a thread while it blocks on
//!   something else; this library cannot see that, so a worker that blocks
//!   elsewhere keeps its place — size the pool, or call `get_queued` with a
//!   zero timeout, accordingly.
//! * **Whoever waits, drives.** Workers waiting in `get_queued` drive the
//!   engines of the associated sockets; there is no reaper thread.
//! * Operations whose completion goes to a port survive the exit of the
//!   thread that started them (Windows Vista and later); other operations
//!   of that thread — also those with an event on an associated socket —
//!   are aborted.
//! * The port is looked up when an operation completes: one started before
//!   the socket was associated posts its packet here too.
//! * An associated socket takes no completion routines (`InvalidInput` at
//!   the call).
//! * **Alertable waits.** [`get_queued_ex`](CompletionPort::get_queued_ex)
//!   and [`get_queued_many_ex`](CompletionPort::get_queued_many_ex) with
//!   `alertable` also end for the calling thread's completion routines,
//!   [queued routines](crate::queue_routine) and
//!   [timers](crate::WaitableTimer): packets come first; with none queued
//!   the routines run and the wait returns [`PortWait::IoCompletion`].
//! * Closing the port (or dropping its last handle) wakes every waiter with
//!   an error; queued packets are dropped with their buffers.
//!
//! A [`TypedPort`] is the same port typed over the program's per-operation
//! and per-socket data: its packets hand back the operation's buffers with
//! their context ([`WithContext`](crate::WithContext)) and the socket's
//! data, with no tag and no run-time choice of the buffer type.

use std::any::{Any, TypeId};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crate::core::{Convert, PortData, PortLink, PortSink};
use crate::core::{RawDone, drive_clock_us, interval_passed, wait_until};
use crate::engine::{Engine, WeakEngine};
use crate::net::Socket;
use crate::op::{Completion, OpOutput};
use crate::thread::{
    ThreadCtx, block_with_timers, current_ctx, in_routine, reap_thread_engines_if_due,
    run_routines, thread_engines, wait_entered, wait_returned,
};
use crate::wait::{self, PortQueue};

mod typed;
pub use typed::{OpPacket, PacketOf, TypedPort};

/// One packet taken from a port.
pub struct Packet {
    /// The completion key of the socket (for posted packets, the posted key).
    pub key: usize,
    /// The tag the operation was started with (`Notify::Port(tag)`); 0 for
    /// posted packets.
    pub tag: u64,
    /// Bytes transferred (for posted packets, the posted count).
    pub bytes: usize,
    /// The operation's error (`None` on success and for posted packets).
    pub error: Option<io::Error>,
    /// The per-handle data of a socket associated with a [`TypedPort`].
    data: Option<PortData>,
    body: Body,
}

enum Body {
    /// The finished operation, converted to its typed completion only when
    /// the worker asks for it (outside every engine lock: converting an
    /// accept registers the new socket with its engine).
    Op(RawDone, Convert),
    User(Box<dyn Any + Send>),
}

impl fmt::Debug for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Packet")
            .field("key", &self.key)
            .field("tag", &self.tag)
            .field("bytes", &self.bytes)
            .field("error", &self.error)
            .field("posted", &self.is_posted())
            .finish()
    }
}

impl Packet {
    /// True for a packet queued by [`CompletionPort::post`].
    pub fn is_posted(&self) -> bool {
        matches!(self.body, Body::User(_))
    }

    /// The operation's completion with its buffers (`T` is the buffer type
    /// the operation was started with). `Err` gives the packet back when it
    /// is a posted packet or of another type.
    // The packet holds the finished operation inline (no allocation per
    // packet); `Err` gives it back whole.
    #[allow(clippy::result_large_err)]
    pub fn into_completion<T: OpOutput>(self) -> Result<Completion<T>, Packet> {
        match self.body {
            Body::Op(raw, (ty, conv)) if ty == TypeId::of::<Completion<T>>() => {
                let mut slot: Option<Completion<T>> = None;
                conv(raw, &mut slot);
                match slot {
                    Some(mut c) => {
                        c.error = self.error;
                        Ok(c)
                    }
                    // The type was checked above.
                    None => unreachable!("a completion of the checked type"),
                }
            }
            body => Err(Packet { body, ..self }),
        }
    }

    /// The payload of a posted packet. `Err` gives the packet back when it
    /// is an operation's packet or the payload is of another type.
    #[allow(clippy::result_large_err)]
    pub fn into_payload<P: Any + Send>(self) -> Result<P, Packet> {
        match self.body {
            Body::User(b) => match b.downcast::<P>() {
                Ok(p) => Ok(*p),
                Err(b) => Err(Packet {
                    body: Body::User(b),
                    ..self
                }),
            },
            Body::Op(..) => Err(self),
        }
    }
}

/// The typed conversion of an operation started with `T`, and its type.
pub(crate) fn convert<T: OpOutput>() -> Convert {
    fn conv<T: OpOutput>(raw: RawDone, out: &mut dyn Any) {
        if let Some(slot) = out.downcast_mut::<Option<Completion<T>>>() {
            *slot = Some(T::from_raw(raw));
        }
    }
    (TypeId::of::<Completion<T>>(), conv::<T>)
}

type Queue = PortQueue<Packet, Arc<ThreadCtx>, ThreadId>;

pub(crate) struct PortInner {
    q: Mutex<Queue>,
    /// The engines of the associated sockets, which waiters drive.
    engines: Mutex<Vec<WeakEngine>>,
    /// Bumped when an engine is added, so waiters start driving it.
    engines_version: AtomicU64,
    handles: AtomicUsize,
    /// When a waiter last reaped the port's engines (see [`interval_passed`]).
    last_reap: AtomicU64,
}

impl PortInner {
    fn q(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The engines of the associated sockets that are still alive, with the
    /// version of that list.
    fn live_engines(&self) -> (Vec<Engine>, u64) {
        let e = self.engines.lock().unwrap_or_else(|p| p.into_inner());
        let v = e.iter().filter_map(WeakEngine::upgrade).collect();
        (v, self.engines_version.load(Ordering::Acquire))
    }

    pub(crate) fn add_engine(&self, e: &Engine) {
        {
            let mut engines = self.engines.lock().unwrap_or_else(|p| p.into_inner());
            if engines.iter().any(|w| w.is(e)) {
                return;
            }
            engines.retain(WeakEngine::is_alive);
            engines.push(e.downgrade());
            self.engines_version.fetch_add(1, Ordering::AcqRel);
        }
        let waiters: Vec<Arc<ThreadCtx>> = self.q().waiters().cloned().collect();
        // Waiters re-read the engines to drive.
        for w in waiters {
            w.wake();
        }
    }

    fn close(&self) {
        let (waiters, dropped) = self.q().close();
        drop(dropped);
        for w in waiters {
            w.wake();
        }
    }
}

fn closed_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the completion port was closed while waiting (ERROR_ABANDONED_WAIT_0)",
    )
}

impl PortSink for PortInner {
    fn push_op(
        &self,
        key: usize,
        tag: u64,
        data: Option<PortData>,
        conv: Convert,
        mut raw: RawDone,
    ) -> Option<RawDone> {
        let error = raw.outcome.error.take();
        let bytes = raw.outcome.bytes;
        // Handed to the most recent waiter when fewer than `concurrency`
        // threads run, else queued.
        let pushed = self.q().push(
            Packet {
                key,
                tag,
                bytes,
                error,
                data,
                body: Body::Op(raw, conv),
            },
            waiting_here(self),
        );
        match pushed {
            Ok(Some(ctx)) => {
                ctx.wake();
                None
            }
            Ok(None) => None,
            Err(Packet {
                body: Body::Op(raw, _),
                ..
            }) => Some(raw),
            Err(_) => None,
        }
    }
}

/// How an alertable port wait ([`CompletionPort::get_queued_ex`],
/// [`CompletionPort::get_queued_many_ex`]) ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum PortWait<T> {
    /// Packets were taken: one packet, or a non-empty list.
    Got(T),
    /// The time passed (`WAIT_TIMEOUT`).
    Timeout,
    /// No packet was queued and one or more routines ran in the wait
    /// (`WAIT_IO_COMPLETION`); no packet was taken.
    IoCompletion,
}

/// A completion port shared by worker threads. Cheap to clone; the port
/// closes when the last handle is dropped or [`close`](Self::close) is
/// called.
///
/// # Examples
///
/// A receive whose completion is a packet on the port, taken by a worker:
///
/// ```
/// use overlapped::{CompletionPort, Engine, MsgFlags, Notify, Socket};
/// use std::time::Duration;
///
/// # fn main() -> std::io::Result<()> {
/// let engine = Engine::new()?;
/// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
/// let addr = listener.local_addr()?;
/// let client = Socket::tcp_for(&engine, &addr)?;
/// client.connect_wait(addr)?;
/// let (server, _) = listener.accept_wait()?;
///
/// let port = CompletionPort::new(0);
/// port.associate(&server, 7)?; // the completion key of this socket
/// let _op = server.recv(vec![0u8; 16], MsgFlags::empty(), Notify::Port(42))?;
/// client.send(b"hello".to_vec(), MsgFlags::empty(), Notify::None)?.wait()?;
///
/// // A worker: one packet, with the socket's key and the operation's tag.
/// let worker = std::thread::spawn(move || {
///     let packet = port.get_queued(Some(Duration::from_secs(5))).unwrap().unwrap();
///     assert_eq!((packet.key, packet.tag), (7, 42));
///     let c = packet.into_completion::<Vec<u8>>().unwrap();
///     assert_eq!(&c.data[..], b"hello");
/// });
/// worker.join().unwrap();
/// # Ok(())
/// # }
/// ```
pub struct CompletionPort {
    inner: Arc<PortInner>,
}

impl fmt::Debug for CompletionPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompletionPort")
            .field("concurrency", &self.concurrency())
            .finish()
    }
}

impl Clone for CompletionPort {
    fn clone(&self) -> Self {
        self.inner.handles.fetch_add(1, Ordering::AcqRel);
        CompletionPort {
            inner: self.inner.clone(),
        }
    }
}

impl Drop for CompletionPort {
    fn drop(&mut self) {
        if self.inner.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.close();
        }
    }
}

impl CompletionPort {
    /// `CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, concurrency)`:
    /// a port that lets `concurrency` threads run at once (0: the number of
    /// CPUs).
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn new(concurrency: usize) -> CompletionPort {
        let concurrency = if concurrency == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            concurrency
        };
        CompletionPort {
            inner: Arc::new(PortInner {
                q: Mutex::new(PortQueue::new(concurrency)),
                engines: Mutex::new(Vec::new()),
                engines_version: AtomicU64::new(0),
                handles: AtomicUsize::new(1),
                last_reap: AtomicU64::new(0),
            }),
        }
    }

    /// The concurrency value.
    pub fn concurrency(&self) -> usize {
        self.inner.q().concurrency()
    }

    /// `CreateIoCompletionPort(socket, port, key, 0)`: associates a socket
    /// with this port under `key`. Its operations started with
    /// `Notify::Port` queue packets here, and survive the exit of the thread
    /// that started them; so do operations pending at the association that
    /// were started with `Notify::Port` or `Notify::None` (SPEC k09). Later
    /// operations with a completion routine fail at the call.
    ///
    /// # Errors
    /// `InvalidInput` when the socket is already associated with a port
    /// (a socket belongs to at most one); `EBADF` for a closed socket.
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn associate(&self, socket: &Socket, key: usize) -> io::Result<()> {
        socket.associate(PortLink {
            sink: self.inner.clone(),
            key,
            typed: None,
        })?;
        self.inner.add_engine(socket.engine());
        Ok(())
    }

    /// `CreateIoCompletionPort(file, port, key, 0)`: associates an
    /// overlapped file with this port under `key`, as
    /// [`associate`](Self::associate) does a socket: its reads and writes
    /// started with `Notify::Port` (or `Notify::None` before the
    /// association) queue packets here, beside the sockets' (SPEC f01).
    ///
    /// # Errors
    /// `InvalidInput` when the file is already associated with a port;
    /// `EBADF` for a closed file.
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn associate_file(&self, file: &crate::File, key: usize) -> io::Result<()> {
        file.associate(PortLink {
            sink: self.inner.clone(),
            key,
            typed: None,
        })?;
        self.inner.add_engine(file.engine());
        Ok(())
    }

    /// `PostQueuedCompletionStatus(port, bytes, key, payload)`: queues a user
    /// packet (e.g. to tell workers to stop).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is closed.
    #[doc(alias = "PostQueuedCompletionStatus")]
    pub fn post<P: Any + Send>(&self, key: usize, bytes: usize, payload: P) -> io::Result<()> {
        let pushed = self.inner.q().push(
            Packet {
                key,
                tag: 0,
                bytes,
                error: None,
                data: None,
                body: Body::User(Box::new(payload)),
            },
            None,
        );
        match pushed {
            Ok(Some(ctx)) => ctx.wake(),
            Ok(None) => {}
            Err(_) => return Err(closed_error()),
        }
        Ok(())
    }

    /// `GetQueuedCompletionStatus(port, .., timeout)`: one packet, or
    /// `Ok(None)` when `timeout` passes (`None` waits without limit;
    /// `Some(Duration::ZERO)` polls).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is (or gets) closed.
    #[doc(alias = "GetQueuedCompletionStatus")]
    pub fn get_queued(&self, timeout: Option<Duration>) -> io::Result<Option<Packet>> {
        // A packet at a time through a vector the thread keeps (no
        // allocation per call); a fresh one if it is in use.
        let one = |v: &mut Vec<Packet>| -> io::Result<Option<Packet>> {
            v.clear();
            self.get_queued_into(1, timeout, false, v)?;
            Ok(v.pop())
        };
        match SCRATCH.try_with(|s| s.try_borrow_mut().ok().map(|mut v| one(&mut v))) {
            Ok(Some(r)) => r,
            _ => one(&mut Vec::with_capacity(1)),
        }
    }

    /// `GetQueuedCompletionStatusEx`: up to `max` packets in one call (at
    /// least one unless the time passed). Empty on timeout.
    ///
    /// # Errors
    /// `BrokenPipe` when the port is (or gets) closed; `InvalidInput` for
    /// `max == 0`.
    #[doc(alias = "GetQueuedCompletionStatusEx")]
    pub fn get_queued_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<Vec<Packet>> {
        if max == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "room for zero packets",
            ));
        }
        let mut v = Vec::new();
        self.get_queued_into(max, timeout, false, &mut v)?;
        Ok(v)
    }

    /// `GetQueuedCompletionStatusEx(port, 1 entry, .., timeout, alertable)`:
    /// one packet, as [`get_queued`](Self::get_queued); with `alertable`,
    /// when no packet is queued and the calling thread has routines queued
    /// (completion routines, [`queue_routine`](crate::queue_routine),
    /// [timers](crate::WaitableTimer)), they run and the wait returns
    /// [`PortWait::IoCompletion`] without a packet. A queued packet comes
    /// first: the routines stay queued. Inside a routine the wait is never
    /// alertable (routines do not nest).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is (or gets) closed.
    ///
    /// # Examples
    ///
    /// ```
    /// use overlapped::{CompletionPort, PortWait, ThreadHandle, queue_routine};
    /// use std::time::Duration;
    ///
    /// let port = CompletionPort::new(1);
    /// queue_routine(&ThreadHandle::current(), || println!("routine")).unwrap();
    /// port.post(7, 0, ()).unwrap();
    /// // The packet first; the routine stays queued...
    /// let r = port.get_queued_ex(Some(Duration::ZERO), true).unwrap();
    /// assert!(matches!(r, PortWait::Got(p) if p.key == 7));
    /// // ...and runs in the next alertable wait.
    /// let r = port.get_queued_ex(Some(Duration::from_secs(5)), true).unwrap();
    /// assert!(matches!(r, PortWait::IoCompletion));
    /// ```
    #[doc(alias = "GetQueuedCompletionStatusEx")]
    pub fn get_queued_ex(
        &self,
        timeout: Option<Duration>,
        alertable: bool,
    ) -> io::Result<PortWait<Packet>> {
        let mut v = Vec::with_capacity(1);
        Ok(match self.get_queued_into(1, timeout, alertable, &mut v)? {
            true => PortWait::IoCompletion,
            false => match v.pop() {
                Some(p) => PortWait::Got(p),
                None => PortWait::Timeout,
            },
        })
    }

    /// `GetQueuedCompletionStatusEx(port, entries, max, .., timeout,
    /// alertable)`: up to `max` packets, as
    /// [`get_queued_many`](Self::get_queued_many), alertable as
    /// [`get_queued_ex`](Self::get_queued_ex).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is (or gets) closed; `InvalidInput` for
    /// `max == 0`.
    #[doc(alias = "GetQueuedCompletionStatusEx")]
    pub fn get_queued_many_ex(
        &self,
        max: usize,
        timeout: Option<Duration>,
        alertable: bool,
    ) -> io::Result<PortWait<Vec<Packet>>> {
        if max == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "room for zero packets",
            ));
        }
        let mut v = Vec::new();
        Ok(
            match self.get_queued_into(max, timeout, alertable, &mut v)? {
                true => PortWait::IoCompletion,
                false if v.is_empty() => PortWait::Timeout,
                false => PortWait::Got(v),
            },
        )
    }

    /// Up to `max` packets appended to `out` (none on timeout). True when
    /// the alertable wait ran routines instead.
    fn get_queued_into(
        &self,
        max: usize,
        timeout: Option<Duration>,
        alertable: bool,
        out: &mut Vec<Packet>,
    ) -> io::Result<bool> {
        wait_entered();
        let before = out.len();
        let r = self.get_queued_inner(max, timeout, alertable, out);
        let work = out.len() > before;
        let interrupted = matches!(r, Ok(g) if g.interrupted);
        wait_returned(work || interrupted, matches!(r, Ok(g) if g.sole));
        if interrupted {
            run_routines();
        }
        r.map(|g| g.interrupted)
    }

    /// Appends the packets to `out`; says whether this thread is the port's
    /// only worker, or the wait was interrupted for routines.
    fn get_queued_inner(
        &self,
        max: usize,
        timeout: Option<Duration>,
        alertable: bool,
        out: &mut Vec<Packet>,
    ) -> io::Result<wait::Got> {
        let me = std::thread::current().id();
        let ctx = current_ctx();
        let alertable = alertable && !in_routine();
        if alertable {
            ctx.fire_due_timers();
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        let inner = &self.inner;
        // Queued packets do not keep completions in the kernel waiting: at
        // most every REAP_INTERVAL_US one waiter reaps the engines first.
        if interval_passed(&inner.last_reap, drive_clock_us()) {
            for e in inner.live_engines().0 {
                e.reap_if_due();
            }
        }
        // The engines to drive, collected only when this thread must wait,
        // again when one was added.
        let mut engines: Option<(Vec<Engine>, u64)> = None;
        let block = |ready: &mut dyn FnMut() -> bool| {
            let now = inner.engines_version.load(Ordering::Acquire);
            if engines.as_ref().is_some_and(|(_, v)| *v != now) {
                engines = None;
            }
            let (list, version) = engines.get_or_insert_with(|| {
                let (mut list, version) = inner.live_engines();
                // An alertable wait also drives the engines whose
                // completions queue this thread's routines.
                if alertable {
                    for e in thread_engines() {
                        if !list.iter().any(|x| x.same(&e)) {
                            list.push(e);
                        }
                    }
                }
                (list, version)
            });
            let version = *version;
            block_with_timers(&ctx, alertable, deadline, |until| {
                wait_until(list, until, &mut || {
                    ready() || inner.engines_version.load(Ordering::Acquire) != version
                })
            })
        };
        let interrupted = || alertable && ctx.has_routines();
        let got = {
            let _waiting = WaitingHere::enter(inner, me);
            wait::get_queued(&inner.q, me, &ctx, max, out, interrupted, block)
        }
        .map_err(|_| closed_error())?;
        if got.interrupted {
            reap_thread_engines_if_due();
        }
        // Every thread that waited is one of the port's workers until it
        // exits (see `PortQueue::sole_worker`): its exit must reach the port.
        note_port(inner);
        Ok(got)
    }

    /// Closes the port: every waiter wakes with an error, queued packets are
    /// dropped with their buffers.
    pub fn close(&self) {
        self.inner.close();
    }
}

// A thread that exits stops counting as running on the ports it used.
struct PortsUsed(std::cell::RefCell<Vec<Weak<PortInner>>>);

impl Drop for PortsUsed {
    fn drop(&mut self) {
        let me = std::thread::current().id();
        for p in self.0.borrow().iter().filter_map(Weak::upgrade) {
            // A place to run freed: a waiter may take a queued packet.
            let wake = p.q().thread_exit(me);
            if let Some(ctx) = wake {
                ctx.wake();
            }
        }
    }
}

/// Marks the calling thread as waiting on a port for the span of its
/// `get_queued` (the previous mark back on drop, should one wait ever
/// nest in another). A thread whose locals are gone (exiting) is not
/// marked: its packets go the usual way.
struct WaitingHere(Option<(*const PortInner, ThreadId)>);

impl WaitingHere {
    fn enter(p: &PortInner, me: ThreadId) -> WaitingHere {
        let mark = Some((p as *const PortInner, me));
        WaitingHere(WAITING.try_with(|w| w.replace(mark)).unwrap_or(None))
    }
}

impl Drop for WaitingHere {
    fn drop(&mut self) {
        let _ = WAITING.try_with(|w| w.set(self.0));
    }
}

/// The calling thread, when it is in a wait on `p`: the packets of the
/// completions it reaps there are granted to itself (see
/// [`PortQueue::push`]).
fn waiting_here(p: &PortInner) -> Option<ThreadId> {
    match WAITING.try_with(std::cell::Cell::get) {
        Ok(Some((at, me))) if std::ptr::eq(at, p) => Some(me),
        _ => None,
    }
}

thread_local! {
    /// The port this thread waits on (compared by address only), and the
    /// thread's identity.
    static WAITING: std::cell::Cell<Option<(*const PortInner, ThreadId)>> =
        const { std::cell::Cell::new(None) };
    /// The vector [`CompletionPort::get_queued`] takes its packet through.
    static SCRATCH: std::cell::RefCell<Vec<Packet>> = const { std::cell::RefCell::new(Vec::new()) };
    static PORTS_USED: PortsUsed = const { PortsUsed(std::cell::RefCell::new(Vec::new())) };
}

fn note_port(p: &Arc<PortInner>) {
    let _ = PORTS_USED.try_with(|u| {
        let mut v = u.0.borrow_mut();
        if !v.iter().any(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(p))) {
            v.retain(|w| w.strong_count() > 0);
            v.push(Arc::downgrade(p));
        }
    });
}
