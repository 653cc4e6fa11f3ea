//! Helpers of the routine cases: a counter a routine bumps, an alertable
//! wait with a bound, and busy work that calls nothing of the library.
//!
//! Test binaries that use it name it (`use crate::util::routine::*`): it
//! is not among `util`'s glob re-exports.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use overlapped::sleep_ex;

use super::{SEC, slack};

/// Two handles on one count: one for a routine to move in, one to read.
pub fn counter() -> (Rc<Cell<u32>>, Rc<Cell<u32>>) {
    let c = Rc::new(Cell::new(0));
    (c.clone(), c)
}

pub fn bump(c: &Cell<u32>) {
    c.set(c.get() + 1);
}

/// Sleeps alertably until `done()` or ten seconds (scaled by [`slack`]).
pub fn alertable_until(mut done: impl FnMut() -> bool) {
    let end = Instant::now() + slack(10 * SEC);
    while !done() && Instant::now() < end {
        sleep_ex(Some(Duration::from_millis(100)), true);
    }
    assert!(done(), "routine did not run in time");
}

/// Spins on the CPU for `d` without calling into the library.
pub fn busy(d: Duration) {
    let t0 = Instant::now();
    let mut x = 1u64;
    while t0.elapsed() < d {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::hint::black_box(x);
    }
}
