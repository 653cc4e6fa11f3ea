//! `QueueUserAPC`: a worker thread lives in alertable waits; the main
//! thread hands it work, then stops it, by queueing routines to it.
//! Queueing to the thread once it exited fails.
//!
//! ```text
//! cargo run --example queue_routine
//! ```

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use overlapped::{INFINITE, SleepOutcome, ThreadHandle, queue_routine, sleep_ex};

fn main() -> io::Result<()> {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let (tx, rx) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        tx.send(ThreadHandle::current()).expect("main waits");
        while !s.load(Ordering::Relaxed) {
            // Returns once routines queued to this thread ran.
            assert_eq!(sleep_ex(INFINITE, true), SleepOutcome::IoCompletion);
        }
    });
    let handle = rx.recv().expect("the worker starts");
    let on = handle.id();
    queue_routine(&handle, move || {
        assert_eq!(std::thread::current().id(), on);
        println!("routine: hello from the worker");
    })?;
    queue_routine(&handle, move || {
        stop.store(true, Ordering::Relaxed);
        println!("routine: stop");
    })?;
    worker.join().expect("the worker ran");
    println!("worker stopped");
    match queue_routine(&handle, || unreachable!("never runs")) {
        Ok(()) => println!("queued to an exited thread?"),
        Err(e) => println!("queue to the exited worker: {e}"),
    }
    Ok(())
}
