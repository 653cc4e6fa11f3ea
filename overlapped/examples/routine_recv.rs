//! The textbook's completion-routine receiver (`CmplRoutinesRecv_win.c`):
//! accept one client, post a receive whose completion routine prints the
//! message, and sleep alertably until the routine ran. The routine's line
//! always comes before "Overlapped I/O Completed": routines run inside the
//! alertable wait, even when the receive completed at once.
//!
//! ```text
//! cargo run --example routine_recv -- 127.0.0.1:9000
//! cargo run --example overlapped_send -- 127.0.0.1:9000
//! ```

mod common;

use std::cell::Cell;
use std::io;
use std::rc::Rc;

use overlapped::{Completion, Engine, INFINITE, MsgFlags, Notify, SleepOutcome, Socket, sleep_ex};

fn main() -> io::Result<()> {
    let addr = common::parse_addr(std::env::args().nth(1))?;
    let engine = Engine::new()?;
    let listener = Socket::tcp_listener(&engine, &addr)?;
    println!(
        "listening on {} (engine {})",
        listener.local_addr()?,
        engine.kind()
    );
    let (sock, _) = listener.accept_wait()?;

    let ran = Rc::new(Cell::new(false));
    let flag = ran.clone();
    let started = sock.recv(
        vec![0u8; 1024],
        MsgFlags::empty(),
        Notify::routine(move |c: Completion<Vec<u8>>| {
            flag.set(true);
            match c.error {
                Some(e) => println!("receive failed: {e}"),
                None => println!(
                    "Received message: {}",
                    String::from_utf8_lossy(&c.data).trim_end_matches('\0')
                ),
            }
        }),
    )?;
    if started.is_pending() {
        println!("Background data receive");
    }
    while !ran.get() {
        if sleep_ex(INFINITE, true) == SleepOutcome::IoCompletion {
            println!("Overlapped I/O Completed");
        }
    }
    Ok(())
}
