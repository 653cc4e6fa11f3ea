//! The operation handle (the overlapped state), its start and completion
//! values, and the notify choice.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::buf::{Control, IoBufs};
use crate::core::{OpId, RawDone, SlotNotify, Sock};
use crate::engine::Engine;
use crate::event::Event;
use crate::flags::{RecvFlags, is_aborted};
use crate::net::Socket;
use crate::sys::OpKind;
use crate::thread::{current_ctx, register_routine, unregister_routine};

/// How a finished operation ended: the `dwError`, `cbTransferred` and
/// `dwFlags` of the model, plus the buffers (or other value) handed back.
#[derive(Debug)]
#[non_exhaustive]
pub struct Completion<T> {
    /// The operation's error, or `None` on success.
    pub error: Option<io::Error>,
    /// Bytes transferred. On a stream send that failed part-way, the bytes
    /// taken before the error.
    pub bytes: usize,
    /// Flags of a receive (urgent data, truncated datagram).
    pub flags: RecvFlags,
    /// The peer address of `recv_from` and `accept`.
    pub addr: Option<SocketAddr>,
    /// The buffers, back by value (for `accept`, the new socket; for
    /// `recv_msg` and `send_msg`, the buffers and the control buffer).
    pub data: T,
}

impl<T> Completion<T> {
    /// The result as `io::Result`, with the data.
    pub fn into_result(self) -> (io::Result<usize>, T) {
        match self.error {
            Some(e) => (Err(e), self.data),
            None => (Ok(self.bytes), self.data),
        }
    }
    /// True when the operation was cancelled or aborted.
    pub fn is_aborted(&self) -> bool {
        self.error.as_ref().is_some_and(is_aborted)
    }
    /// True on success.
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
    }
    /// The Winsock code `WSAGetOverlappedResult` would report for this
    /// completion: `None` on success, `WSAEMSGSIZE` (10040) for a truncated
    /// datagram or truncated control data ([`RecvFlags::CTRUNC`]; the bytes
    /// copied are in [`bytes`](Self::bytes)), else
    /// [`wsa_error`](crate::wsa_error) of the error.
    pub fn wsa_error(&self) -> Option<u32> {
        match &self.error {
            Some(e) => crate::winerror::wsa_error(e),
            None if self
                .flags
                .intersects(RecvFlags::TRUNCATED | RecvFlags::CTRUNC) =>
            {
                Some(10040)
            }
            None => None,
        }
    }
    /// The Win32 code `GetQueuedCompletionStatus` would report for this
    /// completion: `None` on success, `ERROR_MORE_DATA` (234) for a
    /// truncated datagram or truncated control data, else
    /// [`win32_error`](crate::win32_error) of the error.
    pub fn win32_error(&self) -> Option<u32> {
        match &self.error {
            Some(e) => crate::winerror::win32_error(e),
            None if self
                .flags
                .intersects(RecvFlags::TRUNCATED | RecvFlags::CTRUNC) =>
            {
                Some(234)
            }
            None => None,
        }
    }
}

/// A start that failed: no completion will ever follow. The buffers come
/// back with the error.
#[non_exhaustive]
pub struct StartError<B> {
    /// Why the operation could not start.
    pub error: io::Error,
    /// The buffers the operation was given.
    pub bufs: B,
}

impl<B> fmt::Debug for StartError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StartError")
            .field("error", &self.error)
            .finish_non_exhaustive()
    }
}

impl<B> fmt::Display for StartError<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the operation could not start: {}", self.error)
    }
}

impl<B> std::error::Error for StartError<B> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<B> From<StartError<B>> for io::Error {
    fn from(e: StartError<B>) -> io::Error {
        e.error
    }
}

/// The three-way start result of the model, minus the error: **completed
/// now** (the count is known at once) or **pending**. Either way the
/// operation's notification (event, routine, port packet) happens, and the
/// handle gives the result.
#[derive(Debug)]
pub enum Started<T: OpOutput> {
    /// Completed during the start call, with this many bytes (or with an
    /// error that surfaced after bytes moved).
    Now {
        /// Bytes transferred at once.
        bytes: usize,
        /// The handle; its result is ready.
        op: Op<T>,
    },
    /// In flight; the completion comes later.
    Pending(Op<T>),
}

impl<T: OpOutput> Started<T> {
    /// The handle, whichever way it started.
    pub fn op(self) -> Op<T> {
        match self {
            Started::Now { op, .. } | Started::Pending(op) => op,
        }
    }
    /// True when the operation is pending.
    pub fn is_pending(&self) -> bool {
        matches!(self, Started::Pending(_))
    }
    /// The byte count when it completed at start.
    pub fn bytes_now(&self) -> Option<usize> {
        match self {
            Started::Now { bytes, .. } => Some(*bytes),
            Started::Pending(_) => None,
        }
    }
    /// Waits for the completion (see [`Op::wait`]).
    pub fn wait(self) -> io::Result<Completion<T>> {
        self.op().wait()
    }
}

/// The answer of [`Op::result`]: complete, or still in flight (the model's
/// `WSA_IO_INCOMPLETE`, a value, not an error).
#[derive(Debug)]
pub enum Polled<T: OpOutput> {
    /// Done; the result and the buffers.
    Complete(Completion<T>),
    /// Not done yet; the handle comes back.
    Incomplete(Op<T>),
}

/// How the completion of an operation is made known (the model's four ways;
/// ports come with [`CompletionPort`](crate::CompletionPort) sockets).
#[non_exhaustive]
pub enum Notify<T> {
    /// Only through the handle ([`Op::result`], [`Op::is_complete`]). On a
    /// socket associated with a port this is the per-operation "no packet"
    /// (the `hEvent | 1` of the model). On a socket not associated yet, a
    /// port the socket is associated with before the operation completes
    /// gets its packet, as on Windows (SPEC k09); the handle's result is
    /// then an error.
    None,
    /// The event is reset when the operation starts and set when it
    /// completes (also when it completed at start).
    Event(Event),
    /// A completion routine: queued to the thread that started the operation
    /// and run only while that thread is in an alertable wait
    /// ([`sleep_ex`](crate::sleep_ex),
    /// [`wait_for_events`](crate::wait_for_events) with `alertable`). It
    /// receives the completion with the buffers by value. The handle of such
    /// an operation can only cancel it. Not on a socket associated with a
    /// port: the start fails with `InvalidInput` (an operation started
    /// before the association stays a routine operation).
    Routine(Box<dyn FnOnce(Completion<T>)>),
    /// A packet on the completion port the socket is associated with
    /// ([`CompletionPort::associate`](crate::CompletionPort::associate)),
    /// carrying this tag (the per-operation data of the model). The handle
    /// can only cancel the operation — unless the socket skips the port on
    /// immediate success and the operation completed at start: then the
    /// handle takes the result inline. The port is the one the socket is
    /// associated with when the operation **completes** (SPEC k09): an
    /// operation may start before the association. One that completes at
    /// start on a socket with no port hands its result to the handle
    /// inline; one that completes later with still no port is dropped with
    /// its buffers (the bytes a stream receive took stay for the next).
    Port(u64),
}

impl<T> Notify<T> {
    /// A completion routine (see [`Notify::Routine`]).
    pub fn routine(f: impl FnOnce(Completion<T>) + 'static) -> Self {
        Notify::Routine(Box::new(f))
    }
}

impl<T> fmt::Debug for Notify<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notify::None => f.write_str("Notify::None"),
            Notify::Event(e) => write!(f, "Notify::Event({e:?})"),
            Notify::Routine(_) => f.write_str("Notify::Routine(..)"),
            Notify::Port(t) => write!(f, "Notify::Port({t})"),
        }
    }
}

impl<T> From<Event> for Notify<T> {
    fn from(e: Event) -> Self {
        Notify::Event(e)
    }
}

impl<T> From<&Event> for Notify<T> {
    fn from(e: &Event) -> Self {
        Notify::Event(e.clone())
    }
}

/// What an operation hands back: buffers for sends and receives, the
/// buffers and the [`Control`] buffer for `recv_msg` and `send_msg`, the
/// new socket for `accept`, nothing for `connect`. Sealed: implemented for
/// every [`IoBufs`], for `(B, Control)`, for `()` and for `Option<Socket>`
/// only (its method
/// takes a type of the engine that other crates cannot name).
///
/// ```compile_fail
/// // Another crate's type cannot be an operation's output.
/// struct Mine;
/// impl overlapped::OpOutput for Mine {}
/// ```
pub trait OpOutput: Sized + Send + 'static + sealed::Output {
    #[doc(hidden)]
    fn from_raw(raw: RawDone) -> Completion<Self>;
}

mod sealed {
    /// Only this crate implements [`OpOutput`](super::OpOutput).
    pub trait Output {}
    impl<B: crate::IoBufs> Output for B {}
    impl<B: crate::IoBufs> Output for (B, crate::Control) {}
    impl Output for () {}
    impl Output for Option<crate::Socket> {}
    impl<B: crate::IoBufsMut> Output for crate::Accepted<B> {}
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    impl<B: crate::IoBufsMut> Output for crate::buf::KeptRx<B> {}
}

fn base<T>(raw: &mut RawDone, data: T) -> Completion<T> {
    Completion {
        error: raw.outcome.error.take(),
        bytes: raw.outcome.bytes,
        flags: raw.outcome.flags,
        addr: raw.outcome.addr,
        data,
    }
}

impl<B: IoBufs> OpOutput for B {
    fn from_raw(mut raw: RawDone) -> Completion<B> {
        let bufs = raw.bufs.take().and_then(crate::buf::take_back::<B>);
        match bufs {
            Some(b) => base(&mut raw, b),
            // The driver stores exactly the `B` the typed start gave it.
            None => unreachable!("operation buffers of another type"),
        }
    }
}

impl<B: IoBufs> OpOutput for (B, Control) {
    fn from_raw(mut raw: RawDone) -> Completion<(B, Control)> {
        let back = raw.bufs.take().and_then(crate::buf::take_back_msg::<B>);
        match back {
            Some(b) => base(&mut raw, b),
            // The driver stores exactly the message buffers the typed start
            // gave it.
            None => unreachable!("message operation buffers of another type"),
        }
    }
}

#[cfg(any(feature = "futures-io", feature = "tokio"))]
impl<B: crate::IoBufsMut> OpOutput for crate::buf::KeptRx<B> {
    fn from_raw(mut raw: RawDone) -> Completion<Self> {
        match raw.bufs.take().and_then(Self::back) {
            Some(b) => base(&mut raw, b),
            // The driver stores exactly the box the start gave it.
            None => unreachable!("kept receive buffers of another type"),
        }
    }
}

impl OpOutput for () {
    fn from_raw(mut raw: RawDone) -> Completion<()> {
        base(&mut raw, ())
    }
}

impl OpOutput for Option<Socket> {
    fn from_raw(mut raw: RawDone) -> Completion<Option<Socket>> {
        let sock = Socket::accepted_of(&mut raw);
        base(&mut raw, sock)
    }
}

/// The overlapped state of one operation in flight (`WSAOVERLAPPED`).
///
/// It owns the operation's buffers from start to completion. Take the result
/// with [`result`](Op::result) or [`wait`](Op::wait) (once: both consume the
/// handle). Dropping the handle of a pending operation **cancels** it; the
/// engine keeps the buffers until the kernel has let go of them. (An
/// operation started with a routine is not cancelled by dropping its handle:
/// the routine is its consumer.)
///
/// # Examples
///
/// Asking without waiting (`WSAGetOverlappedResult(.., FALSE, ..)`), then
/// cancelling (`CancelIoEx`): the operation completes once, aborted, with
/// its buffer.
///
/// ```
/// use overlapped::{Engine, MsgFlags, Notify, Polled, Socket};
/// # fn main() -> std::io::Result<()> {
/// let engine = Engine::new()?;
/// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
/// let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
/// client.connect_wait(listener.local_addr()?)?;
/// let (_server, _peer) = listener.accept_wait()?;
///
/// let op = client.recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)?.op();
/// let op = match op.result(false)? {
///     Polled::Incomplete(op) => op, // WSA_IO_INCOMPLETE: nothing sent yet
///     Polled::Complete(_) => unreachable!("nobody sent anything"),
/// };
/// op.cancel()?;
/// let done = op.wait()?;
/// assert!(done.is_aborted());
/// assert_eq!(done.wsa_error(), Some(995)); // WSA_OPERATION_ABORTED
/// assert_eq!(done.data.capacity(), 64); // the buffer comes back
/// # Ok(()) }
/// ```
#[must_use = "dropping a pending operation's handle cancels it"]
pub struct Op<T: OpOutput> {
    pub(crate) engine: Engine,
    pub(crate) sock: Arc<Sock>,
    pub(crate) id: OpId,
    /// The handle takes the result (false for routine operations).
    pub(crate) consumer: bool,
    pub(crate) done: bool,
    pub(crate) _t: PhantomData<fn() -> T>,
}

impl<T: OpOutput> fmt::Debug for Op<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("socket", &self.sock.key)
            .field("id", &self.id.key)
            .field("generation", &self.id.seq)
            .field("engine", &self.engine.kind())
            .finish()
    }
}

fn not_consumer() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "this operation's completion is delivered to its completion routine or port, not to the handle",
    )
}

impl<T: OpOutput> Op<T> {
    /// Cheap check (`HasOverlappedIoCompleted`): reaps finished work without
    /// blocking, then says whether this operation is complete.
    pub fn is_complete(&self) -> bool {
        self.engine.inner.is_done(&self.sock, self.id, true)
    }

    /// `WSAGetOverlappedResult`: with `wait = false` returns at once,
    /// [`Polled::Incomplete`] while the operation is in flight; with
    /// `wait = true` drives the engine until it completes.
    ///
    /// # Errors
    /// `InvalidInput` for an operation started with a completion routine
    /// (its routine receives the result), or whose completion went to the
    /// port its socket was associated with after the start
    /// ([`Notify::None`]).
    #[doc(alias = "WSAGetOverlappedResult")]
    pub fn result(self, wait: bool) -> io::Result<Polled<T>> {
        self.result_timeout(if wait { None } else { Some(Duration::ZERO) })
    }

    /// `GetOverlappedResultEx`: waits up to `timeout` (`None`: no limit).
    pub fn result_timeout(mut self, timeout: Option<Duration>) -> io::Result<Polled<T>> {
        if !self.consumer {
            return Err(not_consumer());
        }
        match self
            .engine
            .inner
            .take_result(&self.sock, self.id, timeout)?
        {
            Some(raw) => {
                self.done = true;
                Ok(Polled::Complete(T::from_raw(raw)))
            }
            None => Ok(Polled::Incomplete(self)),
        }
    }

    /// Waits for the completion and returns it.
    ///
    /// # Errors
    /// `InvalidInput` for an operation started with a completion routine.
    pub fn wait(self) -> io::Result<Completion<T>> {
        match self.result_timeout(None)? {
            Polled::Complete(c) => Ok(c),
            Polled::Incomplete(_) => unreachable!("an unbounded wait returns only on completion"),
        }
    }

    /// `CancelIoEx(socket, overlapped)`: asks for cancellation. The operation
    /// still completes exactly once — *aborted* with its buffers, or normally
    /// if it won the race.
    ///
    /// # Errors
    /// `NotFound` when the operation has already completed (Winsock's
    /// `ERROR_NOT_FOUND`).
    #[doc(alias = "CancelIoEx")]
    pub fn cancel(&self) -> io::Result<()> {
        self.engine.inner.cancel_op(&self.sock, self.id)
    }

    /// Awaits the whole completion (flags and peer address included); the
    /// `Future` impl gives just the result and the buffers.
    ///
    /// # Panics
    /// As for awaiting the handle: not for routine or port operations.
    pub async fn completion(mut self) -> Completion<T> {
        assert!(
            self.consumer,
            "awaited an operation whose completion goes to its routine or port"
        );
        std::future::poll_fn(|cx| {
            match self
                .engine
                .inner
                .poll_result(&self.sock, self.id, cx.waker())
            {
                Some(raw) => {
                    self.done = true;
                    std::task::Poll::Ready(T::from_raw(raw))
                }
                None => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// The engine that runs this operation.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

impl<T: OpOutput> Drop for Op<T> {
    fn drop(&mut self) {
        if self.consumer && !self.done {
            self.engine.inner.drop_handle(&self.sock, self.id);
        }
    }
}

/// An operation is also a future resolving to its result and its buffers.
/// An operation that completed at start resolves on its first poll without
/// entering the kernel. The executor that polls it must drive the engine
/// ([`rt::block_on`](crate::rt::block_on) does). Dropping the future of a
/// pending operation cancels it (see [`Op`]).
///
/// # Panics
/// When awaited although it was started with a completion routine or a port
/// notify (its completion goes there; await operations started with
/// `Notify::None` or an event).
impl<T: OpOutput> std::future::Future for Op<T> {
    type Output = (io::Result<usize>, T);
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        assert!(
            self.consumer,
            "awaited an operation whose completion goes to its routine or port"
        );
        match self
            .engine
            .inner
            .poll_result(&self.sock, self.id, cx.waker())
        {
            Some(raw) => {
                self.done = true;
                std::task::Poll::Ready(T::from_raw(raw).into_result())
            }
            None => std::task::Poll::Pending,
        }
    }
}

/// A start that failed, its buffers back as the caller gave them (`back`:
/// out of their box; the core hands back exactly the buffers it was given).
pub(crate) fn start_error<B>(
    (error, bufs): (io::Error, crate::sys::Bufs),
    back: impl FnOnce(Box<dyn crate::buf::ErasedBufs>) -> Option<B>,
) -> StartError<B> {
    StartError {
        error,
        bufs: bufs
            .and_then(back)
            .expect("buffers come back with a failed start"),
    }
}

/// Starts an operation on the socket or file `sock` of `engine` (its
/// handle's `closed` flag): the notify becomes the core's, and the core's
/// answer a [`Started`] handle, or the error with the buffers back.
/// `waker`: the task that awaits the handle, woken when a pending
/// operation completes as if it had polled the handle once (see
/// `Core::start`).
pub(crate) fn start_on<T: OpOutput>(
    engine: &Engine,
    sock: &Arc<Sock>,
    closed: &AtomicBool,
    kind: OpKind,
    bufs: crate::sys::Bufs,
    notify: Notify<T>,
    waker: Option<&std::task::Waker>,
) -> Result<Started<T>, (io::Error, crate::sys::Bufs)> {
    let (slot_notify, handle, routine) = match notify {
        Notify::None => (
            SlotNotify::Default {
                conv: crate::port::convert::<T>(),
            },
            true,
            None,
        ),
        Notify::Event(e) => {
            e.reset();
            e.bind_engine(engine);
            (SlotNotify::Event(e.signal()), true, None)
        }
        Notify::Routine(f) => {
            let id = register_routine(Box::new(move |raw| f(T::from_raw(raw))));
            (
                SlotNotify::Routine {
                    ctx: current_ctx(),
                    id,
                },
                false,
                Some(id),
            )
        }
        Notify::Port(tag) => (
            SlotNotify::Port {
                tag,
                conv: crate::port::convert::<T>(),
            },
            false,
            None,
        ),
    };
    if closed.load(Ordering::Acquire) {
        if let Some(id) = routine {
            unregister_routine(id);
        }
        return Err((io::Error::from_raw_os_error(libc::EBADF), bufs));
    }
    match engine
        .inner
        .start(sock, kind, bufs, slot_notify, handle, waker)
    {
        Ok(crate::core::StartOk { id, now, handle }) => {
            let op = Op {
                engine: engine.clone(),
                sock: sock.clone(),
                id,
                consumer: handle,
                done: false,
                _t: PhantomData,
            };
            Ok(match now {
                Some(bytes) => Started::Now { bytes, op },
                None => Started::Pending(op),
            })
        }
        Err((e, b)) => {
            if let Some(id) = routine {
                unregister_routine(id);
            }
            Err((e, b))
        }
    }
}
