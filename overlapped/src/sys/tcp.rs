//! `TCP_INQ`: a stream receive learns how many bytes are left behind it,
//! from the same `recvmsg(2)`.
//!
//! The engine takes an urgent byte out of the kernel before a normal
//! receive reads past it (Linux drops it then; SPEC k05). A receive that
//! took bytes may have stopped at the urgent mark only if bytes are left:
//! with `TCP_INQ` the receive says so itself, and the engine looks for the
//! urgent byte (one more system call) only then — not after every receive
//! of a request/response exchange. Neither `rustix` nor `socket2` has the
//! option or its control message, hence the raw calls here.

#![allow(unsafe_code)]

use std::io::IoSliceMut;
use std::mem;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::net::RecvFlags;

/// Turns `TCP_INQ` on for a TCP socket (a listener's accepted sockets
/// inherit it). Failure is ignored: receives then report nothing, and the
/// engine looks for urgent data after each receive that took bytes.
pub(crate) fn enable_inq(fd: BorrowedFd<'_>) {
    let on: libc::c_int = 1;
    // The kernel only reads `on`, for the length given (its size).
    // SAFETY: `on` is a live `c_int` for the whole call.
    let _ = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_INQ,
            (&raw const on).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

/// Control-message room for one `TCP_CM_INQ` (an `int`), aligned for
/// `cmsghdr`.
#[repr(C)]
struct Control {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; 32],
}

/// `recvmsg(2)` into `slices` on a TCP socket: the bytes received and, when
/// the socket has `TCP_INQ` on, the bytes left in it after this receive.
pub(crate) fn recv_inq(
    fd: BorrowedFd<'_>,
    slices: &mut [IoSliceMut<'_>],
    flags: RecvFlags,
) -> rustix::io::Result<(usize, Option<u32>)> {
    let mut control = Control {
        _align: [],
        bytes: [0; 32],
    };
    // SAFETY: all-zero bytes are a valid (empty) `msghdr`.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // `IoSliceMut` is ABI-compatible with `iovec` on Unix (std guarantees
    // it); the slices stay borrowed, hence valid, for the call.
    msg.msg_iov = slices.as_mut_ptr().cast();
    msg.msg_iovlen = slices.len() as _;
    msg.msg_control = control.bytes.as_mut_ptr().cast();
    msg.msg_controllen = control.bytes.len() as _;
    // `msg` points at the caller's buffers (writable, their lengths in the
    // iovecs) and at `control` (writable, its length given).
    // SAFETY: all of it is alive until the call returns; the kernel writes within those bounds.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags.bits() as libc::c_int) };
    if n < 0 {
        return Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    let mut inq = None;
    // `msg` was filled by the kernel: `msg_control` points at `control` and
    // `msg_controllen` says how much of it holds control messages.
    // SAFETY: CMSG_* walk within that length; a `TCP_CM_INQ`'s data is one `int`, read unaligned.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_TCP && (*c).cmsg_type == libc::TCP_CM_INQ {
                let v = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::c_int>());
                inq = Some(v.max(0) as u32);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok((n as usize, inq))
}
