//! The helpers of every test binary of the crate: engines and the
//! skip-with-reason of an engine that cannot run here ([`engines`]), the
//! stamping macro [`cases!`], connected loopback pairs ([`pairs`]), time
//! bounds ([`bounds`]), descriptor counting ([`fds`]) and the seccomp filter
//! that refuses io_uring ([`seccomp`]); and, named by the binaries that use
//! them, a case run once per notification ([`notif`]) and the routine
//! cases' counters and alertable waits ([`routine`]).
//!
//! A test binary at `tests/x.rs` takes it with
//!
//! ```ignore
//! #[path = "util/mod.rs"]
//! mod util;
//! ```
//!
//! (the conformance suite, `tests/conformance/main.rs`, with
//! `#[path = "../util/mod.rs"]`). It must be a module of the crate root:
//! the stamped tests call `crate::util::...`.
//!
//! # Stamping
//!
//! A case is an ordinary function (rustfmt formats it, clippy reads it),
//! written once and named after its SPEC case (`s03_...`). It takes the
//! engine it runs on (`fn s03_x(e: &Engine)`), or the engine's kind when it
//! builds the engine itself (`fn tiny_ring(kind: Kind)`), or nothing when it
//! does not use an engine at all (`fn e01_x()`). After the cases, one
//! [`cases!`] lists them:
//!
//! ```ignore
//! util::cases! {
//!     s03_gather_three_buffers_in_order,
//!     engine_free e01_manual_reset_event,
//! }
//! ```
//!
//! which makes `uring::s03_...` and `poll::s03_...` (one test per engine)
//! and `engine_free::e01_...` (one test). Each runs on its own thread with
//! [`bounds::CASE_LIMIT`]; on an engine that cannot run here the test
//! prints `SKIPPED: io_uring unavailable: <reason>` and returns (or, with
//! `OVERLAPPED_TEST_REQUIRE_URING=1`, fails), and the binary prints how
//! many cases ran and were skipped per engine when it exits (see
//! [`engines`]).
//!
//! # Variables
//!
//! * `OVERLAPPED_TEST_TIME_SCALE=n` multiplies every upper time bound
//!   ([`bounds::slack`]);
//! * `OVERLAPPED_TEST_FORBID_URING=1` treats io_uring as unavailable: its
//!   cases are skipped ([`engines`]);
//! * `OVERLAPPED_TEST_REQUIRE_URING=1` makes a skipped `uring` case a
//!   failure; `.ci/run` sets it where `ovl doctor --json` reports io_uring
//!   available ([`engines`]).
#![allow(dead_code)]

mod bounds;
mod engines;
mod fds;
pub mod notif;
mod pairs;
pub mod routine;
mod seccomp;

// Each binary uses a part of the helpers.
#[allow(unused_imports)]
pub use {bounds::*, engines::*, fds::*, pairs::*, seccomp::*};

/// Stamps the listed case functions of the current module as tests: a case
/// in modules `uring` and `poll` (one test per engine), a case marked
/// `engine_free` in module `engine_free` (one test). List every case of a
/// file once, in SPEC order; a case left out is dead code, which the lints
/// refuse.
macro_rules! cases {
    (@split [$($both:ident)*] [$($free:ident)*]) => {
        mod uring {
            $(
                #[test]
                fn $both() {
                    crate::util::run(
                        crate::util::Kind::Uring,
                        concat!(module_path!(), "::", stringify!($both)),
                        super::$both,
                    )
                }
            )*
        }
        mod poll {
            $(
                #[test]
                fn $both() {
                    crate::util::run(
                        crate::util::Kind::Poll,
                        concat!(module_path!(), "::", stringify!($both)),
                        super::$both,
                    )
                }
            )*
        }
        mod engine_free {
            $(
                #[test]
                fn $free() {
                    crate::util::run_engine_free(
                        concat!(module_path!(), "::", stringify!($free)),
                        super::$free,
                    )
                }
            )*
        }
    };
    (@split [$($both:ident)*] [$($free:ident)*] engine_free $name:ident $(, $($rest:tt)*)?) => {
        crate::util::cases!(@split [$($both)*] [$($free)* $name] $($($rest)*)?);
    };
    (@split [$($both:ident)*] [$($free:ident)*] $name:ident $(, $($rest:tt)*)?) => {
        crate::util::cases!(@split [$($both)* $name] [$($free)*] $($($rest)*)?);
    };
    ($($list:tt)*) => {
        crate::util::cases!(@split [] [] $($list)*);
    };
}
#[allow(unused_imports)]
pub(crate) use cases;
