//! A thread's queue of completion routines.

use std::collections::VecDeque;

use super::{Lock, wait_loop};

/// A thread's queue of completion routines. Once the thread exits the queue
/// is closed: a routine queued after that is refused (its completion is
/// dropped with its buffers by the caller), so nothing waits forever in a
/// queue no thread will run.
#[derive(Debug)]
pub(crate) struct RoutineQueue<R> {
    open: bool,
    queue: VecDeque<R>,
}

impl<R> RoutineQueue<R> {
    pub(crate) fn new(open: bool) -> Self {
        RoutineQueue {
            open,
            queue: VecDeque::new(),
        }
    }

    /// Queues a routine; gives it back when the thread has exited.
    pub(crate) fn push(&mut self, r: R) -> Result<(), R> {
        if !self.open {
            return Err(r);
        }
        self.queue.push_back(r);
        Ok(())
    }

    pub(crate) fn pop(&mut self) -> Option<R> {
        self.queue.pop_front()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub(crate) fn is_closed(&self) -> bool {
        !self.open
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }

    /// The thread exits: closes the queue and returns what was still queued.
    pub(crate) fn close(&mut self) -> VecDeque<R> {
        self.open = false;
        std::mem::take(&mut self.queue)
    }
}

/// The alertable wait on a thread's own routine queue: true as soon as
/// routines are queued (when `alertable`), false when the deadline passed.
/// A thread needs no registration: a routine is queued to it, and the one
/// who queues it wakes it.
pub(crate) fn wait_routines<R>(
    q: &impl Lock<RoutineQueue<R>>,
    alertable: bool,
    block: impl FnMut(&mut dyn FnMut() -> bool) -> bool,
) -> bool {
    let queued = || alertable && q.with(|q| !q.is_empty());
    wait_loop(|| queued().then_some(true), queued, block, queued)
}
