//! The textbook's event-based overlapped sender (`OverlappedSend_win.c`):
//! connect, post a send of "Network is Computer!" (with its terminating
//! NUL, 21 bytes, as in the book), report whether it completed now or is
//! pending, then take the result and print the byte count.
//!
//! `--force-pending` shrinks the send buffer and sends 4 MiB, so the
//! pending branch runs (pair it with `ovl echo-server`, which reads it all).

mod common;

use std::io;

use overlapped::{Engine, Event, MsgFlags, Socket};

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = common::parse_addr(args.next())?;
    let force_pending = args.any(|a| a == "--force-pending");
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
    let started = sock.send(msg, MsgFlags::empty(), &ev)?;
    match started.bytes_now() {
        Some(bytes) => println!("send completed at once ({bytes} bytes)"),
        None => println!("Background data send"),
    }
    let done = common::wait_then_take(&ev, started, "send")?;
    println!("Send data size: {}", done.bytes);
    Ok(())
}
