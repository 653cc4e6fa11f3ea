//! `WSARecvMsg` and `WSASendMsg`: the `WSAMSG` operations, and the
//! conversion of control messages between Windows' layout and the
//! library's.

#![allow(unsafe_code)]

use std::ffi::c_int;
use std::net::IpAddr;

use overlapped::{Control, PktInfo, RecvFlags};

use super::op::{Codes, Finish, start, target_of, wsa_int};
use crate::bufs::{WsaBufs, WsaPiece};
use crate::errors::{self, *};
use crate::inflight::Outcome;
use crate::sockets::{msg_flags, sock};
use crate::types::*;

/// `WSAEMSGSIZE`.
pub const WSAEMSGSIZE: u32 = 10040;
/// `ERROR_MORE_DATA`.
pub const ERROR_MORE_DATA: u32 = 234;
/// `MSG_TRUNC` (Windows' value).
pub const MSG_TRUNC: u32 = 0x0100;
/// `MSG_CTRUNC` (Windows' value).
pub const MSG_CTRUNC: u32 = 0x0200;

/// `WSAMSG`, laid out as on 64-bit Windows.
#[repr(C)]
#[derive(Debug)]
pub struct WsaMsg {
    /// `name`: the sender (receive) or destination (send); may be null.
    pub name: *mut libc::sockaddr,
    /// `namelen`.
    pub namelen: c_int,
    /// `lpBuffers`.
    pub buffers: *mut WsaBuf,
    /// `dwBufferCount`.
    pub count: u32,
    /// `Control`: the control data (Windows' `WSACMSGHDR` layout).
    pub control: WsaBuf,
    /// `dwFlags`.
    pub flags: u32,
}

/// `sizeof(WSACMSGHDR)`: `SIZE_T cmsg_len; INT cmsg_level; INT cmsg_type;`
/// (the data follows it, already aligned).
const CMSG_HDR: usize = 16;

/// `WSA_CMSG_SPACE(n)`.
const fn cmsg_space(n: usize) -> usize {
    CMSG_HDR + ((n + 7) & !7)
}

/// One control message in Windows' terms: `IP_PKTINFO` / `IPV6_PKTINFO`
/// with Windows' levels, types and `IN_PKTINFO` layout; any other message
/// as it came.
fn windows_message(m: &overlapped::ControlMessage<'_>) -> (i32, i32, Vec<u8>) {
    match PktInfo::from_message(m) {
        Some(PktInfo {
            addr: IpAddr::V4(a),
            ifindex,
        }) => {
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&ifindex.to_ne_bytes());
            (IPPROTO_IP, IP_PKTINFO, d)
        }
        Some(PktInfo {
            addr: IpAddr::V6(a),
            ifindex,
        }) => {
            let mut d = a.octets().to_vec();
            d.extend_from_slice(&ifindex.to_ne_bytes());
            (IPPROTO_IPV6, IPV6_PKTINFO, d)
        }
        None => (m.level, m.kind, m.data.to_vec()),
    }
}

/// Writes the control messages into the caller's control buffer in
/// Windows' layout; the bytes written, and whether some did not fit.
///
/// # Safety
/// `buf` is writable for `room` bytes.
unsafe fn write_control(control: &Control, buf: *mut u8, room: usize) -> (usize, bool) {
    let mut at = 0;
    for m in control.messages() {
        let (level, kind, data) = windows_message(&m);
        let space = cmsg_space(data.len());
        if buf.is_null() || at + space > room {
            return (at, true);
        }
        // SAFETY: `space` bytes at `at` are in the caller's buffer.
        unsafe {
            let p = buf.add(at);
            std::ptr::write_bytes(p, 0, space);
            p.cast::<usize>().write_unaligned(CMSG_HDR + data.len());
            p.add(8).cast::<i32>().write_unaligned(level);
            p.add(12).cast::<i32>().write_unaligned(kind);
            std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(CMSG_HDR), data.len());
        }
        at += space;
    }
    (at, false)
}

/// The caller's control messages (Windows' layout) as the library's.
///
/// # Safety
/// `buf` is readable for `len` bytes.
unsafe fn read_control(buf: *const u8, len: usize) -> Result<Control, Codes> {
    let mut c = Control::new();
    if buf.is_null() || len == 0 {
        return Ok(c);
    }
    let mut at = 0;
    while at + CMSG_HDR <= len {
        // SAFETY: a whole header is readable (checked).
        let (clen, level, kind) = unsafe {
            let p = buf.add(at);
            (
                p.cast::<usize>().read_unaligned(),
                p.add(8).cast::<i32>().read_unaligned(),
                p.add(12).cast::<i32>().read_unaligned(),
            )
        };
        // `at < len` here: compared this way, a huge `cmsg_len` from the
        // caller cannot wrap the sum.
        if clen < CMSG_HDR || clen > len - at {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        // SAFETY: `clen` bytes at `at` are readable (checked).
        let data = unsafe { std::slice::from_raw_parts(buf.add(at + CMSG_HDR), clen - CMSG_HDR) };
        match (level, kind) {
            (IPPROTO_IP, IP_PKTINFO) if data.len() >= 8 => {
                let a: [u8; 4] = data[..4].try_into().expect("4 bytes");
                let i = u32::from_ne_bytes(data[4..8].try_into().expect("4 bytes"));
                c.push_pktinfo(PktInfo::new(IpAddr::from(a), i));
            }
            (IPPROTO_IPV6, IPV6_PKTINFO) if data.len() >= 20 => {
                let a: [u8; 16] = data[..16].try_into().expect("16 bytes");
                let i = u32::from_ne_bytes(data[16..20].try_into().expect("4 bytes"));
                c.push_pktinfo(PktInfo::new(IpAddr::from(a), i));
            }
            _ => c.push(level, kind, data),
        }
        at += cmsg_space(clen - CMSG_HDR);
    }
    Ok(c)
}

/// `WSARecvMsg`: a receive into `msg`'s buffers; when it completes, the
/// sender goes to `name`/`namelen`, the control messages (Windows' layout:
/// `IP_PKTINFO` as `IN_PKTINFO`) to `Control` (its `len` set to their
/// bytes) and `MSG_TRUNC`/`MSG_CTRUNC`/`MSG_OOB` to `dwFlags`.
///
/// # Safety
/// Windows' contract: `msg`, the memory it points at and `ov` stay valid
/// until the completion is reported (the `WSABUF` array only during the
/// call); `received` null or writable.
pub(super) unsafe extern "C" fn wsa_recv_msg(
    s: usize,
    msg: *mut WsaMsg,
    received: *mut u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        // SAFETY: null or readable (the caller's promise).
        let m = unsafe { msg.as_ref() }.ok_or((WSAEFAULT, ERROR_INVALID_PARAMETER))?;
        if m.count == 0 {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        if m.buffers.is_null() {
            return Err((WSAEFAULT, ERROR_INVALID_PARAMETER));
        }
        let flags = msg_flags(m.flags).map_err(|c| (c, c))?;
        // SAFETY: the caller keeps the buffers' memory until the completion.
        let bufs = unsafe { WsaPiece::from_array(m.buffers, m.count as usize) };
        // Linux's messages take more room than Windows' (IN_PKTINFO is 8
        // bytes, in_pktinfo 12): what does not fit the caller's buffer once
        // converted is cut there.
        let room = m.control.len as usize;
        let control = Control::with_capacity(if room == 0 { 0 } else { room * 2 + 64 });
        let msg_addr = msg as usize;
        let finish: Finish<(WsaBufs, Control)> = Box::new(move |c| {
            let mut out = Outcome::of(&c);
            let m = msg_addr as *mut WsaMsg;
            // SAFETY: the caller keeps the `WSAMSG` and what it points at
            // valid until the completion is reported (now).
            unsafe {
                if let Some(a) = &c.addr {
                    let _ = crate::addr::write(a, (*m).name, &raw mut (*m).namelen);
                }
                let (n, cut) =
                    write_control(&c.data.1, (*m).control.buf, (*m).control.len as usize);
                (*m).control.len = n as u32;
                let mut f = out.flags;
                if c.flags.contains(RecvFlags::TRUNCATED) {
                    f |= MSG_TRUNC;
                }
                if cut || c.flags.contains(RecvFlags::CTRUNC) {
                    f |= MSG_CTRUNC;
                    if out.wsa == 0 {
                        out.wsa = WSAEMSGSIZE;
                        out.win32 = ERROR_MORE_DATA;
                        out.status = errors::status_of(Some((WSAEMSGSIZE, ERROR_MORE_DATA)));
                    }
                }
                (*m).flags = f;
                out.flags = f;
            }
            out
        });
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &o), ov, routine, finish, |n| {
                o.sock
                    .recv_msg(bufs, control, flags, n)
                    .map_err(|e| e.error)
            })
        }
    })();
    wsa_int(r, received)
}

/// `WSASendMsg`: `msg`'s buffers as one datagram to `name` (null: the
/// connected peer) with its control messages (`IP_PKTINFO` /
/// `IPV6_PKTINFO`: the source address; others pass as they are).
///
/// # Safety
/// Windows' contract: `msg` and its `name`, control and `WSABUF` array
/// are read during the call; the buffers' memory and `ov` stay valid until
/// the completion is reported; `sent` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WSASendMsg(
    s: usize,
    msg: *mut WsaMsg,
    flags: u32,
    sent: *mut u32,
    ov: *mut Overlapped,
    routine: Option<CompletionRoutine>,
) -> c_int {
    let r = (|| {
        let o = sock(s).map_err(|c| (c, c))?;
        // SAFETY: null or readable (the caller's promise).
        let m = unsafe { msg.as_ref() }.ok_or((WSAEFAULT, ERROR_INVALID_PARAMETER))?;
        if m.count == 0 {
            return Err((WSAEINVAL, ERROR_INVALID_PARAMETER));
        }
        if m.buffers.is_null() {
            return Err((WSAEFAULT, ERROR_INVALID_PARAMETER));
        }
        let f = msg_flags(flags).map_err(|c| (c, c))?;
        let to = if m.name.is_null() || m.namelen <= 0 {
            None
        } else {
            // SAFETY: readable for `namelen` bytes (the caller's promise).
            Some(unsafe { crate::addr::read(m.name, m.namelen) }.map_err(|c| (c, c))?)
        };
        // SAFETY: readable for `len` bytes (the caller's promise).
        let control = unsafe { read_control(m.control.buf, m.control.len as usize) }?;
        // SAFETY: the caller keeps the buffers' memory until the completion.
        let bufs = unsafe { WsaPiece::from_array(m.buffers, m.count as usize) };
        let finish: Finish<(WsaBufs, Control)> = Box::new(|c| Outcome::of(&c));
        // SAFETY: the caller's promise.
        unsafe {
            start(target_of(s, &o), ov, routine, finish, |n| {
                o.sock
                    .send_msg(bufs, control, to, f, n)
                    .map_err(|e| e.error)
            })
        }
    })();
    wsa_int(r, sent)
}
