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

use std::io;

use overlapped::{
    Engine, Event, INFINITE, MsgFlags, Polled, Socket, Started, WaitMode, wait_for_events,
};

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    let addr = addr.parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad address {addr:?}: {e}"),
        )
    })?;
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
    let op = match sock.recv(vec![0u8; 1024], MsgFlags::empty(), &ev)? {
        Started::Now { bytes, op } => {
            println!("receive completed at once ({bytes} bytes)");
            op
        }
        Started::Pending(op) => {
            println!("Background data receive");
            wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, INFINITE, false)?;
            op
        }
    };
    let done = match op.result(false)? {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => {
            return Err(io::Error::other(
                "the event was set but the receive is incomplete",
            ));
        }
    };
    if let Some(e) = done.error {
        return Err(e);
    }
    let text = String::from_utf8_lossy(&done.data);
    println!("Received message: {}", text.trim_end_matches('\0'));
    Ok(())
}
