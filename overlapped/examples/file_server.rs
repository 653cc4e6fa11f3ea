//! A tiny static file server in the shape of a production IOCP server:
//! a pool of pre-made sockets, each waiting in an `AcceptEx` that also
//! receives the request (`accept_ex` into the socket, with a buffer); the
//! file goes out with `TransmitFile` (`transmit_file`: the response header
//! as its head, the file's bytes spliced or sent inside the kernel, never
//! through user space);
//! then `DisconnectEx` with reuse (`disconnect(true)`) hands the socket back
//! to a new accept. One worker takes every completion from one completion
//! port; the key says which socket, the tag which step.
//!
//! HTTP/1.0 `GET` only, one request per connection, files directly under
//! the root directory (no subdirectories, no `..`).
//!
//! ```text
//! cargo run --example file_server -- 127.0.0.1:8080 ./some/dir
//! curl http://127.0.0.1:8080/file.txt
//! ```

mod common;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use overlapped::{Accepted, CompletionPort, Engine, MsgFlags, Notify, Socket};

/// Sockets waiting in an accept at once.
const POOL: usize = 8;
/// Room for the request's first data.
const REQUEST_ROOM: usize = 4096;
/// The listener's completion key; pool sockets use their index.
const LISTENER: usize = usize::MAX;

/// The step a packet ends (high half of the tag; the low half is the pool
/// index).
const ACCEPT: u64 = 1;
const RESPOND: u64 = 2;
const DISCONNECT: u64 = 3;

fn tag(step: u64, slot: usize) -> u64 {
    step << 32 | slot as u64
}

/// The file a request names under `root`, or why not (the status line).
fn resolve(root: &Path, request: &[u8]) -> Result<PathBuf, &'static str> {
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(line).map_err(|_| "400 Bad Request")?;
    let mut parts = line.split_whitespace();
    if parts.next() != Some("GET") {
        return Err("405 Method Not Allowed");
    }
    let name = parts
        .next()
        .and_then(|p| p.strip_prefix('/'))
        .ok_or("400 Bad Request")?;
    if name.is_empty() || name.contains('/') || name.contains("..") {
        return Err("404 Not Found");
    }
    let path = root.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err("404 Not Found")
    }
}

/// Puts pool socket `slot` in a new accept that receives the request.
fn accept_into(listener: &Socket, pool: &[Socket], slot: usize) -> io::Result<()> {
    listener.accept_ex(
        Some(&pool[slot]),
        vec![0u8; REQUEST_ROOM],
        Notify::Port(tag(ACCEPT, slot)),
    )?;
    Ok(())
}

/// Answers the request that came with an accept on pool socket `slot`.
fn respond(root: &Path, sock: &Socket, slot: usize, request: &[u8]) -> io::Result<()> {
    let respond = tag(RESPOND, slot);
    match resolve(root, request).and_then(|p| File::open(p).map_err(|_| "404 Not Found")) {
        Ok(file) => {
            let len = file.metadata()?.len();
            let head = format!(
                "HTTP/1.0 200 OK\r\nContent-Length: {len}\r\n\
                 Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            );
            sock.transmit_file(
                &file,
                0,
                len,
                head.into_bytes(),
                Vec::new(),
                Notify::Port(respond),
            )?;
        }
        Err(status) => {
            let body = format!("{status}\n");
            let msg = format!(
                "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.send(msg.into_bytes(), MsgFlags::empty(), Notify::Port(respond))?;
        }
    }
    Ok(())
}

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let root = PathBuf::from(std::env::args().nth(2).unwrap_or_else(|| ".".into()));
    let engine = Engine::new()?;
    let port = CompletionPort::new(1);
    let listener = Socket::tcp_listener(&engine, &addr)?;
    port.associate(&listener, LISTENER)?;
    let pool: Vec<Socket> = (0..POOL)
        .map(|i| {
            let s = Socket::tcp_for(&engine, &addr)?;
            port.associate(&s, i)?;
            Ok(s)
        })
        .collect::<io::Result<_>>()?;
    for slot in 0..POOL {
        accept_into(&listener, &pool, slot)?;
    }
    println!("listening on {}", listener.local_addr()?);
    loop {
        let Some(packet) = port.get_queued(None)? else {
            continue;
        };
        let (step, slot) = (packet.tag >> 32, (packet.tag & 0xFFFF_FFFF) as usize);
        if slot >= POOL {
            continue;
        }
        let sock = &pool[slot];
        // A step that failed (the client went away) ends the connection.
        let next = match step {
            ACCEPT => match packet.into_completion::<Accepted<Vec<u8>>>() {
                Ok(c) if c.error.is_none() && c.bytes > 0 => {
                    respond(&root, sock, slot, &c.data.bufs).map(|()| true)
                }
                // No request (or the accept failed): accept again.
                _ => Ok(false),
            },
            RESPOND => Ok(false),
            DISCONNECT => {
                accept_into(&listener, &pool, slot)?;
                continue;
            }
            _ => continue,
        };
        if !matches!(next, Ok(true)) {
            // Done with this connection: close it gracefully and reuse the
            // socket (its packet puts it back in an accept).
            if sock
                .disconnect(true, Notify::Port(tag(DISCONNECT, slot)))
                .is_err()
            {
                // Never connected (a failed accept): accept again at once.
                accept_into(&listener, &pool, slot)?;
            }
        }
    }
}
