//! A socket's part in the waits of the model: the socket as a waitable
//! object (SPEC t03), signalled on each completion of its operations
//! unless it opted out (`FILE_SKIP_SET_EVENT_ON_HANDLE`).

use super::table::Later;
use super::{Core, Sock};
use crate::event::Event;

/// What a socket keeps for waits on it, under its lock.
#[derive(Debug, Default)]
pub(crate) struct SockWaits {
    /// The handle's state: set by a completion, reset by a start (Windows
    /// resets a file handle when an operation on it begins).
    set: bool,
    /// `FILE_SKIP_SET_EVENT_ON_HANDLE`: completions leave the handle alone.
    skip: bool,
    /// The event that stands for the handle in waits, made at the first
    /// wait on the socket.
    event: Option<Event>,
}

impl SockWaits {
    /// An operation of the socket starts (also after the socket opted out:
    /// what completed before leaves no trace).
    pub(crate) fn started(&mut self) {
        if self.set {
            self.set = false;
            if let Some(ev) = &self.event {
                ev.reset();
            }
        }
    }

    /// An operation of the socket completed: the handle is signalled (its
    /// waiters are woken once the socket's lock is let go).
    pub(crate) fn completed(&mut self, later: &mut Vec<Later>) {
        if self.skip {
            return;
        }
        self.set = true;
        if let Some(ev) = &self.event {
            later.push(Later::Set(ev.signal()));
        }
    }
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
}
