//! Sockets joining an engine, and starting operations.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::table::{MAX_OPS_PER_SOCKET, Slot, SlotState, SockState};
use super::{OpId, SlotNotify, StartOk, bad_handle, leftover};
use crate::engine::Inner;
use crate::sys::{self, Attempt, Bufs, Dir, OpKind, OpRef};
use crate::thread;

impl Inner {
    /// Adds a socket to the engine.
    pub(crate) fn add_socket(
        &self,
        fd: OwnedFd,
        stream: bool,
        connected: bool,
        bound: bool,
    ) -> io::Result<Arc<super::Sock>> {
        let sys = self.backend.new_sock();
        let mut reg = Ok(());
        let sock = self.socks.insert(|key, seq| {
            reg = self
                .backend
                .register(fd.as_fd(), super::table::sock_token(key, seq));
            super::Sock::new(key, seq, SockState::new(fd, stream, connected, bound, sys))
        });
        if let Err(e) = reg {
            self.socks.remove(&sock);
            return Err(e);
        }
        Ok(sock)
    }

    /// Starts an operation: completed now, pending, or an error (no
    /// completion will follow; the buffers come back).
    pub(crate) fn start(
        self: &Arc<Inner>,
        sock: &super::Sock,
        mut kind: OpKind,
        mut bufs: Bufs,
        mut notify: SlotNotify,
        mut handle: bool,
    ) -> Result<StartOk, (io::Error, Bufs)> {
        thread::note_engine(self);
        let mut guard = sock.lock();
        let s = &mut *guard;
        if s.closed {
            return Err((bad_handle(), bufs));
        }
        if s.ops.len() >= MAX_OPS_PER_SOCKET {
            return Err((
                io::Error::new(
                    io::ErrorKind::OutOfMemory,
                    "too many operations held on one socket (65,535)",
                ),
                bufs,
            ));
        }
        let stream = s.stream;
        if let SlotNotify::Port { tag, conv } = notify {
            let Some((port, key)) = s.port.clone() else {
                return Err((
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "an operation with a port notify on a socket not associated with a port",
                    ),
                    bufs,
                ));
            };
            notify = SlotNotify::PortBound {
                port,
                key,
                tag,
                conv,
                skip: s.skip_on_success,
            };
        }
        if let Err(e) = precheck(s, &kind) {
            return Err((e, bufs));
        }
        let Some(fd) = s.fd.as_ref() else {
            return Err((bad_handle(), bufs));
        };
        let dir = kind.dir();
        let order = if dir == Dir::Read {
            s.reads_posted += 1;
            s.reads_posted
        } else {
            0
        };
        let queue_empty = s.queues[dir as usize].is_empty();
        let mut done = 0usize;
        let mut now = None;
        let mut tried = false;
        if queue_empty && !s.leftover.is_empty() && leftover::serves(&kind, stream) {
            if let Some(b) = bufs.as_deref_mut() {
                now = Some(leftover::fill(&mut s.leftover, b.as_bufs(), &kind));
            }
        } else if queue_empty {
            // Busy before the try: a readiness report that arrives during
            // it waits for this lock instead of being skipped.
            sock.mark_busy(dir);
            let op = OpRef {
                fd: Some(fd.as_fd()),
                token: 0,
                kind: &mut kind,
                done: &mut done,
                stream,
                cancel: false,
                sock: &mut s.sys,
                hints: &sock.hints,
            };
            let b = bufs.as_deref_mut().map(|b| b.as_bufs());
            match self.backend.try_now(op, b, thread::submits_deferred()) {
                Some(Attempt::Done(out)) if out.error.is_some() && out.bytes == 0 => {
                    let e = out.error.unwrap_or_else(bad_handle);
                    return Err((e, bufs));
                }
                Some(Attempt::Done(out)) => now = Some(out),
                // Found nothing, or the backend knows it would: park it
                // without another attempt.
                Some(Attempt::WouldBlock) | None => tried = true,
            }
        }
        if let Some(out) = &now {
            if out.error.is_none() {
                match &kind {
                    OpKind::Send { to: Some(_), .. } => s.bound = true,
                    OpKind::Connect { .. } => s.connected = true,
                    _ => {}
                }
            }
        }
        let seq = s.new_gen();
        if let (Some(_), SlotNotify::PortBound { skip: true, .. }) = (&now, &notify) {
            // Skip-on-success: no packet; the handle takes the result inline.
            handle = true;
        }
        let key = s.ops.insert(Slot {
            seq,
            kind,
            dir,
            stream,
            bufs,
            done,
            state: SlotState::Queued,
            cancel: false,
            immediate: now.is_some(),
            notify,
            handle,
            waiter: None,
            waker: None,
            issuer: std::thread::current().id(),
            order,
        });
        let id = OpId {
            key: key as u16,
            seq,
        };
        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
        if let Some(out) = now {
            self.counters.completed_now.fetch_add(1, Ordering::Relaxed);
            if out.error.is_none() && out.bytes > 0 {
                s.reads_done = s.reads_done.max(order);
            }
            let bytes = out.bytes;
            self.deliver(s, key, out);
            return Ok(StartOk {
                id,
                now: Some(bytes),
                handle,
            });
        }
        s.queues[dir as usize].push_back(key as u16);
        if queue_empty {
            if let Some(out) = self.arm_slot(sock, s, key, tried) {
                if out.error.is_some() && out.bytes == 0 {
                    // Nothing reached the kernel: undo and fail the start.
                    s.queues[dir as usize].retain(|&k| k as usize != key);
                    let slot = s.ops.remove(key);
                    self.counters.submitted.fetch_sub(1, Ordering::Relaxed);
                    let e = out.error.unwrap_or_else(bad_handle);
                    return Err((e, slot.bufs));
                }
                self.finish_op(s, key, out);
                self.arm_next(sock, s, dir);
            }
        }
        drop(guard);
        // Deferred starts wait for this thread's next kernel entry, unless
        // another thread is blocked in the kernel for this engine: that
        // thread cannot submit them.
        if !thread::submits_deferred() || self.drive.is_driving() {
            self.backend.flush();
        }
        Ok(StartOk {
            id,
            now: None,
            handle,
        })
    }
}

/// Cheap checks that keep the start result three-way (io_uring would report
/// these as completions).
fn precheck(s: &mut SockState, kind: &OpKind) -> io::Result<()> {
    let Some(fd) = s.fd.as_ref() else {
        return Err(bad_handle());
    };
    match kind {
        OpKind::Send { to: None, .. } if s.stream && !s.connected => {
            match rustix::net::getpeername(fd) {
                Ok(_) => s.connected = true,
                Err(e) => return Err(sys::to_io(e)),
            }
        }
        OpKind::Recv { .. } if !s.stream && !s.bound => {
            let bound = rustix::net::getsockname(fd)
                .ok()
                .and_then(|a| std::net::SocketAddr::try_from(a).ok())
                .is_some_and(|a| a.port() != 0);
            if !bound {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "receive on a datagram socket that is not bound (bind it, or send first)",
                ));
            }
            s.bound = true;
        }
        _ => {}
    }
    Ok(())
}
