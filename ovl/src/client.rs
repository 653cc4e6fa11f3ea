//! `ovl echo-client`: the textbook's "stable" echo client, done right: it
//! reads until the whole message came back, bounds each read by the room
//! left, and stops with a clear message when the server closes or resets
//! mid-message. A message is sent by one overlapped send that stays in
//! flight while the echo is read, so a message larger than the kernel's
//! buffers streams through (writing it all before reading would stall
//! both sides once the buffers are full).

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use overlapped::probe::EngineChoice;
use overlapped::{MsgFlags, Notify, Socket};

use crate::limits;

/// Options of `ovl echo-client`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// Send this many messages (at least 1) and verify each echo (no
    /// prompt).
    #[arg(long, value_parser = limits::count)]
    pub count: Option<u64>,
    /// Size of each scripted message, in bytes (1 B to 1 GiB).
    #[arg(long, default_value_t = 64, value_parser = limits::message_size)]
    pub size: usize,
    #[arg(long, help = crate::engine::HELP)]
    pub engine: Option<EngineChoice>,
}

/// Sends `data` and reads its echo meanwhile: the send is started first
/// and completes while the echo is read (the reads drive the engine).
fn round_trip(sock: &Socket, data: Vec<u8>) -> Result<Vec<u8>, String> {
    let n = data.len();
    let send = sock
        .send(data, MsgFlags::empty(), Notify::None)
        .map_err(|e| format!("send could not start: {}", e.error))?;
    let echo = recv_exact(sock, n);
    // On an error the send may be stuck; closing the socket (by the
    // caller) ends it, so do not wait for it.
    let echo = echo?;
    let c = send.wait().map_err(|e| format!("send failed: {e}"))?;
    if let Some(e) = c.error {
        return Err(format!("send failed: {e}"));
    }
    if c.bytes != n {
        return Err(format!("sent {} of {n} bytes", c.bytes));
    }
    Ok(echo)
}

/// Reads exactly `n` bytes of echo. `Err` says how far it got.
fn recv_exact(sock: &Socket, n: usize) -> Result<Vec<u8>, String> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let room = vec![0u8; (n - got.len()).min(64 * 1024)];
        let c = sock
            .recv(room, MsgFlags::empty(), Notify::None)
            .map_err(|e| format!("receive could not start: {}", e.error))?
            .wait()
            .map_err(|e| e.to_string())?;
        if let Some(e) = c.error {
            return Err(format!(
                "connection error after {} of {n} bytes of the echo: {e}",
                got.len()
            ));
        }
        if c.bytes == 0 {
            return Err(format!(
                "the server closed the connection after {} of {n} bytes of the echo",
                got.len()
            ));
        }
        got.extend_from_slice(&c.data);
    }
    Ok(got)
}

fn pattern(msg: u64, size: usize) -> Vec<u8> {
    (0..size)
        .map(|i| ((msg as usize).wrapping_mul(131).wrapping_add(i) % 251) as u8)
        .collect()
}

/// Runs the client.
pub fn run(args: ClientArgs) -> ExitCode {
    let engine = match crate::engine::build(args.engine) {
        Ok((e, _)) => e,
        Err(e) => {
            eprintln!("ovl echo-client: {e}");
            return ExitCode::from(2);
        }
    };
    let sock = match Socket::tcp_for(&engine, &args.addr)
        .and_then(|s| s.connect_wait(args.addr).map(|()| s))
    {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ovl echo-client: cannot connect to {}: {e}", args.addr);
            return ExitCode::from(1);
        }
    };
    match args.count {
        Some(n) => scripted(&sock, n, args.size),
        None => interactive(&sock, args.addr),
    }
}

fn interactive(sock: &Socket, addr: SocketAddr) -> ExitCode {
    println!("Connected to {addr}. Type a line and press Enter; Q quits.");
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        print!("Input message (Q to quit): ");
        let _ = io::stdout().flush();
        line.clear();
        match stdin.lock().read_line(&mut line) {
            Ok(0) => return ExitCode::SUCCESS,
            Ok(_) => {}
            Err(e) => {
                eprintln!("cannot read the terminal: {e}");
                return ExitCode::from(1);
            }
        }
        if matches!(line.trim_end_matches(['\r', '\n']), "q" | "Q") {
            return ExitCode::SUCCESS;
        }
        match round_trip(sock, line.clone().into_bytes()) {
            Ok(echo) => print!("Message from server: {}", String::from_utf8_lossy(&echo)),
            Err(why) => {
                eprintln!("{why}");
                return ExitCode::from(1);
            }
        }
    }
}

fn scripted(sock: &Socket, count: u64, size: usize) -> ExitCode {
    let start = Instant::now();
    let mut mismatches = 0u64;
    for i in 0..count {
        let msg = pattern(i, size);
        match round_trip(sock, msg.clone()) {
            Ok(echo) if echo == msg => {}
            Ok(_) => mismatches += 1,
            Err(why) => {
                eprintln!("message {i}: {why}");
                return ExitCode::from(1);
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{count} messages of {size} bytes echoed in {secs:.3} s ({:.0} msgs/s), {mismatches} mismatched",
        count as f64 / secs.max(1e-9)
    );
    if mismatches > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
