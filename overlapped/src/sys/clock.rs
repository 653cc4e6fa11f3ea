//! The coarse monotonic clock, for decisions that need milliseconds, not
//! microseconds, and run once per operation.

#![allow(unsafe_code)]

/// Milliseconds on the coarse monotonic clock (a few milliseconds'
/// resolution; reading it costs a memory read, not a clock read). Through
/// the C library, whose vDSO lookup tools such as valgrind support (a
/// raw-syscall lookup of the vDSO crashed under valgrind).
/// Microseconds on the monotonic clock (its origin is the system's: only
/// differences mean something), in integer arithmetic (`Instant`'s
/// differences cost about 150 instructions more, a share of a message's
/// cost on a port). `None` where the clock cannot be read.
pub(crate) fn monotonic_us() -> Option<u64> {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a writable `timespec` for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) } != 0 {
        return None;
    }
    Some((t.tv_sec as u64).saturating_mul(1_000_000) + t.tv_nsec as u64 / 1000)
}

pub(crate) fn coarse_ms() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a writable `timespec` for the duration of the call.
    if unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC_COARSE, &mut t) } != 0 {
        // Not on Linux before 2.6.32: the engine's own clock instead.
        return crate::core::drive_clock_us() / 1000;
    }
    (t.tv_sec as u64).saturating_mul(1000) + t.tv_nsec as u64 / 1_000_000
}
