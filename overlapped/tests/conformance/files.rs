//! `docs/SPEC.md`, section *files* (f01–f05): overlapped files, read and
//! written at explicit offsets, on both engines.
use std::cell::RefCell;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use overlapped::*;

use crate::util::{self, *};

/// A directory of its own for a case, removed with what it holds.
struct Scratch(PathBuf);

impl Scratch {
    fn new(case: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ovl-files-{}-{n}-{case}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    /// A named pipe, opened for reading and writing (which never waits
    /// for a peer on Linux): its reads wait until bytes are written.
    fn fifo(&self, e: &Engine, name: &str) -> File {
        let p = self.path(name);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &p,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        File::open_with(e, &p, std::fs::OpenOptions::new().read(true).write(true)).unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The byte the test files hold at `at`.
fn pattern(at: u64) -> u8 {
    (at.wrapping_mul(31) ^ (at >> 9)) as u8
}

/// A file of `len` bytes of [`pattern`].
fn patterned(path: &Path, len: u64) {
    let bytes: Vec<u8> = (0..len).map(pattern).collect();
    std::fs::write(path, bytes).unwrap();
}

/// Takes a result within ten seconds or fails the case.
fn done_within_ten<T: OpOutput>(op: Op<T>) -> Completion<T> {
    match op.result_timeout(ten()).unwrap() {
        Polled::Complete(c) => c,
        Polled::Incomplete(_) => panic!("the operation did not complete within 10 s"),
    }
}

/// Waits (alertable) until `ran` says the routine ran.
fn until_routine_ran(ran: &Rc<RefCell<Option<Completion<Vec<u8>>>>>) -> Completion<Vec<u8>> {
    let deadline = Instant::now() + slack(Duration::from_secs(10));
    while ran.borrow().is_none() {
        assert!(Instant::now() < deadline, "the routine never ran");
        let _ = sleep_ex(Some(Duration::from_millis(50)), true);
    }
    ran.borrow_mut().take().unwrap()
}

fn f01_read_and_write_at_offsets_with_every_notification(e: &Engine) {
    let dir = Scratch::new("f01");
    let f = File::create(e, dir.path("data")).unwrap();

    // No notify: a gather write at offset 4096 (the gap before it is a
    // hole of zeros), then a scatter read across its start.
    let st = f
        .write_at([b"over".to_vec(), b"lapped".to_vec()], 4096, Notify::None)
        .unwrap();
    let w = done_within_ten(st.op());
    assert!(w.is_ok(), "{:?}", w.error);
    assert_eq!(w.bytes, 10);
    let st = f
        .read_at(vec![vec![0xAAu8; 2], vec![0xAAu8; 6]], 4094, Notify::None)
        .unwrap();
    let r = done_within_ten(st.op());
    assert_eq!(r.bytes, 8);
    assert_eq!(r.data, vec![b"\0\0".to_vec(), b"overla".to_vec()]);

    // An event: set on completion, whether it completed now or later.
    let ev = Event::new();
    let st = f.write_at(b"EVENT".to_vec(), 0, &ev).unwrap();
    assert_eq!(
        wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    assert_eq!(done_within_ten(st.op()).bytes, 5);
    let st = f.read_at(vec![0u8; 5], 0, &ev).unwrap();
    assert_eq!(
        wait_for_events(std::slice::from_ref(&ev), WaitMode::Any, ten(), false).unwrap(),
        WaitOutcome::Event(0)
    );
    assert_eq!(&done_within_ten(st.op()).data[..], b"EVENT");

    // A completion routine, run in an alertable wait of this thread, with
    // the buffer by value.
    let ran = Rc::new(RefCell::new(None));
    let r2 = ran.clone();
    let st = f
        .read_at(
            vec![0u8; 10],
            4096,
            Notify::routine(move |c| *r2.borrow_mut() = Some(c)),
        )
        .unwrap();
    drop(st);
    let c = until_routine_ran(&ran);
    assert!(c.is_ok(), "{:?}", c.error);
    assert_eq!(&c.data[..], b"overlapped");

    // A port: the file's packets carry its key and the operation's tag,
    // beside a socket's.
    let port = CompletionPort::new(1);
    let pf = File::create(e, dir.path("ported")).unwrap();
    port.associate_file(&pf, 77).unwrap();
    let (a, _b) = tcp_pair(e);
    port.associate(&a, 5).unwrap();
    let _w = pf.write_at(b"port".to_vec(), 100, Notify::Port(1)).unwrap();
    let pk = port.get_queued(ten()).unwrap().expect("the write's packet");
    assert_eq!((pk.key, pk.tag, pk.bytes), (77, 1, 4));
    let _r = pf.read_at(vec![0u8; 8], 100, Notify::Port(2)).unwrap();
    let pk = port.get_queued(ten()).unwrap().expect("the read's packet");
    assert_eq!((pk.key, pk.tag, pk.bytes), (77, 2, 4));
    let c = pk.into_completion::<Vec<u8>>().unwrap();
    assert_eq!(&c.data[..], b"port");
    // A routine on a file associated with a port fails at the call (k08).
    let err = pf
        .read_at(vec![0u8; 1], 0, Notify::routine(|_| {}))
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);

    // What the file holds on the disk.
    let on_disk = std::fs::read(dir.path("data")).unwrap();
    assert_eq!(on_disk.len(), 4106);
    assert_eq!(&on_disk[..5], b"EVENT");
    assert!(on_disk[5..4096].iter().all(|&b| b == 0));
    assert_eq!(&on_disk[4096..], b"overlapped");

    // Bad input fails at the call, the buffers back, nothing in flight.
    let err = f.read_at(vec![0u8; 16], i64::MAX as u64 - 8, Notify::None);
    let err = err.unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
    assert_eq!(err.bufs.len(), 16);
    let err = f
        .write_at(vec![1u8; 2], u64::MAX, Notify::None)
        .unwrap_err();
    assert_eq!(err.error.kind(), ErrorKind::InvalidInput);
    let ro = File::open(e, dir.path("data")).unwrap();
    let err = ro.write_at(b"no".to_vec(), 0, Notify::None).unwrap_err();
    assert_eq!(err.error.raw_os_error(), Some(libc::EBADF), "{}", err.error);
    assert_eq!(&err.bufs[..], b"no");
    assert_eq!(e.ops_in_table(), 0);
    // A read-only file reads.
    let r = done_within_ten(ro.read_at(vec![0u8; 5], 0, Notify::None).unwrap().op());
    assert_eq!(&r.data[..], b"EVENT");
    // A closed file refuses operations.
    ro.close().unwrap();
    let err = ro.read_at(vec![0u8; 1], 0, Notify::None).unwrap_err();
    assert_eq!(err.error.raw_os_error(), Some(libc::EBADF));
}

fn f02_many_reads_in_flight_complete_independently(e: &Engine) {
    let dir = Scratch::new("f02");
    const LEN: u64 = 1 << 20;
    patterned(&dir.path("data"), LEN);
    let f = File::open(e, dir.path("data")).unwrap();
    let port = CompletionPort::new(1);
    port.associate_file(&f, 1).unwrap();
    // 64 reads of 4 KiB at scattered offsets (some unaligned, one at the
    // very end), all started before any is taken.
    let offsets: Vec<u64> = (0..64u64)
        .map(|i| (i * 7919 * 4099) % (LEN - 4096))
        .chain([LEN - 4096])
        .collect();
    for (i, &at) in offsets.iter().enumerate() {
        let _ = f
            .read_at(vec![0u8; 4096], at, Notify::Port(i as u64))
            .unwrap();
    }
    let mut seen = vec![false; offsets.len()];
    for _ in 0..offsets.len() {
        let pk = port.get_queued(ten()).unwrap().expect("a read's packet");
        let i = pk.tag as usize;
        assert!(!seen[i], "read {i} completed twice");
        seen[i] = true;
        let c = pk.into_completion::<Vec<u8>>().unwrap();
        assert!(c.is_ok(), "{:?}", c.error);
        assert_eq!(c.bytes, 4096);
        let at = offsets[i];
        for (k, &b) in c.data.iter().enumerate() {
            assert_eq!(b, pattern(at + k as u64), "read {i} byte {k}");
        }
    }
    assert!(
        port.get_queued(Some(Duration::from_millis(20)))
            .unwrap()
            .is_none()
    );

    // A read that waits (a pipe with nothing in it yet) holds back none of
    // the file's later operations: the write started after it completes,
    // and the read then takes what it wrote.
    let p = dir.fifo(e, "pipe");
    let waiting = p.read_at(vec![0u8; 16], 0, Notify::None).unwrap();
    assert!(waiting.is_pending());
    let waiting = waiting.op();
    let w = done_within_ten(p.write_at(b"after".to_vec(), 0, Notify::None).unwrap().op());
    assert_eq!(w.bytes, 5);
    let r = done_within_ten(waiting);
    assert_eq!(&r.data[..], b"after");
}

fn f03_reading_at_or_past_the_end_is_zero_bytes(e: &Engine) {
    let dir = Scratch::new("f03");
    patterned(&dir.path("data"), 1000);
    let f = File::open(e, dir.path("data")).unwrap();
    for at in [1000u64, 1001, 1 << 40] {
        let c = done_within_ten(f.read_at(vec![9u8; 64], at, Notify::None).unwrap().op());
        assert!(c.is_ok(), "at {at}: {:?}", c.error);
        assert_eq!(c.bytes, 0, "at {at}");
        assert!(c.data.is_empty(), "the buffer holds what was read: nothing");
        assert_eq!(c.data.capacity(), 64);
    }
    // A read across the end: the bytes up to it.
    let c = done_within_ten(f.read_at(vec![0u8; 64], 990, Notify::None).unwrap().op());
    assert_eq!(c.bytes, 10);
    assert_eq!(c.data, (990..1000).map(pattern).collect::<Vec<u8>>());
    // The same through a port: a packet of 0 bytes, no error.
    let port = CompletionPort::new(1);
    port.associate_file(&f, 3).unwrap();
    let _ = f.read_at(vec![0u8; 8], 5000, Notify::Port(9)).unwrap();
    let pk = port.get_queued(ten()).unwrap().expect("the read's packet");
    assert_eq!((pk.key, pk.tag, pk.bytes), (3, 9, 0));
    assert!(pk.error.is_none(), "{:?}", pk.error);
}

fn f04_starts_never_block_and_complete_pending(e: &Engine) {
    let dir = Scratch::new("f04");
    let f = File::create(e, dir.path("data")).unwrap();
    let before = e.counters();
    // More operations than the poll engine has workers, each on a pipe
    // with nothing in it: every start returns at once, pending.
    let p = dir.fifo(e, "pipe");
    let started = Instant::now();
    let reads: Vec<_> = (0..FILE_WORKERS + 2)
        .map(|_| {
            let st = p.read_at(vec![0u8; 1], 0, Notify::None).unwrap();
            assert!(
                st.is_pending(),
                "a read of an empty pipe completed at start"
            );
            st.op()
        })
        .collect();
    assert!(
        started.elapsed() < slack(Duration::from_secs(1)),
        "starting {} waiting reads took {:?}",
        reads.len(),
        started.elapsed()
    );
    // Regular files too: a write and a read are pending at start, and
    // complete.
    let w = f.write_at(vec![7u8; 65536], 0, Notify::None).unwrap();
    assert!(w.is_pending());
    assert_eq!(done_within_ten(w.op()).bytes, 65536);
    let r = f.read_at(vec![0u8; 65536], 0, Notify::None).unwrap();
    assert!(r.is_pending());
    let r = done_within_ten(r.op());
    assert_eq!(r.bytes, 65536);
    assert!(r.data.iter().all(|&b| b == 7));
    // The waiting reads each take one byte once the pipe has them.
    let w = p
        .write_at(vec![5u8; FILE_WORKERS + 2], 0, Notify::None)
        .unwrap();
    assert_eq!(done_within_ten(w.op()).bytes, FILE_WORKERS + 2);
    for op in reads {
        let c = done_within_ten(op);
        assert_eq!((c.bytes, &c.data[..]), (1, &[5u8][..]));
    }
    let after = e.counters();
    assert_eq!(
        after.completed_now, before.completed_now,
        "no file operation completed at start"
    );
}

fn f05_close_aborts_pending_operations(e: &Engine) {
    let dir = Scratch::new("f05");
    let fds = fd_count();
    // Reads waiting on a pipe: closing the file aborts each, its event set,
    // its buffer back untouched.
    let p = dir.fifo(e, "pipe");
    let evs: Vec<Event> = (0..4).map(|_| Event::new()).collect();
    let ops: Vec<_> = evs
        .iter()
        .enumerate()
        .map(|(i, ev)| {
            let st = p.read_at(vec![i as u8; 8 + i], 0, ev).unwrap();
            assert!(st.is_pending());
            st.op()
        })
        .collect();
    p.close().unwrap();
    assert_eq!(
        wait_for_events(&evs, WaitMode::All, ten(), false).unwrap(),
        WaitOutcome::Event(0),
        "every event is set"
    );
    for (i, op) in ops.into_iter().enumerate() {
        let c = done_within_ten(op);
        assert!(c.is_aborted(), "read {i}: {:?}", c.error);
        assert_eq!(c.wsa_error(), Some(995), "WSA_OPERATION_ABORTED");
        assert_eq!(c.bytes, 0);
        assert!(c.data.is_empty());
        assert_eq!(c.data.capacity(), 8 + i, "the buffer came back");
    }
    // A regular file closed right after many reads started: each completes
    // exactly once, aborted with nothing in its buffer or with its bytes.
    const LEN: u64 = 4 << 20;
    patterned(&dir.path("data"), LEN);
    let f = File::open(e, dir.path("data")).unwrap();
    let ops: Vec<_> = (0..64u64)
        .map(|i| {
            f.read_at(vec![0u8; 65536], i * 65536, Notify::None)
                .unwrap()
                .op()
        })
        .collect();
    drop(f);
    for (i, op) in ops.into_iter().enumerate() {
        let c = done_within_ten(op);
        if c.is_aborted() {
            assert_eq!(c.bytes, 0, "read {i}");
            assert!(c.data.is_empty());
        } else {
            assert!(c.is_ok(), "read {i}: {:?}", c.error);
            assert_eq!(c.bytes, 65536);
            let at = i as u64 * 65536;
            assert!(
                c.data
                    .iter()
                    .enumerate()
                    .all(|(k, &b)| b == pattern(at + k as u64)),
                "read {i}: its bytes"
            );
        }
    }
    assert!(
        eventually(slack(Duration::from_secs(5)), || e.ops_in_table() == 0),
        "operations left in the table"
    );
    assert!(
        eventually(slack(Duration::from_secs(5)), || fd_count() <= fds),
        "descriptors leaked: {} then {}",
        fds,
        fd_count()
    );
}

util::cases! {
    f01_read_and_write_at_offsets_with_every_notification,
    f02_many_reads_in_flight_complete_independently,
    f03_reading_at_or_past_the_end_is_zero_bytes,
    f04_starts_never_block_and_complete_pending,
    f05_close_aborts_pending_operations,
}
