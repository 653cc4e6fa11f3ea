//! The probe ladder: can io_uring run here, and if not, exactly why.

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
