//! The poll engine, on `rustix`'s epoll.
//!
//! Every operation is first tried non-blocking (the shared
//! [`attempt()`](super::attempt())), unless the socket's read hints say a
//! receive would find nothing (see [`ReadPolicy`]); an operation that would
//! block waits at the head of its socket's direction queue until epoll
//! reports readiness, then the engine tries it again (on the thread that
//! reaped the readiness). Sockets are registered once, edge-triggered, for
//! `IN | OUT | PRI | RDHUP`: a pending operation always follows a failed
//! attempt, or a receive that emptied the socket, so the next edge is never
//! missed (an attempt and the handling of a readiness event for its socket
//! run under the socket's lock). Urgent data waits for `EPOLLPRI`, and the
//! core serves priority readiness before a socket's reads (a read past the
//! urgent byte makes Linux drop it; see SPEC k05). Sends pass
//! `MSG_NOSIGNAL`. Another thread ends a blocking wait through an eventfd in
//! the epoll set. File operations run on the engine's file pool
//! ([`pool`](super::pool)), whose eventfd is in the set too.
//!
//! No `unsafe` here: the syscalls go through `rustix` with borrowed buffers.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, epoll, eventfd};

use super::{
    Attempt, Bufs, Calls, Dir, OpKind, OpRef, Outcome, Parked, Step, Wakeup, attempt, to_io,
};
use crate::flags::MsgFlags;

const WAKE_TOKEN: u64 = u64::MAX;
/// The file pool's eventfd (no socket token has its top bit set).
const POOL_TOKEN: u64 = u64::MAX - 1;

/// Set in the epoll data of a descriptor an operation waits on by itself
/// (an `AcceptEx`'s connection, waiting for its first data): the rest is the
/// operation's token (operation tokens never have this bit, see
/// `SockState::new_gen`; socket tokens neither: their generation has 31
/// bits).
const ASIDE: u64 = 1 << 63;

/// Readiness reports taken per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

thread_local! {
    /// The event list of this thread's waits, kept between them.
    static EVENTS: std::cell::Cell<Vec<epoll::Event>> = const { std::cell::Cell::new(Vec::new()) };
}

/// The epoll backend.
#[derive(Debug)]
pub(crate) struct Poll {
    epoll: OwnedFd,
    wake_fd: OwnedFd,
    files: super::pool::Pool,
}

impl Poll {
    pub(crate) fn new() -> io::Result<Self> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC).map_err(to_io)?;
        let wake_fd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(to_io)?;
        epoll::add(
            &epoll,
            &wake_fd,
            epoll::EventData::new_u64(WAKE_TOKEN),
            epoll::EventFlags::IN,
        )
        .map_err(to_io)?;
        let files = super::pool::Pool::new()?;
        epoll::add(
            &epoll,
            files.signal_fd(),
            epoll::EventData::new_u64(POOL_TOKEN),
            epoll::EventFlags::IN,
        )
        .map_err(to_io)?;
        Ok(Poll {
            epoll,
            wake_fd,
            files,
        })
    }

    /// The engine's file pool.
    pub(crate) fn files(&self) -> &super::pool::Pool {
        &self.files
    }

    /// Registers a socket for edge-triggered readiness under `token`. A
    /// descriptor the set still holds (an `AcceptEx`'s connection watched
    /// for its first data, now the new socket's) takes the new token.
    pub(crate) fn register(&self, fd: BorrowedFd<'_>, token: u64) -> io::Result<()> {
        use epoll::EventFlags as F;
        let data = epoll::EventData::new_u64(token);
        let flags = F::IN | F::OUT | F::PRI | F::RDHUP | F::ET;
        match epoll::add(&self.epoll, fd, data, flags) {
            Err(e) if e == rustix::io::Errno::EXIST => epoll::modify(&self.epoll, fd, data, flags),
            r => r,
        }
        .map_err(to_io)
    }

    /// Watches the descriptor an operation waits on by itself (see
    /// [`ASIDE`]) for reading, once.
    fn watch_aside(&self, op: &mut OpRef<'_>) {
        let OpKind::AcceptEx(a) = &mut *op.kind else {
            return;
        };
        if a.conn.as_ref().is_none_or(|c| c.watched) {
            return;
        }
        use epoll::EventFlags as F;
        let data = epoll::EventData::new_u64(op.token | ASIDE);
        let flags = F::IN | F::RDHUP | F::ET;
        let r = match a.conn_fd() {
            Some(fd) => match epoll::add(&self.epoll, fd, data, flags) {
                Err(e) if e == rustix::io::Errno::EXIST => {
                    epoll::modify(&self.epoll, fd, data, flags)
                }
                r => r,
            },
            None => Ok(()),
        };
        if let Err(e) = r {
            tracing::warn!(error = %e, "epoll_ctl for an accepted connection failed");
        }
        if let Some(c) = a.conn.as_mut() {
            c.watched = true;
        }
    }

    /// Removes a socket before it is closed.
    pub(crate) fn deregister(&self, fd: BorrowedFd<'_>) {
        let _ = epoll::delete(&self.epoll, fd);
    }

    /// Waits up to `timeout` (zero polls, `None` blocks) and appends each
    /// ready socket's token with the directions that may progress. True
    /// when it took a wake-up (see [`wake`](Self::wake)).
    pub(crate) fn wait(
        &self,
        timeout: Option<Duration>,
        out: &mut Vec<Wakeup>,
    ) -> io::Result<bool> {
        // The event list the thread keeps (no allocation per wait; a
        // fresh one if a wait nests in this one's dispatch).
        crate::sync::with_kept(&EVENTS, |events| {
            if events.capacity() < EVENTS_PER_WAIT {
                events.reserve_exact(EVENTS_PER_WAIT);
            }
            self.wait_into(timeout, events, out)
        })
    }

    fn wait_into(
        &self,
        timeout: Option<Duration>,
        events: &mut Vec<epoll::Event>,
        out: &mut Vec<Wakeup>,
    ) -> io::Result<bool> {
        use epoll::EventFlags as F;
        let ts = timeout.map(|d| rustix::event::Timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        });
        match epoll::wait(
            &self.epoll,
            rustix::buffer::spare_capacity(events),
            ts.as_ref(),
        ) {
            Ok(_) => {}
            Err(e) if e == rustix::io::Errno::INTR => return Ok(false),
            Err(e) => return Err(to_io(e)),
        }
        let mut woke = false;
        for ev in events.iter() {
            let token = ev.data.u64();
            if token == WAKE_TOKEN {
                let mut buf = [0u8; 8];
                let _ = rustix::io::read(&self.wake_fd, &mut buf);
                woke = true;
                continue;
            }
            if token == POOL_TOKEN {
                self.files.reap(out);
            }
            if token & ASIDE != 0 {
                out.push(Wakeup::Op {
                    token: token & !ASIDE,
                    reaped: super::Reaped::Ready,
                });
                continue;
            }
            let f = ev.flags;
            let broken = f.intersects(F::HUP | F::ERR);
            let mut dirs = [false; 3];
            dirs[Dir::Read as usize] = broken || f.intersects(F::IN | F::RDHUP);
            dirs[Dir::Write as usize] = broken || f.contains(F::OUT);
            dirs[Dir::Urgent as usize] = broken || f.contains(F::PRI);
            let ended = f.intersects(F::HUP | F::ERR | F::RDHUP);
            out.push(Wakeup::Sock { token, dirs, ended });
        }
        Ok(woke)
    }

    /// Collects readiness without blocking
    /// ([`Backend::reap`](super::Backend::reap)): only when `poll_now`, by
    /// a [`wait`](Self::wait) with a zero timeout. True when it took a
    /// wake-up.
    pub(crate) fn reap(&self, poll_now: bool, out: &mut Vec<Wakeup>, calls: &Calls) -> bool {
        if !poll_now {
            return false;
        }
        calls.enter();
        self.wait(Some(Duration::ZERO), out).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "epoll_wait failed");
            false
        })
    }

    /// Ends a blocking [`wait`](Self::wait) on another thread.
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(self.wake_fd.as_fd(), &1u64.to_ne_bytes());
    }

    /// The epoll set's descriptor: readable while a registered socket has
    /// readiness to report (edge-triggered: until [`wait`](Self::wait)
    /// took it) or the wake-up eventfd is set.
    pub(crate) fn pollable_fd(&self) -> BorrowedFd<'_> {
        self.epoll.as_fd()
    }
}

/// A parked operation of the poll engine: its buffers, waiting for the
/// socket's readiness.
pub(crate) struct Waiting(Bufs);

impl std::fmt::Debug for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiting").finish_non_exhaustive()
    }
}

impl Waiting {
    /// The buffers back (nothing outside the process refers to them).
    pub(crate) fn into_bufs(self) -> Bufs {
        self.0
    }
}

/// Per-socket read policy of the poll engine, kept inside the socket's lock.
///
/// A stream receive that took bytes and emptied the socket (`TCP_INQ` says
/// nothing is left), or found nothing, clears the read hint, so the next
/// receive parks without a try until readiness is reported; what the engine
/// learns about that guess (probes, `pays` mode, the trusted window) is the
/// shared [`EmptyGuess`](super::guess::EmptyGuess).
pub(crate) type ReadPolicy = super::guess::EmptyGuess;

/// The try at start ([`Backend::try_now`](super::Backend::try_now)) on the
/// poll engine: the [`hinted_attempt`], unless it would find nothing
/// ([`worth_trying`]). `watch_urgent`: see [`urgent_first`](super::urgent_first).
pub(crate) fn try_now(
    mut op: OpRef<'_>,
    bufs: Option<&mut dyn crate::buf::RawBufs>,
    watch_urgent: bool,
    calls: &Calls,
) -> Option<Attempt> {
    if op.kind.always_pends() || !worth_trying(&mut op) {
        return None;
    }
    if let Some(fd) = op.fd {
        super::urgent_first(watch_urgent, calls, fd, op.kind, op.stream, op.urgent);
    }
    Some(hinted_attempt(op, bufs, calls))
}

/// Whether a start should try at all: not a read-direction operation whose
/// last attempt found nothing (or emptied the socket, see [`ReadPolicy`])
/// with no readiness reported since, unless it is time for a probe.
fn worth_trying(op: &mut OpRef<'_>) -> bool {
    let dir = op.kind.dir();
    if dir != Dir::Read || op.hints.may(dir) {
        return true;
    }
    op.sock.poll().is_some_and(|p| !p.skip_try())
}

/// The attempt, keeping the socket's read [`Hints`](super::Hints) and
/// [`ReadPolicy`]: the hint is cleared just before a read-direction attempt
/// (so a report that arrives during it sets it again) and set again after
/// it unless it found nothing or emptied the socket (in `pays` mode, only
/// unless it found nothing).
fn hinted_attempt(
    op: OpRef<'_>,
    bufs: Option<&mut dyn crate::buf::RawBufs>,
    calls: &Calls,
) -> Attempt {
    let Some(fd) = op.fd else {
        return Attempt::Done(Outcome::aborted(*op.done));
    };
    let dir = op.kind.dir();
    // An operation that waits aside tries its own descriptor: the socket's
    // hints are not about it.
    let read = dir == Dir::Read && !op.kind.waits_aside();
    // A read tried while the hint was clear: a probe (or the arm of a
    // queued receive), which tells whether data arrives unreported.
    let probe = read && !op.hints.may(dir);
    if read {
        op.hints.clear(dir);
    }
    calls.direct();
    let a = attempt(fd, op.kind, bufs, op.done, op.stream, op.urgent);
    // An accept that took a connection and now waits for its first data
    // found the listener ready: more connections may wait.
    let read = read && !op.kind.waits_aside();
    if read {
        let policy = op.sock.poll();
        let mut keep_clear = matches!(a, Attempt::WouldBlock);
        if let Some(p) = policy {
            keep_clear = match &a {
                Attempt::WouldBlock => {
                    p.found_nothing(probe);
                    true
                }
                Attempt::Done(out) => p.took(probe, out.bytes, out.drained),
            };
        }
        if !keep_clear {
            op.hints.set(dir);
        }
    }
    a
}
impl Poll {
    /// Parks the head operation: it waits for readiness. Unless the start
    /// just tried it, it is tried first.
    ///
    /// An operation that always pends (see
    /// [`OpKind::always_pends`](super::OpKind::always_pends)) was not tried
    /// at start: it is tried now, as readiness could be long reported
    /// (edge-triggered) and not come again.
    pub(crate) fn arm(&self, mut op: OpRef<'_>, bufs: Bufs, tried: bool, calls: &Calls) -> Step {
        let w = Waiting(bufs);
        if tried && !op.kind.always_pends() {
            self.watch_aside(&mut op);
            return Step::Parked(Parked::Poll(w));
        }
        self.progress(op, w, calls)
    }

    /// What the core knows of the socket changed for a parked operation
    /// ([`Backend::kick`](super::Backend::kick)): an `OOB` receive is tried
    /// again now (it can take the urgent byte the core took out of the
    /// kernel for it); a normal one waits for readiness as before.
    pub(crate) fn kick(&self, op: OpRef<'_>, w: Waiting, calls: &Calls) -> Step {
        if matches!(op.kind, OpKind::Recv { flags, .. } if flags.contains(MsgFlags::OOB)) {
            self.progress(op, w, calls)
        } else {
            Step::Parked(Parked::Poll(w))
        }
    }

    /// The socket may progress in the operation's direction: try it again.
    pub(crate) fn progress(&self, mut op: OpRef<'_>, mut w: Waiting, calls: &Calls) -> Step {
        let bufs = w.0.as_deref_mut().map(|b| b.as_bufs());
        match hinted_attempt(op.reborrow(), bufs, calls) {
            Attempt::Done(out) => Step::Done(out, w.into_bufs()),
            Attempt::WouldBlock => {
                self.watch_aside(&mut op);
                Step::Parked(Parked::Poll(w))
            }
        }
    }
}

/// Cancels a parked operation of the poll engine: nothing of it is in the
/// kernel, so it ends *aborted* at once with its buffers.
pub(crate) fn cancel(op: OpRef<'_>, w: Waiting) -> Step {
    Step::Done(Outcome::aborted(*op.done), w.into_bufs())
}
