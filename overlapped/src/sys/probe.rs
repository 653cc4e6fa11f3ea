//! The probe ladder: can io_uring run here, and if not, exactly why; and
//! what this kernel does with registered (fixed) buffers on sockets.

#![allow(unsafe_code)]

use std::fmt;
use std::io;

use io_uring::{IoUring, opcode};

use super::EngineKind;

/// The opcodes the io_uring engine needs, by name and code.
pub const REQUIRED_OPCODES: &[(&str, u8)] = &[
    ("SENDMSG", opcode::SendMsg::CODE),
    ("RECVMSG", opcode::RecvMsg::CODE),
    ("ACCEPT", opcode::Accept::CODE),
    ("POLL_ADD", opcode::PollAdd::CODE),
    ("ASYNC_CANCEL", opcode::AsyncCancel::CODE),
];

/// Why io_uring cannot be used on this system.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum UringUnavailable {
    /// `kernel.io_uring_disabled` is set (1: only root or `io_uring_group`;
    /// 2: nobody).
    DisabledBySysctl(u32),
    /// `io_uring_setup` failed with `EPERM`: a seccomp filter (Docker's and
    /// containerd's default profiles) or missing permissions.
    PermissionDenied,
    /// `io_uring_setup` does not exist (`ENOSYS`): an old kernel, gVisor, or a
    /// seccomp filter that answers `ENOSYS`.
    NotInKernel,
    /// Not enough lockable memory for the rings (`ENOMEM`; `RLIMIT_MEMLOCK`
    /// on kernels before 5.12).
    NoMemory,
    /// The kernel lacks features or opcodes the engine needs.
    Missing(String),
    /// Any other setup failure, with its OS error.
    Other(String),
}

impl fmt::Display for UringUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UringUnavailable::DisabledBySysctl(v) => write!(
                f,
                "io_uring is disabled by sysctl kernel.io_uring_disabled={v}"
            ),
            UringUnavailable::PermissionDenied => f.write_str(
                "io_uring_setup was refused with EPERM (a seccomp filter, e.g. a container's default profile, or missing permissions)",
            ),
            UringUnavailable::NotInKernel => f.write_str(
                "io_uring_setup is not available (ENOSYS: kernel too old, gVisor, or a seccomp filter)",
            ),
            UringUnavailable::NoMemory => f.write_str(
                "io_uring_setup failed with ENOMEM (not enough lockable memory: raise RLIMIT_MEMLOCK)",
            ),
            UringUnavailable::Missing(what) => write!(f, "io_uring lacks {what}"),
            UringUnavailable::Other(e) => write!(f, "io_uring_setup failed: {e}"),
        }
    }
}

/// Reads `kernel.io_uring_disabled` (absent on kernels before 6.6: `None`).
pub fn io_uring_sysctl() -> Option<u32> {
    std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

impl std::error::Error for UringUnavailable {}

impl From<UringUnavailable> for io::Error {
    fn from(u: UringUnavailable) -> io::Error {
        let kind = match u {
            UringUnavailable::PermissionDenied | UringUnavailable::DisabledBySysctl(_) => {
                io::ErrorKind::PermissionDenied
            }
            UringUnavailable::NotInKernel | UringUnavailable::Missing(_) => {
                io::ErrorKind::Unsupported
            }
            UringUnavailable::NoMemory => io::ErrorKind::OutOfMemory,
            UringUnavailable::Other(_) => io::ErrorKind::Other,
        };
        io::Error::new(kind, u)
    }
}

fn classify(e: &io::Error) -> UringUnavailable {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => match io_uring_sysctl() {
            Some(v) if v != 0 => UringUnavailable::DisabledBySysctl(v),
            _ => UringUnavailable::PermissionDenied,
        },
        Some(libc::ENOSYS) => UringUnavailable::NotInKernel,
        Some(libc::ENOMEM) => UringUnavailable::NoMemory,
        _ => UringUnavailable::Other(e.to_string()),
    }
}

/// Support of each required opcode, from the kernel's probe.
pub fn opcode_support() -> Result<Vec<(&'static str, bool)>, UringUnavailable> {
    let ring = IoUring::new(4).map_err(|e| classify(&e))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| UringUnavailable::Missing(format!("the opcode probe ({e})")))?;
    Ok(REQUIRED_OPCODES
        .iter()
        .map(|&(name, code)| (name, probe.is_supported(code)))
        .collect())
}

/// Runs the ladder: setup, features, opcodes.
pub fn probe_uring() -> Result<(), UringUnavailable> {
    let ring = IoUring::new(4).map_err(|e| classify(&e))?;
    let p = ring.params();
    if !p.is_feature_nodrop() {
        return Err(UringUnavailable::Missing(
            "IORING_FEAT_NODROP (kernel 5.5+)".into(),
        ));
    }
    if !p.is_feature_ext_arg() {
        return Err(UringUnavailable::Missing(
            "IORING_FEAT_EXT_ARG (kernel 5.11+)".into(),
        ));
    }
    drop(ring);
    let missing: Vec<&str> = opcode_support()?
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(n, _)| n)
        .collect();
    if !missing.is_empty() {
        return Err(UringUnavailable::Missing(format!(
            "opcodes {}",
            missing.join(", ")
        )));
    }
    Ok(())
}

/// How the engine is chosen: `auto` (io_uring when the probe passes, else
/// poll), or forced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum EngineChoice {
    /// io_uring when it can be set up here, else poll, with the reason.
    #[default]
    Auto,
    /// io_uring or an error that says why not.
    Uring,
    /// The poll engine.
    Poll,
}

impl EngineChoice {
    /// The choice's name, as `OVERLAPPED_ENGINE` accepts it.
    pub fn name(self) -> &'static str {
        match self {
            EngineChoice::Auto => "auto",
            EngineChoice::Uring => "uring",
            EngineChoice::Poll => "poll",
        }
    }

    /// Reads `OVERLAPPED_ENGINE` (`auto`, `uring`, `poll`); unset is `Auto`.
    pub fn from_env() -> io::Result<Self> {
        match std::env::var("OVERLAPPED_ENGINE") {
            Err(_) => Ok(EngineChoice::Auto),
            Ok(v) => v.parse(),
        }
    }
}

/// Forcing one kind of engine.
impl From<EngineKind> for EngineChoice {
    fn from(kind: EngineKind) -> Self {
        match kind {
            EngineKind::Uring => EngineChoice::Uring,
            EngineKind::Poll => EngineChoice::Poll,
        }
    }
}

impl fmt::Display for EngineChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EngineChoice {
    type Err = io::Error;
    fn from_str(s: &str) -> io::Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(EngineChoice::Auto),
            "uring" | "io_uring" | "io-uring" => Ok(EngineChoice::Uring),
            "poll" | "epoll" => Ok(EngineChoice::Poll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown engine {other:?}: expected auto, uring or poll"),
            )),
        }
    }
}

/// Resolves a choice to an engine kind and the reason for it.
pub fn resolve(choice: EngineChoice) -> io::Result<(EngineKind, String)> {
    match choice {
        EngineChoice::Poll => Ok((EngineKind::Poll, "poll engine requested".into())),
        EngineChoice::Uring => match probe_uring() {
            Ok(()) => Ok((EngineKind::Uring, "io_uring requested".into())),
            Err(why) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!("the io_uring engine was requested but cannot run here: {why}"),
            )),
        },
        EngineChoice::Auto => match probe_uring() {
            Ok(()) => Ok((EngineKind::Uring, "io_uring is available".into())),
            Err(why) => Ok((EngineKind::Poll, format!("fell back to poll: {why}"))),
        },
    }
}

/// What this kernel does with registered (fixed) buffers on a TCP socket,
/// as measured once per process by [`fixed_support`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct FixedSupport {
    /// `IORING_OP_SEND` takes `IORING_RECVSEND_FIXED_BUF` (measured, not
    /// used: the engine sends with `SEND_ZC`).
    pub send: bool,
    /// `IORING_OP_SEND_ZC` with `IORING_RECVSEND_FIXED_BUF` sends from a
    /// registered buffer (with `MSG_NOSIGNAL`: never a `SIGPIPE`), its
    /// notification following: the engine's fixed-buffer send.
    pub send_zc: bool,
    /// `IORING_OP_READ_FIXED` on a non-blocking socket with no data waits
    /// for data (rather than completing with `EAGAIN`): the engine's
    /// fixed-buffer receive.
    pub read_waits: bool,
    /// The results of the probe's requests, for `ovl doctor`: the fixed
    /// `SEND`, the fixed `SEND_ZC`, the fixed read of a waiting byte, the
    /// fixed read that had to wait (`-errno` on failure; all 0 when no
    /// ring could be set up).
    pub raw: [i32; 4],
}

impl FixedSupport {
    /// Whether the engine uses registered buffers at all here (for a send
    /// or for a receive).
    pub fn any(&self) -> bool {
        self.send_zc || self.read_waits
    }
}

/// Measures [`FixedSupport`] on a private ring and a TCP loopback pair
/// (once per process, about 50 ms; later calls return the first answer).
/// All false when io_uring cannot run or registration fails.
pub fn fixed_support() -> FixedSupport {
    static ONCE: std::sync::OnceLock<FixedSupport> = std::sync::OnceLock::new();
    *ONCE.get_or_init(|| measure_fixed().unwrap_or_default())
}

fn measure_fixed() -> io::Result<FixedSupport> {
    use io_uring::types::Fd;
    use std::io::Write;
    use std::os::fd::AsRawFd;
    const FIXED_BUF: u16 = 4; // IORING_RECVSEND_FIXED_BUF
    // Leaked (64 bytes, once per process): whatever happens to a request
    // below (an error returns early while one may be in the kernel), the
    // memory it names is never freed.
    let mem: &'static mut [u8] = Box::leak(vec![0u8; 64].into_boxed_slice());
    // Kept reachable, so leak checkers see the leak is meant.
    static KEPT: std::sync::atomic::AtomicPtr<u8> =
        std::sync::atomic::AtomicPtr::new(std::ptr::null_mut());
    KEPT.store(mem.as_mut_ptr(), std::sync::atomic::Ordering::Relaxed);
    mem[0] = b'z';
    mem[1] = b'w';
    let (a, b) = tcp_pair()?;
    let mut ring = IoUring::new(4)?;
    let base = mem.as_mut_ptr();
    let iov = [libc::iovec {
        iov_base: base.cast(),
        iov_len: mem.len(),
    }];
    // SAFETY: `mem` is never freed, nor touched in user space until the ring is dropped.
    unsafe { ring.submitter().register_buffers(&iov)? };
    // Pushes one request and reaps its completions: two when the first
    // says more follow (a zero-copy send's notification).
    let mut run = |e: io_uring::squeue::Entry| -> io::Result<i32> {
        // Every completion of the request is reaped below before the next
        // request is pushed.
        // SAFETY: the entry points into `mem`'s registered range, never freed.
        unsafe { ring.submission().push(&e) }.map_err(|_| io::Error::other("probe ring full"))?;
        // Bounded: a request that never completes fails the probe (its
        // memory is leaked, and the ring's drop cancels it).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let ts = io_uring::types::Timespec::new().nsec(100_000_000);
        let args = io_uring::types::SubmitArgs::new().timespec(&ts);
        let mut got: Vec<(i32, u32)> = Vec::new();
        // The result, and a notification when the result says one follows.
        let over = |got: &[(i32, u32)]| {
            let notified = got.iter().any(|c| io_uring::cqueue::notif(c.1));
            got.iter().any(|c| {
                !io_uring::cqueue::notif(c.1) && (notified || !io_uring::cqueue::more(c.1))
            })
        };
        while !over(&got) {
            if std::time::Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "a fixed-buffer probe request did not complete",
                ));
            }
            match ring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME | libc::EINTR)) => {}
                Err(e) => return Err(e),
            }
            got.extend(ring.completion().map(|c| (c.result(), c.flags())));
        }
        let result = got.iter().find(|c| !io_uring::cqueue::notif(c.1));
        Ok(result.map_or(0, |c| c.0))
    };
    let send = opcode::Send::new(Fd(a.as_raw_fd()), base, 1)
        .flags(libc::MSG_NOSIGNAL)
        .ioprio(FIXED_BUF)
        .buf_group(0) // the SQE's `buf_index`
        .build();
    let sent = run(send)?;
    let zc = opcode::SendZc::new(Fd(a.as_raw_fd()), base.wrapping_add(1), 1)
        .buf_index(Some(0))
        .flags(libc::MSG_NOSIGNAL)
        .build();
    let sent_zc = run(zc)?;
    // One or two bytes wait in `b`: read them with a fixed read.
    let want = (sent == 1) as u32 + (sent_zc == 1) as u32;
    if want == 0 {
        let _ = rustix::io::write(&a, b"x");
    }
    let read = opcode::ReadFixed::new(Fd(b.as_raw_fd()), base.wrapping_add(8), 8, 0).build();
    let got = run(read)?;
    // Nothing left to read: does a fixed read wait, or fail with EAGAIN?
    // A write after 50 ms ends the wait if it waits.
    let writer = {
        let a = a.try_clone()?;
        std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = (&a).write_all(b"y");
        })
    };
    let read = opcode::ReadFixed::new(Fd(b.as_raw_fd()), base.wrapping_add(16), 8, 0).build();
    let empty = run(read)?;
    let _ = writer.join();
    drop(ring);
    let landed = &mem[8..8 + got.max(0) as usize];
    Ok(FixedSupport {
        send: sent == 1 && landed.first() == Some(&b'z'),
        send_zc: sent_zc == 1 && landed.last() == Some(&b'w'),
        read_waits: empty == 1 && mem[16] == b'y',
        raw: [sent, sent_zc, got, empty],
    })
}

/// A connected non-blocking TCP loopback pair.
fn tcp_pair() -> io::Result<(std::net::TcpStream, std::net::TcpStream)> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let a = std::net::TcpStream::connect(l.local_addr()?)?;
    let (b, _) = l.accept()?;
    a.set_nonblocking(true)?;
    b.set_nonblocking(true)?;
    Ok((a, b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn fixed_support_is_measured() {
        let f = super::fixed_support();
        eprintln!("fixed support: {f:?}");
        if super::probe_uring().is_ok() {
            assert!(f.raw != [0; 4], "the probe ran");
        }
    }
}
