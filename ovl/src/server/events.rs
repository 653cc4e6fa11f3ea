//! The events model: one thread waits on many event objects at once (one
//! per connection plus one for the listener) and handles whichever are set.
//! A model of its own: the wait covers any number of events (Winsock's limit
//! of 64 is lifted), and the lowest-index rule is made fair by handling
//! every set event after each wait.
//!
//! Idle connections hold no buffer (see [the server's docs](super)): a
//! connection starts with a zero-byte receive; when it completes, the
//! connection takes a buffer from the pool and posts the real receive. The
//! loop's tick cancels a real receive that waited `--buf-release`; once it
//! completes *aborted*, the buffer goes back and a zero-byte receive is
//! posted.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use overlapped::{Engine, Event, MsgFlags, Op, Polled, Slice, Socket, WaitMode, wait_for_events};

use super::{
    Idle, Pool, ServerArgs, Stats, TICK, banner, close_listener, listen, probe_buffer, stopping,
    stream_ended,
};
use crate::engine::Chosen;

enum Pending {
    /// A zero-byte receive: the connection is idle and holds no buffer.
    Probe(Op<Slice>),
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
fn post_recv(conn: &mut Conn, mut buf: Slice, pool: &Pool) -> bool {
    pool.widen(&mut buf);
    match conn.sock.recv(buf, MsgFlags::empty(), &conn.ev) {
        Ok(s) => {
            conn.op = Some(Pending::Recv(s.op()));
            true
        }
        Err(e) => {
            pool.give(e.bufs);
            false
        }
    }
}

/// The connection goes idle: a zero-byte receive, no buffer held.
fn post_probe(conn: &mut Conn) -> bool {
    match conn.sock.recv(probe_buffer(), MsgFlags::empty(), &conn.ev) {
        Ok(s) => {
            conn.op = Some(Pending::Probe(s.op()));
            true
        }
        Err(_) => false,
    }
}

/// Handles a set event of a connection. False when the connection ended.
fn progress(conn: &mut Conn, stats: &Stats, pool: &Pool) -> bool {
    let Some(p) = conn.op.take() else {
        return false;
    };
    match p {
        Pending::Probe(op) => match op.result(false) {
            // Data arrived (not the end of the stream): take a buffer.
            Ok(Polled::Complete(c)) => {
                c.error.is_none() && !stream_ended(&conn.sock) && post_recv(conn, pool.take(), pool)
            }
            Ok(Polled::Incomplete(op)) => {
                conn.op = Some(Pending::Probe(op));
                true
            }
            Err(_) => false,
        },
        Pending::Recv(op) => match op.result(false) {
            Ok(Polled::Complete(c)) => {
                if c.is_aborted() {
                    // The tick cancelled it: the connection goes idle.
                    pool.give(c.data);
                    return post_probe(conn);
                }
                if c.error.is_some() || c.bytes == 0 {
                    pool.give(c.data);
                    return false;
                }
                conn.idle.touch();
                match conn.sock.send(c.data, MsgFlags::empty(), &conn.ev) {
                    Ok(s) => {
                        conn.op = Some(Pending::Send(s.op()));
                        true
                    }
                    Err(e) => {
                        pool.give(e.bufs);
                        false
                    }
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
                    pool.give(c.data);
                    return false;
                }
                stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
                conn.idle.touch();
                post_recv(conn, c.data, pool)
            }
            Ok(Polled::Incomplete(op)) => {
                conn.op = Some(Pending::Send(op));
                true
            }
            Err(_) => false,
        },
    }
}

/// Cancels a receive that waited `after` with the buffer: it completes
/// *aborted* (its event is set), and [`progress`] gives the buffer back.
fn release(conn: &Conn, after: Option<Duration>) {
    if let Some(Pending::Recv(op)) = &conn.op {
        if conn.idle.expired(after) && !conn.ev.is_set() {
            // `NotFound` when it completed meanwhile: handled as data.
            let _ = op.cancel();
        }
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
    let pool = Pool::new(args.buf_size, args.buf_max);
    let after = args.release();
    let accept_ev = Event::new();
    // `None` after an accept could not start (e.g. out of descriptors):
    // tried again every tick.
    let mut accept = Some(listener.accept(&accept_ev)?.op());
    let mut last_try = std::time::Instant::now();
    let mut conns: Vec<Conn> = Vec::new();
    let mut last_tick = Instant::now();
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
                                if post_probe(&mut conn) {
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
        let tick = last_tick.elapsed() >= TICK;
        if tick {
            last_tick = Instant::now();
            super::tick_clock();
        }
        conns.retain_mut(|c| {
            let alive = if c.ev.is_set() {
                progress(c, stats, &pool)
            } else {
                true
            };
            if alive && tick {
                release(c, after);
            }
            alive && !c.idle.expired(idle)
        });
    }
    drop(conns);
    drop(accept);
    close_listener(&listener, |t| engine.drive(Some(t)));
    Ok(())
}
