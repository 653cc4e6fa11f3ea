//! The helpers of the C interface's test binaries (`tests/programs.rs`,
//! `tests/ext.rs`, each with `mod support;`): time bounds, the engines to
//! run on, compiling a C program against the headers and this build's
//! library, and child processes that are killed when their test ends.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

/// `OVERLAPPED_TEST_TIME_SCALE` times `secs`.
pub fn bound(secs: u64) -> Duration {
    let scale: u32 = std::env::var("OVERLAPPED_TEST_TIME_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(1);
    Duration::from_secs(secs) * scale
}

/// The engines to run on: `uring` unless io_uring cannot run here or
/// `OVERLAPPED_TEST_FORBID_URING` is set (then it is skipped with the
/// reason, or fails under `OVERLAPPED_TEST_REQUIRE_URING`), and `poll`:
/// the same switches as the library's tests (`overlapped/tests/util`).
pub fn engines() -> Vec<&'static str> {
    let flag = |name: &str| std::env::var_os(name).is_some_and(|v| v != "0");
    let mut v = Vec::new();
    let why = if flag("OVERLAPPED_TEST_FORBID_URING") {
        Err("OVERLAPPED_TEST_FORBID_URING is set".to_string())
    } else {
        overlapped::probe::probe_uring().map_err(|e| e.to_string())
    };
    match why {
        Ok(_) => v.push("uring"),
        Err(why) => {
            assert!(
                !flag("OVERLAPPED_TEST_REQUIRE_URING"),
                "io_uring unavailable: {why}"
            );
            eprintln!("SKIPPED: io_uring unavailable: {why}");
        }
    }
    v.push("poll");
    v
}

/// `target/<profile>`: the test binary lives in its `deps/`.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_path_buf()
}

pub fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/deps`: where the build for these tests puts the
/// library's `.so` and `.a` (`target/<profile>/` gets copies only from a
/// `cargo build`, so they may be stale).
pub fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent().expect("deps directory").to_path_buf()
}

/// The directory `name` under the target's temporary directory, made.
pub fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(&d).expect("a directory for the programs");
    d
}

/// Compiles one C file with `cc -Wall -Werror` against the headers and the
/// library (shared, or the static archive) this test run built, into
/// `dir` (under the target's temporary directory) as `name`.
pub fn compile(src: &Path, dir: &str, name: &str, static_lib: bool) -> PathBuf {
    let lib = lib_dir();
    let out = tmp_dir(dir).join(name);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args(["-Wall", "-Werror", "-g", "-I"])
        .arg(crate_dir().join("include"))
        .arg(src)
        .arg("-o")
        .arg(&out);
    if static_lib {
        let a = lib.join("liboverlapped_c.a");
        assert!(
            a.exists(),
            "{} is missing: the crate builds it",
            a.display()
        );
        cc.arg(a).args(["-lpthread", "-ldl", "-lm"]);
    } else {
        let so = lib.join("liboverlapped_c.so");
        assert!(
            so.exists(),
            "{} is missing: the crate builds it",
            so.display()
        );
        // DT_RPATH (not RUNPATH): the library of this build wins over
        // any `LD_LIBRARY_PATH`, which cargo points at `target/<profile>`
        // (where an older copy may lie).
        cc.arg("-L")
            .arg(&lib)
            .arg("-loverlapped_c")
            .arg(format!("-Wl,--disable-new-dtags,-rpath,{}", lib.display()));
    }
    let o = cc.output().expect("run the C compiler (cc)");
    assert!(
        o.status.success(),
        "cc -Wall -Werror {} failed:\n{}",
        src.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The program `name` of the set `build` compiles, which runs once per
/// test binary (the first call fills `built`).
pub fn compiled(
    built: &'static OnceLock<Vec<(String, PathBuf)>>,
    build: impl FnOnce() -> Vec<(String, PathBuf)>,
    name: &str,
) -> PathBuf {
    built
        .get_or_init(build)
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .expect("a known program")
}

/// A child process, killed and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
    /// Its stdout, once [`port`](Proc::port) read the first line of it.
    out: Option<Box<dyn BufRead + Send>>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    /// Starts `cmd` with stdout and stderr piped and stdin empty.
    pub fn start(cmd: &mut Command, what: String) -> Proc {
        Proc::run(cmd.stdin(Stdio::null()), what)
    }

    /// Starts `cmd` with stdout and stderr piped, stdin as `cmd` says.
    fn run(cmd: &mut Command, what: String) -> Proc {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
        Proc {
            child,
            what,
            out: None,
        }
    }

    /// Runs `bin args` on `engine` (its own `liboverlapped_c` by its
    /// rpath), with `stdin` written to its input when given.
    pub fn spawn(bin: &Path, args: &[&str], engine: &str, stdin: Option<&str>) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env("OVERLAPPED_ENGINE", engine)
            .env_remove("LD_LIBRARY_PATH");
        let what = format!("{} {} ({engine})", bin.display(), args.join(" "));
        let Some(input) = stdin else {
            return Proc::start(&mut cmd, what);
        };
        let mut p = Proc::run(cmd.stdin(Stdio::piped()), what);
        let mut i = p.child.stdin.take().expect("stdin");
        i.write_all(input.as_bytes()).expect("write stdin");
        p
    }

    /// `bin args` under valgrind's memcheck (definite leaks and memory
    /// errors make the run exit with 9), on the poll engine: valgrind does
    /// not see the kernel write a receive's bytes through io_uring's shared
    /// memory.
    pub fn valgrind(bin: &Path, args: &[&str], stdin: Option<&str>) -> Proc {
        let mut all = vec![
            "-q",
            "--error-exitcode=9",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite",
        ];
        all.push(bin.to_str().expect("a UTF-8 path"));
        all.extend_from_slice(args);
        let mut p = Proc::spawn(Path::new("valgrind"), &all, "poll", stdin);
        p.what = format!("{} under valgrind", bin.display());
        p
    }

    /// The port a server prints first ("listening on port N").
    pub fn port(&mut self) -> u16 {
        self.port_within(bound(10))
    }

    /// [`port`](Proc::port), waiting at most `limit` for it.
    pub fn port_within(&mut self, limit: Duration) -> u16 {
        let mut out = self
            .out
            .take()
            .unwrap_or_else(|| Box::new(BufReader::new(self.child.stdout.take().expect("stdout"))));
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            let _ = tx.send(line);
            out
        });
        let line = rx
            .recv_timeout(limit)
            .unwrap_or_else(|_| panic!("{} printed no port", self.what));
        self.out = Some(reader.join().expect("reader"));
        line.strip_prefix("listening on port ")
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{} printed {line:?}", self.what))
    }

    /// Waits for the exit within `limit`; the rest of stdout, then stderr.
    pub fn finish(mut self, limit: Duration) -> (ExitStatus, String) {
        let mut out: Option<Box<dyn Read + Send>> = match self.out.take() {
            Some(o) => Some(Box::new(o)),
            None => self.child.stdout.take().map(|o| Box::new(o) as _),
        };
        let mut err = self.child.stderr.take();
        // Both read at once: a child that fills one pipe while the other is
        // read does not stall.
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut s);
            }
            s
        });
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut s);
            }
            s + &err.join().unwrap_or_default()
        });
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return (status, reader.join().unwrap_or_default());
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {limit:?}; its output:\n{}",
                    self.what,
                    reader.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
