//! `ovl echo-client`: the textbook's "stable" echo client, done right: it
//! reads until the whole message came back, bounds each read by the room
//! left, and stops with a clear message when the server closes or resets
//! mid-message.

use std::io::{self, BufRead, Write};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

use overlapped::probe::EngineChoice;
use overlapped::{Engine, MsgFlags, Notify, Socket};

/// Options of `ovl echo-client`.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:9000")]
    pub addr: SocketAddr,
    /// Send this many messages and verify each echo (no prompt).
    #[arg(long)]
    pub count: Option<u64>,
    /// Size of each scripted message, in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Engine: auto, uring, poll.
    #[arg(long, default_value = "auto")]
    pub engine: EngineChoice,
}

fn send_all(sock: &Socket, data: Vec<u8>) -> io::Result<Vec<u8>> {
    let c = sock.send(data, MsgFlags::empty(), Notify::None)?.wait()?;
    match c.error {
        Some(e) => Err(e),
        None => Ok(c.data),
    }
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
    let engine = match Engine::builder().choice(args.engine).build() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ovl echo-client: cannot start the engine: {e}");
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
        Some(n) => scripted(&sock, n, args.size.max(1)),
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
        let n = line.len();
        if let Err(e) = send_all(sock, line.clone().into_bytes()) {
            eprintln!("send failed: {e}");
            return ExitCode::from(1);
        }
        match recv_exact(sock, n) {
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
        if let Err(e) = send_all(sock, msg.clone()) {
            eprintln!("message {i}: send failed: {e}");
            return ExitCode::from(1);
        }
        match recv_exact(sock, size) {
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
