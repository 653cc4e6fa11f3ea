//! Winsock's socket calls: start-up, sockets, addresses, options, and the
//! non-overlapped `send`/`recv` family (run as an operation the call waits
//! for, so they keep the engine's order with overlapped ones).
//!
//! One file a concept: `startup` (`WSAStartup`, `WSACleanup`, the last
//! error), `lifecycle` (create, bind, listen, accept, connect, shutdown,
//! close), `blocking` (the non-overlapped `send`/`recv` family), `names`
//! (the addresses) and `options` (`setsockopt`, `getsockopt`,
//! `ioctlsocket`); here, what every one of them uses.

use std::ffi::c_int;
use std::sync::Arc;

use overlapped::MsgFlags;

use crate::errors::{self, *};
use crate::table::{self, SockObj};
use crate::types::*;

mod blocking;
mod lifecycle;
mod names;
mod options;
mod startup;

pub use blocking::{ovl_recv, ovl_recvfrom, ovl_send, ovl_sendto, sync_recv, wait_op};
pub use lifecycle::{
    WSAAccept, WSASocketA, WSASocketW, closesocket, ovl_accept, ovl_bind, ovl_connect, ovl_listen,
    ovl_shutdown, ovl_socket,
};
pub use names::{WSAAddressToStringA, ovl_getpeername, ovl_getsockname};
pub use options::{ioctlsocket, ovl_getsockopt, ovl_setsockopt};
pub use startup::{
    GetLastError, SetLastError, WSACleanup, WSAGetLastError, WSASetLastError, WSAStartup, engine,
};

/// Sets the last error and returns `SOCKET_ERROR`.
pub fn fail(code: u32) -> c_int {
    errors::set_last(code);
    SOCKET_ERROR
}

/// The socket behind `s`, or `WSAENOTSOCK`.
pub fn sock(s: usize) -> Result<Arc<SockObj>, u32> {
    table::socket(s).ok_or(WSAENOTSOCK)
}

/// Windows' send/receive flags as the library's (`MSG_PARTIAL` is
/// accepted and ignored); other bits are `WSAEOPNOTSUPP`.
pub fn msg_flags(f: u32) -> Result<MsgFlags, u32> {
    MsgFlags::from_bits(f & !MSG_PARTIAL).ok_or(WSAEOPNOTSUPP)
}
