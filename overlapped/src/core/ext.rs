//! What the extension operations change in a socket beyond one operation:
//! the caller-made socket an `AcceptEx` reserves and fills (SPEC x02), and
//! the fresh socket a `DisconnectEx` with reuse leaves behind (SPEC x04).

use std::io;
use std::os::fd::AsFd;
use std::sync::Arc;

use super::table::{SockState, sock_token};
use super::{Core, Sock, bad_handle};
use crate::sys::OpKind;
use crate::sys::ext::{Reserve, Target};

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

impl Core {
    /// Reserves `target` for an `AcceptEx` of this engine: a stream socket
    /// that is open, neither connected, connecting, listening nor reserved
    /// already. The pending accept holds the reservation.
    pub(crate) fn reserve(&self, target: &Sock) -> io::Result<Arc<Target>> {
        let mut guard = target.lock();
        let s = &mut *guard;
        if s.closed {
            return Err(bad_handle());
        }
        if s.reserved
            .as_ref()
            .is_some_and(|t| t.state() == Reserve::Held)
        {
            return Err(invalid(
                "the accept socket is already waiting in another AcceptEx",
            ));
        }
        if s.reserved.is_some() {
            self.settle_reserve(target, s, &OpKind::Accept)?;
        }
        if !s.stream {
            return Err(invalid("the accept socket is not a stream socket"));
        }
        if s.conn.listening || s.conn.connecting || !s.ops.is_empty() {
            return Err(invalid(
                "the accept socket is listening, connecting or has operations in flight",
            ));
        }
        let fd = s.fd.clone().ok_or_else(bad_handle)?;
        if s.connected || rustix::net::getpeername(&*fd).is_ok() {
            return Err(invalid("the accept socket is already connected"));
        }
        let t = Target::new(fd);
        s.reserved = Some(t.clone());
        Ok(t)
    }

    /// A reserved socket's call: while the accept holds it, a connect (or
    /// another accept into it) is *invalid argument* and other operations
    /// *not connected*; once the accept filled it, the socket takes up its
    /// new connection (registered with the backend again: its descriptor
    /// names a new socket); once released, it is free.
    pub(super) fn settle_reserve(
        &self,
        sock: &Sock,
        s: &mut SockState,
        kind: &OpKind,
    ) -> io::Result<()> {
        let Some(t) = s.reserved.clone() else {
            return Ok(());
        };
        match t.state() {
            Reserve::Held => match kind {
                OpKind::Connect { .. } | OpKind::Accept | OpKind::AcceptEx(_) => Err(invalid(
                    "the socket is waiting in a pending AcceptEx (reserved)",
                )),
                _ => Err(io::Error::from_raw_os_error(libc::ENOTCONN)),
            },
            Reserve::Accepted => {
                s.reserved = None;
                self.fresh_socket_state(sock, s, true);
                Ok(())
            }
            // Free again; its descriptor may name a fresh socket (an
            // aborted accept's connection was closed), which the backend
            // must watch.
            Reserve::Released | Reserve::Closed => {
                s.reserved = None;
                self.fresh_socket_state(sock, s, false);
                Ok(())
            }
        }
    }

    /// The socket's descriptor names a new socket (an accepted connection,
    /// or a fresh unconnected socket): what the engine knew of the old one
    /// goes, and the backend watches the new one.
    fn fresh_socket_state(&self, sock: &Sock, s: &mut SockState, connected: bool) {
        s.connected = connected;
        s.bound = connected;
        s.conn = Default::default();
        s.urgent = None;
        s.leftover.clear();
        s.sys = self.backend.new_sock();
        sock.hints.report(&[true; 3], false);
        if let Some(fd) = s.fd.as_ref() {
            crate::sys::tcp::enable_inq(fd.as_fd());
            if let Err(e) = self
                .backend
                .register(fd.as_fd(), sock_token(sock.key, sock.seq))
            {
                tracing::warn!(error = %e, "registering a socket's new descriptor failed");
            }
        }
    }

    /// `DisconnectEx` with reuse completed: the socket's other operations
    /// are cancelled, and its descriptor is given a fresh socket of the
    /// same family (the old connection closes), ready for a new `AcceptEx`
    /// or `ConnectEx` (SPEC x04). On failure the socket stays as it is
    /// (disconnected), and the failure is logged.
    pub(super) fn reuse_socket(&self, sock: &Sock, s: &mut SockState) {
        let others: Vec<u16> = s.queues.iter().flat_map(|q| q.iter().copied()).collect();
        for &k in &others {
            let _ = self.cancel_locked(sock, s, k as usize);
        }
        // Those the kernel still runs (io_uring answers a cancel later)
        // belong to the old connection: whatever they end with, they end
        // aborted, and they teach the fresh socket nothing.
        for k in others {
            if let Some(slot) = s.ops.get_mut(k as usize) {
                if !matches!(slot.state, super::table::SlotState::Done(_)) {
                    slot.closing = true;
                    slot.learn = super::conn::Learn::Other;
                }
            }
        }
        let Some(fd) = s.fd.clone() else {
            return;
        };
        let fresh = match crate::sys::ext::fresh_stream_like(fd.as_fd()) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "a fresh socket for reuse could not be made");
                return;
            }
        };
        self.backend.deregister(fd.as_fd());
        if let Err(e) = crate::sys::tcp::replace_fd(fd.as_fd(), fresh) {
            tracing::warn!(error = %e, "reusing the socket failed");
        }
        self.fresh_socket_state(sock, s, false);
    }

    /// A reserved socket closes: the accept that holds it is to end
    /// aborted (a connection it took is closed). Returns its canceller, to
    /// run once the socket's lock is let go (it takes the listener's).
    pub(super) fn close_reserved(s: &mut SockState) -> Option<Box<dyn FnOnce() + Send>> {
        let t = s.reserved.take()?;
        if t.settle(Reserve::Closed) {
            t.take_on_close()
        } else {
            None
        }
    }
}
