//! Completion routines and alertable waits (`SleepEx`).
//!
//! A routine is given with an operation ([`Notify::routine`](crate::Notify::routine)).
//! When the operation completes — even during its start call — the routine is
//! queued to the thread that started the operation, and runs only while that
//! thread is in an **alertable wait**: [`sleep_ex`] with `alertable`, or
//! [`wait_for_events`](crate::wait_for_events) with `alertable`. The
//! routines queued when the wait returns run, in completion order, then the
//! wait returns *I/O completion*; routines queued while they run (their new
//! operations completed at once) run in the next alertable wait, after the
//! engines were reaped, so they cannot starve operations completing in the
//! kernel.
//!
//! Rules we chose where Windows leaves room:
//!
//! * **No nesting.** Inside a routine every wait is non-alertable: a nested
//!   alertable wait drives the engine but runs no routine (Windows would
//!   recurse). Routines queued meanwhile run in the next alertable wait
//!   after the current batch, so a routine never runs inside another.
//! * **Completion order.** Routines run in the order their operations
//!   completed (Winsock only promises the buffers' filling order).
//! * **Thread exit.** A thread that exits with operations pending aborts
//!   them; its queued routines are dropped with their buffers, and
//!   completions that arrive later are dropped too.
//! * **Batched submission.** Operations started inside routines are
//!   submitted together when the batch of routines ends.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::core::wait_until;
use crate::thread::{
    ThreadCtx, block_with_timers, current_ctx, in_routine, reap_thread_engines_if_due,
    run_routines, thread_engines_added, wait_entered, wait_returned, with_thread_engines,
};

/// How [`sleep_ex`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SleepOutcome {
    /// The time passed (`SleepEx` returns 0).
    Timeout,
    /// One or more completion routines ran (`WAIT_IO_COMPLETION`).
    IoCompletion,
}

/// `SleepEx(timeout, alertable)`: sleeps while driving the engines the
/// thread started operations on. With `alertable`, returns
/// [`SleepOutcome::IoCompletion`] as soon as one or more of the thread's
/// completion routines ran; `timeout: None` sleeps without limit.
///
/// # Examples
///
/// A receive with a completion routine, run by the thread's alertable wait:
///
/// ```
/// use overlapped::{Engine, MsgFlags, Notify, SleepOutcome, Socket, sleep_ex};
/// use std::time::Duration;
///
/// # fn main() -> std::io::Result<()> {
/// let engine = Engine::new()?;
/// let listener = Socket::tcp_listener(&engine, &"127.0.0.1:0".parse().unwrap())?;
/// let addr = listener.local_addr()?;
/// let client = Socket::tcp_for(&engine, &addr)?;
/// client.connect_wait(addr)?;
/// let (server, _) = listener.accept_wait()?;
///
/// let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
/// let g = got.clone();
/// let _op = server.recv(
///     vec![0u8; 16],
///     MsgFlags::empty(),
///     Notify::routine(move |c: overlapped::Completion<Vec<u8>>| *g.borrow_mut() = c.data),
/// )?;
/// client.send(b"ping".to_vec(), MsgFlags::empty(), Notify::None)?.wait()?;
/// // The routine runs only inside an alertable wait of this thread.
/// while sleep_ex(Some(Duration::from_secs(5)), true) != SleepOutcome::IoCompletion {}
/// assert_eq!(&got.borrow()[..], b"ping");
/// # Ok(())
/// # }
/// ```
#[doc(alias = "SleepEx")]
pub fn sleep_ex(timeout: Option<Duration>, alertable: bool) -> SleepOutcome {
    wait_entered();
    let r = sleep_inner(timeout, alertable);
    wait_returned(r == SleepOutcome::IoCompletion, false);
    if r == SleepOutcome::IoCompletion {
        run_routines();
    }
    r
}

/// The sleep itself; routines are run by the caller.
fn sleep_inner(timeout: Option<Duration>, alertable: bool) -> SleepOutcome {
    let alertable = alertable && !in_routine();
    let ctx = current_ctx();
    let deadline = timeout.map(|t| Instant::now() + t);
    if alertable && (ctx.fire_due_timers() || ctx.has_routines()) {
        reap_thread_engines_if_due();
        return SleepOutcome::IoCompletion;
    }
    // Drive the engines the thread started operations on; again when that
    // set changes. An alertable wait ends for the thread's timers too.
    let block = |ready: &mut dyn FnMut() -> bool| {
        block_with_timers(&ctx, alertable, deadline, |until| {
            let added = thread_engines_added();
            with_thread_engines(|engines| {
                wait_until(engines, until, &mut || {
                    ready() || thread_engines_added() != added
                })
            })
        })
    };
    if ctx.wait_routines(alertable, block) {
        SleepOutcome::IoCompletion
    } else {
        SleepOutcome::Timeout
    }
}

/// A thread that routines can be queued to ([`queue_routine`]): a handle
/// like a Windows thread handle. Cheap to clone, `Send + Sync`; it does not
/// keep the thread alive.
#[derive(Clone)]
pub struct ThreadHandle {
    ctx: Arc<ThreadCtx>,
}

impl fmt::Debug for ThreadHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadHandle")
            .field("id", &self.id())
            .field("exited", &self.has_exited())
            .finish()
    }
}

impl ThreadHandle {
    /// The calling thread (`GetCurrentThread`, made into a handle other
    /// threads can use).
    #[doc(alias = "GetCurrentThread")]
    pub fn current() -> ThreadHandle {
        ThreadHandle { ctx: current_ctx() }
    }

    /// The thread's id.
    pub fn id(&self) -> std::thread::ThreadId {
        self.ctx.thread.id()
    }

    /// True once the thread has exited: routines can no longer be queued
    /// to it.
    pub fn has_exited(&self) -> bool {
        self.ctx.exited()
    }
}

/// `QueueUserAPC(f, thread)`: queues `f` to `thread`; it runs on that
/// thread in its next alertable wait ([`sleep_ex`],
/// [`wait_for_events`](crate::wait_for_events) or an alertable port wait
/// such as [`CompletionPort::get_queued_ex`](crate::CompletionPort::get_queued_ex)),
/// which then returns *I/O completion*. Routines run in the order they
/// were queued, among the thread's completion routines; a thread blocked
/// in an alertable wait is woken. A thread that exits with routines still
/// queued drops them.
///
/// # Errors
/// `BrokenPipe` when the thread has exited: `f` is dropped without
/// running, and the caller knows it.
///
/// # Examples
///
/// ```
/// use overlapped::{SleepOutcome, ThreadHandle, queue_routine, sleep_ex};
///
/// let (tx, rx) = std::sync::mpsc::channel();
/// let worker = std::thread::spawn(move || {
///     tx.send(ThreadHandle::current()).unwrap();
///     // Sleeps alertably until a routine runs.
///     sleep_ex(None, true)
/// });
/// let handle = rx.recv().unwrap();
/// queue_routine(&handle, || println!("on the worker")).unwrap();
/// assert_eq!(worker.join().unwrap(), SleepOutcome::IoCompletion);
/// // The thread has exited: nothing is queued.
/// assert!(queue_routine(&handle, || ()).is_err());
/// ```
#[doc(alias = "QueueUserAPC")]
pub fn queue_routine(thread: &ThreadHandle, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    thread
        .ctx
        .queue_user(Box::new(f))
        .map_err(|_| crate::timer::thread_exited())
}
