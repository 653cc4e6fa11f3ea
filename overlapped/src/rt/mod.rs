//! A small single-thread async runtime over the same operations.
//!
//! Every [`Op`](crate::Op) is a future resolving to `(io::Result<usize>, B)`
//! — the result and the buffers back. [`block_on`] runs a future and the
//! tasks [`spawn`]ed on the thread; when nothing is ready it parks by
//! **driving the engines** the thread started operations on ("whoever waits,
//! drives"), bounded by the nearest timer. Nothing in the core depends on
//! this module.
//!
//! Timers ([`sleep`], [`timeout`]) use the engine's own wait timeout (the
//! deadline bounds `io_uring_enter`/`epoll_wait`).
//!
//! # Cancellation
//!
//! Dropping a pending operation's future submits a real cancel; the
//! operation still completes exactly once inside the engine. A stream
//! receive whose future was dropped after the kernel had already delivered
//! bytes keeps those bytes for the next receive on that socket: no byte is
//! lost (either the cancel won and the bytes are still in the socket, or
//! they are served first to the next receive). Receives are therefore
//! cancel-safe; a dropped send may have sent part of its bytes (its count is
//! lost with the future) — not cancel-safe, as with any stream API.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::core::wait_until;
use crate::thread::{ThreadCtx, current_ctx, reap_thread_engines_if_due, with_thread_engines};

mod net;
pub use net::{TcpListener, TcpStream, UdpSocket};

type Task = Pin<Box<dyn Future<Output = ()>>>;

const MAIN: usize = usize::MAX;

struct TaskWaker {
    id: usize,
    queue: Arc<Mutex<VecDeque<usize>>>,
    ctx: Arc<ThreadCtx>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(self.id);
        self.ctx.wake();
    }
}

struct Exec {
    tasks: RefCell<Slab<Option<Task>>>,
    queue: Arc<Mutex<VecDeque<usize>>>,
    timers: RefCell<BTreeMap<(Instant, u64), Waker>>,
    next_timer: std::cell::Cell<u64>,
    ctx: Arc<ThreadCtx>,
}

impl Exec {
    fn waker(&self, id: usize) -> Waker {
        Waker::from(Arc::new(TaskWaker {
            id,
            queue: self.queue.clone(),
            ctx: self.ctx.clone(),
        }))
    }
    fn pop(&self) -> Option<usize> {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }
    /// How many tasks are queued now: one pass of the run loop polls these
    /// and no more, so a task that wakes itself at once (a yield) waits for
    /// the next pass, after the engines were looked at.
    fn ready_count(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    fn has_ready(&self) -> bool {
        !self
            .queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }
}

thread_local! {
    static EXEC: Rc<Exec> = Rc::new(Exec {
        tasks: RefCell::new(Slab::new()),
        queue: Arc::new(Mutex::new(VecDeque::new())),
        timers: RefCell::new(BTreeMap::new()),
        next_timer: std::cell::Cell::new(0),
        ctx: current_ctx(),
    });
}

/// Operations a task may take results of in one poll before it yields (a
/// task whose operations always complete at once would otherwise never let
/// the thread's other tasks run).
const COOP_BUDGET: u32 = 32;

thread_local! {
    static BUDGET: std::cell::Cell<u32> = const { std::cell::Cell::new(u32::MAX) };
}

/// Spends one unit of the running task's budget; false when it is spent.
/// Outside [`block_on`] the budget is unlimited.
fn coop_step() -> bool {
    BUDGET
        .try_with(|b| {
            let left = b.get();
            if left == 0 {
                return false;
            }
            if left != u32::MAX {
                b.set(left - 1);
            }
            true
        })
        .unwrap_or(true)
}

/// Before an operation starts: yields once the running task has used its
/// budget, so a task whose operations keep completing at once lets the
/// thread's other tasks run. (An operation that completed at start still
/// resolves on its first poll; the yield comes before the start.)
pub(crate) async fn coop() {
    if !coop_step() {
        yield_now().await;
    }
}

/// Yields to the runtime once: the task is polled again after the tasks
/// already ready. A loop of raw operations that always complete at start
/// should call this now and then (the methods of [`TcpStream`] and friends
/// do it for you).
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

fn set_budget(n: u32) {
    let _ = BUDGET.try_with(|b| b.set(n));
}

fn exec() -> Rc<Exec> {
    EXEC.with(Rc::clone)
}

/// Runs `future` to completion on this thread, together with the tasks
/// spawned here, driving the thread's engines while nothing is ready.
///
/// # Examples
///
/// ```
/// use overlapped::Engine;
/// use overlapped::rt::{self, TcpListener, TcpStream};
///
/// # fn main() -> std::io::Result<()> {
/// let engine = Engine::new()?;
/// rt::block_on(async {
///     let listener = TcpListener::bind(&engine, "127.0.0.1:0".parse().unwrap())?;
///     let addr = listener.local_addr()?;
///     let e2 = engine.clone();
///     let client = rt::spawn(async move {
///         let c = TcpStream::connect(&e2, addr).await.unwrap();
///         let (r, _) = c.write_all_owned(b"hi".to_vec()).await;
///         r.unwrap();
///     });
///     let (s, _) = listener.accept().await?;
///     let got = s.read_exact_owned(2).await?;
///     assert_eq!(&got[..], b"hi");
///     client.await;
///     Ok(())
/// })
/// # }
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let ex = exec();
    let mut future = std::pin::pin!(future);
    let main_waker = ex.waker(MAIN);
    ex.queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(MAIN);
    loop {
        // Operations started by the tasks polled here go to the kernel
        // together, with the next wait.
        let done = crate::thread::batch(|| {
            for _ in 0..ex.ready_count() {
                let Some(id) = ex.pop() else { break };
                set_budget(COOP_BUDGET);
                if id == MAIN {
                    if let Poll::Ready(v) =
                        future.as_mut().poll(&mut Context::from_waker(&main_waker))
                    {
                        return Some(v);
                    }
                    continue;
                }
                let task = ex.tasks.borrow_mut().get_mut(id).and_then(Option::take);
                let Some(mut task) = task else { continue };
                let w = ex.waker(id);
                if task.as_mut().poll(&mut Context::from_waker(&w)).is_ready() {
                    ex.tasks.borrow_mut().try_remove(id);
                } else if let Some(slot) = ex.tasks.borrow_mut().get_mut(id) {
                    *slot = Some(task);
                }
            }
            None
        });
        set_budget(u32::MAX);
        if let Some(v) = done {
            return v;
        }
        // Fire due timers.
        let now = Instant::now();
        let due: Vec<Waker> = {
            let mut t = ex.timers.borrow_mut();
            let later = t.split_off(&(now, u64::MAX));
            std::mem::replace(&mut *t, later).into_values().collect()
        };
        for w in due {
            w.wake();
        }
        if ex.has_ready() {
            // Tasks that stay ready (operations completing at start, yields)
            // must not starve the operations waiting in the kernel: their
            // completions are still reaped every REAP_INTERVAL_US.
            reap_thread_engines_if_due();
            continue;
        }
        let deadline = ex.timers.borrow().keys().next().map(|k| k.0);
        with_thread_engines(|engines| wait_until(engines, deadline, &mut || ex.has_ready()));
    }
}

/// A handle to a spawned task's output.
#[derive(Debug)]
pub struct JoinHandle<T> {
    state: Rc<RefCell<(Option<T>, Option<Waker>)>>,
}

impl<T> Future for JoinHandle<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut st = self.state.borrow_mut();
        match st.0.take() {
            Some(v) => Poll::Ready(v),
            None => {
                st.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl<T> JoinHandle<T> {
    /// True once the task finished.
    pub fn is_finished(&self) -> bool {
        self.state.borrow().0.is_some()
    }
}

/// Spawns a task on this thread. It runs inside [`block_on`] (tasks spawned
/// outside one wait for the next `block_on` on this thread).
pub fn spawn<F: Future + 'static>(future: F) -> JoinHandle<F::Output> {
    let state = Rc::new(RefCell::new((None, None::<Waker>)));
    let st2 = state.clone();
    let task: Task = Box::pin(async move {
        let v = future.await;
        let w = {
            let mut s = st2.borrow_mut();
            s.0 = Some(v);
            s.1.take()
        };
        if let Some(w) = w {
            w.wake();
        }
    });
    let ex = exec();
    let id = ex.tasks.borrow_mut().insert(Some(task));
    ex.queue
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(id);
    JoinHandle { state }
}

/// A future that completes after a duration.
#[derive(Debug)]
pub struct Sleep {
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

/// Completes after `d`.
pub fn sleep(d: Duration) -> Sleep {
    Sleep {
        deadline: Instant::now() + d,
        key: None,
    }
}

impl Future for Sleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            return Poll::Ready(());
        }
        let ex = exec();
        let key = match self.key {
            Some(k) => k,
            None => {
                let n = ex.next_timer.get();
                ex.next_timer.set(n + 1);
                let k = (self.deadline, n);
                self.key = Some(k);
                k
            }
        };
        ex.timers.borrow_mut().insert(key, cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(k) = self.key {
            let _ = EXEC.try_with(|ex| ex.timers.borrow_mut().remove(&k));
        }
    }
}

/// Runs `future` for at most `d`. On timeout the future is dropped — for an
/// operation that submits its cancel — and the result is `TimedOut`.
pub async fn timeout<F: Future>(d: Duration, future: F) -> io::Result<F::Output> {
    let mut future = std::pin::pin!(future);
    let mut timer = std::pin::pin!(sleep(d));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(v));
        }
        if timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")));
        }
        Poll::Pending
    })
    .await
}

/// Thread per core: starts `threads` threads (0: one per CPU), each with its
/// own engine (built from `engine`) and its own listener on `addr` (`SO_REUSEPORT`, so the kernel
/// spreads connections), and runs `serve(listener)` on each under
/// [`block_on`]. Bind `addr` with a fixed port (port 0 would give each
/// thread a different port). Returns the threads' handles.
///
/// # Errors
/// The first thread's engine or listener error (the others are not started).
pub fn thread_per_core<F, Fut>(
    engine: crate::EngineBuilder,
    threads: usize,
    addr: std::net::SocketAddr,
    serve: F,
) -> io::Result<Vec<std::thread::JoinHandle<()>>>
where
    F: Fn(crate::Socket) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        threads
    };
    let serve = Arc::new(serve);
    let mut handles = Vec::with_capacity(threads);
    for i in 0..threads {
        let (tx, rx) = std::sync::mpsc::channel();
        let serve = serve.clone();
        let builder = engine.clone();
        let h = std::thread::Builder::new()
            .name(format!("overlapped-core-{i}"))
            .spawn(move || {
                let setup = (|| {
                    let engine = builder.build()?;
                    let l = crate::Socket::tcp_for(&engine, &addr)?;
                    l.with_socket2(|s| {
                        s.set_reuse_address(true)?;
                        s.set_reuse_port(true)
                    })?;
                    l.bind(&addr)?;
                    l.listen(1024)?;
                    Ok::<_, io::Error>(l)
                })();
                match setup {
                    Ok(l) => {
                        let _ = tx.send(Ok(()));
                        block_on(serve(l));
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            })?;
        rx.recv()
            .map_err(|_| io::Error::other("a server thread died while starting"))??;
        handles.push(h);
    }
    Ok(handles)
}
