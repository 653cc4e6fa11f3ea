//! Completion: backend calls on a parked operation, finishing an operation,
//! delivering it to its consumer, arming the next of its queue, and routing
//! the backend's wakeups.

use std::mem;
use std::os::fd::AsFd;

use super::conn;
use super::table::{ASIDE, Later, SlotState, SockState, op_of, op_token, sock_of};
use super::{Core, RawDone, SlotNotify, leftover};
use crate::sys::{self, Dir, OpKind, OpRef, Outcome, Parked, Step, Wakeup};

impl Core {
    /// Parks slot `key` (the head of its queue) with the backend. `Some`
    /// when it finished instead (its buffers are back in the slot).
    #[allow(unsafe_code)]
    pub(super) fn arm_slot(
        &self,
        sock: &super::Sock,
        s: &mut SockState,
        key: usize,
        tried: bool,
    ) -> Option<Outcome> {
        let (op, state, bufs) = slot_op(sock, s, key)?;
        let given = bufs.take();
        // A tombstone until the backend answers: a panic inside it leaves
        // the slot (and its token) out of use for good.
        *state = SlotState::Lost;
        // The token is (socket key, slot index, generation). While an
        // operation is parked its slot holds the `Parked` value (or is a
        // tombstone), so the slot is not freed, and the socket stays in the
        // registry (its queue is not empty).
        // SAFETY: so no other parked operation has this token.
        let step = unsafe { self.backend.arm(op, given, tried) };
        settle(step, state, bufs)
    }

    /// Runs `call` on the parked value of slot `key`. `Some` when the
    /// operation finished (its buffers are back in the slot).
    pub(crate) fn step_slot(
        &self,
        sock: &super::Sock,
        s: &mut SockState,
        key: usize,
        call: impl FnOnce(OpRef<'_>, Parked) -> Step,
    ) -> Option<Outcome> {
        let (op, state, bufs) = slot_op(sock, s, key)?;
        // A tombstone while the backend holds the parked value: should the
        // call panic, the request it may have in the kernel keeps its token
        // (see `SlotState::Lost`). A slot that is not armed stays as it was.
        let parked = match mem::replace(state, SlotState::Lost) {
            SlotState::Armed(parked) => parked,
            other => {
                *state = other;
                return None;
            }
        };
        settle(call(op, parked), state, bufs)
    }

    /// Runs `call` on the parked value of slot `key` (see
    /// [`step_slot`](Self::step_slot)); when the operation finished, it is
    /// finished and the next of its queue armed.
    fn step_parked(
        &self,
        sock: &super::Sock,
        s: &mut SockState,
        key: usize,
        call: impl FnOnce(OpRef<'_>, Parked) -> Step,
    ) {
        let Some(dir) = s.ops.get(key).map(|slot| slot.dir) else {
            return;
        };
        match self.step_slot(sock, s, key, call) {
            Some(out) => {
                self.finish_op(sock, s, key, out);
                self.arm_next(sock, s, dir);
            }
            None => {
                if set_aside(s, key) {
                    self.arm_next(sock, s, dir);
                }
            }
        }
    }

    /// Finishes an operation: records the outcome and what it says about
    /// the connection, takes it off its queue, delivers it.
    #[allow(unsafe_code)] // `RawBufs::set_received`'s contract
    pub(super) fn finish_op(
        &self,
        sock: &super::Sock,
        s: &mut SockState,
        key: usize,
        mut out: Outcome,
    ) {
        let slot = &mut s.ops[key];
        let dir = slot.dir;
        if !slot.immediate {
            self.counters.bump(super::count::COMPLETED_LATER);
        }
        if slot.closing
            && out.bytes == 0
            && !out.error.as_ref().is_some_and(crate::flags::is_aborted)
        {
            // Its socket closed (or was reused) while the kernel still ran
            // it, and it moved nothing: an end of stream or an error that
            // raced the abort is the abort (Windows aborts every pending
            // operation of a closed socket).
            out = Outcome::aborted(0);
        }
        if out.error.as_ref().is_some_and(crate::flags::is_aborted) {
            self.counters.bump(super::count::CANCELLED);
            // The abort's cause (SPEC k10): Windows ends a pending TCP
            // receive whose socket closes with "connection aborted".
            if slot.closing && slot.stream && matches!(slot.kind, OpKind::Recv { .. }) {
                out.error = Some(crate::flags::closed_error());
            }
        }
        if let OpKind::AcceptEx(a) = &mut slot.kind {
            if out.error.is_some() {
                // A connection the failed (or aborted) accept took closes now,
                // not when its result is taken.
                a.conn = None;
            }
            // A caller-made socket the accept did not fill is free again.
            if let Some(t) = &a.into {
                t.settle(crate::sys::ext::Reserve::Released);
                if out.error.is_some() {
                    t.undo_accept();
                }
            }
        }
        // A receive (or a file read) hands its buffers back truncated to
        // the bytes that landed in them (also when it ends with an error or
        // aborted).
        if let (true, Some(b)) = (slot.kind.fills(), slot.bufs.as_deref_mut()) {
            // A receive's outcome counts the bytes written at the start of
            // its room (the backends' and `leftover`'s rule).
            // SAFETY: so the first `out.bytes` bytes are written.
            unsafe { b.as_bufs().set_received(out.bytes) };
        }
        if out.bytes > 0 && dir == Dir::Read {
            s.reads_done = s.reads_done.max(slot.order);
        }
        let learn = slot.learn;
        if out.fd.is_some() {
            // A socket accepted from a selected listener takes its
            // selection (see `Accepted` and `Socket::accept`).
            out.select = s.waits.selection().map(Box::new);
        }
        conn::learn(s, learn, &mut out);
        let check_urgent = out.check_urgent;
        s.queues[dir as usize].retain(|&k| k as usize != key);
        if !s.queues[ASIDE].is_empty() {
            s.queues[ASIDE].retain(|&k| k as usize != key);
        }
        if let (None, OpKind::Disconnect { reuse }) = (&out.error, &s.ops[key].kind) {
            // Sends fail with "shutdown" from now on; with reuse the
            // socket is fresh instead (SPEC x04).
            s.conn.write_shut = true;
            if *reuse {
                self.reuse_socket(sock, s);
            }
        }
        self.deliver(s, key, out);
        if check_urgent {
            self.look_for_urgent(sock, s);
        }
    }

    /// A normal receive may have stopped at the urgent mark: the urgent byte
    /// is taken out of the kernel before the next receive passes it (Linux
    /// would drop it), and held for the socket's `OOB` receives (SPEC k05).
    pub(super) fn look_for_urgent(&self, sock: &super::Sock, s: &mut SockState) {
        if s.urgent.is_some() {
            return;
        }
        let Some(byte) = s.fd.as_ref().and_then(|fd| sys::take_urgent(fd.as_fd())) else {
            return;
        };
        s.urgent = Some(byte);
        self.kick_head(sock, s, Dir::Urgent);
    }

    /// The head of a queue may progress differently now (see
    /// [`Backend::kick`](crate::sys::Backend::kick)): a queued head is
    /// armed, a parked one kicked.
    pub(super) fn kick_head(&self, sock: &super::Sock, s: &mut SockState, dir: Dir) {
        let Some(&head) = s.queues[dir as usize].front() else {
            return;
        };
        let head = head as usize;
        match s.ops[head].state {
            SlotState::Queued => self.arm_next(sock, s, dir),
            SlotState::Armed(_) => {
                self.step_parked(sock, s, head, |op, p| self.backend.kick(op, p))
            }
            SlotState::Done(_) | SlotState::Lost => {}
        }
    }

    /// Hands a finished operation's outcome to its consumer.
    pub(super) fn deliver(&self, s: &mut SockState, key: usize, out: Outcome) {
        if self.ended {
            // The engine's drop (see `Core::end`): no consumer is left, and
            // nobody is told; the result goes as an unclaimed one.
            let slot = s.ops.remove(key);
            leftover::keep_unclaimed(s, slot, out);
            return;
        }
        let connect = matches!(s.ops[key].kind, OpKind::Connect { .. }).then(|| {
            out.error
                .as_ref()
                .map_or(0, |e| e.raw_os_error().unwrap_or(libc::EIO))
        });
        s.waits.completed(&mut s.later, connect);
        let slot = &mut s.ops[key];
        match &mut slot.notify {
            SlotNotify::Routine { ctx, id } => {
                let (ctx, id) = (ctx.clone(), *id);
                let slot = s.ops.remove(key);
                ctx.queue_routine(id, self.raw_done(out, slot.bufs));
            }
            // The port the socket has now (SPEC k09); none for a result the
            // handle takes inline (skip-on-success, or no port at start).
            SlotNotify::Port { tag, conv }
                if s.port.is_some() && !(slot.immediate && slot.handle) =>
            {
                let (tag, conv) = (*tag, *conv);
                let slot = s.ops.remove(key);
                let back = s.port.as_ref().and_then(|l| {
                    let raw = self.raw_done(out, slot.bufs);
                    l.sink.push_op(
                        l.key,
                        tag,
                        l.typed.as_ref().map(|t| t.data.clone()),
                        conv,
                        raw,
                    )
                });
                // The port is closed: what the packet held goes after the
                // socket's lock (see `Later`).
                if let Some(back) = back {
                    s.later.extend(back.bufs.map(Later::Bufs));
                    s.later.extend(back.outcome.fd.map(Later::Fd));
                }
            }
            notify => {
                // Told once the socket's lock is let go (see `Later`): the
                // result is in the slot by then.
                if let SlotNotify::Event(ev) = notify {
                    s.later.push(Later::Set(ev.clone()));
                }
                if let Some(w) = slot.waiter.take() {
                    s.later.push(Later::Wake(w));
                }
                if let Some(w) = slot.waker.take() {
                    s.later.push(Later::Waker(w));
                }
                let slot = &mut s.ops[key];
                if slot.handle {
                    slot.state = SlotState::Done(out);
                } else {
                    let slot = s.ops.remove(key);
                    leftover::keep_unclaimed(s, slot, out);
                }
            }
        }
    }

    pub(super) fn raw_done(&self, outcome: Outcome, bufs: crate::sys::Bufs) -> RawDone {
        RawDone {
            outcome,
            bufs,
            engine: self.engine(),
        }
    }

    /// Arms the next operations of a queue after its head finished: each is
    /// parked in turn until one stays parked.
    pub(super) fn arm_next(&self, sock: &super::Sock, s: &mut SockState, dir: Dir) {
        // A closing socket arms nothing: what is left in its queues is
        // being aborted (SPEC k11). Armed now, a queued operation could run
        // as a side effect of the close: a `DisconnectEx` behind a cancelled
        // send would succeed and reuse the socket.
        if s.closed {
            return;
        }
        loop {
            let Some(&head) = s.queues[dir as usize].front() else {
                return;
            };
            let head = head as usize;
            if !matches!(s.ops[head].state, SlotState::Queued) {
                return;
            }
            if let Some(out) = leftover::serve_head(s, head) {
                self.finish_op(sock, s, head, out);
                continue;
            }
            match self.arm_slot(sock, s, head, false) {
                Some(out) => self.finish_op(sock, s, head, out),
                // Parked aside: the next of the queue goes on.
                None if set_aside(s, head) => {}
                None => return,
            }
        }
    }

    /// Routes one wakeup of the backend to its operation or socket.
    pub(super) fn dispatch(&self, w: &Wakeup) {
        match w {
            Wakeup::Op { token, .. } => self.dispatch_op(*token, w),
            Wakeup::Sock { token, dirs, ended } => self.dispatch_sock(*token, dirs, *ended, w),
        }
    }

    /// A wakeup for the operation of `token` (a completion on io_uring):
    /// it progresses, unless its slot is gone or reused.
    fn dispatch_op(&self, token: u64, w: &Wakeup) {
        let (sock_key, slot, seq) = op_of(token);
        let Some(sock) = self.socks.get(sock_key) else {
            return;
        };
        let mut guard = sock.lock();
        let s = &mut *guard;
        if s.slot(slot, seq).is_none() {
            return;
        }
        self.step_parked(&sock, s, slot as usize, |op, p| {
            self.backend.progress(op, p, w)
        });
        self.remove_if_closed(&sock, s);
    }

    /// Readiness of the socket of `token` in `dirs` (the poll engine): the
    /// head of each ready direction's queue progresses, urgent data first.
    fn dispatch_sock(&self, token: u64, dirs: &[bool; 3], ended: bool, w: &Wakeup) {
        let (sock_key, seq) = sock_of(token);
        let Some(sock) = self.socks.get(sock_key) else {
            return;
        };
        if sock.seq != seq {
            return;
        }
        sock.hints.report(dirs, ended);
        // Nothing queued where the socket may progress: no lock (urgent
        // data is looked for at once all the same).
        if !sock.busy_in(dirs) && !dirs[Dir::Urgent as usize] {
            return;
        }
        let mut guard = sock.lock();
        let s = &mut *guard;
        // Urgent data first: a receive of the normal channel could read
        // past the urgent byte, which Linux then drops.
        for dir in [Dir::Urgent, Dir::Read, Dir::Write] {
            if !dirs[dir as usize] {
                continue;
            }
            let Some(&head) = s.queues[dir as usize].front() else {
                if dir == Dir::Urgent && s.stream {
                    self.look_for_urgent(&sock, s);
                }
                continue;
            };
            self.step_parked(&sock, s, head as usize, |op, p| {
                self.backend.progress(op, p, w)
            });
        }
        self.remove_if_closed(&sock, s);
    }

    /// Cancels operation `key`: it completes *aborted* now, or (parked in
    /// the kernel) once the kernel answers the cancel.
    pub(super) fn cancel_locked(
        &self,
        sock: &super::Sock,
        s: &mut SockState,
        key: usize,
    ) -> std::io::Result<()> {
        let not_found = || {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the operation is not in flight (already complete)",
            )
        };
        let Some(slot) = s.ops.get_mut(key) else {
            return Err(not_found());
        };
        match slot.state {
            SlotState::Done(_) => Err(not_found()),
            SlotState::Queued => {
                slot.cancel = true;
                let out = Outcome::aborted(slot.done);
                self.finish_op(sock, s, key, out);
                Ok(())
            }
            SlotState::Armed(_) if slot.cancel => Ok(()),
            // Never completes (see `SlotState::Lost`).
            SlotState::Lost => Ok(()),
            SlotState::Armed(_) => {
                self.cancel_parked(sock, s, key);
                Ok(())
            }
        }
    }

    /// Asks the backend to cancel the parked operation `key`: it completes
    /// *aborted* now (and the next of its queue is armed), or once the
    /// kernel answers the cancel.
    pub(super) fn cancel_parked(&self, sock: &super::Sock, s: &mut SockState, key: usize) {
        s.ops[key].cancel = true;
        self.step_parked(sock, s, key, |op, p| self.backend.cancel(op, p));
    }

    /// Forgets a closed socket once its last operation left its queues.
    /// Its per-handle data goes then (no packet can carry it any more),
    /// dropped once the lock is let go: it may own the program's socket.
    pub(super) fn remove_if_closed(&self, sock: &super::Sock, s: &mut SockState) {
        if s.closed && s.idle() {
            if let Some(t) = s.port.as_mut().and_then(|l| l.typed.take()) {
                s.later.push(Later::Data(t.data));
            }
            self.socks.remove(sock);
        }
    }
}

/// An operation that now waits aside (see `OpKind::waits_aside`: an
/// `AcceptEx` that took its connection) leaves its direction queue, so the
/// next of the queue goes on. True when it moved.
pub(super) fn set_aside(s: &mut SockState, key: usize) -> bool {
    let Some(slot) = s.ops.get(key) else {
        return false;
    };
    if !slot.kind.waits_aside() || !matches!(slot.state, SlotState::Armed(_)) {
        return false;
    }
    let q = &mut s.queues[slot.dir as usize];
    let Some(at) = q.iter().position(|&k| k as usize == key) else {
        return false;
    };
    q.remove(at);
    s.queues[ASIDE].push_back(key as u16);
    true
}

/// What a backend is told about slot `key` of `sock` (the socket's
/// descriptor and backend state, the operation's token, kind and progress),
/// with the slot's state and buffers beside it.
fn slot_op<'a>(
    sock: &'a super::Sock,
    s: &'a mut SockState,
    key: usize,
) -> Option<(OpRef<'a>, &'a mut SlotState, &'a mut crate::sys::Bufs)> {
    let SockState {
        fd,
        ops,
        sys,
        urgent,
        ..
    } = s;
    let slot = ops.get_mut(key)?;
    let op = OpRef {
        fd: fd.as_ref().map(|f| f.as_fd()),
        shared_fd: fd.as_ref(),
        token: op_token(sock.key, key as u16, slot.seq),
        kind: &mut slot.kind,
        done: &mut slot.done,
        stream: slot.stream,
        cancel: slot.cancel,
        sock: sys,
        hints: &sock.hints,
        urgent,
    };
    Some((op, &mut slot.state, &mut slot.bufs))
}

/// Records a backend's answer in the slot, which was a tombstone while the
/// backend held it: parked again, or finished with its buffers back
/// (`Some`).
fn settle(step: Step, state: &mut SlotState, bufs: &mut crate::sys::Bufs) -> Option<Outcome> {
    match step {
        Step::Parked(p) => {
            *state = SlotState::Armed(p);
            None
        }
        Step::Done(out, b) => {
            // Finished, its buffers back: no request of it is left in the
            // kernel (the caller finishes it next).
            *state = SlotState::Queued;
            *bufs = b;
            Some(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    use crate::probe::EngineChoice;
    use crate::sys::fault::{Call, inject};
    use crate::{Engine, MsgFlags, Notify, Polled, Socket};

    fn engines() -> Vec<Engine> {
        let mut v = vec![
            Engine::builder()
                .choice(EngineChoice::Poll)
                .build()
                .unwrap(),
        ];
        match Engine::builder().choice(EngineChoice::Uring).build() {
            Ok(e) => v.push(e),
            Err(e) => crate::sys::fault::skip_uring(&e),
        }
        v
    }

    fn pair(e: &Engine) -> (Socket, std::net::TcpStream) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let s = Socket::tcp_for(e, &addr).unwrap();
        s.connect_wait(addr).unwrap();
        (s, l.accept().unwrap().0)
    }

    /// A backend call that panics while an operation's request may be in
    /// the kernel (here: asked to cancel it) leaves a tombstone: the slot,
    /// and so the operation's token, is never freed, armed again or reused,
    /// whatever the threads do with the socket afterwards; the socket keeps
    /// working for new operations.
    #[test]
    fn a_panic_in_the_backend_tombstones_the_token() {
        for e in engines() {
            let (s, mut peer) = pair(&e);
            let op = s
                .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap()
                .op();
            inject(Call::Cancel);
            let r = catch_unwind(AssertUnwindSafe(|| op.cancel()));
            assert!(r.is_err(), "{:?}: the injected panic", e.kind());
            assert_eq!(e.ops_in_table(), 1, "{:?}", e.kind());
            // A second cancel, data for the old request, a new receive: the
            // tombstone stays.
            let _ = op.cancel();
            std::io::Write::write_all(&mut peer, b"one").unwrap();
            e.drive(Some(Duration::from_millis(50)));
            assert_eq!(e.ops_in_table(), 1, "{:?}: the slot was freed", e.kind());
            drop(op);
            e.drive(Some(Duration::from_millis(20)));
            assert_eq!(e.ops_in_table(), 1, "{:?}: the slot was freed", e.kind());
            s.close().unwrap();
            e.drive(Some(Duration::from_millis(20)));
            assert_eq!(e.ops_in_table(), 1, "{:?}: the slot was freed", e.kind());
        }
    }

    /// The same for a panic while a completion is interpreted: the
    /// operation's request answered, the slot stays a tombstone and the
    /// socket's other direction works.
    #[test]
    fn a_panic_in_progress_tombstones_the_token() {
        for e in engines() {
            let (s, mut peer) = pair(&e);
            let op = s
                .recv(vec![0u8; 8], MsgFlags::empty(), Notify::None)
                .unwrap()
                .op();
            std::io::Write::write_all(&mut peer, b"one").unwrap();
            inject(Call::Progress);
            let r = catch_unwind(AssertUnwindSafe(|| {
                for _ in 0..100 {
                    e.drive(Some(Duration::from_millis(10)));
                }
            }));
            assert!(r.is_err(), "{:?}: the injected panic", e.kind());
            assert!(matches!(op.result(false).unwrap(), Polled::Incomplete(_)));
            assert_eq!(e.ops_in_table(), 1, "{:?}", e.kind());
            let sent = s
                .send(b"two".to_vec(), MsgFlags::empty(), Notify::None)
                .unwrap()
                .wait()
                .unwrap();
            assert_eq!(sent.bytes, 3);
            s.close().unwrap();
            e.drive(Some(Duration::from_millis(20)));
            assert_eq!(e.ops_in_table(), 1, "{:?}: the slot was freed", e.kind());
        }
    }
}
