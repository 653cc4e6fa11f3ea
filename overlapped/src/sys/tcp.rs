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
//!
//! Every user-space receive goes through [`recv_msg`]: a receive's room may
//! be uninitialized memory (`bytes::BytesMut`'s spare capacity, a program's
//! own buffer), which only raw iovecs may point at.

#![allow(unsafe_code)]

use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::net::RecvFlags;

use crate::buf::RawBufs;

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

/// Makes descriptor `target` name the socket of `with` (`dup3`): the
/// socket `target` named before is closed, `with`'s number is closed, and
/// `target` keeps its number (close-on-exec). How a connection goes into a
/// caller-made socket (`AcceptEx` into a socket, SPEC x02) and a reused
/// socket gets a fresh one (`DisconnectEx` with reuse, SPEC x04): Linux has
/// no call that accepts or reconnects into an existing descriptor. Options
/// set on the socket `target` named before are not carried over.
pub(crate) fn replace_fd(
    target: BorrowedFd<'_>,
    with: std::os::fd::OwnedFd,
) -> std::io::Result<()> {
    // Both descriptors are open for the whole call: `with` is owned here
    // and `target` is borrowed from its owner, so the call replaces only
    // what the caller owns.
    // SAFETY: `dup3` takes two open descriptor numbers and touches no memory.
    let r = unsafe { libc::dup3(with.as_raw_fd(), target.as_raw_fd(), libc::O_CLOEXEC) };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    drop(with);
    Ok(())
}

/// Control-message room for one `TCP_CM_INQ` (an `int`), aligned for
/// `cmsghdr`.
#[repr(C)]
struct Control {
    _align: [libc::cmsghdr; 0],
    bytes: [u8; 32],
}

/// What one receive reported.
pub(crate) struct Received {
    pub(crate) bytes: usize,
    /// With `TCP_INQ` on (a TCP socket): the bytes left in it after this
    /// receive.
    pub(crate) inq: Option<u32>,
    /// `MSG_TRUNC`: a datagram was longer than the room.
    pub(crate) truncated: bool,
    /// `MSG_CTRUNC`: the control messages did not fit the buffers' control
    /// room (a message operation's, [`RawBufs::control`]).
    pub(crate) ctrunc: bool,
    /// The sender, when asked for (`want_addr`).
    pub(crate) addr: Option<SocketAddr>,
}

/// The iovecs over the windows of `bufs` past their first `skip` bytes (a
/// stream operation's progress); the windows' total length. Zero-length
/// windows stay (a zero-byte receive is a readiness probe).
pub(crate) fn iovecs(bufs: &mut dyn RawBufs, skip: usize, out: &mut Vec<libc::iovec>) -> usize {
    each_iovec(bufs, skip, &mut |v| out.push(v))
}

/// [`iovecs`], each handed to `out`.
pub(crate) fn each_iovec(
    bufs: &mut dyn RawBufs,
    mut skip: usize,
    out: &mut dyn FnMut(libc::iovec),
) -> usize {
    let mut total = 0;
    bufs.each_part(&mut |ptr, len| {
        total += len;
        if skip >= len && len > 0 {
            skip -= len;
            return;
        }
        let here = skip.min(len);
        skip -= here;
        out(libc::iovec {
            iov_base: ptr.wrapping_add(here).cast(),
            iov_len: len - here,
        });
    });
    total
}

/// Receives of at most this many buffers build their iovecs on the stack.
const STACK_IOVECS: usize = 4;

/// `recvmsg(2)` into the room of a receive's buffers past their first
/// `skip` bytes, through raw iovecs (the room may be uninitialized, so no
/// reference to it is made): the bytes received and, when the socket has
/// `TCP_INQ` on, the bytes left in it after this receive. A message
/// operation's control room ([`RawBufs::control`]) takes the control
/// messages instead (recorded with [`RawBufs::set_control`]; no `TCP_INQ`
/// then).
pub(crate) fn recv_msg(
    fd: BorrowedFd<'_>,
    bufs: &mut dyn RawBufs,
    skip: usize,
    flags: RecvFlags,
    want_addr: bool,
) -> rustix::io::Result<Received> {
    // A message operation's control room (taken before the iovecs, which
    // then stay the last pointers derived from the buffers).
    let user_control = bufs.control();
    // The iovecs: on the stack for a few buffers (no allocation per
    // receive), else in a vector.
    let empty = libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    };
    let mut small = [empty; STACK_IOVECS];
    let mut n = 0;
    let mut fits = bufs.buf_count() <= STACK_IOVECS;
    if fits {
        each_iovec(bufs, skip, &mut |v| match small.get_mut(n) {
            Some(slot) => {
                *slot = v;
                n += 1;
            }
            None => fits = false,
        });
    }
    let mut big = Vec::new();
    let iov: &mut [libc::iovec] = if fits {
        &mut small[..n]
    } else {
        iovecs(bufs, skip, &mut big);
        &mut big
    };
    let mut control = Control {
        _align: [],
        bytes: [0; 32],
    };
    // SAFETY: all-zero bytes are a valid (empty) `sockaddr_storage`.
    let mut addr: libc::sockaddr_storage = unsafe { mem::zeroed() };
    // SAFETY: all-zero bytes are a valid (empty) `msghdr`.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    let (cptr, clen) = user_control.unwrap_or((control.bytes.as_mut_ptr(), control.bytes.len()));
    msg.msg_control = cptr.cast();
    msg.msg_controllen = clen as _;
    if want_addr {
        msg.msg_name = (&raw mut addr).cast();
        msg.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    }
    // `msg` points at the rooms of the receive's buffers (writable, their
    // lengths in the iovecs: `RawBufs::each_part` gives the rooms the
    // engine holds, valid until it hands the buffers back; the control room
    // of `RawBufs::control` likewise), or at `control`, and at `addr`
    // (writable, their lengths given).
    // SAFETY: all of it is alive until the call returns; the kernel writes within those bounds.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, flags.bits() as libc::c_int) };
    if n < 0 {
        return Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    let mut inq = None;
    if user_control.is_some() {
        // The kernel wrote `msg_controllen` bytes at the start of the room
        // `RawBufs::control` gave.
        // SAFETY: as `set_control` requires.
        unsafe { bufs.set_control(msg.msg_controllen as _) };
        msg.msg_controllen = 0;
    }
    // `msg` was filled by the kernel: `msg_control` points at `control` and
    // `msg_controllen` says how much of it holds control messages (0 for a
    // message operation's room, which the walk leaves to its owner).
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
    Ok(Received {
        bytes: n as usize,
        inq,
        truncated: msg.msg_flags & libc::MSG_TRUNC != 0,
        ctrunc: user_control.is_some() && msg.msg_flags & libc::MSG_CTRUNC != 0,
        addr: (want_addr && msg.msg_namelen > 0)
            .then(|| sockaddr_of(&addr, msg.msg_namelen))
            .flatten(),
    })
}

/// The socket address the kernel wrote into `storage` (`len` bytes).
pub(crate) fn sockaddr_of(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let mut s = socket2::SockAddrStorage::zeroed();
    // SAFETY: `view_as` asks for one of the platform's address types, as this is.
    unsafe { *s.view_as::<libc::sockaddr_storage>() = *storage };
    let len = len.min(mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t);
    // `len` is at most the storage's size.
    // SAFETY: the kernel wrote a socket address of `len` bytes at its start.
    unsafe { socket2::SockAddr::new(s, len) }.as_socket()
}
