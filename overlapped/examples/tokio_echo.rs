//! An echo server on tokio, with the overlapped engine underneath: tokio's
//! runtime runs the tasks, `overlapped::tokio::spawn_driver` drives the
//! engine from tokio's reactor (no extra thread), and each connection is
//! an `overlapped::rt::TcpStream` used through tokio's `AsyncReadExt` /
//! `AsyncWriteExt`.
//!
//! ```text
//! cargo run --features tokio --example tokio_echo -- 127.0.0.1:9000
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```
//!
//! `OVERLAPPED_ENGINE=uring|poll` picks the engine.

mod common;

use std::io;

use overlapped::Engine;
use overlapped::rt::TcpListener;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main(flavor = "current_thread")]
async fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let driver = overlapped::tokio::spawn_driver(&engine)?;
    let listener = TcpListener::bind(&engine, addr)?;
    println!(
        "listening on {} (engine {}: {})",
        listener.local_addr()?,
        engine.kind(),
        engine.reason()
    );
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (mut stream, _peer) = match accepted {
                    Ok(c) => c,
                    Err(e) => {
                        eprintln!("accept failed: {e}");
                        continue;
                    }
                };
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        let n = match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        if stream.write_all(&buf[..n]).await.is_err()
                            || stream.flush().await.is_err()
                        {
                            return;
                        }
                    }
                });
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    driver.abort();
    Ok(())
}
