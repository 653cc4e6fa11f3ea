//! A per-operation context carried with an operation's buffers: the
//! `OVERLAPPED`-inside-a-struct pattern of a ported program, typed.

use super::held::sealed::{FixedPart, Rx, Tx};
use super::{IoBufs, IoBufsMut};

/// Buffers with a value of the program's own beside them: the per-operation
/// data a Windows program keeps in a struct around its `OVERLAPPED` (the
/// operation's kind, its connection state, a request id, ...).
///
/// It is the operation's buffers: a send takes it when `bufs` is
/// [`IoBufs`], a receive when `bufs` is [`IoBufsMut`], and it comes back,
/// moved, with the completion, whichever way the completion is made known:
/// the handle's result ([`Op::wait`](crate::Op::wait)), the completion
/// routine's argument, or a packet of a
/// [`TypedPort`](crate::TypedPort)`<WithContext<C, B>, _>` — typed in each,
/// with no tag, table or downcast. The context travels in the allocation
/// the engine makes for every operation's buffers anyway: it costs no
/// allocation of its own. It is dropped with the operation's buffers when
/// nobody takes the completion (a packet dropped unclaimed, a port closed
/// with the packet queued).
///
/// # Examples
///
/// ```
/// use overlapped::{Engine, MsgFlags, Notify, Socket, WithContext};
/// # fn main() -> std::io::Result<()> {
/// #[derive(Debug, PartialEq)]
/// enum Mode { Read, Write }
///
/// let engine = Engine::new()?;
/// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
/// let client = Socket::tcp_for(&engine, &listener.local_addr()?)?;
/// client.connect_wait(listener.local_addr()?)?;
/// let (server, _) = listener.accept_wait()?;
///
/// let io = WithContext::new(Mode::Read, vec![0u8; 16]);
/// let recv = server.recv(io, MsgFlags::empty(), Notify::None)?;
/// client.send(b"hi".to_vec(), MsgFlags::empty(), Notify::None)?.wait()?;
/// let done = recv.wait()?;
/// assert_eq!(done.data.context, Mode::Read);
/// assert_eq!(&done.data.bufs[..], b"hi");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WithContext<C, B> {
    /// The program's per-operation value.
    pub context: C,
    /// The operation's buffers.
    pub bufs: B,
}

impl<C, B> WithContext<C, B> {
    /// The buffers `bufs` with `context` beside them.
    pub fn new(context: C, bufs: B) -> Self {
        WithContext { context, bufs }
    }

    /// The context and the buffers, apart.
    pub fn into_parts(self) -> (C, B) {
        (self.context, self.bufs)
    }
}

impl<C: Send + 'static, B: IoBufs> Tx for WithContext<C, B> {
    fn tx_each(&self, f: &mut dyn FnMut(*const u8, usize)) {
        self.bufs.tx_each(f);
    }
    fn tx_one(&self) -> Option<(*const u8, usize)> {
        self.bufs.tx_one()
    }
    fn tx_len(&self) -> Option<usize> {
        self.bufs.tx_len()
    }
    fn tx_fixed(&self) -> Option<FixedPart> {
        self.bufs.tx_fixed()
    }
}

impl<C: Send + 'static, B: IoBufsMut> Rx for WithContext<C, B> {
    fn rx_each(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.bufs.rx_each(f);
    }
    fn rx_total(&self) -> Option<usize> {
        self.bufs.rx_total()
    }
    unsafe fn rx_landed(&mut self, n: usize) {
        // SAFETY: the caller's promise is about these same rooms.
        unsafe { self.bufs.rx_landed(n) }
    }
    fn rx_fixed(&mut self) -> Option<FixedPart> {
        self.bufs.rx_fixed()
    }
}

impl<C: Send + 'static, B: IoBufs> IoBufs for WithContext<C, B> {
    fn buf_count(&self) -> usize {
        self.bufs.buf_count()
    }
}

impl<C: Send + 'static, B: IoBufsMut> IoBufsMut for WithContext<C, B> {}
