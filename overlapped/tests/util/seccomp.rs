//! A seccomp filter that refuses `io_uring_setup` with `EPERM`, as container
//! runtimes' default profiles do: how the tests make a host without
//! io_uring.

use std::os::unix::process::CommandExt;
use std::process::Command;

use seccompiler::{BpfProgram, SeccompAction, SeccompFilter};

/// The filter: `io_uring_setup` fails with `EPERM`; every other call is
/// allowed.
pub fn no_uring_filter() -> BpfProgram {
    SeccompFilter::new(
        vec![(libc::SYS_io_uring_setup, vec![])]
            .into_iter()
            .collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        std::env::consts::ARCH.try_into().expect("supported arch"),
    )
    .expect("filter")
    .try_into()
    .expect("compile filter")
}

/// Installs [`no_uring_filter`] on every thread of this process.
pub fn forbid_uring_here() {
    seccompiler::apply_filter_all_threads(&no_uring_filter()).expect("install seccomp filter");
}

/// Makes `cmd` run its program under [`no_uring_filter`] (installed in the
/// child between fork and exec, so the whole program runs without
/// io_uring).
pub fn without_uring(cmd: &mut Command) -> &mut Command {
    let filter = no_uring_filter();
    // The hook runs in the forked child before exec, where only
    // async-signal-safe work is allowed: `apply_filter` makes two system
    // calls (`prctl`, `seccomp`) on the filter compiled above in the parent
    // and allocates nothing on success; its failure is mapped to an error
    // built from a code, without allocating.
    // SAFETY: so the hook does only async-signal-safe work.
    unsafe {
        cmd.pre_exec(move || {
            seccompiler::apply_filter(&filter)
                .map_err(|_| std::io::Error::from_raw_os_error(libc::EPERM))
        })
    }
}
