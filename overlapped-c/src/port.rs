//! Completion ports: `CreateIoCompletionPort`,
//! `GetQueuedCompletionStatus(Ex)`, `PostQueuedCompletionStatus`.
//!
//! An operation's packet carries its `LPOVERLAPPED` as the library's tag
//! (`Notify::Port(ov)`); a posted packet carries the posted pointer as its
//! payload. Either way the call hands back the very pointer it was given.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::sync::atomic::Ordering;
use std::time::Duration;

use overlapped::{CompletionPort, Packet, PortWait};

use crate::bufs::WsaBufs;
use crate::errors::{self, *};
use crate::inflight::{self, Outcome};
use crate::table::{self, Obj};
use crate::types::*;

fn handle(h: usize) -> *mut c_void {
    std::ptr::without_provenance_mut(h)
}

/// A timeout in milliseconds (`INFINITE`: none).
pub fn timeout(ms: u32) -> Option<Duration> {
    (ms != INFINITE).then(|| Duration::from_millis(ms.into()))
}

/// `CreateIoCompletionPort`: with `INVALID_HANDLE_VALUE`, a new port
/// (`concurrency` 0: the number of processors); with a socket, associates
/// it with `existing` (or with a new port when `existing` is null) under
/// `key`. A socket belongs to one port (`ERROR_INVALID_PARAMETER` for a
/// second).
#[unsafe(no_mangle)]
pub extern "C" fn CreateIoCompletionPort(
    file: *mut c_void,
    existing: *mut c_void,
    key: usize,
    concurrency: u32,
) -> *mut c_void {
    let fail = |code| {
        errors::set_last(code);
        std::ptr::null_mut()
    };
    let (port, port_h) = if existing.is_null() {
        let p = CompletionPort::new(concurrency as usize);
        let h = table::insert(Obj::Port(p.clone()));
        (p, h)
    } else {
        match table::port(existing as usize) {
            Some(p) => (p, existing as usize),
            None => return fail(ERROR_INVALID_HANDLE),
        }
    };
    if file as usize == INVALID_HANDLE_VALUE {
        if !existing.is_null() {
            return fail(ERROR_INVALID_PARAMETER);
        }
        return handle(port_h);
    }
    if let Some(f) = crate::files::file(file as usize) {
        return match crate::files::associate(&port, &f, key) {
            Ok(()) => handle(port_h),
            Err(c) => {
                if existing.is_null() {
                    table::remove(port_h);
                }
                fail(c)
            }
        };
    }
    let Some(o) = table::socket(file as usize) else {
        if existing.is_null() {
            table::remove(port_h);
        }
        return fail(ERROR_INVALID_HANDLE);
    };
    match port.associate(&o.sock, key) {
        Ok(()) => {
            o.associated.store(true, Ordering::Release);
            handle(port_h)
        }
        Err(e) => {
            if existing.is_null() {
                table::remove(port_h);
            }
            fail(if e.kind() == std::io::ErrorKind::InvalidInput {
                ERROR_INVALID_PARAMETER
            } else {
                errors::both_codes(&e).1
            })
        }
    }
}

/// One packet as Windows reports it: key, `LPOVERLAPPED`, bytes and the
/// operation's `NTSTATUS`, with the `OVERLAPPED` written first.
fn take(p: Packet) -> (usize, *mut Overlapped, usize, Outcome) {
    let key = p.key;
    if p.is_posted() {
        let bytes = p.bytes;
        let ov = p.into_payload::<usize>().unwrap_or(0) as *mut Overlapped;
        let ok = Outcome {
            status: 0,
            wsa: 0,
            win32: 0,
            bytes,
            flags: 0,
            addr: None,
        };
        return (key, ov, bytes, ok);
    }
    let ov = p.tag as usize as *mut Overlapped;
    // The extension functions' and files' operations first (`ext/`).
    let out = match crate::ext::packet_outcome(ov, p) {
        Ok(out) => out,
        Err(p) => match p.into_completion::<WsaBufs>() {
            Ok(c) => Outcome::of(&c),
            // Every operation the C interface starts hands back `WsaBufs`;
            // the other operation kinds add their conversions here.
            Err(p) => {
                let codes = p.error.as_ref().map(errors::both_codes);
                Outcome {
                    status: errors::status_of(codes),
                    wsa: codes.map_or(0, |c| c.0),
                    win32: codes.map_or(0, |c| c.1),
                    bytes: p.bytes,
                    flags: 0,
                    addr: None,
                }
            }
        },
    };
    let from = inflight::reported(ov, None);
    // SAFETY: the program keeps an operation's `OVERLAPPED` (and `lpFrom`)
    // valid until its completion is reported, which is now (Windows'
    // contract); the tag is the pointer its start was given.
    let h_event = unsafe {
        inflight::finish(ov, &out, from);
        (*ov).h_event as usize
    };
    if h_event != 0 {
        if let Some(e) = table::event(h_event) {
            e.event.set();
        }
    }
    (key, ov, out.bytes, out)
}

/// `GetQueuedCompletionStatus`: `TRUE` with a successful packet; `FALSE`
/// with `*ov` set for a failed operation (`GetLastError` is its Win32
/// code), `FALSE` with `*ov` null on a timeout (`WAIT_TIMEOUT`) or a port
/// closed under the wait (`ERROR_ABANDONED_WAIT_0`).
///
/// # Safety
/// The out pointers are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetQueuedCompletionStatus(
    port: *mut c_void,
    bytes: *mut u32,
    key: *mut usize,
    ov: *mut *mut Overlapped,
    ms: u32,
) -> c_int {
    if bytes.is_null() || key.is_null() || ov.is_null() {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    let Some(p) = table::port(port as usize) else {
        errors::set_last(ERROR_INVALID_HANDLE);
        return FALSE;
    };
    let got = p.get_queued(timeout(ms));
    // SAFETY: the out pointers are writable (the caller's promise).
    unsafe {
        match got {
            Ok(Some(packet)) => {
                let (k, o, n, out) = take(packet);
                (*bytes, *key, *ov) = (n as u32, k, o);
                if out.win32 != 0 {
                    errors::set_last(out.win32);
                    return FALSE;
                }
                TRUE
            }
            Ok(None) => {
                *ov = std::ptr::null_mut();
                errors::set_last(WAIT_TIMEOUT);
                FALSE
            }
            Err(_) => {
                *ov = std::ptr::null_mut();
                errors::set_last(ERROR_ABANDONED_WAIT_0);
                FALSE
            }
        }
    }
}

/// `GetQueuedCompletionStatusEx`: up to `count` packets; each entry's
/// `Internal` is the operation's `NTSTATUS` (the call succeeds also for
/// failed operations). `alertable` is not supported yet: the wait runs no
/// completion routines.
///
/// # Safety
/// `entries` is writable for `count` entries; `removed` writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetQueuedCompletionStatusEx(
    port: *mut c_void,
    entries: *mut OverlappedEntry,
    count: u32,
    removed: *mut u32,
    ms: u32,
    alertable: c_int,
) -> c_int {
    if entries.is_null() || removed.is_null() || count == 0 {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    let Some(p) = table::port(port as usize) else {
        errors::set_last(ERROR_INVALID_HANDLE);
        return FALSE;
    };
    match p.get_queued_many_ex(count as usize, timeout(ms), alertable != 0) {
        Ok(PortWait::IoCompletion) => {
            // SAFETY: writable (the caller's promise).
            unsafe { *removed = 0 };
            errors::set_last(WAIT_IO_COMPLETION);
            FALSE
        }
        Ok(PortWait::Got(packets)) => {
            let n = packets.len();
            for (i, packet) in packets.into_iter().enumerate() {
                let (k, o, bytes, out) = take(packet);
                // SAFETY: `i < count` entries are writable.
                unsafe {
                    entries.add(i).write(OverlappedEntry {
                        completion_key: k,
                        overlapped: o,
                        internal: out.status as usize,
                        bytes: bytes as u32,
                    })
                };
            }
            // SAFETY: writable (the caller's promise).
            unsafe { *removed = n as u32 };
            TRUE
        }
        // `PortWait::Timeout`.
        Ok(_) => {
            errors::set_last(WAIT_TIMEOUT);
            FALSE
        }
        Err(_) => {
            errors::set_last(ERROR_ABANDONED_WAIT_0);
            FALSE
        }
    }
}

/// `PostQueuedCompletionStatus`: a packet with these values; `ov` comes
/// back as it is (it may be any pointer, or null).
#[unsafe(no_mangle)]
pub extern "C" fn PostQueuedCompletionStatus(
    port: *mut c_void,
    bytes: u32,
    key: usize,
    ov: *mut Overlapped,
) -> c_int {
    let Some(p) = table::port(port as usize) else {
        errors::set_last(ERROR_INVALID_HANDLE);
        return FALSE;
    };
    match p.post(key, bytes as usize, ov as usize) {
        Ok(()) => TRUE,
        Err(_) => {
            errors::set_last(ERROR_INVALID_HANDLE);
            FALSE
        }
    }
}
