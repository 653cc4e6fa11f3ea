//! A blocking wait on several engines at once: `poll(2)` on their pollable
//! descriptors (see [`Backend::pollable_fd`](super::Backend::pollable_fd))
//! and on the waiting thread's own eventfd, which is how another thread
//! ends that wait.
//!
//! One engine is driven by blocking in it (`io_uring_enter`, `epoll_wait`);
//! a thread that waits for several (a port whose sockets live on engines of
//! their own, an alertable wait of a thread that uses two engines) cannot
//! block in all of them, and must not sleep in one while completions of the
//! others wait to be reaped. Each engine's descriptor turns readable when
//! its reap has something to find, and each engine's wake-up makes it
//! readable too.

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::Duration;

use rustix::event::{EventfdFlags, PollFd, PollFlags, Timespec, eventfd};

use super::to_io;

/// A thread's wake-up for [`block_on_watching`]: an eventfd.
#[derive(Debug)]
pub(crate) struct WakeFd(OwnedFd);

impl WakeFd {
    pub(crate) fn new() -> io::Result<Self> {
        eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map(WakeFd)
            .map_err(to_io)
    }

    /// Ends the [`block_on_watching`] in progress with this wake-up, or the next one.
    pub(crate) fn wake(&self) {
        let _ = rustix::io::write(&self.0, &1u64.to_ne_bytes());
    }

    fn clear(&self) {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&self.0, &mut buf);
    }
}

/// Blocks until one of `fds` is readable, `wake` was woken, or `timeout`
/// passed (`None`: no limit). Sets `readable[i]` for each of `fds` found
/// readable (`readable` is as long as `fds`). A signal ends the wait early,
/// as a spurious wake-up.
///
/// It also ends when one of `watch` turns ready for its flags (a socket
/// selected into an event the thread waits on, SPEC t04): its `fired` entry
/// (as long as `watch`) is set to what the poll reported.
pub(crate) fn block_on_watching(
    fds: &[BorrowedFd<'_>],
    watch: &[(BorrowedFd<'_>, PollFlags)],
    wake: &WakeFd,
    timeout: Option<Duration>,
    readable: &mut [bool],
    fired: &mut [PollFlags],
) -> io::Result<()> {
    let mut set: Vec<PollFd<'_>> = fds
        .iter()
        .map(|fd| PollFd::new(fd, PollFlags::IN))
        .chain(watch.iter().map(|(fd, f)| PollFd::new(fd, *f)))
        .collect();
    set.push(PollFd::new(&wake.0, PollFlags::IN));
    let ts = timeout.map(|t| Timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    match rustix::event::poll(&mut set, ts.as_ref()) {
        Ok(_) => {}
        Err(rustix::io::Errno::INTR) => return Ok(()),
        Err(e) => return Err(to_io(e)),
    }
    let (woken, engines) = match set.split_last() {
        Some((w, e)) => (!w.revents().is_empty(), e),
        None => (false, &[][..]),
    };
    if woken {
        wake.clear();
    }
    let (engines, watched) = engines.split_at(fds.len());
    for (r, p) in readable.iter_mut().zip(engines) {
        *r = !p.revents().is_empty();
    }
    for (f, p) in fired.iter_mut().zip(watched) {
        *f = p.revents();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;
    use std::time::Instant;

    fn block_on(
        fds: &[BorrowedFd<'_>],
        wake: &WakeFd,
        timeout: Option<Duration>,
        readable: &mut [bool],
    ) -> io::Result<()> {
        block_on_watching(fds, &[], wake, timeout, readable, &mut [])
    }

    #[test]
    fn a_watched_descriptor_ends_the_wait_for_its_flags_only() {
        let w = WakeFd::new().unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        // Writable at once, but only readability is asked for.
        let watch = [(a.as_fd(), PollFlags::IN)];
        let mut fired = [PollFlags::all()];
        let t0 = Instant::now();
        block_on_watching(
            &[],
            &watch,
            &w,
            Some(Duration::from_millis(20)),
            &mut [],
            &mut fired,
        )
        .unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(15));
        assert_eq!(fired, [PollFlags::empty()]);
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        block_on_watching(
            &[],
            &watch,
            &w,
            Some(Duration::from_secs(10)),
            &mut [],
            &mut fired,
        )
        .unwrap();
        assert_eq!(fired, [PollFlags::IN]);
    }

    #[test]
    fn a_wake_up_ends_the_wait_and_is_cleared() {
        let w = WakeFd::new().unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let fds = [a.as_fd()];
        let mut readable = [true];
        // Nothing readable: the timeout ends it.
        let t0 = Instant::now();
        block_on(&fds, &w, Some(Duration::from_millis(20)), &mut readable).unwrap();
        assert!(t0.elapsed() >= Duration::from_millis(15));
        assert_eq!(readable, [false]);
        // A wake-up made before the wait ends it at once, and only once.
        w.wake();
        let t0 = Instant::now();
        block_on(&fds, &w, Some(Duration::from_secs(10)), &mut readable).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(5));
        assert_eq!(readable, [false]);
        let t0 = Instant::now();
        block_on(&fds, &w, Some(Duration::from_millis(20)), &mut readable).unwrap();
        assert!(
            t0.elapsed() >= Duration::from_millis(15),
            "the wake-up was cleared"
        );
        // A readable descriptor ends it and is reported.
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        block_on(&fds, &w, Some(Duration::from_secs(10)), &mut readable).unwrap();
        assert_eq!(readable, [true]);
    }
}
