//! The poll engine's file pool: a few worker threads that run file reads
//! and writes for the poll engine.
//!
//! epoll cannot wait for a regular file (it refuses to register one, and a
//! regular file is always "ready" anyway: its reads and writes block in the
//! page cache or on the disk, never on readiness). So the poll engine hands
//! each file operation to this pool, and the starting thread never blocks
//! (SPEC f04). A worker runs the operation's `preadv`/`pwritev`, keeps the
//! result in the operation's [`Job`], and tells the engine through an
//! eventfd in its epoll set: the engine's next wait reports a
//! [`Wakeup::Op`] under the operation's token, and the
//! core dispatches it as any other completion (routine, event, port).
//!
//! * **Bounded.** At most [`MAX_WORKERS`] threads per engine, started one
//!   at a time when a job finds no idle worker; the others wait in the
//!   queue. They end with the engine.
//! * **No order.** Jobs run in any order, several at once (SPEC f02).
//! * **Cancel.** A job still in the queue is taken back and ends *aborted*
//!   at once. A job a worker runs is asked to stop: a pipe or device that
//!   waits for data (the worker polls it in short slices) ends *aborted*;
//!   a regular file's read or write, which cannot be stopped, completes
//!   with its result, as a disk operation that won the race does on
//!   Windows.
//! * **Memory.** A job owns its buffers and keeps the descriptor open
//!   (shared with the file) until its worker has returned from the system
//!   call: a close meanwhile cannot free them or let the number be reused.

#![allow(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rustix::event::{EventfdFlags, eventfd};

use super::{Bufs, OpKind, OpRef, Outcome, Parked, Reaped, Step, Wakeup, to_io};
use crate::buf::RawBufs;

/// Most worker threads of one engine's pool.
pub(crate) const MAX_WORKERS: usize = 4;

/// How long a worker waiting for a pipe or device sleeps between looks at
/// its job's cancel flag.
const POLL_SLICE_MS: i32 = 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pool of one poll engine. Its threads start with its first job.
#[derive(Debug)]
pub(crate) struct Pool {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
    /// Tokens of finished jobs, for the engine's next wait.
    finished: Mutex<Vec<u64>>,
    /// Written when a job finished; in the engine's epoll set.
    signal: OwnedFd,
}

#[derive(Debug, Default)]
struct Queue {
    jobs: VecDeque<Job>,
    workers: usize,
    idle: usize,
    stop: bool,
}

/// A file operation handed to the pool (the [`Parked`] value of the
/// operation, shared with the worker that runs it).
#[derive(Debug, Clone)]
pub(crate) struct Job(Arc<JobCell>);

#[derive(Debug)]
struct JobCell {
    token: u64,
    state: Mutex<JobState>,
    cancel: AtomicBool,
}

enum JobState {
    /// In the queue: no worker has it yet.
    Queued(Work),
    /// A worker runs it.
    Running,
    /// Its result, until the engine's dispatch takes it.
    Finished(Outcome, Bufs),
    /// Taken: by a cancel before it ran, or by the dispatch.
    Taken,
}

impl std::fmt::Debug for JobState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            JobState::Queued(_) => "Queued",
            JobState::Running => "Running",
            JobState::Finished(..) => "Finished",
            JobState::Taken => "Taken",
        })
    }
}

/// What a worker needs to run one operation.
struct Work {
    fd: Arc<OwnedFd>,
    read: bool,
    offset: u64,
    /// A pipe or device without a position: waits for readiness, and
    /// ignores the offset.
    stream: bool,
    done: usize,
    bufs: Bufs,
}

/// The proof carried by a pool's [`Wakeup`]: only a worker makes one, once
/// the job's result is in it.
#[derive(Debug)]
pub(crate) struct Finished(());

impl Pool {
    /// A pool with no threads yet, and the eventfd that will tell its
    /// engine about finished jobs.
    pub(crate) fn new() -> io::Result<Pool> {
        let signal = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(to_io)?;
        Ok(Pool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                ready: Condvar::new(),
                finished: Mutex::new(Vec::new()),
                signal,
            }),
        })
    }

    /// The descriptor that becomes readable when a job finished.
    pub(crate) fn signal_fd(&self) -> BorrowedFd<'_> {
        self.shared.signal.as_fd()
    }

    /// Hands a file operation to a worker: parked until a worker finished
    /// it. Done at once (the start fails) when no worker can be started.
    pub(crate) fn submit(&self, op: OpRef<'_>, bufs: Bufs) -> Step {
        let (read, offset) = match *op.kind {
            OpKind::FileRead { offset } => (true, offset),
            OpKind::FileWrite { offset } => (false, offset),
            _ => return Step::Done(Outcome::err(not_a_file(), *op.done), bufs),
        };
        let Some(fd) = op.shared_fd.cloned() else {
            return Step::Done(Outcome::aborted(*op.done), bufs);
        };
        let job = Job(Arc::new(JobCell {
            token: op.token,
            state: Mutex::new(JobState::Queued(Work {
                fd,
                read,
                offset,
                stream: op.stream,
                done: *op.done,
                bufs,
            })),
            cancel: AtomicBool::new(false),
        }));
        let mut q = lock(&self.shared.queue);
        q.jobs.push_back(job.clone());
        if q.idle == 0 && q.workers < MAX_WORKERS {
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("overlapped-files".into())
                .spawn(move || worker(&shared));
            match spawned {
                Ok(_) => q.workers += 1,
                Err(e) if q.workers == 0 => {
                    // Nobody could ever run it: the start fails.
                    q.jobs.pop_back();
                    drop(q);
                    let bufs = match std::mem::replace(&mut *lock(&job.0.state), JobState::Taken) {
                        JobState::Queued(w) => w.bufs,
                        _ => None,
                    };
                    return Step::Done(Outcome::err(e, *op.done), bufs);
                }
                // The workers there are will run it.
                Err(_) => {}
            }
        }
        drop(q);
        self.shared.ready.notify_one();
        Step::Parked(Parked::Pool(job))
    }

    /// Appends a wakeup for each job finished since the last call
    /// (after the signal descriptor was readable).
    pub(crate) fn reap(&self, out: &mut Vec<Wakeup>) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.shared.signal, &mut buf);
        let tokens = std::mem::take(&mut *lock(&self.shared.finished));
        out.extend(tokens.into_iter().map(|token| Wakeup::Op {
            token,
            reaped: Reaped::Pool(Finished(())),
        }));
    }
}

impl Drop for Pool {
    /// The engine goes: the workers end (a job a worker runs finishes
    /// first; queued ones are dropped with their buffers).
    fn drop(&mut self) {
        let mut q = lock(&self.shared.queue);
        q.stop = true;
        q.jobs.clear();
        drop(q);
        self.shared.ready.notify_all();
    }
}

/// A worker: runs jobs until its pool stops.
fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if q.stop {
                    q.workers -= 1;
                    return;
                }
                if let Some(j) = q.jobs.pop_front() {
                    break j;
                }
                q.idle += 1;
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
                q.idle -= 1;
            }
        };
        let work = match std::mem::replace(&mut *lock(&job.0.state), JobState::Running) {
            JobState::Queued(w) => w,
            // Cancelled before it ran: its operation has ended.
            other => {
                *lock(&job.0.state) = other;
                continue;
            }
        };
        let (out, bufs) = match run(work, &job.0.cancel, shared) {
            Ran::Done(out, bufs) => (out, bufs),
            Ran::Waiting(work) => {
                // A pipe with nothing for it, and other jobs waiting: it
                // goes to the back of the queue (a cancel may take it
                // there), so that waiting pipes never hold up the rest.
                *lock(&job.0.state) = JobState::Queued(work);
                lock(&shared.queue).jobs.push_back(job);
                continue;
            }
        };
        *lock(&job.0.state) = JobState::Finished(out, bufs);
        lock(&shared.finished).push(job.0.token);
        let _ = rustix::io::write(&shared.signal, &1u64.to_ne_bytes());
    }
}

/// What a worker's turn with a job gave.
enum Ran {
    Done(Outcome, Bufs),
    /// A pipe or device still waits, and other jobs are queued.
    Waiting(Work),
}

/// Runs one job on its worker.
fn run(mut w: Work, cancel: &AtomicBool, shared: &Shared) -> Ran {
    loop {
        if w.stream {
            // A pipe or device: wait for it in slices, so that a cancel
            // (or the engine's end) is seen, and other jobs get their turn.
            match wait_ready(w.fd.as_fd(), w.read) {
                Ok(false) => {
                    let q = lock(&shared.queue);
                    let (stop, others) = (q.stop, !q.jobs.is_empty());
                    drop(q);
                    if cancel.load(Ordering::Acquire) || stop {
                        return Ran::Done(Outcome::aborted(w.done), w.bufs);
                    }
                    if others {
                        return Ran::Waiting(w);
                    }
                    continue;
                }
                Ok(true) => {}
                Err(e) => return Ran::Done(Outcome::err(e, w.done), w.bufs),
            }
        }
        let Some(b) = w.bufs.as_deref_mut() else {
            return Ran::Done(Outcome::err(not_a_file(), w.done), w.bufs);
        };
        match file_io(
            w.fd.as_fd(),
            w.read,
            w.offset,
            w.stream,
            b.as_bufs(),
            &mut w.done,
        ) {
            Some(out) => return Ran::Done(out, w.bufs),
            // A pipe that had nothing (or no room) after all: wait again.
            None => continue,
        }
    }
}

/// Waits up to one slice for a pipe or device to be readable (`read`) or
/// writable; true when it is (or reports an error or hang-up, which the
/// call then meets).
fn wait_ready(fd: BorrowedFd<'_>, read: bool) -> io::Result<bool> {
    let events = if read { libc::POLLIN } else { libc::POLLOUT };
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events,
        revents: 0,
    };
    // SAFETY: `p` is one live `pollfd` for the whole call.
    let r = unsafe { libc::poll(&mut p, 1, POLL_SLICE_MS) };
    match r {
        n if n > 0 => Ok(true),
        0 => Ok(false),
        _ => {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            }
        }
    }
}

/// One file read or write on the calling thread (it may block in the page
/// cache or on the disk): at `offset` past the `done` bytes of earlier
/// rounds, or at the stream's position for a pipe or device (`stream`). A
/// read completes with what one call gave (0 at the end of the file); a
/// write goes on until every byte is written, or fails reporting the bytes
/// written. `None`: a non-blocking pipe or device had nothing (or no room),
/// try again when it is ready. Also the engines' shared attempt of a file
/// operation (see [`attempt`](super::attempt())).
pub(crate) fn file_io(
    fd: BorrowedFd<'_>,
    read: bool,
    offset: u64,
    stream: bool,
    bufs: &mut dyn RawBufs,
    done: &mut usize,
) -> Option<Outcome> {
    let mut iov = Vec::new();
    loop {
        iov.clear();
        // The windows' total length; the iovecs cover what is past `done`.
        let total = super::tcp::iovecs(bufs, *done, &mut iov);
        let at = offset.saturating_add(*done as u64);
        let Ok(at) = libc::off_t::try_from(at) else {
            return Some(Outcome::err(
                io::Error::from_raw_os_error(libc::EINVAL),
                *done,
            ));
        };
        let cnt = iov.len().min(libc::c_int::MAX as usize) as libc::c_int;
        let fdn = fd.as_raw_fd();
        // The iovecs point into `bufs`, which the caller owns for the whole
        // call: a read's room (writable), a write's bytes (only read).
        // SAFETY: each iovec names live memory of its length.
        let r = unsafe {
            match (read, stream) {
                (true, false) => libc::preadv(fdn, iov.as_ptr(), cnt, at),
                (true, true) => libc::readv(fdn, iov.as_ptr(), cnt),
                (false, false) => libc::pwritev(fdn, iov.as_ptr(), cnt, at),
                (false, true) => libc::writev(fdn, iov.as_ptr(), cnt),
            }
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EAGAIN) if stream => return None,
                _ => return Some(Outcome::err(e, *done)),
            }
        }
        let n = r as usize;
        *done += n;
        if read {
            // The kernel wrote `n` bytes past the `*done - n` of earlier
            // rounds, at the start of the room.
            // SAFETY: so the first `*done` bytes are written.
            unsafe { bufs.set_received(*done) };
            return Some(Outcome::ok(*done));
        }
        if n == 0 || *done >= total {
            return Some(Outcome::ok(*done));
        }
    }
}

fn not_a_file() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a file operation with its buffers",
    )
}

/// The dispatch of a pool wakeup: the job's result, once its worker left
/// it there.
pub(crate) fn progress(job: Job) -> Step {
    let mut st = lock(&job.0.state);
    match std::mem::replace(&mut *st, JobState::Taken) {
        JobState::Finished(out, bufs) => Step::Done(out, bufs),
        other => {
            *st = other;
            drop(st);
            Step::Parked(Parked::Pool(job))
        }
    }
}

/// Cancels a pool job: taken back (aborted now) while queued; else its
/// worker is asked to stop and its completion comes as a wakeup.
pub(crate) fn cancel(op: OpRef<'_>, job: Job) -> Step {
    let mut st = lock(&job.0.state);
    match std::mem::replace(&mut *st, JobState::Taken) {
        JobState::Queued(w) => Step::Done(Outcome::aborted(w.done.max(*op.done)), w.bufs),
        other => {
            *st = other;
            drop(st);
            job.0.cancel.store(true, Ordering::Release);
            Step::Parked(Parked::Pool(job))
        }
    }
}
