//! The textbook's IOCP echo server (`IOCPEchoServ_win.c`): an acceptor
//! thread, one worker thread per CPU sharing a completion port, per-handle
//! data for each socket and per-I/O data for each operation.
//!
//! The book keeps a `PER_HANDLE_DATA` (the socket and its peer) as the
//! completion key and a `PER_IO_DATA` (an `OVERLAPPED`, the buffer and a
//! read/write mode) around each operation, and casts both back from the
//! packet. Here they are typed: the port is a
//! `TypedPort<WithContext<Mode, Vec<u8>>, Conn>`, so a packet hands the
//! worker its connection (`Arc<Conn>`) and the operation's mode and buffer
//! by value, with no table and no cast.
//!
//! The book frees a connection's data when its receive sees the end of the
//! stream, while the echo's send may still be in flight; the send's packet
//! then reads freed memory. Here that cannot happen by construction: every
//! packet holds its own reference to the connection, and the port lets go
//! of a connection once its socket is closed and its last operation has
//! completed. Every result is checked; workers stop on a posted packet.
//!
//! ```text
//! cargo run --example iocp_echo_server -- 127.0.0.1:9000
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```

mod common;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use overlapped::{
    Completion, Engine, MsgFlags, Notify, OpPacket, PacketOf, Socket, TypedPort, WithContext,
};

const BUF: usize = 100;

/// The per-I/O data's mode (`READ` / `WRITE` in the book).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

/// The per-handle data: the client's socket and address.
struct Conn {
    sock: Socket,
    peer: SocketAddr,
}

/// An operation's buffer with its mode (the per-I/O data).
type Io = WithContext<Mode, Vec<u8>>;

type Port = TypedPort<Io, Conn>;

fn read(conn: &Conn) -> bool {
    let io = WithContext::new(Mode::Read, vec![0u8; BUF]);
    conn.sock
        .recv(io, MsgFlags::empty(), Notify::Port(0))
        .is_ok()
}

fn worker(port: Port) {
    while let Ok(Some(packet)) = port.get_queued(None) {
        let PacketOf::Op(OpPacket {
            data: conn,
            completion,
            ..
        }) = packet
        else {
            return; // the stop packet
        };
        let Completion {
            error,
            bytes,
            data: WithContext {
                context: mode,
                bufs,
            },
            ..
        } = completion;
        if error.is_some() || (mode == Mode::Read && bytes == 0) {
            // The end of the stream, an error, or an operation aborted by
            // the close: closing again is harmless.
            let _ = conn.sock.close();
            continue;
        }
        let next = match mode {
            Mode::Read => {
                println!("message received!");
                // Echo what came in; a send and the next receive are in
                // flight together, each with its own buffer and mode.
                let echo = WithContext::new(Mode::Write, bufs);
                conn.sock
                    .send(echo, MsgFlags::empty(), Notify::Port(0))
                    .is_ok()
                    && read(&conn)
            }
            Mode::Write => {
                println!("message sent!");
                true
            }
        };
        if !next {
            println!("closing {}", conn.peer);
            let _ = conn.sock.close();
        }
    }
}

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let port = Port::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    for _ in 0..workers {
        let p = port.clone();
        std::thread::spawn(move || worker(p));
    }
    let listener = Socket::tcp_listener(&engine, &addr)?;
    println!(
        "listening on {} (engine {}, {workers} workers)",
        listener.local_addr()?,
        engine.kind()
    );
    loop {
        let (sock, peer) = listener.accept_wait()?;
        println!("connected client: {peer}");
        let conn = Arc::new(Conn { sock, peer });
        port.associate(&conn.sock, conn.clone())?;
        if !read(&conn) {
            let _ = conn.sock.close();
        }
    }
}
