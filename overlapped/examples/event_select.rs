//! The classic `WSAEventSelect` echo server: one thread, one event per
//! socket, `WSAWaitForMultipleEvents` over the listener and every client,
//! `WSAEnumNetworkEvents` on the socket whose event was set, then
//! `FD_ACCEPT` (accept and select the client), `FD_READ` (receive and echo
//! back) and `FD_CLOSE` (close and forget the client).
//!
//! ```text
//! cargo run --example event_select -- 127.0.0.1:9000
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```

mod common;

use std::io;

use overlapped::{
    Engine, Event, INFINITE, MsgFlags, NetworkEvents, Notify, Socket, WaitMode, WaitOutcome,
    wait_for_events,
};

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let listener = Socket::tcp_listener(&engine, &addr)?;
    println!(
        "listening on {} (engine {})",
        listener.local_addr()?,
        engine.kind()
    );
    // The book's two arrays, side by side: sockets and their events. The
    // listener is the first.
    let mut socks = vec![listener];
    let mut events = vec![Event::new()];
    socks[0].event_select(&events[0], NetworkEvents::ACCEPT)?;
    loop {
        let i = match wait_for_events(&events, WaitMode::Any, INFINITE, false)? {
            WaitOutcome::Event(i) => i,
            other => return Err(io::Error::other(format!("unexpected wait: {other:?}"))),
        };
        let record = socks[i].enum_network_events(Some(&events[i]))?;
        if record.contains(NetworkEvents::ACCEPT) {
            let (client, peer) = socks[i].accept_wait()?;
            let ev = Event::new();
            client.event_select(&ev, NetworkEvents::READ | NetworkEvents::CLOSE)?;
            println!("connected client: {peer}");
            socks.push(client);
            events.push(ev);
        }
        if record.contains(NetworkEvents::READ) {
            echo(&socks[i])?;
        }
        if record.contains(NetworkEvents::CLOSE) {
            println!(
                "closed client (error {})",
                record.error_code(NetworkEvents::CLOSE)
            );
            let s = socks.swap_remove(i);
            events.swap_remove(i);
            s.close()?;
        }
    }
}

/// Receives what `FD_READ` told of and sends it back. An end of stream or
/// a reset is left to `FD_CLOSE`.
fn echo(sock: &Socket) -> io::Result<()> {
    let got = sock
        .recv(vec![0u8; 1024], MsgFlags::empty(), Notify::None)?
        .wait()?;
    if let Some(e) = got.error {
        eprintln!("receive: {e}");
        return Ok(());
    }
    if got.bytes > 0 {
        let sent = sock
            .send(
                got.data[..got.bytes].to_vec(),
                MsgFlags::empty(),
                Notify::None,
            )?
            .wait()?;
        if let Some(e) = sent.error {
            eprintln!("send: {e}");
        }
    }
    Ok(())
}
