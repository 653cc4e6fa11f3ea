//! The textbook's completion-routine echo server (`CmplRouEchoServ_win.c`):
//! one thread serves many clients, every step driven by a completion
//! routine run in an alertable sleep.
//!
//! Fixed here: the receive length is restored after every echo (the book's
//! later receives were capped at the previous message's size), every start
//! and completion result is checked (a failed or reset connection is closed
//! instead of re-posting on a dead socket), and accepting is an operation
//! with a routine too, so new clients never wait for a 100 ms poll loop.
//!
//! ```text
//! cargo run --example routine_echo_server -- 127.0.0.1:9000
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```

mod common;

use std::io;
use std::rc::Rc;

use overlapped::{Completion, Engine, INFINITE, MsgFlags, Notify, Socket, sleep_ex};

const BUF: usize = 1024;

fn post_accept(listener: Rc<Socket>) {
    let l2 = listener.clone();
    let r = listener.accept(Notify::routine(move |c: Completion<Option<Socket>>| {
        match (c.error, c.data) {
            (None, Some(sock)) => {
                println!(
                    "Client connected: {}",
                    c.addr.map_or("?".into(), |a| a.to_string())
                );
                post_recv(Rc::new(sock), Vec::with_capacity(BUF));
            }
            (Some(e), _) => eprintln!("accept failed: {e}"),
            _ => {}
        }
        post_accept(l2);
    }));
    if let Err(e) = r {
        eprintln!("accept could not start: {}", e.error);
    }
}

fn post_recv(sock: Rc<Socket>, mut buf: Vec<u8>) {
    buf.resize(BUF, 0); // restore the full receive length
    let s2 = sock.clone();
    let r = sock.recv(
        buf,
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Vec<u8>>| {
            if c.error.is_some() || c.bytes == 0 {
                println!("Client disconnected");
                let _ = s2.close();
                return;
            }
            post_send(s2, c.data);
        }),
    );
    if r.is_err() {
        let _ = sock.close();
    }
}

fn post_send(sock: Rc<Socket>, data: Vec<u8>) {
    let s2 = sock.clone();
    let r = sock.send(
        data,
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Vec<u8>>| {
            if c.error.is_some() {
                println!("Client disconnected");
                let _ = s2.close();
                return;
            }
            post_recv(s2, c.data);
        }),
    );
    if r.is_err() {
        let _ = sock.close();
    }
}

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let listener = Rc::new(Socket::tcp_listener(&engine, &addr)?);
    println!(
        "listening on {} (engine {})",
        listener.local_addr()?,
        engine.kind()
    );
    post_accept(listener);
    loop {
        sleep_ex(INFINITE, true);
    }
}
