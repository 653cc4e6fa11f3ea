//! The readiness events of `WSAEventSelect` / `WSAEnumNetworkEvents`
//! (SPEC t04): the mask a socket selects and the record it reports. A leaf
//! module; the rules live with the socket ([`crate::Socket::event_select`])
//! and in the core (`core/waits.rs`).

use std::io;

bitflags::bitflags! {
    /// Network events (`lNetworkEvents`): what [`Socket::event_select`]
    /// asks to be told of, and what
    /// [`Socket::enum_network_events`] reports. The bits are Winsock's
    /// (`FD_READ` = 1, ..., `FD_CLOSE` = 32).
    ///
    /// [`Socket::event_select`]: crate::Socket::event_select
    /// [`Socket::enum_network_events`]: crate::Socket::enum_network_events
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct NetworkEvents: u32 {
        /// `FD_READ`: data to receive (no receive of the socket is
        /// pending). Enabled again by a receive.
        const READ = 0x01;
        /// `FD_WRITE`: a send can go. Recorded once the socket is connected
        /// (or selected while connected), then again only after a send went
        /// pending (Windows: failed with `WSAEWOULDBLOCK`) and room came
        /// back.
        const WRITE = 0x02;
        /// `FD_OOB`: an urgent byte to receive (no `OOB` receive is
        /// pending). Enabled again by an `OOB` receive.
        const OOB = 0x04;
        /// `FD_ACCEPT`: a connection to accept (no accept of the listener
        /// is pending). Enabled again by an accept.
        const ACCEPT = 0x08;
        /// `FD_CONNECT`: a connect operation finished, with its error if it
        /// failed. Once per connect.
        const CONNECT = 0x10;
        /// `FD_CLOSE`: the peer closed the connection (error 0, once the
        /// data before its end of stream was received) or it was reset
        /// (`WSAECONNRESET`) or aborted (`WSAECONNABORTED`). Once.
        const CLOSE = 0x20;
    }
}

/// `FD_MAX_EVENTS` of the events above: the length of
/// [`NetworkEventsRecord`]'s error array.
pub(crate) const EVENT_BITS: usize = 6;

/// The index of a single event (`FD_READ_BIT` ... `FD_CLOSE_BIT`).
pub(crate) fn bit_of(ev: NetworkEvents) -> Option<usize> {
    let b = ev.bits();
    (b.count_ones() == 1).then(|| b.trailing_zeros() as usize)
}

/// What [`Socket::enum_network_events`](crate::Socket::enum_network_events)
/// reports (`WSANETWORKEVENTS`): the events recorded since the last call,
/// and the error of each (`iErrorCode[FD_*_BIT]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetworkEventsRecord {
    events: NetworkEvents,
    /// The Linux error of each event (0: none), by bit index.
    errnos: [i32; EVENT_BITS],
}

/// `WSAENETDOWN`: the code an error Winsock has no code for reads as.
const WSAENETDOWN: u32 = 10050;

impl NetworkEventsRecord {
    pub(crate) fn new(events: NetworkEvents, errnos: [i32; EVENT_BITS]) -> Self {
        NetworkEventsRecord { events, errnos }
    }

    /// `lNetworkEvents`: the events recorded.
    pub fn events(&self) -> NetworkEvents {
        self.events
    }

    /// True when `event` was recorded (every event of it, for several).
    pub fn contains(&self, event: NetworkEvents) -> bool {
        self.events.contains(event)
    }

    /// The error `event` (a single event) was recorded with, as a Linux
    /// error: a failed connect's (`ECONNREFUSED`, `ETIMEDOUT`, ...), a
    /// reset's (`ECONNRESET`) or an abort's (`ECONNABORTED`). `None` when
    /// it carried none, was not recorded, or `event` is not a single event.
    pub fn error(&self, event: NetworkEvents) -> Option<io::Error> {
        let b = bit_of(event)?;
        let errno = self.errnos[b];
        (self.events.contains(event) && errno != 0).then(|| io::Error::from_raw_os_error(errno))
    }

    /// `iErrorCode[bit]`: the Winsock code of [`error`](Self::error)
    /// (`WSAECONNREFUSED` 10061, `WSAECONNRESET` 10054, ...); 0 when none.
    /// An error Winsock has no code for reads as `WSAENETDOWN` (10050).
    #[doc(alias = "iErrorCode")]
    pub fn error_code(&self, event: NetworkEvents) -> u32 {
        self.error(event)
            .map_or(0, |e| crate::wsa_error(&e).unwrap_or(WSAENETDOWN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_winsocks_and_errors_read_as_winsock_codes() {
        assert_eq!(NetworkEvents::READ.bits(), 1);
        assert_eq!(NetworkEvents::CLOSE.bits(), 32);
        assert_eq!(bit_of(NetworkEvents::ACCEPT), Some(3));
        assert_eq!(bit_of(NetworkEvents::READ | NetworkEvents::WRITE), None);
        let mut errnos = [0; EVENT_BITS];
        errnos[5] = libc::ECONNRESET;
        errnos[4] = libc::ECONNREFUSED;
        let r = NetworkEventsRecord::new(NetworkEvents::CLOSE | NetworkEvents::READ, errnos);
        assert_eq!(r.error_code(NetworkEvents::CLOSE), 10054);
        assert_eq!(r.error_code(NetworkEvents::READ), 0);
        // Not recorded: no error, whatever the array holds.
        assert_eq!(r.error_code(NetworkEvents::CONNECT), 0);
        assert!(r.error(NetworkEvents::CONNECT).is_none());
    }
}
