//! Per-call flags (`MsgFlags`, `RecvFlags`) and the *aborted* error: a leaf
//! module every other module may import.

use std::io;

bitflags::bitflags! {
    /// Per-call flags of a send or receive (`dwFlags` / `lpFlags` in).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct MsgFlags: u32 {
        /// `MSG_OOB`: urgent data. On a send the **last** byte is sent urgent
        /// (TCP semantics); a receive reads the one urgent byte and, if none
        /// has arrived yet, stays pending until one does.
        const OOB = 0x1;
        /// `MSG_PEEK`: receive without consuming. (Winsock documents it for
        /// non-overlapped receives only; ours is an extension.)
        const PEEK = 0x2;
        /// `MSG_DONTROUTE`: bypass routing (may be ignored by the system).
        const DONTROUTE = 0x4;
        /// `MSG_WAITALL` (receives): complete only when every buffer is
        /// full, or with the bytes that arrived when the stream ends, is
        /// reset or the operation is aborted (the count says how many). A
        /// stream receive of the normal channel only: with `OOB` or `PEEK`,
        /// or on a datagram socket, the start fails with `EOPNOTSUPP`
        /// (`WSAEOPNOTSUPP`). Sends ignore it (a stream send always
        /// completes whole).
        const WAITALL = 0x8;
    }
}

bitflags::bitflags! {
    /// Flags a receive reports (`lpFlags` out).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RecvFlags: u32 {
        /// The byte came from the urgent (out-of-band) channel.
        const OOB = 0x1;
        /// The datagram was larger than the buffers; the rest was discarded
        /// (Winsock reports `WSAEMSGSIZE`, Linux `MSG_TRUNC`).
        const TRUNCATED = 0x2;
        /// The control data of a [`recv_msg`](crate::Socket::recv_msg) did
        /// not fit its control buffer; the messages that fit are there, the
        /// rest was discarded (Windows' and Linux's `MSG_CTRUNC`; Winsock
        /// reports `WSAEMSGSIZE`).
        const CTRUNC = 0x4;
    }
}

/// The error a cancelled operation completes with — by
/// [`Op::cancel`](crate::Op::cancel), [`Socket::cancel_all`](crate::Socket::cancel_all),
/// a dropped handle or the exit of the thread that started it — and that
/// any operation aborted by closing its socket completes with, except a
/// TCP receive (see [`closed_error`]): `ECANCELED`, Winsock's
/// `WSA_OPERATION_ABORTED` (995).
pub fn aborted_error() -> io::Error {
    io::Error::from_raw_os_error(libc::ECANCELED)
}

/// The error a pending TCP receive completes with when its socket is
/// closed: `ECONNABORTED` (`ErrorKind::ConnectionAborted`), as Windows
/// reports it (`ERROR_CONNECTION_ABORTED`, 1236, through a port;
/// `WSAECONNABORTED` through `WSAGetOverlappedResult`).
pub fn closed_error() -> io::Error {
    io::Error::from_raw_os_error(libc::ECONNABORTED)
}

/// True for every *aborted* completion: a cancelled operation, one ended by
/// closing its socket, or by the exit of its thread (`ECANCELED` or
/// `ECONNABORTED`; [`win32_error`](crate::win32_error) tells which Windows
/// code each is). Also true for the `ECONNABORTED` of a connection the
/// peer's stack reset in answer to a send after the peer's graceful close
/// (Windows' `WSAECONNABORTED` there too, SPEC k01).
pub fn is_aborted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::ECONNABORTED))
}
