//! The conformance suite: every case of SPEC.md, run on every engine.
//!
//! Each case is written once as a function taking the engine; the
//! [`cases!`] macro stamps a `#[test]` per engine in the modules `uring` and
//! `poll`, so `cargo test -- --list` shows `sockets::uring::s03_...` and
//! `sockets::poll::s03_...`. Every case runs on its own engine, on its own
//! thread, with a time bound.

#[macro_use]
mod util;

mod asyncs;
mod close_cancel;
mod events;
mod operations;
mod ports;
mod routines;
mod sockets;
