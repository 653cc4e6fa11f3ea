//! The ring itself: setup, the locks that guard its two queues, pushing
//! SQEs, submitting, reaping CQEs, waiting and waking.
//!
//! The submission queue is touched only through an [`SqAccess`], which only
//! [`Uring::sq`] makes, by locking the submission lock; the completion queue
//! only under the completion lock. Neither lock is held across a system call
//! except a submit forced by a full submission queue (the submission lock:
//! the queue must be emptied before the push can go on). `io_uring_enter`
//! itself (submit, wait) runs without a lock otherwise: the kernel
//! serializes entries of one ring. Nothing that takes the submission lock
//! runs under it: a backlog poll found ended by a submit inside a push is
//! armed again after the push let the lock go ([`Uring::rearm_if_due`]).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use io_uring::{IoUring, cqueue, opcode, squeue, types};
use rustix::event::{EventfdFlags, eventfd};

use super::InFlight;
use super::inflight::FixedMode;
use crate::sys::fixed::Pool;
use crate::sys::probe::{FixedSupport, fixed_support};
use crate::sys::{Bufs, Reaped, Wakeup};

/// `user_data` of the poll on the engine's eventfd, written when completions
/// wait in the backlog (see [`Uring::submit`]).
const BACKLOG_TOKEN: u64 = u64::MAX;
/// `user_data` of the no-op request that [`Uring::wake`] submits.
const WAKE_TOKEN: u64 = u64::MAX - 2;
/// `user_data` of cancel requests (their own CQEs carry nothing we need).
const CANCEL_TOKEN: u64 = u64::MAX - 1;

/// A reaped completion's result and flags. Only the reap path
/// ([`Uring::reap`], here) makes one (its fields are private to this file),
/// so holding one proves the request it answers is over.
#[derive(Debug)]
pub(crate) struct Cqe {
    res: i32,
    flags: u32,
}

impl Cqe {
    /// The request's result: a count or a new descriptor, or `-errno`.
    pub(super) fn res(&self) -> i32 {
        self.res
    }

    /// The completion's `IORING_CQE_F_*` flags.
    pub(super) fn flags(&self) -> u32 {
        self.flags
    }
}

/// What a drain of the completion queue met besides operations.
struct Drained {
    /// The backlog poll ended: arm it again.
    rearm: bool,
    /// The backlog poll fired: read its eventfd.
    fired: bool,
    /// It took the completion of a [`Uring::wake`], meant for the thread
    /// blocked in the ring. (Not the backlog poll's: whoever takes that
    /// takes the backlog too.)
    woke: bool,
}

/// The io_uring backend's ring.
pub(crate) struct Uring {
    ring: IoUring,
    /// The pool whose memory is registered with the ring, and what the
    /// kernel does with it. Declared right after `ring`: dropped after the
    /// ring is torn down, so the memory outlives the registration.
    fixed: OnceLock<(Arc<Pool>, FixedSupport)>,
    /// Guards the submission queue.
    sq: Mutex<()>,
    /// Guards the completion queue; holds completions reaped while a full
    /// submission queue was being flushed, for the next reap.
    cq: Mutex<Vec<Wakeup>>,
    /// Written when completions wait in the backlog; polled through the
    /// ring, so that the ring's descriptor turns readable.
    wake_fd: OwnedFd,
    /// A wake-up no-op is in the kernel or in the completion queue, not yet
    /// reaped: a further [`wake`](Uring::wake) has nothing to add.
    wake_pending: AtomicBool,
    /// The backlog poll ended (its last completion was drained) and is not
    /// armed again yet: [`rearm_if_due`](Uring::rearm_if_due) arms it.
    rearm_due: AtomicBool,
    /// The kernel takes `IORING_RECVSEND_POLL_FIRST` (5.19 and later).
    pub(super) poll_first: bool,
    /// Requests pushed that use a registered buffer: reads, sends.
    pub(super) fixed_ops: [std::sync::atomic::AtomicU64; 2],
    /// Test hook: this many coming submits answer `EBUSY` as an old kernel
    /// does with completions in overflow (this kernel may never say it).
    #[cfg(test)]
    force_busy: std::sync::atomic::AtomicU32,
}

impl std::fmt::Debug for Uring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Uring")
            .field("sq_entries", &self.ring.params().sq_entries())
            .field("cq_entries", &self.ring.params().cq_entries())
            .finish()
    }
}

/// Proof that the submission lock is held: the only way to the SQ. Made
/// only by [`Uring::sq`].
pub(super) struct SqAccess<'a>(MutexGuard<'a, ()>);

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

impl Uring {
    /// Sets up a ring of `entries` submission entries (completion queue
    /// twice that) and arms the backlog poll.
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
        let wake_fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(crate::sys::to_io)?;
        let u = Uring {
            ring,
            fixed: OnceLock::new(),
            sq: Mutex::new(()),
            cq: Mutex::new(Vec::new()),
            wake_fd,
            wake_pending: AtomicBool::new(false),
            rearm_due: AtomicBool::new(false),
            poll_first: kernel_at_least(5, 19),
            fixed_ops: Default::default(),
            #[cfg(test)]
            force_busy: Default::default(),
        };
        u.arm_wake()?;
        u.submit()?;
        Ok(u)
    }

    /// Registers `pool`'s memory with the ring (`IORING_REGISTER_BUFFERS`)
    /// and keeps a reference to the pool until the ring is gone. Once per
    /// ring (the backend's lock orders the calls).
    pub(crate) fn register_fixed(&self, pool: &Arc<Pool>) -> io::Result<()> {
        if self.fixed.get().is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this ring already has registered buffers",
            ));
        }
        let support = fixed_support();
        let iov = pool.iovecs();
        // The iovecs cover `pool`'s region, which stays allocated while any
        // `Arc<Pool>` lives; one is stored in `self.fixed` right below (and
        // the backend holds another), and `self.fixed` is dropped only after
        // `self.ring` (field order). Requests name a buffer only through a
        // `FixedBuf` the operation owns, which holds the pool too.
        // SAFETY: so the memory outlives the registration and every request.
        unsafe { self.ring.submitter().register_buffers(&iov) }.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "registering {} buffers of {} bytes with io_uring failed: {e} (registered memory counts against RLIMIT_MEMLOCK)",
                    pool.count(),
                    pool.size()
                ),
            )
        })?;
        if self.fixed.set((Arc::clone(pool), support)).is_err() {
            // Unreachable (one call per ring); the registration stays and
            // the pool it names is kept by the first value.
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "this ring already has registered buffers",
            ));
        }
        Ok(())
    }

    /// The registered pool and which fixed opcodes the engine uses.
    pub(super) fn fixed_mode(&self) -> Option<FixedMode> {
        let (pool, support) = self.fixed.get()?;
        Some(FixedMode {
            pool: pool.id,
            send: support.send_zc,
            read: support.read_waits,
        })
    }

    fn sq(&self) -> SqAccess<'_> {
        SqAccess(self.sq.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn cq(&self) -> MutexGuard<'_, Vec<Wakeup>> {
        self.cq.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn arm_wake(&self) -> io::Result<()> {
        let e = opcode::PollAdd::new(types::Fd(self.wake_fd.as_raw_fd()), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(BACKLOG_TOKEN);
        // SAFETY: the entry points at no memory (a poll on our own eventfd).
        unsafe { self.push_locked(&e) }
    }

    /// Arms the backlog poll again if a drain found it ended. Called with
    /// no lock of the ring held: arming pushes, which takes the submission
    /// lock (a drain inside a push, which holds it, only marks it due).
    fn rearm_if_due(&self) {
        while self.rearm_due.swap(false, Ordering::AcqRel) {
            if let Err(e) = self.arm_wake() {
                tracing::warn!(error = %e, "re-arming the backlog poll failed");
            }
        }
    }

    /// Pushes one SQE under the submission lock, let go before returning.
    /// Callers then [`rearm_if_due`](Self::rearm_if_due).
    ///
    /// # Safety
    /// As [`push`](Self::push).
    unsafe fn push_locked(&self, entry: &squeue::Entry) -> io::Result<()> {
        let mut t = self.sq();
        // SAFETY: the caller's contract.
        unsafe { self.push(&mut t, entry) }
    }

    /// Ends a blocking [`wait`](Self::wait) on another thread, and makes the
    /// ring's descriptor readable.
    ///
    /// It submits a no-op, which completes inside this call and posts its
    /// completion from this thread. (A write to the eventfd would complete
    /// the poll on it through the task work of the thread that armed that
    /// poll: that thread, maybe asleep or busy elsewhere, would be woken or
    /// awaited for every wake-up. Measured, `ovl bench --scale` with two port
    /// workers: in rounds where it happened, the thread that made the
    /// engine woke about 10,000 times a second and the port did 0.63-0.78x
    /// the work of the other rounds.) Wake-ups made before the no-op is
    /// reaped share it.
    pub(crate) fn wake(&self) {
        if self.wake_pending.swap(true, Ordering::AcqRel) {
            return;
        }
        let e = opcode::Nop::new().build().user_data(WAKE_TOKEN);
        // SAFETY: a no-op points at no memory.
        let pushed = unsafe { self.push_locked(&e) };
        self.rearm_if_due();
        if let Err(e) = pushed {
            self.wake_pending.store(false, Ordering::Release);
            tracing::warn!(error = %e, "pushing a wake-up failed");
        } else if let Err(e) = self.submit() {
            // Pushed: the next kernel entry submits it. Until then a thread
            // blocked in the ring is not woken by it, so later wake-ups must
            // not be dropped as shared with it, and the eventfd polled
            // through the ring is written as well (a second way to end
            // that wait). A spare no-op costs nothing.
            self.wake_pending.store(false, Ordering::Release);
            self.notice_backlog();
            tracing::warn!(error = %e, "submitting a wake-up failed");
        }
    }

    /// Makes the ring's descriptor readable while completions wait in the
    /// backlog. Unlike [`wake`](Self::wake), this may run with the
    /// submission lock held (a push that met a full queue).
    fn notice_backlog(&self) {
        let _ = rustix::io::write(&self.wake_fd, &1u64.to_ne_bytes());
    }

    /// Pushes one SQE; a full submission queue is submitted and the push
    /// retried, never dropped.
    ///
    /// # Safety
    /// Every pointer in `entry` must stay valid, and the memory it names
    /// unused by anything else, until the entry's CQE is reaped.
    unsafe fn push(&self, t: &mut SqAccess<'_>, entry: &squeue::Entry) -> io::Result<()> {
        let _held = &t.0;
        loop {
            // SAFETY: `t` proves the submission lock is held: the only live view of the SQ.
            let mut sq = unsafe { self.ring.submission_shared() };
            // SAFETY: the caller keeps the entry's memory valid until its CQE.
            if unsafe { sq.push(entry) }.is_ok() {
                return Ok(());
            }
            drop(sq);
            self.flush()?;
        }
    }

    /// Parks an operation in the kernel: pushes `entry` (built by
    /// [`prepare`](super::inflight::prepare) with `inflight`) under `token`.
    /// On success the returned [`InFlight`] must be kept until the CQE for
    /// `token` is reaped (dropping it earlier leaks its memory, safely).
    ///
    /// # Safety
    /// No other request pushed with `token` may be in the kernel or reaped
    /// but not yet handed to its operation: the CQE of `token` frees the
    /// memory of the operation that token names.
    pub(super) unsafe fn push_op(
        &self,
        token: u64,
        inflight: InFlight,
        entry: squeue::Entry,
    ) -> Result<InFlight, (io::Error, Bufs)> {
        let entry = entry.user_data(token);
        // The entry points only into `inflight`, which owns that memory until
        // the CQE of `token` (and leaks it if dropped before).
        // SAFETY: so the memory outlives the request; the token is unique (the caller's contract).
        let pushed = unsafe { self.push_locked(&entry) };
        self.rearm_if_due();
        match pushed {
            Ok(()) => Ok(inflight),
            Err(e) => Err((e, inflight.never_pushed())),
        }
    }

    /// Asks the kernel to cancel the request pushed under `target`.
    pub(crate) fn push_cancel(&self, target: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel::new(target)
            .build()
            .user_data(CANCEL_TOKEN);
        // SAFETY: a cancel request points at no memory.
        let pushed = unsafe { self.push_locked(&e) };
        self.rearm_if_due();
        pushed
    }

    /// Submits everything queued. A completion queue in overflow (`EBUSY`)
    /// is reaped into the backlog and the submit retried: nothing is lost.
    pub(crate) fn submit(&self) -> io::Result<()> {
        let r = self.flush();
        self.rearm_if_due();
        r
    }

    /// [`submit`](Self::submit) without arming the backlog poll again: a
    /// push calls it holding the submission lock.
    fn flush(&self) -> io::Result<()> {
        loop {
            #[cfg(test)]
            let r = if self
                .force_busy
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                Err(io::Error::from_raw_os_error(libc::EBUSY))
            } else {
                self.ring.submitter().submit()
            };
            #[cfg(not(test))]
            let r = self.ring.submitter().submit();
            match r {
                Ok(_) => return Ok(()),
                Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::EAGAIN)) => {
                    let mut backlog = self.cq();
                    let d = self.drain_cq(&mut backlog);
                    let kept = !backlog.is_empty();
                    drop(backlog);
                    self.drained(&d);
                    if kept || d.woke {
                        // Completions now wait in the backlog, where the
                        // ring's descriptor does not show them (and a
                        // wake-up taken here was meant for the thread
                        // blocked in the ring): this makes it readable, so
                        // a driver that waits in the ring or for its
                        // readiness (`overlapped::tokio`) reaps them.
                        self.notice_backlog();
                    }
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// True when the kernel must be entered: SQEs wait to be submitted, or
    /// the completion queue overflowed (the kernel holds completions that
    /// only an entry moves into the queue; [`submit`](Self::submit) asks
    /// for them then).
    pub(crate) fn needs_enter(&self) -> bool {
        let t = self.sq();
        let _held = &t.0;
        // SAFETY: `t` proves the submission lock is held (only view of the SQ).
        let sq = unsafe { self.ring.submission_shared() };
        !sq.is_empty() || sq.cq_overflow()
    }

    /// The ring's descriptor: readable while completions wait in the
    /// completion queue (or in the kernel's overflow list). A
    /// [`wake`](Self::wake) posts a completion, and completions left in the
    /// backlog write the eventfd polled through the ring: both make it
    /// readable too.
    pub(crate) fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.ring.as_fd()
    }

    /// Moves every available completion into `out`, without blocking.
    /// True when it took a wake-up's completion (see
    /// [`Backend::reap`](crate::sys::Backend::reap)).
    pub(crate) fn reap(&self, out: &mut Vec<Wakeup>) -> bool {
        let mut backlog = self.cq();
        out.append(&mut backlog);
        let d = self.drain_cq(out);
        drop(backlog);
        self.drained(&d);
        self.rearm_if_due();
        d.woke
    }

    /// What a drain met, after the completion lock was let go: the eventfd
    /// read (no system call under that lock), the backlog poll marked due.
    fn drained(&self, d: &Drained) {
        if d.fired {
            let mut buf = [0u8; 8];
            let _ = rustix::io::read(&self.wake_fd, &mut buf);
            // Another thread may have kept completions in the backlog since
            // the drain and announced them with a write this read took:
            // announce them again (a backlog poll armed again later must
            // find the eventfd readable).
            if !self.cq().is_empty() {
                self.notice_backlog();
            }
        }
        if d.rearm {
            self.rearm_due.store(true, Ordering::Release);
        }
    }

    /// Moves the CQ's entries into `out` (the caller holds the completion
    /// lock, and calls [`drained`](Self::drained) once it let it go).
    fn drain_cq(&self, out: &mut Vec<Wakeup>) -> Drained {
        // SAFETY: the caller holds the completion lock: the only live view of the CQ.
        let cq = unsafe { self.ring.completion_shared() };
        let mut d = Drained {
            rearm: false,
            fired: false,
            woke: false,
        };
        for c in cq {
            match c.user_data() {
                WAKE_TOKEN => {
                    // Synchronizes with every wake-up that found it set.
                    self.wake_pending.swap(false, Ordering::AcqRel);
                    d.woke = true;
                }
                BACKLOG_TOKEN => {
                    d.fired = true;
                    d.rearm |= !cqueue::more(c.flags());
                }
                CANCEL_TOKEN => {}
                token => out.push(Wakeup::Op {
                    token,
                    reaped: Reaped::Uring(Cqe {
                        res: c.result(),
                        flags: c.flags(),
                    }),
                }),
            }
        }
        d
    }

    /// Blocks until at least one completion is available (a
    /// [`wake`](Self::wake) posts one), or `timeout` passes. Submits whatever is queued on the way in.
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether the ring's descriptor is readable within `ms` milliseconds.
    fn readable(u: &Uring, ms: u16) -> bool {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let mut fds = [PollFd::new(&u.ring, PollFlags::IN)];
        let t = Timespec {
            tv_sec: i64::from(ms / 1000),
            tv_nsec: i64::from(ms % 1000) * 1_000_000,
        };
        poll(&mut fds, Some(&t)).unwrap() == 1
    }

    /// A push into a full submission queue whose forced submit meets
    /// `EBUSY` and, draining the completion queue, finds that the backlog
    /// poll ended: the poll is armed again, not from inside the push that
    /// holds the submission lock (which deadlocked), and works.
    #[test]
    fn backlog_poll_ended_inside_a_full_push_is_armed_again() {
        let u = match Uring::new(1) {
            Ok(u) => u,
            Err(e) => return crate::sys::fault::skip_uring(&e),
        };
        let u = Arc::new(u);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = Arc::clone(&u);
        std::thread::spawn(move || {
            // The backlog poll ends: its last completion (no `MORE`) waits
            // in the completion queue, unreaped.
            t.push_cancel(BACKLOG_TOKEN).unwrap();
            t.wait(Some(Duration::from_millis(100))).unwrap();
            // The one-entry submission queue is full...
            t.push_cancel(WAKE_TOKEN).unwrap();
            // ...so this push submits, meets `EBUSY` and drains.
            t.force_busy.store(1, Ordering::Release);
            t.push_cancel(WAKE_TOKEN).unwrap();
            t.submit().unwrap();
            let _ = tx.send(());
        });
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a push that met a full queue and an ended backlog poll deadlocked");
        let mut out = Vec::new();
        for _ in 0..3 {
            u.wait(Some(Duration::from_millis(20))).unwrap();
            u.reap(&mut out);
        }
        assert!(out.is_empty());
        assert!(!readable(&u, 0), "nothing waits");
        // Armed again: completions left in the backlog make the descriptor
        // readable.
        u.notice_backlog();
        assert!(readable(&u, 1000), "the backlog poll was not armed again");
    }
}
