//! A socket as a waitable object: one wait on a stop event and a socket
//! returns when the socket's receive completes (Windows signals a socket
//! handle on each completion of its operations).
//!
//! ```text
//! cargo run --example socket_wait
//! ```

use std::io::{self, Write};

use overlapped::{
    Engine, Event, INFINITE, MsgFlags, Notify, Socket, WaitMode, WaitOutcome, Waitable,
    wait_for_events,
};

fn main() -> io::Result<()> {
    let engine = Engine::new()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let sock = Socket::tcp_for(&engine, &addr)?;
    sock.connect_wait(addr)?;
    let (mut peer, _) = listener.accept()?;

    let op = sock.recv(vec![0u8; 64], MsgFlags::empty(), Notify::None)?;
    let stop = Event::new();
    let writer = std::thread::spawn(move || peer.write_all(b"hello, waiter"));
    let list = [Waitable::from(&stop), Waitable::from(&sock)];
    match wait_for_events(&list, WaitMode::Any, INFINITE, false)? {
        WaitOutcome::Event(1) => {
            let done = op.op().wait()?;
            println!(
                "socket signalled: {:?}",
                String::from_utf8_lossy(&done.data[..done.bytes])
            );
        }
        other => println!("unexpected: {other:?}"),
    }
    writer.join().expect("the writer ran")?;
    Ok(())
}
