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
mod connection;
mod events;
mod operations;
mod ports;
mod routines;
mod sockets;

/// SPEC n04: every case has the same outcome on both engines — here: every
/// case is stamped on both engines (the outcomes are the cases' own
/// assertions, identical for both).
#[test]
fn n04_every_case_runs_on_both_engines() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse"])
        .output()
        .expect("list the suite");
    let list = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = list
        .lines()
        .filter_map(|l| l.strip_suffix(": test"))
        .collect();
    let uring: std::collections::BTreeSet<String> = names
        .iter()
        .filter(|n| n.contains("::uring::"))
        .map(|n| n.replace("::uring::", "::E::"))
        .collect();
    let poll: std::collections::BTreeSet<String> = names
        .iter()
        .filter(|n| n.contains("::poll::"))
        .map(|n| n.replace("::poll::", "::E::"))
        .collect();
    assert!(
        uring.len() >= 80,
        "the suite lists {} cases per engine",
        uring.len()
    );
    assert_eq!(uring, poll, "a case runs on one engine only");
}
