//! Backends: the only code that talks to the kernel about operations.
//!
//! # The backend contract
//!
//! An engine ([`Backend`]) must provide, for every [`OpKind`]:
//!
//! 1. a **non-blocking attempt** — shared by both engines and defined once
//!    here ([`attempt`]): the start of every operation tries it first (that is
//!    the *completed now* result of the model), and the poll engine repeats
//!    it on readiness;
//! 2. a way to **park** the operation until it can progress: the io_uring
//!    engine hands it to the kernel as an SQE (`uring.rs`, one `match` arm per
//!    kind); the poll engine waits for readiness of the socket (`poll.rs`);
//! 3. **cancel** of a parked operation, **reap** of finished work without
//!    blocking, a **blocking wait** with a timeout, and a **wake** that any
//!    thread may call to end that wait.
//!
//! Both `match`es over [`OpKind`] are exhaustive, so an operation without
//! both halves does not compile. A third engine is one new file and one arm
//! of [`Backend`].

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::net::{RecvFlags as RxFlags, SendFlags as TxFlags, SocketFlags};

use crate::buf::IoBufs;
use crate::op::{MsgFlags, RecvFlags};

pub(crate) mod poll;
pub(crate) mod probe;
pub(crate) mod uring;

/// Which engine drives an [`Engine`](crate::Engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EngineKind {
    /// io_uring: operations run in the kernel, completions are reaped from
    /// the completion queue.
    Uring,
    /// epoll: operations are tried non-blocking and retried on readiness.
    Poll,
}

impl EngineKind {
    /// The engine's short name, as accepted by `OVERLAPPED_ENGINE`.
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Uring => "uring",
            EngineKind::Poll => "poll",
        }
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Direction queues of a socket. At most one operation per direction is
/// parked in the kernel (or waiting for readiness) at a time, which is how
/// posting order becomes filling/sending order on both engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
    Urgent = 2,
}

/// One row per operation.
#[derive(Debug)]
pub(crate) enum OpKind {
    /// `WSASend` / `WSASendTo`: gather send; streams complete only when every
    /// byte is taken.
    Send {
        flags: MsgFlags,
        to: Option<SocketAddr>,
    },
    /// `WSARecv` / `WSARecvFrom`: scatter receive.
    Recv { flags: MsgFlags, want_addr: bool },
    /// `AcceptEx`: a new non-blocking, close-on-exec socket and its peer.
    Accept,
    /// `ConnectEx`: `started` is false until the first `connect(2)` ran.
    Connect { addr: SocketAddr, started: bool },
}

impl OpKind {
    pub(crate) fn dir(&self) -> Dir {
        match self {
            OpKind::Send { .. } | OpKind::Connect { .. } => Dir::Write,
            OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB) => Dir::Urgent,
            OpKind::Recv { .. } | OpKind::Accept => Dir::Read,
        }
    }
}

/// What a finished attempt produced.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) error: Option<io::Error>,
    pub(crate) bytes: usize,
    pub(crate) flags: RecvFlags,
    pub(crate) addr: Option<SocketAddr>,
    pub(crate) fd: Option<OwnedFd>,
}

impl Outcome {
    pub(crate) fn ok(bytes: usize) -> Self {
        Outcome {
            error: None,
            bytes,
            flags: RecvFlags::empty(),
            addr: None,
            fd: None,
        }
    }
    pub(crate) fn err(error: io::Error, bytes: usize) -> Self {
        Outcome {
            error: Some(error),
            ..Outcome::ok(bytes)
        }
    }
    pub(crate) fn aborted(bytes: usize) -> Self {
        Outcome::err(crate::op::aborted_error(), bytes)
    }
}

/// Result of one non-blocking attempt.
#[derive(Debug)]
pub(crate) enum Attempt {
    Done(Outcome),
    WouldBlock,
}

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
/// `done` carries a stream send's progress across attempts (and across the
/// handover to the kernel on io_uring): a stream send completes only when
/// every byte is taken, or with an error that reports the bytes taken.
pub(crate) fn attempt(
    fd: BorrowedFd<'_>,
    kind: &mut OpKind,
    bufs: Option<&mut dyn IoBufs>,
    done: &mut usize,
    stream: bool,
) -> Attempt {
    match kind {
        OpKind::Send { flags, to } => {
            let bufs = bufs.expect("send carries buffers");
            let flags = tx_flags(*flags);
            if let (None, Some(b)) = (&to, bufs.one()) {
                // One buffer, no address: plain send(2), no iovec array.
                loop {
                    match rustix::net::send(fd, &b[*done..], flags) {
                        Ok(n) => {
                            *done += n;
                            if !stream || *done >= b.len() || n == 0 {
                                return Attempt::Done(Outcome::ok(*done));
                            }
                        }
                        Err(e) if e == rustix::io::Errno::INTR => {}
                        Err(e) if would_block(&e) => return Attempt::WouldBlock,
                        Err(e) => return Attempt::Done(Outcome::err(to_io(e), *done)),
                    }
                }
            }
            loop {
                let mut slices = bufs.io_slices();
                let total: usize = slices.iter().map(|s| s.len()).sum();
                IoSlice::advance_slices(&mut slices.as_mut_slice(), *done);
                let mut control = Default::default();
                let r = match to {
                    Some(addr) => rustix::net::sendmsg_addr(fd, addr, &slices, &mut control, flags),
                    None => rustix::net::sendmsg(fd, &slices, &mut control, flags),
                };
                match r {
                    Ok(n) => {
                        *done += n;
                        if !stream || *done >= total || n == 0 {
                            return Attempt::Done(Outcome::ok(*done));
                        }
                    }
                    Err(e) if e == rustix::io::Errno::INTR => {}
                    Err(e) if would_block(&e) => return Attempt::WouldBlock,
                    Err(e) => return Attempt::Done(Outcome::err(to_io(e), *done)),
                }
            }
        }
        OpKind::Recv { flags, want_addr } => {
            let bufs = bufs.expect("receive carries buffers");
            let oob = flags.contains(MsgFlags::OOB);
            let rflags = rx_flags(*flags);
            if let (true, false, Some(b)) = (stream, *want_addr, bufs.one()) {
                // One buffer on a stream: plain recv(2), no msghdr.
                loop {
                    match rustix::net::recv(fd, &mut b[..], rflags) {
                        Ok((_, n)) => {
                            bufs.set_received(n);
                            let mut out = Outcome::ok(n);
                            if oob {
                                out.flags |= RecvFlags::OOB;
                            }
                            return Attempt::Done(out);
                        }
                        Err(e) if e == rustix::io::Errno::INTR => {}
                        Err(e) if would_block(&e) => return Attempt::WouldBlock,
                        Err(e) if oob && e == rustix::io::Errno::INVAL => {
                            return Attempt::WouldBlock;
                        }
                        Err(e) => return Attempt::Done(Outcome::err(to_io(e), 0)),
                    }
                }
            }
            loop {
                let mut slices = bufs.io_slices_mut();
                let mut control = Default::default();
                match rustix::net::recvmsg(fd, &mut slices, &mut control, rflags) {
                    Ok(msg) => {
                        drop(slices);
                        let mut out = Outcome::ok(msg.bytes);
                        if msg.flags.contains(rustix::net::ReturnFlags::TRUNC) {
                            out.flags |= RecvFlags::TRUNCATED;
                        }
                        if oob {
                            out.flags |= RecvFlags::OOB;
                        }
                        if *want_addr {
                            out.addr = msg.address.and_then(|a| SocketAddr::try_from(a).ok());
                        }
                        bufs.set_received(msg.bytes);
                        return Attempt::Done(out);
                    }
                    Err(e) if e == rustix::io::Errno::INTR => {}
                    Err(e) if would_block(&e) => return Attempt::WouldBlock,
                    // Linux's urgent receive never waits: EINVAL means "no
                    // urgent byte yet"; the engine waits for priority
                    // readiness and tries again.
                    Err(e) if oob && e == rustix::io::Errno::INVAL => return Attempt::WouldBlock,
                    Err(e) => return Attempt::Done(Outcome::err(to_io(e), 0)),
                }
            }
        }
        OpKind::Accept => loop {
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
        },
        OpKind::Connect { addr, started } => {
            if !*started {
                *started = true;
                return match rustix::net::connect(fd, addr) {
                    Ok(()) => Attempt::Done(Outcome::ok(0)),
                    Err(e) if would_block(&e) || e == rustix::io::Errno::INTR => {
                        Attempt::WouldBlock
                    }
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
    }
}

/// The engine behind an [`Engine`](crate::Engine): one arm per backend.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per engine, never moved
pub(crate) enum Backend {
    Uring(uring::Uring),
    Poll(poll::Poll),
}

impl Backend {
    /// Ends a blocking [`wait`](Self::wait) in progress on another thread.
    pub(crate) fn wake(&self) {
        match self {
            Backend::Uring(u) => u.wake(),
            Backend::Poll(p) => p.wake(),
        }
    }
}
