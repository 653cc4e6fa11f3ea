//! `docs/SPEC.md` n01–n03: engine choice. The fallback test runs a child
//! process in which a seccomp filter makes `io_uring_setup` fail with
//! `EPERM` (as container runtimes' default profiles do), and checks that
//! `auto` falls back to the poll engine, says why, and still echoes.

use std::process::Command;

use overlapped::probe::EngineChoice;
use overlapped::{Engine, EngineKind, MsgFlags, Notify};

#[path = "util/mod.rs"]
mod util;

const CHILD: &str = "OVERLAPPED_SECCOMP_CHILD";

fn echo_round_trip(engine: &Engine) {
    let (c, s) = util::tcp_pair(engine);
    c.send(b"ping".to_vec(), MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    let got = s
        .recv(vec![0u8; 16], MsgFlags::empty(), Notify::None)
        .unwrap()
        .wait()
        .unwrap();
    assert_eq!(&got.data[..], b"ping");
}

fn n01_auto_picks_uring_where_it_runs() {
    let e = Engine::builder()
        .choice(EngineChoice::Auto)
        .build()
        .unwrap();
    match overlapped::probe::probe_uring() {
        Ok(()) => assert_eq!(e.kind(), EngineKind::Uring),
        Err(why) => {
            assert_eq!(e.kind(), EngineKind::Poll);
            assert!(e.reason().contains(&why.to_string()));
        }
    }
    assert!(!e.reason().is_empty());
}

fn n02_env_forces_poll_and_rejects_nonsense() {
    assert_eq!("poll".parse::<EngineChoice>().unwrap(), EngineChoice::Poll);
    assert_eq!(
        "uring".parse::<EngineChoice>().unwrap(),
        EngineChoice::Uring
    );
    assert!("fast".parse::<EngineChoice>().is_err());
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_child", "--nocapture"])
        .env("OVERLAPPED_ENGINE", "poll")
        .env(CHILD, "env")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("ENV-ENGINE poll"),
        "{stdout}"
    );
}

/// The child half of n02: only does something when started by it.
#[test]
fn env_child() {
    if std::env::var(CHILD).as_deref() != Ok("env") {
        return;
    }
    let e = Engine::new().unwrap();
    println!("ENV-ENGINE {}", e.kind());
}

fn n03_seccomp_refusal_falls_back_to_poll() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args([
            "--exact",
            "seccomp_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, "1")
        .env_remove("OVERLAPPED_ENGINE")
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("CHILD-ENGINE poll"), "{stdout}");
    assert!(
        stdout.contains("EPERM") && stdout.contains("seccomp"),
        "reason must name the refusal: {stdout}"
    );
    assert!(stdout.contains("FORCED-URING-ERROR"), "{stdout}");
}

/// The child half of n03: only does something when started by it.
#[test]
fn seccomp_child() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    util::forbid_uring_here();

    let forced = Engine::builder().choice(EngineChoice::Uring).build();
    let err = forced.expect_err("forcing uring under the filter must fail");
    println!("FORCED-URING-ERROR {err}");

    let engine = Engine::builder()
        .choice(EngineChoice::Auto)
        .build()
        .expect("auto engine");
    assert_eq!(engine.kind(), EngineKind::Poll);
    echo_round_trip(&engine);
    println!("CHILD-ENGINE {} REASON {}", engine.kind(), engine.reason());
}

util::cases! {
    engine_free n01_auto_picks_uring_where_it_runs,
    engine_free n02_env_forces_poll_and_rejects_nonsense,
    engine_free n03_seccomp_refusal_falls_back_to_poll,
}
