//! The engine's end: what is still parked in the kernel when the last
//! handle on the engine goes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::Core;
use super::table::{SlotState, op_of};
use crate::sys::Wakeup;

impl Drop for Core {
    /// Operations still parked in the kernel (sockets closed, their aborted
    /// completions not yet reaped) are cancelled and their completions
    /// collected, so their memory is freed; what the kernel has not let go
    /// of within two seconds is leaked, never freed.
    fn drop(&mut self) {
        let socks = self.socks.all();
        let parked = |socks: &[Arc<super::Sock>]| {
            socks.iter().any(|s| {
                s.lock()
                    .ops
                    .iter()
                    .any(|(_, o)| matches!(o.state, SlotState::Armed(_)))
            })
        };
        if !parked(&socks) {
            return;
        }
        for sock in &socks {
            let mut s = sock.lock();
            let s = &mut *s;
            let armed: Vec<usize> = s
                .ops
                .iter()
                .filter(|(_, o)| matches!(o.state, SlotState::Armed(_)))
                .map(|(k, _)| k)
                .collect();
            for key in armed {
                s.ops[key].cancel = true;
                self.step_slot(sock, s, key, |op, p| self.backend.cancel(op, p));
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut found = Vec::new();
        while parked(&socks) && Instant::now() < deadline {
            self.backend.flush();
            self.backend
                .wait(Some(Duration::from_millis(10)), &mut found);
            for w in found.drain(..) {
                let Wakeup::Op { token, .. } = &w else {
                    continue;
                };
                let (key, slot_key, seq) = op_of(*token);
                let Some(sock) = socks.iter().find(|s| s.key == key) else {
                    continue;
                };
                let mut s = sock.lock();
                let s = &mut *s;
                if s.slot(slot_key, seq).is_some() {
                    self.step_slot(sock, s, slot_key as usize, |op, p| {
                        self.backend.progress(op, p, &w)
                    });
                }
            }
        }
        // Whatever is still parked drops with its socket: its kernel memory
        // and buffers are leaked (see `sys::uring::InFlight`).
    }
}
