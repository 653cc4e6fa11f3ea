//! The extension functions a real IOCP server is built on (Microsoft's
//! `mswsock` calls): `AcceptEx` with its first data or into a caller-made
//! socket, `ConnectEx` with data, `DisconnectEx` with reuse and
//! `TransmitFile` (SPEC x01–x05). Each is an operation like `send` and
//! `recv`: completed now or pending, owning its buffers, made known by any
//! of the four notifications, cancelled and aborted the same way (x08).

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::Socket;
use crate::buf::{IoBuf, IoBufs, IoBufsMut, erase_rx, erase_tx, take_back};
use crate::core::RawDone;
use crate::op::{Completion, Notify, OpOutput, StartError, Started};
use crate::sys::OpKind;
use crate::sys::ext::{AcceptEx, Reserve, Transmit};

/// What an [`accept_ex`](Socket::accept_ex) hands back: the new socket, the
/// receive buffers with the connection's first data, and both addresses
/// (what `GetAcceptExSockaddrs` parses out of `AcceptEx`'s buffer).
#[derive(Debug)]
#[non_exhaustive]
pub struct Accepted<B> {
    /// The accepted connection as a new overlapped socket; `None` when the
    /// accept went into a caller-made socket (that socket is connected now)
    /// or failed.
    pub socket: Option<Socket>,
    /// The receive buffers, holding the first data ([`Completion::bytes`]
    /// of it; 0 when the client closed without sending).
    pub bufs: B,
    /// The connection's local address (the listener's, or the address a
    /// wildcard listener was reached on).
    pub local_addr: Option<SocketAddr>,
    /// The client's address (also in [`Completion::addr`]).
    pub peer_addr: Option<SocketAddr>,
}

impl<B: IoBufsMut> OpOutput for Accepted<B> {
    fn from_raw(mut raw: RawDone) -> Completion<Accepted<B>> {
        let bufs = match raw.bufs.take().and_then(take_back::<B>) {
            Some(b) => b,
            // The driver stores exactly the `B` the typed start gave it.
            None => unreachable!("operation buffers of another type"),
        };
        let socket = Socket::accepted_of(&mut raw);
        let accepted = Accepted {
            socket,
            bufs,
            local_addr: raw.outcome.local.take().map(|a| *a),
            peer_addr: raw.outcome.addr,
        };
        Completion {
            error: raw.outcome.error.take(),
            bytes: raw.outcome.bytes,
            flags: raw.outcome.flags,
            addr: raw.outcome.addr,
            data: accepted,
        }
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Socket {
    /// `AcceptEx` with a receive buffer, optionally into a caller-made
    /// socket (SPEC x01, x02).
    ///
    /// With room in `bufs` the operation completes when the connection's
    /// first data arrives, with that data (`bytes` = its length), or with 0
    /// bytes when the client closes without sending; with no room (e.g.
    /// `Vec::new()`) it completes as soon as a connection is accepted. A
    /// connection that waits for its first data does not hold up the
    /// listener's other accepts. Both addresses come with the completion
    /// ([`Accepted`]).
    ///
    /// `into`: the accepted connection goes into this socket (created
    /// beforehand on the same engine, unconnected, maybe reused after
    /// [`disconnect`](Socket::disconnect)); while the accept is pending the
    /// socket is reserved: `connect` on it fails with `InvalidInput`
    /// (`WSAEINVAL`). **(ours)** Linux cannot accept into an existing
    /// socket: the connection's descriptor is moved onto the socket's
    /// (`dup3`), so options set on the socket before are not carried over
    /// (set them on the listener, whose accepted sockets inherit them, or
    /// after the completion); [`raw_fd`](Socket::raw_fd) keeps its number.
    /// Closing the reserved socket ends the accept *aborted*; an accept
    /// into it that ends with an error or aborted after it took its
    /// connection closes that connection and leaves the socket free.
    ///
    /// Windows' `AcceptEx` also writes both addresses into the buffer; here
    /// they come as fields, so no room is needed for them.
    ///
    /// # Errors (at start)
    /// `InvalidInput` on a socket that is not listening, for an `into`
    /// socket of another engine, not a stream, connected, connecting,
    /// listening, with operations in flight or reserved by another accept;
    /// as [`recv`](Socket::recv) for the buffers.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// use overlapped::{Engine, Notify, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
    /// let accept = listener.accept_ex(None, vec![0u8; 64], Notify::None)?;
    /// let mut client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// client.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    /// let done = accept.wait()?;
    /// assert!(done.is_ok());
    /// assert_eq!(&done.data.bufs[..done.bytes], b"GET / HTTP/1.0\r\n\r\n");
    /// assert_eq!(done.data.peer_addr, Some(client.local_addr()?));
    /// assert_eq!(done.data.local_addr, Some(listener.local_addr()?));
    /// assert!(done.data.socket.is_some());
    /// # Ok(()) }
    /// ```
    #[doc(alias = "AcceptEx")]
    #[doc(alias = "GetAcceptExSockaddrs")]
    pub fn accept_ex<B: IoBufsMut>(
        &self,
        into: Option<&Socket>,
        bufs: B,
        notify: impl Into<Notify<Accepted<B>>>,
    ) -> Result<Started<Accepted<B>>, StartError<B>> {
        let target = match into {
            None => None,
            Some(t) if !Arc::ptr_eq(&t.engine.inner, &self.engine.inner) => {
                return Err(StartError {
                    error: invalid("the accept socket belongs to another engine"),
                    bufs,
                });
            }
            Some(t) => match t.open().and_then(|()| t.engine.inner.reserve(&t.sock)) {
                Ok(r) => Some(r),
                Err(error) => return Err(StartError { error, bufs }),
            },
        };
        let mut erased = erase_rx(bufs);
        let recv = erased.as_bufs().total_len().is_some_and(|n| n > 0);
        let kind = OpKind::AcceptEx(Box::new(AcceptEx {
            recv,
            into: target.clone(),
            conn: None,
        }));
        let r = self.start_checked(kind, erased, notify.into(), take_back::<B>);
        match (&r, target) {
            // No accept holds the socket.
            (Err(_), Some(t)) => {
                t.settle(Reserve::Released);
            }
            // Closing the socket cancels the accept (weakly held: the
            // accept holds the socket's reservation).
            (Ok(started), Some(t)) => {
                let (core, sock, id) = (
                    Arc::downgrade(&self.engine.inner),
                    Arc::downgrade(&self.sock),
                    match started {
                        Started::Now { op, .. } | Started::Pending(op) => op.id,
                    },
                );
                t.set_on_close(Box::new(move || {
                    if let (Some(core), Some(sock)) = (core.upgrade(), sock.upgrade()) {
                        let _ = core.cancel_op(&sock, id);
                    }
                }));
            }
            (_, None) => {}
        }
        r
    }

    /// `ConnectEx` with send data (SPEC x03): connects to `addr`, then sends
    /// the buffers; the completion reports the bytes sent, and the peer
    /// reads them after the connection. **(ours)** An unbound socket is
    /// bound for the caller.
    ///
    /// # Errors (at start)
    /// As [`connect`](Socket::connect), and as [`send`](Socket::send) for
    /// the buffers.
    #[doc(alias = "ConnectEx")]
    pub fn connect_with<B: IoBufs>(
        &self,
        addr: SocketAddr,
        bufs: B,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        self.start_checked(
            OpKind::Connect {
                addr,
                started: false,
                sending: false,
            },
            erase_tx(bufs),
            notify.into(),
            take_back::<B>,
        )
    }

    /// `DisconnectEx` (SPEC x04): a graceful close of the sending side as
    /// an operation. It is always pending at first (as on Windows), then
    /// succeeds with 0 bytes once the sends started before it went out;
    /// afterwards sends fail with `ESHUTDOWN` (`WSAESHUTDOWN`) and the peer
    /// reads end-of-stream, while receiving still works.
    ///
    /// With `reuse` (`TF_REUSE_SOCKET`) the connection is closed instead
    /// when the operation completes, the socket's other pending operations
    /// end aborted, and the same handle is ready for a new
    /// [`accept_ex`](Socket::accept_ex) (as its `into` socket) or
    /// [`connect`](Socket::connect). **(ours)** Linux cannot disconnect a
    /// TCP socket for reuse: the handle is given a fresh socket of the same
    /// family on the same descriptor number; options set before are not
    /// carried over.
    ///
    /// # Errors (at start)
    /// `NotConnected` on an unconnected or datagram socket; `EBADF` on a
    /// closed socket.
    #[doc(alias = "DisconnectEx")]
    pub fn disconnect(
        &self,
        reuse: bool,
        notify: impl Into<Notify<()>>,
    ) -> Result<Started<()>, StartError<()>> {
        self.start(OpKind::Disconnect { reuse }, None, notify.into())
            .map_err(|(error, _)| StartError { error, bufs: () })
    }

    /// `TransmitFile` (SPEC x05): `head`, then `len` bytes of `file` from
    /// `offset` (`len` 0: to the end of the file), then `tail`, sent in that
    /// order as one operation on a connected stream socket; the completion's
    /// bytes count all three, and the buffers come back as `[head, tail]`
    /// (pass empty ones for none). The file's bytes go from the page cache
    /// to the socket inside the kernel, never through user space: io_uring
    /// splices them through a pipe with `SPLICE` requests (no system call
    /// of their own), the poll engine uses `sendfile` when the socket has
    /// room. The file is read at `offset` (its own
    /// position is neither used nor moved, like `OVERLAPPED.Offset`). The
    /// operation keeps its own descriptor of the file: the caller may close
    /// `file` at once.
    ///
    /// # Errors (at start)
    /// `NotConnected` on an unconnected or datagram socket; `InvalidInput`
    /// when `file` is not a regular file or the region runs past its end
    /// (`WSAEINVAL`); `ESHUTDOWN` after a shutdown of the sending side; the
    /// OS error of duplicating the file's descriptor.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::{Read, Write};
    /// use overlapped::{Engine, Notify, Socket};
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let socket = Socket::tcp_for(&engine, &listener.local_addr()?)?;
    /// socket.connect_wait(listener.local_addr()?)?;
    /// let (mut peer, _) = listener.accept()?;
    ///
    /// let path = std::env::temp_dir().join(format!("transmit-doc-{}", std::process::id()));
    /// std::fs::write(&path, b"0123456789")?;
    /// let file = std::fs::File::open(&path)?;
    /// let head = b"<".to_vec();
    /// let tail = b">".to_vec();
    /// let sent = socket.transmit_file(&file, 2, 5, head, tail, Notify::None)?.wait()?;
    /// assert_eq!(sent.bytes, 7);
    /// socket.shutdown(std::net::Shutdown::Write)?;
    /// let mut got = Vec::new();
    /// peer.read_to_end(&mut got)?;
    /// assert_eq!(got, b"<23456>");
    /// # std::fs::remove_file(&path)?;
    /// # Ok(()) }
    /// ```
    #[doc(alias = "TransmitFile")]
    pub fn transmit_file<B: IoBuf>(
        &self,
        file: &impl AsFd,
        offset: u64,
        len: u64,
        head: B,
        tail: B,
        notify: impl Into<Notify<[B; 2]>>,
    ) -> Result<Started<[B; 2]>, StartError<[B; 2]>> {
        let region = (|| {
            let fd = file.as_fd();
            let meta = rustix::fs::fstat(fd).map_err(crate::sys::to_io)?;
            if rustix::fs::FileType::from_raw_mode(meta.st_mode)
                != rustix::fs::FileType::RegularFile
            {
                return Err(invalid("TransmitFile needs a regular file"));
            }
            let size = meta.st_size as u64;
            if offset > size {
                return Err(invalid("the file region starts past the end of the file"));
            }
            let len = if len == 0 { size - offset } else { len };
            if len > size - offset {
                return Err(invalid("the file region runs past the end of the file"));
            }
            let dup = fd.try_clone_to_owned()?;
            Ok(Transmit {
                file: dup,
                offset,
                len,
                pipe: None,
            })
        })();
        let bufs = [head, tail];
        let t = match region {
            Ok(t) => t,
            Err(error) => return Err(StartError { error, bufs }),
        };
        self.start_checked(
            OpKind::Transmit(Box::new(t)),
            erase_tx(bufs),
            notify.into(),
            take_back::<[B; 2]>,
        )
    }
}
