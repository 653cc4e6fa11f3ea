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
//! | `ConnectEx` | [`Socket::connect`] (an operation) |
//! | `WSASend` / `WSARecv` with `WSABUF[]` | [`Socket::send`] / [`Socket::recv`] with `Vec<u8>`, `Vec<Vec<u8>>` or `[Vec<u8>; N]` |
//! | `WSASendTo` / `WSARecvFrom` | [`Socket::send_to`] / [`Socket::recv_from`] |
//! | `MSG_OOB`, `MSG_PEEK`, `MSG_DONTROUTE` | [`MsgFlags`] |
//! | `lpFlags` out (`MSG_PARTIAL` / `WSAEMSGSIZE`, urgent) | [`RecvFlags`] |
//! | return 0 / `WSA_IO_PENDING` / other error | [`Started::Now`] / [`Started::Pending`] / `Err(`[`StartError`]`)` |
//! | `WSAOVERLAPPED` | [`Op`] (owns the buffers) |
//! | `WSAGetOverlappedResult(fWait)` | [`Op::result`]; `WSA_IO_INCOMPLETE` is [`Polled::Incomplete`] |
//! | `HasOverlappedIoCompleted` | [`Op::is_complete`] |
//! | `CancelIoEx(s, ov)` / `CancelIoEx(s, NULL)` | [`Op::cancel`] / [`Socket::cancel_all`] |
//! | `closesocket` (aborts pending ops) | [`Socket::close`] or drop |
//! | `WSA_OPERATION_ABORTED` | [`is_aborted`] (`ECANCELED`) |
//! | `WSACreateEvent`, `WSASetEvent`, `WSAResetEvent` | [`Event::new`], [`Event::set`], [`Event::reset`] |
//! | `WSAWaitForMultipleEvents` | [`wait_for_events`] (no 64-event limit) |
//! | completion routine | [`Notify::routine`] |
//! | `SleepEx(ms, TRUE)` | [`sleep_ex`] |
//! | `CreateIoCompletionPort` (create / associate) | [`CompletionPort::new`] / [`CompletionPort::associate`] |
//! | `GetQueuedCompletionStatus(Ex)` | [`CompletionPort::get_queued`] / [`CompletionPort::get_queued_many`] |
//! | `PostQueuedCompletionStatus` | [`CompletionPort::post`] |
//! | `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` | [`Socket::set_skip_port_on_success`] |
//! | per-operation data (`OVERLAPPED` in a struct) | [`Notify::Port`]`(tag)` and [`Packet::into_completion`] |
//! | `WSA_WAIT_IO_COMPLETION` | [`WaitOutcome::IoCompletion`], [`SleepOutcome::IoCompletion`] |
//!
//! ## Buffers
//!
//! See [`buf`]: a send sends each buffer's `len()` bytes; a receive offers
//! each buffer's `len()` and truncates each to the bytes that landed in it.
//!
//! ## Engines
//!
//! `OVERLAPPED_ENGINE=auto|uring|poll` or [`EngineBuilder::choice`] picks
//! the engine; [`Engine::kind`] and [`Engine::reason`] say which and why;
//! [`probe`] runs the checks. The design notes are in the `driver` module's
//! source and in `DESIGN.md`.
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
//!   batched the same way.
//!
//! On io_uring a stream receive that found no data skips the try of the
//! next receive on that socket (the kernel polls first), until a completion
//! reports more bytes waiting: such receives are *pending* even when data
//! arrived meanwhile — a start may always return pending. Every wait also
//! reaps finished operations at least every 200 µs, so operations that
//! complete in the kernel are not starved by ones that complete at start.

#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod buf;
mod core;
mod engine;
mod event;
mod flags;
mod net;
mod op;
mod port;
mod routine;
pub mod rt;
mod sched;
mod sys;
mod thread;
mod winerror;

pub use crate::core::RawDone;
pub use buf::{IOV_MAX, IoBufs, Slice};
pub use engine::{Counters, DEFAULT_RING_ENTRIES, Engine, EngineBuilder};
pub use event::{Event, WaitMode, WaitOutcome, wait_for_events};
pub use flags::{MsgFlags, RecvFlags, aborted_error, closed_error, is_aborted};
pub use net::Socket;
pub use op::{Completion, Notify, Op, OpOutput, Polled, StartError, Started};
pub use port::{CompletionPort, Packet};
pub use routine::{SleepOutcome, sleep_ex};
pub use socket2::{Domain, Type};
pub use sys::EngineKind;
pub use winerror::{win32_error, wsa_error};

/// The probe ladder: whether io_uring can run here, and why not.
pub mod probe {
    pub use crate::sys::probe::{
        EngineChoice, REQUIRED_OPCODES, UringUnavailable, io_uring_sysctl, opcode_support,
        probe_uring, resolve,
    };
}

/// No time limit, for waits (`WSA_INFINITE`).
pub const INFINITE: Option<std::time::Duration> = None;
