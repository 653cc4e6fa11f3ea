//! Error codes: the thread's last error (`WSAGetLastError` and
//! `GetLastError` are one value, as on Windows), and the `NTSTATUS` an
//! operation's `OVERLAPPED.Internal` holds, which carries both the
//! Winsock code (`WSAGetOverlappedResult`, completion routines) and the
//! Win32 code (`GetQueuedCompletionStatus`, `GetOverlappedResult`).

use std::cell::Cell;
use std::io;

thread_local! {
    static LAST: Cell<u32> = const { Cell::new(0) };
}

/// Sets the calling thread's last error.
pub fn set_last(code: u32) {
    LAST.with(|l| l.set(code));
}

/// The calling thread's last error.
pub fn last() -> u32 {
    LAST.with(|l| l.get())
}

/// `WSA_IO_PENDING` / `ERROR_IO_PENDING`.
pub const WSA_IO_PENDING: u32 = 997;
/// `WSA_IO_INCOMPLETE` / `ERROR_IO_INCOMPLETE`.
pub const WSA_IO_INCOMPLETE: u32 = 996;
/// `WSA_INVALID_HANDLE` / `ERROR_INVALID_HANDLE`.
pub const ERROR_INVALID_HANDLE: u32 = 6;
/// `WSA_INVALID_PARAMETER` / `ERROR_INVALID_PARAMETER`.
pub const ERROR_INVALID_PARAMETER: u32 = 87;
/// `ERROR_NOT_SUPPORTED`.
pub const ERROR_NOT_SUPPORTED: u32 = 50;
/// `ERROR_NOT_FOUND`.
pub const ERROR_NOT_FOUND: u32 = 1168;
/// `ERROR_ABANDONED_WAIT_0`: the port was closed under the wait.
pub const ERROR_ABANDONED_WAIT_0: u32 = 735;
/// `WSAEINTR`.
pub const WSAEINTR: u32 = 10004;
/// `WSAEFAULT`.
pub const WSAEFAULT: u32 = 10014;
/// `WSAEINVAL`.
pub const WSAEINVAL: u32 = 10022;
/// `WSAEWOULDBLOCK`.
pub const WSAEWOULDBLOCK: u32 = 10035;
/// `WSAENOTSOCK`.
pub const WSAENOTSOCK: u32 = 10038;
/// `WSAENOPROTOOPT`.
pub const WSAENOPROTOOPT: u32 = 10042;
/// `WSAEOPNOTSUPP`.
pub const WSAEOPNOTSUPP: u32 = 10045;
/// `WSAEAFNOSUPPORT`.
pub const WSAEAFNOSUPPORT: u32 = 10047;
/// `WSAETIMEDOUT`.
pub const WSAETIMEDOUT: u32 = 10060;
/// `WSASYSNOTREADY`.
pub const WSASYSNOTREADY: u32 = 10091;
/// `WSAVERNOTSUPPORTED`.
pub const WSAVERNOTSUPPORTED: u32 = 10092;
/// `WSANOTINITIALISED`.
pub const WSANOTINITIALISED: u32 = 10093;
/// `WSASYSCALLFAILURE`: an error Winsock has no code for.
pub const WSASYSCALLFAILURE: u32 = 10107;

/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: u32 = 0;
/// `STATUS_PENDING`: what `Internal` holds while the operation is in
/// flight (`HasOverlappedIoCompleted` tests it).
pub const STATUS_PENDING: u32 = 0x103;

/// `NTSTATUS`, Winsock code, Win32 code: the completions Windows reports,
/// one row per pair of codes the library maps errors to
/// (`overlapped::wsa_error`, `overlapped::win32_error`).
const STATUS: &[(u32, u32, u32)] = &[
    (0xC000_0120, 995, 995),    // STATUS_CANCELLED
    (0xC000_0241, 10053, 1236), // STATUS_CONNECTION_ABORTED
    (0xC000_020D, 10054, 64),   // STATUS_CONNECTION_RESET
    (0xC000_023F, 10054, 1234), // STATUS_PORT_UNREACHABLE
    (0xC000_0140, 10057, 1229), // STATUS_INVALID_CONNECTION
    (0xC000_00B0, 10058, 233),  // STATUS_PIPE_DISCONNECTED
    (0xC000_023B, 10056, 1230), // STATUS_CONNECTION_ACTIVE
    (0xC000_0236, 10061, 1225), // STATUS_CONNECTION_REFUSED
    (0xC000_00B5, 10060, 121),  // STATUS_IO_TIMEOUT
    (0xC000_023C, 10051, 1231), // STATUS_NETWORK_UNREACHABLE
    (0xC000_023D, 10065, 1232), // STATUS_HOST_UNREACHABLE
    (0xC000_000D, 10022, 87),   // STATUS_INVALID_PARAMETER
    (0xC000_00BB, 10045, 50),   // STATUS_NOT_SUPPORTED
    (0xC000_0008, 10038, 6),    // STATUS_INVALID_HANDLE
    (0xC000_009A, 10055, 1450), // STATUS_INSUFFICIENT_RESOURCES
    (0xC000_0022, 10013, 5),    // STATUS_ACCESS_DENIED
    (0xC000_0005, 10014, 998),  // STATUS_ACCESS_VIOLATION
    (0xC000_020A, 10048, 52),   // STATUS_ADDRESS_ALREADY_EXISTS
    (0xC000_0207, 10049, 1214), // STATUS_INVALID_ADDRESS_COMPONENT
    (0x8000_0005, 10040, 234),  // STATUS_BUFFER_OVERFLOW (truncated datagram)
    (0xC000_0011, 38, 38),      // STATUS_END_OF_FILE (a file read at its end)
];

/// A code with no row of its own travels as a customer `NTSTATUS` whose
/// low 16 bits are the Winsock code (the Win32 code is then the same, the
/// library's rule for such errors).
const CUSTOMER: u32 = 0xE000_0000;

/// The `NTSTATUS` of a completion with these codes (`None`: success).
pub fn status_of(codes: Option<(u32, u32)>) -> u32 {
    match codes {
        None => STATUS_SUCCESS,
        Some((wsa, win32)) => STATUS
            .iter()
            .find(|r| r.1 == wsa && r.2 == win32)
            .or_else(|| STATUS.iter().find(|r| r.1 == wsa))
            .map_or(CUSTOMER | (wsa & 0xFFFF), |r| r.0),
    }
}

/// The Winsock and Win32 codes of an `NTSTATUS` (`None`: success).
pub fn codes_of(status: u32) -> Option<(u32, u32)> {
    if status == STATUS_SUCCESS {
        return None;
    }
    if status & 0xFFFF_0000 == CUSTOMER {
        let wsa = status & 0xFFFF;
        return Some((wsa, wsa));
    }
    Some(
        STATUS
            .iter()
            .find(|r| r.0 == status)
            .map_or((WSASYSCALLFAILURE, WSASYSCALLFAILURE), |r| (r.1, r.2)),
    )
}

/// The Winsock code of an error a call failed with.
pub fn wsa_code(e: &io::Error) -> u32 {
    overlapped::wsa_error(e).unwrap_or(WSASYSCALLFAILURE)
}

/// The Winsock and Win32 codes of an operation's error.
pub fn both_codes(e: &io::Error) -> (u32, u32) {
    let wsa = wsa_code(e);
    (wsa, overlapped::win32_error(e).unwrap_or(wsa))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pair_round_trips_through_its_status() {
        for &(status, wsa, win32) in STATUS {
            assert_eq!(status_of(Some((wsa, win32))), status);
            assert_eq!(codes_of(status), Some((wsa, win32)));
        }
        assert_eq!(codes_of(status_of(None)), None);
        // A code without a row of its own keeps its number.
        let s = status_of(Some((10035, 10035)));
        assert_eq!(codes_of(s), Some((10035, 10035)));
    }

    #[test]
    fn library_errors_map_to_windows_statuses() {
        let reset = io::Error::from_raw_os_error(libc::ECONNRESET);
        assert_eq!(status_of(Some(both_codes(&reset))), 0xC000_020D);
        let aborted = overlapped::aborted_error();
        assert_eq!(
            codes_of(status_of(Some(both_codes(&aborted)))),
            Some((995, 995))
        );
        let closed = overlapped::closed_error();
        assert_eq!(status_of(Some(both_codes(&closed))), 0xC000_0241);
        // A read at the end of a file: ERROR_HANDLE_EOF, as Windows.
        assert_eq!(status_of(Some((38, 38))), 0xC000_0011);
    }
}
