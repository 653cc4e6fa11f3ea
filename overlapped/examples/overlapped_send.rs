//! The textbook's event-based overlapped sender (`OverlappedSend_win.c`):
//! connect, post a send of "Network is Computer!" (with its terminating
//! NUL, 21 bytes, as in the book), report whether it completed now or is
//! pending, then take the result and print the byte count.
//!
//! `--force-pending` shrinks the send buffer and sends 4 MiB, so the
//! pending branch runs (pair it with `ovl echo-server`, which reads it all).

use std::io;

use overlapped::{
    Engine, Event, INFINITE, MsgFlags, Polled, Socket, Started, WaitMode, wait_for_events,
};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".into());
    let force_pending = args.any(|a| a == "--force-pending");
    let addr = addr.parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad address {addr:?}: {e}"),
        )
    })?;
    let engine = Engine::new()?;
    let sock = Socket::tcp_for(&engine, &addr)?;
    sock.connect_wait(addr)?;

    let msg = if force_pending {
        sock.with_socket2(|s| s.set_send_buffer_size(4096))?;
        vec![b'x'; 4 << 20]
    } else {
        b"Network is Computer!\0".to_vec()
    };
    let ev = Event::new();
    let op = match sock.send(msg, MsgFlags::empty(), &ev)? {
        Started::Now { bytes, op } => {
            println!("send completed at once ({bytes} bytes)");
            op
        }
        Started::Pending(op) => {
            println!("Background data send");
            wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, INFINITE, false)?;
            op
        }
    };
    let done = match op.result(false)? {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => {
            return Err(io::Error::other(
                "the event was set but the send is incomplete",
            ));
        }
    };
    if let Some(e) = done.error {
        return Err(e);
    }
    println!("Send data size: {}", done.bytes);
    Ok(())
}
