//! Sockets joining an engine, and starting operations.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::task::Waker;

use super::conn::{self, Learn};
use super::table::{MAX_OPS_PER_SOCKET, Slot, SlotState, SockState};
use super::{Core, OpId, SlotNotify, Sock, StartOk, bad_handle, leftover};
use crate::sys::{self, Attempt, Bufs, Dir, OpKind, OpRef, Outcome};
use crate::thread;

impl Core {
    /// Adds a socket to the engine.
    pub(crate) fn add_socket(
        &self,
        fd: OwnedFd,
        stream: bool,
        connected: bool,
        bound: bool,
    ) -> io::Result<Arc<Sock>> {
        let sys = self.backend.new_sock();
        if stream && !connected {
            // Accepted sockets inherit it from their listener.
            sys::tcp::enable_inq(fd.as_fd());
        }
        let fd = Arc::new(fd);
        let state = SockState::new(fd.clone(), stream, connected, bound, sys);
        let sock = self.socks.insert(|key, seq| Sock::new(key, seq, state));
        // Registered after the registry's lock is let go (`epoll_ctl`); no
        // readiness can name the socket before this.
        let token = super::table::sock_token(sock.key, sock.seq);
        if let Err(e) = self.backend.register(fd.as_fd(), token) {
            self.socks.remove(&sock);
            return Err(e);
        }
        Ok(sock)
    }

    /// Adds a file: in the registry as a socket is (its operations, tokens,
    /// cancel and close are the same), but never registered for readiness
    /// (epoll refuses regular files; the backend runs file operations its
    /// own way). `stream`: a pipe or device, without a position.
    pub(crate) fn add_file(&self, fd: OwnedFd, stream: bool) -> Arc<Sock> {
        let sys = self.backend.new_sock();
        let state = SockState::new(Arc::new(fd), stream, false, false, sys);
        self.socks.insert(|key, seq| Sock::new(key, seq, state))
    }

    /// Starts an operation: completed now, pending, or an error (no
    /// completion will follow; the buffers come back). Under the socket's
    /// lock: the checks, the try of an operation that heads its queue, its
    /// slot, then (completed now) its delivery or (pending) its place in
    /// the queue and, at the head, its parking with the backend. `waker`:
    /// the task that awaits a pending operation, woken at its completion as
    /// if it had polled it (saves that poll its lock).
    pub(crate) fn start(
        self: &Arc<Core>,
        sock: &Sock,
        kind: OpKind,
        bufs: Bufs,
        notify: SlotNotify,
        handle: bool,
        waker: Option<&Waker>,
    ) -> Result<StartOk, (io::Error, Bufs)> {
        thread::note_engine(self);
        let mut guard = sock.lock();
        let s = &mut *guard;
        if s.reserved.is_some() {
            if let Err(e) = self.settle_reserve(sock, s, &kind) {
                return Err((e, bufs));
            }
        }
        // A re-enabling call of a network event re-enables it even when it
        // fails (SPEC t04).
        s.waits.call_made(&kind, &mut s.later);
        let is_send = matches!(kind, OpKind::Send { .. });
        let notify = match check(s, &kind, notify) {
            Ok(notify) => notify,
            Err(e) => return Err((e, bufs)),
        };
        s.waits.started(&mut s.later);
        let mut op = Starting::new(s, kind, bufs, notify, handle);
        let dir = op.dir;
        // Only the head of a queue is tried; the others wait their turn. A
        // file operation is never tried: it is parked at once, beside the
        // file's others (SPEC f02, f04).
        let queue_empty = s.queues[dir as usize].is_empty();
        let now = if queue_empty && dir != Dir::File {
            self.try_at_start(sock, s, &mut op)
        } else {
            None
        };
        let now = match now.map(|out| op.completed_now(s, out)) {
            None => None,
            Some(Ok(out)) => Some(out),
            Some(Err(e)) => return Err((e, op.bufs)),
        };
        let handle = op.handle;
        let id = op.into_slot(s, now.is_some());
        self.counters.bump(super::count::SUBMITTED);
        if let Some(out) = now {
            let bytes = out.bytes;
            self.deliver_now(sock, s, id.key as usize, out);
            return Ok(StartOk {
                id,
                now: Some(bytes),
                handle,
            });
        }
        self.queue_at_start(sock, s, id.key as usize, queue_empty)?;
        if let (Some(w), Some(slot)) = (waker, s.slot(id.key, id.seq)) {
            // Still pending (parking it may have finished it).
            if !matches!(slot.state, SlotState::Done(_)) {
                slot.waker = Some(w.clone());
            }
        }
        if is_send {
            s.waits.send_pending(&mut s.later);
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

    /// A stream send of borrowed bytes that goes through now or not at all
    /// (the fast path of `rt::TcpStream`'s `AsyncWrite`): tried
    /// non-blocking only when none of the socket's sends waits or runs (so
    /// it keeps their order) and no completion port would hear of an
    /// operation. It is not an operation: no slot, no completion, no
    /// notification. `None`: not tried, or the socket took nothing (it
    /// would block, or an error the caller's operation then reports).
    #[cfg(any(feature = "futures-io", feature = "tokio"))]
    pub(crate) fn send_now_borrowed(&self, sock: &Sock, data: &[u8]) -> Option<usize> {
        let mut guard = sock.lock();
        let s = &mut *guard;
        if !s.stream
            || s.closed
            || s.reserved.is_some()
            || s.port.is_some()
            || !s.queues[Dir::Write as usize].is_empty()
        {
            return None;
        }
        let kind = OpKind::Send {
            flags: crate::MsgFlags::empty(),
            to: None,
        };
        conn::precheck(s, &kind, &SlotNotify::None).ok()?;
        let fd = s.fd.as_ref()?;
        self.backend.calls().direct();
        sys::send_plain(fd.as_fd(), data).ok().filter(|&n| n > 0)
    }

    /// The try at start of an operation that heads its (empty) queue: it
    /// is served from the bytes the socket kept, or tried non-blocking (the
    /// backend may skip the try, see `sys/uring`). `Some` when it completed
    /// now; `None` when the try found nothing, or the backend knows it
    /// would.
    fn try_at_start(&self, sock: &Sock, s: &mut SockState, op: &mut Starting) -> Option<Outcome> {
        if !s.leftover.is_empty() && leftover::serves(&op.kind, op.stream) {
            if let Some(b) = op.bufs.as_deref_mut() {
                // `None`: a `WAITALL` receive took what was kept and goes on.
                let kept = leftover::fill(&mut s.leftover, b.as_bufs(), &op.kind, &mut op.done);
                if kept.is_some() {
                    return kept;
                }
            }
        }
        // Busy before the try: a readiness report that arrives during it
        // waits for this lock instead of being skipped.
        sock.mark_busy(op.dir);
        let held = s.urgent.is_some();
        let r = OpRef {
            fd: s.fd.as_ref().map(|fd| fd.as_fd()),
            shared_fd: s.fd.as_ref(),
            token: 0,
            kind: &mut op.kind,
            done: &mut op.done,
            stream: op.stream,
            cancel: false,
            sock: &mut s.sys,
            hints: &sock.hints,
            urgent: &mut s.urgent,
        };
        let b = op.bufs.as_deref_mut().map(|b| b.as_bufs());
        // Batched into this thread's next kernel entry only where no other
        // thread waits for that entry (see `sends_batched`), and only when
        // no other thread is blocked in the engine: that one would be woken
        // to submit it, and its completion handed across threads.
        let batch = thread::sends_batched(self.one_thread()) && !self.drive.is_driving();
        let now = match self.backend.try_now(r, b, batch) {
            Some(Attempt::Done(out)) => Some(out),
            Some(Attempt::WouldBlock) | None => None,
        };
        if !held && s.urgent.is_some() {
            // The try took an urgent byte out of the kernel first (the
            // urgent watch, SPEC k05): an `OOB` receive waiting for it is
            // served now (its readiness would not fire again).
            self.kick_head(sock, s, Dir::Urgent);
        }
        now
    }

    /// Delivers an operation that completed at its start (its slot made).
    fn deliver_now(&self, sock: &Sock, s: &mut SockState, key: usize, out: Outcome) {
        self.counters.bump(super::count::COMPLETED_NOW);
        let slot = &s.ops[key];
        if out.bytes > 0 && slot.dir == Dir::Read {
            s.reads_done = s.reads_done.max(slot.order);
        }
        let check_urgent = out.check_urgent;
        self.deliver(s, key, out);
        if check_urgent {
            self.look_for_urgent(sock, s);
        }
    }

    /// Queues a pending operation (its slot made) and, when its queue was
    /// empty, parks it with the backend: its try found nothing, so it is
    /// parked without another attempt. An error when nothing reached the
    /// kernel: the start is undone and fails, the buffers come back.
    fn queue_at_start(
        &self,
        sock: &Sock,
        s: &mut SockState,
        key: usize,
        queue_empty: bool,
    ) -> Result<(), (io::Error, Bufs)> {
        let (dir, stream) = (s.ops[key].dir, s.ops[key].stream);
        s.queues[dir as usize].push_back(key as u16);
        let connecting = matches!(s.ops[key].kind, OpKind::Connect { .. });
        s.conn.connecting |= connecting;
        if queue_empty || dir == Dir::File {
            let armed = self.arm_slot(sock, s, key, true);
            if armed.is_none() && super::complete::set_aside(s, key) {
                self.arm_next(sock, s, dir);
            }
            if let Some(out) = armed {
                if out.error.is_some() && out.bytes == 0 {
                    // Nothing reached the kernel: undo and fail the start.
                    s.queues[dir as usize].retain(|&k| k as usize != key);
                    let slot = s.ops.remove(key);
                    s.conn.connecting &= !connecting;
                    self.counters.unbump(super::count::SUBMITTED);
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
        Ok(())
    }
}

/// The checks of a start: the socket is open and has room for one more
/// operation, then [`conn::precheck`] (the connection state's answers, and
/// the errors io_uring would report as completions). Returns the notify
/// with a default resolved against the socket's port (SPEC k09: a port is
/// looked up when the operation completes).
// The steps of `start` are inlined into it (each is called once): split
// out of line they cost about 130 instructions a start (callgrind, port
// model on poll), most of it moving the `Starting` value into its slot.
#[inline(always)]
fn check(s: &mut SockState, kind: &OpKind, notify: SlotNotify) -> io::Result<SlotNotify> {
    if s.closed {
        return Err(bad_handle());
    }
    if s.ops.len() >= MAX_OPS_PER_SOCKET {
        return Err(io::Error::new(
            io::ErrorKind::OutOfMemory,
            "too many operations held on one socket (65,535)",
        ));
    }
    conn::precheck(s, kind, &notify)?;
    Ok(match notify {
        SlotNotify::Default { conv } => match s.port {
            Some(_) => SlotNotify::None,
            None => SlotNotify::Port { tag: 0, conv },
        },
        // A typed port takes the completions of its one type only.
        SlotNotify::Port { conv, .. }
            if s.port
                .as_ref()
                .and_then(|l| l.typed.as_ref())
                .is_some_and(|t| t.ty != conv.0) =>
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the socket's typed completion port takes operations of another buffer type",
            ));
        }
        notify => notify,
    })
}

/// An operation being started, before it has a slot.
struct Starting {
    kind: OpKind,
    bufs: Bufs,
    notify: SlotNotify,
    /// The handle takes the result.
    handle: bool,
    dir: Dir,
    stream: bool,
    /// Bytes moved so far (by kept bytes a `WAITALL` receive took).
    done: usize,
    /// Posting order among the socket's read-direction operations.
    order: u64,
    learn: Learn,
}

impl Starting {
    #[inline(always)]
    fn new(s: &mut SockState, kind: OpKind, bufs: Bufs, notify: SlotNotify, handle: bool) -> Self {
        let stream = s.stream;
        let dir = kind.dir();
        let order = if dir == Dir::Read {
            s.reads_posted += 1;
            s.reads_posted
        } else {
            0
        };
        let learn = Learn::of(&kind, stream, || {
            bufs.as_deref().and_then(|b| b.total_len())
        });
        Starting {
            kind,
            bufs,
            notify,
            handle,
            dir,
            stream,
            done: 0,
            order,
            learn,
        }
    }

    /// What a start that completed now makes of its outcome: what it says
    /// of the connection is learnt, a receive's buffers hold the bytes it
    /// took, and the handle takes the result inline where no packet is
    /// posted. An error with nothing moved is the start's failure (no
    /// completion follows).
    #[allow(unsafe_code)] // `RawBufs::set_received`'s contract
    #[inline(always)]
    fn completed_now(&mut self, s: &mut SockState, mut out: Outcome) -> io::Result<Outcome> {
        if out.fd.is_some() {
            // As in `finish_op`: an accepted socket takes the listener's
            // selection.
            out.select = s.waits.selection().map(Box::new);
        }
        conn::learn(s, self.learn, &mut out);
        if out.error.is_some() && out.bytes == 0 {
            // Nothing moved: the start fails, and no completion follows.
            return Err(out.error.take().unwrap_or_else(bad_handle));
        }
        if let (true, Some(b)) = (self.kind.fills(), self.bufs.as_deref_mut()) {
            // As in `finish_op`: the outcome counts bytes written.
            // SAFETY: so the first `out.bytes` bytes are written.
            unsafe { b.as_bufs().set_received(out.bytes) };
        }
        if matches!(self.notify, SlotNotify::Port { .. }) && (s.port.is_none() || s.skip_on_success)
        {
            // Skip-on-success, or no port to post to (yet): the handle
            // takes the result inline.
            self.handle = true;
        }
        Ok(out)
    }

    /// The operation's slot (queued; `immediate`: it completed now).
    #[inline(always)]
    fn into_slot(self, s: &mut SockState, immediate: bool) -> OpId {
        let seq = s.new_gen();
        let key = s.ops.insert(Slot {
            seq,
            kind: self.kind,
            dir: self.dir,
            stream: self.stream,
            bufs: self.bufs,
            done: self.done,
            state: SlotState::Queued,
            cancel: false,
            closing: false,
            immediate,
            notify: self.notify,
            handle: self.handle,
            waiter: None,
            waker: None,
            issuer: std::thread::current().id(),
            order: self.order,
            learn: self.learn,
        });
        OpId {
            key: key as u16,
            seq,
        }
    }
}
