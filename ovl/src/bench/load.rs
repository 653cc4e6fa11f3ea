//! The load generator of `ovl bench`: one thread, mio, every echoed byte
//! checked against a per-connection pattern.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::{Cell, Mode};

/// Period of the per-connection byte pattern.
const PERIOD: usize = 251;
/// Largest write and read of the load generator.
pub(super) const CHUNK: usize = 64 * 1024;
/// Rounds of send-then-read one connection gets per readiness pass before
/// the others get their turn (it is revisited without waiting for an event).
const TURNS: usize = 16;

/// The per-connection byte pattern: byte `pos` of connection `conn` is
/// `(conn * 131 + pos) % 251`. One table serves every connection and offset,
/// so a send is a slice of it and a check is a comparison.
pub(super) struct Pattern(Vec<u8>);

impl Pattern {
    pub(super) fn new() -> Self {
        Pattern((0..PERIOD + CHUNK).map(|k| (k % PERIOD) as u8).collect())
    }

    /// `n` (at most `CHUNK`) bytes of connection `conn`'s pattern from `pos`.
    pub(super) fn at(&self, conn: usize, pos: u64, n: usize) -> &[u8] {
        let off = ((conn as u64 * 131 + pos) % PERIOD as u64) as usize;
        &self.0[off..off + n.min(CHUNK)]
    }
}

struct Conn {
    s: TcpStream,
    sent: u64,
    recvd: u64,
    /// Bytes this connection may send now: messages due (pingpong,
    /// pipeline) or the unused part of the window (stream).
    to_send: usize,
    /// When the first byte of each message in flight left.
    starts: VecDeque<Instant>,
    /// Failed or closed by the server: counted once, then left alone.
    dead: bool,
}

/// What one round of load measured (after its warm-up).
pub(super) struct Load {
    /// Messages echoed in full.
    pub(super) msgs: u64,
    /// Bytes read back.
    pub(super) bytes: u64,
    /// Latency of each message, in microseconds.
    pub(super) hist: Histogram<u64>,
    /// Connections that failed or were closed by the server.
    pub(super) errors: u64,
    /// Echoed bytes that differ from what was sent.
    pub(super) mismatches: u64,
}

/// Drives `cell` against `addr` for warm-up then `dur`; returns what the
/// measured part saw. `http` mode is [`load_http`]'s.
///
/// In stream mode a connection starts with `window` bytes of credit, every
/// byte read back returns one, and it writes whenever it holds at least a
/// message's worth (or the whole window, if smaller); a message's latency is
/// from its first byte sent to its last byte read back.
pub(super) fn load(
    addr: SocketAddr,
    cell: Cell,
    depth: usize,
    window: usize,
    warm: Duration,
    dur: Duration,
) -> Load {
    if cell.mode == Mode::Http {
        return load_http(addr, cell.conns, crate::http::BODY.as_bytes(), warm, dur);
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut msgs, mut bytes, mut errors, mut mismatches) = (0u64, 0u64, 0u64, 0u64);
    let Ok(mut poll) = Poll::new() else {
        return Load {
            msgs: 0,
            bytes: 0,
            hist,
            errors: 1,
            mismatches: 0,
        };
    };
    let stream = cell.mode == Mode::Stream;
    let mut conns = Vec::with_capacity(cell.conns);
    for i in 0..cell.conns {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_nonblocking(true);
                let mut s = TcpStream::from_std(s);
                if poll
                    .registry()
                    .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .is_err()
                {
                    errors += 1;
                    continue;
                }
                let to_send = match cell.mode {
                    Mode::Pingpong => cell.size,
                    Mode::Pipeline => depth * cell.size,
                    Mode::Stream => window,
                    Mode::Http => unreachable!("http mode runs load_http"),
                };
                conns.push(Conn {
                    s,
                    sent: 0,
                    recvd: 0,
                    to_send,
                    starts: VecDeque::new(),
                    dead: false,
                });
            }
            Err(_) => errors += 1,
        }
    }
    let size = cell.size as u64;
    // Stream mode waits for a message's worth of credit before writing, so
    // it does not answer every small read with a small write.
    let min_write = if stream { cell.size.min(window) } else { 1 };
    let pat = Pattern::new();
    let start = Instant::now();
    let measure_from = start + warm;
    let end = measure_from + dur;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; CHUNK];
    let mut counted_bytes_at_start = None;
    // Kick every connection once.
    let mut ready: Vec<usize> = (0..conns.len()).collect();
    let mut again: Vec<usize> = Vec::new();
    while Instant::now() < end {
        for &i in &ready {
            let c = &mut conns[i];
            if c.dead {
                continue;
            }
            // Edge-triggered: keep sending and reading until both would
            // block (an echo read makes the next message due at once); a
            // connection still busy after TURNS rounds is revisited.
            let mut progress = true;
            let mut turns = 0;
            while progress && turns < TURNS {
                turns += 1;
                progress = false;
                // Send what is due.
                while c.to_send >= min_write {
                    let n = c.to_send.min(CHUNK);
                    match c.s.write(pat.at(i, c.sent, n)) {
                        Ok(w) => {
                            progress = true;
                            let now = Instant::now();
                            let before = c.sent;
                            c.sent += w as u64;
                            c.to_send -= w;
                            // A message starts when its first byte leaves.
                            let mut m = before.div_ceil(size) * size;
                            while m < c.sent {
                                c.starts.push_back(now);
                                m += size;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            c.dead = true;
                            break;
                        }
                    }
                }
                if c.dead {
                    break;
                }
                // Read what came back.
                loop {
                    match c.s.read(&mut buf) {
                        Ok(0) => {
                            errors += 1;
                            c.dead = true;
                            progress = false;
                            break;
                        }
                        Ok(n) => {
                            progress = true;
                            let got = &buf[..n];
                            let want = pat.at(i, c.recvd, n);
                            if got != want {
                                mismatches +=
                                    got.iter().zip(want).filter(|(a, b)| a != b).count() as u64;
                            }
                            let before = c.recvd;
                            c.recvd += n as u64;
                            let done_msgs = c.recvd / size - before / size;
                            if done_msgs > 0 {
                                let now = Instant::now();
                                for _ in 0..done_msgs {
                                    if let Some(t) = c.starts.pop_front() {
                                        if now >= measure_from {
                                            let _ = hist.record(
                                                now.duration_since(t).as_micros().max(1) as u64,
                                            );
                                            msgs += 1;
                                        }
                                    }
                                    if !stream {
                                        c.to_send += cell.size;
                                    }
                                }
                            }
                            if stream {
                                c.to_send += n;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            c.dead = true;
                            progress = false;
                            break;
                        }
                    }
                }
            }
            if progress && !c.dead {
                again.push(i);
            }
        }
        if counted_bytes_at_start.is_none() && Instant::now() >= measure_from {
            counted_bytes_at_start = Some(conns.iter().map(|c| c.recvd).sum::<u64>());
        }
        ready.clear();
        // Connections still busy are not waited for.
        let timeout = if again.is_empty() {
            Duration::from_millis(100)
        } else {
            Duration::ZERO
        };
        if poll.poll(&mut events, Some(timeout)).is_err() {
            errors += 1;
        }
        ready.extend(
            events
                .iter()
                .map(|e| e.token().0)
                .filter(|&i| i < conns.len()),
        );
        ready.append(&mut again);
        if ready.is_empty() && Instant::now() < end {
            // A stall: nothing came back within 100 ms; count it and go on.
            continue;
        }
    }
    let total: u64 = conns.iter().map(|c| c.recvd).sum();
    bytes += total - counted_bytes_at_start.unwrap_or(0);
    Load {
        msgs,
        bytes,
        hist,
        errors,
        mismatches,
    }
}

/// The request of `http` mode: a keep-alive `GET /`.
pub(super) const HTTP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

/// One complete response at the start of `buf`: its length and whether it
/// is a `200` whose body is `body`; `None` while it is incomplete. A
/// response without `content-length` counts as complete at its header's
/// end (and as wrong).
pub(super) fn http_response(buf: &[u8], body: &[u8]) -> Option<(usize, bool)> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = &buf[..head_end];
    let ok = head.starts_with(b"HTTP/1.1 200 ");
    let len = head
        .split(|&b| b == b'\n')
        .filter_map(|line| {
            let line = std::str::from_utf8(line).ok()?.trim_end();
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .next();
    let Some(len) = len else {
        return Some((head_end, false));
    };
    let total = head_end + len;
    if buf.len() < total {
        return None;
    }
    Some((total, ok && &buf[head_end..total] == body))
}

/// `http` mode: each of `conns` connections sends [`HTTP_REQUEST`], reads
/// the whole response, checks it (status 200, body `body`), and sends the
/// next (one request in flight per connection, as `wrk` does). A message is
/// a request and its response; a wrong response counts as a mismatch, a
/// closed or failed connection as an error.
fn load_http(addr: SocketAddr, conns: usize, body: &[u8], warm: Duration, dur: Duration) -> Load {
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let (mut msgs, mut bytes, mut errors, mut mismatches) = (0u64, 0u64, 0u64, 0u64);
    let Ok(mut poll) = Poll::new() else {
        return Load {
            msgs: 0,
            bytes: 0,
            hist,
            errors: 1,
            mismatches: 0,
        };
    };
    struct HttpConn {
        s: TcpStream,
        /// Bytes of the request in flight still to write.
        unsent: usize,
        /// When the request in flight left.
        start: Instant,
        /// What came back and is not yet a whole response.
        got: Vec<u8>,
        dead: bool,
    }
    let mut cs = Vec::with_capacity(conns);
    for i in 0..conns {
        match std::net::TcpStream::connect(addr) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                let _ = s.set_nonblocking(true);
                let mut s = TcpStream::from_std(s);
                if poll
                    .registry()
                    .register(&mut s, Token(i), Interest::READABLE | Interest::WRITABLE)
                    .is_err()
                {
                    errors += 1;
                    continue;
                }
                cs.push(HttpConn {
                    s,
                    unsent: HTTP_REQUEST.len(),
                    start: Instant::now(),
                    got: Vec::with_capacity(1024),
                    dead: false,
                });
            }
            Err(_) => errors += 1,
        }
    }
    let start = Instant::now();
    let measure_from = start + warm;
    let end = measure_from + dur;
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; CHUNK];
    let mut ready: Vec<usize> = (0..cs.len()).collect();
    while Instant::now() < end {
        for &i in &ready {
            let c = &mut cs[i];
            if c.dead {
                continue;
            }
            // Edge-triggered: write the request's rest, read until the
            // socket would block, answer each whole response with the next
            // request.
            loop {
                while c.unsent > 0 {
                    let from = HTTP_REQUEST.len() - c.unsent;
                    match c.s.write(&HTTP_REQUEST[from..]) {
                        Ok(w) => c.unsent -= w,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => {
                            errors += 1;
                            c.dead = true;
                            break;
                        }
                    }
                }
                if c.dead {
                    break;
                }
                match c.s.read(&mut buf) {
                    Ok(0) => {
                        errors += 1;
                        c.dead = true;
                        break;
                    }
                    Ok(n) => {
                        c.got.extend_from_slice(&buf[..n]);
                        let now = Instant::now();
                        if now >= measure_from {
                            bytes += n as u64;
                        }
                        while let Some((len, right)) = http_response(&c.got, body) {
                            c.got.drain(..len);
                            if !right {
                                mismatches += 1;
                            }
                            if now >= measure_from {
                                let _ = hist
                                    .record(now.duration_since(c.start).as_micros().max(1) as u64);
                                msgs += 1;
                            }
                            c.start = now;
                            c.unsent = HTTP_REQUEST.len();
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        errors += 1;
                        c.dead = true;
                        break;
                    }
                }
            }
        }
        ready.clear();
        if poll
            .poll(&mut events, Some(Duration::from_millis(100)))
            .is_err()
        {
            errors += 1;
        }
        ready.extend(events.iter().map(|e| e.token().0).filter(|&i| i < cs.len()));
    }
    Load {
        msgs,
        bytes,
        hist,
        errors,
        mismatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_table_matches_the_formula() {
        let p = Pattern::new();
        for conn in [0usize, 1, 7, 499] {
            for pos in [0u64, 1, 250, 251, 1_000_003] {
                let s = p.at(conn, pos, 600);
                assert_eq!(s.len(), 600);
                for (k, b) in s.iter().enumerate() {
                    assert_eq!(*b, ((conn as u64 * 131 + pos + k as u64) % 251) as u8);
                }
            }
        }
        assert_eq!(p.at(3, 5, CHUNK + 10).len(), CHUNK);
    }

    #[test]
    fn http_responses_are_framed_and_checked() {
        let one = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: x\r\n\r\nhello";
        assert_eq!(http_response(one, b"hello"), Some((one.len(), true)));
        assert_eq!(http_response(one, b"howdy"), Some((one.len(), false)));
        assert_eq!(http_response(&one[..one.len() - 1], b"hello"), None);
        assert_eq!(http_response(&one[..10], b"hello"), None);
        let mut two = one.to_vec();
        two.extend_from_slice(one);
        assert_eq!(http_response(&two, b"hello"), Some((one.len(), true)));
        let bad = b"HTTP/1.1 500 Oops\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(http_response(bad, b"hello"), Some((bad.len(), false)));
        let unframed = b"HTTP/1.1 200 OK\r\n\r\n";
        assert_eq!(http_response(unframed, b""), Some((unframed.len(), false)));
    }
}
