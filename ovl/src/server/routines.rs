//! The routines model: one thread, every I/O completion handled by a
//! completion routine run in an alertable sleep (the textbook's
//! completion-routine echo server, with its defects fixed: the receive
//! length is restored after every echo, errors end the connection, and
//! accepts are operations too, so new clients wait for no poll loop).
//!
//! Idle connections hold no buffer (see [the server's docs](super)): a
//! connection starts with a zero-byte receive, whose routine takes a buffer
//! from the pool and posts the real receive. A real receive that parks is
//! stored in the connection; the loop's tick cancels it once it waited
//! `--buf-release`, and its routine, seeing it *aborted*, gives the
//! buffer back and posts a zero-byte receive.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use overlapped::{Completion, Engine, MsgFlags, Notify, Op, Slice, Socket, sleep_ex};

use super::{
    Idle, Pool, ServerArgs, Stats, TICK, banner, close_listener, listen, probe_buffer, stopping,
    stream_ended,
};
use crate::engine::Chosen;

struct Conn {
    sock: Socket,
    idle: Idle,
    /// The receive parked with the connection's buffer, if any.
    recv: RefCell<Option<Op<Slice>>>,
}

struct Server {
    conns: RefCell<HashMap<u64, Rc<Conn>>>,
    next: std::cell::Cell<u64>,
    stats: Arc<Stats>,
    pool: Pool,
    max_conns: usize,
    accept_failed: std::cell::Cell<bool>,
}

type Shared = Rc<Server>;

fn post_accept(srv: &Shared, listener: &Rc<Socket>) {
    let s2 = srv.clone();
    let l2 = listener.clone();
    let r = listener.accept(Notify::routine(move |c: Completion<Option<Socket>>| {
        if let (None, Some(sock)) = (&c.error, c.data) {
            if s2.conns.borrow().len() >= s2.max_conns {
                s2.stats.refused.fetch_add(1, Ordering::Relaxed);
                drop(sock);
            } else {
                let id = s2.next.get();
                s2.next.set(id + 1);
                s2.stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = sock.set_nodelay(true);
                let conn = Rc::new(Conn {
                    sock,
                    idle: Idle::new(),
                    recv: RefCell::new(None),
                });
                s2.conns.borrow_mut().insert(id, conn.clone());
                post_probe(&s2, id, conn);
            }
        }
        if !stopping() {
            post_accept(&s2, &l2);
        }
    }));
    if r.is_err() {
        // Out of descriptors or similar: the main loop tries again next tick.
        srv.accept_failed.set(true);
    }
}

fn end(srv: &Shared, id: u64) {
    if let Some(c) = srv.conns.borrow_mut().remove(&id) {
        let _ = c.sock.close();
    }
}

/// Ends a connection, its buffer back to the pool.
fn fail(srv: &Shared, id: u64, buf: Slice) {
    srv.pool.give(buf);
    end(srv, id);
}

/// The connection goes idle: a zero-byte receive, no buffer held.
fn post_probe(srv: &Shared, id: u64, conn: Rc<Conn>) {
    let s2 = srv.clone();
    let c2 = conn.clone();
    let r = conn.sock.recv(
        probe_buffer(),
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Slice>| {
            if c.error.is_some() || stream_ended(&c2.sock) {
                end(&s2, id);
                return;
            }
            // Data arrived: take a buffer.
            let buf = s2.pool.take();
            post_recv(&s2, id, c2, buf);
        }),
    );
    if r.is_err() {
        end(srv, id);
    }
}

fn post_recv(srv: &Shared, id: u64, conn: Rc<Conn>, mut buf: Slice) {
    // Offer the whole buffer again (the textbook forgets to restore the
    // length after a short receive), a larger one after a full receive.
    srv.pool.widen(&mut buf);
    let s2 = srv.clone();
    let c2 = conn.clone();
    let r = conn.sock.recv(
        buf,
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Slice>| {
            c2.recv.borrow_mut().take();
            if c.is_aborted() && s2.conns.borrow().contains_key(&id) {
                // The tick cancelled it: the connection goes idle.
                s2.pool.give(c.data);
                post_probe(&s2, id, c2);
                return;
            }
            if c.error.is_some() || c.bytes == 0 {
                fail(&s2, id, c.data);
                return;
            }
            c2.idle.touch();
            post_send(&s2, id, c2, c.data);
        }),
    );
    match r {
        // Its routine runs in a later alertable wait, after this.
        Ok(started) if started.is_pending() => {
            *conn.recv.borrow_mut() = Some(started.op());
        }
        Ok(_) => {}
        Err(e) => fail(srv, id, e.bufs),
    }
}

fn post_send(srv: &Shared, id: u64, conn: Rc<Conn>, data: Slice) {
    let s2 = srv.clone();
    let c2 = conn.clone();
    let r = conn.sock.send(
        data,
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Slice>| {
            if c.error.is_some() {
                fail(&s2, id, c.data);
                return;
            }
            s2.stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
            c2.idle.touch();
            post_recv(&s2, id, c2, c.data);
        }),
    );
    if let Err(e) = r {
        fail(srv, id, e.bufs);
    }
}

/// Ends the connections idle past the idle timeout, and cancels the
/// receives that waited `release` with a buffer (their routines give the
/// buffers back).
fn tick(srv: &Shared, idle: Option<Duration>, release: Option<Duration>) {
    let mut expired = Vec::new();
    for (id, c) in srv.conns.borrow().iter() {
        if c.idle.expired(idle) {
            expired.push(*id);
        } else if c.idle.expired(release) {
            if let Some(op) = c.recv.borrow_mut().take() {
                // `NotFound` when it completed meanwhile: its routine has
                // the data.
                let _ = op.cancel();
            }
        }
    }
    for id in expired {
        end(srv, id);
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
    let listener = Rc::new(listen(engine, args.addr)?);
    banner(engine, chosen, listener.local_addr()?, args.model);
    let srv: Shared = Rc::new(Server {
        conns: RefCell::new(HashMap::new()),
        next: std::cell::Cell::new(0),
        stats: stats.clone(),
        pool: Pool::new(args.buf_size, args.buf_max),
        max_conns: args.max_conns,
        accept_failed: std::cell::Cell::new(false),
    });
    post_accept(&srv, &listener);
    let mut last_tick = Instant::now();
    while !stopping() {
        sleep_ex(Some(TICK), true);
        if srv.accept_failed.replace(false) {
            post_accept(&srv, &listener);
        }
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            super::tick_clock();
            tick(&srv, idle, args.release());
        }
    }
    let ids: Vec<u64> = srv.conns.borrow().keys().copied().collect();
    for id in ids {
        end(&srv, id);
    }
    // The accept's routine runs in these alertable waits.
    close_listener(&listener, |t| {
        sleep_ex(Some(t), true);
    });
    sleep_ex(Some(Duration::ZERO), true);
    Ok(())
}
