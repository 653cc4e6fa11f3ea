//! Overlapped sockets: TCP over IPv4 and IPv6, and UDP.
//!
//! A [`Socket`] is created for overlapped use (the `WSA_FLAG_OVERLAPPED`
//! step: non-blocking, close-on-exec) on an [`Engine`]. Binding, listening
//! and options are ordinary calls; `accept`, `connect`, `send`, `recv`,
//! `send_to`, `recv_from`, `send_msg` and `recv_msg` are **operations**:
//! they return at once, completed now or pending, and complete exactly
//! once.

mod waits;

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use socket2::{Domain, Protocol, SockRef, Type};

use crate::buf::ErasedBufs;
#[cfg(any(feature = "futures-io", feature = "tokio"))]
use crate::buf::KeptRx;
use crate::buf::{Control, erase_msg_rx, erase_msg_tx, take_back_msg};
use crate::buf::{IoBufs, IoBufsMut, check_bufs, erase_rx, erase_tx, take_back};
use crate::core::Sock;
use crate::engine::Engine;
use crate::flags::MsgFlags;
use crate::op::{Notify, OpOutput, StartError, Started};
use crate::sys::OpKind;

mod ext;
pub use ext::Accepted;

/// An overlapped socket.
///
/// Operations on it may be started from any thread (`Socket` is `Send +
/// Sync`). Several operations may be in flight at once: sends go out in the
/// order they were started and receives fill in the order they were started,
/// per socket and direction. Dropping the socket (or [`close`](Socket::close))
/// completes every pending operation *aborted*.
#[derive(Debug)]
pub struct Socket {
    engine: Engine,
    sock: Arc<Sock>,
    ty: Type,
    closed: AtomicBool,
}

fn stream_of(ty: Type) -> bool {
    ty == Type::STREAM
}

impl Socket {
    /// `WSASocket(domain, type, 0, NULL, 0, WSA_FLAG_OVERLAPPED)`: a socket
    /// for overlapped use on `engine` (non-blocking, close-on-exec).
    ///
    /// # Errors
    /// The OS error of `socket(2)`.
    #[doc(alias = "WSASocket")]
    pub fn new(engine: &Engine, domain: Domain, ty: Type) -> io::Result<Socket> {
        let proto = if ty == Type::STREAM {
            Some(Protocol::TCP)
        } else if ty == Type::DGRAM {
            Some(Protocol::UDP)
        } else {
            None
        };
        let s = socket2::Socket::new(domain, ty.nonblocking().cloexec(), proto)?;
        Self::register(engine, OwnedFd::from(s), ty, false, false)
    }

    /// A TCP socket of the address family of `addr`.
    pub fn tcp_for(engine: &Engine, addr: &SocketAddr) -> io::Result<Socket> {
        Socket::new(engine, Domain::for_address(*addr), Type::STREAM)
    }

    /// A UDP socket of the address family of `addr`.
    pub fn udp_for(engine: &Engine, addr: &SocketAddr) -> io::Result<Socket> {
        Socket::new(engine, Domain::for_address(*addr), Type::DGRAM)
    }

    /// A TCP listener bound to `addr` with `SO_REUSEADDR`, listening with a
    /// backlog of 1024.
    pub fn tcp_listener(engine: &Engine, addr: &SocketAddr) -> io::Result<Socket> {
        let s = Socket::tcp_for(engine, addr)?;
        s.with_socket2(|s| s.set_reuse_address(true))?;
        s.bind(addr)?;
        s.listen(1024)?;
        Ok(s)
    }

    /// A UDP socket bound to `addr`.
    pub fn udp_bound(engine: &Engine, addr: &SocketAddr) -> io::Result<Socket> {
        let s = Socket::udp_for(engine, addr)?;
        s.bind(addr)?;
        Ok(s)
    }

    /// Adopts a socket descriptor: it is made non-blocking and registered on
    /// `engine`.
    ///
    /// # Errors
    /// `ENOTSOCK` when `fd` is not a socket.
    pub fn from_fd(engine: &Engine, fd: OwnedFd) -> io::Result<Socket> {
        let sr = SockRef::from(&fd);
        let ty = sr.r#type()?;
        sr.set_nonblocking(true)?;
        let connected = sr.peer_addr().is_ok();
        let bound = sr
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .is_some_and(|a| a.port() != 0);
        let listening = sr.is_listener().unwrap_or(false);
        if ty == Type::STREAM {
            crate::sys::tcp::enable_inq(std::os::fd::AsFd::as_fd(&fd));
        }
        let s = Self::register(engine, fd, ty, connected, bound)?;
        if listening {
            s.engine.inner.with_sock(&s.sock, |_, st| {
                st.conn.listening = true;
                Ok(())
            })?;
        }
        Ok(s)
    }

    pub(crate) fn from_accepted(engine: &Engine, fd: OwnedFd) -> io::Result<Socket> {
        Self::register(engine, fd, Type::STREAM, true, true)
    }

    /// The socket an accept's outcome carries, made overlapped on `raw`'s
    /// engine, with the listener's `event_select` when it had one (Windows:
    /// an accepted socket has its listener's properties, its selection
    /// among them). A failure is the completion's error.
    pub(crate) fn accepted_of(raw: &mut crate::core::RawDone) -> Option<Socket> {
        let fd = raw.outcome.fd.take()?;
        let made = Socket::from_accepted(&raw.engine, fd).and_then(|s| {
            if let Some(sel) = raw.outcome.select.take() {
                let (event, mask) = *sel;
                s.event_select(&event, mask)?;
            }
            Ok(s)
        });
        match made {
            Ok(s) => Some(s),
            Err(e) => {
                raw.outcome.error = Some(e);
                None
            }
        }
    }

    fn register(
        engine: &Engine,
        fd: OwnedFd,
        ty: Type,
        connected: bool,
        bound: bool,
    ) -> io::Result<Socket> {
        let sock = engine
            .inner
            .add_socket(fd, stream_of(ty), connected, bound)?;
        Ok(Socket {
            engine: engine.clone(),
            sock,
            ty,
            closed: AtomicBool::new(false),
        })
    }

    /// A stream send of borrowed bytes now, or `None` (see
    /// `Core::send_now_borrowed`).
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    pub(crate) fn send_now_borrowed(&self, data: &[u8]) -> Option<usize> {
        self.engine.inner.send_now_borrowed(&self.sock, data)
    }

    /// The engine this socket runs on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// True for a stream (TCP) socket.
    pub fn is_stream(&self) -> bool {
        stream_of(self.ty)
    }

    /// Runs `f` with a `socket2` view of the socket, for options.
    ///
    /// # Errors
    /// `EBADF` after [`close`](Socket::close); else what `f` returns.
    pub fn with_socket2<R>(&self, f: impl FnOnce(&SockRef<'_>) -> io::Result<R>) -> io::Result<R> {
        self.open()?;
        self.engine
            .inner
            .with_user_fd(&self.sock, |fd| f(&SockRef::from(&fd)))?
    }

    /// This handle is open (another handle of the socket may be).
    fn open(&self) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        Ok(())
    }

    /// `bind`.
    pub fn bind(&self, addr: &SocketAddr) -> io::Result<()> {
        self.open()?;
        self.engine.inner.with_sock(&self.sock, |fd, e| {
            SockRef::from(&fd).bind(&(*addr).into())?;
            e.bound = true;
            Ok(())
        })
    }

    /// `listen`.
    pub fn listen(&self, backlog: i32) -> io::Result<()> {
        self.open()?;
        self.engine.inner.listen(&self.sock, backlog)
    }

    /// `WSADuplicateSocket` within the process: another handle on the same
    /// socket. Operations may be started on either; closing one handle
    /// aborts nothing — the socket's pending operations are aborted when
    /// the **last** handle closes (SPEC k11). The handles share the
    /// socket's connection state and port association.
    ///
    /// # Errors
    /// `EBADF` when this handle is closed.
    #[doc(alias = "WSADuplicateSocket")]
    #[doc(alias = "DuplicateHandle")]
    pub fn try_clone(&self) -> io::Result<Socket> {
        self.open()?;
        self.engine.inner.clone_handle(&self.sock)?;
        Ok(Socket {
            engine: self.engine.clone(),
            sock: self.sock.clone(),
            ty: self.ty,
            closed: AtomicBool::new(false),
        })
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.with_socket2(|s| s.local_addr())?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
    }

    /// The peer address of a connected socket.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.with_socket2(|s| s.peer_addr())?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an IP socket"))
    }

    /// `shutdown`. `Write`: the peer reads end-of-stream; sends started
    /// afterwards fail at the call with `ESHUTDOWN` (`WSAESHUTDOWN`);
    /// receiving still works. `Read` is kept by the engine, not the kernel:
    /// pending receives stay pending and complete with data that arrives
    /// later, and receives started afterwards fail at the call with
    /// `ESHUTDOWN` (Linux's `SHUT_RD` would complete them with 0 bytes, as
    /// if the stream had ended). Shutting a side twice is fine.
    ///
    /// # Errors
    /// The OS error of `shutdown(2)` (`ENOTCONN` on an unconnected stream
    /// socket); `EBADF` after [`close`](Socket::close).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.open()?;
        self.engine.inner.shutdown(&self.sock, how)
    }

    /// `TCP_NODELAY`.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.with_socket2(|s| s.set_tcp_nodelay(on))
    }

    /// The raw descriptor (for diagnostics; `-1` once closed). Also
    /// [`AsRawFd`].
    pub fn raw_fd(&self) -> RawFd {
        if self.open().is_err() {
            return -1;
        }
        self.engine
            .inner
            .with_sock(&self.sock, |fd, _| Ok(fd.as_raw_fd()))
            .unwrap_or(-1)
    }

    /// Runs `f` with the descriptor borrowed, e.g. for an `ioctl` through
    /// `rustix` (`rustix::io::ioctl_fionread(fd)`). `Socket` has no `AsFd`:
    /// [`close`](Socket::close) takes `&self` and ends the descriptor, which
    /// a `BorrowedFd` handed out by reference could outlive; here the
    /// borrow ends with `f`.
    ///
    /// # Errors
    /// `EBADF` after [`close`](Socket::close).
    ///
    /// # Examples
    ///
    /// ```
    /// use overlapped::{Engine, MsgFlags, Notify, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
    /// let addr = listener.local_addr()?;
    /// let client = Socket::tcp_for(&engine, &addr)?;
    /// client.connect_wait(addr)?;
    /// let (server, _) = listener.accept_wait()?;
    /// client.send(b"abc".to_vec(), MsgFlags::empty(), Notify::None)?.wait()?;
    /// // Bytes waiting to be received (FIONREAD).
    /// let waiting = server.with_fd(|fd| rustix::io::ioctl_fionread(fd))??;
    /// assert_eq!(waiting, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn with_fd<R>(&self, f: impl FnOnce(std::os::fd::BorrowedFd<'_>) -> R) -> io::Result<R> {
        self.engine.inner.with_user_fd(&self.sock, f)
    }

    fn start<T: OpOutput>(
        &self,
        kind: OpKind,
        bufs: crate::sys::Bufs,
        notify: Notify<T>,
    ) -> Result<Started<T>, (io::Error, crate::sys::Bufs)> {
        crate::op::start_on(
            &self.engine,
            &self.sock,
            &self.closed,
            kind,
            bufs,
            notify,
            None,
        )
    }

    /// Starts an operation with its buffers, boxed (by [`erase_tx`],
    /// [`erase_rx`], [`erase_msg_tx`], ...) before anything takes a pointer
    /// to them, after checking them; a failed start hands them back as a
    /// `B` (`back`: out of their box), and a completion as a `T`.
    fn start_checked<B, T: OpOutput>(
        &self,
        kind: OpKind,
        mut bufs: Box<dyn ErasedBufs>,
        notify: Notify<T>,
        back: impl FnOnce(Box<dyn ErasedBufs>) -> Option<B>,
    ) -> Result<Started<T>, StartError<B>> {
        let r = match check_bufs(bufs.as_bufs()) {
            Err(e) => Err((e, Some(bufs))),
            Ok(_) => self.start(kind, Some(bufs), notify),
        };
        r.map_err(|e| crate::op::start_error(e, back))
    }

    /// Starts a send or receive (see [`start_checked`](Self::start_checked)).
    fn start_bufs<B: IoBufs>(
        &self,
        kind: OpKind,
        bufs: Box<dyn ErasedBufs>,
        notify: Notify<B>,
    ) -> Result<Started<B>, StartError<B>> {
        self.start_checked(kind, bufs, notify, take_back::<B>)
    }

    /// `WSASend`: sends the buffers, gathered in array order. On a stream
    /// socket the operation completes only when every byte was taken (or
    /// with an error). Never raises `SIGPIPE`.
    ///
    /// # Errors (at start; no completion follows)
    /// `InvalidInput` for an empty array or more than [`IOV_MAX`](crate::IOV_MAX)
    /// buffers; `NotConnected` on an unconnected stream socket or while a
    /// connect is in flight; `ESHUTDOWN` after `shutdown(Write)`;
    /// `ConnectionReset` once the peer reset the connection; `EBADF` on a
    /// closed socket; `InvalidInput` for a completion routine on a socket
    /// associated with a port; any error the first attempt met. A datagram
    /// send never fails on an ICMP error of an earlier one (SPEC k04).
    #[doc(alias = "WSASend")]
    pub fn send<B: IoBufs>(
        &self,
        bufs: B,
        flags: MsgFlags,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        self.start_bufs(
            OpKind::Send { flags, to: None },
            erase_tx(bufs),
            notify.into(),
        )
    }

    /// `WSARecv`: receives into the buffers, scattered in array order
    /// (each buffer offers its room: a `Vec`'s `len()`, see [`crate::buf`]). A stream receive
    /// completes as soon as at least one byte (or the end of the stream, as
    /// 0 bytes) is there.
    ///
    /// With [`MsgFlags::WAITALL`] it completes only when every buffer is
    /// full, or with what arrived at end-of-stream, reset or abort. With
    /// [`MsgFlags::OOB`] it reads the urgent byte (also one that normal
    /// receives already passed), and waits for one if none is held.
    ///
    /// # Errors (at start)
    /// As for [`send`](Socket::send), with `ESHUTDOWN` after
    /// `shutdown(Read)`; a datagram socket that is not bound is
    /// `InvalidInput`; `OOB` with `SO_OOBINLINE` on is `InvalidInput`;
    /// `WAITALL` with `OOB` or `PEEK`, or on a datagram socket, is
    /// `EOPNOTSUPP`.
    #[doc(alias = "WSARecv")]
    pub fn recv<B: IoBufsMut>(
        &self,
        bufs: B,
        flags: MsgFlags,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        self.start_bufs(
            OpKind::Recv {
                flags,
                want_addr: false,
            },
            erase_rx(bufs),
            notify.into(),
        )
    }

    /// A receive into buffers kept in their engine box from one receive to
    /// the next (see [`KeptRx`]), for the task of `waker`: as
    /// [`recv`](Socket::recv) with [`Notify::None`], without a box made and
    /// freed per receive, and a pending one wakes that task when it
    /// completes (no first poll of its handle needed).
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    pub(crate) fn recv_kept<B: IoBufsMut>(
        &self,
        bufs: KeptRx<B>,
        flags: MsgFlags,
        waker: &std::task::Waker,
    ) -> Result<Started<KeptRx<B>>, StartError<KeptRx<B>>> {
        let kind = OpKind::Recv {
            flags,
            want_addr: false,
        };
        let mut bufs = bufs.erase();
        let r = match check_bufs(bufs.as_bufs()) {
            Err(e) => Err((e, Some(bufs))),
            Ok(_) => crate::op::start_on(
                &self.engine,
                &self.sock,
                &self.closed,
                kind,
                Some(bufs),
                Notify::None,
                Some(waker),
            ),
        };
        r.map_err(|e| crate::op::start_error(e, KeptRx::back))
    }

    /// `WSASendTo`: one datagram to `addr`.
    #[doc(alias = "WSASendTo")]
    pub fn send_to<B: IoBufs>(
        &self,
        bufs: B,
        addr: SocketAddr,
        flags: MsgFlags,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        self.start_bufs(
            OpKind::Send {
                flags,
                to: Some(addr),
            },
            erase_tx(bufs),
            notify.into(),
        )
    }

    /// `WSARecvFrom`: one datagram; the completion's `addr` is the sender
    /// and `flags` says whether it was truncated.
    ///
    /// # Examples
    ///
    /// A datagram too big for the buffer: the buffer holds its first part,
    /// the rest is discarded, and the completion says so (`WSAEMSGSIZE`).
    ///
    /// ```
    /// use overlapped::{Engine, MsgFlags, Notify, RecvFlags, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let any = "127.0.0.1:0".parse().unwrap();
    /// let (a, b) = (Socket::udp_bound(&engine, &any)?, Socket::udp_bound(&engine, &any)?);
    /// let recv = b.recv_from(vec![0u8; 4], MsgFlags::empty(), Notify::None)?;
    /// let sent = a.send_to(b"datagram".to_vec(), b.local_addr()?, MsgFlags::empty(), Notify::None)?;
    /// assert_eq!(sent.wait()?.bytes, 8);
    /// let got = recv.wait()?;
    /// assert_eq!(&got.data[..], b"data");
    /// assert_eq!(got.addr, Some(a.local_addr()?));
    /// assert!(got.flags.contains(RecvFlags::TRUNCATED));
    /// assert_eq!(got.wsa_error(), Some(10040));
    /// # Ok(()) }
    /// ```
    #[doc(alias = "WSARecvFrom")]
    pub fn recv_from<B: IoBufsMut>(
        &self,
        bufs: B,
        flags: MsgFlags,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        self.start_bufs(
            OpKind::Recv {
                flags,
                want_addr: true,
            },
            erase_rx(bufs),
            notify.into(),
        )
    }

    /// `WSARecvMsg`: one datagram into the buffers (scattered in array
    /// order), with its control data into `control`, whose capacity is the
    /// room offered ([`Control::with_capacity`]). The completion's `data`
    /// is the buffers and the control buffer, holding the control messages
    /// that arrived ([`Control::messages`], [`Control::pktinfo`]); `addr`
    /// is the sender; `flags` has [`RecvFlags::TRUNCATED`](crate::RecvFlags::TRUNCATED)
    /// for a datagram larger than the buffers and
    /// [`RecvFlags::CTRUNC`](crate::RecvFlags::CTRUNC) for control data
    /// larger than the room (the messages that fit are there; either makes
    /// [`Completion::wsa_error`](crate::Completion::wsa_error)
    /// `WSAEMSGSIZE`, with the payload's bytes in `bytes`). Which control
    /// messages come is set by socket options, such as
    /// [`set_pktinfo`](Socket::set_pktinfo).
    ///
    /// On a stream socket it receives as [`recv`](Socket::recv) does, and
    /// the control buffer comes back empty.
    ///
    /// # Errors (at start)
    /// As for [`recv_from`](Socket::recv_from).
    ///
    /// # Examples
    ///
    /// The local address a datagram was sent to:
    ///
    /// ```
    /// use overlapped::{Control, Engine, MsgFlags, Notify, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let server = Socket::udp_bound(&engine, &"127.0.0.1:0".parse().unwrap())?;
    /// server.set_pktinfo(true)?;
    /// let client = Socket::udp_bound(&engine, &"127.0.0.1:0".parse().unwrap())?;
    /// let recv = server.recv_msg(
    ///     vec![0u8; 64],
    ///     Control::with_capacity(Control::PKTINFO_SPACE),
    ///     MsgFlags::empty(),
    ///     Notify::None,
    /// )?;
    /// client.send_to(b"hello".to_vec(), server.local_addr()?, MsgFlags::empty(), Notify::None)?;
    /// let done = recv.wait()?;
    /// let (data, control) = done.data;
    /// assert_eq!(&data[..], b"hello");
    /// assert_eq!(done.addr, Some(client.local_addr()?));
    /// let info = control.pktinfo().expect("IP_PKTINFO");
    /// assert_eq!(info.addr, "127.0.0.1".parse::<std::net::IpAddr>().unwrap());
    /// # Ok(()) }
    /// ```
    #[doc(alias = "WSARecvMsg")]
    // The buffers and the control buffer, as the start error and the
    // completion hand them back.
    #[allow(clippy::type_complexity)]
    pub fn recv_msg<B: IoBufsMut>(
        &self,
        bufs: B,
        control: Control,
        flags: MsgFlags,
        notify: impl Into<Notify<(B, Control)>>,
    ) -> Result<Started<(B, Control)>, StartError<(B, Control)>> {
        let active = !self.is_stream();
        self.start_checked(
            OpKind::Recv {
                flags,
                want_addr: true,
            },
            erase_msg_rx(bufs, control, active),
            notify.into(),
            take_back_msg::<B>,
        )
    }

    /// `WSASendMsg`: the buffers, gathered in array order, with the control
    /// messages of `control` (its bytes, built with [`Control::push`] or
    /// [`Control::push_pktinfo`], e.g. the source address of the datagram),
    /// as one datagram to `to` (`None`: the connected peer). The
    /// completion's `data` is the buffers and the control buffer, back.
    ///
    /// On a stream socket it sends as [`send`](Socket::send) does; control
    /// data there is refused.
    ///
    /// # Errors (at start)
    /// As for [`send`](Socket::send); `InvalidInput` for control data on a
    /// stream socket; the system's error for control data it refuses (such
    /// as `EINVAL` for a source address that is not local).
    ///
    /// # Examples
    ///
    /// A socket bound to the wildcard address answers from the address it
    /// chooses (here `127.0.0.2`, a loopback address):
    ///
    /// ```
    /// use overlapped::{Control, Engine, MsgFlags, Notify, PktInfo, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let server = Socket::udp_bound(&engine, &"0.0.0.0:0".parse().unwrap())?;
    /// let client = std::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let mut control = Control::new();
    /// control.push_pktinfo(PktInfo::new("127.0.0.2".parse().unwrap(), 0));
    /// let sent = server
    ///     .send_msg(
    ///         vec![b"re".to_vec(), b"ply".to_vec()],
    ///         control,
    ///         Some(client.local_addr()?),
    ///         MsgFlags::empty(),
    ///         Notify::None,
    ///     )?
    ///     .wait()?;
    /// assert_eq!(sent.bytes, 5);
    /// let mut buf = [0u8; 8];
    /// let (n, from) = client.recv_from(&mut buf)?;
    /// assert_eq!(&buf[..n], b"reply");
    /// assert_eq!(from.ip(), "127.0.0.2".parse::<std::net::IpAddr>().unwrap());
    /// assert_eq!(from.port(), server.local_addr()?.port());
    /// # Ok(()) }
    /// ```
    #[doc(alias = "WSASendMsg")]
    // The buffers and the control buffer, as the start error and the
    // completion hand them back.
    #[allow(clippy::type_complexity)]
    pub fn send_msg<B: IoBufs>(
        &self,
        bufs: B,
        control: Control,
        to: Option<SocketAddr>,
        flags: MsgFlags,
        notify: impl Into<Notify<(B, Control)>>,
    ) -> Result<Started<(B, Control)>, StartError<(B, Control)>> {
        if self.is_stream() && !control.is_empty() {
            return Err(StartError {
                error: io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "control data on a stream socket",
                ),
                bufs: (bufs, control),
            });
        }
        let active = !self.is_stream();
        self.start_checked(
            OpKind::Send { flags, to },
            erase_msg_tx(bufs, control, active),
            notify.into(),
            take_back_msg::<B>,
        )
    }

    /// Asks for the packet information of every received datagram
    /// (`IP_PKTINFO`; on an IPv6 socket `IPV6_RECVPKTINFO`, and `IP_PKTINFO`
    /// too unless it is IPv6-only, for its IPv4 datagrams): a
    /// [`recv_msg`](Socket::recv_msg)'s control buffer then holds the local
    /// address each datagram was sent to and the interface it arrived on
    /// ([`Control::pktinfo`]).
    ///
    /// # Errors
    /// The OS error of `setsockopt(2)`; `EBADF` after
    /// [`close`](Socket::close).
    pub fn set_pktinfo(&self, on: bool) -> io::Result<()> {
        self.open()?;
        self.with_fd(|fd| crate::sys::msg::set_pktinfo(fd, on))?
    }

    /// `AcceptEx`: accepts one connection; the completion's `data` is the new
    /// (overlapped) socket and `addr` the peer.
    #[doc(alias = "AcceptEx")]
    pub fn accept(
        &self,
        notify: impl Into<Notify<Option<Socket>>>,
    ) -> Result<Started<Option<Socket>>, StartError<()>> {
        self.start(OpKind::Accept, None, notify.into())
            .map_err(|(error, _)| StartError { error, bufs: () })
    }

    /// `ConnectEx`: connects to `addr`. **(ours)** An unbound socket is
    /// bound for the caller (Windows requires `bind` first).
    ///
    /// # Errors (at start)
    /// `InvalidInput` on a listening socket or while another connect is in
    /// flight; `EISCONN` on a connected stream socket; `EBADF` on a closed
    /// socket.
    #[doc(alias = "ConnectEx")]
    pub fn connect(
        &self,
        addr: SocketAddr,
        notify: impl Into<Notify<()>>,
    ) -> Result<Started<()>, StartError<()>> {
        self.start(
            OpKind::Connect {
                addr,
                started: false,
                sending: false,
            },
            None,
            notify.into(),
        )
        .map_err(|(error, _)| StartError { error, bufs: () })
    }

    /// `CancelIoEx(socket, NULL)`: cancels every pending operation of this
    /// socket (and no other). Returns how many were pending.
    #[doc(alias = "CancelIoEx")]
    pub fn cancel_all(&self) -> io::Result<usize> {
        self.open()?;
        self.engine.inner.cancel_socket(&self.sock)
    }

    /// `closesocket`: every pending operation completes *aborted* (their
    /// notifications still happen), then the descriptor is closed. Later
    /// calls on this handle fail with `EBADF`. Idempotent. With other
    /// handles open ([`try_clone`](Socket::try_clone)) only this handle
    /// closes: the operations go on until the last one closes.
    ///
    /// A pending TCP receive ends with `ECONNABORTED` (Windows'
    /// `ERROR_CONNECTION_ABORTED`, 1236), every other operation with
    /// `ECANCELED` (`WSA_OPERATION_ABORTED`, 995); both are
    /// [`is_aborted`](crate::is_aborted).
    #[doc(alias = "closesocket")]
    pub fn close(&self) -> io::Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.engine.inner.close_socket(&self.sock)
    }

    pub(crate) fn associate(&self, link: crate::core::PortLink) -> io::Result<()> {
        self.open()?;
        self.engine.inner.associate(&self.sock, link)
    }

    /// `SetFileCompletionNotificationModes(socket,
    /// FILE_SKIP_COMPLETION_PORT_ON_SUCCESS)`: an operation that completes at
    /// start posts no port packet; take its result inline from the handle
    /// ([`Started::Now`]). One-way, as on Windows.
    #[doc(alias = "SetFileCompletionNotificationModes")]
    pub fn set_skip_port_on_success(&self) -> io::Result<()> {
        self.open()?;
        self.engine.inner.set_skip_on_success(&self.sock)
    }

    /// Connects a stream socket and waits (a convenience over
    /// [`connect`](Socket::connect)).
    pub fn connect_wait(&self, addr: SocketAddr) -> io::Result<()> {
        let c = self.connect(addr, Notify::None)?.wait()?;
        match c.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Accepts one connection and waits.
    pub fn accept_wait(&self) -> io::Result<(Socket, SocketAddr)> {
        let c = self.accept(Notify::None)?.wait()?;
        if let Some(e) = c.error {
            return Err(e);
        }
        match (c.data, c.addr) {
            (Some(s), Some(a)) => Ok((s, a)),
            (Some(s), None) => {
                let a = s.peer_addr()?;
                Ok((s, a))
            }
            _ => Err(io::Error::other("accept completed without a socket")),
        }
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The descriptor's number (`-1` once closed); see [`Socket::with_fd`] for
/// a borrow.
impl AsRawFd for Socket {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}
