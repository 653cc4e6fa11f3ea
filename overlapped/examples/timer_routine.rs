//! `SetWaitableTimer` with a completion routine: the routine runs in the
//! alertable waits of the thread that set the timer, once per period,
//! until the timer is cancelled.
//!
//! ```text
//! cargo run --example timer_routine
//! ```

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use overlapped::{INFINITE, SleepOutcome, WaitableTimer, sleep_ex};

fn main() -> io::Result<()> {
    let ticks = Arc::new(AtomicU32::new(0));
    let t = ticks.clone();
    let timer = WaitableTimer::new();
    let period = Duration::from_millis(50);
    timer.set(period, Some(period), move || {
        let n = t.fetch_add(1, Ordering::Relaxed) + 1;
        println!("tick {n}");
    })?;
    while ticks.load(Ordering::Relaxed) < 3 {
        assert_eq!(sleep_ex(INFINITE, true), SleepOutcome::IoCompletion);
    }
    timer.cancel();
    let after = sleep_ex(Some(period * 3), true);
    println!("after cancel: {after:?}");
    Ok(())
}
