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
//! ([`AnyOp::Ext`](crate::inflight::AnyOp::Ext)), and a [`Finish`] turns
//! its completion into Windows' [`Outcome`](crate::inflight::Outcome)
//! while it writes the call's other outputs into the caller's memory
//! (`AcceptEx`'s addresses, a `WSAMSG`'s name, control data and flags) —
//! right before the completion is reported, whichever way that is: the
//! routine, the port packet ([`packet_outcome`], called by `port.rs`), or
//! the call that takes a consumer's result.
//!
//! The files follow the calls: `op` (the start and the reporting every
//! operation shares), `accept` (`AcceptEx`, `GetAcceptExSockaddrs`),
//! `connect` (`ConnectEx`, `DisconnectEx`), `transmit` (`TransmitFile`),
//! `msg` (`WSARecvMsg`, `WSASendMsg`) and `ioctl` (`WSAIoctl` and the
//! function pointers it hands out).

mod accept;
mod connect;
mod ioctl;
mod msg;
mod op;
mod transmit;

pub use accept::{AcceptEx, GetAcceptExSockaddrs};
pub use ioctl::{SIO_GET_EXTENSION_FUNCTION_POINTER, WSAIoctl};
pub use msg::{ERROR_MORE_DATA, MSG_CTRUNC, MSG_TRUNC, WSAEMSGSIZE, WSASendMsg, WsaMsg};
pub use op::{Codes, ExtOp, Finish, PENDING, Target, packet_outcome, start};
pub use transmit::{TF_DISCONNECT, TF_REUSE_SOCKET, TransmitFile, TransmitFileBuffers};
