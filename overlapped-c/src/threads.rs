//! Threads (`CreateThread`, `_beginthreadex`) on the system's threads, and
//! the few system queries the programs use.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_uint, c_void};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use overlapped::Event;

use crate::errors::{self, *};
use crate::table::{self, Obj, ThreadObj};
use crate::types::*;

/// The start routine and its argument, moved to the new thread.
struct Start {
    f: ThreadStart,
    arg: usize,
}

/// Starts a thread; its handle value, or 0 with the last error set.
///
/// # Safety
/// `f(arg)` may be called on another thread.
unsafe fn spawn(stack: usize, f: ThreadStart, arg: *mut c_void, flags: u32, id: *mut u32) -> usize {
    // CREATE_SUSPENDED and the other creation flags are not supported
    // (STACK_SIZE_PARAM_IS_A_RESERVATION only changes the meaning of the
    // size).
    if flags & !0x0001_0000 != 0 {
        errors::set_last(ERROR_NOT_SUPPORTED);
        return 0;
    }
    let obj = Arc::new(ThreadObj {
        done: Event::new(),
        exit_code: AtomicU32::new(259),
    });
    let start = Start {
        f,
        arg: arg as usize,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let o = obj.clone();
    let mut b = std::thread::Builder::new();
    if stack > 0 {
        b = b.stack_size(stack.max(64 * 1024));
    }
    let spawned = b.spawn(move || {
        crate::apc::register_thread(&o);
        // SAFETY: `gettid` has no preconditions.
        let _ = tx.send(unsafe { libc::gettid() } as u32);
        let Start { f, arg } = start;
        // SAFETY: the caller's promise: the program's start routine with
        // its argument.
        let code = unsafe { f(arg as *mut c_void) };
        o.exit_code.store(code, Ordering::Release);
        o.done.set();
    });
    match spawned {
        Ok(_) => {
            let tid = rx.recv().unwrap_or(0);
            if !id.is_null() {
                // SAFETY: writable (the caller's promise).
                unsafe { *id = tid };
            }
            table::insert(Obj::Thread(obj))
        }
        Err(e) => {
            errors::set_last(errors::both_codes(&e).1);
            0
        }
    }
}

/// `CreateThread`: the thread runs `f(arg)`; the handle is signalled
/// when it returns (`WaitForSingleObject`), `GetExitCodeThread` gives the
/// value. Security attributes are ignored; `CREATE_SUSPENDED` is not
/// supported.
///
/// # Safety
/// `f(arg)` may run on another thread; `id` is null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateThread(
    _attrs: *mut c_void,
    stack: usize,
    f: Option<ThreadStart>,
    arg: *mut c_void,
    flags: u32,
    id: *mut u32,
) -> *mut c_void {
    let Some(f) = f else {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return std::ptr::null_mut();
    };
    // SAFETY: the caller's promise.
    std::ptr::without_provenance_mut(unsafe { spawn(stack, f, arg, flags, id) })
}

/// `_beginthreadex`: as `CreateThread`; 0 on failure.
///
/// # Safety
/// As `CreateThread`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn _beginthreadex(
    _security: *mut c_void,
    stack: c_uint,
    f: Option<ThreadStart>,
    arg: *mut c_void,
    flags: c_uint,
    id: *mut c_uint,
) -> usize {
    let Some(f) = f else {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return 0;
    };
    // SAFETY: the caller's promise.
    unsafe { spawn(stack as usize, f, arg, flags, id) }
}

/// `GetExitCodeThread`: `STILL_ACTIVE` (259) while it runs.
///
/// # Safety
/// `code` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetExitCodeThread(h: *mut c_void, code: *mut u32) -> c_int {
    match (table::get(h as usize), code.is_null()) {
        (Some(Obj::Thread(t)), false) => {
            // SAFETY: writable (the caller's promise).
            unsafe { *code = t.exit_code.load(Ordering::Acquire) };
            TRUE
        }
        _ => {
            errors::set_last(ERROR_INVALID_HANDLE);
            FALSE
        }
    }
}

/// `GetCurrentThreadId`: the kernel's thread id.
#[unsafe(no_mangle)]
pub extern "C" fn GetCurrentThreadId() -> u32 {
    // SAFETY: `gettid` has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// `GetTickCount`: milliseconds of the monotonic clock (wraps at 2^32).
#[unsafe(no_mangle)]
pub extern "C" fn GetTickCount() -> u32 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a writable `timespec`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    (ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000) as u32
}

/// `GetSystemInfo`: the processor count is what this process may use.
///
/// # Safety
/// `info` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetSystemInfo(info: *mut SystemInfo) {
    if info.is_null() {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    // SAFETY: `sysconf` has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u32;
    let mask = if cpus >= 64 {
        usize::MAX
    } else {
        (1usize << cpus) - 1
    };
    // SAFETY: writable (the caller's promise).
    unsafe {
        info.write(SystemInfo {
            processor_architecture: if cfg!(target_arch = "aarch64") { 12 } else { 9 },
            reserved: 0,
            page_size: page,
            min_app_address: std::ptr::without_provenance_mut(0x10000),
            max_app_address: std::ptr::without_provenance_mut(0x7FFF_FFFE_FFFF),
            active_processor_mask: mask,
            number_of_processors: cpus,
            processor_type: if cfg!(target_arch = "aarch64") {
                0
            } else {
                8664
            },
            allocation_granularity: 65536,
            processor_level: 6,
            processor_revision: 0,
        })
    };
}
