//! # overlapped — the Winsock overlapped I/O model on Linux
//!
//! An overlapped socket accepts **operations** that return at once:
//! *completed now* with a byte count, or *pending*. Each operation owns its
//! buffers while in flight ([`Op`], the `WSAOVERLAPPED` of the model) and
//! completes **exactly once**. A start that fails returns the error (with
//! the buffers) and never completes later. Completion is learned by asking
//! the operation ([`Op::result`]), through an [`Event`] object and
//! [`wait_for_events`], through a completion routine run in an alertable
//! wait of the issuing thread ([`Notify::routine`], [`sleep_ex`]), or from
//! an async task (`Op` is a future). As on Windows, even an immediate
//! completion sets its event or queues its routine.
//!
//! Two engines run it, chosen at run time ([`Engine::new`]): **io_uring**
//! and, where io_uring is missing or blocked, **poll** (epoll). A program
//! behaves the same on both.
//!
//! ```
//! use overlapped::{Engine, Event, MsgFlags, Notify, Socket, WaitMode, WaitOutcome, wait_for_events};
//! # fn main() -> std::io::Result<()> {
//! let engine = Engine::new()?;
//! let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
//! let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
//! client.connect_wait(listener.local_addr()?)?;
//! let (server, _peer) = listener.accept_wait()?;
//!
//! // Post a receive with an event: it is pending, nothing was sent yet.
//! let ev = Event::new();
//! let recv = server.recv(vec![0u8; 1024], MsgFlags::empty(), &ev)?;
//! assert!(recv.is_pending());
//!
//! // A small send on an idle connection usually completes at once.
//! let sent = client.send(b"Network is Computer!".to_vec(), MsgFlags::empty(), Notify::None)?;
//! let _ = sent.wait()?;
//!
//! // Wait on the event, then take the result and the buffer back.
//! assert_eq!(wait_for_events(&[ev], WaitMode::Any, None, false)?, WaitOutcome::Event(0));
//! let done = recv.wait()?;
//! assert_eq!(done.bytes, 20);
//! assert_eq!(&done.data[..], b"Network is Computer!");
//! # Ok(()) }
//! ```
//!
//! ## The model, call by call
//!
//! | Winsock | here |
//! |---|---|
//! | `WSASocket(..., WSA_FLAG_OVERLAPPED)` | [`Socket::new`] (non-blocking, close-on-exec) |
//! | `bind`, `listen`, `setsockopt` | [`Socket::bind`], [`Socket::listen`], [`Socket::with_socket2`] |
//! | `AcceptEx` | [`Socket::accept`] (an operation) |
//! | `AcceptEx` with a receive buffer, into a caller-made socket; `GetAcceptExSockaddrs` | [`Socket::accept_ex`]; the addresses in [`Accepted`] |
//! | `ConnectEx` | [`Socket::connect`] (an operation) |
//! | `ConnectEx` with send data | [`Socket::connect_with`] |
//! | `DisconnectEx` (`TF_REUSE_SOCKET`) | [`Socket::disconnect`] |
//! | `TransmitFile` (head and tail: `TRANSMIT_FILE_BUFFERS`) | [`Socket::transmit_file`] |
//! | `WSASend` / `WSARecv` with `WSABUF[]` | [`Socket::send`] / [`Socket::recv`] with `Vec<u8>`, `Vec<Vec<u8>>`, `[Vec<u8>; N]` or any [`IoBuf`] / [`IoBufMut`] (see [`buf`]) |
//! | `WSASendTo` / `WSARecvFrom` | [`Socket::send_to`] / [`Socket::recv_from`] |
//! | `WSASendMsg` / `WSARecvMsg` (`WSAMSG` with `Control`) | [`Socket::send_msg`] / [`Socket::recv_msg`] with a [`Control`] buffer; its messages: [`Control::messages`], [`Control::push`] |
//! | `IP_PKTINFO` / `IPV6_PKTINFO` (`IN_PKTINFO`, `IN6_PKTINFO`) | [`Socket::set_pktinfo`], [`Control::pktinfo`], [`Control::push_pktinfo`], [`PktInfo`] |
//! | `MSG_CTRUNC` (control data truncated, `WSAEMSGSIZE`) | [`RecvFlags::CTRUNC`] |
//! | `MSG_OOB`, `MSG_PEEK`, `MSG_DONTROUTE`, `MSG_WAITALL` | [`MsgFlags`] |
//! | `lpFlags` out (`MSG_PARTIAL` / `WSAEMSGSIZE`, urgent) | [`RecvFlags`] |
//! | return 0 / `WSA_IO_PENDING` / other error | [`Started::Now`] / [`Started::Pending`] / `Err(`[`StartError`]`)` |
//! | `WSAOVERLAPPED` | [`Op`] (owns the buffers) |
//! | `WSAGetOverlappedResult(fWait)` | [`Op::result`]; `WSA_IO_INCOMPLETE` is [`Polled::Incomplete`] |
//! | `HasOverlappedIoCompleted` | [`Op::is_complete`] |
//! | `CancelIoEx(s, ov)` / `CancelIoEx(s, NULL)` | [`Op::cancel`] / [`Socket::cancel_all`] |
//! | `closesocket` (aborts pending ops) | [`Socket::close`] or drop |
//! | `shutdown(SD_RECEIVE / SD_SEND / SD_BOTH)` | [`Socket::shutdown`] |
//! | `WSADuplicateSocket` (in the process) | [`Socket::try_clone`] |
//! | `WSA_OPERATION_ABORTED`, `ERROR_CONNECTION_ABORTED` | [`is_aborted`] (`ECANCELED`, `ECONNABORTED`) |
//! | `WSAGetLastError`, the code of `GetQueuedCompletionStatus` | [`wsa_error`], [`win32_error`], [`Completion::wsa_error`] |
//! | `WSACreateEvent`, `WSASetEvent`, `WSAResetEvent` | [`Event::new`], [`Event::set`], [`Event::reset`] |
//! | `WSAWaitForMultipleEvents` | [`wait_for_events`] (no 64-event limit) |
//! | completion routine | [`Notify::routine`] |
//! | `SleepEx(ms, TRUE)` | [`sleep_ex`] |
//! | `QueueUserAPC` (with `GetCurrentThread`) | [`queue_routine`] (with [`ThreadHandle::current`]) |
//! | `WaitForMultipleObjectsEx` on events and sockets | [`wait_for_events`] with [`Waitable`] / [`AsWaitable`] |
//! | `FILE_SKIP_SET_EVENT_ON_HANDLE` | [`Socket::set_skip_event_on_handle`] |
//! | `CreateWaitableTimer`, `SetWaitableTimer` with a routine, `CancelWaitableTimer` | [`WaitableTimer::new`], [`WaitableTimer::set`], [`WaitableTimer::cancel`] |
//! | `CreateIoCompletionPort` (create / associate) | [`CompletionPort::new`] / [`CompletionPort::associate`] |
//! | `GetQueuedCompletionStatus(Ex)` | [`CompletionPort::get_queued`] / [`CompletionPort::get_queued_many`] |
//! | `GetQueuedCompletionStatusEx(.., fAlertable)` | [`CompletionPort::get_queued_ex`] / [`CompletionPort::get_queued_many_ex`] ([`PortWait`]) |
//! | `PostQueuedCompletionStatus` | [`CompletionPort::post`] |
//! | `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` | [`Socket::set_skip_port_on_success`] |
//! | `CreateFile(..., FILE_FLAG_OVERLAPPED)` | [`File::open`], [`File::create`], [`File::open_with`], [`File::from_fd`] |
//! | `ReadFile` / `WriteFile` with `OVERLAPPED.Offset` | [`File::read_at`] / [`File::write_at`] (operations; gather and scatter too) |
//! | `CreateIoCompletionPort(file, ...)`, `CancelIoEx(file, NULL)`, `CloseHandle(file)` | [`CompletionPort::associate_file`], [`File::cancel_all`], [`File::close`] |
//! | per-I/O data (`OVERLAPPED` in a struct, cast back from the packet) | [`WithContext`]: a value of the program's type beside the buffers, back typed with the completion (port packet, routine, [`Op::wait`]); or [`Notify::Port`]`(tag)` and [`Packet::into_completion`] |
//! | per-handle data (the completion key as a pointer) | [`TypedPort::associate`]`(&socket, Arc<D>)`: every packet of the socket carries it ([`OpPacket::data`]) |
//! | `GetQueuedCompletionStatus` with both cast back | [`TypedPort::get_queued`]: [`PacketOf::Op`] with the data and the typed completion |
//! | `WSA_WAIT_IO_COMPLETION` | [`WaitOutcome::IoCompletion`], [`SleepOutcome::IoCompletion`], [`PortWait::IoCompletion`] |
//!
//! ## Connection edges and error codes
//!
//! Where Linux and Windows part ways at the edges of a connection, the
//! engine keeps Windows' answers, on both engines and for every
//! notification (SPEC k01–k12):
//!
//! * After a peer **reset**, a pending receive completes with
//!   `ECONNRESET`; every receive and send started afterwards fails at the
//!   call with `ECONNRESET` (Linux would report end-of-stream and `EPIPE`).
//!   A receive reports 0 bytes only for a graceful close. A reset that
//!   answers a send of ours after the peer had closed gracefully is
//!   `ECONNABORTED` instead (Windows' `WSAECONNABORTED`), on the receives
//!   and sends that follow.
//! * [`Socket::shutdown`]`(Read)` is kept in user space: pending receives
//!   stay pending and complete with later data; new receives fail with
//!   `ESHUTDOWN`. After `shutdown(Write)` sends fail with `ESHUTDOWN`.
//! * A connected UDP socket's sends never fail on an ICMP port-unreachable;
//!   a datagram to port 0 succeeds and sends nothing.
//! * An `OOB` receive gets the urgent byte also after normal receives read
//!   past its position (the engine takes it out of the kernel first, where
//!   Linux would drop it; on io_uring once an `OOB` receive was started on
//!   the socket, or on every socket with
//!   [`EngineBuilder::watch_urgent`], which on both engines also keeps a
//!   byte that arrived with data after it before any receive was started);
//!   with `SO_OOBINLINE` on it fails with `EINVAL`.
//! * `connect` on a listening socket, or while a connect is in flight,
//!   fails with `EINVAL`, on a connected socket with `EISCONN`; a receive or
//!   send while connecting with `ENOTCONN`. **(ours)** An unbound socket is
//!   bound by `connect` (Windows' `ConnectEx` requires `bind` first).
//! * A completion routine on a socket associated with a port fails with
//!   `EINVAL`; a port is looked up when an operation completes, so an
//!   operation started before the association posts its packet there.
//!
//! All of these are start errors: nothing is posted, set or queued, and the
//! buffers come back in the [`StartError`].
//!
//! Every error maps to the code a ported program expects ([`wsa_error`],
//! [`win32_error`]; [`Completion::wsa_error`] adds `WSAEMSGSIZE` for a
//! truncated datagram):
//!
//! | why | `io::Error` (kind) | Winsock | Win32 (through a port) |
//! |---|---|---|---|
//! | cancel ([`Op::cancel`], [`Socket::cancel_all`], dropped handle), thread exit | `ECANCELED` | `WSA_OPERATION_ABORTED` 995 | `ERROR_OPERATION_ABORTED` 995 |
//! | socket closed under an accept, a connect, a send, a UDP receive | `ECANCELED` | 995 | 995 |
//! | socket closed under a TCP receive | `ECONNABORTED` (`ConnectionAborted`) | `WSAECONNABORTED` 10053 | `ERROR_CONNECTION_ABORTED` 1236 |
//! | peer reset | `ECONNRESET` (`ConnectionReset`) | `WSAECONNRESET` 10054 | `ERROR_NETNAME_DELETED` 64 |
//! | reset answering a send after the peer's graceful close | `ECONNABORTED` (`ConnectionAborted`) | `WSAECONNABORTED` 10053 | `ERROR_CONNECTION_ABORTED` 1236 |
//! | UDP receive after a datagram drew an ICMP port unreachable | `ConnectionReset` | `WSAECONNRESET` 10054 | `ERROR_PORT_UNREACHABLE` 1234 |
//! | not connected, or connecting | `ENOTCONN` (`NotConnected`) | `WSAENOTCONN` 10057 | `ERROR_CONNECTION_INVALID` 1229 |
//! | after `shutdown` of that side | `ESHUTDOWN` | `WSAESHUTDOWN` 10058 | `ERROR_PIPE_NOT_CONNECTED` 233 |
//! | `connect` on a connected socket | `EISCONN` | `WSAEISCONN` 10056 | `ERROR_CONNECTION_ACTIVE` 1230 |
//! | connect refused | `ECONNREFUSED` (`ConnectionRefused`) | `WSAECONNREFUSED` 10061 | `ERROR_CONNECTION_REFUSED` 1225 |
//! | invalid argument (also the library's own `InvalidInput` errors) | `EINVAL` (`InvalidInput`) | `WSAEINVAL` 10022 | `ERROR_INVALID_PARAMETER` 87 |
//! | `WAITALL` where it does not apply | `EOPNOTSUPP` (`Unsupported`) | `WSAEOPNOTSUPP` 10045 | `ERROR_NOT_SUPPORTED` 50 |
//! | closed or invalid socket | `EBADF` | `WSAENOTSOCK` 10038 | `ERROR_INVALID_HANDLE` 6 |
//! | truncated datagram (a flag, not an error) | [`RecvFlags::TRUNCATED`] | `WSAEMSGSIZE` 10040 | `ERROR_MORE_DATA` 234 |
//! | truncated control data of `recv_msg` (a flag, not an error) | [`RecvFlags::CTRUNC`] | `WSAEMSGSIZE` 10040 | `ERROR_MORE_DATA` 234 |
//!
//! Every abort is [`is_aborted`], whichever its code.
//!
//! ## Buffers
//!
//! See [`buf`]: a send sends each buffer's `len()` bytes; a receive offers
//! each buffer's `len()` and truncates each to the bytes that landed in it.
//! Registered (fixed) buffers are an option:
//! [`Engine::register_buffers`] makes a pool of [`FixedBuf`]s, which the
//! io_uring engine reads and writes with the fixed-buffer opcodes where it
//! can (`READ_FIXED`, a fixed `SEND_ZC`) and which are ordinary buffers
//! everywhere else, the poll engine included (see [`buf`]).
//!
//! ## Engines
//!
//! `OVERLAPPED_ENGINE=auto|uring|poll` or [`EngineBuilder::choice`] picks
//! the engine; [`Engine::kind`] and [`Engine::reason`] say which and why;
//! [`probe`] runs the checks. The design notes are in the `core` module's
//! source and in `docs/DESIGN.md` (the behaviour, case by case, in
//! `docs/SPEC.md`).
//!
//! ## When operations reach the kernel
//!
//! A start first tries the operation with a non-blocking system call (that
//! is how it can complete *now*). A pending operation is handed to the
//! engine at once; on io_uring its submission entry is submitted:
//!
//! * at once, normally;
//! * **batched** when the starting thread is answering a wait that returned
//!   work — between a [`CompletionPort::get_queued`] that returned a
//!   packet, a [`wait_for_events`] that returned an event or a
//!   [`sleep_ex`] that ran routines, and that thread's next wait (or any
//!   blocking call on an operation, or its exit): the entries go in with
//!   that wait's one kernel entry. When another thread is blocked in the
//!   engine at the time, the start submits at once (that thread could not
//!   submit it). Inside completion routines and async tasks starts are
//!   batched the same way. Any thread that enters the engine (a wait, a
//!   blocking call on an operation) submits them too, and a wait that
//!   blocks submits its thread's batched requests on every engine, also
//!   those it does not wait on. A thread that, after
//!   answering a wait, blocks on something else (a lock, a channel, a
//!   sleep) before its next wait holds its batched requests back until
//!   then: call [`Engine::drive`] with a zero timeout first, which submits
//!   them.
//!
//! Which starts try first (the policy, per engine):
//!
//! * **io_uring**: a send started inside completion routines or async
//!   tasks, or in answer to a wait by a thread nobody else waits for (a
//!   port's only worker, or the only live thread that has started
//!   operations on the engine), does not try: it goes straight to the ring
//!   with the batch's kernel entry (it is then *pending*, no system call of
//!   its own), unless another thread is blocked in the engine. Elsewhere it
//!   tries: with several workers (or threads waiting for events) on one
//!   engine, a request left for one thread's next kernel entry waits while
//!   that thread keeps working, and its completion is handed across threads
//!   (`ovl bench --scale`: two port workers that batched every send did
//!   0.91x the work of one). A
//!   stream receive that found no data, or emptied the socket, skips the
//!   try of the next receive on that socket (the kernel polls first) until
//!   a completion reports more bytes waiting. Receives otherwise try: data
//!   already there completes them at once, which a ported program may
//!   handle inline. Outside a batch, now and then a receive after an
//!   emptying one tries anyway, as on poll below; where that finds data,
//!   the socket's receives keep trying.
//! * **poll**: every start tries, except a receive (or accept) on a socket
//!   whose last try found nothing with no readiness reported since: that
//!   try would find nothing, so the operation waits for readiness at once.
//!   The same holds after a stream receive that emptied the socket (the
//!   kernel's `TCP_INQ` count says so): in a request-response exchange the
//!   next request is not there yet. Now and then such a receive tries
//!   anyway; when that finds data (it arrived, unreported, before the
//!   receive started), the socket's receives try again after emptying it,
//!   until one finds nothing.
//!
//! Asking an operation for its result without waiting makes a system call
//! (a non-blocking reap) only when the operation has not finished; a
//! blocking wait on the poll engine enters `epoll_wait` once per wake-up.
//!
//! So a start may always return *pending*. Every wait also reaps finished
//! operations at least every 200 µs, so operations that complete in the
//! kernel are not starved by ones that complete at start.
//!
//! ## Async, and other event loops
//!
//! Every [`Op`] is a future; it completes when something drives its
//! engine. `overlapped::rt` (feature `rt`, on by default) is a small
//! runtime whose waits drive the engines of its thread. From tokio, feature
//! `tokio`: `overlapped::tokio::spawn_driver(&engine)` drives the engine
//! from tokio's reactor with no extra thread, and `rt::TcpStream`
//! implements tokio's `AsyncRead`/`AsyncWrite`. Any other event loop can
//! do the same: wait for the engine's descriptor (its `AsFd`) to be
//! readable, then call [`Engine::poll`].
//!
//! ## Threads
//!
//! One engine may be used by any number of threads at once (a port's worker
//! pool, a thread per connection group): each socket has its own lock, and
//! no lock shared by all threads of an engine is held across a system call,
//! except io_uring's submission lock across the submit that empties a full
//! submission queue (`docs/DESIGN.md`, "What is still shared between
//! threads"). None of your code runs under an engine's lock: closures given
//! to [`Socket::with_fd`] may use the socket, and buffers are dropped, wakers
//! woken and events set after the socket's lock is let go. `ovl bench
//! --scale` measures it.
//!
//! A program may also give each thread an engine of its own (a ring per
//! thread on io_uring) and still share one [`CompletionPort`]: sockets of
//! any engine may be associated with it, and a waiting worker blocks on
//! every engine of the port at once, so a packet reaches it as soon as its
//! operation completes, whichever thread's engine it ran on. An
//! alertable or event wait of a thread that used several engines blocks on
//! all of them the same way (`tests/several_engines.rs`).
//!
//! ## Versions of the types this crate re-exports
//!
//! [`Domain`] and [`Type`] are `socket2` 0.6's, and [`Socket::with_socket2`]
//! lends a `socket2::SockRef`: moving to a new major version of `socket2` is
//! a breaking change of this crate, made only with a major (or, before 1.0,
//! minor) version bump.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod buf;
mod core;
mod engine;
mod event;
mod file;
mod flags;
mod net;
mod op;
mod port;
mod routine;
#[cfg(feature = "rt")]
pub mod rt;
mod sync;
mod sys;
mod thread;
mod timer;
#[cfg(feature = "tokio")]
#[path = "tokio_compat.rs"]
pub mod tokio;
mod wait;
mod winerror;

pub use buf::{Control, ControlMessage, ControlMessages, PktInfo};
pub use buf::{
    FixedBuf, FixedBufs, IOV_MAX, IoBuf, IoBufMut, IoBufs, IoBufsMut, Slice, WithContext,
};
pub use engine::{Counters, DEFAULT_RING_ENTRIES, Engine, EngineBuilder};
pub use event::{AsWaitable, Event, WaitMode, WaitOutcome, Waitable, wait_for_events};
pub use file::{FILE_WORKERS, File};
pub use flags::{MsgFlags, RecvFlags, aborted_error, closed_error, is_aborted};
pub use net::{Accepted, Socket};
pub use op::{Completion, Notify, Op, OpOutput, Polled, StartError, Started};
pub use port::{CompletionPort, OpPacket, Packet, PacketOf, PortWait, TypedPort};
pub use routine::{SleepOutcome, ThreadHandle, queue_routine, sleep_ex};
pub use socket2::{Domain, Type};
pub use sys::EngineKind;
pub use timer::WaitableTimer;
pub use winerror::{win32_error, wsa_error};

/// The probe ladder: whether io_uring can run here, and why not.
pub mod probe {
    pub use crate::sys::probe::{
        EngineChoice, FixedSupport, REQUIRED_OPCODES, UringUnavailable, fixed_support,
        io_uring_sysctl, opcode_support, probe_uring, resolve,
    };
}

/// No time limit, for waits (`WSA_INFINITE`).
pub const INFINITE: Option<std::time::Duration> = None;

/// The repository's README (`../../README.md`): `cargo test` compiles and
/// runs its Rust example.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct RepositoryReadme;

/// The package's README (`../README.md`): `cargo test` compiles and runs
/// its Rust example.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct PackageReadme;
