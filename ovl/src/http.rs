//! `ovl http-server`: a hyper 1.x HTTP/1.1 "hello" server on a tokio
//! `current_thread` runtime, on tokio's sockets or on ours (the `tokio`
//! feature: `overlapped::rt::TcpListener`, the engine driven by
//! `overlapped::tokio::spawn_driver`). The same service, the same hyper
//! settings and the same adapter to hyper's I/O traits on both, so `ovl
//! bench --modes http` compares the sockets and nothing else.
//!
//! Every request gets `200 OK` with the body [`BODY`], keep-alive. SIGTERM
//! or Ctrl-C stops the server; with `OVL_STATS=1` it then prints its
//! engine's counters and the requests served on one `OVL-STATS {json}`
//! line, as `ovl echo-server` does.

use std::convert::Infallible;
use std::io::{self, Write};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use overlapped::probe::EngineChoice;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::server::{STATS_PREFIX, stats_wanted};

/// The body of every response.
pub const BODY: &str = "Hello, World!";

/// Whose sockets hyper runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Sockets {
    /// `tokio::net::TcpListener` and `TcpStream`.
    Tokio,
    /// `overlapped::rt::TcpListener` and `TcpStream` on the io_uring engine.
    Uring,
    /// `overlapped::rt::TcpListener` and `TcpStream` on the poll engine.
    Poll,
}

/// Options of `ovl http-server`.
#[derive(Debug, clap::Args)]
pub struct HttpArgs {
    /// Whose sockets: tokio's, or ours on the io_uring or the poll engine.
    #[arg(long, value_enum, default_value_t = Sockets::Uring)]
    pub sockets: Sockets,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
}

/// hyper's I/O traits over a tokio `AsyncRead + AsyncWrite` (what
/// `hyper_util::rt::TokioIo` does; this crate has no `unsafe`, so a read
/// lands in a stack buffer first and is copied into hyper's).
struct HyperIo<T>(T);

impl<T: AsyncRead + Unpin> hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let mut tmp = [MaybeUninit::<u8>::uninit(); 8192];
        let n = buf.remaining().min(tmp.len());
        let mut rb = ReadBuf::uninit(&mut tmp[..n]);
        match Pin::new(&mut self.get_mut().0).poll_read(cx, &mut rb) {
            Poll::Ready(Ok(())) => {
                buf.put_slice(rb.filled());
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }
}

/// Serves one connection: every request answered with [`BODY`].
async fn serve<T>(io: T, served: Arc<AtomicU64>)
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |_req: Request<Incoming>| {
        served.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(BODY.to_string())) }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(HyperIo(io), service)
        .await;
}

/// Accepts and serves until SIGTERM or Ctrl-C; returns the engine's
/// counters (ours) and the requests served.
async fn accept_loop(
    args: &HttpArgs,
    served: Arc<AtomicU64>,
) -> io::Result<Option<overlapped::Counters>> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    match args.sockets {
        Sockets::Tokio => {
            let l = tokio::net::TcpListener::bind(args.addr).await?;
            listening(&l.local_addr()?, "tokio's sockets")?;
            loop {
                tokio::select! {
                    r = l.accept() => {
                        let (s, _) = r?;
                        let _ = s.set_nodelay(true);
                        tokio::spawn(serve(s, served.clone()));
                    }
                    _ = term.recv() => return Ok(None),
                    _ = &mut ctrl_c => return Ok(None),
                }
            }
        }
        Sockets::Uring | Sockets::Poll => {
            let choice = if args.sockets == Sockets::Uring {
                EngineChoice::Uring
            } else {
                EngineChoice::Poll
            };
            let engine = overlapped::Engine::builder().choice(choice).build()?;
            let driver = overlapped::tokio::spawn_driver(&engine)?;
            let l = overlapped::rt::TcpListener::bind(&engine, args.addr)?;
            listening(&l.local_addr()?, &format!("ours, engine {}", engine.kind()))?;
            let r = loop {
                tokio::select! {
                    r = l.accept() => {
                        let (s, _) = match r {
                            Ok(v) => v,
                            Err(e) => break Err(e),
                        };
                        let _ = s.socket().set_nodelay(true);
                        tokio::spawn(serve(s, served.clone()));
                    }
                    _ = term.recv() => break Ok(()),
                    _ = &mut ctrl_c => break Ok(()),
                }
            };
            driver.abort();
            r.map(|()| Some(engine.counters()))
        }
    }
}

fn listening(addr: &SocketAddr, what: &str) -> io::Result<()> {
    println!("listening on {addr}");
    println!("hyper HTTP/1.1 on {what}, tokio current_thread");
    io::stdout().flush()
}

/// Runs `ovl http-server`.
pub fn run(args: HttpArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ovl http-server: cannot build the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = Arc::new(AtomicU64::new(0));
    let r = rt.block_on(accept_loop(&args, served.clone()));
    match r {
        Ok(counters) => {
            let served = served.load(Ordering::Relaxed);
            println!("stopped: {served} requests served");
            // tokio's sockets have no engine to count.
            if let Some(c) = counters.filter(|_| stats_wanted()) {
                println!(
                    "{STATS_PREFIX}{}",
                    serde_json::json!({
                        "submitted": c.submitted,
                        "completed_now": c.completed_now,
                        "completed_later": c.completed_later,
                        "cancelled": c.cancelled,
                        "enter_calls": c.enter_calls,
                        "direct_calls": c.direct_calls,
                        "requests": served,
                    })
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ovl http-server: {e}");
            ExitCode::FAILURE
        }
    }
}
