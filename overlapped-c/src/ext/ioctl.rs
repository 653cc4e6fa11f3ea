//! `WSAIoctl`: `SIO_GET_EXTENSION_FUNCTION_POINTER` (the extension
//! functions by GUID) and the `ioctlsocket` codes.

#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};

use super::accept::{AcceptEx, GetAcceptExSockaddrs};
use super::connect::{connect_ex, disconnect_ex};
use super::msg::{WSASendMsg, WsaMsg, wsa_recv_msg};
use super::transmit::{TransmitFile, TransmitFileBuffers};
use crate::errors::*;
use crate::sockets::{fail, sock};
use crate::types::*;

/// `SIO_GET_EXTENSION_FUNCTION_POINTER`.
pub const SIO_GET_EXTENSION_FUNCTION_POINTER: u32 = 0xC800_0006;

/// The GUIDs of `SIO_GET_EXTENSION_FUNCTION_POINTER`, as their 16 bytes
/// in memory (`Data1`..`Data3` little-endian).
fn guid(d1: u32, d2: u16, d3: u16, d4: [u8; 8]) -> [u8; 16] {
    let mut g = [0u8; 16];
    g[..4].copy_from_slice(&d1.to_le_bytes());
    g[4..6].copy_from_slice(&d2.to_le_bytes());
    g[6..8].copy_from_slice(&d3.to_le_bytes());
    g[8..].copy_from_slice(&d4);
    g
}

/// The function an extension GUID names.
fn extension(g: &[u8; 16]) -> Option<usize> {
    let ms = [0x95, 0xca, 0x00, 0x80, 0x5f, 0x48, 0xa1, 0x92];
    type AcceptExFn = unsafe extern "C" fn(
        usize,
        usize,
        *mut c_void,
        u32,
        u32,
        u32,
        *mut u32,
        *mut Overlapped,
    ) -> c_int;
    type SockaddrsFn = unsafe extern "C" fn(
        *mut c_void,
        u32,
        u32,
        u32,
        *mut *mut libc::sockaddr,
        *mut c_int,
        *mut *mut libc::sockaddr,
        *mut c_int,
    );
    type ConnectExFn = unsafe extern "C" fn(
        usize,
        *const libc::sockaddr,
        c_int,
        *mut c_void,
        u32,
        *mut u32,
        *mut Overlapped,
    ) -> c_int;
    type DisconnectExFn = unsafe extern "C" fn(usize, *mut Overlapped, u32, u32) -> c_int;
    type TransmitFileFn = unsafe extern "C" fn(
        usize,
        *mut c_void,
        u32,
        u32,
        *mut Overlapped,
        *const TransmitFileBuffers,
        u32,
    ) -> c_int;
    type RecvMsgFn = unsafe extern "C" fn(
        usize,
        *mut WsaMsg,
        *mut u32,
        *mut Overlapped,
        Option<CompletionRoutine>,
    ) -> c_int;
    type SendMsgFn = unsafe extern "C" fn(
        usize,
        *mut WsaMsg,
        u32,
        *mut u32,
        *mut Overlapped,
        Option<CompletionRoutine>,
    ) -> c_int;
    let table: [([u8; 16], usize); 7] = [
        (
            guid(0xb536_7df1, 0xcbac, 0x11cf, ms),
            AcceptEx as AcceptExFn as usize,
        ),
        (
            guid(0xb536_7df2, 0xcbac, 0x11cf, ms),
            GetAcceptExSockaddrs as SockaddrsFn as usize,
        ),
        (
            guid(
                0x25a2_07b9,
                0xddf3,
                0x4660,
                [0x8e, 0xe9, 0x76, 0xe5, 0x8c, 0x74, 0x06, 0x3e],
            ),
            connect_ex as ConnectExFn as usize,
        ),
        (
            guid(
                0x7fda_2e11,
                0x8630,
                0x436f,
                [0xa0, 0x31, 0xf5, 0x36, 0xa6, 0xee, 0xc1, 0x57],
            ),
            disconnect_ex as DisconnectExFn as usize,
        ),
        (
            guid(0xb536_7df0, 0xcbac, 0x11cf, ms),
            TransmitFile as TransmitFileFn as usize,
        ),
        (
            guid(
                0xf689_d7c8,
                0x6f1f,
                0x436b,
                [0x8a, 0x53, 0xe5, 0x4f, 0xe3, 0x51, 0xc3, 0x22],
            ),
            wsa_recv_msg as RecvMsgFn as usize,
        ),
        (
            guid(
                0xa441_e712,
                0x754f,
                0x43ca,
                [0x84, 0xa7, 0x0d, 0xee, 0x44, 0xcf, 0x60, 0x6d],
            ),
            WSASendMsg as SendMsgFn as usize,
        ),
    ];
    table.iter().find(|(id, _)| id == g).map(|(_, f)| *f)
}

/// `WSAIoctl`: `SIO_GET_EXTENSION_FUNCTION_POINTER` (the GUID in, the
/// function pointer out: `AcceptEx`, `GetAcceptExSockaddrs`, `ConnectEx`,
/// `DisconnectEx`, `TransmitFile`, `WSARecvMsg`, `WSASendMsg`), and
/// `FIONBIO` / `FIONREAD` as `ioctlsocket`. Each completes at once: `ov`
/// and `routine` are not used. Other codes: `WSAEINVAL`.
///
/// # Safety
/// `inbuf` readable for `inlen` bytes, `outbuf` writable for `outlen`
/// bytes, `returned` null or writable.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSAIoctl(
    s: usize,
    code: u32,
    inbuf: *mut c_void,
    inlen: u32,
    outbuf: *mut c_void,
    outlen: u32,
    returned: *mut u32,
    _ov: *mut Overlapped,
    _routine: Option<CompletionRoutine>,
) -> c_int {
    if let Err(c) = sock(s) {
        return fail(c);
    }
    let out_n = |n: u32| {
        if !returned.is_null() {
            // SAFETY: null or writable (the caller's promise).
            unsafe { *returned = n };
        }
    };
    match code {
        SIO_GET_EXTENSION_FUNCTION_POINTER => {
            if inbuf.is_null() || inlen < 16 || outbuf.is_null() || (outlen as usize) < 8 {
                return fail(WSAEFAULT);
            }
            // SAFETY: 16 readable bytes (checked).
            let g = unsafe { inbuf.cast::<[u8; 16]>().read_unaligned() };
            let Some(f) = extension(&g) else {
                return fail(WSAEINVAL);
            };
            // SAFETY: 8 writable bytes (checked).
            unsafe { outbuf.cast::<usize>().write_unaligned(f) };
            out_n(8);
            0
        }
        c if c == FIONBIO as u32 || c == FIONREAD as u32 => {
            let (p, n) = if c == FIONBIO as u32 {
                (inbuf, inlen)
            } else {
                (outbuf, outlen)
            };
            if p.is_null() || n < 4 {
                return fail(WSAEFAULT);
            }
            // SAFETY: 4 readable bytes (checked).
            let mut v = std::ffi::c_ulong::from(unsafe { p.cast::<u32>().read_unaligned() });
            // SAFETY: `v` is a valid argument.
            let r = unsafe { crate::sockets::ioctlsocket(s, c as i32 as std::ffi::c_long, &mut v) };
            if r == 0 && c == FIONREAD as u32 {
                // SAFETY: 4 writable bytes (checked).
                unsafe { p.cast::<u32>().write_unaligned(v as u32) };
                out_n(4);
            } else if r == 0 {
                out_n(0);
            }
            r
        }
        _ => fail(WSAEINVAL),
    }
}
