//! Engines, and the skip of an engine that cannot run here.
//!
//! io_uring is *unavailable* to the tests when
//!
//! * `OVERLAPPED_TEST_FORBID_URING` is set (to anything but `0`): a run
//!   that shows what a host without io_uring reports, on any host; or
//! * [`overlapped::probe::probe_uring`] fails (a seccomp filter, the
//!   `kernel.io_uring_disabled` sysctl, an old kernel, ...), with its
//!   reason.
//!
//! A stamped case on an unavailable engine prints
//! `SKIPPED: io_uring unavailable: <reason>` and passes without running. A
//! test binary that ran stamped cases prints, when it exits, one line to
//! stderr (uncaptured, after libtest's summary) with how many cases ran and
//! how many were skipped per engine, and why:
//!
//! ```text
//! conformance: io_uring: 0 cases ran, 97 cases skipped (io_uring unavailable:
//! ...); poll: 97 cases ran; engine-free: 18 cases ran
//! ```
//!
//! (one line; wrapped here).
//!
//! Where io_uring works, a skip would hide a regression (a probe that fails
//! for the wrong reason skips every `uring` case, and the run still
//! passes). With `OVERLAPPED_TEST_REQUIRE_URING` set (to anything but `0`)
//! a `uring` case that would be skipped fails instead, with the reason.
//! `.ci/run` sets it when `ovl doctor --json` says io_uring is available.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

pub use overlapped::EngineKind as Kind;
use overlapped::probe::EngineChoice;
use overlapped::{Engine, EngineBuilder};

/// Both engines, io_uring first.
pub const KINDS: [Kind; 2] = [Kind::Uring, Kind::Poll];

/// The variable that makes the tests treat io_uring as unavailable.
pub const FORBID_URING: &str = "OVERLAPPED_TEST_FORBID_URING";

/// The variable that makes a `uring` case fail where it would be skipped.
pub const REQUIRE_URING: &str = "OVERLAPPED_TEST_REQUIRE_URING";

/// True when `name` is set to anything but `0`.
fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| v != "0")
}

/// The engine's name in messages: `io_uring` or `poll`.
pub fn label(kind: Kind) -> &'static str {
    match kind {
        Kind::Uring => "io_uring",
        other => other.name(),
    }
}

/// Why `kind` cannot run here, or `None` when it can (checked once per
/// process).
pub fn unavailable(kind: Kind) -> Option<&'static str> {
    static URING: OnceLock<Option<String>> = OnceLock::new();
    match kind {
        Kind::Uring => URING
            .get_or_init(|| {
                if flag(FORBID_URING) {
                    return Some(format!("{FORBID_URING} is set"));
                }
                overlapped::probe::probe_uring()
                    .err()
                    .map(|why| why.to_string())
            })
            .as_deref(),
        _ => None,
    }
}

/// A builder for an engine of this kind (for cases that set more options).
pub fn builder(kind: Kind) -> EngineBuilder {
    Engine::builder().choice(EngineChoice::from(kind))
}

/// A fresh engine of this kind. Stamped cases get theirs only when
/// [`unavailable`] said it can run, so a failure here is a failure.
pub fn engine(kind: Kind) -> Engine {
    builder(kind)
        .build()
        .unwrap_or_else(|e| panic!("engine {kind} unavailable: {e}"))
}

/// A case function: it takes the engine, its kind, or (engine-free)
/// nothing. The marker `M` tells the forms apart.
pub trait Case<M>: Send + 'static {
    /// Runs the case on an engine of `kind`.
    fn call(self, kind: Kind);
}

/// [`Case`] marker: `fn(&Engine)`.
pub struct TakesEngine;
/// [`Case`] marker: `fn(Kind)`.
pub struct TakesKind;

impl<F: FnOnce(&Engine) + Send + 'static> Case<TakesEngine> for F {
    fn call(self, kind: Kind) {
        self(&engine(kind))
    }
}

impl<F: FnOnce(Kind) + Send + 'static> Case<TakesKind> for F {
    fn call(self, kind: Kind) {
        self(kind)
    }
}

/// Cases started, per engine (`KINDS` order), then engine-free.
static RAN: [AtomicUsize; 3] = [const { AtomicUsize::new(0) }; 3];
/// Cases skipped, per engine.
static SKIPPED: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

fn index(kind: Kind) -> usize {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0)
}

/// A stamped case on one engine: skipped with the reason when the engine
/// cannot run here (a failure instead under [`REQUIRE_URING`]), else run
/// with [`super::bounded`].
pub fn run<M>(kind: Kind, name: &'static str, case: impl Case<M>) {
    summary_at_exit();
    if let Some(why) = unavailable(kind) {
        assert!(
            !flag(REQUIRE_URING),
            "{name}: {} unavailable: {why}; {REQUIRE_URING} is set, so it may not be skipped",
            label(kind)
        );
        SKIPPED[index(kind)].fetch_add(1, Ordering::SeqCst);
        println!("{name}: SKIPPED: {} unavailable: {why}", label(kind));
        return;
    }
    RAN[index(kind)].fetch_add(1, Ordering::SeqCst);
    super::bounded(name, move || case.call(kind));
}

/// A stamped engine-free case, run with [`super::bounded`].
pub fn run_engine_free(name: &'static str, case: fn()) {
    summary_at_exit();
    RAN[2].fetch_add(1, Ordering::SeqCst);
    super::bounded(name, case);
}

/// "1 case", "2 cases".
fn cases(n: usize) -> String {
    format!("{n} case{}", if n == 1 { "" } else { "s" })
}

/// The line printed at exit.
fn summary(binary: &str) -> String {
    let mut parts = Vec::new();
    for kind in KINDS {
        let (ran, skipped) = (
            RAN[index(kind)].load(Ordering::SeqCst),
            SKIPPED[index(kind)].load(Ordering::SeqCst),
        );
        let mut part = format!("{}: {} ran", label(kind), cases(ran));
        if skipped > 0 {
            let why = unavailable(kind).unwrap_or("?");
            part = format!(
                "{part}, {} skipped ({} unavailable: {why})",
                cases(skipped),
                label(kind)
            );
        }
        parts.push(part);
    }
    let free = RAN[2].load(Ordering::SeqCst);
    parts.push(format!("engine-free: {} ran", cases(free)));
    format!("{binary}: {}\n", parts.join("; "))
}

/// Registers (once) the print of [`summary`] at process exit.
fn summary_at_exit() {
    static BINARY: OnceLock<String> = OnceLock::new();
    extern "C" fn print() {
        let line = summary(BINARY.get().map_or("tests", String::as_str));
        // A raw write: at exit the thread-locals behind `std::io::stderr`
        // may be gone.
        // SAFETY: fd 2 stays open for the life of the process and `line` is a live buffer of `line.len()` bytes.
        unsafe { libc::write(2, line.as_ptr().cast(), line.len()) };
    }
    BINARY.get_or_init(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        let stem = exe.file_stem().unwrap_or_default().to_string_lossy();
        // Cargo names test binaries `<target>-<hash>`.
        let name = stem.rsplit_once('-').map_or(&*stem, |(n, _)| n);
        // SAFETY: `print` is an `extern "C" fn` that does not unwind and reads only statics, which live until the process ends.
        let rc = unsafe { libc::atexit(print) };
        assert_eq!(rc, 0, "atexit");
        name.to_string()
    });
}
