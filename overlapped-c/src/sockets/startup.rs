//! Start-up and clean-up (`WSAStartup`, `WSACleanup`), the engine they
//! make available, and the thread's last error.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::sync::atomic::{AtomicUsize, Ordering};

use overlapped::Engine;

use super::fail;
use crate::errors::{self, *};
use crate::table;
use crate::types::*;

static STARTED: AtomicUsize = AtomicUsize::new(0);

/// The engine, once `WSAStartup` ran.
pub fn engine() -> Result<Engine, u32> {
    if STARTED.load(Ordering::Acquire) == 0 {
        return Err(WSANOTINITIALISED);
    }
    Engine::global().map_err(|_| WSASYSNOTREADY)
}

/// `WSAStartup`: as Windows' Winsock 2, which serves versions 1.0 to 2.2:
/// a request in that range gets it (`wVersion`), a higher one 2.2, one
/// below 1.0 `WSAVERNOTSUPPORTED`; `wHighVersion` is 2.2. Makes the engine
/// (`OVERLAPPED_ENGINE` picks it): `WSASYSNOTREADY` when none can run.
///
/// # Safety
/// `data` is null or points at a writable `WSADATA`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAStartup(version: u16, data: *mut WsaData) -> c_int {
    if data.is_null() {
        return WSAEFAULT as c_int;
    }
    let (major, minor) = (version & 0xFF, version >> 8);
    let granted = if (major, minor) > (2, 2) {
        0x0202
    } else {
        version
    };
    let engine = Engine::global();
    let mut d = WsaData {
        version: granted,
        high_version: 0x0202,
        max_sockets: 0,
        max_udp_dg: 0,
        vendor_info: std::ptr::null_mut(),
        description: [0; 257],
        system_status: [0; 129],
    };
    let desc = b"overlapped (Winsock overlapped I/O on Linux)";
    d.description[..desc.len()].copy_from_slice(desc);
    let status = match &engine {
        Ok(e) => format!("Running on the {} engine", e.kind().name()),
        Err(e) => format!("No engine: {e}"),
    };
    let n = status.len().min(128);
    d.system_status[..n].copy_from_slice(&status.as_bytes()[..n]);
    // SAFETY: `data` is writable (the caller's promise).
    unsafe { data.write(d) };
    if major < 1 {
        return WSAVERNOTSUPPORTED as c_int;
    }
    if engine.is_err() {
        return WSASYSNOTREADY as c_int;
    }
    STARTED.fetch_add(1, Ordering::AcqRel);
    0
}

/// `WSACleanup`: the last one closes every socket still open.
#[unsafe(no_mangle)]
pub extern "C" fn WSACleanup() -> c_int {
    let prev = STARTED.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    match prev {
        Err(_) => fail(WSANOTINITIALISED),
        Ok(1) => {
            for s in table::remove_sockets() {
                let _ = s.sock.close();
            }
            0
        }
        Ok(_) => 0,
    }
}

/// `WSAGetLastError` (the same value as `GetLastError`).
#[unsafe(no_mangle)]
pub extern "C" fn WSAGetLastError() -> c_int {
    errors::last() as c_int
}

/// `WSASetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn WSASetLastError(code: c_int) {
    errors::set_last(code as u32);
}

/// `GetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn GetLastError() -> u32 {
    errors::last()
}

/// `SetLastError`.
#[unsafe(no_mangle)]
pub extern "C" fn SetLastError(code: u32) {
    errors::set_last(code);
}
