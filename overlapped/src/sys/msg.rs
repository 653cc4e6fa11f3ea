//! Message operations' raw calls (`WSASendMsg`, the packet-information
//! options): neither `rustix` nor `socket2` sends arbitrary control data
//! or sets `IP_PKTINFO`, hence the raw calls here. (`WSARecvMsg`'s receive
//! is [`tcp::recv_msg`](super::tcp::recv_msg), which every receive uses.)

#![allow(unsafe_code)]

use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use rustix::net::SendFlags;

use super::tcp::iovecs;
use crate::buf::RawBufs;

/// `sendmsg(2)` of a send's buffers past their first `skip` bytes, maybe to
/// `to`, with the control bytes `control` (start, length) of the buffers'
/// [`RawBufs::control`]: the bytes sent.
pub(crate) fn send_msg(
    fd: BorrowedFd<'_>,
    bufs: &mut dyn RawBufs,
    skip: usize,
    to: Option<&SocketAddr>,
    control: (*mut u8, usize),
    flags: SendFlags,
) -> rustix::io::Result<usize> {
    let mut iov = Vec::new();
    iovecs(bufs, skip, &mut iov);
    let sa = to.map(|a| socket2::SockAddr::from(*a));
    // SAFETY: all-zero bytes are a valid (empty) `msghdr`.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = iov.len() as _;
    if let Some(sa) = &sa {
        msg.msg_name = sa.as_ptr().cast_mut().cast();
        msg.msg_namelen = sa.len();
    }
    msg.msg_control = control.0.cast();
    msg.msg_controllen = control.1 as _;
    // `msg` points at the send's windows (`RawBufs::each_part`: readable
    // for their lengths while the engine holds the buffers), at the control
    // bytes (`RawBufs::control`: readable for their length, likewise) and
    // at `sa` (a socket address of `msg_namelen` bytes); the kernel only
    // reads through them.
    // SAFETY: all of it is alive until the call returns.
    let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &msg, flags.bits() as libc::c_int) };
    if n < 0 {
        return Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    Ok(n as usize)
}

/// One `int` socket option.
fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    on: bool,
) -> std::io::Result<()> {
    let v: libc::c_int = on.into();
    // The kernel only reads `v`, for the length given (its size).
    // SAFETY: `v` is a live `c_int` for the whole call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const v).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Packet information with every received datagram: `IP_PKTINFO` on an
/// IPv4 socket; `IPV6_RECVPKTINFO` on an IPv6 one and, unless it is
/// IPv6-only, `IP_PKTINFO` too (its IPv4 datagrams).
pub(crate) fn set_pktinfo(fd: BorrowedFd<'_>, on: bool) -> std::io::Result<()> {
    let s = socket2::SockRef::from(&fd);
    if s.domain()? == socket2::Domain::IPV6 {
        set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, on)?;
        if !s.only_v6()? {
            set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, on)?;
        }
        return Ok(());
    }
    set_int(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, on)
}
