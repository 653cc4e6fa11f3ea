//! Baseline: a std echo server with a thread per connection.

use std::io::{Read, Write};

fn main() -> std::io::Result<()> {
    let addr = bench_baselines::addr_arg();
    let l = std::net::TcpListener::bind(addr)?;
    println!("listening on {}", l.local_addr()?);
    std::io::stdout().flush()?;
    for s in l.incoming() {
        let Ok(mut s) = s else { continue };
        let _ = s.set_nodelay(true);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    Ok(())
}
