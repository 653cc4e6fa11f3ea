//! The extension functions, files, APCs and timers from C, end to end: the
//! programs in `examples/` (an AcceptEx IOCP server, a TransmitFile file
//! server, a WSARecvMsg/IP_PKTINFO UDP server, a file copy through a
//! port, APCs and a waitable timer) and `tests/c/ext_contract.c` compile
//! with `cc -Wall -Werror` against the headers and run on both engines,
//! against `ovl echo-client`, Python clients and Python's `urllib`.
//!
//! Every process runs on loopback with a time bound (scaled by
//! `OVERLAPPED_TEST_TIME_SCALE`) and is killed if it outlives its test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

mod support;
use support::*;

/// Where the programs and their data go (under the target's temporary
/// directory).
const TMP: &str = "c-ext";

const PROGRAMS: [&str; 6] = [
    "examples/acceptex_server.c",
    "examples/transmit_file_server.c",
    "examples/udp_pktinfo_server.c",
    "examples/file_copy_port.c",
    "examples/apc_timer.c",
    "tests/c/ext_contract.c",
];

/// A program compiled against the headers and the shared library, once.
fn program(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let build = || {
        PROGRAMS
            .iter()
            .map(|src| {
                let stem = Path::new(src).file_stem().unwrap().to_string_lossy();
                let out = compile(&crate_dir().join(src), TMP, &stem, false);
                (stem.into_owned(), out)
            })
            .collect()
    };
    compiled(&BUILT, build, name)
}

/// A program of this file on `engine`.
fn c(name: &str, args: &[&str], engine: &str) -> Proc {
    Proc::spawn(&program(name), args, engine, None)
}

/// A Python client: `script` run with `args`.
fn python(script: &str, args: &[String]) -> Proc {
    Proc::start(
        Command::new("python3").arg("-c").arg(script).args(args),
        "a Python client".into(),
    )
}

/// Deterministic bytes that are not a repeating pattern of a power of two.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

#[test]
fn acceptex_server_serves_ovl_and_python_clients_reusing_its_sockets_on_both_engines() {
    let ovl = {
        let exe = std::env::current_exe().expect("test binary path");
        let p = exe.parent().and_then(Path::parent).unwrap().join("ovl");
        p.exists().then_some(p)
    };
    if ovl.is_none() {
        eprintln!("note: target/debug/ovl is not built (cargo build -p ovl): Python clients only");
    }
    let script = std::fs::read_to_string(crate_dir().join("tests/c/echo_client.py"))
        .expect("the Python echo client");
    for engine in engines() {
        // Four Python clients of two connections each, at once, and ovl's
        // connection: more than the server's pool of four accept sockets,
        // so each is reused after DisconnectEx(TF_REUSE_SOCKET).
        let clients = 8 + usize::from(ovl.is_some());
        let mut srv = c("acceptex_server", &["0", &clients.to_string()], engine);
        let port = srv.port();
        let pythons: Vec<Proc> = (0..4)
            .map(|_| python(&script, &[port.to_string(), "2".into()]))
            .collect();
        if let Some(ovl) = &ovl {
            let addr = format!("127.0.0.1:{port}");
            let (status, o) = Proc::start(
                Command::new(ovl)
                    .args(["echo-client", "--addr", &addr])
                    .args(["--count", "40", "--size", "3000"])
                    .env("OVERLAPPED_ENGINE", engine),
                "ovl echo-client".into(),
            )
            .finish(bound(30));
            assert!(
                status.success() && o.contains("0 mismatched"),
                "ovl echo-client against acceptex_server ({engine}): {o}"
            );
        }
        for p in pythons {
            let (status, o) = p.finish(bound(30));
            assert!(status.success(), "a Python client ({engine}): {o}");
        }
        let (status, out) = srv.finish(bound(20));
        assert!(status.success(), "acceptex_server ({engine}): {out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("served "))
            .unwrap_or_else(|| panic!("no summary: {out}"));
        let nums: Vec<usize> = line
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(nums.len(), 3, "{line}");
        assert_eq!(nums[0], clients, "{line}");
        assert_eq!(
            nums[1], clients,
            "every socket went back through DisconnectEx: {line}"
        );
        assert_eq!(
            nums[2], 0,
            "GetAcceptExSockaddrs gave wrong addresses: {line}"
        );
    }
}

const URLLIB: &str = r#"
import sys, urllib.request
port, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
tail = b"\n-- end of file --\n"
for query, want in [("", data), ("?offset=77777", data[77777:]), ("?offset=3&tail=1", data[3:] + tail)]:
    got = urllib.request.urlopen(f"http://127.0.0.1:{port}/{query}", timeout=20).read()
    if got != want:
        sys.exit(f"/{query}: {len(got)} bytes, {len(want)} expected, or other bytes")
print("urllib: 3 responses right")
"#;

#[test]
fn transmit_file_server_serves_its_file_to_python_urllib_on_both_engines() {
    let file = tmp_dir(TMP).join("transmit-data.bin");
    std::fs::write(&file, data(1_234_567, 7)).expect("the file to serve");
    for engine in engines() {
        let mut srv = c(
            "transmit_file_server",
            &["0", file.to_str().unwrap(), "3"],
            engine,
        );
        let port = srv.port();
        let (status, o) =
            python(URLLIB, &[port.to_string(), file.display().to_string()]).finish(bound(30));
        assert!(
            status.success(),
            "urllib against transmit_file_server ({engine}): {o}"
        );
        let (status, out) = srv.finish(bound(20));
        assert!(status.success(), "transmit_file_server ({engine}): {out}");
        let head = |len: usize| format!("Content-Length: {len}\r\n\r\n").len();
        let type_line = "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n".len();
        for (offset, len) in [
            (0, 1_234_567),
            (77777, 1_234_567 - 77777),
            (3, 1_234_564 + 19),
        ] {
            let sent = type_line + head(len) + len;
            assert!(
                out.contains(&format!("sent {sent} bytes from offset {offset}\n")),
                "TransmitFile's byte count (head, file, tail) for offset {offset}: {out}"
            );
        }
    }
    let _ = std::fs::remove_file(&file);
}

const UDP: &str = r#"
import socket, sys
port = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(20)
s.bind(("127.0.0.1", 0))
lo = socket.if_nametoindex("lo")
for i, msg in enumerate([b"first", b"hello", b"datagram three"]):
    s.sendto(msg, ("127.0.0.1", port))
    got, frm = s.recvfrom(2048)
    want = b"ctrunc" if i == 0 else b"127.0.0.1 %d " % lo + msg
    if got != want or frm != ("127.0.0.1", port):
        sys.exit(f"datagram {i}: {got!r} from {frm}, {want!r} expected")
print("udp: 3 replies right")
"#;

#[test]
fn udp_server_reads_ip_pktinfo_with_wsarecvmsg_and_answers_with_wsasendmsg_on_both_engines() {
    for engine in engines() {
        let mut srv = c("udp_pktinfo_server", &["0", "3"], engine);
        let port = srv.port();
        let (status, o) = python(UDP, &[port.to_string()]).finish(bound(30));
        assert!(status.success(), "the UDP client ({engine}): {o}");
        let (status, out) = srv.finish(bound(20));
        assert!(status.success(), "udp_pktinfo_server ({engine}): {out}");
    }
}

#[test]
fn file_copy_through_a_port_copies_every_byte_on_both_engines() {
    let dir = tmp_dir(TMP);
    for engine in engines() {
        // Empty, one byte, exactly the chunks in flight, and an odd size
        // larger than them.
        for (i, len) in [0usize, 1, 4 * 65536, 1_000_003].into_iter().enumerate() {
            let from = dir.join(format!("copy-from-{engine}-{i}"));
            let to = dir.join(format!("copy-to-{engine}-{i}"));
            let bytes = data(len, i as u32 + 1);
            std::fs::write(&from, &bytes).expect("the source file");
            let (status, out) = c(
                "file_copy_port",
                &[from.to_str().unwrap(), to.to_str().unwrap()],
                engine,
            )
            .finish(bound(30));
            assert!(
                status.success(),
                "file_copy_port of {len} bytes ({engine}): {out}"
            );
            assert!(out.contains(&format!("copied {len} bytes")), "{out}");
            assert!(
                std::fs::read(&to).expect("the copy") == bytes,
                "the copy of {len} bytes differs ({engine})"
            );
            let _ = std::fs::remove_file(&from);
            let _ = std::fs::remove_file(&to);
        }
    }
}

#[test]
fn apcs_timers_and_alertable_waits_behave_on_both_engines() {
    for engine in engines() {
        let (status, out) = c("apc_timer", &[], engine).finish(bound(30));
        assert!(
            status.success() && out.contains("all checks passed"),
            "apc_timer ({engine}):\n{out}"
        );
    }
}

#[test]
fn extension_function_contract_checks_pass_on_both_engines() {
    for engine in engines() {
        let (status, out) = c("ext_contract", &[], engine).finish(bound(30));
        assert!(
            status.success() && out.contains("all checks passed"),
            "ext_contract.c ({engine}):\n{out}"
        );
    }
}

/// A program of this file under valgrind's memcheck (on the poll engine).
fn valgrind(name: &str, args: &[&str]) -> Proc {
    Proc::valgrind(&program(name), args, None)
}

/// Every program of this file under valgrind's memcheck on the poll
/// engine; the servers serve a few clients only (valgrind is slow).
#[test]
fn every_extension_program_is_clean_under_valgrind_on_poll() {
    if Command::new("valgrind").arg("--version").output().is_err() {
        eprintln!("SKIPPED: valgrind is not installed");
        return;
    }
    let slow = bound(120);
    let dir = tmp_dir(TMP);
    let (from, to) = (dir.join("vg-from"), dir.join("vg-to"));
    std::fs::write(&from, data(300_001, 3)).expect("the source file");
    let runs: [(&str, Vec<&str>); 3] = [
        ("ext_contract", vec![]),
        (
            "file_copy_port",
            vec![from.to_str().unwrap(), to.to_str().unwrap()],
        ),
        ("apc_timer", vec![]),
    ];
    for (name, args) in runs {
        let (status, out) = valgrind(name, &args).finish(slow);
        assert!(status.success(), "{name} under valgrind:\n{out}");
    }

    // The AcceptEx server: two Python connections, one after the other
    // (the second into a socket reused after DisconnectEx).
    let script = std::fs::read_to_string(crate_dir().join("tests/c/echo_client.py"))
        .expect("the Python echo client");
    let mut srv = valgrind("acceptex_server", &["0", "2"]);
    let port = srv.port_within(slow);
    let (status, o) = python(&script, &[port.to_string(), "2".into()]).finish(slow);
    assert!(
        status.success(),
        "a Python client against acceptex_server: {o}"
    );
    let (status, out) = srv.finish(slow);
    assert!(status.success(), "acceptex_server under valgrind:\n{out}");

    // The TransmitFile server: urllib's three requests.
    let mut srv = valgrind("transmit_file_server", &["0", from.to_str().unwrap(), "3"]);
    let port = srv.port_within(slow);
    let (status, o) = python(URLLIB, &[port.to_string(), from.display().to_string()]).finish(slow);
    assert!(status.success(), "urllib against transmit_file_server: {o}");
    let (status, out) = srv.finish(slow);
    assert!(
        status.success(),
        "transmit_file_server under valgrind:\n{out}"
    );

    // The WSARecvMsg / WSASendMsg server: the three datagrams.
    let mut srv = valgrind("udp_pktinfo_server", &["0", "3"]);
    let port = srv.port_within(slow);
    let (status, o) = python(UDP, &[port.to_string()]).finish(slow);
    assert!(
        status.success(),
        "the UDP client against udp_pktinfo_server: {o}"
    );
    let (status, out) = srv.finish(slow);
    assert!(
        status.success(),
        "udp_pktinfo_server under valgrind:\n{out}"
    );

    let _ = std::fs::remove_file(&from);
    let _ = std::fs::remove_file(&to);
}
