//! The Windows code of an error (SPEC k10): one table from the `errno` an
//! operation ended with (or failed to start with) to the two numbers a
//! ported program knows — the Winsock code `WSAGetLastError` and
//! `WSAGetOverlappedResult` report, and the Win32 code
//! `GetQueuedCompletionStatus` and `GetOverlappedResult` report for the same
//! completion (Windows translates the driver's `NTSTATUS` to each).
//!
//! Where Windows has no separate Win32 translation (errors that only ever
//! come back from a call, never in a completion), the Win32 code is the
//! Winsock one: after a failed Winsock call `GetLastError` returns it too.
//!
//! Errors without an `errno` (the library's own start errors, such as an
//! empty buffer array) are mapped by their [`io::ErrorKind`].

use std::io;

/// One row: `errno`, Winsock code, Win32 code.
const TABLE: &[(i32, u32, u32)] = &[
    // Aborts: a cancel or a thread exit; a TCP receive ended by closing its
    // socket; a peer reset (Windows reports it as a deleted network name).
    (libc::ECANCELED, 995, 995), // WSA_OPERATION_ABORTED, ERROR_OPERATION_ABORTED
    (libc::ECONNABORTED, 10053, 1236), // WSAECONNABORTED, ERROR_CONNECTION_ABORTED
    (libc::ECONNRESET, 10054, 64), // WSAECONNRESET, ERROR_NETNAME_DELETED
    // Connection state.
    (libc::ENOTCONN, 10057, 1229), // WSAENOTCONN, ERROR_CONNECTION_INVALID
    (libc::ESHUTDOWN, 10058, 233), // WSAESHUTDOWN, ERROR_PIPE_NOT_CONNECTED
    (libc::EPIPE, 10058, 233),     // (a write side that is shut)
    (libc::EISCONN, 10056, 1230),  // WSAEISCONN, ERROR_CONNECTION_ACTIVE
    (libc::EALREADY, 10037, 10037), // WSAEALREADY
    (libc::EINPROGRESS, 10036, 10036), // WSAEINPROGRESS
    (libc::ECONNREFUSED, 10061, 1225), // WSAECONNREFUSED, ERROR_CONNECTION_REFUSED
    (libc::ETIMEDOUT, 10060, 121), // WSAETIMEDOUT, ERROR_SEM_TIMEOUT
    (libc::ENETRESET, 10052, 10052), // WSAENETRESET
    (libc::ENETDOWN, 10050, 10050), // WSAENETDOWN
    (libc::ENETUNREACH, 10051, 1231), // WSAENETUNREACH, ERROR_NETWORK_UNREACHABLE
    (libc::EHOSTDOWN, 10064, 10064), // WSAEHOSTDOWN
    (libc::EHOSTUNREACH, 10065, 1232), // WSAEHOSTUNREACH, ERROR_HOST_UNREACHABLE
    // Arguments and resources.
    (libc::EINVAL, 10022, 87),     // WSAEINVAL, ERROR_INVALID_PARAMETER
    (libc::EMSGSIZE, 10040, 234),  // WSAEMSGSIZE, ERROR_MORE_DATA
    (libc::EOPNOTSUPP, 10045, 50), // WSAEOPNOTSUPP, ERROR_NOT_SUPPORTED
    (libc::EBADF, 10038, 6),       // WSAENOTSOCK, ERROR_INVALID_HANDLE
    (libc::ENOTSOCK, 10038, 6),    // WSAENOTSOCK, ERROR_INVALID_HANDLE
    (libc::EAGAIN, 10035, 10035),  // WSAEWOULDBLOCK
    (libc::ENOBUFS, 10055, 1450),  // WSAENOBUFS, ERROR_NO_SYSTEM_RESOURCES
    (libc::ENOMEM, 10055, 1450),   // WSAENOBUFS, ERROR_NO_SYSTEM_RESOURCES
    (libc::EMFILE, 10024, 10024),  // WSAEMFILE
    (libc::EACCES, 10013, 5),      // WSAEACCES, ERROR_ACCESS_DENIED
    (libc::EPERM, 10013, 5),       // WSAEACCES, ERROR_ACCESS_DENIED
    (libc::EFAULT, 10014, 998),    // WSAEFAULT, ERROR_NOACCESS
    (libc::EADDRINUSE, 10048, 52), // WSAEADDRINUSE, ERROR_DUP_NAME
    (libc::EADDRNOTAVAIL, 10049, 1214), // WSAEADDRNOTAVAIL, ERROR_INVALID_NETNAME
    (libc::EAFNOSUPPORT, 10047, 10047), // WSAEAFNOSUPPORT
    (libc::EDESTADDRREQ, 10039, 10039), // WSAEDESTADDRREQ
    (libc::EPROTOTYPE, 10041, 10041), // WSAEPROTOTYPE
    (libc::ENOPROTOOPT, 10042, 10042), // WSAENOPROTOOPT
    (libc::EPROTONOSUPPORT, 10043, 10043), // WSAEPROTONOSUPPORT
    (libc::ESOCKTNOSUPPORT, 10044, 10044), // WSAESOCKTNOSUPPORT
];

/// `ERROR_NOT_FOUND`: a cancel that found nothing in flight.
const NOT_FOUND: u32 = 1168;

/// `ERROR_PORT_UNREACHABLE`: a datagram receive told of an ICMP port
/// unreachable.
const PORT_UNREACHABLE: u32 = 1234;

/// The error of a datagram receive told of an ICMP port unreachable that an
/// earlier send drew (Linux reports `ECONNREFUSED`): Windows reports it as
/// `WSAECONNRESET`, and as `ERROR_PORT_UNREACHABLE` through a port.
#[derive(Debug)]
struct PortUnreachable;

impl std::fmt::Display for PortUnreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset: an earlier datagram drew an ICMP port unreachable")
    }
}

impl std::error::Error for PortUnreachable {}

/// See [`PortUnreachable`].
pub(crate) fn port_unreachable() -> io::Error {
    io::Error::new(io::ErrorKind::ConnectionReset, PortUnreachable)
}

fn row(e: &io::Error) -> Option<(u32, u32)> {
    if e.get_ref().is_some_and(|i| i.is::<PortUnreachable>()) {
        return Some((10054, PORT_UNREACHABLE));
    }
    if let Some(errno) = e.raw_os_error() {
        return TABLE
            .iter()
            .find(|r| r.0 == errno)
            .map(|&(_, wsa, win32)| (wsa, win32));
    }
    use io::ErrorKind as K;
    let errno = match e.kind() {
        K::InvalidInput => libc::EINVAL,
        K::NotConnected => libc::ENOTCONN,
        K::ConnectionReset => libc::ECONNRESET,
        K::ConnectionAborted => libc::ECONNABORTED,
        K::ConnectionRefused => libc::ECONNREFUSED,
        K::TimedOut => libc::ETIMEDOUT,
        K::Unsupported => libc::EOPNOTSUPP,
        K::OutOfMemory => libc::ENOBUFS,
        K::WouldBlock => libc::EAGAIN,
        K::NotFound => return Some((NOT_FOUND, NOT_FOUND)),
        _ => return None,
    };
    row(&io::Error::from_raw_os_error(errno))
}

/// The Winsock code of `e`, as `WSAGetLastError` (for a start error) or
/// `WSAGetOverlappedResult` (for a completion) would report it:
/// `WSA_OPERATION_ABORTED` (995) for a cancel or a thread exit,
/// `WSAECONNABORTED` (10053) for a TCP receive ended by closing its socket
/// (or a reset that answered a send after the peer's graceful close),
/// `WSAECONNRESET` (10054) for a peer reset, `WSAESHUTDOWN` (10058),
/// `WSAENOTCONN` (10057), ... `None` for an error Winsock has no code for.
/// [`Completion::wsa_error`](crate::Completion::wsa_error) adds
/// `WSAEMSGSIZE` for a truncated datagram.
///
/// # Examples
/// ```
/// let e = std::io::Error::from_raw_os_error(libc::ECONNRESET);
/// assert_eq!(overlapped::wsa_error(&e), Some(10054));
/// assert_eq!(overlapped::win32_error(&e), Some(64));
/// assert_eq!(overlapped::wsa_error(&overlapped::aborted_error()), Some(995));
/// ```
#[doc(alias = "WSAGetLastError")]
pub fn wsa_error(e: &io::Error) -> Option<u32> {
    row(e).map(|r| r.0)
}

/// The Win32 code of `e`, as `GetQueuedCompletionStatus` or
/// `GetOverlappedResult` would report it for a completion:
/// `ERROR_OPERATION_ABORTED` (995) for a cancel or a thread exit,
/// `ERROR_CONNECTION_ABORTED` (1236) for a TCP receive ended by closing its
/// socket, `ERROR_NETNAME_DELETED` (64) for a peer reset, ... For errors
/// that only a call returns, the Winsock code (see the module table).
/// `None` for an error Windows has no code for.
/// [`Completion::win32_error`](crate::Completion::win32_error) adds
/// `ERROR_MORE_DATA` (234) for a truncated datagram.
#[doc(alias = "GetLastError")]
pub fn win32_error(e: &io::Error) -> Option<u32> {
    row(e).map(|r| r.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_errno() {
        let mut seen = std::collections::HashSet::new();
        for r in TABLE {
            assert!(seen.insert(r.0), "errno {} twice", r.0);
        }
    }

    #[test]
    fn kinds_without_errno() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "empty buffer array");
        assert_eq!((wsa_error(&e), win32_error(&e)), (Some(10022), Some(87)));
        let e = io::Error::other("something else");
        assert_eq!(wsa_error(&e), None);
    }

    #[test]
    fn port_unreachable_is_a_reset() {
        let e = port_unreachable();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!((wsa_error(&e), win32_error(&e)), (Some(10054), Some(1234)));
    }
}
