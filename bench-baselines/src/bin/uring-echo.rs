//! Baseline: the near-limit reference. A minimal raw io_uring echo loop on
//! the `io-uring` crate, no abstraction: one ring, one thread, accept,
//! recv and send SQEs, batched submission with one `io_uring_enter` per
//! loop turn. It shows what the library's abstraction costs.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use io_uring::{IoUring, opcode, types};

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;
const BUF: usize = 16 * 1024;

struct Conn {
    fd: OwnedFd,
    buf: Box<[u8; BUF]>,
    len: usize,
    off: usize,
}

fn ud(idx: usize, kind: u64) -> u64 {
    ((idx as u64) << 2) | kind
}

fn main() -> std::io::Result<()> {
    let addr = bench_baselines::addr_arg();
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    let listener = TcpListener::bind(addr)?;
    println!("listening on {}", listener.local_addr()?);
    // One thread submits and reaps: the fastest ring setup applies.
    let mut ring = IoUring::builder()
        .setup_coop_taskrun()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(1024)?;
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let lfd = types::Fd(listener.as_raw_fd());
    let push = |ring: &mut IoUring, e: io_uring::squeue::Entry| {
        loop {
            // Every entry points into a `Conn` held in the slab until its CQE
            // is seen (one op per connection at a time), or at nothing.
            // SAFETY: so the memory outlives the kernel's use of it.
            if unsafe { ring.submission().push(&e) }.is_ok() {
                return;
            }
            let _ = ring.submit();
        }
    };
    push(
        &mut ring,
        opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
            .build()
            .user_data(ud(0, ACCEPT)),
    );
    let ts = types::Timespec::from(Duration::from_millis(100));
    while !stop.load(Ordering::Relaxed) {
        let args = types::SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                ) => {}
            Err(e) => return Err(e),
        }
        let cqes: Vec<(u64, i32)> = ring
            .completion()
            .map(|c| (c.user_data(), c.result()))
            .collect();
        for (u, res) in cqes {
            let (idx, kind) = ((u >> 2) as usize, u & 3);
            match kind {
                ACCEPT => {
                    if res >= 0 {
                        // SAFETY: a non-negative ACCEPT result is a new fd nothing else owns.
                        let fd = unsafe { OwnedFd::from_raw_fd(res) };
                        let _ = socket2::SockRef::from(&fd).set_tcp_nodelay(true);
                        let i = conns.insert(Conn {
                            fd,
                            buf: Box::new([0u8; BUF]),
                            len: 0,
                            off: 0,
                        });
                        let c = &mut conns[i];
                        let e = opcode::Recv::new(
                            types::Fd(c.fd.as_raw_fd()),
                            c.buf.as_mut_ptr(),
                            BUF as u32,
                        )
                        .build();
                        push(&mut ring, e.user_data(ud(i, RECV)));
                    }
                    push(
                        &mut ring,
                        opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
                            .build()
                            .user_data(ud(0, ACCEPT)),
                    );
                }
                RECV => {
                    if res <= 0 {
                        conns.remove(idx);
                        continue;
                    }
                    let c = &mut conns[idx];
                    c.len = res as usize;
                    c.off = 0;
                    let e = opcode::Send::new(
                        types::Fd(c.fd.as_raw_fd()),
                        c.buf.as_ptr(),
                        c.len as u32,
                    )
                    .build();
                    push(&mut ring, e.user_data(ud(idx, SEND)));
                }
                _ => {
                    if res < 0 {
                        conns.remove(idx);
                        continue;
                    }
                    let c = &mut conns[idx];
                    c.off += res as usize;
                    let e = if c.off < c.len {
                        // A short send: the rest.
                        opcode::Send::new(
                            types::Fd(c.fd.as_raw_fd()),
                            c.buf[c.off..].as_ptr(),
                            (c.len - c.off) as u32,
                        )
                        .build()
                        .user_data(ud(idx, SEND))
                    } else {
                        opcode::Recv::new(
                            types::Fd(c.fd.as_raw_fd()),
                            c.buf.as_mut_ptr(),
                            BUF as u32,
                        )
                        .build()
                        .user_data(ud(idx, RECV))
                    };
                    push(&mut ring, e);
                }
            }
        }
    }
    // Requests may still be parked on the connections' buffers: close the
    // ring and let the process exit keep that memory, rather than free it.
    drop(ring);
    std::mem::forget(conns);
    Ok(())
}
