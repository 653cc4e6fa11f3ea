//! A completion port typed over its operations' completion and its
//! sockets' per-handle data.

use std::any::{Any, TypeId};
use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{Body, CompletionPort, Packet};
use crate::core::PortLink;
use crate::net::Socket;
use crate::op::{Completion, OpOutput};

/// A completion port whose packets come back typed: each socket is
/// associated with a value of the program's type `D` (the completion key
/// as **per-handle data**, e.g. the connection's state), and every
/// operation whose packet goes to the port hands back a `C` (its buffers,
/// with the per-operation context the program put beside them:
/// [`WithContext`](crate::WithContext)). A worker gets both from the
/// packet: no table keyed by the completion key, no tag, no guess of the
/// buffer type.
///
/// Everything else is a [`CompletionPort`]'s behaviour (FIFO packets, LIFO
/// waiters, concurrency, whoever waits drives, closing). Operations go to it as to any port: started with
/// [`Notify::Port`](crate::Notify::Port) on an associated socket (the tag
/// comes back in [`OpPacket::tag`]).
///
/// * A start whose buffers are not a `C` on a socket associated with this
///   port fails at the call (`InvalidInput`): the port's packets are all of
///   its type. An operation started before the association (SPEC k09) with
///   another type still posts its packet here, as [`PacketOf::Other`].
/// * Every packet of an associated socket carries an `Arc` clone of its
///   data: also the packets that come after the socket was closed (the
///   aborted operations, a completion queued before the close). The port
///   keeps the socket's data until the socket is closed and its last
///   operation completed; a `D` that owns its socket (the usual connection
///   state) is released by closing the socket.
/// * A `C` that nobody takes is dropped, not leaked: with a packet dropped
///   unclaimed, a port closed with packets queued, an operation that
///   completes with no port.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use overlapped::{Engine, MsgFlags, Notify, OpPacket, PacketOf, Socket, TypedPort, WithContext};
///
/// # fn main() -> std::io::Result<()> {
/// enum Mode { Read, Write }
/// struct Conn { socket: Socket, name: &'static str }
///
/// let engine = Engine::new()?;
/// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
/// let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
/// client.connect_wait(listener.local_addr()?)?;
/// let (server, _) = listener.accept_wait()?;
///
/// let port: TypedPort<WithContext<Mode, Vec<u8>>, Conn> = TypedPort::new(0);
/// let conn = Arc::new(Conn { socket: server, name: "first" });
/// port.associate(&conn.socket, conn.clone())?;
/// let io = WithContext::new(Mode::Read, vec![0u8; 16]);
/// let _op = conn.socket.recv(io, MsgFlags::empty(), Notify::Port(0))?;
/// client.send(b"hello".to_vec(), MsgFlags::empty(), Notify::None)?.wait()?;
///
/// let Some(PacketOf::Op(OpPacket { data, completion, .. })) =
///     port.get_queued(Some(Duration::from_secs(5)))?
/// else {
///     panic!("an operation's packet");
/// };
/// assert_eq!(data.name, "first"); // the connection, from the packet
/// assert!(matches!(completion.data.context, Mode::Read));
/// assert_eq!(&completion.data.bufs[..], b"hello");
/// data.socket.close()?; // releases the port's hold on `conn`
/// # Ok(()) }
/// ```
pub struct TypedPort<C, D = ()> {
    port: CompletionPort,
    _t: PhantomData<fn() -> (C, D)>,
}

/// One packet of a [`TypedPort`].
pub enum PacketOf<C, D> {
    /// An operation's packet, typed.
    Op(OpPacket<C, D>),
    /// A packet queued by [`TypedPort::post`], or (only when an operation
    /// of another type was started on a socket before its association) an
    /// operation's packet of another type, as [`CompletionPort`] gives
    /// them.
    Other(Packet),
}

/// An operation's packet on a [`TypedPort`]: the socket's per-handle data
/// and the completion with its buffers and context.
#[non_exhaustive]
pub struct OpPacket<C, D> {
    /// The data the socket was associated with.
    pub data: Arc<D>,
    /// The tag the operation was started with (`Notify::Port(tag)`; 0 for
    /// one started with `Notify::None` before the association).
    pub tag: u64,
    /// The completion: error, bytes, flags, address, and the `C` the
    /// operation was started with.
    pub completion: Completion<C>,
}

impl<C, D> fmt::Debug for OpPacket<C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpPacket")
            .field("tag", &self.tag)
            .field("bytes", &self.completion.bytes)
            .field("error", &self.completion.error)
            .finish_non_exhaustive()
    }
}

impl<C, D> fmt::Debug for PacketOf<C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PacketOf::Op(p) => f.debug_tuple("Op").field(p).finish(),
            PacketOf::Other(p) => f.debug_tuple("Other").field(p).finish(),
        }
    }
}

impl<C, D> fmt::Debug for TypedPort<C, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TypedPort")
            .field("concurrency", &self.port.concurrency())
            .finish()
    }
}

impl<C, D> Clone for TypedPort<C, D> {
    fn clone(&self) -> Self {
        TypedPort {
            port: self.port.clone(),
            _t: PhantomData,
        }
    }
}

impl<C: OpOutput, D: Send + Sync + 'static> TypedPort<C, D> {
    /// A port that lets `concurrency` threads run at once (0: the number
    /// of CPUs), as [`CompletionPort::new`].
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn new(concurrency: usize) -> Self {
        TypedPort {
            port: CompletionPort::new(concurrency),
            _t: PhantomData,
        }
    }

    /// The concurrency value.
    pub fn concurrency(&self) -> usize {
        self.port.concurrency()
    }

    /// `CreateIoCompletionPort(socket, port, key, 0)` with `data` as the
    /// key: every packet of the socket carries a clone of it. As
    /// [`CompletionPort::associate`] otherwise.
    ///
    /// # Errors
    /// `InvalidInput` when the socket is already associated with a port;
    /// `EBADF` for a closed socket.
    #[doc(alias = "CreateIoCompletionPort")]
    pub fn associate(&self, socket: &Socket, data: Arc<D>) -> io::Result<()> {
        socket.associate(PortLink {
            sink: self.port.inner.clone(),
            key: 0,
            data: Some(data),
            ty: Some(TypeId::of::<Completion<C>>()),
        })?;
        self.port.inner.add_engine(socket.engine());
        Ok(())
    }

    /// `PostQueuedCompletionStatus`: queues a user packet, taken as
    /// [`PacketOf::Other`] (see [`CompletionPort::post`]).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is closed.
    #[doc(alias = "PostQueuedCompletionStatus")]
    pub fn post<P: Any + Send>(&self, key: usize, bytes: usize, payload: P) -> io::Result<()> {
        self.port.post(key, bytes, payload)
    }

    /// `GetQueuedCompletionStatus`: one packet, or `Ok(None)` when
    /// `timeout` passes (see [`CompletionPort::get_queued`]).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is (or gets) closed.
    #[doc(alias = "GetQueuedCompletionStatus")]
    pub fn get_queued(&self, timeout: Option<Duration>) -> io::Result<Option<PacketOf<C, D>>> {
        Ok(self.port.get_queued(timeout)?.map(typed))
    }

    /// `GetQueuedCompletionStatusEx`: up to `max` packets (see
    /// [`CompletionPort::get_queued_many`]).
    ///
    /// # Errors
    /// `BrokenPipe` when the port is (or gets) closed; `InvalidInput` for
    /// `max == 0`.
    #[doc(alias = "GetQueuedCompletionStatusEx")]
    pub fn get_queued_many(
        &self,
        max: usize,
        timeout: Option<Duration>,
    ) -> io::Result<Vec<PacketOf<C, D>>> {
        let v = self.port.get_queued_many(max, timeout)?;
        Ok(v.into_iter().map(typed).collect())
    }

    /// Closes the port: every waiter wakes with an error, queued packets
    /// are dropped with their buffers, contexts and data clones.
    pub fn close(&self) {
        self.port.close();
    }
}

/// A packet of a typed port's queue, typed: an operation's packet of the
/// port's type from an associated socket, else as it is.
fn typed<C: OpOutput, D: Send + Sync + 'static>(p: Packet) -> PacketOf<C, D> {
    let Packet {
        key,
        tag,
        bytes,
        error,
        data,
        body,
    } = p;
    match (body, data) {
        (Body::Op(raw, conv), Some(d)) if conv.0 == TypeId::of::<Completion<C>>() => {
            match d.downcast::<D>() {
                Ok(data) => {
                    let mut completion = C::from_raw(raw);
                    completion.error = error;
                    PacketOf::Op(OpPacket {
                        data,
                        tag,
                        completion,
                    })
                }
                // Only this port's `associate` gives its sockets data, a `D`.
                Err(d) => PacketOf::Other(Packet {
                    key,
                    tag,
                    bytes,
                    error,
                    data: Some(d),
                    body: Body::Op(raw, conv),
                }),
            }
        }
        (body, data) => PacketOf::Other(Packet {
            key,
            tag,
            bytes,
            error,
            data,
            body,
        }),
    }
}
