//! The textbook's "stable" echo client (`StableEchoClnt_win.c`): type a
//! line, see it echoed; `q` quits. It reads until the whole line came back,
//! bounds every read by the room left, and stops with a clear message when
//! the server closes or resets mid-line (the book's version loops forever).
//!
//! ```text
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```

mod common;

use std::io::{self, BufRead, Write};

use overlapped::{Engine, MsgFlags, Notify, Socket};

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let sock = Socket::tcp_for(&engine, &addr)?;
    sock.connect_wait(addr)?;
    println!("Connected...........");
    let stdin = io::stdin();
    let mut line = String::new();
    loop {
        print!("Input message(Q to quit): ");
        io::stdout().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(());
        }
        if matches!(line.trim_end_matches(['\r', '\n']), "q" | "Q") {
            return Ok(());
        }
        let sent = sock
            .send(line.clone().into_bytes(), MsgFlags::empty(), Notify::None)?
            .wait()?;
        if let Some(e) = sent.error {
            return Err(e);
        }
        let mut echo = Vec::with_capacity(line.len());
        while echo.len() < line.len() {
            let room = vec![0u8; line.len() - echo.len()];
            let c = sock.recv(room, MsgFlags::empty(), Notify::None)?.wait()?;
            if let Some(e) = c.error {
                eprintln!(
                    "connection error after {} of {} bytes of the echo: {e}",
                    echo.len(),
                    line.len()
                );
                std::process::exit(1);
            }
            if c.bytes == 0 {
                eprintln!(
                    "the server closed the connection after {} of {} bytes of the echo",
                    echo.len(),
                    line.len()
                );
                std::process::exit(1);
            }
            echo.extend_from_slice(&c.data);
        }
        print!("Message from server: {}", String::from_utf8_lossy(&echo));
    }
}
