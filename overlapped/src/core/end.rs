//! The engine's end: what is still parked in the kernel when the last
//! handle on the engine goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::table::SlotState;
use super::{Core, Sock};

/// How long the engine's drop waits for the kernel to let go of parked
/// operations.
const END_WAIT: Duration = Duration::from_secs(2);

impl Core {
    /// The last handle on the engine went: operations still parked in the
    /// kernel (sockets closed, their aborted completions not yet reaped)
    /// are cancelled, and their completions reaped and dispatched the
    /// ordinary way, so their memory is freed. Nothing is delivered any
    /// more (see [`Core::deliver`]): no handle, routine or port is left to
    /// take a result. What the kernel has not let go of within
    /// [`END_WAIT`] stays parked: it drops with its socket, its
    /// kernel memory and buffers leaked, never freed (see
    /// `sys::uring::InFlight`); so do tombstones ([`SlotState::Lost`]),
    /// which are never waited for.
    fn end(&mut self) {
        self.ended = true;
        let core = &*self;
        let socks = core.socks.all();
        if !parked(&socks) {
            return;
        }
        for sock in &socks {
            let mut guard = sock.lock();
            let s = &mut *guard;
            let armed: Vec<usize> = s
                .ops
                .iter()
                .filter(|(_, o)| matches!(o.state, SlotState::Armed(_)))
                .map(|(k, _)| k)
                .collect();
            for key in armed {
                // Also an operation that was asked to cancel before: the
                // backend is asked again.
                core.cancel_parked(sock, s, key);
            }
        }
        let deadline = Instant::now() + END_WAIT;
        let mut found = Vec::new();
        while parked(&socks) && Instant::now() < deadline {
            core.backend.flush();
            core.backend
                .wait(Some(Duration::from_millis(10)), &mut found);
            for w in found.drain(..) {
                core.dispatch(&w);
            }
        }
    }
}

/// Whether an operation of `socks` is parked with the backend.
fn parked(socks: &[Arc<Sock>]) -> bool {
    socks.iter().any(|s| {
        s.lock()
            .ops
            .iter()
            .any(|(_, o)| matches!(o.state, SlotState::Armed(_)))
    })
}

impl Drop for Core {
    /// See [`Core::end`].
    fn drop(&mut self) {
        self.end();
    }
}
