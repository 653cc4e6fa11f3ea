//! The connection state operations answer from at the call (SPEC
//! k01–k08), and what finished operations teach it.
//!
//! Linux and Windows part ways at the edges of a connection: Linux reports a
//! reset once (later receives look like end-of-stream, later sends fail with
//! `EPIPE`), its `shutdown(SHUT_RD)` completes pending receives with 0
//! bytes, and it has no rule against operations on a socket whose connect is
//! in flight. The engine keeps the state Windows answers from
//! ([`Conn`](super::table::Conn)) and fails such starts itself: a start
//! error, never a completion, so nothing is posted, set or queued.

use std::io;
use std::os::fd::AsFd;

use super::SlotNotify;
use super::table::SockState;
use crate::flags::MsgFlags;
use crate::sys::{self, OpKind, Outcome};

fn os(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// How a connection was reset, which gives the error every later receive
/// and send fails with (SPEC k01).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Broken {
    /// The peer reset it: `ECONNRESET` (`WSAECONNRESET`).
    Reset,
    /// The peer's stack reset it in answer to a send of ours after the
    /// peer had closed gracefully (Linux holds `EPIPE` as the socket's
    /// error then, where a reset of an open connection holds
    /// `ECONNRESET`): `ECONNABORTED`, Windows' `WSAECONNABORTED`.
    Aborted,
}

impl Broken {
    fn error(self) -> io::Error {
        os(match self {
            Broken::Reset => libc::ECONNRESET,
            Broken::Aborted => libc::ECONNABORTED,
        })
    }

    /// How a reset the engine was not told of directly (Linux reported
    /// it elsewhere, or as `EPIPE`) reads: aborted once the peer is known
    /// to have closed gracefully first.
    fn guessed(s: &SockState) -> Broken {
        if s.conn.peer_closed {
            Broken::Aborted
        } else {
            Broken::Reset
        }
    }
}

/// Checks made before an operation starts: the ones that keep the start
/// result three-way (io_uring would report them as completions) and the
/// connection state's own answers.
pub(super) fn precheck(s: &mut SockState, kind: &OpKind, notify: &SlotNotify) -> io::Result<()> {
    let Some(fd) = s.fd.as_ref() else {
        return Err(super::bad_handle());
    };
    if matches!(notify, SlotNotify::Routine { .. }) && s.port.is_some() {
        // k08: a handle associated with a port takes no completion routines.
        return Err(invalid(
            "a completion routine on a socket associated with a completion port",
        ));
    }
    let c = &s.conn;
    match kind {
        OpKind::Recv { flags, .. } => {
            let oob = flags.contains(MsgFlags::OOB);
            if flags.contains(MsgFlags::WAITALL)
                && (!s.stream || oob || flags.contains(MsgFlags::PEEK))
            {
                return Err(os(libc::EOPNOTSUPP));
            }
            if c.read_shut {
                return Err(os(libc::ESHUTDOWN));
            }
            if !s.stream {
                if !s.bound {
                    let bound = rustix::net::getsockname(fd)
                        .ok()
                        .and_then(|a| std::net::SocketAddr::try_from(a).ok())
                        .is_some_and(|a| a.port() != 0);
                    if !bound {
                        return Err(invalid(
                            "receive on a datagram socket that is not bound (bind it, or send first)",
                        ));
                    }
                    s.bound = true;
                }
                return Ok(());
            }
            stream_ready(s)?;
            if oob && s.fd.as_ref().is_some_and(|fd| sys::oob_inline(fd.as_fd())) {
                return Err(invalid(
                    "an OOB receive on a socket with SO_OOBINLINE (urgent data arrives in the stream)",
                ));
            }
        }
        OpKind::Send { .. } | OpKind::Transmit(_) | OpKind::Disconnect { .. } => {
            if !s.stream && !matches!(kind, OpKind::Send { .. }) {
                // TransmitFile and DisconnectEx are for connected streams.
                return Err(os(libc::ENOTCONN));
            }
            if c.write_shut && !matches!(kind, OpKind::Disconnect { .. }) {
                return Err(os(libc::ESHUTDOWN));
            }
            if s.stream {
                stream_ready(s)?;
            }
        }
        OpKind::Connect { .. } => {
            if c.listening {
                return Err(invalid("connect on a listening socket"));
            }
            if c.connecting {
                return Err(invalid("a connect is already in progress on this socket"));
            }
            if s.stream && s.connected {
                return Err(os(libc::EISCONN));
            }
        }
        OpKind::Accept | OpKind::FileRead { .. } | OpKind::FileWrite { .. } => {}
        OpKind::AcceptEx(_) => {
            if !c.listening {
                return Err(invalid("accept on a socket that is not listening"));
            }
        }
    }
    Ok(())
}

/// A stream send or receive needs a connection that is up.
fn stream_ready(s: &mut SockState) -> io::Result<()> {
    if s.conn.connecting {
        return Err(os(libc::ENOTCONN));
    }
    if let Some(b) = s.conn.broken {
        return Err(b.error());
    }
    if !s.connected {
        let Some(fd) = s.fd.as_ref() else {
            return Err(super::bad_handle());
        };
        rustix::net::getpeername(fd).map_err(sys::to_io)?;
        s.connected = true;
    }
    Ok(())
}

/// What a finished operation can teach the connection state, taken from the
/// operation before its slot is borrowed for delivery.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Learn {
    Connect,
    Send {
        to: bool,
    },
    /// A receive of the normal channel of a stream; `probe`: into no
    /// room (the model's readiness probe, which reads 0 for data too).
    StreamRecv {
        probe: bool,
    },
    /// A receive on a datagram socket.
    DgramRecv,
    Other,
}

impl Learn {
    /// `room`: a receive's buffers' total length (asked only of a stream
    /// receive).
    pub(super) fn of(kind: &OpKind, stream: bool, room: impl FnOnce() -> Option<usize>) -> Learn {
        match kind {
            OpKind::Connect { .. } => Learn::Connect,
            OpKind::Send { to, .. } => Learn::Send { to: to.is_some() },
            OpKind::Recv { flags, .. } if stream && !flags.contains(MsgFlags::OOB) => {
                Learn::StreamRecv {
                    probe: room() == Some(0),
                }
            }
            OpKind::Recv { .. } if !stream => Learn::DgramRecv,
            _ => Learn::Other,
        }
    }
}

/// Records what a finished operation says about the connection, and gives
/// it Windows' answer: a reset stays a reset (a receive never reports 0
/// bytes on a reset connection, a send never `EPIPE`), a reset that
/// answered a send after the peer's graceful close is *connection
/// aborted*, a send on a shut write side is `ESHUTDOWN`.
pub(super) fn learn(s: &mut SockState, what: Learn, out: &mut Outcome) {
    let errno = out.error.as_ref().and_then(io::Error::raw_os_error);
    match what {
        Learn::Connect => {
            s.conn.connecting = false;
            if out.error.is_none() {
                s.connected = true;
            }
        }
        Learn::Send { to } => {
            if out.error.is_none() {
                if to {
                    s.bound = true;
                }
                return;
            }
            if !s.stream {
                return;
            }
            match errno {
                Some(libc::ECONNRESET) => {
                    let b = *s.conn.broken.get_or_insert(Broken::Reset);
                    out.error = Some(b.error());
                }
                Some(libc::EPIPE) if s.conn.write_shut => out.error = Some(os(libc::ESHUTDOWN)),
                // Linux reports a reset once, and the sends after it fail
                // with EPIPE; a reset that answered a send after the peer's
                // graceful close is reported as EPIPE from the start.
                Some(libc::EPIPE) => {
                    let b = *s.conn.broken.get_or_insert(Broken::guessed(s));
                    out.error = Some(b.error());
                }
                _ => {}
            }
        }
        Learn::StreamRecv { probe } => match errno {
            Some(libc::ECONNRESET) => {
                let b = *s.conn.broken.get_or_insert(Broken::Reset);
                out.error = Some(b.error());
            }
            None if out.bytes == 0 => {
                // End of stream, or a reset another operation was told of
                // first: after a reset the socket is closed (no peer), while
                // after a graceful close by the peer it still has one —
                // unless this side shut its write side too. A zero-byte
                // receive (the readiness probe) completes with 0 for data
                // too: only a known reset or a closed socket fails it.
                let gone = || {
                    s.fd.as_ref()
                        .is_some_and(|fd| rustix::net::getpeername(fd).is_err())
                };
                if let Some(b) = s.conn.broken {
                    out.error = Some(b.error());
                } else if !s.conn.write_shut && gone() {
                    // Linux's receive reads 0 after a reset that came once
                    // the peer's end of stream had: its error (`EPIPE`
                    // then, still held) tells the two apart.
                    let held = s.fd.as_ref().and_then(|fd| {
                        socket2::SockRef::from(fd)
                            .take_error()
                            .ok()
                            .flatten()
                            .and_then(|e| e.raw_os_error())
                    });
                    let b = match held {
                        Some(libc::EPIPE) => Broken::Aborted,
                        Some(libc::ECONNRESET) => Broken::Reset,
                        _ => Broken::guessed(s),
                    };
                    s.conn.broken = Some(b);
                    out.error = Some(b.error());
                } else if !probe {
                    s.conn.peer_closed = true;
                }
            }
            _ => {}
        },
        // Windows reports an ICMP port unreachable drawn by an earlier send
        // to the next receive as WSAECONNRESET (Linux: ECONNREFUSED).
        Learn::DgramRecv => {
            if errno == Some(libc::ECONNREFUSED) {
                out.error = Some(crate::winerror::port_unreachable());
            }
        }
        Learn::Other => {}
    }
}
