//! The io_uring engine, on the `io-uring` crate.
//!
//! # Memory invariant (read before any `unsafe` below)
//!
//! Every SQE that points at memory points into a [`KernelMem`] box or into an
//! operation's buffers, both owned by the operation's slot in the driver's op
//! table. A slot is freed only after the CQE for its `user_data` was reaped,
//! so the kernel never writes to memory that was freed or reused. The ring's
//! submission and completion queues are touched only while the driver's state
//! lock is held; [`RingAccess`] is the token that proves it (it lives inside
//! that lock).
//!
//! # Ring choice
//!
//! One ring per [`Engine`](crate::Engine), without `SINGLE_ISSUER` or
//! `DEFER_TASKRUN`: "whoever waits, drives" means any thread may enter it.
//! With `COOP_TASKRUN` (and `TASKRUN_FLAG`): without it every network
//! completion interrupts the thread that submitted the request, which cost
//! the port-model echo server two thirds of its throughput (`ovl bench`
//! pingpong, 50 connections: 0.33x tokio without, 0.98x with). The price:
//! the completion of an op whose submitting thread spins without entering
//! the kernel waits for that thread's next timer tick (SPEC e11 still holds).

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use rustix::event::{EventfdFlags, eventfd};

use super::{OpKind, Outcome};
use crate::buf::IoBufs;
use crate::op::{MsgFlags, RecvFlags};

/// `user_data` of the wake-up poll on the engine's eventfd.
pub(crate) const WAKE_TOKEN: u64 = u64::MAX;
/// `user_data` of cancel requests (their own CQEs carry nothing we need).
pub(crate) const CANCEL_TOKEN: u64 = u64::MAX - 1;

/// One reaped completion: `(user_data, res, flags)`.
pub(crate) type Cqe = (u64, i32, u32);

/// Proof that the caller holds the driver's state lock, the only place the
/// ring's queues are touched from. Lives inside that lock.
#[derive(Debug)]
pub(crate) struct RingAccess(());

impl RingAccess {
    pub(crate) fn new() -> Self {
        RingAccess(())
    }
}

/// Memory the kernel reads or writes while an operation is parked in the
/// ring: the iovec array, the `msghdr` and the peer address. Boxed so its
/// address is stable; owned by the op's slot until the op's CQE.
pub(crate) struct KernelMem {
    iov: Vec<libc::iovec>,
    msg: libc::msghdr,
    addr: libc::sockaddr_storage,
    addrlen: libc::socklen_t,
    /// The SQE is a readiness poll; on its CQE the driver runs the
    /// non-blocking attempt (urgent receives, connects).
    pub(crate) poll_phase: bool,
    /// Total bytes of a send (to tell a short completion from a whole one).
    total: usize,
}

impl std::fmt::Debug for KernelMem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelMem")
            .field("iovecs", &self.iov.len())
            .field("poll_phase", &self.poll_phase)
            .finish()
    }
}

// SAFETY: the raw pointers inside point into this box or into the op's own
// heap buffers, which move between threads together with the slot that owns
// both; nothing here is tied to a thread.
unsafe impl Send for KernelMem {}

/// What a reaped CQE means for its operation.
#[derive(Debug)]
pub(crate) enum Finish {
    Done(Outcome),
    /// A stream send was taken in part; park the rest.
    Resubmit,
    /// A readiness poll fired; run the non-blocking attempt.
    Attempt,
}

/// The io_uring backend.
pub(crate) struct Uring {
    ring: IoUring,
    wake_fd: OwnedFd,
    /// The kernel takes `IORING_RECVSEND_POLL_FIRST` (5.19 and later).
    poll_first: bool,
}

/// `IORING_RECVSEND_POLL_FIRST`: arm the poll before trying the receive.
const RECVSEND_POLL_FIRST: u16 = 1;

/// Whether the running kernel is at least `major.minor`.
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let uts = rustix::system::uname();
    let release = uts.release().to_string_lossy();
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse::<u32>().ok());
    match (parts.next(), parts.next()) {
        (Some(a), Some(b)) => (a, b) >= (major, minor),
        _ => false,
    }
}

/// Whether a completion's receive left more bytes in the socket
/// (`IORING_CQE_F_SOCK_NONEMPTY`).
pub(crate) fn sock_nonempty(flags: u32) -> bool {
    io_uring::cqueue::sock_nonempty(flags)
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("sq_entries", &self.ring.params().sq_entries())
            .field("cq_entries", &self.ring.params().cq_entries())
            .finish()
    }
}

impl Uring {
    /// Sets up a ring of `entries` submission entries (completion queue
    /// twice that) and arms the wake-up poll.
    pub(crate) fn new(entries: u32) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_submit_all()
            .setup_coop_taskrun()
            .setup_taskrun_flag()
            .setup_cqsize(entries.saturating_mul(2).max(2))
            .build(entries)
            .or_else(|_| {
                IoUring::builder()
                    .setup_cqsize(entries.saturating_mul(2).max(2))
                    .build(entries)
            })?;
        let p = ring.params();
        if !p.is_feature_nodrop() || !p.is_feature_ext_arg() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring lacks IORING_FEAT_NODROP or IORING_FEAT_EXT_ARG (kernel 5.11+ needed)",
            ));
        }
        let wake_fd =
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(super::to_io)?;
        let u = Uring {
            ring,
            wake_fd,
            poll_first: kernel_at_least(5, 19),
        };
        let mut t = RingAccess::new();
        let mut backlog = VecDeque::new();
        u.arm_wake(&mut t, &mut backlog)?;
        u.submit(&mut t, &mut backlog)?;
        Ok(u)
    }

    fn arm_wake(&self, t: &mut RingAccess, backlog: &mut VecDeque<Cqe>) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(self.wake_fd.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(WAKE_TOKEN);
        self.push(t, e, backlog)
    }

    /// Called on the wake poll's CQE: clears the eventfd, re-arms if the
    /// multishot poll ended.
    pub(crate) fn on_wake(
        &self,
        t: &mut RingAccess,
        flags: u32,
        backlog: &mut VecDeque<Cqe>,
    ) -> io::Result<()> {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.wake_fd, &mut buf);
        if !cqueue::more(flags) {
            self.arm_wake(t, backlog)?;
        }
        Ok(())
    }

    /// Ends a blocking [`wait`](Self::wait) on another thread.
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(&self.wake_fd, &1u64.to_ne_bytes());
    }

    /// Pushes one SQE; a full submission queue is flushed and the push
    /// retried, never dropped.
    fn push(
        &self,
        t: &mut RingAccess,
        entry: squeue::Entry,
        backlog: &mut VecDeque<Cqe>,
    ) -> io::Result<()> {
        loop {
            // SAFETY: `t` proves the state lock is held: the only live view of the SQ.
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: the entry points only at memory its op's slot owns until its CQE.
            if unsafe { sq.push(&entry) }.is_ok() {
                return Ok(());
            }
            drop(sq);
            self.submit(t, backlog)?;
        }
    }

    /// Submits everything queued. A completion queue in overflow (`EBUSY`)
    /// is reaped into `backlog` and the submit retried: no completion is lost.
    pub(crate) fn submit(&self, t: &mut RingAccess, backlog: &mut VecDeque<Cqe>) -> io::Result<()> {
        loop {
            match self.ring.submitter().submit() {
                Ok(_) => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => self.reap(t, backlog),
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EAGAIN) => self.reap(t, backlog),
                Err(e) => return Err(e),
            }
        }
    }

    /// True when SQEs wait to be submitted.
    pub(crate) fn has_unsubmitted(&self, _t: &mut RingAccess) -> bool {
        // SAFETY: `_t` proves the state lock is held (only view of the SQ).
        let sq = unsafe { self.ring.submission_shared() };
        !sq.is_empty()
    }

    /// Moves every available CQE into `out`, without blocking.
    pub(crate) fn reap(&self, _t: &mut RingAccess, out: &mut VecDeque<Cqe>) {
        // SAFETY: `_t` proves the state lock is held: the only live view of the CQ.
        let cq = unsafe { self.ring.completion_shared() };
        out.extend(cq.map(|c| (c.user_data(), c.result(), c.flags())));
    }

    /// Blocks until at least one completion is available, the wake eventfd
    /// fires, or `timeout` passes. Submits whatever is queued on the way in.
    /// Called without the state lock: only `io_uring_enter` happens here.
    pub(crate) fn wait(&self, timeout: Option<Duration>) -> io::Result<()> {
        let r = match timeout {
            Some(d) => {
                let ts = types::Timespec::from(d);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.ring.submitter().submit_with_args(1, &args)
            }
            None => self.ring.submitter().submit_and_wait(1),
        };
        match r {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Parks an operation in the kernel. Returns the memory the SQE points
    /// at, which the op's slot must keep until the CQE.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_op(
        &self,
        t: &mut RingAccess,
        ud: u64,
        fd: RawFd,
        kind: &OpKind,
        bufs: Option<&mut dyn IoBufs>,
        done: usize,
        stream: bool,
        poll_first: bool,
        backlog: &mut VecDeque<Cqe>,
    ) -> io::Result<Box<KernelMem>> {
        let mut km = Box::new(KernelMem {
            iov: Vec::new(),
            // SAFETY: all-zero bytes are a valid (empty) `msghdr`.
            msg: unsafe { mem::zeroed() },
            // SAFETY: all-zero bytes are a valid (empty) `sockaddr_storage`.
            addr: unsafe { mem::zeroed() },
            addrlen: mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t,
            poll_phase: false,
            total: 0,
        });
        let fdt = types::Fd(fd);
        let entry = match kind {
            OpKind::Send { flags, to } => {
                let bufs = bufs.expect("send carries buffers");
                fill_iov(&mut km, bufs, done);
                if let Some(addr) = to {
                    let sa = socket2::SockAddr::from(*addr);
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
                if stream {
                    f |= libc::MSG_WAITALL;
                }
                if flags.contains(MsgFlags::OOB) {
                    f |= libc::MSG_OOB;
                }
                if flags.contains(MsgFlags::DONTROUTE) {
                    f |= libc::MSG_DONTROUTE;
                }
                opcode::SendMsg::new(fdt, &raw const km.msg)
                    .flags(f as u32)
                    .build()
            }
            OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB) => {
                km.poll_phase = true;
                // POLLPRI alone was never reported for TCP urgent data by
                // io_uring here; with POLLRDBAND the poll fires (measured).
                opcode::PollAdd::new(fdt, (libc::POLLPRI | libc::POLLRDBAND) as u32).build()
            }
            OpKind::Recv { flags, want_addr } => {
                let bufs = bufs.expect("receive carries buffers");
                fill_iov(&mut km, bufs, 0);
                if *want_addr {
                    km.msg.msg_name = (&raw mut km.addr).cast();
                    km.msg.msg_namelen = km.addrlen;
                }
                let mut f = 0;
                if flags.contains(MsgFlags::PEEK) {
                    f |= libc::MSG_PEEK;
                }
                let prio = if poll_first && self.poll_first {
                    RECVSEND_POLL_FIRST
                } else {
                    0
                };
                opcode::RecvMsg::new(fdt, &raw mut km.msg)
                    .flags(f as u32)
                    .ioprio(prio)
                    .build()
            }
            OpKind::Accept => {
                opcode::Accept::new(fdt, (&raw mut km.addr).cast(), &raw mut km.addrlen)
                    .flags(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
                    .build()
            }
            OpKind::Connect { .. } => {
                km.poll_phase = true;
                opcode::PollAdd::new(fdt, libc::POLLOUT as u32).build()
            }
        };
        self.push(t, entry.user_data(ud), backlog)?;
        Ok(km)
    }

    /// Asks the kernel to cancel the request with `user_data == target`.
    pub(crate) fn push_cancel(
        &self,
        t: &mut RingAccess,
        target: u64,
        backlog: &mut VecDeque<Cqe>,
    ) -> io::Result<()> {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(CANCEL_TOKEN);
        self.push(t, e, backlog)
    }
}

/// Builds the iovec array and `msghdr` of a send or receive, skipping the
/// first `skip` bytes (a stream send's progress).
fn fill_iov(km: &mut KernelMem, bufs: &mut dyn IoBufs, mut skip: usize) {
    let mut parts = Vec::with_capacity(bufs.buf_count());
    bufs.raw_parts(&mut parts);
    km.total = parts.iter().map(|p| p.1).sum();
    for (ptr, len) in parts {
        if skip >= len && len > 0 {
            skip -= len;
            continue;
        }
        let here = skip.min(len);
        skip -= here;
        km.iov.push(libc::iovec {
            iov_base: ptr.wrapping_add(here).cast(),
            iov_len: len - here,
        });
    }
    km.msg.msg_iov = km.iov.as_mut_ptr();
    km.msg.msg_iovlen = km.iov.len() as _;
}

/// Interprets the CQE of a parked operation.
pub(crate) fn finish(
    km: &KernelMem,
    res: i32,
    kind: &OpKind,
    bufs: Option<&mut dyn IoBufs>,
    done: &mut usize,
    stream: bool,
) -> Finish {
    if km.poll_phase {
        return Finish::Attempt;
    }
    if res < 0 {
        return Finish::Done(Outcome::err(io::Error::from_raw_os_error(-res), *done));
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
            let mut out = Outcome::ok(n);
            if km.msg.msg_flags & libc::MSG_TRUNC != 0 {
                out.flags |= RecvFlags::TRUNCATED;
            }
            if flags.contains(MsgFlags::OOB) {
                out.flags |= RecvFlags::OOB;
            }
            if *want_addr && km.msg.msg_namelen > 0 {
                out.addr = sockaddr_of(&km.addr, km.msg.msg_namelen);
            }
            if let Some(b) = bufs {
                b.set_received(n);
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
        OpKind::Connect { .. } => Finish::Attempt,
    }
}

fn sockaddr_of(storage: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    let len = len as usize;
    let base = storage as *const libc::sockaddr_storage;
    // The family says which address the storage holds and the length says it
    // is complete; `sockaddr_storage` is aligned for every address type.
    match storage.ss_family as libc::c_int {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: a complete `sockaddr_in` lives at `base` (see above).
            let a = unsafe { &*base.cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr)),
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: a complete `sockaddr_in6` lives at `base` (see above).
            let a = unsafe { &*base.cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(a.sin6_addr.s6_addr),
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
