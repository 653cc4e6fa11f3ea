//! Time bounds: every case and every wait in a test has one.

use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The bound on any one case (before [`slack`]).
pub const CASE_LIMIT: Duration = Duration::from_secs(60);

pub const SEC: Duration = Duration::from_secs(1);
pub const MS: Duration = Duration::from_millis(1);

/// `OVERLAPPED_TEST_TIME_SCALE` (a whole number, default 1) multiplies the
/// upper time bounds the cases assert, for runs under a tool that slows the
/// program down: `scripts/memcheck` sets it for valgrind. Every upper bound
/// goes through here: "returns at once" (`elapsed < slack(25 * MS)`), the
/// excess over a requested timeout (`took < want + slack(200 * MS)`), the
/// timeout of a wait that must end ([`ten`], `eventually(slack(..), ..)`),
/// and a window that must outlast such a bound. Lower bounds ("waited at
/// least the timeout") and waits that must time out ("no packet within
/// 50 ms") are never scaled.
pub fn slack(d: Duration) -> Duration {
    static SCALE: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let scale = *SCALE.get_or_init(|| {
        std::env::var("OVERLAPPED_TEST_TIME_SCALE")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1)
    });
    d * scale
}

/// The timeout of a wait that must end (a completion, a packet, an event
/// set): ten seconds, scaled by [`slack`].
pub fn ten() -> Option<Duration> {
    Some(slack(10 * SEC))
}

/// Runs `f` on its own thread (named `name`) and fails the test if it takes
/// longer than [`CASE_LIMIT`] (scaled by [`slack`]).
pub fn bounded(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            f();
            let _ = tx.send(());
        })
        .expect("spawn case thread");
    let limit = slack(CASE_LIMIT);
    match rx.recv_timeout(limit) {
        Ok(()) => h.join().expect("case thread"),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            if let Err(p) = h.join() {
                std::panic::resume_unwind(p);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("case {name} exceeded {limit:?}"),
    }
}

/// Polls `f` until true or `limit` passes.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    f()
}
