//! `TransmitFile` on io_uring: the file region goes to the socket through
//! a pipe, by `SPLICE` requests (file → pipe, then pipe → socket), so the
//! file's bytes never pass through user space and no system call of its
//! own moves them. The head and tail buffers go by the shared attempt when
//! the socket is writable (see `sys/ext.rs`).
//!
//! A `SPLICE` request points at no memory: only descriptors, which the
//! operation holds open until its completion (the file's and the pipe's in
//! its [`Transmit`], the socket's in its socket).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use io_uring::{opcode, squeue, types};

use super::inflight::Finish;
use crate::sys::Outcome;
use crate::sys::ext::Transmit;

/// Which half of the way a `SPLICE` request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// From the file into the empty pipe.
    Fill,
    /// From the pipe out to the socket.
    Drain,
}

/// The `SPLICE` request of a transmit `done` bytes in, when it is in its
/// file region and has a pipe; `head`: the head buffer's length.
pub(super) fn request(
    t: &Transmit,
    head: usize,
    done: usize,
    sock: RawFd,
) -> Option<(Stage, squeue::Entry)> {
    let pipe = t.pipe.as_ref()?;
    if !t.in_file(head, done) && pipe.held == 0 {
        return None;
    }
    if pipe.held > 0 {
        // Whatever the pipe holds goes out first.
        let len = pipe.held.min(u32::MAX as usize) as u32;
        let e = opcode::Splice::new(
            types::Fd(pipe.read.as_raw_fd()),
            -1,
            types::Fd(sock),
            -1,
            len,
        )
        .build();
        return Some((Stage::Drain, e));
    }
    let sent = (done - head) as u64;
    let len = (t.len - sent).min(pipe.room as u64) as u32;
    // The file's offset fits an `i64`: the start checked the region
    // against the file's size.
    let at = (t.offset + sent) as i64;
    let e = opcode::Splice::new(
        types::Fd(t.file.as_raw_fd()),
        at,
        types::Fd(pipe.write.as_raw_fd()),
        -1,
        len,
    )
    .build();
    Some((Stage::Fill, e))
}

/// Whether the transmit's next request is a `SPLICE` (its pipe holds bytes,
/// or it is in its file region): then a readiness poll that fired needs no
/// try in user space, only the request.
pub(super) fn splices_next(t: &Transmit, head: usize, done: usize) -> bool {
    t.pipe
        .as_ref()
        .is_some_and(|p| p.held > 0 || t.in_file(head, done))
}

/// What the CQE of a `SPLICE` request means: the pipe's and the
/// operation's progress, then done (with `tail` to send: not yet), parked
/// again for the next request, or waiting for the socket's room.
pub(super) fn finish(
    t: &mut Transmit,
    stage: Stage,
    res: i32,
    done: &mut usize,
    head: usize,
    tail: usize,
) -> Finish {
    let Some(pipe) = t.pipe.as_mut() else {
        return Finish::Done(Outcome::aborted(*done));
    };
    match (stage, res) {
        // The socket is full (it is non-blocking): wait for room.
        (Stage::Drain, r) if r == -libc::EAGAIN => Finish::Writable,
        (_, r) if r < 0 => Finish::Done(Outcome::err(io::Error::from_raw_os_error(-r), *done)),
        (Stage::Fill, 0) => Finish::Done(Outcome::err(
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file ended before the region to send",
            ),
            *done,
        )),
        (Stage::Fill, n) => {
            pipe.held += n as usize;
            Finish::Resubmit
        }
        (Stage::Drain, n) => {
            let n = (n as usize).min(pipe.held);
            pipe.held -= n;
            *done += n;
            let file_sent = *done >= head && (*done - head) as u64 >= t.len && pipe.held == 0;
            if file_sent && tail == 0 {
                Finish::Done(Outcome::ok(*done))
            } else {
                Finish::Resubmit
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use crate::probe::EngineChoice;
    use crate::{Engine, Notify, Socket};

    /// The file's bytes go by `SPLICE` requests: a 16 MiB transmit to a
    /// slow reader (the socket fills again and again) makes no `sendfile`
    /// tries of its own (the engine's counted non-blocking tries stay at
    /// the head's and the tail's few), and every byte arrives in order.
    #[test]
    fn transmit_splices_the_file_without_tries_of_its_own() {
        let e = match Engine::builder().choice(EngineChoice::Uring).build() {
            Ok(e) => e,
            Err(e) => return crate::sys::fault::skip_uring(&e),
        };
        let content: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
        let path = std::env::temp_dir().join(format!("ovl-splice-{}", std::process::id()));
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = Socket::tcp_for(&e, &l.local_addr().unwrap()).unwrap();
        s.connect_wait(l.local_addr().unwrap()).unwrap();
        let (mut peer, _) = l.accept().unwrap();
        let before = e.counters().direct_calls;
        let op = s
            .transmit_file(&file, 0, 0, b"<".to_vec(), b">".to_vec(), Notify::None)
            .unwrap()
            .op();
        let total = content.len() + 2;
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; total];
            let mut at = 0;
            while at < total {
                // A slow reader: small reads, so the socket fills.
                let n = peer.read(&mut got[at..(at + 4096).min(total)]).unwrap();
                assert!(n > 0, "the stream ended at {at}");
                at += n;
            }
            got
        });
        let done = op.wait().unwrap();
        assert!(done.error.is_none(), "{:?}", done.error);
        assert_eq!(done.bytes, total);
        let got = reader.join().unwrap();
        assert_eq!(got[0], b'<');
        assert!(got[1..total - 1] == content[..], "the file region");
        assert_eq!(got[total - 1], b'>');
        let tries = e.counters().direct_calls - before;
        assert!(tries <= 3, "{tries} non-blocking tries for one transmit");
    }
}
