//! The events model: one thread waits on many event objects at once (one
//! per connection plus one for the listener) and handles whichever are set.
//! A model of its own: the wait covers any number of events (Winsock's limit
//! of 64 is lifted), and the lowest-index rule is made fair by handling
//! every set event after each wait.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use overlapped::{Engine, Event, MsgFlags, Op, Polled, Slice, Socket, WaitMode, wait_for_events};

use super::{Idle, ServerArgs, Stats, TICK, banner, close_listener, conn_buffer, listen, stopping};
use crate::engine::Chosen;

enum Pending {
    Recv(Op<Slice>),
    Send(Op<Slice>),
}

struct Conn {
    sock: Socket,
    ev: Event,
    op: Option<Pending>,
    idle: Idle,
}

/// Receives into the connection's buffer, its window widened back to the
/// whole buffer.
fn post_recv(conn: &mut Conn, mut buf: Slice) -> bool {
    buf.set_range(..);
    match conn.sock.recv(buf, MsgFlags::empty(), &conn.ev) {
        Ok(s) => {
            conn.op = Some(Pending::Recv(s.op()));
            true
        }
        Err(_) => false,
    }
}

/// Handles a set event of a connection. False when the connection ended.
fn progress(conn: &mut Conn, stats: &Stats) -> bool {
    let Some(p) = conn.op.take() else {
        return false;
    };
    match p {
        Pending::Recv(op) => match op.result(false) {
            Ok(Polled::Complete(c)) => {
                if c.error.is_some() || c.bytes == 0 {
                    return false;
                }
                conn.idle.touch();
                match conn.sock.send(c.data, MsgFlags::empty(), &conn.ev) {
                    Ok(s) => {
                        conn.op = Some(Pending::Send(s.op()));
                        true
                    }
                    Err(_) => false,
                }
            }
            Ok(Polled::Incomplete(op)) => {
                conn.op = Some(Pending::Recv(op));
                true
            }
            Err(_) => false,
        },
        Pending::Send(op) => match op.result(false) {
            Ok(Polled::Complete(c)) => {
                if c.error.is_some() {
                    return false;
                }
                stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
                post_recv(conn, c.data)
            }
            Ok(Polled::Incomplete(op)) => {
                conn.op = Some(Pending::Send(op));
                true
            }
            Err(_) => false,
        },
    }
}

/// Serves until stopped.
pub fn serve(
    engine: &Engine,
    chosen: Chosen,
    args: &ServerArgs,
    idle: Option<Duration>,
    stats: &Arc<Stats>,
) -> io::Result<()> {
    let listener = listen(engine, args.addr)?;
    banner(engine, chosen, listener.local_addr()?, args.model);
    let size = args.buf_size;
    let accept_ev = Event::new();
    // `None` after an accept could not start (e.g. out of descriptors):
    // tried again every tick.
    let mut accept = Some(listener.accept(&accept_ev)?.op());
    let mut last_try = std::time::Instant::now();
    let mut conns: Vec<Conn> = Vec::new();
    while !stopping() {
        let mut events = Vec::with_capacity(conns.len() + 1);
        events.push(accept_ev.clone());
        events.extend(conns.iter().map(|c| c.ev.clone()));
        wait_for_events(&events, WaitMode::Any, Some(TICK), false)?;
        if accept.is_none() {
            accept_ev.reset();
            if last_try.elapsed() >= TICK {
                last_try = std::time::Instant::now();
                accept = listener.accept(&accept_ev).ok().map(|s| s.op());
            }
        }
        if accept_ev.is_set() {
            if let Some(op) = accept.take() {
                match op.result(false)? {
                    Polled::Complete(c) => {
                        if let (None, Some(sock)) = (c.error, c.data) {
                            if conns.len() >= args.max_conns {
                                stats.refused.fetch_add(1, Ordering::Relaxed);
                            } else {
                                stats.connections.fetch_add(1, Ordering::Relaxed);
                                let _ = sock.set_nodelay(true);
                                let mut conn = Conn {
                                    sock,
                                    ev: Event::new(),
                                    op: None,
                                    idle: Idle::new(),
                                };
                                if post_recv(&mut conn, conn_buffer(size)) {
                                    conns.push(conn);
                                }
                            }
                        }
                        accept = listener.accept(&accept_ev).ok().map(|s| s.op());
                    }
                    Polled::Incomplete(op) => accept = Some(op),
                }
            }
        }
        conns.retain_mut(|c| {
            let alive = if c.ev.is_set() {
                progress(c, stats)
            } else {
                true
            };
            alive && !c.idle.expired(idle)
        });
    }
    drop(conns);
    drop(accept);
    close_listener(&listener, |t| engine.drive(Some(t)));
    Ok(())
}
