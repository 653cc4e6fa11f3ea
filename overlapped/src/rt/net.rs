//! Async sockets with owned buffers: [`TcpListener`], [`TcpStream`],
//! [`UdpSocket`]. Every method starts one overlapped operation and awaits
//! it; buffers go in by value and come back with the result.
//!
//! The owned-buffer methods carry an `_owned` suffix (`read_owned`,
//! `write_all_owned`, ...), so they never hide the `futures-io` extension
//! methods (`AsyncReadExt::read_exact`, `AsyncWriteExt::write_all`, ...) a
//! program may also import.
//!
//! Cancel safety: `read_owned`, `read_vectored_owned`, `accept`,
//! `recv_from` are cancel-safe (dropping the future loses no data: see the
//! module docs of [`rt`](crate::rt)). `write_owned`, `write_all_owned`,
//! `send_to` and `connect` are not: a dropped send may have sent part of its
//! bytes.
//!
//! [`TcpStream`] also implements `futures-io`'s `AsyncRead` and
//! `AsyncWrite` (feature `futures-io`, on by default) and tokio's (feature
//! `tokio`, see `overlapped::tokio`), so the wider ecosystem plugs in; one
//! adapter serves both families. The traits lend borrowed slices, while the
//! kernel needs memory it owns until completion: a read receives into the
//! stream's own 16 KiB buffer and copies out of it. A write first offers
//! the caller's slice to the socket by a plain non-blocking send when none
//! of the socket's sends waits or runs (no copy, and no operation: it posts
//! no completion, sets no event, runs no routine); what the socket does not
//! take at once is copied into the stream's buffer and sent by an
//! operation, whose result comes with the next write or flush. Reads are
//! cancel-safe: the receive in flight is kept in the stream, so a dropped
//! read future loses no bytes.

#[cfg(any(feature = "futures-io", feature = "tokio"))]
use std::future::Future;
use std::io;
use std::net::{Shutdown, SocketAddr};
#[cfg(any(feature = "futures-io", feature = "tokio"))]
use std::pin::Pin;
#[cfg(any(feature = "futures-io", feature = "tokio"))]
use std::task::{Context, Poll};

#[cfg(any(feature = "futures-io", feature = "tokio"))]
use crate::Op;
#[cfg(any(feature = "futures-io", feature = "tokio"))]
use crate::buf::KeptRx;
use crate::{Engine, MsgFlags, Notify, OpOutput, Socket, StartError, Started};

/// Size of the internal buffer of the `AsyncRead`/`AsyncWrite` adapter.
#[cfg(any(feature = "futures-io", feature = "tokio"))]
const ADAPTER_BUF: usize = 16 * 1024;

/// Starts an operation (after the task's cooperative yield, see
/// [`rt::coop`](super::coop)) and awaits it, or, when the start failed,
/// gives back its error with the buffers (no completion follows a failed
/// start).
async fn finish<B: OpOutput>(
    start: impl FnOnce() -> Result<Started<B>, StartError<B>>,
) -> (io::Result<usize>, B) {
    super::coop().await;
    match start() {
        Ok(s) => s.op().await,
        Err(e) => (Err(e.error), e.bufs),
    }
}

/// An async TCP listener.
#[derive(Debug)]
pub struct TcpListener {
    sock: Socket,
}

impl TcpListener {
    /// Binds and listens on `addr` (with `SO_REUSEADDR`) on `engine`.
    pub fn bind(engine: &Engine, addr: SocketAddr) -> io::Result<TcpListener> {
        Ok(TcpListener {
            sock: Socket::tcp_listener(engine, &addr)?,
        })
    }
    /// Wraps a listening overlapped socket.
    pub fn from_socket(sock: Socket) -> TcpListener {
        TcpListener { sock }
    }
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
    /// Accepts one connection. Cancel-safe.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        super::coop().await;
        let (r, sock) = self.sock.accept(Notify::None)?.op().await;
        r?;
        let sock = sock.ok_or_else(|| io::Error::other("accept completed without a socket"))?;
        let addr = sock.peer_addr()?;
        Ok((TcpStream::from_socket(sock), addr))
    }
}

/// The adapter's receive buffer: a boxed slice (zeroed once, when it is
/// made: a receive leaves its length as it was), kept in the engine's box
/// from one receive to the next (no box made and freed per receive).
#[cfg(any(feature = "futures-io", feature = "tokio"))]
type ReadBuf = KeptRx<Box<[u8]>>;

#[cfg(any(feature = "futures-io", feature = "tokio"))]
enum ReadState {
    Idle(ReadBuf),
    Reading(Op<ReadBuf>),
    /// Bytes `pos..end` of the buffer are received and not yet taken.
    Ready {
        buf: ReadBuf,
        pos: usize,
        end: usize,
    },
}

/// The start of the adapter's receive.
#[cfg(any(feature = "futures-io", feature = "tokio"))]
type ReadStart = Result<Started<ReadBuf>, StartError<ReadBuf>>;

#[cfg(any(feature = "futures-io", feature = "tokio"))]
enum WriteState {
    Idle(Vec<u8>),
    Writing(Op<Vec<u8>>),
}

/// An async TCP stream.
pub struct TcpStream {
    sock: Socket,
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    rd: Option<ReadState>,
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    wr: Option<WriteState>,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("socket", &self.sock)
            .finish()
    }
}

impl TcpStream {
    /// Wraps a connected overlapped socket.
    pub fn from_socket(sock: Socket) -> TcpStream {
        TcpStream {
            sock,
            #[cfg(any(feature = "futures-io", feature = "tokio"))]
            rd: None,
            #[cfg(any(feature = "futures-io", feature = "tokio"))]
            wr: None,
        }
    }
    /// Connects to `addr` on `engine`. Not cancel-safe.
    pub async fn connect(engine: &Engine, addr: SocketAddr) -> io::Result<TcpStream> {
        let sock = Socket::tcp_for(engine, &addr)?;
        let (r, ()) = sock.connect(addr, Notify::None)?.op().await;
        r?;
        Ok(TcpStream::from_socket(sock))
    }
    /// The overlapped socket underneath.
    pub fn socket(&self) -> &Socket {
        &self.sock
    }
    /// Receives into `buf` (it offers its `len()`; it comes back truncated
    /// to the bytes received; 0 bytes means end of stream). Cancel-safe.
    pub async fn read_owned(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        finish(|| self.sock.recv(buf, MsgFlags::empty(), Notify::None)).await
    }
    /// Scatter receive into several buffers. Cancel-safe.
    pub async fn read_vectored_owned(
        &self,
        bufs: Vec<Vec<u8>>,
    ) -> (io::Result<usize>, Vec<Vec<u8>>) {
        finish(|| self.sock.recv(bufs, MsgFlags::empty(), Notify::None)).await
    }
    /// Sends all of `buf` (a stream send completes only when every byte is
    /// taken). Not cancel-safe.
    pub async fn write_owned(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        finish(|| self.sock.send(buf, MsgFlags::empty(), Notify::None)).await
    }
    /// Gather send of several buffers, in order. Not cancel-safe.
    pub async fn write_vectored_owned(
        &self,
        bufs: Vec<Vec<u8>>,
    ) -> (io::Result<usize>, Vec<Vec<u8>>) {
        finish(|| self.sock.send(bufs, MsgFlags::empty(), Notify::None)).await
    }
    /// Sends all of `buf` (same as [`write_owned`](Self::write_owned): overlapped stream
    /// sends are never short).
    pub async fn write_all_owned(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (r, b) = self.write_owned(buf).await;
        (r.map(|_| ()), b)
    }
    /// Receives exactly `n` bytes. `UnexpectedEof` if the stream ends first.
    pub async fn read_exact_owned(&self, n: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let (r, b) = self.read_owned(vec![0u8; n - out.len()]).await;
            if r? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the stream ended early",
                ));
            }
            out.extend_from_slice(&b);
        }
        Ok(out)
    }
}

/// The state machines behind both families of I/O traits (`futures-io`'s
/// and tokio's `AsyncRead`/`AsyncWrite`): each trait method is a thin call
/// of one of these, so both behave the same.
#[cfg(any(feature = "futures-io", feature = "tokio"))]
impl TcpStream {
    /// The read side: hands bytes already received to `put` (which takes
    /// what fits in the caller's buffer and says how many it took), or keeps
    /// one receive in flight until bytes arrive. `room`: how many bytes the
    /// caller can take; 0 returns `Ok(0)` at once, starting nothing.
    ///
    /// The receive in flight lives in the stream, not in the caller's
    /// future: a dropped read future (a `select!` branch that lost, a
    /// timeout) loses no bytes, the next read takes them.
    fn poll_read_into(
        &mut self,
        cx: &mut Context<'_>,
        room: usize,
        put: impl FnOnce(&[u8]) -> usize,
    ) -> Poll<io::Result<usize>> {
        if room == 0 {
            return Poll::Ready(Ok(0));
        }
        loop {
            // A boxed slice, not a `Vec`: a receive leaves its length as it
            // was, so the buffer is zeroed once, when it is made, and not
            // again before every receive (a `Vec` comes back truncated to
            // the bytes received, and growing it again writes every byte).
            match self.rd.take().unwrap_or_else(|| {
                ReadState::Idle(KeptRx::new(vec![0u8; ADAPTER_BUF].into_boxed_slice()))
            }) {
                ReadState::Ready { buf, pos, end } => {
                    let n = put(&buf.bufs()[pos..end]).min(end - pos);
                    self.rd = Some(if pos + n < end {
                        ReadState::Ready {
                            buf,
                            pos: pos + n,
                            end,
                        }
                    } else {
                        ReadState::Idle(buf)
                    });
                    return Poll::Ready(Ok(n));
                }
                ReadState::Idle(buf) => match self.start_read(buf, cx) {
                    // Its completion wakes this task (the start kept the
                    // waker): no poll of the handle now.
                    Ok(Started::Pending(op)) => {
                        self.rd = Some(ReadState::Reading(op));
                        return Poll::Pending;
                    }
                    Ok(s) => self.rd = Some(ReadState::Reading(s.op())),
                    Err(e) => {
                        self.rd = Some(ReadState::Idle(e.bufs));
                        return Poll::Ready(Err(e.error));
                    }
                },
                ReadState::Reading(mut op) => match Pin::new(&mut op).poll(cx) {
                    Poll::Pending => {
                        self.rd = Some(ReadState::Reading(op));
                        return Poll::Pending;
                    }
                    Poll::Ready((Err(e), buf)) => {
                        self.rd = Some(ReadState::Idle(buf));
                        return Poll::Ready(Err(e));
                    }
                    Poll::Ready((Ok(0), buf)) => {
                        self.rd = Some(ReadState::Idle(buf));
                        return Poll::Ready(Ok(0));
                    }
                    Poll::Ready((Ok(n), buf)) => {
                        self.rd = Some(ReadState::Ready {
                            end: n.min(buf.bufs().len()),
                            buf,
                            pos: 0,
                        })
                    }
                },
            }
        }
    }

    /// Starts the adapter's receive for the task of `cx`, which its
    /// completion wakes (the start keeps the waker). Under a tokio driver it is left for
    /// the driver's next turn (which submits the receives of every task
    /// that ran before it in one kernel entry, and reaps in the same one)
    /// rather than entering the kernel now. On io_uring only: the poll
    /// engine submits nothing (its receive waits for a readiness it is
    /// already registered for), and a turn would only cost it a look at its
    /// epoll set.
    fn start_read(&self, buf: ReadBuf, cx: &Context<'_>) -> ReadStart {
        #[cfg(feature = "tokio")]
        {
            let engine = self.sock.engine();
            let kick = &engine.inner.kick;
            if kick.driven() && engine.kind() == crate::EngineKind::Uring {
                let r = crate::thread::leave_unsubmitted(|| {
                    self.sock.recv_kept(buf, MsgFlags::empty(), cx.waker())
                });
                if matches!(&r, Ok(s) if s.is_pending()) {
                    kick.kick();
                    // The last driver ended since `driven`: nobody takes a
                    // turn, so the receive goes now.
                    if !kick.driven() {
                        engine.inner.flush_now();
                    }
                }
                return r;
            }
        }
        self.sock.recv_kept(buf, MsgFlags::empty(), cx.waker())
    }

    /// The write side: waits for the previous send, then offers `data` to
    /// the socket at once (what it takes is written, no copy, no
    /// operation); when it takes nothing, copies up to [`ADAPTER_BUF`]
    /// bytes of `data` and starts their send (its result comes with the
    /// next write or flush).
    fn poll_write_from(&mut self, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match self.poll_flush_sends(cx) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        // Bytes the socket takes at once go straight from the caller's
        // slice: no copy, no operation (see `send_now_borrowed`).
        if let Some(n) = self.sock.send_now_borrowed(data) {
            return Poll::Ready(Ok(n));
        }
        let mut buf = match self.wr.take() {
            Some(WriteState::Idle(b)) => b,
            _ => Vec::with_capacity(ADAPTER_BUF),
        };
        buf.clear();
        let n = data.len().min(ADAPTER_BUF);
        buf.extend_from_slice(&data[..n]);
        match self.sock.send(buf, MsgFlags::empty(), Notify::None) {
            Ok(s) => {
                self.wr = Some(WriteState::Writing(s.op()));
                Poll::Ready(Ok(n))
            }
            Err(e) => {
                self.wr = Some(WriteState::Idle(e.bufs));
                Poll::Ready(Err(e.error))
            }
        }
    }

    /// Waits for the send in flight, if any, and gives its result.
    fn poll_flush_sends(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.wr.take() {
            Some(WriteState::Writing(mut op)) => match Pin::new(&mut op).poll(cx) {
                Poll::Pending => {
                    self.wr = Some(WriteState::Writing(op));
                    Poll::Pending
                }
                Poll::Ready((r, buf)) => {
                    self.wr = Some(WriteState::Idle(buf));
                    Poll::Ready(r.map(|_| ()))
                }
            },
            other => {
                self.wr = other;
                Poll::Ready(Ok(()))
            }
        }
    }

    /// Flushes, then shuts the write side down (the peer reads
    /// end-of-stream).
    fn poll_close_write(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.poll_flush_sends(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(self.sock.shutdown(Shutdown::Write)),
            other => other,
        }
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let room = out.len();
        self.get_mut().poll_read_into(cx, room, |src| {
            let n = src.len().min(out.len());
            out[..n].copy_from_slice(&src[..n]);
            n
        })
    }
}

#[cfg(feature = "futures-io")]
impl futures_io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_from(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_sends(cx)
    }
    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close_write(cx)
    }
}

/// tokio's `AsyncRead`: the same adapter as `futures-io`'s (one receive kept
/// in flight inside the stream, so a dropped read future loses no bytes).
/// The engine must be driven: see [`crate::tokio`].
#[cfg(feature = "tokio")]
impl ::tokio::io::AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ::tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let room = buf.remaining();
        self.get_mut()
            .poll_read_into(cx, room, |src| {
                let n = src.len().min(buf.remaining());
                buf.put_slice(&src[..n]);
                n
            })
            .map(|r| r.map(|_| ()))
    }
}

/// tokio's `AsyncWrite`: the same adapter as `futures-io`'s; `poll_shutdown`
/// flushes, then shuts the write side down.
#[cfg(feature = "tokio")]
impl ::tokio::io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().poll_write_from(cx, data)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_sends(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_close_write(cx)
    }
}

/// An async UDP socket.
#[derive(Debug)]
pub struct UdpSocket {
    sock: Socket,
}

impl UdpSocket {
    /// Binds a UDP socket on `engine`.
    pub fn bind(engine: &Engine, addr: SocketAddr) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            sock: Socket::udp_bound(engine, &addr)?,
        })
    }
    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.sock.local_addr()
    }
    /// Sends one datagram to `addr`.
    pub async fn send_to(&self, buf: Vec<u8>, addr: SocketAddr) -> (io::Result<usize>, Vec<u8>) {
        finish(|| {
            self.sock
                .send_to(buf, addr, MsgFlags::empty(), Notify::None)
        })
        .await
    }
    /// Receives one datagram: its length, sender and the buffer (truncated
    /// to the bytes stored). Cancel-safe.
    pub async fn recv_from(
        &self,
        buf: Vec<u8>,
    ) -> (io::Result<(usize, Option<SocketAddr>)>, Vec<u8>) {
        super::coop().await;
        match self.sock.recv_from(buf, MsgFlags::empty(), Notify::None) {
            Ok(s) => {
                let c = s.op().completion().await;
                let addr = c.addr;
                let (r, b) = c.into_result();
                (r.map(|n| (n, addr)), b)
            }
            Err(e) => (Err(e.error), e.bufs),
        }
    }
}
