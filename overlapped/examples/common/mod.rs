//! What the example programs share. (Cargo does not build this file as an
//! example of its own: it is in a subdirectory. Each example includes it with
//! `mod common;`.)

use std::io;
use std::net::SocketAddr;

use overlapped::{
    Completion, Event, INFINITE, OpOutput, Polled, Started, WaitMode, wait_for_events,
};

/// The address to listen on or connect to: the command-line argument `arg`,
/// or `127.0.0.1:9000` when there is none.
pub fn parse_addr(arg: Option<String>) -> io::Result<SocketAddr> {
    let addr = arg.unwrap_or_else(|| "127.0.0.1:9000".into());
    addr.parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad address {addr:?}: {e}"),
        )
    })
}

/// The end of an operation posted with event `ev`, as the book writes it:
/// if it is pending, wait on the event (`WSAWaitForMultipleEvents`), then
/// take the result without waiting (`WSAGetOverlappedResult`). An operation
/// that failed comes back as its error. `what` ("send", "receive") names the
/// operation in the error for an event that was set too early.
#[allow(dead_code)] // each example is its own crate; only two post with an event
pub fn wait_then_take<T: OpOutput>(
    ev: &Event,
    started: Started<T>,
    what: &str,
) -> io::Result<Completion<T>> {
    if started.is_pending() {
        wait_for_events(std::slice::from_ref(ev), WaitMode::Any, INFINITE, false)?;
    }
    let mut done = match started.op().result(false)? {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => {
            return Err(io::Error::other(format!(
                "the event was set but the {what} is incomplete"
            )));
        }
    };
    if let Some(e) = done.error.take() {
        return Err(e);
    }
    Ok(done)
}
