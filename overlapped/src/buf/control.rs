//! Control data of [`Socket::recv_msg`](crate::Socket::recv_msg) and
//! [`Socket::send_msg`](crate::Socket::send_msg) (`WSAMSG.Control`): a
//! buffer the caller owns, its control messages, and the typed packet
//! information (`IP_PKTINFO`, `IPV6_PKTINFO`).
//!
//! The bytes are the kernel's layout (`cmsghdr`, `CMSG_*` alignment); the
//! parser reads them without assuming any alignment of the buffer.

#![allow(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Bytes of a control message's header (`sizeof(struct cmsghdr)`).
const HDR: usize = std::mem::size_of::<libc::cmsghdr>();
/// Control messages are aligned to a `size_t` (`CMSG_ALIGN`).
const ALIGN: usize = std::mem::size_of::<usize>();

const fn align(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}

/// Bytes of an `in_pktinfo` (`ipi_ifindex`, `ipi_spec_dst`, `ipi_addr`).
const IN_PKTINFO: usize = 12;
/// Bytes of an `in6_pktinfo` (`ipi6_addr`, `ipi6_ifindex`).
const IN6_PKTINFO: usize = 20;

/// The control buffer of a message operation: the `Control` of `WSAMSG`.
///
/// For [`recv_msg`](crate::Socket::recv_msg) it offers its **capacity** as
/// room (make it with [`Control::with_capacity`]; what it held is
/// replaced): the completion hands it back holding the control messages
/// that arrived with the datagram. A room too small for them ends the
/// receive with [`RecvFlags::CTRUNC`](crate::RecvFlags::CTRUNC) (Windows'
/// `MSG_CTRUNC`, and `WSAEMSGSIZE` from
/// [`Completion::wsa_error`](crate::Completion::wsa_error)), holding the
/// messages that fit.
///
/// For [`send_msg`](crate::Socket::send_msg) its bytes are the control
/// messages to send, built with [`push`](Control::push) or
/// [`push_pktinfo`](Control::push_pktinfo).
///
/// The engine owns the buffer (its heap allocation, which stays put) from
/// the start of the operation until it hands it back with the completion.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Control {
    buf: Vec<u8>,
}

impl Control {
    /// Room for one [`PktInfo`] of either family (`CMSG_SPACE` of an
    /// `in6_pktinfo`, the larger of the two).
    pub const PKTINFO_SPACE: usize = Control::space(IN6_PKTINFO);

    /// An empty control buffer: no control messages to send, and no room
    /// to receive any.
    pub fn new() -> Control {
        Control::default()
    }

    /// An empty control buffer with room for `room` bytes of control
    /// messages to receive (`WSAMSG.Control.len`).
    pub fn with_capacity(room: usize) -> Control {
        Control {
            buf: Vec::with_capacity(room),
        }
    }

    /// The control bytes of `bytes` as they are (already in the kernel's
    /// layout); as a receive's room, its capacity.
    pub fn from_vec(bytes: Vec<u8>) -> Control {
        Control { buf: bytes }
    }

    /// The buffer, with its control bytes as its length.
    pub fn into_vec(self) -> Vec<u8> {
        self.buf
    }

    /// Bytes that a control message of `data_len` bytes of data takes in
    /// a buffer, padding included (`CMSG_SPACE`).
    pub const fn space(data_len: usize) -> usize {
        align(HDR) + align(data_len)
    }

    /// The control bytes: received, or to send.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// How many control bytes it holds.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True when it holds no control bytes.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The room a receive may fill.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Forgets the control bytes, keeping the room.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// The control messages it holds, in order. A message cut short by a
    /// room too small ([`RecvFlags::CTRUNC`](crate::RecvFlags::CTRUNC))
    /// comes with the data that fit.
    pub fn messages(&self) -> ControlMessages<'_> {
        ControlMessages { rest: &self.buf }
    }

    /// The packet information of a received datagram (the first `IP_PKTINFO`
    /// or `IPV6_PKTINFO` message whole), when the socket asked for it
    /// ([`Socket::set_pktinfo`](crate::Socket::set_pktinfo)).
    pub fn pktinfo(&self) -> Option<PktInfo> {
        self.messages().find_map(|m| PktInfo::from_message(&m))
    }

    /// Appends one control message (`level`, `kind`: `cmsg_level`,
    /// `cmsg_type`) with `data`, in the kernel's layout, padding included.
    pub fn push(&mut self, level: i32, kind: i32, data: &[u8]) {
        let len = align(HDR) + data.len();
        let start = self.buf.len();
        self.buf.extend_from_slice(&len.to_ne_bytes());
        self.buf.extend_from_slice(&level.to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.resize(start + align(HDR), 0);
        self.buf.extend_from_slice(data);
        self.buf.resize(start + Control::space(data.len()), 0);
    }

    /// Appends the packet information of a datagram to send: `IP_PKTINFO`
    /// for an IPv4 address, `IPV6_PKTINFO` for an IPv6 one. The address is
    /// the **source** address the datagram leaves from (a local address;
    /// the unspecified address leaves the choice to the system) and the
    /// interface index, when not 0, the interface it leaves through. On an
    /// IPv6 socket, send an IPv4 datagram with an IPv4-mapped address.
    pub fn push_pktinfo(&mut self, info: PktInfo) {
        match info.addr {
            IpAddr::V4(a) => {
                let mut d = [0u8; IN_PKTINFO];
                d[0..4].copy_from_slice(&(info.ifindex as i32).to_ne_bytes());
                // `ipi_spec_dst` chooses the source; `ipi_addr` is ignored
                // on a send.
                d[4..8].copy_from_slice(&a.octets());
                d[8..12].copy_from_slice(&a.octets());
                self.push(libc::IPPROTO_IP, libc::IP_PKTINFO, &d);
            }
            IpAddr::V6(a) => {
                let mut d = [0u8; IN6_PKTINFO];
                d[0..16].copy_from_slice(&a.octets());
                d[16..20].copy_from_slice(&(info.ifindex as i32).to_ne_bytes());
                self.push(libc::IPPROTO_IPV6, libc::IPV6_PKTINFO, &d);
            }
        }
    }

    /// The room for the kernel: start and length of the whole capacity.
    pub(crate) fn room(&mut self) -> (*mut u8, usize) {
        (self.buf.as_mut_ptr(), self.buf.capacity())
    }

    /// The bytes to send, for the kernel.
    pub(crate) fn bytes(&mut self) -> (*mut u8, usize) {
        (self.buf.as_mut_ptr(), self.buf.len())
    }

    /// Records a receive: the first `n` bytes of the room hold control
    /// messages.
    ///
    /// # Safety
    /// `n <= capacity()`, and those bytes were written since the room was
    /// offered ([`room`](Control::room)).
    pub(crate) unsafe fn set_received(&mut self, n: usize) {
        let n = n.min(self.buf.capacity());
        // SAFETY: the caller says the first `n` bytes were written, within the capacity.
        unsafe { self.buf.set_len(n) };
    }
}

/// One control message: `cmsg_level`, `cmsg_type` and its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMessage<'a> {
    /// The protocol level (`cmsg_level`), e.g. `libc::IPPROTO_IP`.
    pub level: i32,
    /// The message type at that level (`cmsg_type`), e.g.
    /// `libc::IP_PKTINFO`.
    pub kind: i32,
    /// The message's data (cut short when the room was too small).
    pub data: &'a [u8],
}

/// The control messages of a [`Control`], in order (`CMSG_FIRSTHDR` /
/// `CMSG_NXTHDR`).
#[derive(Debug, Clone)]
pub struct ControlMessages<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for ControlMessages<'a> {
    type Item = ControlMessage<'a>;

    fn next(&mut self) -> Option<ControlMessage<'a>> {
        let b = self.rest;
        if b.len() < HDR {
            self.rest = &[];
            return None;
        }
        let (len_b, rest) = b.split_at(ALIGN);
        let len = usize::from_ne_bytes(len_b.try_into().ok()?);
        let level = i32::from_ne_bytes(rest[0..4].try_into().ok()?);
        let kind = i32::from_ne_bytes(rest[4..8].try_into().ok()?);
        if len < align(HDR) {
            self.rest = &[];
            return None;
        }
        let end = len.min(b.len());
        let data = &b[align(HDR).min(end)..end];
        self.rest = &b[align(len).min(b.len())..];
        Some(ControlMessage { level, kind, data })
    }
}

/// Packet information (`IN_PKTINFO` / `IN6_PKTINFO`): on a received
/// datagram, the local address it was sent to and the interface it arrived
/// on; on a datagram to send ([`Control::push_pktinfo`]), the source
/// address and interface to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PktInfo {
    /// The datagram's local address: its destination when received, its
    /// source when sent.
    pub addr: IpAddr,
    /// The interface index (0: any, on a send).
    pub ifindex: u32,
}

impl PktInfo {
    /// Packet information for a send from `addr` through interface
    /// `ifindex` (0: as the routing says).
    pub fn new(addr: IpAddr, ifindex: u32) -> PktInfo {
        PktInfo { addr, ifindex }
    }

    /// The packet information a control message holds: a whole
    /// `IP_PKTINFO` (its `ipi_addr`, the header's destination) or
    /// `IPV6_PKTINFO` message; `None` for any other message.
    pub fn from_message(m: &ControlMessage<'_>) -> Option<PktInfo> {
        let d = m.data;
        match (m.level, m.kind) {
            (libc::IPPROTO_IP, libc::IP_PKTINFO) if d.len() >= IN_PKTINFO => {
                let ifindex = i32::from_ne_bytes(d[0..4].try_into().ok()?);
                let addr: [u8; 4] = d[8..12].try_into().ok()?;
                Some(PktInfo {
                    addr: IpAddr::V4(Ipv4Addr::from(addr)),
                    ifindex: ifindex as u32,
                })
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) if d.len() >= IN6_PKTINFO => {
                let addr: [u8; 16] = d[0..16].try_into().ok()?;
                let ifindex = i32::from_ne_bytes(d[16..20].try_into().ok()?);
                Some(PktInfo {
                    addr: IpAddr::V6(Ipv6Addr::from(addr)),
                    ifindex: ifindex as u32,
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pushed_messages_parse_back_in_order() {
        let mut c = Control::new();
        c.push_pktinfo(PktInfo::new("127.0.0.2".parse().unwrap(), 1));
        c.push(1, 2, b"xyz");
        c.push_pktinfo(PktInfo::new("::1".parse().unwrap(), 3));
        assert_eq!(
            c.len(),
            Control::space(IN_PKTINFO) + Control::space(3) + Control::PKTINFO_SPACE
        );
        let m: Vec<_> = c.messages().collect();
        assert_eq!(m.len(), 3);
        assert_eq!(
            PktInfo::from_message(&m[0]),
            Some(PktInfo::new("127.0.0.2".parse().unwrap(), 1))
        );
        assert_eq!((m[1].level, m[1].kind, m[1].data), (1, 2, &b"xyz"[..]));
        assert_eq!(
            PktInfo::from_message(&m[2]),
            Some(PktInfo::new("::1".parse().unwrap(), 3))
        );
        assert_eq!(c.pktinfo(), PktInfo::from_message(&m[0]));
    }

    #[test]
    fn a_cut_message_is_no_pktinfo() {
        let mut c = Control::new();
        c.push_pktinfo(PktInfo::new("::1".parse().unwrap(), 3));
        // As the kernel writes a message cut by a small room: the length
        // field says what was written.
        let mut bytes = c.into_vec();
        let cut = align(HDR) + 8;
        bytes.truncate(cut);
        bytes[..ALIGN].copy_from_slice(&cut.to_ne_bytes());
        let c = Control::from_vec(bytes);
        let m: Vec<_> = c.messages().collect();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].data.len(), 8);
        assert_eq!(c.pktinfo(), None);
        // Bytes shorter than a header are no message.
        assert_eq!(Control::from_vec(vec![0; HDR - 1]).messages().count(), 0);
    }
}
