//! Whether a stream receive tries before it parks: what both engines learn,
//! per socket, about the guess "the socket is empty".
//!
//! A stream receive that found nothing, or took bytes and emptied the
//! socket (`TCP_INQ`; io_uring: no `IORING_CQE_F_SOCK_NONEMPTY`), leads the
//! engine to guess that the next receive would find nothing too: in a
//! request-response exchange the answer is not there yet, and a try would
//! be a wasted system call. The next receive then parks without a try (poll:
//! until readiness is reported; io_uring: as a request that polls first).
//!
//! That guess is wrong for a socket whose next data arrives before the next
//! receive starts but after the engine last heard of it (a thread that
//! sends on one end of a pair and receives on the other): its receives
//! would all park and complete through the engine's kernel wait, handed
//! across threads, while a try would complete them at once. Measured with
//! `ovl bench --scale` on io_uring: two port workers did 1.0-1.4x the work
//! of one in rounds where some of their sockets fell into that pattern,
//! 1.6-1.7x in the others. So the engine learns which kind of socket it
//! has (io_uring: only for receives started outside a batch; see
//! `RecvPolicy::try_first`):
//!
//! * after a receive *emptied* the socket, now and then (after 1, 2, 4, ...
//!   up to [`MAX_PROBE_GAP`] skipped tries) a receive tries anyway: a
//!   *probe*. A probe that finds data puts the socket in `pays` mode, where
//!   emptying it does not make the engine guess; a try that finds nothing
//!   ends that mode.
//! * after a try *found nothing*, no probe: the next news comes from the
//!   kernel (a readiness report, a completion).
//! * any guess holds only [`EMPTY_TRUSTED_MS`](super::hints::EMPTY_TRUSTED_MS): a
//!   receive that starts later tries, so a reset that came in the pause
//!   fails it at the call (SPEC k01) instead of completing it.

use super::{coarse_ms, empty_still_trusted};

/// The longest run of skipped tries between two probes.
pub(crate) const MAX_PROBE_GAP: u16 = 64;

/// One socket's learning (see the module docs). The engine keeps, next to
/// it, whether it currently guesses the socket empty (poll: the read hint
/// is clear; io_uring: the receive policy does not try); the methods below
/// are called only while it does, or on the outcome of a try.
#[derive(Debug)]
pub(crate) struct EmptyGuess {
    /// Tries after a receive emptied the socket find data here.
    pays: bool,
    /// The guess was made by a receive that emptied the socket (not by a
    /// try that found nothing): it is probed now and then.
    emptied: bool,
    /// Tries skipped since the last probe.
    skipped: u16,
    /// Tries to skip before the next probe.
    gap: u16,
    /// When the guess was made ([`coarse_ms`]).
    at: u64,
}

impl Default for EmptyGuess {
    fn default() -> Self {
        EmptyGuess {
            pays: false,
            emptied: false,
            skipped: 0,
            gap: 1,
            at: 0,
        }
    }
}

impl EmptyGuess {
    /// While the engine guesses the socket empty: whether a receive starting
    /// now skips its try. False for a probe, and once the guess is older
    /// than [`EMPTY_TRUSTED_MS`](super::hints::EMPTY_TRUSTED_MS).
    pub(crate) fn skip_try(&mut self) -> bool {
        if !self.trusted() {
            return false;
        }
        if !self.emptied {
            return true;
        }
        self.skipped += 1;
        if self.skipped < self.gap {
            return true;
        }
        self.skipped = 0;
        false
    }

    /// Whether the guess still holds: made less than
    /// [`EMPTY_TRUSTED_MS`](super::hints::EMPTY_TRUSTED_MS) ago.
    pub(crate) fn trusted(&self) -> bool {
        empty_still_trusted(self.at)
    }

    /// A try found nothing; `probe`: it was made while the engine guessed
    /// the socket empty. The engine guesses so now.
    pub(crate) fn found_nothing(&mut self, probe: bool) {
        self.emptied = false;
        self.at = coarse_ms();
        if self.pays && !probe {
            // A try after the socket was emptied found nothing.
            self.pays = false;
            self.gap = 2;
        } else if probe {
            self.gap = (self.gap * 2).min(MAX_PROBE_GAP);
        }
    }

    /// A try took `bytes`; `drained`: it emptied the socket. True when the
    /// engine should now guess the socket empty.
    pub(crate) fn took(&mut self, probe: bool, bytes: usize, drained: bool) -> bool {
        if probe && bytes > 0 {
            self.pays = true;
            self.gap = 1;
        }
        if drained {
            self.emptied()
        } else {
            self.emptied = false;
            false
        }
    }

    /// A receive emptied the socket. True when the engine should now guess
    /// it empty (not in `pays` mode).
    pub(crate) fn emptied(&mut self) -> bool {
        self.emptied = !self.pays;
        if self.emptied {
            self.at = coarse_ms();
        }
        self.emptied
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips until a probe (and counts them): the run length of skips.
    fn skips_before_probe(g: &mut EmptyGuess) -> u16 {
        let mut n = 0;
        while g.skip_try() {
            n += 1;
            assert!(n <= MAX_PROBE_GAP, "no probe within {MAX_PROBE_GAP} starts");
        }
        n
    }

    #[test]
    fn probes_come_ever_more_rarely_while_they_find_nothing() {
        let mut g = EmptyGuess::default();
        assert!(g.emptied());
        let mut runs = Vec::new();
        for _ in 0..8 {
            runs.push(skips_before_probe(&mut g));
            g.found_nothing(true);
            // A receive later emptied the socket again.
            assert!(g.emptied());
        }
        assert_eq!(runs, [0, 1, 3, 7, 15, 31, 63, 63]);
    }

    #[test]
    fn a_probe_that_finds_data_stops_the_guessing_until_a_try_finds_nothing() {
        let mut g = EmptyGuess::default();
        assert!(g.emptied());
        assert!(!g.skip_try(), "the first start after emptying probes");
        assert!(!g.took(true, 10, true), "paying: emptying makes no guess");
        assert!(!g.emptied());
        assert!(!g.took(false, 10, true));
        g.found_nothing(false);
        assert!(g.skip_try(), "a try that found nothing: no probe");
        assert!(g.emptied(), "not paying any more");
        assert_eq!(skips_before_probe(&mut g), 1);
    }

    #[test]
    fn a_try_that_found_nothing_is_not_probed() {
        let mut g = EmptyGuess::default();
        g.found_nothing(false);
        for _ in 0..200 {
            assert!(g.skip_try());
        }
    }

    #[test]
    fn a_guess_older_than_the_trusted_window_is_dropped() {
        let mut g = EmptyGuess::default();
        g.found_nothing(false);
        g.at = coarse_ms().saturating_sub(super::super::hints::EMPTY_TRUSTED_MS + 50);
        assert!(!g.skip_try());
    }
}
