//! A socket's part in the waits of the model: the socket as a waitable
//! object (SPEC t03), signalled on each completion of its operations
//! unless it opted out (`FILE_SKIP_SET_EVENT_ON_HANDLE`); and its
//! `WSAEventSelect` (SPEC t04): the readiness events it records and
//! signals through an event.
//!
//! # Readiness events without a thread
//!
//! Nothing watches a selected socket on its own: the threads that wait on
//! the event do ("whoever waits, drives"). A wait on events adds each
//! selected socket's descriptor, for the events still enabled, to the
//! `poll(2)` it blocks in (see `core::drive::wait_watching`); when one
//! turns ready, the waiter looks at the socket ([`Core::select_fired`]),
//! records what happened and sets the event. [`Core::event_select`] and
//! [`Core::enum_network_events`] look at the socket themselves (a poll
//! with no timeout), so a record is current for a thread that never waits.
//! Neither backend is involved.
//!
//! The Windows rules kept here: an event is recorded once and not again
//! until its re-enabling call (a receive for `READ`, an `OOB` receive for
//! `OOB`, an accept for `ACCEPT`, a send that goes pending for `WRITE`;
//! `CONNECT` and `CLOSE` never); a socket with a receive (an accept) queued
//! is not looked at for `READ` (`ACCEPT`): the pending operation takes the
//! data (the connection) and raises no event. A start or a completion on a
//! selected socket wakes the event's waiters to look at the socket anew.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;

use rustix::event::{PollFd, PollFlags, Timespec};

use super::conn::Broken;
use super::table::{Later, SockState};
use super::{Core, Sock};
use crate::event::Event;
use crate::select::{EVENT_BITS, NetworkEvents, NetworkEventsRecord, bit_of};
use crate::sys::{Dir, OpKind};

/// A socket's `WSAEventSelect`: the event and the events asked for.
#[derive(Debug)]
struct Selection {
    event: Event,
    mask: NetworkEvents,
}

/// What a socket keeps for waits on it, under its lock.
#[derive(Debug)]
pub(crate) struct SockWaits {
    /// The handle's state: set by a completion, reset by a start (Windows
    /// resets a file handle when an operation on it begins).
    set: bool,
    /// `FILE_SKIP_SET_EVENT_ON_HANDLE`: completions leave the handle alone.
    skip: bool,
    /// The event that stands for the handle in waits, made at the first
    /// wait on the socket.
    event: Option<Event>,
    /// The socket's `WSAEventSelect`, if any.
    select: Option<Selection>,
    /// The network events recorded since the last enumeration, and their
    /// errors (Linux numbers, 0 for none) by bit.
    record: NetworkEvents,
    errnos: [i32; EVENT_BITS],
    /// The events that may be recorded: one recorded is left out until its
    /// re-enabling call.
    enabled: NetworkEvents,
    /// Poll flags that turned ready while nothing could be recorded (a
    /// stream at its end, with `CLOSE` already told): left out of the
    /// waiters' polls until the socket's next start or completion, so no
    /// waiter spins on them.
    stuck: PollFlags,
    /// The same for a hang-up or an error, which `poll(2)` reports whatever
    /// it is asked: the socket is left out of the waiters' polls.
    hung: bool,
}

impl Default for SockWaits {
    fn default() -> Self {
        SockWaits {
            set: false,
            skip: false,
            event: None,
            select: None,
            record: NetworkEvents::empty(),
            errnos: [0; EVENT_BITS],
            enabled: NetworkEvents::all(),
            stuck: PollFlags::empty(),
            hung: false,
        }
    }
}

impl SockWaits {
    /// The socket's selection (event and mask), for a socket it accepts.
    pub(crate) fn selection(&self) -> Option<(Event, NetworkEvents)> {
        self.select.as_ref().map(|s| (s.event.clone(), s.mask))
    }

    /// An operation of the socket starts (also after the socket opted out:
    /// what completed before leaves no trace).
    pub(crate) fn started(&mut self, later: &mut Vec<Later>) {
        if self.set {
            self.set = false;
            if let Some(ev) = &self.event {
                ev.reset();
            }
        }
        self.changed(later);
    }

    /// An operation of the socket completed: the handle is signalled (its
    /// waiters are woken once the socket's lock is let go). `connect`: the
    /// operation was a connect, which ended with this error (0: none).
    pub(crate) fn completed(&mut self, later: &mut Vec<Later>, connect: Option<i32>) {
        if let Some(errno) = connect {
            self.record_events(NetworkEvents::CONNECT, errno, true, later);
        }
        self.changed(later);
        if self.skip {
            return;
        }
        self.set = true;
        if let Some(ev) = &self.event {
            later.push(Later::Set(ev.signal()));
        }
    }

    /// The call that re-enables the network events `kind` names starts
    /// (Windows: even one that then fails): a receive, an `OOB` receive,
    /// an accept.
    pub(crate) fn call_made(&mut self, kind: &OpKind, later: &mut Vec<Later>) {
        let ev = match kind {
            OpKind::Recv { .. } if kind.dir() == Dir::Urgent => NetworkEvents::OOB,
            OpKind::Recv { .. } => NetworkEvents::READ,
            OpKind::Accept | OpKind::AcceptEx(_) => NetworkEvents::ACCEPT,
            _ => return,
        };
        self.reenable(ev, later);
    }

    /// A send went pending (Windows: failed with `WSAEWOULDBLOCK`): `WRITE`
    /// is recorded again when room comes back.
    pub(crate) fn send_pending(&mut self, later: &mut Vec<Later>) {
        self.reenable(NetworkEvents::WRITE, later);
    }

    fn reenable(&mut self, ev: NetworkEvents, later: &mut Vec<Later>) {
        if self.select.is_some() && !self.enabled.contains(ev) {
            self.enabled |= ev;
            self.changed(later);
        }
    }

    /// What the event's waiters watch of the socket may have changed: they
    /// look again (after the socket's lock).
    fn changed(&mut self, later: &mut Vec<Later>) {
        if let Some(sel) = &self.select {
            self.stuck = PollFlags::empty();
            self.hung = false;
            later.push(Later::Rewatch(sel.event.clone()));
        }
    }

    /// The socket closes: its selection ends.
    pub(crate) fn closing(&mut self, later: &mut Vec<Later>) {
        if let Some(sel) = self.select.take() {
            later.push(Later::Rewatch(sel.event));
        }
    }

    /// Records the events of `found` that are selected and enabled, with
    /// `errno` for each; sets the event (`signal`) when one was. True when
    /// one was.
    fn record_events(
        &mut self,
        found: NetworkEvents,
        errno: i32,
        signal: bool,
        later: &mut Vec<Later>,
    ) -> bool {
        let Some(sel) = &self.select else {
            return false;
        };
        let new = found & sel.mask & self.enabled;
        if new.is_empty() {
            return false;
        }
        self.enabled -= new;
        self.record |= new;
        for ev in new.iter() {
            if let Some(b) = bit_of(ev) {
                self.errnos[b] = errno;
            }
        }
        if signal {
            later.push(Later::Set(sel.event.signal()));
        }
        true
    }

    /// The events selected and not yet recorded.
    fn wanted(&self) -> NetworkEvents {
        self.select
            .as_ref()
            .map_or(NetworkEvents::empty(), |sel| sel.mask & self.enabled)
    }
}

/// A selected socket as a waiter watches it: its descriptor and the poll
/// flags of the events still enabled.
pub(crate) struct Watch {
    pub(crate) fd: Arc<OwnedFd>,
    pub(crate) flags: PollFlags,
}

/// What [`Core::select_watch`] found of a socket a selection list names.
pub(crate) enum Watched {
    /// No longer selected into that event (closed, selected elsewhere, or
    /// its selection cancelled): the event forgets it.
    Gone,
    /// Nothing to watch now.
    Quiet,
    Watch(Watch),
}

/// The socket's readiness now: a poll with no timeout.
fn poll_now(fd: &OwnedFd) -> PollFlags {
    let mut set = [PollFd::new(
        fd,
        PollFlags::IN | PollFlags::OUT | PollFlags::PRI | PollFlags::RDHUP,
    )];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut set, Some(&zero)) {
        Ok(_) => set[0].revents(),
        Err(_) => PollFlags::empty(),
    }
}

/// The error a closed connection reports with `CLOSE`: its reset or abort
/// (learned now from the socket's error if nobody was told yet: the
/// connection state keeps it for the operations after), or 0 for a
/// graceful close.
fn close_errno(s: &mut SockState, rev: PollFlags) -> i32 {
    if let Some(b) = s.conn.broken {
        return b.errno();
    }
    let Some(fd) = s.fd.as_ref() else {
        return 0;
    };
    if rev.contains(PollFlags::ERR) {
        let held = socket2::SockRef::from(fd.as_ref())
            .take_error()
            .ok()
            .flatten()
            .and_then(|e| e.raw_os_error());
        let b = match held {
            Some(libc::ECONNRESET) => Broken::Reset,
            Some(libc::EPIPE) => Broken::Aborted,
            Some(other) => return other,
            None => return 0,
        };
        s.conn.broken = Some(b);
        return b.errno();
    }
    // A hang-up with no error held: a reset another call was told of, or
    // (this side shut its writing too) the end of both directions.
    if rev.contains(PollFlags::HUP) && !s.conn.write_shut && rustix::net::getpeername(fd).is_err() {
        let b = Broken::guessed(s);
        s.conn.broken = Some(b);
        return b.errno();
    }
    0
}

/// The network events the socket's state and readiness `rev` show (the
/// error is `CLOSE`'s). A receive (accept) queued takes the data (the
/// connection): no `READ` (`ACCEPT`) then; nor `OOB` under an `OOB`
/// receive.
fn observe(s: &mut SockState, rev: PollFlags) -> (NetworkEvents, i32) {
    let mut found = NetworkEvents::empty();
    let read_idle = s.queues[Dir::Read as usize].is_empty();
    let urgent_idle = s.queues[Dir::Urgent as usize].is_empty();
    let Some(fd) = s.fd.clone() else {
        return (found, 0);
    };
    if !s.stream {
        if read_idle && (rev.intersects(PollFlags::IN | PollFlags::ERR) || !s.leftover.is_empty()) {
            found |= NetworkEvents::READ;
        }
        if rev.contains(PollFlags::OUT) {
            found |= NetworkEvents::WRITE;
        }
        return (found, 0);
    }
    if s.conn.listening {
        if read_idle && rev.contains(PollFlags::IN) {
            found |= NetworkEvents::ACCEPT;
        }
        return (found, 0);
    }
    if !s.connected || s.conn.connecting {
        return (found, 0);
    }
    let mut waiting = s.leftover.len();
    if rev.contains(PollFlags::IN) {
        waiting += rustix::io::ioctl_fionread(fd.as_fd()).unwrap_or(0) as usize;
    }
    if read_idle && waiting > 0 {
        found |= NetworkEvents::READ;
    }
    if urgent_idle && (rev.contains(PollFlags::PRI) || s.urgent.is_some()) {
        found |= NetworkEvents::OOB;
    }
    let hangup = rev.intersects(PollFlags::HUP | PollFlags::ERR) || s.conn.broken.is_some();
    if rev.contains(PollFlags::OUT) && !hangup {
        found |= NetworkEvents::WRITE;
    }
    let mut errno = 0;
    if hangup || rev.contains(PollFlags::RDHUP) {
        errno = close_errno(s, rev);
        // A graceful close is told once the data before it was received.
        if errno != 0 || waiting == 0 {
            found |= NetworkEvents::CLOSE;
        }
    }
    (found, errno)
}

/// Looks at a selected socket now and records what it finds (setting the
/// event when `signal`). True when something was recorded.
fn scan(s: &mut SockState, signal: bool) -> bool {
    if s.waits.wanted().is_empty() {
        return false;
    }
    let Some(fd) = s.fd.clone() else {
        return false;
    };
    let rev = poll_now(&fd);
    let (found, errno) = observe(s, rev);
    let mut any = false;
    // `CLOSE` with its error; the others carry none.
    for ev in found.iter() {
        let e = if ev == NetworkEvents::CLOSE { errno } else { 0 };
        any |= s.waits.record_events(ev, e, signal, &mut s.later);
    }
    any
}

/// The poll flags a waiter watches the socket for: those of the events
/// still enabled that the socket's state can raise.
fn watch_flags(s: &SockState) -> PollFlags {
    let w = &s.waits;
    let want = w.wanted();
    if want.is_empty() || w.hung {
        return PollFlags::empty();
    }
    let read_idle = s.queues[Dir::Read as usize].is_empty();
    let urgent_idle = s.queues[Dir::Urgent as usize].is_empty();
    let mut f = PollFlags::empty();
    let mut add = |ev: NetworkEvents, ok: bool, flag: PollFlags| {
        if ok && want.contains(ev) {
            f |= flag;
        }
    };
    if !s.stream {
        add(NetworkEvents::READ, read_idle, PollFlags::IN);
        add(NetworkEvents::WRITE, true, PollFlags::OUT);
    } else if s.conn.listening {
        add(NetworkEvents::ACCEPT, read_idle, PollFlags::IN);
    } else if s.connected && !s.conn.connecting {
        add(NetworkEvents::READ, read_idle, PollFlags::IN);
        add(NetworkEvents::OOB, urgent_idle, PollFlags::PRI);
        add(NetworkEvents::WRITE, true, PollFlags::OUT);
        add(NetworkEvents::CLOSE, true, PollFlags::RDHUP);
    }
    f - w.stuck
}

/// Readiness kept in user space, which no poll shows: bytes a dropped
/// receive took, an urgent byte taken out of the kernel.
fn kept_ready(s: &SockState) -> bool {
    let want = s.waits.wanted();
    (want.contains(NetworkEvents::READ)
        && !s.leftover.is_empty()
        && s.queues[Dir::Read as usize].is_empty())
        || (want.contains(NetworkEvents::OOB)
            && s.urgent.is_some()
            && s.queues[Dir::Urgent as usize].is_empty())
}

impl Core {
    /// The event that stands for `sock`'s handle in waits (made on first
    /// use, in the handle's state), bound to this engine.
    pub(crate) fn sock_waitable(&self, sock: &Sock) -> Event {
        let ev = {
            let mut g = sock.lock();
            let w = &mut g.waits;
            match &w.event {
                Some(ev) => ev.clone(),
                None => {
                    let ev = Event::new();
                    if w.set {
                        ev.set();
                    }
                    w.event = Some(ev.clone());
                    ev
                }
            }
        };
        ev.bind_engine(&self.engine());
        ev
    }

    /// `FILE_SKIP_SET_EVENT_ON_HANDLE` (one-way).
    pub(crate) fn set_skip_event_on_handle(&self, sock: &Sock) -> std::io::Result<()> {
        let mut g = sock.lock();
        if g.closed {
            return Err(super::bad_handle());
        }
        g.waits.skip = true;
        Ok(())
    }

    /// `WSAEventSelect(socket, event, mask)`: replaces the socket's
    /// selection (an empty mask cancels it), clears its record, enables
    /// every event, and records at once what already holds. The caller
    /// has put the socket on `event`'s list ([`Event::note_selected`]).
    pub(crate) fn event_select(
        &self,
        sock: &Sock,
        event: &Event,
        mask: NetworkEvents,
    ) -> std::io::Result<()> {
        let mut g = sock.lock();
        let s = &mut *g;
        if s.closed {
            return Err(super::bad_handle());
        }
        let w = &mut s.waits;
        if let Some(old) = w.select.take() {
            s.later.push(Later::Rewatch(old.event));
        }
        w.record = NetworkEvents::empty();
        w.errnos = [0; EVENT_BITS];
        w.enabled = NetworkEvents::all();
        w.stuck = PollFlags::empty();
        w.hung = false;
        if mask.is_empty() {
            return Ok(());
        }
        w.select = Some(Selection {
            event: event.clone(),
            mask,
        });
        s.later.push(Later::Rewatch(event.clone()));
        scan(s, true);
        Ok(())
    }

    /// `WSAEnumNetworkEvents(socket, reset, &record)`: what is recorded
    /// (the socket looked at first), and the record cleared; `reset` is
    /// reset in the same step, so an event recorded after it sets it again.
    pub(crate) fn enum_network_events(
        &self,
        sock: &Sock,
        reset: Option<&Event>,
    ) -> std::io::Result<NetworkEventsRecord> {
        let mut g = sock.lock();
        let s = &mut *g;
        if s.closed {
            return Err(super::bad_handle());
        }
        // Recorded without a signal: it is taken at once.
        scan(s, false);
        let w = &mut s.waits;
        let r = NetworkEventsRecord::new(w.record, w.errnos);
        w.record = NetworkEvents::empty();
        w.errnos = [0; EVENT_BITS];
        if let Some(ev) = reset {
            ev.reset();
        }
        Ok(r)
    }

    /// What a waiter on `event` watches of `sock` (see the module notes).
    /// Readiness kept in user space is recorded here.
    pub(crate) fn select_watch(&self, sock: &Sock, event: &Event) -> Watched {
        let mut g = sock.lock();
        let s = &mut *g;
        let selected = !s.closed
            && s.waits
                .select
                .as_ref()
                .is_some_and(|sel| sel.event.same(event));
        if !selected {
            return Watched::Gone;
        }
        if kept_ready(s) {
            scan(s, true);
        }
        let flags = watch_flags(s);
        match s.fd.clone() {
            Some(fd) if !flags.is_empty() => Watched::Watch(Watch { fd, flags }),
            _ => Watched::Quiet,
        }
    }

    /// A waiter's poll found `sock` ready (`rev`) for the `asked` flags:
    /// it is looked at and what it shows recorded. When nothing could be,
    /// what turned ready is left out of the waiters' polls until the
    /// socket's next start or completion.
    pub(crate) fn select_fired(&self, sock: &Sock, asked: PollFlags, rev: PollFlags) {
        let mut g = sock.lock();
        let s = &mut *g;
        if s.closed || s.waits.select.is_none() {
            return;
        }
        if !scan(s, true) {
            let w = &mut s.waits;
            w.stuck |= rev & asked;
            if rev.intersects(PollFlags::HUP | PollFlags::ERR | PollFlags::NVAL) {
                w.hung = true;
            }
        }
    }
}
