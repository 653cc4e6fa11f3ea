//! The textbook's IOCP echo server (`IOCPEchoServ_win.c`): an acceptor
//! thread, one worker thread per CPU sharing a completion port, a key per
//! socket and a tag per operation.
//!
//! The book frees a connection's data when its receive sees the end of the
//! stream, while the echo's send may still be in flight; the send's packet
//! then reads freed memory. Here that cannot happen by construction: the
//! packet owns the operation's buffers, the connection is found by its key
//! in a table, and a packet whose connection is gone finds nothing. Every
//! result is checked; workers stop on a posted packet.
//!
//! ```text
//! cargo run --example iocp_echo_server -- 127.0.0.1:9000
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```

mod common;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

use overlapped::{Completion, CompletionPort, Engine, MsgFlags, Notify, Socket};

const READ: u64 = 3;
const WRITE: u64 = 5;
const BUF: usize = 100;

type Conns = Arc<Mutex<HashMap<usize, Arc<Socket>>>>;

fn close(conns: &Conns, key: usize) {
    if let Some(s) = conns.lock().unwrap().remove(&key) {
        let _ = s.close();
    }
}

fn worker(port: CompletionPort, conns: Conns) {
    while let Ok(Some(packet)) = port.get_queued(None) {
        if packet.is_posted() {
            return; // the stop packet
        }
        let (key, tag) = (packet.key, packet.tag);
        let Ok(c) = packet.into_completion::<Vec<u8>>() else {
            continue;
        };
        let Some(sock) = conns.lock().unwrap().get(&key).cloned() else {
            continue;
        };
        let Completion {
            error, bytes, data, ..
        } = c;
        if error.is_some() || (tag == READ && bytes == 0) {
            close(&conns, key);
            continue;
        }
        let next = if tag == READ {
            println!("message received!");
            // Echo what came in; a send and the next receive are in flight
            // together, each with its own buffers.
            let ok = sock
                .send(data, MsgFlags::empty(), Notify::Port(WRITE))
                .is_ok();
            ok && sock
                .recv(vec![0u8; BUF], MsgFlags::empty(), Notify::Port(READ))
                .is_ok()
        } else {
            println!("message sent!");
            true
        };
        if !next {
            close(&conns, key);
        }
    }
}

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let port = CompletionPort::new(0);
    let conns: Conns = Arc::default();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 0..workers {
        let (p, c) = (port.clone(), conns.clone());
        std::thread::spawn(move || worker(p, c));
    }
    let listener = Socket::tcp_listener(&engine, &addr)?;
    println!(
        "listening on {} (engine {}, {workers} workers)",
        listener.local_addr()?,
        engine.kind()
    );
    let mut key = 0usize;
    loop {
        let (sock, peer) = listener.accept_wait()?;
        println!("connected client: {peer}");
        key += 1;
        port.associate(&sock, key)?;
        let sock = Arc::new(sock);
        conns.lock().unwrap().insert(key, sock.clone());
        if sock
            .recv(vec![0u8; BUF], MsgFlags::empty(), Notify::Port(READ))
            .is_err()
        {
            close(&conns, key);
        }
    }
}
