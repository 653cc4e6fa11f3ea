//! Sockets joining an engine, and starting operations.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::conn::{self, Learn};
use super::table::{MAX_OPS_PER_SOCKET, Slot, SlotState, SockState};
use super::{Core, OpId, SlotNotify, StartOk, bad_handle, leftover};
use crate::sys::{self, Attempt, Bufs, Dir, OpKind, OpRef};
use crate::thread;

impl Core {
    /// Adds a socket to the engine.
    pub(crate) fn add_socket(
        &self,
        fd: OwnedFd,
        stream: bool,
        connected: bool,
        bound: bool,
    ) -> io::Result<Arc<super::Sock>> {
        let sys = self.backend.new_sock();
        if stream && !connected {
            // Accepted sockets inherit it from their listener.
            sys::tcp::enable_inq(fd.as_fd());
        }
        let fd = Arc::new(fd);
        let state = SockState::new(fd.clone(), stream, connected, bound, sys);
        let sock = self
            .socks
            .insert(|key, seq| super::Sock::new(key, seq, state));
        // Registered after the registry's lock is let go (`epoll_ctl`); no
        // readiness can name the socket before this.
        let token = super::table::sock_token(sock.key, sock.seq);
        if let Err(e) = self.backend.register(fd.as_fd(), token) {
            self.socks.remove(&sock);
            return Err(e);
        }
        Ok(sock)
    }

    /// Starts an operation: completed now, pending, or an error (no
    /// completion will follow; the buffers come back).
    #[allow(unsafe_code)] // `RawBufs::set_received`'s contract
    pub(crate) fn start(
        self: &Arc<Core>,
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
        if let Err(e) = conn::precheck(s, &kind, &notify) {
            return Err((e, bufs));
        }
        // SPEC k09: a port is looked up when the operation completes.
        if let SlotNotify::Default { conv } = notify {
            notify = match s.port {
                Some(_) => SlotNotify::None,
                None => SlotNotify::Port { tag: 0, conv },
            };
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
        let learn = Learn::of(&kind, stream, bufs.as_deref().and_then(|b| b.total_len()));
        let mut done = 0usize;
        let mut now = None;
        let mut tried = false;
        if queue_empty && !s.leftover.is_empty() && leftover::serves(&kind, stream) {
            if let Some(b) = bufs.as_deref_mut() {
                // `None`: a `WAITALL` receive took what was kept and goes on.
                now = leftover::fill(&mut s.leftover, b.as_bufs(), &kind, &mut done);
            }
        }
        if now.is_none() && queue_empty {
            // Busy before the try: a readiness report that arrives during
            // it waits for this lock instead of being skipped.
            sock.mark_busy(dir);
            let held = s.urgent.is_some();
            let op = OpRef {
                fd: Some(fd.as_fd()),
                token: 0,
                kind: &mut kind,
                done: &mut done,
                stream,
                cancel: false,
                sock: &mut s.sys,
                hints: &sock.hints,
                urgent: &mut s.urgent,
            };
            let b = bufs.as_deref_mut().map(|b| b.as_bufs());
            // Batched into this thread's next kernel entry only where no
            // other thread waits for that entry (see `sends_batched`), and
            // only when no other thread is blocked in the engine: that one
            // would be woken to submit it, and its completion handed across
            // threads.
            let batch = thread::sends_batched(self.one_thread()) && !self.drive.is_driving();
            match self.backend.try_now(op, b, batch) {
                Some(Attempt::Done(out)) => now = Some(out),
                // Found nothing, or the backend knows it would: park it
                // without another attempt.
                Some(Attempt::WouldBlock) | None => tried = true,
            }
            if !held && s.urgent.is_some() {
                // The try took an urgent byte out of the kernel first (the
                // urgent watch, SPEC k05): an `OOB` receive waiting for it
                // is served now (its readiness would not fire again).
                self.kick_head(sock, s, Dir::Urgent);
            }
        }
        if let Some(out) = &mut now {
            conn::learn(s, learn, out);
            if out.error.is_some() && out.bytes == 0 {
                // Nothing moved: the start fails, and no completion follows.
                let e = out.error.take().unwrap_or_else(bad_handle);
                return Err((e, bufs));
            }
            if let (OpKind::Recv { .. }, Some(b)) = (&kind, bufs.as_deref_mut()) {
                // As in `finish_op`: the outcome counts bytes written.
                // SAFETY: so the first `out.bytes` bytes are written.
                unsafe { b.as_bufs().set_received(out.bytes) };
            }
        }
        if now.is_some()
            && matches!(notify, SlotNotify::Port { .. })
            && (s.port.is_none() || s.skip_on_success)
        {
            // Skip-on-success, or no port to post to (yet): the handle
            // takes the result inline.
            handle = true;
        }
        let seq = s.new_gen();
        let key = s.ops.insert(Slot {
            seq,
            kind,
            dir,
            stream,
            bufs,
            done,
            state: SlotState::Queued,
            cancel: false,
            closing: false,
            immediate: now.is_some(),
            notify,
            handle,
            waiter: None,
            waker: None,
            issuer: std::thread::current().id(),
            order,
            learn,
        });
        let id = OpId {
            key: key as u16,
            seq,
        };
        self.counters.submitted.fetch_add(1, Ordering::Relaxed);
        if let Some(out) = now {
            self.counters.completed_now.fetch_add(1, Ordering::Relaxed);
            if out.bytes > 0 && dir == Dir::Read {
                s.reads_done = s.reads_done.max(order);
            }
            let bytes = out.bytes;
            let check_urgent = out.check_urgent;
            self.deliver(s, key, out);
            if check_urgent {
                self.look_for_urgent(sock, s);
            }
            return Ok(StartOk {
                id,
                now: Some(bytes),
                handle,
            });
        }
        s.queues[dir as usize].push_back(key as u16);
        let connecting = matches!(s.ops[key].kind, OpKind::Connect { .. });
        s.conn.connecting |= connecting;
        if queue_empty {
            if let Some(out) = self.arm_slot(sock, s, key, tried) {
                if out.error.is_some() && out.bytes == 0 {
                    // Nothing reached the kernel: undo and fail the start.
                    s.queues[dir as usize].retain(|&k| k as usize != key);
                    let slot = s.ops.remove(key);
                    s.conn.connecting &= !connecting;
                    self.counters.submitted.fetch_sub(1, Ordering::Relaxed);
                    let e = out.error.unwrap_or_else(bad_handle);
                    return Err((e, slot.bufs));
                }
                self.finish_op(sock, s, key, out);
                self.arm_next(sock, s, dir);
            }
        }
        if dir == Dir::Urgent && stream {
            // The socket uses urgent data now: a normal receive parked in
            // the kernel could read past an urgent byte (SPEC k05).
            self.kick_head(sock, s, Dir::Read);
        }
        drop(guard);
        // Deferred starts wait for this thread's next kernel entry, unless
        // another thread is blocked in the kernel for this engine: that
        // thread cannot submit them. An urgent receive goes at once, with
        // the kick of the normal receive parked before it: an urgent byte
        // arriving meanwhile would be read past by that receive.
        if !thread::submits_deferred() || self.drive.is_driving() || dir == Dir::Urgent {
            self.backend.flush();
        }
        Ok(StartOk {
            id,
            now: None,
            handle,
        })
    }
}
