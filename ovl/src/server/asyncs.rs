//! The async model: thread per core, each thread with its own engine and
//! its own `SO_REUSEPORT` listener, a task per connection.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use overlapped::{MsgFlags, Notify, Socket, rt};

use super::{ServerArgs, Stats, TICK, conn_buffer, stopping};

async fn echo(sock: Socket, stats: Arc<Stats>, size: usize, idle: Option<Duration>) {
    let mut buf = conn_buffer(size);
    loop {
        buf.set_range(..);
        let Ok(started) = sock.recv(buf, MsgFlags::empty(), Notify::None) else {
            return;
        };
        let (r, b) = match idle {
            Some(limit) => match rt::timeout(limit, started.op()).await {
                Ok(v) => v,
                Err(_) => return,
            },
            None => started.op().await,
        };
        match r {
            Ok(n) if n > 0 => {}
            _ => return,
        }
        let Ok(started) = sock.send(b, MsgFlags::empty(), Notify::None) else {
            return;
        };
        let (w, b) = started.op().await;
        match w {
            Ok(n) => {
                stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => return,
        }
        buf = b;
    }
}

/// Serves until stopped.
pub fn serve(args: &ServerArgs, idle: Option<Duration>, stats: &Arc<Stats>) -> io::Result<()> {
    if args.addr.port() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the async model listens on one port from every thread: give --addr a fixed port",
        ));
    }
    let size = args.buf_size.max(1);
    let max = args.max_conns;
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let st = stats.clone();
    let threads = args.workers;
    let builder = overlapped::Engine::builder().choice(args.engine);
    let handles = rt::thread_per_core(builder, threads, args.addr, move |listener: Socket| {
        let stats = st.clone();
        let live = live.clone();
        async move {
            while !stopping() {
                let Ok(started) = listener.accept(Notify::None) else {
                    // Out of descriptors or similar: try again shortly.
                    rt::sleep(TICK).await;
                    continue;
                };
                let Ok((r, sock)) = rt::timeout(TICK, started.op()).await else {
                    continue;
                };
                let (Ok(_), Some(sock)) = (r, sock) else {
                    continue;
                };
                if live.load(Ordering::Relaxed) >= max {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                stats.connections.fetch_add(1, Ordering::Relaxed);
                let _ = sock.set_nodelay(true);
                live.fetch_add(1, Ordering::Relaxed);
                let (s2, l2) = (stats.clone(), live.clone());
                rt::spawn(async move {
                    echo(sock, s2, size, idle).await;
                    l2.fetch_sub(1, Ordering::Relaxed);
                });
            }
        }
    })?;
    println!("listening on {}", args.addr);
    println!(
        "model Async, {} threads, each with its own {:?} engine",
        handles.len(),
        args.engine
    );
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}
