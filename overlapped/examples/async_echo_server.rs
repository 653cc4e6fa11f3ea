//! An echo server in async/await on the library's own runtime: thread per
//! core, each thread with its own engine and `SO_REUSEPORT` listener, a task
//! per connection, owned buffers going in and coming back.
//!
//! ```text
//! cargo run --example async_echo_server -- 127.0.0.1:9000
//! cargo run --example echo_client -- 127.0.0.1:9000
//! ```

mod common;

use std::io;

use overlapped::rt::{self, TcpListener};
use overlapped::{Engine, Socket};

async fn serve(listener: Socket) {
    let listener = TcpListener::from_socket(listener);
    loop {
        let (stream, _peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("accept failed: {e}");
                continue;
            }
        };
        rt::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                buf.resize(4096, 0);
                let (r, b) = stream.read_owned(buf).await;
                match r {
                    Ok(n) if n > 0 => {}
                    _ => return,
                }
                let (w, b) = stream.write_all_owned(b).await;
                if w.is_err() {
                    return;
                }
                buf = b;
            }
        });
    }
}

fn main() -> io::Result<()> {
    let mut addr = common::parse_addr(std::env::args().nth(1))?;
    if addr.port() == 0 {
        // Every thread binds the same port: pick one now.
        addr.set_port(std::net::TcpListener::bind(addr)?.local_addr()?.port());
    }
    let threads = rt::thread_per_core(Engine::builder(), 0, addr, serve)?;
    println!("listening on {addr} ({} threads)", threads.len());
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
