//! Per-call flags (`MsgFlags`, `RecvFlags`) and the *aborted* error: a leaf
//! module every other module may import.

use std::fmt;
use std::io;
use std::ops::{BitOr, BitOrAssign};

macro_rules! flag_type {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $flag:ident = $v:expr;)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub struct $name(u32);
        impl $name {
            $($(#[$fm])* pub const $flag: $name = $name($v);)*
            /// No flags.
            pub const fn empty() -> Self { $name(0) }
            /// True when every flag of `other` is set here.
            pub const fn contains(self, other: Self) -> bool { self.0 & other.0 == other.0 }
            /// True when no flag is set.
            pub const fn is_empty(self) -> bool { self.0 == 0 }
            /// The raw bits.
            pub const fn bits(self) -> u32 { self.0 }
        }
        impl BitOr for $name {
            type Output = $name;
            fn bitor(self, o: $name) -> $name { $name(self.0 | o.0) }
        }
        impl BitOrAssign for $name {
            fn bitor_assign(&mut self, o: $name) { self.0 |= o.0 }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut names = Vec::new();
                $(if self.contains($name::$flag) && $v != 0 { names.push(stringify!($flag)); })*
                write!(f, "{}({})", stringify!($name), if names.is_empty() { "empty".to_string() } else { names.join(" | ") })
            }
        }
    };
}

flag_type! {
    /// Per-call flags of a send or receive (`dwFlags` / `lpFlags` in).
    MsgFlags {
        /// `MSG_OOB`: urgent data. On a send the **last** byte is sent urgent
        /// (TCP semantics); a receive reads the one urgent byte and, if none
        /// has arrived yet, stays pending until one does.
        OOB = 0x1;
        /// `MSG_PEEK`: receive without consuming. (Winsock documents it for
        /// non-overlapped receives only; ours is an extension.)
        PEEK = 0x2;
        /// `MSG_DONTROUTE`: bypass routing (may be ignored by the system).
        DONTROUTE = 0x4;
        /// `MSG_WAITALL` (receives): complete only when every buffer is
        /// full, or with the bytes that arrived when the stream ends, is
        /// reset or the operation is aborted (the count says how many). A
        /// stream receive of the normal channel only: with `OOB` or `PEEK`,
        /// or on a datagram socket, the start fails with `EOPNOTSUPP`
        /// (`WSAEOPNOTSUPP`). Sends ignore it (a stream send always
        /// completes whole).
        WAITALL = 0x8;
    }
}

flag_type! {
    /// Flags a receive reports (`lpFlags` out).
    RecvFlags {
        /// The byte came from the urgent (out-of-band) channel.
        OOB = 0x1;
        /// The datagram was larger than the buffers; the rest was discarded
        /// (Winsock reports `WSAEMSGSIZE`, Linux `MSG_TRUNC`).
        TRUNCATED = 0x2;
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
/// code each is).
pub fn is_aborted(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ECANCELED | libc::ECONNABORTED))
}
