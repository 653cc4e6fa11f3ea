//! Asynchronous procedure calls and waitable timers: `QueueUserAPC`,
//! `CreateWaitableTimer`, `SetWaitableTimer` with a completion routine,
//! `CancelWaitableTimer`. Both run their routines in the target thread's
//! alertable waits (`SleepEx`, `WaitFor*ObjectEx`,
//! `WSAWaitForMultipleEvents`, `GetQueuedCompletionStatusEx` with
//! `fAlertable`), which then return `WAIT_IO_COMPLETION`.

#![allow(unsafe_code)]

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use overlapped::{ThreadHandle, WaitableTimer, queue_routine};

use crate::errors::{self, *};
use crate::table::{self, Obj, ThreadObj};
use crate::types::*;

/// `PAPCFUNC`.
pub type ApcFn = unsafe extern "C" fn(usize);
/// `PTIMERAPCROUTINE`.
pub type TimerApcFn = unsafe extern "C" fn(*mut c_void, u32, u32);

/// `GetCurrentThread()`'s pseudo-handle.
const CURRENT_THREAD: usize = usize::MAX - 1;

/// `ERROR_GEN_FAILURE`: the thread has exited.
const ERROR_GEN_FAILURE: u32 = 31;

fn threads() -> MutexGuard<'static, HashMap<usize, ThreadHandle>> {
    static MAP: OnceLock<Mutex<HashMap<usize, ThreadHandle>>> = OnceLock::new();
    MAP.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}

/// Called by a thread `CreateThread` made, first thing on it: routines
/// can be queued to its handle from now on.
pub fn register_thread(obj: &Arc<ThreadObj>) {
    let mut m = threads();
    m.retain(|_, t| !t.has_exited());
    m.insert(Arc::as_ptr(obj) as usize, ThreadHandle::current());
}

/// The thread a handle names.
fn thread_of(h: usize) -> Result<ThreadHandle, u32> {
    if h == CURRENT_THREAD {
        return Ok(ThreadHandle::current());
    }
    match table::get(h) {
        Some(Obj::Thread(t)) => threads()
            .get(&(Arc::as_ptr(&t) as usize))
            .cloned()
            .ok_or(ERROR_GEN_FAILURE),
        _ => Err(ERROR_INVALID_HANDLE),
    }
}

/// `QueueUserAPC`: `f(data)` runs on the thread in its next alertable
/// wait. 0 with `ERROR_INVALID_HANDLE` for a handle that is not a thread,
/// `ERROR_GEN_FAILURE` for a thread that has exited.
///
/// # Safety
/// `f(data)` may be called on that thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn QueueUserAPC(f: Option<ApcFn>, thread: *mut c_void, data: usize) -> u32 {
    let Some(f) = f else {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return 0;
    };
    let t = match thread_of(thread as usize) {
        Ok(t) => t,
        Err(c) => {
            errors::set_last(c);
            return 0;
        }
    };
    // SAFETY: the caller's promise: the program's routine with its value,
    // on the thread it named.
    match queue_routine(&t, move || unsafe { f(data) }) {
        Ok(()) => 1,
        Err(_) => {
            errors::set_last(ERROR_GEN_FAILURE);
            0
        }
    }
}

/// `CreateWaitableTimerA`: a timer that is not set. Names are not
/// supported (null only); `bManualReset` does not matter (the timer is
/// not a waitable object here: it signals through its routine).
///
/// # Safety
/// `name` is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateWaitableTimerA(
    _attrs: *mut c_void,
    _manual: c_int,
    name: *const i8,
) -> *mut c_void {
    if !name.is_null() {
        errors::set_last(ERROR_NOT_SUPPORTED);
        return std::ptr::null_mut();
    }
    std::ptr::without_provenance_mut(table::insert(Obj::Timer(Arc::new(WaitableTimer::new()))))
}

/// `CreateWaitableTimerW`: as `CreateWaitableTimerA`.
///
/// # Safety
/// `name` is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateWaitableTimerW(
    attrs: *mut c_void,
    manual: c_int,
    name: *const u16,
) -> *mut c_void {
    // SAFETY: the same contract.
    unsafe { CreateWaitableTimerA(attrs, manual, name.cast()) }
}

fn timer(h: *mut c_void) -> Option<Arc<WaitableTimer>> {
    match table::get(h as usize) {
        Some(Obj::Timer(t)) => Some(t),
        _ => None,
    }
}

/// 100-nanosecond intervals from 1601 to 1970 (`FILETIME`'s epoch).
const FILETIME_1970: u64 = 116_444_736_000_000_000;

fn filetime_now() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    FILETIME_1970 + (d.as_nanos() / 100) as u64
}

/// `SetWaitableTimer`: due in `-*due` × 100 ns (a negative value), or at
/// the `FILETIME` `*due` (a positive one); then every `period` ms (0:
/// once). `routine(arg, low, high)` (the `FILETIME` of the run) runs in an
/// alertable wait of the calling thread; without a routine the timer runs
/// nothing. `fResume` is ignored.
///
/// # Safety
/// `due` readable; `routine(arg, ..)` may be called on this thread.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SetWaitableTimer(
    h: *mut c_void,
    due: *const i64,
    period: i32,
    routine: Option<TimerApcFn>,
    arg: *mut c_void,
    _resume: c_int,
) -> c_int {
    let Some(t) = timer(h) else {
        errors::set_last(ERROR_INVALID_HANDLE);
        return FALSE;
    };
    if due.is_null() || period < 0 {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    // SAFETY: readable (the caller's promise).
    let d = unsafe { due.read_unaligned() };
    let when = if d < 0 {
        Duration::from_nanos(d.unsigned_abs().saturating_mul(100))
    } else {
        Duration::from_nanos(
            (d as u64)
                .saturating_sub(filetime_now())
                .saturating_mul(100),
        )
    };
    let period = (period > 0).then(|| Duration::from_millis(period as u64));
    let arg = arg as usize;
    let r = t.set(when, period, move || {
        if let Some(f) = routine {
            let ft = filetime_now();
            // SAFETY: the caller's promise: the program's routine with its
            // argument, on the thread that set the timer.
            unsafe { f(arg as *mut c_void, ft as u32, (ft >> 32) as u32) };
        }
    });
    match r {
        Ok(()) => TRUE,
        Err(e) => {
            errors::set_last(errors::both_codes(&e).1);
            FALSE
        }
    }
}

/// `CancelWaitableTimer`: no more runs (not even one already due).
#[unsafe(no_mangle)]
pub extern "C" fn CancelWaitableTimer(h: *mut c_void) -> c_int {
    match timer(h) {
        Some(t) => {
            t.cancel();
            TRUE
        }
        None => {
            errors::set_last(ERROR_INVALID_HANDLE);
            FALSE
        }
    }
}
