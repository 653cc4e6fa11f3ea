//! `SetConsoleCtrlHandler`: Ctrl+C (`SIGINT`) as Windows delivers it, to
//! handler routines called on a thread of their own, the last one added
//! first, until one returns `TRUE`. When none does, the default applies:
//! the process ends (by `SIGINT`, as a Linux program would).

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::errors::{self, ERROR_INVALID_PARAMETER};
use crate::types::{FALSE, TRUE};

/// `PHANDLER_ROUTINE`: `BOOL WINAPI HandlerRoutine(DWORD dwCtrlType)`.
pub type HandlerRoutine = unsafe extern "C" fn(u32) -> c_int;

/// `CTRL_C_EVENT`.
pub const CTRL_C_EVENT: u32 = 0;

static HANDLERS: Mutex<Vec<HandlerRoutine>> = Mutex::new(Vec::new());
/// `SetConsoleCtrlHandler(NULL, TRUE)`: Ctrl+C is ignored.
static IGNORE: AtomicBool = AtomicBool::new(false);
/// The write end of the pipe the signal handler writes to.
static PIPE_W: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_sigint(_: c_int) {
    let fd = PIPE_W.load(Ordering::Relaxed);
    let b = 1u8;
    // SAFETY: `write` is async-signal-safe; one byte from a live local.
    let _ = unsafe { libc::write(fd, (&raw const b).cast(), 1) };
}

/// Runs the handlers for each Ctrl+C the signal handler passed on.
fn dispatcher(read_fd: c_int) {
    loop {
        let mut b = 0u8;
        // SAFETY: reads one byte into a live local from the pipe's read end,
        // which this thread owns.
        let n = unsafe { libc::read(read_fd, (&raw mut b).cast(), 1) };
        if n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        if n <= 0 {
            return;
        }
        if IGNORE.load(Ordering::Acquire) {
            continue;
        }
        let hs: Vec<HandlerRoutine> = HANDLERS.lock().unwrap_or_else(|p| p.into_inner()).clone();
        // SAFETY: the program's handler routines, called as Windows calls
        // them (on another thread, with the event's type).
        let handled = hs.iter().rev().any(|h| unsafe { h(CTRL_C_EVENT) } != 0);
        if !handled {
            // SAFETY: restores the default action and raises the signal
            // again, which ends the process.
            unsafe {
                libc::signal(libc::SIGINT, libc::SIG_DFL);
                libc::raise(libc::SIGINT);
            }
        }
    }
}

/// Installs the `SIGINT` handler and the dispatcher thread, once.
fn install() -> Result<(), u32> {
    static DONE: OnceLock<Result<(), u32>> = OnceLock::new();
    *DONE.get_or_init(|| {
        let mut fds = [0 as c_int; 2];
        // SAFETY: `fds` has room for the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(errors::both_codes(&std::io::Error::last_os_error()).1);
        }
        PIPE_W.store(fds[1], Ordering::Release);
        let r = fds[0];
        std::thread::Builder::new()
            .name("console-ctrl".into())
            .spawn(move || dispatcher(r))
            .map_err(|e| errors::both_codes(&e).1)?;
        // SAFETY: a zeroed `sigaction` with our handler, `SA_RESTART` so
        // the program's blocking calls are not interrupted.
        let r = unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigint as extern "C" fn(c_int) as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&raw mut sa.sa_mask);
            libc::sigaction(libc::SIGINT, &raw const sa, std::ptr::null_mut())
        };
        if r != 0 {
            return Err(errors::both_codes(&std::io::Error::last_os_error()).1);
        }
        Ok(())
    })
}

/// `SetConsoleCtrlHandler`: adds (`add` TRUE) or removes a handler for
/// Ctrl+C (`SIGINT`); with a NULL handler, `add` TRUE ignores Ctrl+C and
/// FALSE stops ignoring it. Only `CTRL_C_EVENT` is delivered.
#[unsafe(no_mangle)]
pub extern "C" fn SetConsoleCtrlHandler(handler: Option<HandlerRoutine>, add: c_int) -> c_int {
    if let Err(c) = install() {
        errors::set_last(c);
        return FALSE;
    }
    let Some(h) = handler else {
        IGNORE.store(add != 0, Ordering::Release);
        return TRUE;
    };
    let mut hs = HANDLERS.lock().unwrap_or_else(|p| p.into_inner());
    if add != 0 {
        hs.push(h);
        return TRUE;
    }
    match hs.iter().rposition(|&x| std::ptr::fn_addr_eq(x, h)) {
        Some(i) => {
            hs.remove(i);
            TRUE
        }
        None => {
            errors::set_last(ERROR_INVALID_PARAMETER);
            FALSE
        }
    }
}
