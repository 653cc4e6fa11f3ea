//! `GetQueuedCompletionStatusEx` with `fAlertable`: a port worker that is
//! also handed routines. A queued packet comes first; with none queued the
//! wait runs the routines and returns *I/O completion*.
//!
//! ```text
//! cargo run --example alertable_port
//! ```

use std::io;
use std::time::Duration;

use overlapped::{CompletionPort, PortWait, ThreadHandle, queue_routine};

fn main() -> io::Result<()> {
    let port = CompletionPort::new(1);
    let me = ThreadHandle::current();
    queue_routine(&me, || println!("routine ran"))?;
    port.post(7, 42, ())?;
    for _ in 0..3 {
        match port.get_queued_ex(Some(Duration::from_millis(100)), true)? {
            PortWait::Got(p) => println!("packet: key {} bytes {}", p.key, p.bytes),
            PortWait::IoCompletion => println!("I/O completion"),
            PortWait::Timeout => println!("timeout"),
            _ => println!("other"),
        }
    }
    Ok(())
}
