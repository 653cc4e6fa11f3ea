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
    }
}

/// The error every cancelled or aborted operation completes with
/// (`ECANCELED`; Winsock's `WSA_OPERATION_ABORTED`, 995).
pub fn aborted_error() -> io::Error {
    io::Error::from_raw_os_error(libc::ECANCELED)
}

/// True for the *aborted* completion of a cancelled operation, a closed
/// socket, or an exited thread.
pub fn is_aborted(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::ECANCELED)
}
