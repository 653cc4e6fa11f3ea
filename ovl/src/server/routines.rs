//! The routines model: one thread, every I/O completion handled by a
//! completion routine run in an alertable sleep (the textbook's
//! completion-routine echo server, with its defects fixed: the receive
//! length is restored after every echo, errors end the connection, and
//! accepts are operations too, so new clients wait for no poll loop).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use overlapped::{Completion, Engine, MsgFlags, Notify, Slice, Socket, sleep_ex};

use super::{Idle, ServerArgs, Stats, TICK, banner, close_listener, conn_buffer, listen, stopping};
use crate::engine::Chosen;

struct Conn {
    sock: Socket,
    idle: Idle,
}

struct Server {
    conns: RefCell<HashMap<u64, Rc<Conn>>>,
    next: std::cell::Cell<u64>,
    stats: Arc<Stats>,
    buf_size: usize,
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
                });
                s2.conns.borrow_mut().insert(id, conn.clone());
                post_recv(&s2, id, conn, conn_buffer(s2.buf_size));
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

fn post_recv(srv: &Shared, id: u64, conn: Rc<Conn>, mut buf: Slice) {
    // Offer the whole buffer again (the textbook forgets to restore the
    // length after a short receive).
    buf.set_range(..);
    let s2 = srv.clone();
    let c2 = conn.clone();
    let r = conn.sock.recv(
        buf,
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Slice>| {
            if c.error.is_some() || c.bytes == 0 {
                end(&s2, id);
                return;
            }
            c2.idle.touch();
            post_send(&s2, id, c2, c.data);
        }),
    );
    if r.is_err() {
        end(srv, id);
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
                end(&s2, id);
                return;
            }
            s2.stats.bytes.fetch_add(c.bytes as u64, Ordering::Relaxed);
            post_recv(&s2, id, c2, c.data);
        }),
    );
    if r.is_err() {
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
        buf_size: args.buf_size,
        max_conns: args.max_conns,
        accept_failed: std::cell::Cell::new(false),
    });
    post_accept(&srv, &listener);
    while !stopping() {
        sleep_ex(Some(TICK), true);
        if srv.accept_failed.replace(false) {
            post_accept(&srv, &listener);
        }
        if idle.is_some() {
            let expired: Vec<u64> = srv
                .conns
                .borrow()
                .iter()
                .filter(|(_, c)| c.idle.expired(idle))
                .map(|(k, _)| *k)
                .collect();
            for id in expired {
                end(&srv, id);
            }
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
