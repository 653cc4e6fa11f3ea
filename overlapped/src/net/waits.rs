//! A socket in the waits of the model: as a waitable object (SPEC t03),
//! and its readiness events through an event (`WSAEventSelect`, SPEC t04).

use std::borrow::Cow;
use std::io;

use super::Socket;
use crate::event::{AsWaitable, Event};
use crate::select::{NetworkEvents, NetworkEventsRecord};

impl Socket {
    /// `SetFileCompletionNotificationModes(socket,
    /// FILE_SKIP_SET_EVENT_ON_HANDLE)`: the completions of the socket's
    /// operations no longer signal the socket as a waitable object (an
    /// operation's own event still is). One-way, as on Windows.
    ///
    /// # Errors
    /// `EBADF` on a closed socket.
    #[doc(alias = "FILE_SKIP_SET_EVENT_ON_HANDLE")]
    pub fn set_skip_event_on_handle(&self) -> io::Result<()> {
        self.open()?;
        self.engine.inner.set_skip_event_on_handle(&self.sock)
    }

    /// `WSAEventSelect(socket, event, mask)`: the socket records the
    /// network events of `mask` as they happen and sets `event` for each;
    /// [`enum_network_events`](Socket::enum_network_events) reports and
    /// clears the record. A second call replaces the first (and clears the
    /// record); an empty `mask` cancels the selection. Events that already
    /// hold are recorded at once (Windows' persistence of network events:
    /// a connection waiting on a listener, data waiting on a connection).
    ///
    /// Windows' rules (SPEC t04):
    /// * An event is recorded once, then not again until its re-enabling
    ///   call, made on any handle of the socket, even one that fails: a
    ///   receive for [`READ`](NetworkEvents::READ) (recorded again at once
    ///   when data is still waiting), an `OOB` receive for
    ///   [`OOB`](NetworkEvents::OOB), an accept for
    ///   [`ACCEPT`](NetworkEvents::ACCEPT), a send that went pending for
    ///   [`WRITE`](NetworkEvents::WRITE). [`CONNECT`](NetworkEvents::CONNECT)
    ///   (each connect operation's end, with its error) and
    ///   [`CLOSE`](NetworkEvents::CLOSE) (with the reset's error, or 0 once
    ///   the data before a graceful close was received) are told once.
    /// * Data taken by a pending receive raises no `READ`, and a connection
    ///   taken by a pending accept raises no `ACCEPT`.
    /// * The selection works beside overlapped operations on the socket;
    ///   closing the socket ends it.
    ///
    /// A socket accepted from a selected listener (by
    /// [`accept`](Socket::accept) or [`accept_ex`](Socket::accept_ex))
    /// takes the listener's selection, event and mask, as on Windows.
    ///
    /// No thread watches the socket (none is made): a wait on `event`
    /// ([`Event::wait`], [`wait_for_events`](crate::wait_for_events))
    /// watches the sockets selected into it while it blocks, and this call
    /// and [`enum_network_events`](Socket::enum_network_events) look at
    /// the socket themselves. [`Event::is_set`] alone does not look.
    ///
    /// # Errors
    /// `EBADF` (`WSAENOTSOCK`) on a closed socket.
    ///
    /// # Examples
    ///
    /// ```
    /// use overlapped::{Engine, Event, NetworkEvents, Socket};
    /// use std::time::Duration;
    /// # fn main() -> std::io::Result<()> {
    /// let engine = Engine::new()?;
    /// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
    /// let ev = Event::new();
    /// listener.event_select(&ev, NetworkEvents::ACCEPT | NetworkEvents::CLOSE)?;
    /// let _client = std::net::TcpStream::connect(listener.local_addr()?)?;
    /// assert!(ev.wait(Some(Duration::from_secs(10))));
    /// let record = listener.enum_network_events(Some(&ev))?;
    /// assert_eq!(record.events(), NetworkEvents::ACCEPT);
    /// assert!(!ev.is_set());
    /// # Ok(())
    /// # }
    /// ```
    #[doc(alias = "WSAEventSelect")]
    pub fn event_select(&self, event: &Event, mask: NetworkEvents) -> io::Result<()> {
        self.open()?;
        if !mask.is_empty() {
            event.note_selected(&self.engine, &self.sock);
        }
        self.engine.inner.event_select(&self.sock, event, mask)
    }

    /// `WSAEnumNetworkEvents(socket, event, &record)`: the network events
    /// recorded since the last call (the socket looked at first), with the
    /// error of each; the record is cleared, and `reset` (the selected
    /// event, usually) is reset in the same step. Enumerating re-enables
    /// nothing (see [`event_select`](Socket::event_select)).
    ///
    /// # Errors
    /// `EBADF` (`WSAENOTSOCK`) on a closed socket.
    #[doc(alias = "WSAEnumNetworkEvents")]
    pub fn enum_network_events(&self, reset: Option<&Event>) -> io::Result<NetworkEventsRecord> {
        self.open()?;
        self.engine.inner.enum_network_events(&self.sock, reset)
    }
}

impl AsWaitable for Socket {
    /// The socket's handle: signalled on each completion of its operations
    /// (unless it opted out, see [`Socket::set_skip_event_on_handle`]),
    /// reset when one starts.
    fn waitable_event(&self) -> Cow<'_, Event> {
        Cow::Owned(self.engine.inner.sock_waitable(&self.sock))
    }
}
