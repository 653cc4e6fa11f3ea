//! A socket in the waits of the model: as a waitable object (SPEC t03).

use std::borrow::Cow;
use std::io;

use super::Socket;
use crate::event::{AsWaitable, Event};

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
}

impl AsWaitable for Socket {
    /// The socket's handle: signalled on each completion of its operations
    /// (unless it opted out, see [`Socket::set_skip_event_on_handle`]),
    /// reset when one starts.
    fn waitable_event(&self) -> Cow<'_, Event> {
        Cow::Owned(self.engine.inner.sock_waitable(&self.sock))
    }
}
