//! The textbook's event-based overlapped receiver (`OverlappedRecv_win.c`):
//! accept one client, post a receive with an event, wait on the event, take
//! the result and print the message.
//!
//! ```text
//! cargo run --example overlapped_recv -- 127.0.0.1:9000
//! cargo run --example overlapped_send -- 127.0.0.1:9000
//! ```
//! Unlike the textbook it prints exactly the bytes received (it does not
//! rely on the sender's terminating NUL) and checks every result.

mod common;

use std::io;

use overlapped::{Engine, Event, MsgFlags, Socket};

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let listener = Socket::tcp_listener(&engine, &addr)?;
    println!(
        "listening on {} (engine {}: {})",
        listener.local_addr()?,
        engine.kind(),
        engine.reason()
    );
    let (sock, peer) = listener.accept_wait()?;
    println!("client {peer} connected");

    let ev = Event::new();
    let started = sock.recv(vec![0u8; 1024], MsgFlags::empty(), &ev)?;
    match started.bytes_now() {
        Some(bytes) => println!("receive completed at once ({bytes} bytes)"),
        None => println!("Background data receive"),
    }
    let done = common::wait_then_take(&ev, started, "receive")?;
    let text = String::from_utf8_lossy(&done.data);
    println!("Received message: {}", text.trim_end_matches('\0'));
    Ok(())
}
