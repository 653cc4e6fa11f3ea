//! Baseline echo servers for `ovl bench`, one binary each in `src/bin`:
//! `tokio-echo` (tokio `current_thread`), `std-echo` (a std thread per
//! connection), `uring-echo` (a raw io_uring loop, the near-limit reference). Each takes `--addr HOST:PORT`, prints `listening on ADDR`,
//! and echoes every byte until killed.

/// Reads `--addr HOST:PORT` from the command line (default 127.0.0.1:9000).
pub fn addr_arg() -> std::net::SocketAddr {
    let args: Vec<String> = std::env::args().collect();
    let v = args
        .iter()
        .position(|a| a == "--addr")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:9000".into());
    match v.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bad --addr {v:?}: {e}");
            std::process::exit(2);
        }
    }
}
