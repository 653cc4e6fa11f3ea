//! The io_uring engine, on the `io-uring` crate.
//!
//! # Memory invariant (read before any `unsafe` here)
//!
//! Every SQE that points at memory points into an [`InFlight`]: the
//! operation's kernel memory and buffers, owned by that value from the push
//! of the SQE until the CQE of its token is reaped. Only the reap path takes
//! an `InFlight` apart (it needs the reaped [`Cqe`]); dropped anywhere else,
//! it leaks what it holds. The one entry to the ring that hands it memory is
//! the `unsafe fn` [`Uring::push_op`](ring::Uring::push_op), whose contract
//! is that a token is never used by two requests at once.
//!
//! # Ring choice
//!
//! One ring per [`Engine`](crate::Engine), without `SINGLE_ISSUER` or
//! `DEFER_TASKRUN`: "whoever waits, drives" means any thread may enter it,
//! and a port's waiters must see completions whichever thread submitted
//! them. With `COOP_TASKRUN` (and `TASKRUN_FLAG`): without it every network
//! completion interrupts the thread that submitted the request, which cost
//! the port-model echo server two thirds of its throughput. The price: the
//! completion of an op whose submitting thread spins without entering the
//! kernel waits for that thread's next timer tick (SPEC e11 still holds).
//!
//! # Policies kept here
//!
//! * **Receives.** After a stream receive found no data at start (or
//!   emptied the socket), the next receive on that socket skips the try and
//!   parks with `IORING_RECVSEND_POLL_FIRST` until a completion reports
//!   bytes left in the socket (`IORING_CQE_F_SOCK_NONEMPTY`): no wasted
//!   system call. Only within a few milliseconds (`EMPTY_TRUSTED_MS`):
//!   after a pause it tries, so a reset that came in the pause fails it at
//!   the call. A socket whose data turns out to be there anyway (probes,
//!   the shared [`EmptyGuess`](super::guess::EmptyGuess)) keeps trying.
//! * **Short sends.** Stream sends carry `MSG_WAITALL`; a send the kernel
//!   took in part is pushed again for the rest.
//! * **`EAGAIN` in a CQE.** A send, receive or accept the kernel ran where
//!   it may not wait (its worker pool, on a non-blocking socket) can
//!   complete with `-EAGAIN`; it is never reported: the operation waits as
//!   a readiness poll and is tried when that fires, so a kernel that keeps
//!   answering `EAGAIN` costs a wait for the socket each time, not a spin
//!   through the ring; after [`MAX_RESUBMITS`] such answers it ends
//!   *aborted* (`tests/tokio.rs`'s 4 MiB transfer on a multi-thread
//!   runtime saw `EAGAIN` in about 1 run in 20).
//! * **Urgent receives and connects** park as a readiness poll and run the
//!   non-blocking attempt when it fires. Once a socket started an urgent
//!   receive, its normal stream receives park that way too, and a poll that
//!   reports priority readiness first takes the urgent byte out of the
//!   kernel: a receive in the kernel would read past an urgent byte that
//!   arrives alone, and Linux drops it then (SPEC k05).
//! * **`WAITALL` receives** are pushed again for the rest after each short
//!   completion (no `MSG_WAITALL` in the SQE): an abort then reports the
//!   bytes that arrived, which the kernel's own loop would lose.
//! * **Datagram sends** that meet an ICMP error of an earlier send
//!   (`ECONNREFUSED`) or go to port 0 finish through the shared attempt,
//!   which gives Windows' answer (SPEC k04).
//! * **Registered buffers** (`Engine::register_buffers`): a receive or send
//!   of exactly one `FixedBuf` of the registered pool, on a stream socket,
//!   without flags, parks as `READ_FIXED` or as `SEND_ZC` with the
//!   fixed-buffer flag (whichever `probe::fixed_support` found working). A
//!   zero-copy send has two CQEs, its result and a notification, which two
//!   threads may reap and hand to the operation in either order: it stays
//!   parked, buffer and all, until it has both. A socket that refuses
//!   zero-copy (`EOPNOTSUPP`) sends the ordinary way from then on.
//! * **Extension operations** (`AcceptEx` with data or into a socket,
//!   `ConnectEx`, `DisconnectEx`) park as readiness polls and run the shared
//!   attempt (`sys/ext.rs`); an `AcceptEx` that took its connection polls
//!   the connection for its first data. A `TransmitFile`'s file region goes
//!   by `SPLICE` requests through a pipe of its own ([`splice`]): no system
//!   call of its own moves the file's bytes.
//! * **Wake-ups.** Another thread ends a blocking wait in the ring by
//!   submitting a no-op, which it completes itself
//!   ([`Uring::wake`](ring::Uring::wake)); not through a poll on an eventfd,
//!   which would complete through the task work of the thread that armed
//!   it.
//! * **Thread exit.** The kernel cancels a request when its submitting
//!   thread exits; an `ECANCELED` the engine did not ask for is pushed again
//!   (the model's own thread-exit rule is applied by the core).

#![allow(unsafe_code)]

mod inflight;
mod ring;
mod splice;

pub(crate) use inflight::InFlight;
pub(crate) use ring::{Cqe, Uring};

use inflight::{Finish, FixedMode, FixedOp, Request, Wait, finish, prepare};

use super::{Attempt, Bufs, Calls, OpKind, OpRef, Outcome, Parked, Reaped, Step, Wakeup};
use super::{attempt, serve_urgent};
use crate::buf::RawBufs;
use crate::flags::MsgFlags;

/// How many times a request the kernel cancelled on its own, or answered
/// with `EAGAIN`, is pushed again before the operation ends *aborted*.
const MAX_RESUBMITS: u32 = 1000;

/// Per-socket receive policy: try the next stream receive at once, or park
/// it polling first (see the module docs); and whether the socket uses
/// urgent data.
#[derive(Debug)]
pub(crate) struct RecvPolicy {
    /// The next stream receive tries first; false while the engine guesses
    /// the socket empty (see [`EmptyGuess`](super::guess::EmptyGuess)).
    recv_direct: bool,
    /// What the socket taught about that guess.
    guess: super::guess::EmptyGuess,
    /// An `OOB` receive was started on the socket: its normal receives park
    /// as readiness polls, so that an urgent byte is taken out before a
    /// receive reads past it (a receive in the kernel would skip it, and
    /// Linux then drops it).
    urgent: bool,
    /// A fixed-buffer send (`SEND_ZC`) was refused with `EOPNOTSUPP` (a
    /// socket without zero-copy, such as a Unix stream socket): its sends
    /// take the ordinary path.
    no_zc: bool,
}

fn is_oob_recv(kind: &OpKind) -> bool {
    matches!(kind, OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB))
}

impl RecvPolicy {
    /// A new socket's policy; `urgent`: its normal stream receives park as
    /// readiness polls from the start, as after a first `OOB` receive.
    pub(crate) fn new(urgent: bool) -> Self {
        RecvPolicy {
            recv_direct: true,
            guess: Default::default(),
            urgent,
            no_zc: false,
        }
    }

    /// Whether a start tries the operation before parking it.
    ///
    /// * A send of a thread inside its own batch (running completion
    ///   routines, polling async tasks), while no other thread is blocked in
    ///   the engine, goes straight to the ring, batched into the thread's
    ///   next kernel entry: no system call of its own. (It is then pending,
    ///   which the model allows for any start.) Sends of port workers try:
    ///   with every send of a worker answering a packet sent through the
    ///   ring, a port with two workers did 0.91-0.94x the work of one
    ///   (`ovl bench --scale`; 1.8x when they try), since a request waits
    ///   for the next kernel entry of a worker that keeps taking packets.
    /// * A stream receive after one that found nothing, or emptied the
    ///   socket, parks polling first, until a completion reports bytes left
    ///   in the socket, unless the guess is older than
    ///   [`EMPTY_TRUSTED_MS`](super::EMPTY_TRUSTED_MS) (a reset that came
    ///   meanwhile then fails it at the call, SPEC k01). Inside a batch
    ///   (`deferred`) that is all: such a receive completes with the
    ///   thread's next kernel entry whether or not its data is there, at no
    ///   cost of its own. Outside, its completion goes through the ring's
    ///   driver, maybe on another thread, so it also tries when the socket
    ///   taught that such receives find data, or for a probe (see
    ///   [`EmptyGuess`](super::guess::EmptyGuess)). Probing inside batches
    ///   too raised the system calls per message of single-thread servers
    ///   from 0.31-0.35 to 0.51-0.61 (`ovl bench`, port model).
    /// * Everything else tries first: a receive whose data is there
    ///   completes at once (a ported program may handle it inline), a
    ///   connect runs its `connect(2)`, an urgent receive never waits on
    ///   Linux.
    fn try_first(&mut self, kind: &OpKind, stream: bool, deferred: bool) -> bool {
        if kind.always_pends() || (deferred && matches!(kind, OpKind::Send { .. })) {
            return false;
        }
        if self.recv_direct || !kind.is_plain_stream_recv(stream) {
            return true;
        }
        if deferred {
            return !self.guess.trusted();
        }
        !self.guess.skip_try()
    }

    /// The outcome of a try that [`try_first`](Self::try_first) allowed.
    fn tried(&mut self, kind: &OpKind, stream: bool, a: &Attempt) {
        self.urgent |= is_oob_recv(kind);
        if !kind.is_plain_stream_recv(stream) {
            return;
        }
        // Tried while the engine guessed the socket empty: a probe.
        let probe = !self.recv_direct;
        self.recv_direct = match a {
            Attempt::WouldBlock => {
                self.guess.found_nothing(probe);
                false
            }
            Attempt::Done(out) => !self.guess.took(probe, out.bytes, out.drained),
        };
    }

    /// The completion of a stream receive parked in the ring: `left`, bytes
    /// are left in the socket (or the stream ended or failed, which a try
    /// sees at once too).
    fn completed(&mut self, left: bool) {
        self.recv_direct = left || !self.guess.emptied();
    }
}

/// The try at start ([`Backend::try_now`](super::Backend::try_now)) on
/// io_uring: as the socket's [`RecvPolicy`] says
/// ([`try_first`](RecvPolicy::try_first)), which then learns from what the
/// try found. `watch_urgent`: see [`urgent_first`](super::urgent_first).
pub(crate) fn try_now(
    op: OpRef<'_>,
    bufs: Option<&mut dyn RawBufs>,
    deferred: bool,
    watch_urgent: bool,
    calls: &Calls,
) -> Option<Attempt> {
    // `None` only on another backend's socket, which the dispatch never
    // hands here.
    let p = op.sock.uring()?;
    if !p.try_first(op.kind, op.stream, deferred) {
        return None;
    }
    let fd = op.fd?;
    give_pipe(op.kind);
    super::urgent_first(watch_urgent, calls, fd, op.kind, op.stream, op.urgent);
    calls.direct();
    let a = attempt(fd, op.kind, bufs, op.done, op.stream, op.urgent);
    p.tried(op.kind, op.stream, &a);
    Some(a)
}

/// A `TransmitFile` on io_uring splices its file region through a pipe of
/// its own (see `splice.rs`); where no pipe can be made (descriptors run
/// out) it sends by `sendfile` as on the poll engine.
fn give_pipe(kind: &mut OpKind) {
    if let OpKind::Transmit(t) = kind {
        if t.pipe.is_none() {
            match super::ext::Pipe::new() {
                Ok(p) => t.pipe = Some(p),
                Err(e) => tracing::debug!(error = %e, "no pipe for a splice: sendfile instead"),
            }
        }
    }
}

impl Uring {
    /// Requests pushed so far that use a registered buffer: fixed reads,
    /// fixed sends.
    pub(crate) fn fixed_ops(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.fixed_ops[0].load(Relaxed),
            self.fixed_ops[1].load(Relaxed),
        )
    }

    /// Hands queued requests to the kernel when the ring needs an entry
    /// (see [`needs_enter`](Uring::needs_enter)); a failed submit is
    /// logged, its requests stay queued for the next entry.
    pub(crate) fn submit_if_needed(&self, calls: &Calls) {
        if self.needs_enter() {
            calls.enter();
            if let Err(e) = self.submit() {
                tracing::warn!(error = %e, "io_uring submit failed");
            }
        }
    }

    /// Blocks in the ring ([`Backend::wait`](super::Backend::wait)), then
    /// reaps what completed; a wake-up taken here was meant for this
    /// thread.
    pub(crate) fn wait_and_reap(
        &self,
        timeout: Option<std::time::Duration>,
        out: &mut Vec<Wakeup>,
    ) {
        if let Err(e) = self.wait(timeout) {
            tracing::warn!(error = %e, "io_uring wait failed");
        }
        let _ = self.reap(out);
    }

    /// Parks an operation: pushes its SQE.
    ///
    /// # Safety
    /// As [`Backend::arm`](super::Backend::arm): `op.token` is unique among
    /// parked operations.
    pub(crate) unsafe fn arm(&self, op: OpRef<'_>, bufs: Bufs) -> Step {
        // SAFETY: the caller's contract.
        unsafe { self.park(op, bufs, 0) }
    }

    /// Pushes the operation's request again, as its socket's policy says.
    ///
    /// # Safety
    /// As [`arm`](Self::arm).
    unsafe fn park(&self, op: OpRef<'_>, bufs: Bufs, resubmits: u32) -> Step {
        // SAFETY: the caller's contract.
        unsafe { self.park_as(op, bufs, resubmits, false) }
    }

    /// `ready`: as a readiness poll for the operation's direction
    /// ([`Wait::Ready`]).
    ///
    /// # Safety
    /// As [`arm`](Self::arm).
    unsafe fn park_as(&self, op: OpRef<'_>, mut bufs: Bufs, resubmits: u32, ready: bool) -> Step {
        use std::os::fd::AsRawFd;
        let Some(fd) = op.fd else {
            return Step::Done(Outcome::aborted(*op.done), bufs);
        };
        if let (OpKind::Recv { flags, .. }, Some(byte), Some(b)) =
            (&*op.kind, *op.urgent, bufs.as_deref_mut())
        {
            if flags.contains(MsgFlags::OOB) {
                // The urgent byte was taken out of the kernel for it already.
                *op.urgent = None;
                let out = serve_urgent(b.as_bufs(), byte);
                return Step::Done(out, bufs);
            }
        }
        give_pipe(op.kind);
        let Some(policy) = op.sock.uring() else {
            return Step::Done(Outcome::aborted(*op.done), bufs);
        };
        policy.urgent |= is_oob_recv(op.kind);
        let poll_first = self.poll_first && !policy.recv_direct;
        let wait = if ready {
            Wait::Ready
        } else if policy.urgent {
            Wait::UrgentWatch
        } else {
            Wait::Direct
        };
        let req = Request {
            fd: op.kind.wait_fd(fd).as_raw_fd(),
            kind: op.kind,
            done: *op.done,
            stream: op.stream,
            poll_first,
            wait,
            fixed: self.fixed_mode().map(|m| FixedMode {
                send: m.send && !policy.no_zc,
                ..m
            }),
        };
        let prepared = prepare(&req, bufs, resubmits);
        let (inflight, entry) = match prepared {
            Ok(p) => p,
            Err((e, bufs)) => return Step::Done(Outcome::err(e, *op.done), bufs),
        };
        // `inflight` goes back to the caller inside `Parked`, kept until its CQE.
        // SAFETY: that, and the token is unique (the caller's contract).
        match unsafe { self.push_op(op.token, inflight, entry) } {
            Ok(f) => {
                let counter = match f.fixed() {
                    FixedOp::No => None,
                    FixedOp::Read => Some(&self.fixed_ops[0]),
                    FixedOp::SendZc => Some(&self.fixed_ops[1]),
                };
                if let Some(c) = counter {
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                Step::Parked(Parked::Uring(f))
            }
            Err((e, bufs)) => Step::Done(Outcome::err(e, *op.done), bufs),
        }
    }

    /// Interprets the CQE of a parked operation.
    pub(crate) fn progress(
        &self,
        op: OpRef<'_>,
        f: InFlight,
        wakeup: &Wakeup,
        calls: &Calls,
    ) -> Step {
        let cqe = match wakeup {
            Wakeup::Op {
                reaped: Reaped::Uring(cqe),
                ..
            } => cqe,
            // Readiness (or a file pool's job) is no news for a request in
            // the ring (never met: only poll reports them).
            Wakeup::Sock { .. }
            | Wakeup::Op {
                reaped: Reaped::Ready | Reaped::Pool(_),
                ..
            } => return Step::Parked(Parked::Uring(f)),
        };
        let mut f = f;
        let (res, cflags) = if f.fixed() == FixedOp::SendZc {
            // A zero-copy send ends with two CQEs of its token, its result
            // (`MORE` set when a notification follows) and the
            // notification, reaped in either order (by two threads): the
            // request is over, and the buffer free, only with both.
            if io_uring::cqueue::notif(cqe.flags()) {
                f.zc_notified = true;
            } else {
                f.zc_result = Some((cqe.res(), cqe.flags()));
            }
            match f.zc_result {
                Some((res, flags)) if f.zc_notified || !io_uring::cqueue::more(flags) => {
                    (res, flags)
                }
                _ => return Step::Parked(Parked::Uring(f)),
            }
        } else {
            (cqe.res(), cqe.flags())
        };
        #[cfg(test)]
        let res = if matches!(op.kind, OpKind::Accept)
            && res >= 0
            && super::fault::take(super::fault::Call::AcceptEagain)
        {
            // SAFETY: a non-negative accept result is a new fd nothing else owns.
            drop(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(res) });
            -libc::EAGAIN
        } else {
            res
        };
        let resubmits = f.resubmits;
        let (mem, mut bufs) = f.complete(cqe);
        let Some(km) = mem else {
            return Step::Done(Outcome::aborted(*op.done), bufs);
        };
        if km.fixed == FixedOp::SendZc && res == -libc::EOPNOTSUPP {
            // The socket has no zero-copy send: this one and the socket's
            // next ones take the ordinary path (nothing was sent).
            if let Some(p) = op.sock.uring() {
                p.no_zc = true;
            }
            // Not counted: the kernel did not send from the buffer.
            self.fixed_ops[1].fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            drop(km);
            if op.cancel {
                return Step::Done(Outcome::aborted(*op.done), bufs);
            }
            // SAFETY: the operation's own token, its request over (this is its last CQE).
            return unsafe { self.park(op, bufs, resubmits) };
        }
        let fin = if res == -libc::ECANCELED {
            if op.cancel || resubmits >= MAX_RESUBMITS {
                return Step::Done(Outcome::aborted(*op.done), bufs);
            }
            if km.poll_phase {
                // A readiness poll the core cancelled to have the operation
                // tried at once (`kick`), or that died with its thread: try.
                Finish::Attempt
            } else {
                drop(km);
                // The kernel cancelled it because the thread that submitted
                // it exited; the operation itself is still wanted.
                // The token is the one this operation was parked under.
                // SAFETY: and its previous request is over (this is its CQE).
                return unsafe { self.park(op, bufs, resubmits + 1) };
            }
        } else if let (Some(stage), OpKind::Transmit(t)) = (km.splice, &mut *op.kind) {
            let lens = bufs.as_deref_mut().map(|b| {
                let s = b.as_bufs().io_slices();
                (
                    s.first().map_or(0, |s| s.len()),
                    s.get(1).map_or(0, |s| s.len()),
                )
            });
            let (head, tail) = lens.unwrap_or((0, 0));
            splice::finish(t, stage, res, op.done, head, tail)
        } else {
            finish(
                &km,
                res,
                op.kind,
                bufs.as_deref_mut().map(|b| b.as_bufs()),
                op.done,
                op.stream,
                io_uring::cqueue::sock_nonempty(cflags),
            )
        };
        inflight::recycle(km);
        if let Some(p) = op.sock.uring() {
            if op.kind.is_plain_stream_recv(op.stream) {
                // Try the next receive at once only if bytes are left (or
                // the stream ended or failed: the try sees that at once too).
                p.completed(res <= 0 || io_uring::cqueue::sock_nonempty(cflags));
            }
        }
        match fin {
            Finish::Done(out) => Step::Done(out, bufs),
            // A cancelled stream send that had moved part of its bytes: it
            // ends aborted, reporting the bytes taken.
            Finish::Resubmit if op.cancel => Step::Done(Outcome::aborted(*op.done), bufs),
            // SAFETY: as above, the operation's own token, its request over.
            Finish::Resubmit => unsafe { self.park(op, bufs, resubmits) },
            Finish::Again if op.cancel || resubmits >= MAX_RESUBMITS => {
                Step::Done(Outcome::aborted(*op.done), bufs)
            }
            // SAFETY: as above.
            Finish::Again => unsafe { self.park_as(op, bufs, resubmits + 1, true) },
            Finish::Writable if op.cancel => Step::Done(Outcome::aborted(*op.done), bufs),
            // SAFETY: as above.
            Finish::Writable => unsafe { self.park_as(op, bufs, resubmits, true) },
            Finish::Attempt => {
                let Some(fd) = op.fd else {
                    return Step::Done(Outcome::aborted(*op.done), bufs);
                };
                if let OpKind::Transmit(t) = &*op.kind {
                    let head = bufs.as_deref_mut().map_or(0, |b| {
                        b.as_bufs().io_slices().first().map_or(0, |s| s.len())
                    });
                    if splice::splices_next(t, head, *op.done) {
                        if op.cancel {
                            return Step::Done(Outcome::aborted(*op.done), bufs);
                        }
                        // The socket has room: the next splice goes.
                        // SAFETY: as above.
                        return unsafe { self.park(op, bufs, resubmits) };
                    }
                }
                if res > 0
                    && res & libc::POLLPRI as i32 != 0
                    && op.kind.is_plain_stream_recv(op.stream)
                {
                    // Urgent data is there: take it before this receive
                    // reads past it.
                    if op.urgent.is_none() {
                        calls.direct();
                        *op.urgent = super::take_urgent(fd);
                    }
                }
                calls.direct();
                let b = bufs.as_deref_mut().map(|b| b.as_bufs());
                match attempt(fd, op.kind, b, op.done, op.stream, op.urgent) {
                    Attempt::Done(out) => Step::Done(out, bufs),
                    // A cancel that came after the poll fired found nothing
                    // in the kernel: this is where it takes effect (parked
                    // again, the operation would outlive every later cancel).
                    Attempt::WouldBlock if op.cancel => {
                        Step::Done(Outcome::aborted(*op.done), bufs)
                    }
                    // SAFETY: as above.
                    Attempt::WouldBlock => unsafe { self.park(op, bufs, resubmits) },
                }
            }
        }
    }

    /// What the core knows of the socket changed for a parked operation
    /// ([`Backend::kick`](super::Backend::kick)): the request is cancelled,
    /// and its completion tries the operation or parks it again the new
    /// way.
    pub(crate) fn kick(&self, op: OpRef<'_>, f: InFlight) -> Step {
        self.cancel(op, f)
    }

    /// Asks the kernel to cancel a parked operation; its CQE ends it.
    pub(crate) fn cancel(&self, op: OpRef<'_>, f: InFlight) -> Step {
        if let Err(e) = self.push_cancel(op.token) {
            tracing::warn!(error = %e, "io_uring cancel could not be queued");
        }
        Step::Parked(Parked::Uring(f))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::probe::EngineChoice;
    use crate::sys::fault::{Call, inject};
    use crate::{Engine, Notify, Polled, Socket};

    /// An accept the kernel answered with `EAGAIN` (it ran the request
    /// where it may not wait) is not failed with "would block": it waits
    /// for the next connection, as a blocking accept would.
    #[test]
    fn an_accept_answered_eagain_waits_for_the_next_connection() {
        let e = match Engine::builder().choice(EngineChoice::Uring).build() {
            Ok(e) => e,
            Err(e) => return crate::sys::fault::skip_uring(&e),
        };
        let l = Socket::tcp_listener(&e, &"127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = l.local_addr().unwrap();
        let op = l.accept(Notify::None).unwrap().op();
        inject(Call::AcceptEagain);
        let _first = std::net::TcpStream::connect(addr).unwrap();
        for _ in 0..20 {
            e.drive(Some(Duration::from_millis(5)));
        }
        assert!(
            !op.is_complete(),
            "an accept answered EAGAIN ended: {:?}",
            op.result(false).ok().map(|p| match p {
                Polled::Complete(c) => format!("{:?}", c.error),
                Polled::Incomplete(_) => "pending".into(),
            })
        );
        let second = std::net::TcpStream::connect(addr).unwrap();
        let c = match op.result_timeout(Some(Duration::from_secs(5))).unwrap() {
            Polled::Complete(c) => c,
            Polled::Incomplete(_) => panic!("the accept never took the next connection"),
        };
        assert!(c.error.is_none(), "{:?}", c.error);
        assert!(c.data.is_some());
        assert_eq!(c.addr, Some(second.local_addr().unwrap()));
    }
}
