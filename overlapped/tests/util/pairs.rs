//! Connected loopback sockets, and a std peer's reads and writes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use overlapped::{CompletionPort, Engine, MsgFlags, Notify, Socket, Started};

use super::{SEC, slack};

pub fn v4() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

pub fn v6() -> SocketAddr {
    "[::1]:0".parse().unwrap()
}

/// A connected pair of overlapped TCP sockets on loopback: (client, server).
pub fn tcp_pair(e: &Engine) -> (Socket, Socket) {
    tcp_pair_at(e, v4())
}

/// [`tcp_pair`] on the loopback address of `at`'s family.
pub fn tcp_pair_at(e: &Engine, at: SocketAddr) -> (Socket, Socket) {
    let l = Socket::tcp_listener(e, &at).expect("listener");
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    c.connect_wait(addr).expect("connect");
    let (s, _) = l.accept_wait().expect("accept");
    (c, s)
}

/// `n` connected pairs of overlapped TCP sockets through one listener:
/// (client, server) each.
pub fn tcp_pairs(e: &Engine, n: usize) -> Vec<(Socket, Socket)> {
    let l = Socket::tcp_listener(e, &v4()).expect("listener");
    let addr = l.local_addr().unwrap();
    (0..n)
        .map(|_| {
            let c = Socket::tcp_for(e, &addr).unwrap();
            c.connect_wait(addr).expect("connect");
            let (s, _) = l.accept_wait().expect("accept");
            (c, s)
        })
        .collect()
}

/// An overlapped TCP socket connected to a plain std peer: (ours, peer).
/// The peer has read and write timeouts of 10 s (scaled by [`slack`]).
pub fn std_pair(e: &Engine) -> (Socket, TcpStream) {
    let l = TcpListener::bind(v4()).unwrap();
    let addr = l.local_addr().unwrap();
    let c = Socket::tcp_for(e, &addr).unwrap();
    c.connect_wait(addr).expect("connect");
    let (p, _) = l.accept().unwrap();
    p.set_read_timeout(Some(slack(10 * SEC))).unwrap();
    p.set_write_timeout(Some(slack(10 * SEC))).unwrap();
    (c, p)
}

/// A socket of `e` associated with `port` under `key`, with a receive
/// pending that its peer never answers: it makes `e` one of the port's
/// engines (the first, when associated first) without ever posting a
/// packet. Keep all three alive for the test.
pub fn quiet_on_port(
    e: &Engine,
    port: &CompletionPort,
    key: usize,
) -> (Socket, TcpStream, Started<Vec<u8>>) {
    let (s, peer) = std_pair(e);
    port.associate(&s, key).unwrap();
    let recv = s
        .recv(vec![0u8; 8], MsgFlags::empty(), Notify::Port(0))
        .unwrap();
    (s, peer, recv)
}

/// Reads exactly `n` bytes from a std stream.
pub fn read_n(p: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    p.read_exact(&mut v).expect("peer read");
    v
}

pub fn write_all(p: &mut TcpStream, b: &[u8]) {
    p.write_all(b).expect("peer write");
}

/// Resets the connection from the std peer (linger 0, then close).
pub fn reset(p: TcpStream) {
    socket2::SockRef::from(&p)
        .set_linger(Some(std::time::Duration::ZERO))
        .unwrap();
    drop(p);
}

/// A loopback address where nothing listens (TCP or UDP).
pub fn dead_addr(udp: bool) -> SocketAddr {
    if udp {
        std::net::UdpSocket::bind(v4())
            .unwrap()
            .local_addr()
            .unwrap()
    } else {
        TcpListener::bind(v4()).unwrap().local_addr().unwrap()
    }
}
