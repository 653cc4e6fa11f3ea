//! What the engine knows of a socket's readiness without asking the
//! kernel: the per-direction hints and how long an empty socket is
//! trusted to stay empty.

use std::sync::atomic::{AtomicU8, Ordering};

use super::{Dir, coarse_ms};

/// How long the engine trusts that a socket is empty after a receive
/// emptied it (or a try found nothing), in milliseconds of the coarse
/// clock: within it, the next receive skips its try (io_uring: it polls
/// first; poll: it waits for readiness). Long enough for a request-response
/// exchange (the next receive starts microseconds later), short enough
/// that after a pause the next receive tries, so a reset that came in the
/// pause fails it at the call, as on Windows (SPEC k01), instead of
/// completing it later.
pub(crate) const EMPTY_TRUSTED_MS: u64 = 8;

/// Whether what was learned at `at` ([`coarse_ms`]) that the socket is
/// empty still holds (see [`EMPTY_TRUSTED_MS`]).
pub(crate) fn empty_still_trusted(at: u64) -> bool {
    coarse_ms().saturating_sub(at) <= EMPTY_TRUSTED_MS
}

/// Readiness hints of a socket, one bit per direction, readable without the
/// socket's lock: set when the direction may progress (a readiness report,
/// or an attempt that may have left more to do), cleared just before an
/// attempt of that direction. A clear bit therefore means: the last attempt
/// found nothing (or took everything) and nothing was reported since, so
/// a new attempt would find nothing. Set by the core on every readiness
/// report, before it looks at the socket's operations. A fourth bit,
/// never cleared, records that the peer ended the stream (or the socket
/// failed): from then on the read side always tries (end-of-stream and
/// errors are answers no later report announces).
#[derive(Debug)]
pub(crate) struct Hints(AtomicU8);

impl Default for Hints {
    fn default() -> Self {
        Hints(AtomicU8::new(0b0111))
    }
}

impl Hints {
    /// A readiness report for `dirs`; `ended`: the peer ended the stream or
    /// the socket failed.
    pub(crate) fn report(&self, dirs: &[bool; 3], ended: bool) {
        let mut b = if ended { Self::ENDED } else { 0 };
        for (d, on) in dirs.iter().enumerate() {
            if *on {
                b |= 1 << d;
            }
        }
        self.0.fetch_or(b, Ordering::SeqCst);
    }
    const ENDED: u8 = 1 << 3;
    pub(super) fn may(&self, dir: Dir) -> bool {
        let b = self.0.load(Ordering::SeqCst);
        b & (1 << dir as u8) != 0 || (dir == Dir::Read && b & Self::ENDED != 0)
    }
    pub(super) fn clear(&self, dir: Dir) {
        self.0.fetch_and(!(1 << dir as u8), Ordering::SeqCst);
    }
    pub(super) fn set(&self, dir: Dir) {
        self.0.fetch_or(1 << dir as u8, Ordering::SeqCst);
    }
}
