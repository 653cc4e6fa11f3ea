//! The port model: an acceptor and a pool of worker threads sharing one
//! completion port (the textbook's IOCP echo server, done safely).
//!
//! Each connection is associated with the port under its own key; one
//! operation is in flight per connection at a time (receive, then the echo's
//! send, then the next receive), each tagged with what it is. Connection
//! state lives in a table keyed by the port key: a packet for a connection
//! that was closed finds nothing and is dropped with its buffers, so no
//! worker can touch freed connection data (the textbook frees it while a
//! send may still be in flight). Sockets skip the port on immediate
//! success, so a worker handles immediate completions inline.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use overlapped::{CompletionPort, Engine, MsgFlags, Notify, Packet, Socket, Started};

use super::{ServerArgs, Stats, TICK, banner, stopping};

const RECV: u64 = 1;
const SEND: u64 = 2;
const STOP_KEY: usize = usize::MAX;

struct Conn {
    sock: Socket,
    last: Mutex<Instant>,
}

type Table = Mutex<HashMap<usize, Arc<Conn>>>;

fn end(table: &Table, key: usize) {
    if let Some(c) = table.lock().unwrap_or_else(|p| p.into_inner()).remove(&key) {
        let _ = c.sock.close();
    }
}

/// Echo loop for one connection, starting with received data (`Some`) or
/// with a receive to post (`None`); immediate completions are handled here,
/// pending ones come back as packets.
fn drive(
    conn: &Conn,
    key: usize,
    table: &Table,
    stats: &Stats,
    size: usize,
    mut data: Vec<u8>,
    mut have: bool,
) {
    loop {
        if have {
            match conn.sock.send(data, MsgFlags::empty(), Notify::Port(SEND)) {
                Ok(Started::Now { op, .. }) => match op.wait() {
                    Ok(c) if c.error.is_none() => {
                        stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
                        data = c.data;
                    }
                    _ => return end(table, key),
                },
                Ok(Started::Pending(_)) => return,
                Err(_) => return end(table, key),
            }
        }
        data.resize(data.capacity().max(size), 0);
        match conn.sock.recv(data, MsgFlags::empty(), Notify::Port(RECV)) {
            Ok(Started::Now { op, .. }) => match op.wait() {
                Ok(c) if c.error.is_none() && c.bytes > 0 => {
                    data = c.data;
                    have = true;
                }
                _ => return end(table, key),
            },
            Ok(Started::Pending(_)) => return,
            Err(_) => return end(table, key),
        }
    }
}

fn worker(port: CompletionPort, table: Arc<Table>, stats: Arc<Stats>, size: usize) {
    loop {
        let p: Packet = match port.get_queued(Some(TICK)) {
            Ok(Some(p)) => p,
            Ok(None) if stopping() => return,
            Ok(None) => continue,
            Err(_) => return,
        };
        if p.key == STOP_KEY && p.is_posted() {
            return;
        }
        let key = p.key;
        let tag = p.tag;
        let Ok(c) = p.into_completion::<Vec<u8>>() else {
            continue;
        };
        let conn = table
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let Some(conn) = conn else { continue };
        if c.error.is_some() || (tag == RECV && c.bytes == 0) {
            end(&table, key);
            continue;
        }
        *conn.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        if tag == SEND {
            stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
        }
        drive(&conn, key, &table, &stats, size, c.data, tag == RECV);
    }
}

/// Serves until stopped.
pub fn serve(
    engine: &Engine,
    args: &ServerArgs,
    idle: Option<Duration>,
    stats: &Arc<Stats>,
) -> io::Result<()> {
    let listener = Socket::tcp_listener(engine, &args.addr)?;
    banner(engine, listener.local_addr()?, args.model);
    let workers = if args.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        args.workers
    };
    println!("{workers} worker threads");
    let port = CompletionPort::new(workers);
    let table: Arc<Table> = Arc::new(Mutex::new(HashMap::new()));
    let size = args.buf_size.max(1);
    let handles: Vec<_> = (0..workers)
        .map(|_| {
            let (p, t, s) = (port.clone(), table.clone(), stats.clone());
            std::thread::spawn(move || worker(p, t, s, size))
        })
        .collect();
    let mut next_key = 0usize;
    let mut accept = listener.accept(Notify::None)?.op();
    while !stopping() {
        match accept.result_timeout(Some(TICK))? {
            overlapped::Polled::Incomplete(op) => accept = op,
            overlapped::Polled::Complete(c) => {
                if let (None, Some(sock)) = (c.error, c.data) {
                    let n = table.lock().unwrap_or_else(|p| p.into_inner()).len();
                    if n >= args.max_conns {
                        stats.refused.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.connections.fetch_add(1, Ordering::Relaxed);
                        let key = next_key;
                        next_key = next_key.wrapping_add(1) % (usize::MAX - 1);
                        let _ = sock.set_nodelay(true);
                        port.associate(&sock, key)?;
                        sock.set_skip_port_on_success()?;
                        let conn = Arc::new(Conn {
                            sock,
                            last: Mutex::new(Instant::now()),
                        });
                        table
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(key, conn.clone());
                        drive(
                            &conn,
                            key,
                            &table,
                            stats,
                            size,
                            Vec::with_capacity(size),
                            false,
                        );
                    }
                }
                accept = listener.accept(Notify::None)?.op();
            }
        }
        if let Some(limit) = idle {
            let expired: Vec<usize> = table
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .filter(|(_, c)| c.last.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > limit)
                .map(|(k, _)| *k)
                .collect();
            for k in expired {
                end(&table, k);
            }
        }
    }
    for _ in 0..workers {
        let _ = port.post(STOP_KEY, 0, ());
    }
    for h in handles {
        let _ = h.join();
    }
    let keys: Vec<usize> = table
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .keys()
        .copied()
        .collect();
    for k in keys {
        end(&table, k);
    }
    Ok(())
}
