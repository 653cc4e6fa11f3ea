//! # overlapped-c — the Winsock overlapped and IOCP API for C programs
//!
//! A C or C++ program written for Windows' overlapped model includes
//! `winsock2.h` (and `windows.h`, `mswsock.h`, `ws2tcpip.h`, `process.h`)
//! from this crate's `include/` directory, links `liboverlapped_c` (static
//! or shared) and runs on Linux over the [`overlapped`] engines (io_uring or
//! epoll, picked by `OVERLAPPED_ENGINE`). The header `include/overlapped.h`
//! documents each call's Windows counterpart and the contract a caller
//! keeps; this crate is the other side of it.
//!
//! How the pieces map:
//!
//! * `SOCKET` and `HANDLE` values are keys of one table ([`table`]), never
//!   raw descriptors, so a closed or unknown handle is an error code
//!   (`WSAENOTSOCK`, `ERROR_INVALID_HANDLE`), never a use of a reused
//!   descriptor.
//! * The caller owns its `WSABUF` memory and its `OVERLAPPED`, as on
//!   Windows: an operation's buffers are [`bufs::WsaBufs`], an
//!   [`overlapped::IoBufs`] over the caller's pointers, and the operation's
//!   tag on a completion port is the `LPOVERLAPPED` itself, so
//!   `GetQueuedCompletionStatus` hands back the very pointer the call was
//!   given.
//! * `OVERLAPPED.Internal` (an `NTSTATUS`), `InternalHigh` (the byte
//!   count) and `Offset` (the receive flags) are written, as Windows writes
//!   them, before the completion is reported to the program ([`inflight`]).
//!
//! Where the calls still to come go: an operation kind with another output
//! (`AcceptEx`'s socket, `ConnectEx`, `DisconnectEx`, `TransmitFile`,
//! `ReadFile`/`WriteFile`) is one more [`inflight::AnyOp`] variant with its
//! conversion to an [`inflight::Outcome`], and one more arm in the port's
//! packet conversion (`port.rs`, `take`); `WSAIoctl` and the function
//! pointers it hands out belong next to [`io`]; files are one more
//! [`table::Obj`] kind; `QueueUserAPC`, `WSAEventSelect` and timers join
//! [`wait`], whose waits already map handles to the library's events.
//!
//! The extension functions, files, APCs and timers are there now:
//! [`ext`] (`WSAIoctl`, `AcceptEx` and the rest, and the start of every
//! operation whose completion carries more than `WSABUF`s:
//! [`inflight::AnyOp::Ext`]), [`files`] and [`apc`]; `WSAEventSelect` and
//! `WSAEnumNetworkEvents` are [`select`].
//!
//! All `unsafe` code of the C interface is here, in the functions the C
//! program calls (each an `unsafe extern "C" fn` whose `# Safety` section
//! is the Windows contract) and in the buffer type; a safe Rust caller can
//! reach none of it.

#![deny(unsafe_op_in_unsafe_fn)]
#![allow(non_snake_case)]

pub mod addr;
pub mod apc;
pub mod bufs;
pub mod console;
pub mod errors;
pub mod ext;
pub mod files;
pub mod inflight;
pub mod io;
pub mod port;
pub mod select;
pub mod sockets;
pub mod table;
pub mod threads;
pub mod types;
pub mod wait;
