//! The engine's descriptor in tokio's reactor (feature `tokio`): the one
//! registration, whose contract tokio states as `unsafe` (the descriptor
//! must stay open, and name the same file, while it is registered).

#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use crate::Engine;

/// The engine as tokio's reactor sees it: its pollable descriptor (see
/// [`Backend::pollable_fd`](super::Backend::pollable_fd)). It holds the
/// engine, and with it the descriptor.
#[derive(Debug)]
pub(crate) struct Pollable(Engine);

impl Pollable {
    pub(crate) fn engine(&self) -> &Engine {
        &self.0
    }
}

impl AsRawFd for Pollable {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Registers `engine`'s descriptor with the current runtime's reactor, for
/// readability only (an io_uring ring is nearly always writable).
///
/// # Panics
/// Outside a tokio runtime, or in one without its I/O driver (tokio's
/// rule).
pub(crate) fn register(engine: &Engine) -> io::Result<AsyncFd<Pollable>> {
    let p = Pollable(engine.clone());
    // The descriptor is the backend's ring or epoll set, owned by the
    // engine's `Core` from its creation to its drop and never replaced, and
    // `p` holds a strong handle on that `Core`.
    // SAFETY: so while the `AsyncFd` owns `p` the descriptor stays open and the same.
    unsafe { AsyncFd::register_with_interest(p, Interest::READABLE) }.map_err(io::Error::from)
}
