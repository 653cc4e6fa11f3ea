//! The memory an io_uring request reads or writes, as a value: an
//! [`InFlight`] owns an operation's kernel memory (iovec array, `msghdr`,
//! peer address) and its buffers from the push of its SQE until its CQE is
//! reaped. Only the reap path can take it apart ([`InFlight::complete`]
//! needs the reaped [`Cqe`]); dropped anywhere else (a ring torn down while
//! the kernel may still write), it leaks what it holds instead of freeing
//! it.

use std::cell::RefCell;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::Cqe;
use crate::buf::RawBufs;
use crate::flags::{MsgFlags, RecvFlags};
use crate::sys::tcp::{each_iovec, iovecs, sockaddr_of};
use crate::sys::{Bufs, OpKind, Outcome};

/// Memory the kernel reads or writes while an operation is parked in the
/// ring. Boxed so its address is stable.
pub(super) struct KernelMem {
    /// The iovecs of a request of at most [`INLINE_IOVECS`] buffers (no
    /// allocation for them), else of `iov`; `iov_n` say how many.
    iov_inline: [libc::iovec; INLINE_IOVECS],
    iov: Vec<libc::iovec>,
    iov_n: usize,
    msg: libc::msghdr,
    addr: libc::sockaddr_storage,
    addrlen: libc::socklen_t,
    /// The SQE is a readiness poll; on its CQE the engine runs the
    /// non-blocking attempt (urgent receives, connects).
    pub(super) poll_phase: bool,
    /// Total bytes of a send (to tell a short completion from a whole one).
    total: usize,
    /// The request uses a registered buffer.
    pub(super) fixed: FixedOp,
    /// The request is a `TransmitFile`'s `SPLICE` (see `splice.rs`).
    pub(super) splice: Option<super::splice::Stage>,
}

/// Which fixed-buffer request an operation's SQE is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FixedOp {
    No,
    /// `READ_FIXED`: a receive into the registered buffer.
    Read,
    /// `SEND_ZC` from the registered buffer: a result CQE, then (when it
    /// says more follow) a notification once the kernel let go of the
    /// buffer.
    SendZc,
}

/// The engine's registered pool and the fixed opcodes this kernel takes
/// (see `probe::fixed_support`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct FixedMode {
    pub(crate) pool: u64,
    pub(crate) send: bool,
    pub(crate) read: bool,
}

impl std::fmt::Debug for KernelMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelMem")
            .field("iovecs", &self.iov_n)
            .field("poll_phase", &self.poll_phase)
            .finish()
    }
}

/// A parked io_uring operation: its kernel memory and buffers, owned until
/// the CQE of its request is reaped.
pub(crate) struct InFlight {
    mem: Option<Box<KernelMem>>,
    bufs: Bufs,
    /// Times the request was pushed again after the kernel cancelled it on
    /// its own (its submitting thread exited) or answered `EAGAIN`.
    pub(super) resubmits: u32,
    /// A zero-copy send's result CQE (`res`, `flags`), kept until its
    /// notification CQE says the kernel let go of the buffer.
    pub(super) zc_result: Option<(i32, u32)>,
    /// A zero-copy send's notification CQE was reaped. It may come first:
    /// two threads may reap the two CQEs and either may reach the
    /// operation first.
    pub(super) zc_notified: bool,
}

impl std::fmt::Debug for InFlight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InFlight")
            .field("mem", &self.mem)
            .field("resubmits", &self.resubmits)
            .field("zc_result", &self.zc_result)
            .field("zc_notified", &self.zc_notified)
            .finish_non_exhaustive()
    }
}

// The raw pointers inside `KernelMem` point into the box itself or into the
// operation's heap buffers, which move with it.
// SAFETY: nothing is tied to a thread.
unsafe impl Send for InFlight {}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Not taken apart by the reap path: the kernel may still use this
        // memory. Leak it rather than free it.
        if let Some(m) = self.mem.take() {
            mem::forget(m);
        }
        if let Some(b) = self.bufs.take() {
            mem::forget(b);
        }
    }
}

impl InFlight {
    /// Whether the request uses a registered buffer.
    pub(super) fn fixed(&self) -> FixedOp {
        self.mem.as_ref().map_or(FixedOp::No, |m| m.fixed)
    }

    /// Takes the value apart once the request's (last) CQE was reaped
    /// (`_cqe` is the proof: only the reap path makes one).
    pub(super) fn complete(mut self, _cqe: &Cqe) -> (Option<Box<KernelMem>>, Bufs) {
        (self.mem.take(), self.bufs.take())
    }

    /// Takes the value apart when its SQE never reached the ring.
    pub(super) fn never_pushed(mut self) -> Bufs {
        drop(self.mem.take());
        self.bufs.take()
    }
}

fn missing_bufs() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the operation carries no buffers",
    )
}

/// How an operation's request waits in the ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// The operation itself (a receive maybe with `POLL_FIRST`); urgent
    /// receives and connects are readiness polls whatever the mode.
    Direct,
    /// As `Direct`, but a stream receive of the normal channel is a
    /// readiness poll too, tried in user space when it fires (sockets that
    /// use urgent data, see `RecvPolicy`).
    UrgentWatch,
    /// A readiness poll for the operation's direction, whatever its kind,
    /// tried in user space when it fires: after the kernel answered the
    /// request with `EAGAIN`, the next try waits for the socket instead of
    /// spinning through the ring.
    Ready,
}

/// One request to build for a parked operation: everything about it but
/// its buffers (which its [`InFlight`] takes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Request<'a> {
    /// The socket.
    pub(super) fd: RawFd,
    pub(super) kind: &'a OpKind,
    /// Bytes the operation moved so far (a stream send's progress, a
    /// `WAITALL` receive's): the request goes on after them.
    pub(super) done: usize,
    pub(super) stream: bool,
    /// A receive arms its poll before it tries
    /// (`IORING_RECVSEND_POLL_FIRST`).
    pub(super) poll_first: bool,
    pub(super) wait: Wait,
    /// The engine's registered pool and the fixed opcodes it uses, if it
    /// registered one.
    pub(super) fixed: Option<FixedMode>,
}

/// What to push for an operation: its [`InFlight`] (buffers and kernel
/// memory) and the SQE that points into it (without `user_data`). Building
/// it is safe: the entry is inert until pushed. `resubmits`: times the
/// operation's request was pushed again so far.
pub(super) fn prepare(
    req: &Request<'_>,
    mut bufs: Bufs,
    resubmits: u32,
) -> Result<(InFlight, squeue::Entry), (io::Error, Bufs)> {
    let mut km = kernel_mem();
    let entry = match build(&mut km, req, bufs.as_deref_mut().map(|b| b.as_bufs())) {
        Ok(e) => e,
        Err(e) => return Err((e, bufs)),
    };
    Ok((
        InFlight {
            mem: Some(km),
            bufs,
            resubmits,
            zc_result: None,
            zc_notified: false,
        },
        entry,
    ))
}

/// Most [`KernelMem`]s a thread keeps for reuse.
const SPARE_MEM: usize = 64;

thread_local! {
    /// Kernel memory of requests that are over, for the thread's next ones:
    /// an allocation and a free less per request. Boxed: a request's SQE
    /// points into its `KernelMem`, which must not move while it is in
    /// flight, and the boxes go in and out of this list whole.
    #[allow(clippy::vec_box)]
    static SPARE: RefCell<Vec<Box<KernelMem>>> = const { RefCell::new(Vec::new()) };
}

/// Fresh kernel memory for a request: a spare one of the thread, reset, or
/// a new one.
fn kernel_mem() -> Box<KernelMem> {
    let spare = SPARE.try_with(|s| s.borrow_mut().pop()).ok().flatten();
    match spare {
        Some(mut km) => {
            // The iovec array keeps its room; everything else is new.
            km.iov.clear();
            km.iov_n = 0;
            km.splice = None;
            // SAFETY: all-zero bytes are a valid (empty) `msghdr`.
            km.msg = unsafe { mem::zeroed() };
            // SAFETY: all-zero bytes are a valid (empty) `sockaddr_storage`.
            km.addr = unsafe { mem::zeroed() };
            km.addrlen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            km.poll_phase = false;
            km.total = 0;
            km.fixed = FixedOp::No;
            km
        }
        None => Box::new(KernelMem {
            iov_inline: [libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            }; INLINE_IOVECS],
            iov: Vec::new(),
            iov_n: 0,
            splice: None,
            // SAFETY: all-zero bytes are a valid (empty) `msghdr`.
            msg: unsafe { mem::zeroed() },
            // SAFETY: all-zero bytes are a valid (empty) `sockaddr_storage`.
            addr: unsafe { mem::zeroed() },
            addrlen: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
            poll_phase: false,
            total: 0,
            fixed: FixedOp::No,
        }),
    }
}

/// Keeps the kernel memory of a request that is over (its last CQE was
/// reaped: the kernel no longer reads or writes it) for the thread's next
/// request, or frees it when the thread keeps enough.
pub(super) fn recycle(km: Box<KernelMem>) {
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_MEM {
            s.push(km);
        }
    });
}

/// The readiness an operation's readiness poll waits for: a receive's
/// also reports urgent data (taken out first) and the peer's end.
fn ready_mask(kind: &OpKind) -> libc::c_short {
    match kind {
        OpKind::Send { .. }
        | OpKind::Connect { .. }
        | OpKind::Disconnect { .. }
        | OpKind::Transmit(_) => libc::POLLOUT,
        // POLLPRI alone was never reported for TCP urgent data by io_uring
        // here; with POLLRDBAND the poll fires (measured).
        OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB) => {
            libc::POLLPRI | libc::POLLRDBAND
        }
        OpKind::Recv { .. } => libc::POLLIN | libc::POLLPRI | libc::POLLRDBAND | libc::POLLRDHUP,
        OpKind::Accept => libc::POLLIN,
        // Phase two (the connection's first data) waits on the connection.
        OpKind::AcceptEx(_) => libc::POLLIN | libc::POLLRDHUP,
        OpKind::FileRead { .. } => libc::POLLIN,
        OpKind::FileWrite { .. } => libc::POLLOUT,
    }
}

/// The SQE of one operation kind (one arm per [`OpKind`]), waiting as
/// `req.wait` says.
fn build(
    km: &mut KernelMem,
    req: &Request<'_>,
    bufs: Option<&mut dyn RawBufs>,
) -> io::Result<squeue::Entry> {
    let (fdt, kind, done) = (types::Fd(req.fd), req.kind, req.done);
    if req.wait == Wait::Ready {
        return Ok(poll_add(km, fdt, ready_mask(kind)));
    }
    // The operation's one registered buffer, when the engine registered its
    // pool: the window past the operation's progress.
    let mut bufs = bufs;
    let part = match (req.fixed, bufs.as_deref_mut().and_then(|b| b.fixed())) {
        (Some(m), Some(p)) if m.pool == p.pool && p.len > done && req.stream => Some((m, p)),
        _ => None,
    };
    let entry = match kind {
        OpKind::Send { flags, to: None }
            if flags.is_empty() && part.is_some_and(|(m, _)| m.send) =>
        {
            let (_, p) = part.expect("checked");
            km.total = p.len;
            km.fixed = FixedOp::SendZc;
            // The window lies in buffer `p.index` of the registered region
            // (the kernel checks it too); `p.len <= 1 GiB` fits a `u32`.
            opcode::SendZc::new(fdt, p.ptr.wrapping_add(done), (p.len - done) as u32)
                .buf_index(Some(p.index))
                .flags(libc::MSG_NOSIGNAL | libc::MSG_WAITALL)
                .build()
        }
        OpKind::Send { flags, to } => {
            send_msg(km, req, bufs.ok_or_else(missing_bufs)?, *flags, *to)
        }
        OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB) => {
            poll_add(km, fdt, ready_mask(kind))
        }
        OpKind::Recv { .. }
            if req.wait == Wait::UrgentWatch && kind.is_plain_stream_recv(req.stream) =>
        {
            poll_add(km, fdt, ready_mask(kind))
        }
        OpKind::Recv {
            flags,
            want_addr: false,
        } if flags.is_empty() && part.is_some_and(|(m, _)| m.read) => {
            let (_, p) = part.expect("checked");
            km.total = p.len;
            km.fixed = FixedOp::Read;
            // A socket's read ignores the offset (it must be 0).
            opcode::ReadFixed::new(
                fdt,
                p.ptr.wrapping_add(done),
                (p.len - done) as u32,
                p.index,
            )
            .offset(0)
            .build()
        }
        OpKind::Recv { flags, want_addr } => {
            recv_msg(km, req, bufs.ok_or_else(missing_bufs)?, *flags, *want_addr)
        }
        OpKind::Accept => opcode::Accept::new(fdt, (&raw mut km.addr).cast(), &raw mut km.addrlen)
            .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
            .build(),
        // `TransmitFile`: its file region by `SPLICE` requests, its head
        // and tail tried in user space when the socket is writable.
        OpKind::Transmit(t) => {
            let head = bufs
                .as_deref()
                .map_or(0, |b| b.io_slices().first().map_or(0, |s| s.len()));
            match super::splice::request(t, head, done, req.fd) {
                Some((stage, e)) => {
                    km.splice = Some(stage);
                    e
                }
                None => poll_add(km, fdt, ready_mask(kind)),
            }
        }
        // Tried in user space when the socket is ready: the extension
        // operations (`AcceptEx` beyond the plain accept, whose `req.fd` is
        // the connection once it waits for its first data; `DisconnectEx`),
        // and connects.
        OpKind::Connect { .. } | OpKind::AcceptEx(_) | OpKind::Disconnect { .. } => {
            poll_add(km, fdt, ready_mask(kind))
        }
        OpKind::FileRead { offset } => file_rw(km, req, bufs, true, *offset)?,
        OpKind::FileWrite { offset } => file_rw(km, req, bufs, false, *offset)?,
    };
    Ok(entry)
}

/// The `READV` / `WRITEV` of a file operation at `offset`, past its
/// progress (a write the kernel took in part goes on after it). A pipe or
/// device without a position ignores the offset (the kernel's rule for
/// stream files).
fn file_rw(
    km: &mut KernelMem,
    req: &Request<'_>,
    bufs: Option<&mut dyn RawBufs>,
    read: bool,
    offset: u64,
) -> io::Result<squeue::Entry> {
    let bufs = bufs.ok_or_else(missing_bufs)?;
    km.total = set_iov(km, bufs, req.done);
    let at = offset.saturating_add(req.done as u64);
    let (iov, n) = km.iov_parts();
    let (fd, iov, n) = (types::Fd(req.fd), iov.cast_const(), n as u32);
    Ok(if read {
        opcode::Readv::new(fd, iov, n).offset(at).build()
    } else {
        opcode::Writev::new(fd, iov, n).offset(at).build()
    })
}

/// A readiness poll for `mask` instead of the operation itself: on its CQE
/// the engine runs the non-blocking attempt.
fn poll_add(km: &mut KernelMem, fd: types::Fd, mask: libc::c_short) -> squeue::Entry {
    km.poll_phase = true;
    opcode::PollAdd::new(fd, mask as u32).build()
}

/// The `SENDMSG` of a send (gather, maybe to an address) past its progress.
fn send_msg(
    km: &mut KernelMem,
    req: &Request<'_>,
    bufs: &mut dyn RawBufs,
    flags: MsgFlags,
    to: Option<SocketAddr>,
) -> squeue::Entry {
    fill_control(km, bufs);
    fill_iov(km, bufs, req.done);
    if let Some(addr) = to {
        let sa = socket2::SockAddr::from(addr);
        let len = sa.len() as usize;
        // `sa` holds `len` initialised bytes of a socket address;
        // `km.addr` is a `sockaddr_storage`, large enough for any.
        // SAFETY: both regions are valid for `len` bytes and disjoint.
        unsafe {
            std::ptr::copy_nonoverlapping(
                sa.as_ptr().cast::<u8>(),
                (&raw mut km.addr).cast::<u8>(),
                len,
            );
        }
        km.msg.msg_name = (&raw mut km.addr).cast();
        km.msg.msg_namelen = sa.len();
    }
    let mut f = libc::MSG_NOSIGNAL;
    if req.stream {
        f |= libc::MSG_WAITALL;
    }
    if flags.contains(MsgFlags::OOB) {
        f |= libc::MSG_OOB;
    }
    if flags.contains(MsgFlags::DONTROUTE) {
        f |= libc::MSG_DONTROUTE;
    }
    opcode::SendMsg::new(types::Fd(req.fd), &raw const km.msg)
        .flags(f as u32)
        .build()
}

/// The `RECVMSG` of a receive (scatter, maybe with the sender's address)
/// past its progress.
fn recv_msg(
    km: &mut KernelMem,
    req: &Request<'_>,
    bufs: &mut dyn RawBufs,
    flags: MsgFlags,
    want_addr: bool,
) -> squeue::Entry {
    let prio = if req.poll_first {
        RECVSEND_POLL_FIRST
    } else {
        0
    };
    // The common stream receive (one buffer, no flags, no address, no
    // control room) is a plain `RECV`: no iovec array to build, no
    // `msghdr` for the kernel to copy in.
    if req.stream && !want_addr && flags.is_empty() && bufs.buf_count() == 1 {
        if let Some(e) = plain_recv(km, req, bufs, prio) {
            return e;
        }
    }
    fill_control(km, bufs);
    // A `WAITALL` receive goes on after the bytes it already has (the
    // engine loops instead of passing MSG_WAITALL, so that an abort reports
    // what arrived).
    fill_iov(km, bufs, req.done);
    if want_addr {
        km.msg.msg_name = (&raw mut km.addr).cast();
        km.msg.msg_namelen = km.addrlen;
    }
    let mut f = 0;
    if flags.contains(MsgFlags::PEEK) {
        f |= libc::MSG_PEEK;
    }
    opcode::RecvMsg::new(types::Fd(req.fd), &raw mut km.msg)
        .flags(f as u32)
        .ioprio(prio)
        .build()
}

/// The `RECV` of a receive into one buffer past its progress; `None` when
/// it has a control room, or its window is empty or does not fit a
/// `RECV`'s length.
fn plain_recv(
    km: &mut KernelMem,
    req: &Request<'_>,
    bufs: &mut dyn RawBufs,
    prio: u16,
) -> Option<squeue::Entry> {
    if bufs.control().is_some() {
        return None;
    }
    let mut one = None;
    bufs.each_part(&mut |ptr, len| one = Some((ptr, len)));
    let (ptr, len) = one?;
    // A zero-byte receive keeps the path it always had.
    let room = u32::try_from(len.checked_sub(req.done)?)
        .ok()
        .filter(|&r| r > 0)?;
    km.total = len;
    Some(
        opcode::Recv::new(types::Fd(req.fd), ptr.wrapping_add(req.done), room)
            .ioprio(prio)
            .build(),
    )
}

/// `IORING_RECVSEND_POLL_FIRST`: arm the poll before trying the receive.
const RECVSEND_POLL_FIRST: u16 = 1;

/// Requests of at most this many buffers keep their iovecs inside their
/// [`KernelMem`]: no allocation for them.
const INLINE_IOVECS: usize = 2;

/// Builds the iovecs of the buffers past their first `skip` bytes in `km`
/// (inline for a few, else in its vector); the buffers' total length.
fn set_iov(km: &mut KernelMem, bufs: &mut dyn RawBufs, skip: usize) -> usize {
    km.iov.clear();
    km.iov_n = 0;
    if bufs.buf_count() <= INLINE_IOVECS {
        let (inline, n) = (&mut km.iov_inline, &mut km.iov_n);
        each_iovec(bufs, skip, &mut |v| {
            // At most `buf_count` iovecs come.
            if let Some(slot) = inline.get_mut(*n) {
                *slot = v;
                *n += 1;
            }
        })
    } else {
        let total = iovecs(bufs, skip, &mut km.iov);
        km.iov_n = km.iov.len();
        total
    }
}

impl KernelMem {
    /// The iovecs [`set_iov`] built: where (inside the boxed value, or in
    /// its vector: both stay put while the request is in the kernel), and
    /// how many.
    fn iov_parts(&mut self) -> (*mut libc::iovec, usize) {
        if self.iov.is_empty() {
            (self.iov_inline.as_mut_ptr(), self.iov_n)
        } else {
            (self.iov.as_mut_ptr(), self.iov.len())
        }
    }
}

/// Builds the iovec array and `msghdr` of a send or receive, skipping the
/// first `skip` bytes (a stream send's progress).
fn fill_iov(km: &mut KernelMem, bufs: &mut dyn RawBufs, skip: usize) {
    km.total = set_iov(km, bufs, skip);
    let (iov, n) = km.iov_parts();
    km.msg.msg_iov = iov;
    km.msg.msg_iovlen = n as _;
}

/// Points the `msghdr` at a message operation's control bytes or room
/// ([`RawBufs::control`]), which the operation's buffers own (and its
/// `InFlight` with them) until the CQE is reaped.
fn fill_control(km: &mut KernelMem, bufs: &mut dyn RawBufs) {
    if let Some((ptr, len)) = bufs.control() {
        km.msg.msg_control = ptr.cast();
        km.msg.msg_controllen = len as _;
    }
}

/// What a reaped CQE means for its operation.
#[derive(Debug)]
pub(super) enum Finish {
    Done(Outcome),
    /// A stream send was taken in part; park the rest.
    Resubmit,
    /// A readiness poll fired; run the non-blocking attempt.
    Attempt,
    /// The kernel ran the request where it may not wait (its worker pool,
    /// on a non-blocking socket) and found no room, no data or no
    /// connection (`EAGAIN`): not an answer for the operation, which waits
    /// for readiness and tries again.
    Again,
    /// A `TransmitFile`'s splice to the socket found no room: wait until it
    /// is writable (not a resubmit: a slow reader may take many).
    Writable,
}

/// Interprets the CQE of a parked operation. `nonempty`: the CQE says bytes
/// are left in the socket (`IORING_CQE_F_SOCK_NONEMPTY`).
pub(super) fn finish(
    km: &KernelMem,
    res: i32,
    kind: &OpKind,
    bufs: Option<&mut dyn RawBufs>,
    done: &mut usize,
    stream: bool,
    nonempty: bool,
) -> Finish {
    if km.poll_phase {
        return Finish::Attempt;
    }
    if let OpKind::Send { to, .. } = kind {
        // A datagram send that met an ICMP error of an earlier one, or to
        // port 0: the shared attempt gives Windows' answer.
        if !stream && (res == -libc::ECONNREFUSED || to.is_some_and(|a| a.port() == 0)) {
            return Finish::Attempt;
        }
    }
    if res == -libc::EAGAIN
        && matches!(
            kind,
            OpKind::Send { .. } | OpKind::Recv { .. } | OpKind::Accept
        )
    {
        return Finish::Again;
    }
    if res < 0 {
        let mut out = Outcome::err(io::Error::from_raw_os_error(-res), *done);
        out.check_urgent = kind.is_plain_stream_recv(stream) && *done > 0;
        return Finish::Done(out);
    }
    let n = res as usize;
    match kind {
        OpKind::Send { .. } => {
            *done += n;
            if stream && *done < km.total && n > 0 {
                Finish::Resubmit
            } else {
                Finish::Done(Outcome::ok(*done))
            }
        }
        OpKind::Recv { flags, want_addr } => {
            *done += n;
            if flags.contains(MsgFlags::WAITALL) && n > 0 && *done < km.total {
                return Finish::Resubmit;
            }
            let mut out = Outcome::ok(*done);
            // A fixed read does not say whether bytes are left: look for an
            // urgent byte after every one that took bytes.
            let maybe_left = nonempty || km.fixed == FixedOp::Read;
            out.check_urgent = kind.is_plain_stream_recv(stream) && n > 0 && maybe_left;
            if km.msg.msg_flags & libc::MSG_TRUNC != 0 {
                out.flags |= RecvFlags::TRUNCATED;
            }
            // Only a message operation's control room counts: a TCP socket's
            // `TCP_CM_INQ` finds no room in other receives.
            if !km.msg.msg_control.is_null() && km.msg.msg_flags & libc::MSG_CTRUNC != 0 {
                out.flags |= RecvFlags::CTRUNC;
            }
            if flags.contains(MsgFlags::OOB) {
                out.flags |= RecvFlags::OOB;
            }
            if *want_addr && km.msg.msg_namelen > 0 {
                out.addr = sockaddr_of(&km.addr, km.msg.msg_namelen);
            }
            if let Some(b) = bufs {
                // The kernel reported writing `n` bytes past the `*done - n`
                // of earlier rounds, at the start of the room.
                // SAFETY: so the first `*done` bytes are written.
                unsafe { b.set_received(*done) };
                if !km.msg.msg_control.is_null() {
                    // The kernel wrote back how much of the control room
                    // (`fill_control`) it filled.
                    // SAFETY: so those bytes of the room are written.
                    unsafe { b.set_control(km.msg.msg_controllen as _) };
                }
            }
            Finish::Done(out)
        }
        OpKind::Accept => {
            // SAFETY: a non-negative ACCEPT result is a new fd nothing else owns.
            let fd = unsafe { OwnedFd::from_raw_fd(res) };
            let mut out = Outcome::ok(0);
            out.fd = Some(fd);
            out.addr = sockaddr_of(&km.addr, km.addrlen);
            Finish::Done(out)
        }
        OpKind::Connect { .. }
        | OpKind::AcceptEx(_)
        | OpKind::Disconnect { .. }
        | OpKind::Transmit(_) => Finish::Attempt,
        OpKind::FileRead { .. } => {
            *done += n;
            if let Some(b) = bufs {
                // The kernel reported reading `n` bytes into the room.
                // SAFETY: so the first `*done` bytes are written.
                unsafe { b.set_received(*done) };
            }
            Finish::Done(Outcome::ok(*done))
        }
        OpKind::FileWrite { .. } => {
            *done += n;
            if n > 0 && *done < km.total {
                Finish::Resubmit
            } else {
                Finish::Done(Outcome::ok(*done))
            }
        }
    }
}
