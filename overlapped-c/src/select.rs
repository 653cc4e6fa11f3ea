//! `WSAEventSelect` and `WSAEnumNetworkEvents` over the library's
//! [`Socket::event_select`](overlapped::Socket::event_select) and
//! [`Socket::enum_network_events`](overlapped::Socket::enum_network_events):
//! a `WSAEVENT` of the handle table is the very [`overlapped::Event`] the
//! socket is selected with, so `WSAWaitForMultipleEvents` on it watches
//! the socket (the library's waits look at the sockets selected into the
//! events they block on).

#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_void};
use std::sync::atomic::Ordering;

use overlapped::{Event, NetworkEvents};

use crate::errors::*;
use crate::sockets::{fail, sock};
use crate::table::{self, SockObj};

/// `FD_MAX_EVENTS`: the length of `WSANETWORKEVENTS.iErrorCode`.
pub const FD_MAX_EVENTS: usize = 10;
/// `FD_ALL_EVENTS`: every event bit Windows defines.
pub const FD_ALL_EVENTS: u32 = (1 << FD_MAX_EVENTS) - 1;

/// `WSANETWORKEVENTS`: `long lNetworkEvents; int iErrorCode[FD_MAX_EVENTS];`
/// (Windows' `long` is 32 bits).
#[repr(C)]
#[derive(Debug, Default)]
pub struct WsaNetworkEvents {
    /// `lNetworkEvents`: the `FD_*` bits recorded.
    pub network_events: i32,
    /// `iErrorCode[FD_*_BIT]`: the Winsock code of each (0: none).
    pub error_code: [i32; FD_MAX_EVENTS],
}

/// Selects `mask` (`FD_*` bits) of `o` into `event`: the library's part
/// (the bits past `FD_CLOSE` — QoS, routing and address-list changes —
/// are kept in the mask the socket reports but never recorded), the
/// non-blocking mode Windows sets, and the selection an accepted socket
/// inherits.
pub fn select(o: &SockObj, event: Option<Event>, mask: u32) -> Result<(), u32> {
    let ev = NetworkEvents::from_bits_truncate(mask);
    let event = match event {
        Some(e) => e,
        // A zero mask cancels; Windows ignores the event then.
        None => Event::new(),
    };
    o.sock.event_select(&event, ev).map_err(|e| wsa_code(&e))?;
    let mut sel = o.selected.lock().unwrap_or_else(|p| p.into_inner());
    *sel = (mask != 0).then_some((event, mask));
    // Windows makes a selected socket non-blocking, and cancelling the
    // selection does not make it blocking again.
    o.nonblocking.store(true, Ordering::Relaxed);
    Ok(())
}

/// `WSAEventSelect(s, hEventObject, lNetworkEvents)`: the socket records
/// the network events of the mask and sets the event for each (see the
/// header for the rules); 0 cancels (the event is then not looked at).
/// The socket becomes non-blocking. `WSAENOTSOCK`; `WSAEINVAL` for an
/// event handle that is not an event (with a non-zero mask) or bits
/// Windows does not define.
#[unsafe(no_mangle)]
pub extern "C" fn WSAEventSelect(s: usize, h: *mut c_void, mask: c_long) -> c_int {
    let r = sock(s).and_then(|o| {
        let mask = u32::try_from(mask).map_err(|_| WSAEINVAL)?;
        if mask & !FD_ALL_EVENTS != 0 {
            return Err(WSAEINVAL);
        }
        let event = if mask == 0 {
            None
        } else {
            Some(table::event(h as usize).ok_or(WSAEINVAL)?.event)
        };
        select(&o, event, mask)
    });
    match r {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

/// `WSAEnumNetworkEvents(s, hEventObject, lpNetworkEvents)`: the events
/// recorded since the last call and the Winsock code of each; the record
/// is cleared and `hEventObject` (optional) reset in the same step.
///
/// # Safety
/// `out` is null (`WSAEFAULT`) or writable for a `WSANETWORKEVENTS`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAEnumNetworkEvents(
    s: usize,
    h: *mut c_void,
    out: *mut WsaNetworkEvents,
) -> c_int {
    let r = sock(s).and_then(|o| {
        if out.is_null() {
            return Err(WSAEFAULT);
        }
        let reset = if h.is_null() {
            None
        } else {
            Some(table::event(h as usize).ok_or(WSAEINVAL)?.event)
        };
        let rec = o
            .sock
            .enum_network_events(reset.as_ref())
            .map_err(|e| wsa_code(&e))?;
        let mut w = WsaNetworkEvents {
            network_events: rec.events().bits() as i32,
            ..WsaNetworkEvents::default()
        };
        for ev in rec.events().iter() {
            let bit = ev.bits().trailing_zeros() as usize;
            w.error_code[bit] = rec.error_code(ev) as i32;
        }
        // SAFETY: writable (the caller's promise; null was refused).
        unsafe { out.write(w) };
        Ok(())
    });
    match r {
        Ok(()) => 0,
        Err(c) => fail(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_is_laid_out_as_windows_lays_it_out() {
        assert_eq!(std::mem::size_of::<WsaNetworkEvents>(), 44);
        assert_eq!(std::mem::offset_of!(WsaNetworkEvents, error_code), 4);
        assert_eq!(FD_ALL_EVENTS, 0x3FF);
        assert_eq!(NetworkEvents::CLOSE.bits(), 1 << 5);
    }
}
