//! The threads of `ovl bench --scale`: loopback pairs, ping-pong on them
//! (the shapes `shared` and `per-thread`), and the workers of the `port`
//! and `port-engines` shapes. Every byte received is checked; every wait
//! is bounded.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use overlapped::{
    Completion, CompletionPort, Engine, EngineKind, MsgFlags, Notify, Op, OpOutput, Packet, Polled,
    Socket, Started,
};

use super::super::load::{CHUNK, Pattern};
use super::{Config, Run, STALL, TICK};

/// The byte stream of pair `pair` in direction `dir` (its pattern).
fn stream_id(pair: usize, dir: usize) -> usize {
    pair * 2 + dir
}

/// Writes `n` bytes of stream `conn`'s pattern from `pos` into `buf`.
fn fill(buf: &mut Vec<u8>, pat: &Pattern, conn: usize, pos: u64, n: usize) {
    buf.clear();
    while buf.len() < n {
        let k = buf.len();
        buf.extend_from_slice(pat.at(conn, pos + k as u64, n - k));
    }
}

/// Checks received bytes against stream `conn`'s pattern from `pos`.
fn check(pat: &Pattern, conn: usize, pos: u64, data: &[u8]) -> Result<(), String> {
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        let at = pos + (i * CHUNK) as u64;
        if chunk != pat.at(conn, at, chunk.len()) {
            return Err(format!(
                "received bytes differ from those sent (stream {conn}, bytes {at}..{})",
                at + chunk.len() as u64
            ));
        }
    }
    Ok(())
}

/// Waits, at most [`STALL`], for an operation; an error of the operation is
/// an error here.
fn complete<T: OpOutput>(op: Op<T>, what: &str) -> Result<Completion<T>, String> {
    match op.result_timeout(Some(STALL)) {
        Ok(Polled::Complete(c)) => match c.error {
            Some(e) => Err(format!("{what}: {e}")),
            None => Ok(c),
        },
        Ok(Polled::Incomplete(_)) => Err(format!(
            "{what} did not complete within {} s",
            STALL.as_secs()
        )),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

/// `n` connected loopback TCP pairs on `engine`.
fn connect_pairs(engine: &Engine, n: usize) -> Result<Vec<(Socket, Socket)>, String> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let listener =
        Socket::tcp_listener(engine, &any).map_err(|e| format!("listen on {any}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("the listener's address: {e}"))?;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let a = Socket::tcp_for(engine, &addr).map_err(|e| format!("socket: {e}"))?;
        let connect = a
            .connect(addr, Notify::None)
            .map_err(|e| format!("connect to {addr}: {e}"))?;
        complete(connect.op(), &format!("connect to {addr}"))?;
        let accept = listener
            .accept(Notify::None)
            .map_err(|e| format!("accept on {addr}: {e}"))?;
        let b = complete(accept.op(), &format!("accept on {addr}"))?
            .data
            .ok_or_else(|| format!("accept on {addr} completed without a socket"))?;
        for s in [&a, &b] {
            s.set_nodelay(true)
                .map_err(|e| format!("TCP_NODELAY: {e}"))?;
        }
        pairs.push((a, b));
    }
    Ok(pairs)
}

/// The shapes `shared` and `per-thread`: thread `me` pings and pongs on its
/// own pairs until told to stop.
pub(super) fn pingpong(
    engine: &Engine,
    me: usize,
    cfg: &Config,
    run: &Run,
    ready: &dyn Fn(),
) -> Result<(), String> {
    let pat = Pattern::new();
    let pairs = connect_pairs(engine, cfg.pairs)?;
    ready();
    let mut send_buf = Vec::with_capacity(cfg.size);
    let mut recv_buf = vec![0u8; cfg.size];
    // Bytes sent so far on each pair, each way.
    let mut pos = vec![[0u64; 2]; pairs.len()];
    let mut done = 0u64;
    for round in 0u64.. {
        if run.stopping() {
            break;
        }
        let dir = (round % 2) as usize;
        for (k, (a, b)) in pairs.iter().enumerate() {
            let (from, to) = if dir == 0 { (a, b) } else { (b, a) };
            let conn = stream_id(me * cfg.pairs + k, dir);
            let at = pos[k][dir];
            fill(&mut send_buf, &pat, conn, at, cfg.size);
            let send = from
                .send(
                    std::mem::take(&mut send_buf),
                    MsgFlags::empty(),
                    Notify::None,
                )
                .map_err(|e| format!("send: {}", e.error))?;
            let mut got = 0;
            while got < cfg.size {
                let mut buf = std::mem::take(&mut recv_buf);
                buf.resize(cfg.size - got, 0);
                let recv = to
                    .recv(buf, MsgFlags::empty(), Notify::None)
                    .map_err(|e| format!("receive: {}", e.error))?;
                let c = complete(recv.op(), "receive")?;
                if c.bytes == 0 {
                    return Err("the peer closed the connection".into());
                }
                let data = c
                    .data
                    .get(..c.bytes)
                    .ok_or("a receive overran its buffer")?;
                check(&pat, conn, at + got as u64, data)?;
                got += c.bytes;
                recv_buf = c.data;
            }
            let c = complete(send.op(), "send")?;
            if c.bytes != cfg.size {
                return Err(format!("a send took {} of {} bytes", c.bytes, cfg.size));
            }
            send_buf = c.data;
            pos[k][dir] += cfg.size as u64;
            done += 1;
            run.record(me, done);
        }
    }
    Ok(())
}

/// A pair of the port shape.
struct PortPair {
    ends: [Socket; 2],
    state: Mutex<PairState>,
}

/// Where a pair of the port shape is in its ping-pong.
#[derive(Default)]
struct PairState {
    /// The message in flight; even ones go from `ends[0]` to `ends[1]`.
    seq: u64,
    /// Bytes sent so far each way.
    pos: [u64; 2],
    /// Operations of the message still to complete (its send, its receive).
    outstanding: u8,
    /// Bytes of the message received so far.
    got: usize,
    send_buf: Vec<u8>,
    recv_buf: Vec<u8>,
}

/// The tag of an operation: the message's number and which operation.
fn tag(seq: u64, op: PortOp) -> u64 {
    seq << 1 | op as u64
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortOp {
    Send = 0,
    Recv = 1,
}

/// What the workers of the port shape share.
pub(super) struct PortShared {
    /// Pair `k` (its completion key), set up by worker `k / cfg.pairs`.
    /// (Dropped first: closing the sockets aborts their operations, whose
    /// packets the port then drops.)
    pairs: Vec<OnceLock<PortPair>>,
    port: CompletionPort,
    /// The engine of every pair; `None`: each worker makes one of `kind`
    /// for its own pairs.
    engine: Option<Engine>,
    kind: EngineKind,
    pat: Pattern,
    size: usize,
    /// The sockets skip the port on success (`set_skip_port_on_success`,
    /// as `ovl`'s port server does): what completes at its start is taken
    /// by the thread that started it; otherwise every completion is a
    /// packet, which any worker may take.
    skip: bool,
}

impl PortShared {
    /// The port shape for `workers` workers on `engine` (`None`: an engine
    /// of `kind` per worker); `skip`: see [`PortShared::skip`].
    pub(super) fn new(
        engine: Option<Engine>,
        kind: EngineKind,
        workers: usize,
        skip: bool,
        cfg: &Config,
    ) -> PortShared {
        PortShared {
            pairs: (0..workers * cfg.pairs).map(|_| OnceLock::new()).collect(),
            port: CompletionPort::new(workers),
            engine,
            kind,
            pat: Pattern::new(),
            size: cfg.size,
            skip,
        }
    }

    fn pair(&self, key: usize) -> Result<&PortPair, String> {
        self.pairs
            .get(key)
            .and_then(OnceLock::get)
            .ok_or_else(|| format!("a packet for key {key}, which is no pair"))
    }

    /// Starts message `st.seq` of pair `key`, its send, then its receive,
    /// and takes what completed at once (skip-on-success). True when the
    /// whole message did.
    fn begin(&self, key: usize, p: &PortPair, st: &mut PairState) -> Result<bool, String> {
        let dir = (st.seq % 2) as usize;
        let from = &p.ends[dir];
        fill(
            &mut st.send_buf,
            &self.pat,
            stream_id(key, dir),
            st.pos[dir],
            self.size,
        );
        st.outstanding = 2;
        st.got = 0;
        let send = std::mem::take(&mut st.send_buf);
        let sent = from
            .send(
                send,
                MsgFlags::empty(),
                Notify::Port(tag(st.seq, PortOp::Send)),
            )
            .map_err(|e| format!("send: {}", e.error))?;
        if let Some(c) = self.now(sent)? {
            self.apply(key, p, st, PortOp::Send, c)?;
        }
        let mut buf = std::mem::take(&mut st.recv_buf);
        buf.resize(self.size, 0);
        self.receive(key, p, st, buf)
    }

    /// Starts the message's receive (or the rest of it) into `buf`; true
    /// when that completed the message at once.
    fn receive(
        &self,
        key: usize,
        p: &PortPair,
        st: &mut PairState,
        buf: Vec<u8>,
    ) -> Result<bool, String> {
        let dir = (st.seq % 2) as usize;
        let started = p.ends[1 - dir]
            .recv(
                buf,
                MsgFlags::empty(),
                Notify::Port(tag(st.seq, PortOp::Recv)),
            )
            .map_err(|e| format!("receive: {}", e.error))?;
        match self.now(started)? {
            Some(c) => self.apply(key, p, st, PortOp::Recv, c),
            None => Ok(false),
        }
    }

    /// The completion of an operation that completed at its start and
    /// posts no packet (skip-on-success), taken inline.
    fn now(&self, started: Started<Vec<u8>>) -> Result<Option<Completion<Vec<u8>>>, String> {
        match started {
            Started::Now { op, .. } if self.skip => op
                .wait()
                .map(Some)
                .map_err(|e| format!("an operation done at its start: {e}")),
            _ => Ok(None),
        }
    }

    /// Takes the completion of the message's send or receive; true when
    /// the message is complete (the pair's next one is then due).
    fn apply(
        &self,
        key: usize,
        p: &PortPair,
        st: &mut PairState,
        op: PortOp,
        c: Completion<Vec<u8>>,
    ) -> Result<bool, String> {
        if let Some(e) = c.error {
            return Err(format!("{op:?} on pair {key}: {e}"));
        }
        let dir = (st.seq % 2) as usize;
        match op {
            PortOp::Send if c.bytes != self.size => {
                return Err(format!("a send took {} of {} bytes", c.bytes, self.size));
            }
            PortOp::Send => st.send_buf = c.data,
            PortOp::Recv => {
                if c.bytes == 0 {
                    return Err(format!("pair {key}: the peer closed the connection"));
                }
                let data = c
                    .data
                    .get(..c.bytes)
                    .ok_or("a receive overran its buffer")?;
                check(
                    &self.pat,
                    stream_id(key, dir),
                    st.pos[dir] + st.got as u64,
                    data,
                )?;
                st.got += c.bytes;
                if st.got < self.size {
                    // The rest of the message, into the same buffer.
                    let mut buf = c.data;
                    buf.resize(self.size - st.got, 0);
                    return self.receive(key, p, st, buf);
                }
                st.recv_buf = c.data;
            }
        }
        st.outstanding -= 1;
        if st.outstanding > 0 {
            return Ok(false);
        }
        st.pos[dir] += self.size as u64;
        st.seq += 1;
        Ok(true)
    }

    /// Handles one packet; the pair's key when it completed a message.
    fn handle(&self, packet: Packet) -> Result<Option<usize>, String> {
        let (key, tag_) = (packet.key, packet.tag);
        let p = self.pair(key)?;
        let c = packet
            .into_completion::<Vec<u8>>()
            .map_err(|p| format!("a packet that is no send or receive: {p:?}"))?;
        let op = if tag_ & 1 == 0 {
            PortOp::Send
        } else {
            PortOp::Recv
        };
        let mut st = self.lock(key, p)?;
        if tag_ >> 1 != st.seq {
            return Err(format!(
                "pair {key}: a packet of message {} while message {} is in flight",
                tag_ >> 1,
                st.seq
            ));
        }
        Ok(self.apply(key, p, &mut st, op, c)?.then_some(key))
    }

    /// Starts pair `key`'s next message; true when it completed at once.
    fn next(&self, key: usize) -> Result<bool, String> {
        let p = self.pair(key)?;
        let mut st = self.lock(key, p)?;
        self.begin(key, p, &mut st)
    }

    fn lock<'a>(
        &self,
        key: usize,
        p: &'a PortPair,
    ) -> Result<std::sync::MutexGuard<'a, PairState>, String> {
        p.state
            .lock()
            .map_err(|_| format!("pair {key}: its lock was poisoned"))
    }
}

/// The port shape: worker `me` sets up and starts its own pairs, then
/// takes packets (of any worker's pairs) until told to stop.
pub(super) fn port_worker(
    sh: &PortShared,
    me: usize,
    cfg: &Config,
    run: &Run,
    ready: &dyn Fn(),
) -> Result<(), String> {
    let first = me * cfg.pairs;
    let engine = match &sh.engine {
        Some(e) => e.clone(),
        None => Engine::with_kind(sh.kind).map_err(|e| format!("engine {}: {e}", sh.kind))?,
    };
    for (k, (a, b)) in connect_pairs(&engine, cfg.pairs)?.into_iter().enumerate() {
        let key = first + k;
        for s in [&a, &b] {
            sh.port
                .associate(s, key)
                .map_err(|e| format!("associate with the port: {e}"))?;
            if sh.skip {
                s.set_skip_port_on_success()
                    .map_err(|e| format!("skip the port on success: {e}"))?;
            }
        }
        let pair = PortPair {
            ends: [a, b],
            state: Mutex::new(PairState::default()),
        };
        let slot = sh.pairs.get(key).ok_or("more pairs than slots")?;
        if slot.set(pair).is_err() {
            return Err(format!("pair {key} set up twice"));
        }
    }
    ready();
    // The pairs whose next message is due, started by this worker: a
    // message whose packet this worker took, or one completed at once.
    let mut due: VecDeque<usize> = (first..first + cfg.pairs).collect();
    let mut done = 0u64;
    while !run.stopping() {
        // Packets first, without waiting while messages are due.
        let wait = if due.is_empty() { TICK } else { Duration::ZERO };
        match sh.port.get_queued(Some(wait)) {
            Ok(Some(packet)) => {
                if let Some(key) = sh.handle(packet)? {
                    done += 1;
                    due.push_back(key);
                }
            }
            Ok(None) => {}
            Err(e) => return Err(format!("get_queued: {e}")),
        }
        if let Some(key) = due.pop_front() {
            if sh.next(key)? {
                done += 1;
                due.push_back(key);
            }
        }
        run.record(me, done);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_and_check_span_chunks() {
        let pat = Pattern::new();
        let mut buf = Vec::new();
        let n = 2 * CHUNK + 7;
        fill(&mut buf, &pat, 5, 1_000, n);
        assert_eq!(buf.len(), n);
        assert_eq!(check(&pat, 5, 1_000, &buf), Ok(()));
        assert_eq!(check(&pat, 5, 1_000 + CHUNK as u64, &buf[CHUNK..]), Ok(()));
        assert!(check(&pat, 6, 1_000, &buf).is_err());
        buf[CHUNK + 3] ^= 1;
        let e = check(&pat, 5, 1_000, &buf).unwrap_err();
        assert!(e.contains("bytes 66536..132072"), "{e}");
    }

    #[test]
    fn tags_carry_the_message_and_the_operation() {
        assert_eq!(tag(0, PortOp::Send), 0);
        assert_eq!(tag(0, PortOp::Recv), 1);
        assert_eq!(tag(21, PortOp::Recv) >> 1, 21);
        assert_eq!(tag(21, PortOp::Send) & 1, 0);
    }
}
