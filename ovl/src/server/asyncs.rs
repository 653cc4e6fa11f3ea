//! The async model: thread per core, each thread with its own engine and
//! its own `SO_REUSEPORT` listener, a task per connection.
//!
//! `SO_REUSEPORT` would let a second server of this model bind the same
//! port and silently take a share of its connections, so a server first
//! claims the address (see [`claim`]).

use std::io;
use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixSocketAddr, UnixListener};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use overlapped::{Engine, MsgFlags, Notify, Socket, rt};

use super::{CLOSE_WAIT, ServerArgs, Stats, TICK, conn_buffer, stopping};
use crate::engine::Chosen;

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

/// Claims `addr` for this server: no other `ovl` async-model server may
/// hold it (an abstract Unix socket named after the address, released by
/// the kernel when the process ends, however it ends), and nothing else may
/// listen on it (a listener bound without `SO_REUSEPORT` must succeed; it
/// is closed again before the threads bind theirs). The returned socket is
/// the claim: keep it while serving.
fn claim(addr: SocketAddr) -> io::Result<UnixListener> {
    let name = format!("ovl-echo-server-async@{addr}");
    let lock = UnixSocketAddr::from_abstract_name(name.as_bytes())
        .and_then(|a| UnixListener::bind_addr(&a))
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AddrInUse {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot bind {addr}: another `ovl echo-server --model async` is \
                         already listening there (its SO_REUSEPORT listeners would share \
                         the connections)"
                    ),
                )
            } else {
                io::Error::new(
                    e.kind(),
                    format!("cannot claim {addr} for this server: {e}"),
                )
            }
        })?;
    drop(
        std::net::TcpListener::bind(addr)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?,
    );
    Ok(lock)
}

/// Ends a thread's listener: its accept cancelled and its end awaited
/// before the descriptor is closed (see [`super::close_listener`]).
async fn close_listener(listener: Socket) {
    let deadline = Instant::now() + CLOSE_WAIT;
    while listener.cancel_all().unwrap_or(0) > 0 && Instant::now() < deadline {
        rt::sleep(Duration::from_millis(5)).await;
    }
    let _ = listener.close();
}

/// Serves until stopped. `engine` is the one the choice gave on the main
/// thread: every thread builds an engine of the same kind.
pub fn serve(
    engine: &Engine,
    chosen: Chosen,
    args: &ServerArgs,
    idle: Option<Duration>,
    stats: &Arc<Stats>,
) -> io::Result<()> {
    if args.addr.port() == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the async model listens on one port from every thread: give --addr a fixed port",
        ));
    }
    let _claim = claim(args.addr)?;
    let size = args.buf_size;
    let max = args.max_conns;
    let live = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let st = stats.clone();
    let threads = args.workers;
    let builder = Engine::builder().choice(crate::engine::forced(engine.kind()));
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
            close_listener(listener).await;
        }
    })
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot listen on {} (a SO_REUSEPORT listener per thread): {e}",
                args.addr
            ),
        )
    })?;
    println!("listening on {}", args.addr);
    println!(
        "model Async, {} thread{}, each with its own {} engine ({})",
        handles.len(),
        if handles.len() == 1 { "" } else { "s" },
        engine.kind(),
        crate::engine::why(engine, chosen)
    );
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}
