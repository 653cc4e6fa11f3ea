//! The conformance suite: every case of `docs/SPEC.md`, run on every
//! engine.
//!
//! Each case is written once, as a function taking the engine, in the file
//! of its SPEC section, in SPEC order; `util::cases!` at the end of the file
//! stamps a `#[test]` per engine in the modules `uring` and `poll`, so
//! `cargo test -- --list` shows `sockets::uring::s03_...` and
//! `sockets::poll::s03_...`. A case that uses no engine is stamped once, in
//! `engine_free`. Every case runs on its own engine, on its own thread, with
//! a time bound; on an engine that cannot run here it is skipped with the
//! reason (see `tests/util/`).

#[path = "../util/mod.rs"]
mod util;

mod asyncs;
mod close_cancel;
mod connection_calls;
mod connection_codes;
mod connection_state;
mod context;
mod event_select;
mod events;
mod extensions;
mod files;
mod msg;
mod operations;
mod ports;
mod routine_queue;
mod routines;
mod sockets;
mod waits;

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

/// The cases of each section file are SPEC cases, defined in SPEC order
/// (the order of `docs/SPEC.md`), and the file's `util::cases!` lists them
/// in that same order.
#[test]
fn section_files_follow_spec_order() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = std::fs::read_to_string(root.join("../docs/SPEC.md")).expect("docs/SPEC.md");
    let ids: Vec<&str> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("- "))
        .filter(|l| {
            let b = l.as_bytes();
            b.len() > 3
                && b[0].is_ascii_lowercase()
                && b[1..3].iter().all(u8::is_ascii_digit)
                && b[3] == b' '
        })
        .map(|l| &l[..3])
        .collect();
    assert!(ids.len() > 80, "{} cases found in docs/SPEC.md", ids.len());
    let dir = root.join("tests/conformance");
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name() == Some("main.rs".as_ref()) {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        let file = path.file_name().unwrap().to_string_lossy();
        let defined: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("fn "))
            .map(|l| l.split('(').next().unwrap())
            .filter(|name| {
                let b = name.as_bytes();
                b.len() > 4 && b[1..3].iter().all(u8::is_ascii_digit) && b[3] == b'_'
            })
            .collect();
        let mut last = 0;
        for name in &defined {
            let at = ids
                .iter()
                .position(|id| name.starts_with(id))
                .unwrap_or_else(|| panic!("{file}: {name} names no case of docs/SPEC.md"));
            assert!(at >= last, "{file}: {name} comes after {}", ids[last]);
            last = at;
        }
        let listed: Vec<&str> = text
            .split_once("util::cases! {")
            .unwrap_or_else(|| panic!("{file} has no util::cases!"))
            .1
            .lines()
            .map(|l| l.trim().trim_end_matches(','))
            .take_while(|l| *l != "}")
            .filter(|l| !l.is_empty())
            .map(|l| l.strip_prefix("engine_free ").unwrap_or(l))
            .collect();
        assert_eq!(
            listed, defined,
            "{file}: util::cases! lists its cases in order"
        );
    }
    assert!(files >= 7, "{files} section files");
}

/// How many tests of this binary start with `prefix`.
fn listed(prefix: &str) -> usize {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--list", "--format", "terse"])
        .output()
        .expect("list the suite");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with(prefix) && l.ends_with(": test"))
        .count()
}

/// Lines of `out` that report a skipped case.
fn skip_lines(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.contains(": SKIPPED: ")).collect()
}

/// On a host where io_uring cannot run — here a child process whose seccomp
/// filter refuses `io_uring_setup` with `EPERM`, as a container's default
/// profile does — the suite reports each `uring` case as skipped with the
/// reason and passes the rest (the *sockets* section, run in the child).
#[test]
fn without_io_uring_uring_cases_are_skipped_with_the_reason() {
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["sockets::", "--nocapture"])
        .env_remove(util::FORBID_URING)
        .env_remove(util::REQUIRE_URING)
        .env_remove("OVERLAPPED_ENGINE");
    let out = util::without_uring(&mut cmd)
        .output()
        .expect("run the child");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    // What the filter makes the probe say (or, on a host that has no
    // io_uring anyway, its own reason).
    let why = match overlapped::probe::probe_uring() {
        Ok(()) => overlapped::probe::UringUnavailable::PermissionDenied.to_string(),
        Err(why) => why.to_string(),
    };
    let n = listed("sockets::uring::");
    assert!(n >= 16, "{n} sockets cases");
    let skipped = skip_lines(&stdout);
    assert_eq!(skipped.len(), n, "one line per uring case:\n{stdout}");
    for line in &skipped {
        assert!(line.starts_with("conformance::sockets::uring::s"), "{line}");
        assert!(
            line.ends_with(&format!(": SKIPPED: io_uring unavailable: {why}")),
            "{line}"
        );
    }
    let passed = format!("test result: ok. {} passed", 2 * n);
    assert!(stdout.contains(&passed), "{stdout}");
    let summary = format!(
        "conformance: io_uring: 0 cases ran, {n} cases skipped (io_uring unavailable: {why}); \
         poll: {n} cases ran; engine-free: 0 cases ran"
    );
    assert!(stderr.contains(&summary), "{stderr}");
    println!("{}\n{}", skipped[0], summary);
}

/// `OVERLAPPED_TEST_FORBID_URING=1` makes the tests treat io_uring as
/// unavailable on any host, with that reason.
#[test]
fn forbid_uring_variable_skips_uring_cases() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["sockets::", "--nocapture"])
        .env(util::FORBID_URING, "1")
        .env_remove(util::REQUIRE_URING)
        .output()
        .expect("run the child");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the child failed:\n{stdout}\n{stderr}"
    );
    let n = listed("sockets::uring::");
    let skipped = skip_lines(&stdout);
    assert_eq!(skipped.len(), n, "{stdout}");
    assert!(skipped.iter().all(|l| l.contains("::uring::")
        && l.ends_with(": SKIPPED: io_uring unavailable: OVERLAPPED_TEST_FORBID_URING is set")));
    let passed = format!("test result: ok. {} passed", 2 * n);
    assert!(stdout.contains(&passed), "{stdout}");
    let summary = format!("io_uring: 0 cases ran, {n} cases skipped");
    assert!(stderr.contains(&summary), "{stderr}");
}

/// `OVERLAPPED_TEST_REQUIRE_URING=1` (which `.ci/run` sets where io_uring
/// works): a `uring` case that would be skipped fails, with the reason, and
/// the `poll` cases still pass.
#[test]
fn require_uring_variable_fails_skipped_uring_cases() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["sockets::"])
        .env(util::FORBID_URING, "1")
        .env(util::REQUIRE_URING, "1")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "the child passed:\n{stdout}");
    let n = listed("sockets::uring::");
    assert!(skip_lines(&stdout).is_empty(), "{stdout}");
    let result = format!("test result: FAILED. {n} passed; {n} failed");
    assert!(stdout.contains(&result), "{stdout}");
    let why = "io_uring unavailable: OVERLAPPED_TEST_FORBID_URING is set; \
               OVERLAPPED_TEST_REQUIRE_URING is set, so it may not be skipped";
    assert_eq!(stdout.matches(why).count(), n, "{stdout}");
}
