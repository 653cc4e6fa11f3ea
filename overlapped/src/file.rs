//! Overlapped files: `CreateFile` with `FILE_FLAG_OVERLAPPED`, then
//! `ReadFile` / `WriteFile` with an offset.
//!
//! A [`File`] is opened (or adopted) on an [`Engine`]. Its reads and writes
//! are **operations**, as a socket's are: they return at once, completed
//! now or pending, complete exactly once with every notification
//! ([`Notify`]), and can go to a [`CompletionPort`](crate::CompletionPort)
//! the file is associated with
//! ([`associate_file`](crate::CompletionPort::associate_file)). Each
//! carries its own offset (the `OVERLAPPED.Offset` of the model): there is
//! no file position, and no order among a file's operations: several in
//! flight at once complete independently (SPEC f01–f05).
//!
//! io_uring runs them as its `READV` / `WRITEV` requests at the offset. The
//! poll engine cannot wait for a regular file (epoll calls it always
//! ready), so a small pool of worker threads runs them
//! (at most [`FILE_WORKERS`] per engine, started when first needed): the
//! starting thread never blocks, and the completion comes through the
//! engine like any other.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::buf::{IoBufs, IoBufsMut, check_bufs, erase_rx, erase_tx, take_back};
use crate::core::Sock;
use crate::engine::Engine;
use crate::op::{Notify, StartError, Started};
use crate::sys::OpKind;

/// Most worker threads the poll engine runs file operations on (per
/// engine); io_uring needs none.
pub const FILE_WORKERS: usize = crate::sys::pool::MAX_WORKERS;

/// A file opened for overlapped use (`CreateFile` with
/// `FILE_FLAG_OVERLAPPED`).
///
/// Reads and writes at an explicit offset may be started from any thread
/// (`File` is `Send + Sync`), as many at once as wanted; they complete in
/// any order. Dropping the file (or [`close`](File::close)) completes every
/// pending operation *aborted* that has not begun in the kernel; one the
/// kernel is already carrying out on a regular file completes with its
/// result (a disk read cannot be stopped half-way, on Windows either).
///
/// # Examples
///
/// ```
/// use overlapped::{Engine, File, Notify};
/// # fn main() -> std::io::Result<()> {
/// let engine = Engine::new()?;
/// let dir = std::env::temp_dir().join(format!("ovl-doc-file-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let file = File::create(&engine, dir.join("f"))?;
///
/// // Write at offset 10, read it back at offset 8: the two bytes before
/// // it are a hole (zeros).
/// let w = file.write_at(b"overlapped".to_vec(), 10, Notify::None)?.wait()?;
/// assert_eq!(w.bytes, 10);
/// let r = file.read_at(vec![0xFFu8; 8], 8, Notify::None)?.wait()?;
/// assert_eq!(&r.data[..], b"\0\0overla");
///
/// // At the end of the file a read completes with 0 bytes (not an error).
/// let end = file.read_at(vec![0u8; 4], 20, Notify::None)?.wait()?;
/// assert_eq!((end.bytes, end.is_ok()), (0, true));
/// # drop(file); std::fs::remove_dir_all(&dir)?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct File {
    engine: Engine,
    sock: Arc<Sock>,
    closed: AtomicBool,
    readable: bool,
    writable: bool,
}

/// The largest offset an operation may reach (`off_t`'s range).
const MAX_END: u64 = i64::MAX as u64;

impl File {
    /// Opens `path` for reading, overlapped.
    ///
    /// # Errors
    /// The OS error of `open(2)`.
    #[doc(alias = "CreateFile")]
    pub fn open(engine: &Engine, path: impl AsRef<Path>) -> io::Result<File> {
        File::open_with(engine, path, OpenOptions::new().read(true))
    }

    /// Creates (or truncates) `path` for reading and writing, overlapped.
    ///
    /// # Errors
    /// The OS error of `open(2)`.
    pub fn create(engine: &Engine, path: impl AsRef<Path>) -> io::Result<File> {
        File::open_with(
            engine,
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )
    }

    /// Opens `path` with `options` (access, creation, mode, custom flags
    /// such as `O_DIRECT`), overlapped. `append` is refused: an operation
    /// writes at its own offset.
    ///
    /// # Errors
    /// `InvalidInput` for `append`; the OS error of `open(2)`.
    pub fn open_with(
        engine: &Engine,
        path: impl AsRef<Path>,
        options: &OpenOptions,
    ) -> io::Result<File> {
        let f = options.open(path)?;
        File::from_fd(engine, OwnedFd::from(f))
    }

    /// Adopts an open file descriptor (a regular file, a block device, a
    /// pipe or a character device). Its access mode decides which
    /// operations start. On io_uring the descriptor is made blocking, on
    /// the poll engine a pipe or device is made non-blocking (the file
    /// description is the file's own from now on).
    ///
    /// # Errors
    /// `InvalidInput` for a socket (use [`Socket::from_fd`](crate::Socket::from_fd)),
    /// a directory, or a descriptor opened for appending; the OS error of
    /// `fcntl(2)` or `fstat(2)`.
    pub fn from_fd(engine: &Engine, fd: OwnedFd) -> io::Result<File> {
        use rustix::fs::{FileType, OFlags};
        let st = rustix::fs::fstat(&fd).map_err(crate::sys::to_io)?;
        let ty = FileType::from_raw_mode(st.st_mode);
        let stream = match ty {
            FileType::RegularFile | FileType::BlockDevice => false,
            FileType::Fifo | FileType::CharacterDevice => true,
            FileType::Socket => return Err(invalid("a socket is not a file: use Socket::from_fd")),
            _ => return Err(invalid("not a file, pipe or device")),
        };
        let fl = rustix::fs::fcntl_getfl(&fd).map_err(crate::sys::to_io)?;
        if fl.contains(OFlags::APPEND) {
            return Err(invalid(
                "a file opened for appending (overlapped writes carry their own offset)",
            ));
        }
        let acc = fl & OFlags::RWMODE;
        let (readable, writable) = (acc != OFlags::WRONLY, acc != OFlags::RDONLY);
        // io_uring waits for a pipe itself (non-blocking, it would answer
        // `EAGAIN`); the poll engine's workers poll it and must not block
        // in the call after.
        let nonblock = stream && engine.kind() == crate::EngineKind::Poll;
        let want = if nonblock {
            fl | OFlags::NONBLOCK
        } else {
            fl - OFlags::NONBLOCK
        };
        if want != fl {
            rustix::fs::fcntl_setfl(&fd, want).map_err(crate::sys::to_io)?;
        }
        let sock = engine.inner.add_file(fd, stream);
        Ok(File {
            engine: engine.clone(),
            sock,
            closed: AtomicBool::new(false),
            readable,
            writable,
        })
    }

    /// The engine the file's operations run on.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// `ReadFile` with an `OVERLAPPED` offset: reads into the buffers,
    /// scattered in array order (each offers its room, as for
    /// [`Socket::recv`](crate::Socket::recv)), starting at `offset`. It
    /// completes with the bytes read: fewer than the room only at the end
    /// of the file, and 0 at or past it (not an error). On a pipe or device
    /// the offset is ignored and the read completes when data is there.
    ///
    /// # Errors (at start; no completion follows)
    /// `InvalidInput` when `offset` plus the room passes `i64::MAX`, for an
    /// empty array or more than [`IOV_MAX`](crate::IOV_MAX) buffers, or for
    /// a completion routine on a file associated with a port; `EBADF` on a
    /// file not opened for reading, or closed.
    #[doc(alias = "ReadFile")]
    pub fn read_at<B: IoBufsMut>(
        &self,
        bufs: B,
        offset: u64,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        let ok = self.readable;
        self.start(
            OpKind::FileRead { offset },
            erase_rx(bufs),
            ok,
            notify.into(),
        )
    }

    /// `WriteFile` with an `OVERLAPPED` offset: writes the buffers,
    /// gathered in array order, starting at `offset` (a file grows as
    /// needed; a gap before it reads as zeros). It completes when every
    /// byte is written, or with the error that stopped it (a full disk)
    /// and the bytes written before it.
    ///
    /// # Errors (at start; no completion follows)
    /// As for [`read_at`](File::read_at); `EBADF` on a file not opened for
    /// writing.
    #[doc(alias = "WriteFile")]
    pub fn write_at<B: IoBufs>(
        &self,
        bufs: B,
        offset: u64,
        notify: impl Into<Notify<B>>,
    ) -> Result<Started<B>, StartError<B>> {
        let ok = self.writable;
        self.start(
            OpKind::FileWrite { offset },
            erase_tx(bufs),
            ok,
            notify.into(),
        )
    }

    fn start<B: IoBufs>(
        &self,
        kind: OpKind,
        mut bufs: Box<dyn crate::buf::ErasedBufs>,
        allowed: bool,
        notify: Notify<B>,
    ) -> Result<Started<B>, StartError<B>> {
        let offset = match kind {
            OpKind::FileRead { offset } | OpKind::FileWrite { offset } => offset,
            _ => 0,
        };
        let checked = check_bufs(bufs.as_bufs()).and_then(|len| {
            if !allowed {
                // The OS's answer to a read or write the descriptor's access
                // mode does not allow, given at the call.
                return Err(io::Error::from_raw_os_error(libc::EBADF));
            }
            match offset.checked_add(len as u64) {
                Some(end) if end <= MAX_END => Ok(()),
                _ => Err(invalid(
                    "the offset plus the buffers' length passes i64::MAX",
                )),
            }
        });
        let r = match checked {
            Err(e) => Err((e, Some(bufs))),
            Ok(()) => crate::op::start_on(
                &self.engine,
                &self.sock,
                &self.closed,
                kind,
                Some(bufs),
                notify,
                None,
            ),
        };
        r.map_err(|e| crate::op::start_error(e, take_back::<B>))
    }

    /// `CancelIoEx(file, NULL)`: cancels every pending operation of this
    /// file (see [`File`] for one the kernel is carrying out). Returns how
    /// many were pending.
    ///
    /// # Errors
    /// `EBADF` on a closed file.
    #[doc(alias = "CancelIoEx")]
    pub fn cancel_all(&self) -> io::Result<usize> {
        self.still_open()?;
        self.engine.inner.cancel_socket(&self.sock)
    }

    /// `CloseHandle`: every pending operation completes *aborted* (their
    /// notifications still happen; see [`File`] for one the kernel is
    /// carrying out), then the descriptor is closed once no operation uses
    /// it. Later calls fail with `EBADF`. Idempotent.
    #[doc(alias = "CloseHandle")]
    pub fn close(&self) -> io::Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.engine.inner.close_socket(&self.sock)
    }

    /// Runs `f` with the file's descriptor (for `fstat`, `fsync`,
    /// `ftruncate` and the like), which stays open until `f` returns.
    ///
    /// # Errors
    /// `EBADF` on a closed file.
    pub fn with_fd<R>(&self, f: impl FnOnce(BorrowedFd<'_>) -> R) -> io::Result<R> {
        self.still_open()?;
        self.engine.inner.with_user_fd(&self.sock, f)
    }

    /// The file's size in bytes (`GetFileSizeEx`).
    ///
    /// # Errors
    /// `EBADF` on a closed file; the OS error of `fstat(2)`.
    #[doc(alias = "GetFileSizeEx")]
    pub fn size(&self) -> io::Result<u64> {
        self.with_fd(|fd| rustix::fs::fstat(fd).map(|st| st.st_size as u64))?
            .map_err(crate::sys::to_io)
    }

    /// `FlushFileBuffers`: `fsync(2)`, on the calling thread (it blocks
    /// until the data is on the disk).
    ///
    /// # Errors
    /// `EBADF` on a closed file; the OS error of `fsync(2)`.
    #[doc(alias = "FlushFileBuffers")]
    pub fn sync_all(&self) -> io::Result<()> {
        self.with_fd(|fd| rustix::fs::fsync(fd))?
            .map_err(crate::sys::to_io)
    }

    pub(crate) fn associate(&self, link: crate::core::PortLink) -> io::Result<()> {
        self.still_open()?;
        self.engine.inner.associate(&self.sock, link)
    }

    fn still_open(&self) -> io::Result<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        Ok(())
    }

    /// The descriptor's number, `-1` once closed (see
    /// [`with_fd`](File::with_fd) for a borrow that keeps it open).
    pub fn raw_fd(&self) -> RawFd {
        self.with_fd(|fd| fd.as_raw_fd()).unwrap_or(-1)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.raw_fd()
    }
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}
