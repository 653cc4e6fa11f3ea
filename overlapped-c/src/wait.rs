//! Event objects, waits and sleeps, and `CloseHandle`.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use overlapped::{Event, SleepOutcome, WaitMode, WaitOutcome, sleep_ex, wait_for_events};

use crate::errors::{self, *};
use crate::inflight;
use crate::port::timeout;
use crate::table::{self, EventObj, Obj};
use crate::types::*;

fn handle(h: usize) -> *mut c_void {
    std::ptr::without_provenance_mut(h)
}

/// `WSACreateEvent`: a manual-reset event, not set.
#[unsafe(no_mangle)]
pub extern "C" fn WSACreateEvent() -> *mut c_void {
    handle(table::insert(Obj::Event(EventObj {
        event: Event::new(),
        auto_reset: false,
    })))
}

/// `CreateEventA`: manual or automatic reset (an automatic-reset event is
/// reset by the wait that returns it); names are not supported (null
/// only).
///
/// # Safety
/// `name` is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateEventA(
    _attrs: *mut c_void,
    manual: c_int,
    initial: c_int,
    name: *const i8,
) -> *mut c_void {
    if !name.is_null() {
        errors::set_last(ERROR_NOT_SUPPORTED);
        return std::ptr::null_mut();
    }
    let event = Event::new();
    if initial != 0 {
        event.set();
    }
    handle(table::insert(Obj::Event(EventObj {
        event,
        auto_reset: manual == 0,
    })))
}

/// `CreateEventW`: as `CreateEventA`.
///
/// # Safety
/// `name` is null.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateEventW(
    attrs: *mut c_void,
    manual: c_int,
    initial: c_int,
    name: *const u16,
) -> *mut c_void {
    // SAFETY: the same contract (a null name either way).
    unsafe { CreateEventA(attrs, manual, initial, name.cast()) }
}

fn with_event(h: *mut c_void, f: impl FnOnce(&Event)) -> c_int {
    match table::event(h as usize) {
        Some(e) => {
            f(&e.event);
            TRUE
        }
        None => {
            errors::set_last(ERROR_INVALID_HANDLE);
            FALSE
        }
    }
}

/// `WSASetEvent`.
#[unsafe(no_mangle)]
pub extern "C" fn WSASetEvent(h: *mut c_void) -> c_int {
    with_event(h, Event::set)
}

/// `WSAResetEvent`.
#[unsafe(no_mangle)]
pub extern "C" fn WSAResetEvent(h: *mut c_void) -> c_int {
    with_event(h, Event::reset)
}

/// `SetEvent`.
#[unsafe(no_mangle)]
pub extern "C" fn SetEvent(h: *mut c_void) -> c_int {
    with_event(h, Event::set)
}

/// `ResetEvent`.
#[unsafe(no_mangle)]
pub extern "C" fn ResetEvent(h: *mut c_void) -> c_int {
    with_event(h, Event::reset)
}

/// `WSACloseEvent`: operations still bound to it set it as before.
#[unsafe(no_mangle)]
pub extern "C" fn WSACloseEvent(h: *mut c_void) -> c_int {
    if table::event(h as usize).is_none() {
        errors::set_last(ERROR_INVALID_HANDLE);
        return FALSE;
    }
    table::remove(h as usize);
    TRUE
}

/// `CloseHandle`: an event, a port (waiters wake with
/// `ERROR_ABANDONED_WAIT_0`, queued packets are dropped), a thread handle
/// (the thread runs on), or a socket (as `closesocket`).
#[unsafe(no_mangle)]
pub extern "C" fn CloseHandle(h: *mut c_void) -> c_int {
    match table::get(h as usize) {
        Some(Obj::Socket(_)) => c_int::from(crate::sockets::closesocket(h as usize) == 0),
        Some(Obj::Port(p)) => {
            table::remove(h as usize);
            p.close();
            TRUE
        }
        Some(_) => {
            table::remove(h as usize);
            TRUE
        }
        None => {
            errors::set_last(ERROR_INVALID_HANDLE);
            FALSE
        }
    }
}

/// The events behind wait handles: events and threads (set when the thread
/// has returned).
fn wait_events(handles: &[usize]) -> Result<Vec<(Event, bool)>, u32> {
    handles
        .iter()
        .map(|&h| match table::get(h) {
            Some(Obj::Event(e)) => Ok((e.event, e.auto_reset)),
            Some(Obj::Thread(t)) => Ok((t.done.clone(), false)),
            Some(Obj::Socket(s)) => Ok((
                overlapped::AsWaitable::waitable_event(&s.sock).into_owned(),
                false,
            )),
            Some(_) => Err(ERROR_NOT_SUPPORTED),
            None => Err(ERROR_INVALID_HANDLE),
        })
        .collect()
}

/// The wait of all the `Wait*` calls: `WAIT_OBJECT_0 + i`, `WAIT_TIMEOUT`,
/// `WAIT_IO_COMPLETION` or `WAIT_FAILED`. Operations bound to the events
/// that are set have their `OVERLAPPED`s written before it returns.
fn wait(handles: &[usize], all: bool, ms: u32, alertable: bool) -> u32 {
    if handles.is_empty() || handles.len() > MAXIMUM_WAIT_OBJECTS as usize {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return WAIT_FAILED;
    }
    let evs = match wait_events(handles) {
        Ok(e) => e,
        Err(c) => {
            errors::set_last(c);
            return WAIT_FAILED;
        }
    };
    let events: Vec<Event> = evs.iter().map(|e| e.0.clone()).collect();
    let mode = if all { WaitMode::All } else { WaitMode::Any };
    let r = wait_for_events(&events, mode, timeout(ms), alertable);
    inflight::harvest_events(handles);
    match r {
        Ok(WaitOutcome::Event(i)) => {
            let reset: &[(Event, bool)] = if all { &evs } else { &evs[i..=i] };
            for (e, auto) in reset {
                if *auto {
                    e.reset();
                }
            }
            WAIT_OBJECT_0 + i as u32
        }
        Ok(WaitOutcome::Timeout) => WAIT_TIMEOUT,
        Ok(WaitOutcome::IoCompletion) => WAIT_IO_COMPLETION,
        Ok(_) => WAIT_FAILED,
        Err(e) => {
            errors::set_last(errors::both_codes(&e).1);
            WAIT_FAILED
        }
    }
}

/// Reads a handle array.
///
/// # Safety
/// `hs` is readable for `n` handles.
unsafe fn handles(n: u32, hs: *const *mut c_void) -> Option<Vec<usize>> {
    if hs.is_null() || n == 0 || n > MAXIMUM_WAIT_OBJECTS {
        return None;
    }
    // SAFETY: the caller's promise.
    let hs = unsafe { std::slice::from_raw_parts(hs, n as usize) };
    Some(hs.iter().map(|h| *h as usize).collect())
}

/// `WSAWaitForMultipleEvents` (at most `WSA_MAXIMUM_WAIT_EVENTS`, 64).
///
/// # Safety
/// `events` is readable for `n` handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAWaitForMultipleEvents(
    n: u32,
    events: *const *mut c_void,
    wait_all: c_int,
    ms: u32,
    alertable: c_int,
) -> u32 {
    // SAFETY: the caller's promise.
    match unsafe { handles(n, events) } {
        Some(hs) => wait(&hs, wait_all != 0, ms, alertable != 0),
        None => {
            errors::set_last(ERROR_INVALID_PARAMETER);
            WAIT_FAILED
        }
    }
}

/// `WaitForMultipleObjectsEx` over events and threads.
///
/// # Safety
/// `hs` is readable for `n` handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WaitForMultipleObjectsEx(
    n: u32,
    hs: *const *mut c_void,
    wait_all: c_int,
    ms: u32,
    alertable: c_int,
) -> u32 {
    // SAFETY: the same contract.
    unsafe { WSAWaitForMultipleEvents(n, hs, wait_all, ms, alertable) }
}

/// `WaitForMultipleObjects` over events and threads.
///
/// # Safety
/// `hs` is readable for `n` handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WaitForMultipleObjects(
    n: u32,
    hs: *const *mut c_void,
    wait_all: c_int,
    ms: u32,
) -> u32 {
    // SAFETY: the same contract.
    unsafe { WSAWaitForMultipleEvents(n, hs, wait_all, ms, FALSE) }
}

/// `WaitForSingleObjectEx` on an event or a thread.
#[unsafe(no_mangle)]
pub extern "C" fn WaitForSingleObjectEx(h: *mut c_void, ms: u32, alertable: c_int) -> u32 {
    wait(&[h as usize], false, ms, alertable != 0)
}

/// `WaitForSingleObject` on an event or a thread.
#[unsafe(no_mangle)]
pub extern "C" fn WaitForSingleObject(h: *mut c_void, ms: u32) -> u32 {
    wait(&[h as usize], false, ms, false)
}

/// `SleepEx`: 0 when the time passed, `WAIT_IO_COMPLETION` when alertable
/// and completion routines of this thread ran.
#[unsafe(no_mangle)]
pub extern "C" fn SleepEx(ms: u32, alertable: c_int) -> u32 {
    match sleep_ex(timeout(ms), alertable != 0) {
        SleepOutcome::IoCompletion => WAIT_IO_COMPLETION,
        _ => 0,
    }
}

/// `Sleep` (not alertable).
#[unsafe(no_mangle)]
pub extern "C" fn Sleep(ms: u32) {
    match timeout(ms) {
        Some(d) => std::thread::sleep(d),
        None => loop {
            std::thread::park();
        },
    }
}
