//! Running the engine from a tokio runtime, with no extra thread (feature
//! `tokio`).
//!
//! An [`Op`](crate::Op) is a future, but it only completes when someone
//! drives its engine: reaps the finished work and wakes the futures. Inside
//! [`rt::block_on`](crate::rt::block_on) the waiting thread does it; inside
//! tokio, [`drive`] (or [`spawn_driver`], which spawns it) does: it
//! registers the engine's pollable descriptor ([`Engine`]'s `AsFd`: the
//! io_uring ring, readable while completions wait, or the epoll set) with
//! tokio's reactor through [`AsyncFd`], and each time it is readable reaps
//! and dispatches without blocking ([`Engine::poll`]), which wakes the
//! tasks awaiting the operations. Nothing blocks in the engine, and no
//! thread is started.
//!
//! Operations started from tokio tasks reach the kernel at their start (a
//! tokio task is not a batch of the engine's; see the crate docs, "When
//! operations reach the kernel"), with one exception: the receive of
//! [`rt::TcpStream`](crate::rt::TcpStream)'s `AsyncRead` on io_uring is
//! left for the driver's next turn, and the driver task is woken for it.
//! tokio polls the driver after the tasks already ready, which leave theirs
//! meanwhile, and the turn submits them all and reaps in one kernel entry
//! (measured: 0.03 kernel entries a request instead of 1 for a hyper server
//! at 50 connections; see `docs/DESIGN.md`, "Inside tokio"). Whatever the
//! engine queues while completing others (the next operation of a socket's
//! queue, a resubmission) the driver submits before it waits again.
//!
//! [`rt::TcpStream`](crate::rt::TcpStream) implements tokio's
//! [`AsyncRead`](::tokio::io::AsyncRead) and
//! [`AsyncWrite`](::tokio::io::AsyncWrite) with this feature, so
//! `tokio::io::AsyncReadExt::read_exact`, `copy`, codecs and the like work
//! on it; its reads are cancel-safe (the receive in flight stays in the
//! stream).
//!
//! # Rules
//!
//! * One driver per engine and runtime (a second registration of the same
//!   descriptor in one reactor fails). Engines are cheap to share: every
//!   task of the runtime may use the one engine.
//! * The driver holds its engine: abort its task (or drop the [`drive`]
//!   future) to let the engine go. Dropping the [`JoinHandle`] detaches the
//!   task, which then runs until the runtime shuts down.
//! * The runtime needs its I/O driver (`enable_io` or `enable_all`).
//! * Do not make blocking calls of this crate (`Op::wait`,
//!   `wait_for_events`, a port's `get_queued`, ...) inside tokio tasks:
//!   they block the worker, as any blocking call does, and after a wait
//!   that returned work the thread's next starts are batched for its next
//!   wait, which a tokio worker may never make.
//! * The thread-exit rule still holds: operations are aborted when the
//!   thread that started them exits. A runtime's workers live as long as
//!   the runtime; `spawn_blocking` threads exit when idle, so do not start
//!   operations there that outlive the closure.
//! * On io_uring the kernel posts a completion when the thread that
//!   submitted the request next enters the kernel (the ring does not
//!   interrupt a running thread, `COOP_TASKRUN`): a worker that
//!   computes for long without a system call delays the completions of the
//!   operations it started until then (at the latest its next timer tick).
//! * `stream.shutdown().await` is tokio's `AsyncWriteExt::shutdown` (the
//!   write side ends once the buffered bytes are sent); the Winsock
//!   `shutdown(how)` is `stream.socket().shutdown(how)`.
//!
//! # Example
//!
//! ```
//! use overlapped::Engine;
//! use overlapped::rt::{TcpListener, TcpStream};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! # fn main() -> std::io::Result<()> {
//! let rt = tokio::runtime::Builder::new_current_thread()
//!     .enable_all()
//!     .build()?;
//! rt.block_on(async {
//!     let engine = Engine::new()?;
//!     let driver = overlapped::tokio::spawn_driver(&engine)?;
//!
//!     let listener = TcpListener::bind(&engine, "127.0.0.1:0".parse().unwrap())?;
//!     let addr = listener.local_addr()?;
//!     let server = tokio::spawn(async move {
//!         let (mut s, _peer) = listener.accept().await?;
//!         let mut buf = [0u8; 5];
//!         s.read_exact(&mut buf).await?;
//!         s.write_all(&buf).await?;
//!         s.flush().await?;
//!         Ok::<_, std::io::Error>(())
//!     });
//!
//!     let mut c = TcpStream::connect(&engine, addr).await?;
//!     c.write_all(b"hello").await?;
//!     let mut back = [0u8; 5];
//!     c.read_exact(&mut back).await?;
//!     assert_eq!(&back, b"hello");
//!     server.await.expect("server task")?;
//!
//!     driver.abort();
//!     Ok(())
//! })
//! # }
//! ```

use std::convert::Infallible;
use std::io;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Poll, Waker};

use ::tokio::io::unix::AsyncFd;
use ::tokio::task::JoinHandle;

use crate::Engine;
use crate::sys::tokio::{Pollable, register};

/// How a stream's read hands its receive to the driver's next turn instead
/// of entering the kernel itself: the receive is queued unsubmitted and the
/// driver task woken ([`Kick::kick`]); tokio runs it after the tasks
/// already ready, which queue theirs meanwhile, and its turn submits them
/// all and reaps in one kernel entry. One per engine (in its core).
#[derive(Debug, Default)]
pub(crate) struct Kick {
    /// Drivers running for the engine (one per runtime that drives it).
    drivers: AtomicUsize,
    /// Requests wait for a driver's turn; set by the first of them, cleared
    /// by the driver before it submits.
    pending: AtomicBool,
    /// The waker of the driver that waits last.
    waker: Mutex<Option<Waker>>,
}

impl Kick {
    /// True while a driver runs: only then may a request be left for its
    /// turn.
    pub(crate) fn driven(&self) -> bool {
        self.drivers.load(Ordering::Acquire) > 0
    }

    /// Requests were left for the driver's turn: wake it (once until its
    /// turn comes).
    pub(crate) fn kick(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            let w = self.waker.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(w) = w.as_ref() {
                w.wake_by_ref();
            }
        }
    }

    /// The driver is about to wait: keep its waker; true when requests
    /// were left meanwhile (then it does not wait).
    fn register(&self, w: &Waker) -> bool {
        {
            let mut slot = self.waker.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(old) if old.will_wake(w) => {}
                _ => *slot = Some(w.clone()),
            }
        }
        self.pending.load(Ordering::Acquire)
    }
}

/// A driver counted in [`Kick::drivers`] until it ends; at its end it
/// submits what was left for its turn (no other turn may come).
struct Driving(Engine);

impl Driving {
    fn new(engine: &Engine) -> Driving {
        engine.inner.kick.drivers.fetch_add(1, Ordering::AcqRel);
        Driving(engine.clone())
    }
}

impl Drop for Driving {
    fn drop(&mut self) {
        let kick = &self.0.inner.kick;
        if kick.drivers.fetch_sub(1, Ordering::AcqRel) == 1 {
            // The last driver: its ended task's waker goes with it.
            *kick.waker.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        self.0.inner.flush_now();
    }
}

/// The loop: submit and reap, wait for the descriptor or a kick, clear the
/// descriptor's readiness, and again. The readiness is cleared before the
/// reap that follows it, so a completion that arrives during the reap (or
/// after it) makes the descriptor ready again: none is left waiting; the
/// kick flag is cleared before the submit, so a request left after the
/// submit kicks again.
async fn run(fd: AsyncFd<Pollable>) -> io::Result<Infallible> {
    let engine = fd.get_ref().engine().clone();
    let _driving = Driving::new(&engine);
    let kick = &engine.inner.kick;
    loop {
        kick.pending.store(false, Ordering::Release);
        engine.poll_and_submit();
        std::future::poll_fn(|cx| {
            if kick.register(cx.waker()) {
                return Poll::Ready(Ok(()));
            }
            match fd.poll_read_ready(cx) {
                Poll::Ready(Ok(mut ready)) => {
                    ready.clear_ready();
                    Poll::Ready(Ok(()))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            }
        })
        .await?;
    }
}

/// Drives `engine` from the tokio runtime that polls this future, until the
/// future is dropped: whenever the engine's descriptor is readable, finished
/// operations are reaped and their futures woken; queued requests are
/// submitted. It returns only with an error of the reactor.
///
/// Spawn it (see [`spawn_driver`]) or `select!` it next to the work that
/// uses the engine.
///
/// # Errors
/// The reactor refused the descriptor (already registered in this runtime:
/// one driver per engine and runtime), or reported an error for it.
///
/// # Panics
/// When first polled outside a tokio runtime, or in one built without its
/// I/O driver (tokio's own rule for every I/O object).
pub async fn drive(engine: Engine) -> io::Result<Infallible> {
    run(register(&engine)?).await
}

/// Spawns [`drive`] on the current tokio runtime for a clone of `engine`.
/// The descriptor is registered now, so a refusal is returned here. Abort
/// the task to stop driving (dropping the handle detaches it).
///
/// # Errors
/// Not called inside a tokio runtime; the reactor refused the descriptor
/// (one driver per engine and runtime).
///
/// # Panics
/// Inside a runtime built without its I/O driver (`enable_io`).
pub fn spawn_driver(engine: &Engine) -> io::Result<JoinHandle<io::Result<Infallible>>> {
    let handle = ::tokio::runtime::Handle::try_current().map_err(io::Error::other)?;
    let _entered = handle.enter();
    let fd = register(engine)?;
    Ok(handle.spawn(run(fd)))
}
