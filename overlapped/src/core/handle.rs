//! The handle side: results taken by an operation's handle, its cancel and
//! drop; a socket's own calls (options, close, cancel-all, port
//! association); the thread-exit rule.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::task::Waker;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::table::{SlotState, SockState};
use super::{Core, OpId, RawDone, SlotNotify, Sock, bad_handle, leftover, wait_until};
use crate::sys::Outcome;
use crate::thread;

impl Core {
    /// Runs `f` with the socket's descriptor and state, under its lock.
    pub(crate) fn with_sock<R>(
        &self,
        sock: &Sock,
        f: impl FnOnce(BorrowedFd<'_>, &mut SockState) -> io::Result<R>,
    ) -> io::Result<R> {
        let mut s = sock.lock();
        if s.closed {
            return Err(bad_handle());
        }
        let fd = s.fd.take().ok_or_else(bad_handle)?;
        let r = f(fd.as_fd(), &mut s);
        s.fd = Some(fd);
        r
    }

    /// Runs a user's closure on the socket's descriptor without the
    /// socket's lock: the closure may use the socket (start operations,
    /// close it). The descriptor stays open until the closure returns.
    pub(crate) fn with_user_fd<R>(
        &self,
        sock: &Sock,
        f: impl FnOnce(BorrowedFd<'_>) -> R,
    ) -> io::Result<R> {
        let fd = {
            let s = sock.lock();
            if s.closed {
                return Err(bad_handle());
            }
            s.fd.clone().ok_or_else(bad_handle)?
        };
        Ok(f(fd.as_fd()))
    }

    /// One more handle on the socket (`Socket::try_clone`, SPEC k11).
    pub(crate) fn clone_handle(&self, sock: &Sock) -> io::Result<()> {
        self.with_sock(sock, |_, s| {
            s.handles += 1;
            Ok(())
        })
    }

    /// A handle of the socket closes; the last one closes the socket
    /// (SPEC k11): every pending op completes *aborted* (on io_uring the
    /// ops are cancelled in the kernel first — `close(2)` alone ends
    /// nothing), then the descriptor is closed.
    pub(crate) fn close_socket(self: &Arc<Self>, sock: &Sock) -> io::Result<()> {
        let mut guard = sock.lock();
        let s = &mut *guard;
        if s.closed {
            return Err(bad_handle());
        }
        s.handles = s.handles.saturating_sub(1);
        if s.handles > 0 {
            return Ok(());
        }
        s.closed = true;
        s.waits.closing(&mut s.later);
        let cancel_accept = Core::close_reserved(s);
        let keys: Vec<u16> = s.queues.iter().flat_map(|q| q.iter().copied()).collect();
        for k in keys {
            if let Some(slot) = s.ops.get_mut(k as usize) {
                slot.closing = true;
            }
            let _ = self.cancel_locked(sock, s, k as usize);
        }
        let fd = s.fd.take();
        self.remove_if_closed(sock, s);
        drop(guard);
        if let Some(cancel) = cancel_accept {
            cancel();
        }
        // Out of the socket's lock (`epoll_ctl`): the socket is closed, so
        // a readiness report meanwhile finds nothing to do.
        if let Some(fd) = fd.as_ref() {
            self.backend.deregister(fd.as_fd());
        }
        // Every request naming this descriptor (deferred starts, the
        // cancels) reaches the kernel before the descriptor is closed: once
        // closed, its number may be reused by another socket.
        self.backend.flush();
        drop(fd);
        Ok(())
    }

    /// Associates a socket with a port (at most one per socket).
    pub(crate) fn associate(&self, sock: &Sock, link: super::PortLink) -> io::Result<()> {
        self.with_sock(sock, |_, s| {
            if s.port.is_some() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the socket is already associated with a completion port",
                ));
            }
            s.port = Some(link);
            Ok(())
        })
    }

    /// `listen(2)`, remembered for the connect rules (SPEC k06).
    pub(crate) fn listen(&self, sock: &Sock, backlog: i32) -> io::Result<()> {
        self.with_sock(sock, |fd, s| {
            rustix::net::listen(fd, backlog).map_err(crate::sys::to_io)?;
            s.conn.listening = true;
            Ok(())
        })
    }

    /// `shutdown`: the write side in the kernel (the peer reads
    /// end-of-stream), the read side in user space only (SPEC k02: the
    /// kernel's would complete pending receives with 0 bytes). A second
    /// shutdown of a side is a no-op.
    pub(crate) fn shutdown(&self, sock: &Sock, how: std::net::Shutdown) -> io::Result<()> {
        use std::net::Shutdown;
        self.with_sock(sock, |fd, s| {
            if matches!(how, Shutdown::Write | Shutdown::Both) && !s.conn.write_shut {
                rustix::net::shutdown(fd, rustix::net::Shutdown::Write)
                    .map_err(crate::sys::to_io)?;
                s.conn.write_shut = true;
            }
            if matches!(how, Shutdown::Read | Shutdown::Both) {
                s.conn.read_shut = true;
            }
            Ok(())
        })
    }

    /// `FILE_SKIP_COMPLETION_PORT_ON_SUCCESS` (one-way).
    pub(crate) fn set_skip_on_success(&self, sock: &Sock) -> io::Result<()> {
        self.with_sock(sock, |_, s| {
            s.skip_on_success = true;
            Ok(())
        })
    }

    /// `CancelIoEx(socket, NULL)`: cancels every pending op of the socket.
    /// Returns how many were asked to cancel.
    pub(crate) fn cancel_socket(self: &Arc<Self>, sock: &Sock) -> io::Result<usize> {
        let mut guard = sock.lock();
        let s = &mut *guard;
        if s.closed {
            return Err(bad_handle());
        }
        let keys: Vec<u16> = s.queues.iter().flat_map(|q| q.iter().copied()).collect();
        let mut n = 0;
        for k in keys {
            if self.cancel_locked(sock, s, k as usize).is_ok() {
                n += 1;
            }
        }
        drop(guard);
        self.backend.flush();
        Ok(n)
    }

    /// Whether the operation finished (reaping first with `reap`).
    pub(crate) fn is_done(self: &Arc<Self>, sock: &Sock, id: OpId, reap: bool) -> bool {
        // A slot that is gone belonged to a routine or port operation whose
        // completion was delivered.
        let done = || match sock.lock().slot(id.key, id.seq) {
            Some(s) => matches!(s.state, SlotState::Done(_)),
            None => true,
        };
        // Reaping (a system call on poll) only when it could change the
        // answer.
        done()
            || (reap && {
                self.poll_once();
                done()
            })
    }

    /// Takes a finished op's outcome, waiting up to `timeout` (`None`: no
    /// limit). `Ok(None)` when still in flight; an error when the
    /// completion went to the socket's port instead (SPEC k09).
    pub(crate) fn take_result(
        self: &Arc<Core>,
        sock: &Sock,
        id: OpId,
        timeout: Option<Duration>,
    ) -> io::Result<Option<RawDone>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let ctx = thread::current_ctx();
        let engines = [crate::engine::Engine {
            inner: self.clone(),
        }];
        let mut check = || match sock.lock().slot(id.key, id.seq) {
            Some(s) if matches!(s.state, SlotState::Done(_)) => true,
            Some(s) => {
                s.waiter = Some(ctx.clone());
                false
            }
            None => true,
        };
        let finished = if timeout == Some(Duration::ZERO) {
            // Reaping (a system call on poll) only when it could change
            // the answer.
            check() || {
                self.poll_once();
                check()
            }
        } else {
            check() || wait_until(&engines, deadline, &mut check)
        };
        if !finished {
            return Ok(None);
        }
        self.take_done(sock, id)
            .map(Some)
            .ok_or_else(posted_to_port)
    }

    /// Removes a finished slot and hands its outcome over.
    fn take_done(self: &Arc<Self>, sock: &Sock, id: OpId) -> Option<RawDone> {
        let mut s = sock.lock();
        let slot = s.slot(id.key, id.seq)?;
        if !matches!(slot.state, SlotState::Done(_)) {
            return None;
        }
        let slot = s.ops.remove(id.key as usize);
        let outcome = match slot.state {
            SlotState::Done(o) => o,
            _ => Outcome::aborted(0),
        };
        drop(s);
        Some(self.raw_done(outcome, slot.bufs))
    }

    /// The future side: the outcome if done, else remember the waker.
    pub(crate) fn poll_result(
        self: &Arc<Self>,
        sock: &Sock,
        id: OpId,
        waker: &Waker,
    ) -> Option<RawDone> {
        let mut s = sock.lock();
        match s.slot(id.key, id.seq) {
            Some(slot) if matches!(slot.state, SlotState::Done(_)) => {}
            Some(slot) => {
                if !slot.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    slot.waker = Some(waker.clone());
                }
                return None;
            }
            None => {
                drop(s);
                let mut out = Outcome::aborted(0);
                out.error = Some(posted_to_port());
                return Some(self.raw_done(out, None));
            }
        }
        // Done: taken under the same lock that saw it done.
        let slot = s.ops.remove(id.key as usize);
        drop(s);
        let outcome = match slot.state {
            SlotState::Done(o) => o,
            _ => Outcome::aborted(0),
        };
        Some(self.raw_done(outcome, slot.bufs))
    }

    /// `CancelIoEx(socket, overlapped)`.
    pub(crate) fn cancel_op(self: &Arc<Self>, sock: &Sock, id: OpId) -> io::Result<()> {
        let mut guard = sock.lock();
        let s = &mut *guard;
        if s.slot(id.key, id.seq).is_none() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the operation is not in flight (already complete)",
            ));
        }
        let r = self.cancel_locked(sock, s, id.key as usize);
        self.remove_if_closed(sock, s);
        drop(guard);
        self.backend.flush();
        r
    }

    /// The handle was dropped: a finished op's slot is freed (its received
    /// bytes kept for the socket); a pending op is cancelled.
    pub(crate) fn drop_handle(self: &Arc<Self>, sock: &Sock, id: OpId) {
        let mut guard = sock.lock();
        let s = &mut *guard;
        let Some(slot) = s.slot(id.key, id.seq) else {
            return;
        };
        slot.handle = false;
        if matches!(slot.state, SlotState::Done(_)) {
            let slot = s.ops.remove(id.key as usize);
            let SlotState::Done(out) = slot.state else {
                return;
            };
            let slot = super::table::Slot {
                state: SlotState::Queued,
                ..slot
            };
            leftover::keep_unclaimed(s, slot, out);
        } else {
            let _ = self.cancel_locked(sock, s, id.key as usize);
            self.remove_if_closed(sock, s);
            drop(guard);
            self.backend.flush();
        }
    }

    /// The model's thread-exit rule (SPEC c08): the ops the thread started
    /// are aborted, except those whose completion goes to a completion port.
    pub(crate) fn abort_thread(self: &Arc<Self>, tid: ThreadId) {
        for sock in self.socks.all() {
            let mut guard = sock.lock();
            let s = &mut *guard;
            // Ops whose completion goes to a port survive (SPEC c08).
            let port = s.port.is_some();
            let keys: Vec<usize> = s
                .ops
                .iter()
                .filter(|(_, o)| {
                    o.issuer == tid
                        && !matches!(o.state, SlotState::Done(_))
                        && !(port && matches!(o.notify, SlotNotify::Port { .. }))
                })
                .map(|(k, _)| k)
                .collect();
            for k in keys {
                let _ = self.cancel_locked(&sock, s, k);
            }
            self.remove_if_closed(&sock, s);
        }
        self.backend.flush();
    }

    /// Operations whose slots are still held.
    pub(crate) fn ops_held(&self) -> usize {
        self.socks.all().iter().map(|s| s.lock().ops.len()).sum()
    }
}

/// The result a handle asks for went to the socket's completion port: the
/// operation was started with no notify before the socket was associated
/// (SPEC k09).
fn posted_to_port() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "the operation's completion was posted to the completion port the socket was associated with after the start",
    )
}
