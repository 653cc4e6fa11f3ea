//! The four ways an operation's end is made known — the result, an
//! event, a routine, a port — as one value ([`Via`]), so a case runs once
//! per notification: [`Via::on`] sets one up for a socket ([`Notif`]),
//! [`Notif::start`] starts an operation with it ([`Pending`]), and
//! [`Pending::complete`] takes the completion the way it is reported.
//! A start that must fail checks that nothing was set, queued or posted.
//!
//! Test binaries that use it name it (`use crate::util::notif::*`): it is
//! not among `util`'s glob re-exports.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use overlapped::*;

use super::{SEC, slack, ten};

/// How long a check that nothing happened waits.
pub const QUIET: Duration = Duration::from_millis(50);
/// The completion key of sockets associated for the port notification.
pub const KEY: usize = 77;
/// The tag of operations started with the port notification.
pub const TAG: u64 = 5;

/// The four ways an operation's end is made known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Result,
    Event,
    Routine,
    Port,
}

pub const VIAS: [Via; 4] = [Via::Result, Via::Event, Via::Routine, Via::Port];

/// A notification set up for one socket (the port one associates it).
pub struct Notif {
    pub via: Via,
    pub ev: Event,
    pub port: Option<CompletionPort>,
}

impl Via {
    pub fn on(self, s: &Socket) -> Notif {
        let port = (self == Via::Port).then(|| {
            let p = CompletionPort::new(1);
            p.associate(s, KEY).unwrap();
            p
        });
        Notif {
            via: self,
            ev: Event::new(),
            port,
        }
    }
}

/// An operation started with a [`Notif`].
pub struct Pending<T: OpOutput> {
    pub via: Via,
    pub op: Op<T>,
    pub got: Rc<RefCell<Option<Completion<T>>>>,
    pub ev: Event,
    pub port: Option<CompletionPort>,
}

impl Notif {
    pub fn start<T: OpOutput, B>(
        &self,
        f: impl FnOnce(Notify<T>) -> Result<Started<T>, StartError<B>>,
    ) -> Result<Pending<T>, StartError<B>> {
        let got: Rc<RefCell<Option<Completion<T>>>> = Rc::default();
        let notify = match self.via {
            Via::Result => Notify::None,
            Via::Event => Notify::Event(self.ev.clone()),
            Via::Routine => {
                let g = got.clone();
                Notify::routine(move |c| *g.borrow_mut() = Some(c))
            }
            Via::Port => Notify::Port(TAG),
        };
        let op = f(notify)?.op();
        Ok(Pending {
            via: self.via,
            op,
            got,
            ev: self.ev.clone(),
            port: self.port.clone(),
        })
    }

    /// A start that must fail: its error (with the buffers), once it is
    /// checked that nothing was set, queued or posted for it.
    pub fn start_fail<T: OpOutput, B>(
        &self,
        f: impl FnOnce(Notify<T>) -> Result<Started<T>, StartError<B>>,
    ) -> StartError<B> {
        let e = match self.start(f) {
            Err(e) => e,
            Ok(p) => panic!("{:?}: the start succeeded", p.via),
        };
        self.assert_quiet();
        e
    }

    pub fn start_err<T: OpOutput, B>(
        &self,
        f: impl FnOnce(Notify<T>) -> Result<Started<T>, StartError<B>>,
    ) -> std::io::Error {
        self.start_fail(f).error
    }

    pub fn assert_quiet(&self) {
        match self.via {
            Via::Result => {}
            Via::Event => assert!(!self.ev.wait(Some(QUIET)), "the event was set"),
            Via::Routine => assert_eq!(
                sleep_ex(Some(QUIET), true),
                SleepOutcome::Timeout,
                "a routine ran"
            ),
            Via::Port => {
                let p = self.port.as_ref().unwrap();
                let pk = p.get_queued(Some(QUIET)).unwrap();
                assert!(pk.is_none(), "a packet was posted: {pk:?}");
            }
        }
    }

    /// Starts a receive of `n` bytes.
    pub fn recv(&self, s: &Socket, n: usize, flags: MsgFlags) -> Pending<Vec<u8>> {
        self.start(|no| s.recv(vec![0u8; n], flags, no))
            .unwrap_or_else(|e| panic!("{:?}: receive start: {}", self.via, e.error))
    }

    /// A receive that must fail at the call; its buffer comes back.
    pub fn recv_err(&self, s: &Socket, flags: MsgFlags) -> std::io::Error {
        let e = self.start_fail(|no| s.recv(vec![0u8; 16], flags, no));
        assert_eq!(
            (e.bufs.len(), e.bufs.capacity()),
            (16, 16),
            "the buffer comes back"
        );
        e.error
    }

    /// A send that must fail at the call; its buffer comes back.
    pub fn send_err(&self, s: &Socket) -> std::io::Error {
        let e = self.start_fail(|no| s.send(b"data".to_vec(), MsgFlags::empty(), no));
        assert_eq!(&e.bufs[..], b"data", "the buffer comes back");
        e.error
    }
}

impl<T: OpOutput> Pending<T> {
    /// The completion, through the notification (within ten seconds).
    pub fn complete(self) -> Completion<T> {
        match self.via {
            Via::Result => match self.op.result_timeout(ten()).unwrap() {
                Polled::Complete(c) => c,
                Polled::Incomplete(_) => panic!("no completion within 10 s"),
            },
            Via::Event => {
                assert!(self.ev.wait(ten()), "the event was not set within 10 s");
                match self.op.result(false).unwrap() {
                    Polled::Complete(c) => c,
                    Polled::Incomplete(_) => panic!("event set, operation incomplete"),
                }
            }
            Via::Routine => {
                let end = Instant::now() + slack(10 * SEC);
                while self.got.borrow().is_none() {
                    assert!(Instant::now() < end, "the routine did not run within 10 s");
                    sleep_ex(Some(Duration::from_millis(100)), true);
                }
                self.got.borrow_mut().take().unwrap()
            }
            Via::Port => {
                let p = self.port.as_ref().unwrap();
                let pk = p.get_queued(ten()).unwrap().expect("a packet within 10 s");
                assert_eq!((pk.key, pk.tag), (KEY, TAG));
                pk.into_completion::<T>().unwrap()
            }
        }
    }

    /// Checks the operation is still pending after `d`.
    pub fn pending_after(self, d: Duration) -> Self {
        match self.via {
            Via::Result => match self.op.result_timeout(Some(d)).unwrap() {
                Polled::Incomplete(op) => Pending { op, ..self },
                Polled::Complete(c) => panic!("completed: {:?}", c.error),
            },
            Via::Event => {
                assert!(!self.ev.wait(Some(d)), "the event was set");
                self
            }
            Via::Routine => {
                sleep_ex(Some(d), true);
                assert!(self.got.borrow().is_none(), "the routine ran");
                self
            }
            Via::Port => {
                let pk = self.port.as_ref().unwrap().get_queued(Some(d)).unwrap();
                assert!(pk.is_none(), "a packet was posted");
                self
            }
        }
    }
}

/// The error a completion must carry (it must not have succeeded).
pub fn failed<T>(d: Completion<T>, via: Via) -> std::io::Error {
    d.error
        .unwrap_or_else(|| panic!("{via:?}: completed with {} bytes", d.bytes))
}
