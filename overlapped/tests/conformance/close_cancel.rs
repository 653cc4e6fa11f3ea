//! SPEC section *close and cancel* (c01–c08).
use std::io::Read;
use std::time::Duration;

use overlapped::*;

use crate::util::*;

const TEN: Option<Duration> = Some(Duration::from_secs(10));

cases! {
    fn c01_close_aborts_pending_receives_with_buffers(e: &Engine) {
        let (c, _p) = std_pair(e);
        let evs: Vec<Event> = (0..4).map(|_| Event::new()).collect();
        let ops: Vec<_> = evs.iter().map(|ev| c.recv(vec![0u8; 32], MsgFlags::empty(), ev).unwrap().op()).collect();
        c.close().unwrap();
        assert_eq!(wait_for_events(&evs, WaitMode::All, TEN, false).unwrap(), WaitOutcome::Event(0));
        for op in ops {
            let d = op.wait().unwrap();
            assert!(d.is_aborted(), "{:?}", d.error);
            assert_eq!(d.data.capacity(), 32);
        }
    }

    fn c02_cancel_aborts_sets_event_and_runs_routine(e: &Engine) {
        let (c, _p) = std_pair(e);
        let ev = Event::new();
        let op = c.recv(vec![0u8; 8], MsgFlags::empty(), &ev).unwrap().op();
        op.cancel().unwrap();
        assert!(ev.wait(TEN));
        let d = op.wait().unwrap();
        assert!(d.is_aborted());
        assert_eq!(d.data.capacity(), 8);
        let ran = std::rc::Rc::new(std::cell::Cell::new(false));
        let r2 = ran.clone();
        let op = c
            .recv(vec![0u8; 8], MsgFlags::empty(), Notify::routine(move |d: Completion<Vec<u8>>| {
                assert!(d.is_aborted());
                r2.set(true);
            }))
            .unwrap()
            .op();
        op.cancel().unwrap();
        assert_eq!(sleep_ex(Some(Duration::from_secs(10)), true), SleepOutcome::IoCompletion);
        assert!(ran.get());
        assert_eq!(op.cancel().unwrap_err().kind(), std::io::ErrorKind::NotFound);
    }

    fn c03_cancel_races_completion_10000(e: &Engine) {
        let (c, s) = tcp_pair(e);
        let mut sent = 0u64;
        let mut got = 0u64;
        let mut aborted = 0;
        for i in 0..10_000u32 {
            let op = s.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None).unwrap().op();
            c.send(i.to_le_bytes().to_vec(), MsgFlags::empty(), Notify::None).unwrap().wait().unwrap();
            sent += 4;
            let _ = op.cancel();
            let d = op.wait().unwrap();
            if d.is_aborted() {
                aborted += 1;
                assert!(d.data.is_empty() || d.bytes == 0);
            } else {
                assert!(d.error.is_none());
                got += d.bytes as u64;
            }
            // Whatever the cancelled receive did not take is still there.
            while got < sent {
                let d = s.recv(vec![0u8; 64], MsgFlags::empty(), Notify::None).unwrap().wait().unwrap();
                assert!(d.error.is_none() && d.bytes > 0);
                got += d.bytes as u64;
            }
        }
        assert_eq!(got, sent, "no byte lost or duplicated");
        let _ = aborted;
    }

    fn c04_cancel_all_is_per_socket(e: &Engine) {
        let (a, _pa) = std_pair(e);
        let (b, mut pb) = std_pair(e);
        let oa: Vec<_> = (0..3).map(|_| a.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None).unwrap().op()).collect();
        let ob = b.recv(vec![0u8; 4], MsgFlags::empty(), Notify::None).unwrap().op();
        assert_eq!(a.cancel_all().unwrap(), 3);
        for op in oa {
            assert!(op.wait().unwrap().is_aborted());
        }
        write_all(&mut pb, b"kept");
        let d = ob.wait().unwrap();
        assert!(d.error.is_none());
        assert_eq!(&d.data[..], b"kept");
    }

    fn c05_drop_cancels_and_later_data_is_not_lost(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let before = e.counters().cancelled;
        drop(c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None).unwrap());
        assert!(eventually(5 * SEC, || {
            e.poll();
            e.ops_in_table() == 0
        }));
        assert_eq!(e.counters().cancelled - before, 1);
        write_all(&mut p, b"after");
        let d = c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None).unwrap().wait().unwrap();
        assert_eq!(&d.data[..], b"after");
    }

    fn c06_close_with_pending_send(e: &Engine) {
        let (c, mut p) = std_pair(e);
        c.with_socket2(|s| s.set_send_buffer_size(4096)).unwrap();
        let n = 4 << 20;
        let op = c.send(vec![9u8; n], MsgFlags::empty(), Notify::None).unwrap();
        assert!(op.is_pending());
        c.close().unwrap();
        let d = op.wait().unwrap();
        assert!(d.is_aborted() || d.error.is_none(), "{:?}", d.error);
        assert!(d.bytes <= n);
        p.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut seen = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            match p.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => seen += k,
            }
        }
        assert!(seen <= d.bytes, "the peer saw {seen} bytes, the send reports {}", d.bytes);
    }

    fn c07_no_fd_or_buffer_leaks_over_1000_cycles(e: &Engine) {
        let l = Socket::tcp_listener(e, &v4()).unwrap();
        let addr = l.local_addr().unwrap();
        let base = fd_count();
        for _ in 0..1000 {
            let c = Socket::tcp_for(e, &addr).unwrap();
            c.connect_wait(addr).unwrap();
            let (s, _) = l.accept_wait().unwrap();
            let _a = s.recv(vec![0u8; 64], MsgFlags::empty(), Notify::None).unwrap();
            let _b = c.recv(vec![0u8; 64], MsgFlags::empty(), Notify::None).unwrap();
            c.close().unwrap();
            s.close().unwrap();
        }
        assert!(eventually(5 * SEC, || {
            e.poll();
            e.ops_in_table() == 0 && fd_count() <= base
        }), "fds {} vs {base}, ops {}", fd_count(), e.ops_in_table());
    }

    fn c08_thread_exit_aborts_its_ops(e: &Engine) {
        let (c, mut p) = std_pair(e);
        let c = std::sync::Arc::new(c);
        let ev = Event::new();
        let (c2, ev2) = (c.clone(), ev.clone());
        let op = std::thread::spawn(move || c2.recv(vec![0u8; 8], MsgFlags::empty(), &ev2).unwrap().op())
            .join()
            .unwrap();
        assert!(ev.wait(TEN), "the exit of the issuing thread completes its operation");
        let d = op.wait().unwrap();
        assert!(d.is_aborted(), "{:?}", d.error);
        // The socket itself is fine: data still arrives to a new receive.
        write_all(&mut p, b"alive");
        let d = c.recv(vec![0u8; 8], MsgFlags::empty(), Notify::None).unwrap().wait().unwrap();
        assert_eq!(&d.data[..], b"alive");
    }
}
