//! The extension operations of a real IOCP server (`AcceptEx` with data or
//! into a caller-made socket, `DisconnectEx`, `TransmitFile`; `ConnectEx`
//! with data is the connect's second phase in [`attempt`](super::attempt())):
//! their state and their non-blocking attempts, shared by both engines. Each
//! waits for readiness and runs its attempt when it comes: io_uring parks
//! them as readiness polls, poll as readiness waits (SPEC x01–x05); the one
//! exception is a `TransmitFile`'s file region on io_uring, which goes by
//! `SPLICE` requests (`sys/uring/splice.rs`).

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::net::{RecvFlags as RxFlags, SendFlags as TxFlags, SocketFlags};

use super::{Attempt, Outcome, tcp, to_io};
use crate::buf::RawBufs;

/// A caller-made socket that a pending `AcceptEx` will take the connection
/// into (SPEC x02): its descriptor (kept open by this reference, so its
/// number cannot be reused while the accept may still write it) and where
/// the reservation stands, read by the socket itself on its next call.
pub(crate) struct Target {
    pub(crate) fd: Arc<OwnedFd>,
    state: AtomicU8,
    /// Cancels the accept that holds the socket (set once it started): run
    /// when the socket closes, as Windows ends such an accept at once.
    on_close: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("fd", &self.fd)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Where a [`Target`]'s reservation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reserve {
    /// A pending accept holds the socket.
    Held = 0,
    /// The accept put a connection in the socket (its descriptor now names
    /// the accepted connection).
    Accepted = 1,
    /// The accept ended without a connection: the socket is free again.
    Released = 2,
    /// The socket closed while the accept was pending: the accept ends
    /// aborted (a connection it took is closed).
    Closed = 3,
}

impl Target {
    pub(crate) fn new(fd: Arc<OwnedFd>) -> Arc<Target> {
        Arc::new(Target {
            fd,
            state: AtomicU8::new(Reserve::Held as u8),
            on_close: std::sync::Mutex::new(None),
        })
    }

    /// What cancels the accept that holds the socket (see
    /// [`take_on_close`](Self::take_on_close)).
    pub(crate) fn set_on_close(&self, f: Box<dyn FnOnce() + Send>) {
        *self.on_close.lock().unwrap_or_else(|p| p.into_inner()) = Some(f);
    }

    /// The canceller of the holding accept, once.
    pub(crate) fn take_on_close(&self) -> Option<Box<dyn FnOnce() + Send>> {
        self.on_close
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// The accept that filled the socket ended with an error or aborted
    /// (a cancel, a close of the listener, a connection that failed before
    /// its first data): the connection in the socket is closed and the
    /// socket is given a fresh unconnected one, free again (a connection an
    /// aborted accept took is never left open).
    pub(crate) fn undo_accept(&self) {
        if self.state() != Reserve::Accepted {
            return;
        }
        match fresh_stream_like(self.fd.as_fd()).and_then(|f| tcp::replace_fd(self.fd.as_fd(), f)) {
            Ok(()) => self.state.store(Reserve::Released as u8, Ordering::Release),
            Err(e) => tracing::warn!(error = %e, "closing an aborted accept's connection failed"),
        }
    }

    pub(crate) fn state(&self) -> Reserve {
        match self.state.load(Ordering::Acquire) {
            0 => Reserve::Held,
            1 => Reserve::Accepted,
            2 => Reserve::Released,
            _ => Reserve::Closed,
        }
    }

    /// Moves a held reservation to `to`; false when it was no longer held.
    pub(crate) fn settle(&self, to: Reserve) -> bool {
        self.state
            .compare_exchange(
                Reserve::Held as u8,
                to as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
    }
}

/// A connection an `AcceptEx` took, waiting for its first data.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The accepted descriptor; `None` when it went into the target socket.
    pub(crate) fd: Option<OwnedFd>,
    pub(crate) peer: Option<SocketAddr>,
    /// The poll engine watches the descriptor (registered in its epoll set
    /// under the operation's token).
    pub(crate) watched: bool,
}

/// `AcceptEx` beyond the plain accept: with a receive buffer (`recv`: the
/// operation completes with the connection's first data) and/or into a
/// caller-made socket.
#[derive(Debug)]
pub(crate) struct AcceptEx {
    pub(crate) recv: bool,
    pub(crate) into: Option<Arc<Target>>,
    /// Set once the connection is taken: the operation then waits for data
    /// on it, off the listener's queue (other accepts go on meanwhile).
    pub(crate) conn: Option<Conn>,
}

impl AcceptEx {
    /// The descriptor the first data is read from (phase two).
    pub(crate) fn conn_fd(&self) -> Option<BorrowedFd<'_>> {
        let conn = self.conn.as_ref()?;
        match (&conn.fd, &self.into) {
            (Some(fd), _) => Some(fd.as_fd()),
            (None, Some(t)) => Some(t.fd.as_fd()),
            (None, None) => None,
        }
    }
}

/// `TransmitFile`: head, a region of a file, tail, sent in that order as
/// one operation; `done` counts the bytes sent so far across the three.
#[derive(Debug)]
pub(crate) struct Transmit {
    pub(crate) file: OwnedFd,
    pub(crate) offset: u64,
    pub(crate) len: u64,
    /// io_uring moves the file's bytes with `SPLICE` requests through this
    /// pipe (file → pipe, pipe → socket); without one (the poll engine, or
    /// no pipe could be made) the attempt uses `sendfile`.
    pub(crate) pipe: Option<Pipe>,
}

/// The pipe of an io_uring `TransmitFile` and the bytes it holds (spliced
/// in from the file, not yet out to the socket).
#[derive(Debug)]
pub(crate) struct Pipe {
    pub(crate) read: OwnedFd,
    pub(crate) write: OwnedFd,
    pub(crate) held: usize,
    /// The most one splice from the file moves (the pipe's capacity).
    pub(crate) room: usize,
}

impl Pipe {
    /// A pipe for splicing, as large as the system lets an unprivileged
    /// process make it (up to 1 MiB), for fewer round trips per file.
    pub(crate) fn new() -> io::Result<Pipe> {
        let (read, write) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(to_io)?;
        for size in [1 << 20, 256 << 10] {
            if rustix::pipe::fcntl_setpipe_size(&write, size).is_ok() {
                break;
            }
        }
        let room = rustix::pipe::fcntl_getpipe_size(&write).unwrap_or(64 << 10);
        Ok(Pipe {
            read,
            write,
            held: 0,
            room,
        })
    }
}

impl Transmit {
    /// Where `done` bytes into the operation stand: in the head, the file
    /// region or the tail. `head`: the head buffer's length.
    pub(crate) fn in_file(&self, head: usize, done: usize) -> bool {
        done >= head && ((done - head) as u64) < self.len
    }
}

/// The attempt of an `AcceptEx` (see [`AcceptEx`]): accept (the listener's
/// readiness), move the connection into the target socket, then (with a
/// buffer) receive its first data (the connection's readiness). A
/// connection the operation took and cannot deliver is closed.
#[allow(unsafe_code)] // `RawBufs::set_received`'s contract
pub(crate) fn accept_ex(
    listener: BorrowedFd<'_>,
    a: &mut AcceptEx,
    bufs: Option<&mut dyn RawBufs>,
) -> Attempt {
    if a.into
        .as_ref()
        .is_some_and(|t| t.state() == Reserve::Closed)
    {
        return Attempt::Done(Outcome::aborted(0));
    }
    if a.conn.is_none() {
        let (fd, peer) = loop {
            match rustix::net::acceptfrom_with(
                listener,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
            ) {
                Ok((fd, addr)) => break (fd, addr.and_then(|a| SocketAddr::try_from(a).ok())),
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::CONNABORTED => {
                    return Attempt::WouldBlock;
                }
                Err(e) => return Attempt::Done(Outcome::err(to_io(e), 0)),
            }
        };
        let fd = match &a.into {
            Some(t) => {
                if let Err(e) = tcp::replace_fd(t.fd.as_fd(), fd) {
                    return Attempt::Done(Outcome::err(e, 0));
                }
                t.settle(Reserve::Accepted);
                None
            }
            None => Some(fd),
        };
        a.conn = Some(Conn {
            fd,
            peer,
            watched: false,
        });
    }
    let Some(conn_fd) = a.conn_fd() else {
        return Attempt::Done(Outcome::aborted(0));
    };
    let mut out = Outcome::ok(0);
    if a.recv {
        let Some(bufs) = bufs else {
            return Attempt::Done(Outcome::err(missing_bufs(), 0));
        };
        let n = loop {
            match tcp::recv_msg(conn_fd, bufs, 0, RxFlags::DONTWAIT, false) {
                Ok(r) => break r.bytes,
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) if e == rustix::io::Errno::AGAIN => return Attempt::WouldBlock,
                // The connection failed before its first data: the accept
                // reports it (Windows: WSAECONNRESET), the connection closes.
                Err(e) => {
                    a.conn = None;
                    return Attempt::Done(Outcome::err(to_io(e), 0));
                }
            }
        };
        // `recvmsg` wrote `n` bytes at the start of the room.
        // SAFETY: so those bytes are written.
        unsafe { bufs.set_received(n) };
        out.bytes = n;
    }
    out.local = rustix::net::getsockname(conn_fd)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())
        .map(Box::new);
    let conn = a.conn.take().expect("the connection was taken above");
    out.addr = conn.peer;
    out.fd = conn.fd;
    Attempt::Done(out)
}

/// A new non-blocking, close-on-exec TCP socket of the address family of
/// the socket `like` (IPv4 when its address cannot be read), to put on its
/// descriptor ([`tcp::replace_fd`]).
pub(crate) fn fresh_stream_like(like: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let domain = match rustix::net::getsockname(like)
        .ok()
        .and_then(|a| SocketAddr::try_from(a).ok())
    {
        Some(SocketAddr::V6(_)) => socket2::Domain::IPV6,
        _ => socket2::Domain::IPV4,
    };
    let s = socket2::Socket::new(
        domain,
        socket2::Type::STREAM.nonblocking().cloexec(),
        Some(socket2::Protocol::TCP),
    )?;
    Ok(OwnedFd::from(s))
}

fn missing_bufs() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the operation carries no buffers",
    )
}

/// `DisconnectEx`: the graceful half close of the write side.
pub(crate) fn disconnect(fd: BorrowedFd<'_>) -> Attempt {
    match rustix::net::shutdown(fd, rustix::net::Shutdown::Write) {
        Ok(()) => Attempt::Done(Outcome::ok(0)),
        Err(e) => Attempt::Done(Outcome::err(to_io(e), 0)),
    }
}

/// `TransmitFile`: the head buffer, the file region (`sendfile`: the file's
/// bytes go from the page cache to the socket without passing through user
/// space; with a pipe, io_uring splices it instead and this attempt leaves
/// it alone), the tail buffer; `done` is the progress across the three, so
/// a readiness wait resumes where the socket filled up.
pub(crate) fn transmit(
    fd: BorrowedFd<'_>,
    t: &Transmit,
    bufs: Option<&mut dyn RawBufs>,
    done: &mut usize,
) -> Attempt {
    let slices = bufs.map(|b| b.io_slices()).unwrap_or_default();
    let head: &[u8] = slices.first().map_or(&[], |s| s);
    let tail: &[u8] = slices.get(1).map_or(&[], |s| s);
    let file_len = t.len as usize;
    let total = head.len() + file_len + tail.len();
    let flags = TxFlags::NOSIGNAL | TxFlags::DONTWAIT;
    while *done < total {
        let r = if *done < head.len() {
            rustix::net::send(fd, &head[*done..], flags)
        } else if *done < head.len() + file_len {
            if t.pipe.is_some() {
                // io_uring splices the file's bytes (see `sys/uring`).
                return Attempt::WouldBlock;
            }
            let sent = (*done - head.len()) as u64;
            let mut off = t.offset + sent;
            let count = (t.len - sent).min(1 << 30) as usize;
            match rustix::fs::sendfile(fd, &t.file, Some(&mut off), count) {
                // The file ended before the region did (it shrank after the
                // start checked it).
                Ok(0) => {
                    return Attempt::Done(Outcome::err(
                        io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "the file ended before the region to send",
                        ),
                        *done,
                    ));
                }
                r => r,
            }
        } else {
            let at = *done - head.len() - file_len;
            rustix::net::send(fd, &tail[at..], flags)
        };
        match r {
            Ok(n) => *done += n,
            Err(e) if e == rustix::io::Errno::INTR => {}
            Err(e) if e == rustix::io::Errno::AGAIN => return Attempt::WouldBlock,
            Err(e) => return Attempt::Done(Outcome::err(to_io(e), *done)),
        }
    }
    Attempt::Done(Outcome::ok(*done))
}
