//! The non-blocking attempt of every operation, shared by both engines:
//! the start of every operation tries it first (the *completed now* of the
//! model), the poll engine repeats it on readiness, and io_uring runs it
//! when a readiness poll fires (urgent receives, connects).

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::BorrowedFd;

use rustix::net::{RecvFlags as RxFlags, SendFlags as TxFlags, SocketFlags};

use super::{Attempt, OpKind, Outcome, tcp};
use crate::buf::RawBufs;
use crate::flags::{MsgFlags, RecvFlags};

fn would_block(e: &rustix::io::Errno) -> bool {
    *e == rustix::io::Errno::AGAIN || *e == rustix::io::Errno::INPROGRESS
}

pub(crate) fn to_io(e: rustix::io::Errno) -> io::Error {
    io::Error::from_raw_os_error(e.raw_os_error())
}

fn tx_flags(flags: MsgFlags) -> TxFlags {
    let mut f = TxFlags::NOSIGNAL | TxFlags::DONTWAIT;
    if flags.contains(MsgFlags::OOB) {
        f |= TxFlags::OOB;
    }
    if flags.contains(MsgFlags::DONTROUTE) {
        f |= TxFlags::DONTROUTE;
    }
    f
}

/// A plain non-blocking stream send of `data` (no operation behind it):
/// what the socket took, or the error (`WouldBlock` when it took nothing).
#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub(crate) fn send_plain(fd: BorrowedFd<'_>, data: &[u8]) -> io::Result<usize> {
    rustix::net::send(fd, data, tx_flags(MsgFlags::empty())).map_err(to_io)
}

fn rx_flags(flags: MsgFlags) -> RxFlags {
    let mut f = RxFlags::DONTWAIT;
    if flags.contains(MsgFlags::OOB) {
        f |= RxFlags::OOB;
    }
    if flags.contains(MsgFlags::PEEK) {
        f |= RxFlags::PEEK;
    }
    f
}

/// The non-blocking attempt of an operation, shared by both engines.
///
/// `done` carries a stream send's (and a `WAITALL` receive's) progress
/// across attempts (and across the handover to the kernel on io_uring): such
/// an operation completes only when every byte is moved, or with an error
/// (or the end of the stream) that reports the bytes moved. `urgent` is the
/// socket's held urgent byte, which an `OOB` receive takes first.
pub(crate) fn attempt(
    fd: BorrowedFd<'_>,
    kind: &mut OpKind,
    bufs: Option<&mut dyn RawBufs>,
    done: &mut usize,
    stream: bool,
    urgent: &mut Option<u8>,
) -> Attempt {
    match kind {
        OpKind::Send { flags, to } => {
            let bufs = bufs.expect("send carries buffers");
            if let Some(control) = bufs.control() {
                return send_with_control(fd, bufs, control, *flags, *to, done, stream);
            }
            send(fd, bufs, *flags, *to, done, stream)
        }
        OpKind::Recv { flags, want_addr } => {
            let bufs = bufs.expect("receive carries buffers");
            recv(fd, bufs, *flags, *want_addr, done, stream, urgent)
        }
        OpKind::Accept => accept(fd),
        OpKind::AcceptEx(a) => super::ext::accept_ex(fd, a, bufs),
        OpKind::Connect {
            addr,
            started,
            sending,
        } => {
            if !*sending {
                match connect(fd, addr, started) {
                    // Connected: its data goes next (SPEC x03).
                    Attempt::Done(out) if out.error.is_none() && bufs.is_some() => {
                        *sending = true;
                    }
                    other => return other,
                }
            }
            let bufs = bufs.expect("checked above");
            send(fd, bufs, MsgFlags::empty(), None, done, true)
        }
        OpKind::Disconnect { .. } => super::ext::disconnect(fd),
        OpKind::Transmit(t) => super::ext::transmit(fd, t, bufs, done),
        // Never tried at start, nor on readiness (the core parks file
        // operations at once); here for completeness, as the pool runs it.
        OpKind::FileRead { offset } => file(fd, true, *offset, stream, bufs, done),
        OpKind::FileWrite { offset } => file(fd, false, *offset, stream, bufs, done),
    }
}

/// `ReadFile` / `WriteFile` at an offset (see [`file_io`](super::pool::file_io)).
fn file(
    fd: BorrowedFd<'_>,
    read: bool,
    offset: u64,
    stream: bool,
    bufs: Option<&mut dyn RawBufs>,
    done: &mut usize,
) -> Attempt {
    let bufs = bufs.expect("a file operation carries buffers");
    match super::pool::file_io(fd, read, offset, stream, bufs, done) {
        Some(out) => Attempt::Done(out),
        None => Attempt::WouldBlock,
    }
}

/// `WSASend` / `WSASendTo`: a stream send goes on until every byte is
/// taken (or fails reporting the bytes taken); a datagram send is one call.
fn send(
    fd: BorrowedFd<'_>,
    bufs: &dyn RawBufs,
    flags: MsgFlags,
    to: Option<SocketAddr>,
    done: &mut usize,
    stream: bool,
) -> Attempt {
    if let (false, Some(addr)) = (stream, &to) {
        if addr.port() == 0 {
            // Windows sends nothing and succeeds (Linux: EINVAL).
            return Attempt::Done(Outcome::ok(bufs.total_len().unwrap_or(0)));
        }
    }
    let mut s = Sending {
        fd,
        flags: tx_flags(flags),
        stream,
        refused: 0,
    };
    match (&to, bufs.one()) {
        // One buffer, no address: plain send(2), no iovec array.
        (None, Some(b)) => s.one(b, done),
        _ => s.gather(bufs, to.as_ref(), done),
    }
}

/// `WSASendMsg` with control data: as [`send`], through
/// [`msg::send_msg`](super::msg::send_msg).
fn send_with_control(
    fd: BorrowedFd<'_>,
    bufs: &mut dyn RawBufs,
    control: (*mut u8, usize),
    flags: MsgFlags,
    to: Option<SocketAddr>,
    done: &mut usize,
    stream: bool,
) -> Attempt {
    if let (false, Some(addr)) = (stream, &to) {
        if addr.port() == 0 {
            // As `send`: Windows sends nothing and succeeds.
            return Attempt::Done(Outcome::ok(bufs.total_len().unwrap_or(0)));
        }
    }
    let total = bufs.total_len().unwrap_or(0);
    let mut s = Sending {
        fd,
        flags: tx_flags(flags),
        stream,
        refused: 0,
    };
    loop {
        match super::msg::send_msg(fd, bufs, *done, to.as_ref(), control, s.flags) {
            Ok(n) => {
                *done += n;
                if !stream || *done >= total || n == 0 {
                    return Attempt::Done(Outcome::ok(*done));
                }
            }
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) if would_block(&e) => return Attempt::WouldBlock,
            Err(e) if s.refused_again(&e) => {}
            Err(e) if !stream && e == rustix::io::Errno::CONNREFUSED => {
                return Attempt::Done(Outcome::ok(total));
            }
            Err(e) => return Attempt::Done(Outcome::err(to_io(e), *done)),
        }
    }
}

/// One send attempt: the socket, its flags, and how often it met the
/// refusal of an earlier datagram.
struct Sending<'fd> {
    fd: BorrowedFd<'fd>,
    flags: TxFlags,
    stream: bool,
    refused: u32,
}

impl Sending<'_> {
    /// A connected datagram socket keeps sending after an ICMP
    /// port-unreachable (Linux fails the next send with `ECONNREFUSED`,
    /// consuming the error; the send is retried, a few times at most).
    fn refused_again(&mut self, e: &rustix::io::Errno) -> bool {
        if self.stream || *e != rustix::io::Errno::CONNREFUSED || self.refused >= 4 {
            return false;
        }
        self.refused += 1;
        let _ = socket2::SockRef::from(&self.fd).take_error();
        true
    }

    /// The send of one buffer `b` past its first `*done` bytes.
    fn one(&mut self, b: &[u8], done: &mut usize) -> Attempt {
        loop {
            match rustix::net::send(self.fd, &b[*done..], self.flags) {
                Ok(n) => {
                    *done += n;
                    if !self.stream || *done >= b.len() || n == 0 {
                        return Attempt::Done(Outcome::ok(*done));
                    }
                }
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) if would_block(&e) => return Attempt::WouldBlock,
                Err(e) if self.refused_again(&e) => {}
                Err(e) if !self.stream && e == rustix::io::Errno::CONNREFUSED => {
                    return Attempt::Done(Outcome::ok(b.len()));
                }
                Err(e) => return Attempt::Done(Outcome::err(to_io(e), *done)),
            }
        }
    }

    /// The gather send (`sendmsg`, maybe to `to`) of the buffers past their
    /// first `*done` bytes.
    fn gather(&mut self, bufs: &dyn RawBufs, to: Option<&SocketAddr>, done: &mut usize) -> Attempt {
        loop {
            let mut slices = bufs.io_slices();
            let total: usize = slices.iter().map(|s| s.len()).sum();
            IoSlice::advance_slices(&mut slices.as_mut_slice(), *done);
            let mut control = Default::default();
            let r = match to {
                Some(addr) => {
                    rustix::net::sendmsg_addr(self.fd, addr, &slices, &mut control, self.flags)
                }
                None => rustix::net::sendmsg(self.fd, &slices, &mut control, self.flags),
            };
            match r {
                Ok(n) => {
                    *done += n;
                    if !self.stream || *done >= total || n == 0 {
                        return Attempt::Done(Outcome::ok(*done));
                    }
                }
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) if would_block(&e) => return Attempt::WouldBlock,
                Err(e) if self.refused_again(&e) => {}
                Err(e) if !self.stream && e == rustix::io::Errno::CONNREFUSED => {
                    return Attempt::Done(Outcome::ok(total));
                }
                Err(e) => return Attempt::Done(Outcome::err(to_io(e), *done)),
            }
        }
    }
}

/// `WSARecv` / `WSARecvFrom`: an `OOB` receive takes the held urgent byte
/// first; a `WAITALL` receive goes on until its room is full (or the stream
/// ends or fails, reporting the bytes taken).
#[allow(unsafe_code)] // `RawBufs::set_received`'s contract
fn recv(
    fd: BorrowedFd<'_>,
    bufs: &mut dyn RawBufs,
    flags: MsgFlags,
    want_addr: bool,
    done: &mut usize,
    stream: bool,
    urgent: &mut Option<u8>,
) -> Attempt {
    let oob = flags.contains(MsgFlags::OOB);
    if oob {
        if let Some(byte) = urgent.take() {
            return Attempt::Done(serve_urgent(bufs, byte));
        }
    }
    let waitall = flags.contains(MsgFlags::WAITALL);
    let plain = stream && !oob && !flags.contains(MsgFlags::PEEK);
    let rflags = rx_flags(flags);
    let total = bufs.total_len().unwrap_or(0);
    let mut out = Outcome::ok(0);
    loop {
        match recv_once(fd, bufs, *done, want_addr, rflags, plain, &mut out) {
            Ok((n, left)) => {
                *done += n;
                // Bytes left behind a receive that took some: it may have
                // stopped at the urgent mark.
                out.check_urgent |= plain && n > 0 && left;
                out.drained = plain && n > 0 && !left;
                if waitall && n > 0 && *done < total {
                    continue;
                }
                out.bytes = *done;
                if oob {
                    out.flags |= RecvFlags::OOB;
                }
                // With nothing received the core truncates the buffers: a
                // 0-byte end on a reset connection is a start error, which
                // hands them back untouched.
                if *done > 0 {
                    // `recvmsg` wrote `*done` bytes at the start of the room
                    // (this call's and earlier rounds').
                    // SAFETY: so those bytes are written.
                    unsafe { bufs.set_received(*done) };
                }
                return Attempt::Done(out);
            }
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) if would_block(&e) => return Attempt::WouldBlock,
            // Linux's urgent receive never waits: EINVAL means "no urgent
            // byte yet"; the engine waits for priority readiness and tries
            // again.
            Err(e) if oob && e == rustix::io::Errno::INVAL => return Attempt::WouldBlock,
            Err(e) => {
                let mut out = Outcome::err(to_io(e), *done);
                out.check_urgent = plain && *done > 0;
                return Attempt::Done(out);
            }
        }
    }
}

/// `AcceptEx`: a new non-blocking, close-on-exec socket and its peer.
fn accept(fd: BorrowedFd<'_>) -> Attempt {
    loop {
        match rustix::net::acceptfrom_with(fd, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
            Ok((new, addr)) => {
                let mut out = Outcome::ok(0);
                out.addr = addr.and_then(|a| SocketAddr::try_from(a).ok());
                out.fd = Some(new);
                return Attempt::Done(out);
            }
            Err(e) if e == rustix::io::Errno::INTR => {}
            // A connection reset before it was accepted: keep waiting for
            // the next one, as a blocking accept would.
            Err(e) if would_block(&e) || e == rustix::io::Errno::CONNABORTED => {
                return Attempt::WouldBlock;
            }
            Err(e) => return Attempt::Done(Outcome::err(to_io(e), 0)),
        }
    }
}

/// `ConnectEx`: the first attempt runs `connect(2)` (`started` records
/// it), later ones ask the socket whether it connected.
fn connect(fd: BorrowedFd<'_>, addr: &SocketAddr, started: &mut bool) -> Attempt {
    if !*started {
        *started = true;
        return match rustix::net::connect(fd, addr) {
            Ok(()) => Attempt::Done(Outcome::ok(0)),
            Err(e) if would_block(&e) || e == rustix::io::Errno::INTR => Attempt::WouldBlock,
            Err(e) => Attempt::Done(Outcome::err(to_io(e), 0)),
        };
    }
    let sock = socket2::SockRef::from(&fd);
    match sock.take_error() {
        Ok(Some(e)) => Attempt::Done(Outcome::err(e, 0)),
        Err(e) => Attempt::Done(Outcome::err(e, 0)),
        Ok(None) => match rustix::net::getpeername(fd) {
            Ok(_) => Attempt::Done(Outcome::ok(0)),
            Err(e) if e == rustix::io::Errno::NOTCONN => Attempt::WouldBlock,
            Err(e) => Attempt::Done(Outcome::err(to_io(e), 0)),
        },
    }
}

/// One receive into the buffers past their first `skip` bytes: the bytes
/// received, and whether bytes may be left in the socket (known for a
/// `plain` stream receive on a socket with `TCP_INQ`, else assumed). The
/// truncation flag and the sender's address go to `out`.
fn recv_once(
    fd: BorrowedFd<'_>,
    bufs: &mut dyn RawBufs,
    skip: usize,
    want_addr: bool,
    rflags: RxFlags,
    plain: bool,
    out: &mut Outcome,
) -> rustix::io::Result<(usize, bool)> {
    let r = tcp::recv_msg(fd, bufs, skip, rflags, want_addr)?;
    if r.truncated {
        out.flags |= RecvFlags::TRUNCATED;
    }
    if r.ctrunc {
        out.flags |= RecvFlags::CTRUNC;
    }
    if want_addr {
        out.addr = r.addr;
    }
    // Only a plain stream receive learns it (`TCP_INQ`); others assume so.
    let left = !plain || want_addr || r.inq.is_none_or(|q| q > 0);
    Ok((r.bytes, left))
}

/// Completes an `OOB` receive with the socket's held urgent byte.
#[allow(unsafe_code)] // `RawBufs::set_received`'s contract
pub(crate) fn serve_urgent(bufs: &mut dyn RawBufs, byte: u8) -> Outcome {
    let (n, _) = bufs.copy_in(0, &[byte]);
    // SAFETY: `copy_in` wrote the first `n` bytes.
    unsafe { bufs.set_received(n) };
    let mut out = Outcome::ok(n);
    out.flags |= RecvFlags::OOB;
    out
}

/// Takes the socket's urgent byte out of the kernel, if it holds one (a
/// normal receive that reads past it would drop it).
pub(crate) fn take_urgent(fd: BorrowedFd<'_>) -> Option<u8> {
    let mut b = [0u8; 1];
    match rustix::net::recv(fd, &mut b, RxFlags::OOB | RxFlags::DONTWAIT) {
        Ok((_, 1)) => Some(b[0]),
        _ => None,
    }
}

/// `SO_OOBINLINE` is on: urgent bytes arrive in the stream.
pub(crate) fn oob_inline(fd: BorrowedFd<'_>) -> bool {
    socket2::SockRef::from(&fd)
        .out_of_band_inline()
        .unwrap_or(false)
}
