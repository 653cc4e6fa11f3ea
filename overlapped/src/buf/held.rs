//! How the engine holds an operation's buffers: one buffer, or a `Vec` or
//! array of them, seen as pieces ([`IoBufs`]/[`IoBufsMut`]), erased into a
//! box that stays put while the kernel may use it, and handed back.

#![allow(unsafe_code)]

use std::any::Any;
use std::io::IoSlice;

use super::{Control, FixedBuf, IOV_MAX, IoBuf, IoBufMut};

/// One buffer of an operation, as the engine sees it: the user's
/// [`IoBuf`]/[`IoBufMut`] types and the crate's inline arrays.
trait TxPiece: Send + 'static {
    fn tx(&self) -> (*const u8, usize);
}

trait RxPiece: TxPiece {
    fn rx(&mut self) -> (*mut u8, usize);
    fn room(&self) -> usize;
    /// # Safety
    /// As [`IoBufMut::set_received`].
    unsafe fn landed(&mut self, n: usize);
}

impl<T: IoBuf> TxPiece for T {
    fn tx(&self) -> (*const u8, usize) {
        (self.stable_ptr(), self.bytes_len())
    }
}

impl<T: IoBufMut> RxPiece for T {
    fn rx(&mut self) -> (*mut u8, usize) {
        (self.stable_mut_ptr(), self.room_len())
    }
    fn room(&self) -> usize {
        self.room_len()
    }
    unsafe fn landed(&mut self, n: usize) {
        // SAFETY: the caller keeps `set_received`'s contract.
        unsafe { self.set_received(n) }
    }
}

/// An inline array: its bytes move with the value, which the engine keeps
/// in a box of its own from before it takes a pointer until it hands the
/// value back (`ErasedBufs`), so they stay put while the kernel sees them.
impl<const N: usize> TxPiece for [u8; N] {
    fn tx(&self) -> (*const u8, usize) {
        (self.as_ptr(), N)
    }
}

impl<const N: usize> RxPiece for [u8; N] {
    fn rx(&mut self) -> (*mut u8, usize) {
        (self.as_mut_ptr(), N)
    }
    fn room(&self) -> usize {
        N
    }
    unsafe fn landed(&mut self, _n: usize) {}
}

/// What every buffer type is to the operations: a slice of pieces. One
/// buffer is a slice of one.
trait Pieces: Send + 'static {
    type Piece: TxPiece;
    fn pieces(&self) -> &[Self::Piece];
    fn pieces_mut(&mut self) -> &mut [Self::Piece];
}

impl<P: TxPiece> Pieces for P {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        std::slice::from_ref(self)
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        std::slice::from_mut(self)
    }
}

impl<P: TxPiece> Pieces for Vec<P> {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        self
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        self
    }
}

impl<P: TxPiece, const N: usize> Pieces for [P; N] {
    type Piece = P;
    fn pieces(&self) -> &[P] {
        self
    }
    fn pieces_mut(&mut self) -> &mut [P] {
        self
    }
}

pub(crate) use sealed::FixedPart;

pub(super) mod sealed {
    /// The window of an operation's one [`FixedBuf`](super::FixedBuf), for the engine: its
    /// pool, its index in the pool, and the window's start and length (inside
    /// that buffer). Made only from a `FixedBuf` the engine holds.
    #[derive(Debug, Clone, Copy)]
    pub struct FixedPart {
        pub(crate) pool: u64,
        pub(crate) index: u16,
        pub(crate) ptr: *mut u8,
        pub(crate) len: usize,
    }

    /// The pieces of a send, for the engine.
    pub trait Tx: Send + 'static {
        /// Start and length of each piece's bytes to send, in order.
        #[doc(hidden)]
        fn tx_each(&self, f: &mut dyn FnMut(*const u8, usize));
        /// The one piece's, when there is exactly one.
        #[doc(hidden)]
        fn tx_one(&self) -> Option<(*const u8, usize)>;
        /// The total length, `None` when it overflows.
        #[doc(hidden)]
        fn tx_len(&self) -> Option<usize>;
        /// The one piece's registered buffer, when there is exactly one
        /// piece and it is a [`FixedBuf`](super::FixedBuf).
        #[doc(hidden)]
        fn tx_fixed(&self) -> Option<FixedPart> {
            None
        }
    }
    /// The pieces of a receive, for the engine.
    pub trait Rx: Tx {
        /// Start and length of each piece's room, in order.
        #[doc(hidden)]
        fn rx_each(&mut self, f: &mut dyn FnMut(*mut u8, usize));
        #[doc(hidden)]
        fn rx_total(&self) -> Option<usize>;
        /// Records a receive of `n` bytes, scattered in array order.
        ///
        /// # Safety
        /// The first `n` bytes of the rooms, in array order, were written.
        #[doc(hidden)]
        unsafe fn rx_landed(&mut self, n: usize);
        /// The one piece's registered buffer and its room, when there is
        /// exactly one piece and it is a [`FixedBuf`](super::FixedBuf).
        #[doc(hidden)]
        fn rx_fixed(&mut self) -> Option<FixedPart> {
            None
        }
    }
}

impl<T: Pieces> sealed::Tx for T {
    fn tx_each(&self, f: &mut dyn FnMut(*const u8, usize)) {
        for b in self.pieces() {
            let (p, n) = b.tx();
            f(p, n);
        }
    }
    fn tx_one(&self) -> Option<(*const u8, usize)> {
        match self.pieces() {
            [b] => Some(b.tx()),
            _ => None,
        }
    }
    fn tx_len(&self) -> Option<usize> {
        self.pieces()
            .iter()
            .try_fold(0usize, |acc, b| acc.checked_add(b.tx().1))
    }
    fn tx_fixed(&self) -> Option<FixedPart> {
        let [b] = self.pieces() else { return None };
        let f = (b as &dyn Any).downcast_ref::<FixedBuf>()?;
        Some(FixedPart {
            pool: f.slot.pool_id(),
            index: f.slot.index(),
            ptr: f.stable_ptr().cast_mut(),
            len: f.bytes_len(),
        })
    }
}

impl<T: Pieces> sealed::Rx for T
where
    T::Piece: RxPiece,
{
    fn rx_each(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        for b in self.pieces_mut() {
            let (p, n) = b.rx();
            f(p, n);
        }
    }
    fn rx_total(&self) -> Option<usize> {
        self.pieces()
            .iter()
            .try_fold(0usize, |acc, b| acc.checked_add(b.room()))
    }
    unsafe fn rx_landed(&mut self, mut n: usize) {
        for b in self.pieces_mut() {
            let here = n.min(b.room());
            // The caller says the first `n` bytes of the rooms were written.
            // SAFETY: `here` of them are this piece's first bytes.
            unsafe { b.landed(here) };
            n -= here;
        }
    }
    fn rx_fixed(&mut self) -> Option<FixedPart> {
        let [b] = self.pieces_mut() else { return None };
        let f = (b as &mut dyn Any).downcast_mut::<FixedBuf>()?;
        Some(FixedPart {
            pool: f.slot.pool_id(),
            index: f.slot.index(),
            ptr: f.stable_mut_ptr(),
            len: f.room_len(),
        })
    }
}

/// Buffers a send can own: one [`IoBuf`] (a `Vec<u8>`, a [`Slice`](super::Slice), a
/// boxed slice or array, an array `[u8; N]`, a type of the program's own,
/// `bytes::Bytes` or `BytesMut` with the `bytes` feature, ...), or a
/// `Vec<_>` or array `[_; N]` of one such type (gathered in array order).
///
/// Implemented by the crate for those shapes only; bring a buffer type by
/// implementing [`IoBuf`].
pub trait IoBufs: sealed::Tx {
    /// Number of buffers in the array.
    fn buf_count(&self) -> usize;
}

/// Buffers a receive can own: one [`IoBufMut`], or a `Vec<_>` or array
/// `[_; N]` of one such type (scattered in array order).
///
/// Every `IoBufsMut` is an [`IoBufs`]: what a receive hands back can be
/// sent.
pub trait IoBufsMut: IoBufs + sealed::Rx {}

impl<T: Pieces> IoBufs for T {
    fn buf_count(&self) -> usize {
        self.pieces().len()
    }
}

impl<T: Pieces> IoBufsMut for T where T::Piece: RxPiece {}

/// Checks an operation's buffers at start: at least one buffer, at most
/// [`IOV_MAX`], and a total length that fits the kernel's `ssize_t`.
/// Returns the total length.
pub(crate) fn check_bufs(bufs: &dyn RawBufs) -> std::io::Result<usize> {
    use std::io::{Error, ErrorKind};
    let n = bufs.buf_count();
    if n == 0 {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            "an operation needs at least one buffer (the buffer array is empty)",
        ));
    }
    if n > IOV_MAX {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("{n} buffers is more than the system allows (IOV_MAX = {IOV_MAX})"),
        ));
    }
    let total = bufs
        .total_len()
        .filter(|&t| t <= isize::MAX as usize)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidInput,
                "the buffers' total length overflows",
            )
        })?;
    Ok(total)
}

/// An operation's buffers as the engine sees them: the windows of its
/// direction (the bytes to send, or the room of a receive), in array order.
pub(crate) trait RawBufs: Send {
    /// Number of buffers.
    fn buf_count(&self) -> usize;
    /// The windows' total length, `None` when it overflows.
    fn total_len(&self) -> Option<usize>;
    /// Calls `f` with the start pointer and length of each window, in
    /// order, for the kernel. A send's windows are only ever read through
    /// them (`*mut` for the iovecs).
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize));
    /// A send's windows, for a send in user space (a receive's: none).
    fn io_slices(&self) -> Vec<IoSlice<'_>>;
    /// A send's one window, when it has exactly one (the common case, which
    /// needs no iovec array); `None` for a receive.
    fn one(&self) -> Option<&[u8]>;
    /// Copies `src` into a receive's room past its first `skip` bytes, in
    /// array order: the bytes copied, and the room there was past `skip`
    /// (a send has none).
    fn copy_in(&mut self, skip: usize, src: &[u8]) -> (usize, usize);
    /// Records that the first `n` bytes of a receive's room hold received
    /// data, as the kernel (or [`copy_in`](RawBufs::copy_in)) reported
    /// writing them. The last record is applied to the buffers when they
    /// are handed back ([`take_back`]); nothing for a send. (`n` beyond the
    /// room is clamped to it.)
    ///
    /// # Safety
    /// The first `n` bytes of the room, in array order, were written since
    /// the buffers were given to the engine (by the kernel, as a completion
    /// or a system call's result reported, or by `copy_in`): the record
    /// makes them the buffers' initialized length (`Vec::set_len`,
    /// `BytesMut::set_len`, a `FixedBuf`'s length), and
    /// [`received`](RawBufs::received) reads them.
    unsafe fn set_received(&mut self, n: usize);
    /// Appends the first `n` bytes received (at most the recorded count) to
    /// `out`, in array order (nothing for a send).
    fn received(&mut self, n: usize, out: &mut Vec<u8>);
    /// The window of the operation's direction, when the buffers are
    /// exactly one [`FixedBuf`]: the bytes to send, or a receive's room.
    fn fixed(&mut self) -> Option<FixedPart>;
    /// The control buffer of a message operation (`recv_msg`, `send_msg`)
    /// that passes control data: start and length of a receive's room or of
    /// the bytes to send. `None` for every other operation.
    fn control(&mut self) -> Option<(*mut u8, usize)> {
        None
    }
    /// Records that the first `n` bytes of the control room hold control
    /// messages (nothing without a control buffer).
    ///
    /// # Safety
    /// The kernel wrote those `n` bytes of the room [`control`](RawBufs::control)
    /// gave, as the call's `msg_controllen` reported.
    unsafe fn set_control(&mut self, _n: usize) {}
}

/// Buffers with their type erased while the engine holds them: a send's
/// ([`erase_tx`]) or a receive's ([`erase_rx`]), always in the box these
/// functions make, from which only [`take_back`] moves them out.
pub(crate) trait ErasedBufs: RawBufs {
    fn as_bufs(&mut self) -> &mut dyn RawBufs;
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send>;
}

/// A send's buffers.
struct Tx<B>(B);

/// A receive's buffers and the bytes recorded as received.
struct Rx<B> {
    bufs: B,
    landed: Option<usize>,
}

/// Boxes a send's buffers for the engine (before any pointer is taken).
pub(crate) fn erase_tx<B: IoBufs>(bufs: B) -> Box<dyn ErasedBufs> {
    Box::new(Tx(bufs))
}

/// Boxes a receive's buffers for the engine (before any pointer is taken).
pub(crate) fn erase_rx<B: IoBufsMut>(bufs: B) -> Box<dyn ErasedBufs> {
    Box::new(Rx { bufs, landed: None })
}

/// The buffers the engine was given, back out of their box, with a
/// receive's record applied ([`IoBufMut::set_received`]). `None` when they
/// are not a `B` (which a typed start never does).
pub(crate) fn take_back<B: 'static>(bufs: Box<dyn ErasedBufs>) -> Option<B> {
    match bufs.into_any().downcast::<Tx<B>>() {
        Ok(tx) => Some(tx.0),
        Err(any) => any.downcast::<Rx<B>>().ok().map(|rx| rx.bufs),
    }
}

/// A receive's buffers kept in the box the engine holds them in, from one
/// receive to the next (the `AsyncRead` adapter of `rt::TcpStream`): the
/// box is made once, not for every receive, and comes back from the
/// engine as it went in. Its bytes are read in place
/// ([`bufs`](KeptRx::bufs)) between receives.
#[cfg(any(feature = "futures-io", feature = "tokio"))]
pub(crate) struct KeptRx<B>(Box<Rx<B>>);

#[cfg(any(feature = "futures-io", feature = "tokio"))]
impl<B: IoBufsMut> KeptRx<B> {
    /// Boxes `bufs` for their first receive.
    pub(crate) fn new(bufs: B) -> Self {
        KeptRx(Box::new(Rx { bufs, landed: None }))
    }

    /// The buffers, with the last completed receive's bytes applied.
    pub(crate) fn bufs(&self) -> &B {
        &self.0.bufs
    }

    /// The box, for the engine (the same one: no allocation).
    pub(crate) fn erase(self) -> Box<dyn ErasedBufs> {
        self.0
    }

    /// The box back from the engine, the receive's record applied. `None`
    /// when it is not a `KeptRx<B>`'s (which a start with one never hands
    /// back).
    pub(crate) fn back(bufs: Box<dyn ErasedBufs>) -> Option<Self> {
        bufs.into_any().downcast::<Rx<B>>().ok().map(KeptRx)
    }
}

impl<B: IoBufs> RawBufs for Tx<B> {
    fn buf_count(&self) -> usize {
        self.0.buf_count()
    }
    fn total_len(&self) -> Option<usize> {
        self.0.tx_len()
    }
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.0.tx_each(&mut |p, n| f(p.cast_mut(), n));
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        let mut out = Vec::with_capacity(self.0.buf_count());
        self.0.tx_each(&mut |p, n| {
            // `IoBuf` (or the inline array, boxed with `self`) promises `n`
            // initialized bytes at `p` that nobody writes while the engine
            // holds the value.
            // SAFETY: so while `&self` borrows the value.
            out.push(IoSlice::new(unsafe { std::slice::from_raw_parts(p, n) }));
        });
        out
    }
    fn one(&self) -> Option<&[u8]> {
        let (p, n) = self.0.tx_one()?;
        // SAFETY: as in `io_slices`.
        Some(unsafe { std::slice::from_raw_parts(p, n) })
    }
    fn copy_in(&mut self, _skip: usize, _src: &[u8]) -> (usize, usize) {
        (0, 0)
    }
    unsafe fn set_received(&mut self, _n: usize) {}
    fn received(&mut self, _n: usize, _out: &mut Vec<u8>) {}
    fn fixed(&mut self) -> Option<FixedPart> {
        self.0.tx_fixed()
    }
}

impl<B: IoBufsMut> RawBufs for Rx<B> {
    fn buf_count(&self) -> usize {
        self.bufs.buf_count()
    }
    fn total_len(&self) -> Option<usize> {
        self.bufs.rx_total()
    }
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.bufs.rx_each(f);
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        Vec::new()
    }
    fn one(&self) -> Option<&[u8]> {
        None
    }
    fn copy_in(&mut self, mut skip: usize, src: &[u8]) -> (usize, usize) {
        let (mut n, mut room) = (0, 0);
        self.bufs.rx_each(&mut |p, len| {
            let here = skip.min(len);
            skip -= here;
            room += len - here;
            let take = (len - here).min(src.len() - n);
            // `IoBufMut` (or the inline array, boxed with `self`) promises
            // `len` writable bytes at `p` that nobody else touches while the
            // engine holds the value; `src` is the engine's own memory.
            // SAFETY: that, and `here + take <= len`.
            unsafe {
                std::ptr::copy_nonoverlapping(src[n..].as_ptr(), p.add(here), take);
            }
            n += take;
        });
        (n, room)
    }
    unsafe fn set_received(&mut self, n: usize) {
        self.landed = Some(n.min(self.bufs.rx_total().unwrap_or(0)));
    }
    fn received(&mut self, n: usize, out: &mut Vec<u8>) {
        let mut n = n.min(self.landed.unwrap_or(0));
        self.bufs.rx_each(&mut |p, len| {
            let here = n.min(len);
            // The first `landed` bytes of the rooms were written (the
            // record's contract) and the room is valid while the engine holds
            // the value.
            // SAFETY: `here` bytes of this room are among them.
            out.extend_from_slice(unsafe { std::slice::from_raw_parts(p, here) });
            n -= here;
        });
    }
    fn fixed(&mut self) -> Option<FixedPart> {
        self.bufs.rx_fixed()
    }
}

impl<B: IoBufs> ErasedBufs for Tx<B> {
    fn as_bufs(&mut self) -> &mut dyn RawBufs {
        self
    }
    fn into_any(self: Box<Self>) -> Box<dyn Any + Send> {
        self
    }
}

impl<B: IoBufsMut> ErasedBufs for Rx<B> {
    fn as_bufs(&mut self) -> &mut dyn RawBufs {
        self
    }
    fn into_any(mut self: Box<Self>) -> Box<dyn Any + Send> {
        if let Some(n) = self.landed.take() {
            // `RawBufs::set_received` records only bytes the kernel or
            // `copy_in` wrote at the start of the rooms.
            // SAFETY: so `n` bytes were written, at most the rooms' total length.
            unsafe { self.bufs.rx_landed(n) };
        }
        self
    }
}

/// A message operation's buffers: the data buffers (a send's or a
/// receive's) and the caller's control buffer, which the kernel sees only
/// when `active` (a datagram socket's operation).
struct Msg<E> {
    data: E,
    control: Control,
    active: bool,
    /// A receive's control bytes recorded as written.
    landed: Option<usize>,
}

/// Boxes a `send_msg`'s buffers and control bytes for the engine.
/// `active`: the kernel gets the control bytes.
pub(crate) fn erase_msg_tx<B: IoBufs>(
    bufs: B,
    control: Control,
    active: bool,
) -> Box<dyn ErasedBufs> {
    Box::new(Msg {
        data: Tx(bufs),
        control,
        active,
        landed: None,
    })
}

/// Boxes a `recv_msg`'s buffers and control room for the engine.
/// `active`: the kernel gets the room (else the control comes back empty).
pub(crate) fn erase_msg_rx<B: IoBufsMut>(
    bufs: B,
    control: Control,
    active: bool,
) -> Box<dyn ErasedBufs> {
    Box::new(Msg {
        data: Rx { bufs, landed: None },
        control,
        active,
        landed: None,
    })
}

/// A message operation's buffers and control buffer, back out of their
/// box ([`take_back`]'s counterpart for `recv_msg` and `send_msg`), with the
/// receive's records applied.
pub(crate) fn take_back_msg<B: 'static>(bufs: Box<dyn ErasedBufs>) -> Option<(B, Control)> {
    let m = bufs.into_any().downcast::<MsgBack>().ok()?;
    let control = m.control;
    match m.data.downcast::<Tx<B>>() {
        Ok(tx) => Some((tx.0, control)),
        Err(any) => any.downcast::<Rx<B>>().ok().map(|rx| (rx.bufs, control)),
    }
}

/// The control part of a message operation.
trait MsgData: ErasedBufs {
    /// A receive's (true) or a send's (false).
    const RX: bool;
}

impl<B: IoBufs> MsgData for Tx<B> {
    const RX: bool = false;
}

impl<B: IoBufsMut> MsgData for Rx<B> {
    const RX: bool = true;
}

impl<E: MsgData> RawBufs for Msg<E> {
    fn buf_count(&self) -> usize {
        self.data.buf_count()
    }
    fn total_len(&self) -> Option<usize> {
        self.data.total_len()
    }
    fn each_part(&mut self, f: &mut dyn FnMut(*mut u8, usize)) {
        self.data.each_part(f);
    }
    fn io_slices(&self) -> Vec<IoSlice<'_>> {
        self.data.io_slices()
    }
    fn one(&self) -> Option<&[u8]> {
        self.data.one()
    }
    fn copy_in(&mut self, skip: usize, src: &[u8]) -> (usize, usize) {
        self.data.copy_in(skip, src)
    }
    unsafe fn set_received(&mut self, n: usize) {
        // SAFETY: the caller's contract, passed on.
        unsafe { self.data.set_received(n) }
    }
    fn received(&mut self, n: usize, out: &mut Vec<u8>) {
        self.data.received(n, out);
    }
    fn fixed(&mut self) -> Option<FixedPart> {
        self.data.fixed()
    }
    fn control(&mut self) -> Option<(*mut u8, usize)> {
        match (self.active, E::RX) {
            (false, _) => None,
            (true, true) => Some(self.control.room()),
            (true, false) => Some(self.control.bytes()),
        }
    }
    unsafe fn set_control(&mut self, n: usize) {
        if self.active && E::RX {
            self.landed = Some(n.min(self.control.capacity()));
        }
    }
}

impl<E: MsgData> ErasedBufs for Msg<E> {
    fn as_bufs(&mut self) -> &mut dyn RawBufs {
        self
    }
    fn into_any(mut self: Box<Self>) -> Box<dyn Any + Send> {
        if E::RX {
            // A receive's control room is replaced by what arrived (none
            // when nothing was recorded).
            let n = self.landed.take().unwrap_or(0);
            // `set_control` records only bytes the kernel wrote at the
            // start of the room, at most its capacity.
            // SAFETY: so `n` bytes of the room were written.
            unsafe { self.control.set_received(n) };
        }
        // The data buffers apply their own record on the way out.
        let Msg { data, control, .. } = *self;
        Box::new(MsgBack {
            data: Box::new(data).into_any(),
            control,
        })
    }
}

/// A message operation's buffers once handed back: the data buffers' own
/// box (a `Tx<B>` or an `Rx<B>`, records applied) and the control buffer.
struct MsgBack {
    data: Box<dyn Any + Send>,
    control: Control,
}
