//! Files: `CreateFileA`/`W`, `ReadFile`/`WriteFile` at the `OVERLAPPED`
//! offset into the caller's buffer, `GetFileSize(Ex)`, `DeleteFileA`, and
//! the association of a file with a completion port. A file handle is one
//! more kind of the handle table; its operations start through
//! [`ext::start`], so they are reported as a socket's
//! are (a port packet, `hEvent`, `GetOverlappedResult`).

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int, c_void};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use overlapped::{CompletionPort, File};

use crate::bufs::{WsaBufs, WsaPiece};
use crate::errors::{self, *};
use crate::ext::{self, Codes, Finish, Target};
use crate::inflight::Outcome;
use crate::table::{self, Obj};
use crate::types::*;

/// `GENERIC_READ`.
pub const GENERIC_READ: u32 = 0x8000_0000;
/// `GENERIC_WRITE`.
pub const GENERIC_WRITE: u32 = 0x4000_0000;
/// `GENERIC_ALL`.
pub const GENERIC_ALL: u32 = 0x1000_0000;
/// `CREATE_NEW`.
pub const CREATE_NEW: u32 = 1;
/// `CREATE_ALWAYS`.
pub const CREATE_ALWAYS: u32 = 2;
/// `OPEN_EXISTING`.
pub const OPEN_EXISTING: u32 = 3;
/// `OPEN_ALWAYS`.
pub const OPEN_ALWAYS: u32 = 4;
/// `TRUNCATE_EXISTING`.
pub const TRUNCATE_EXISTING: u32 = 5;
/// `FILE_FLAG_OVERLAPPED`.
pub const FILE_FLAG_OVERLAPPED: u32 = 0x4000_0000;
/// `FILE_FLAG_DELETE_ON_CLOSE`.
pub const FILE_FLAG_DELETE_ON_CLOSE: u32 = 0x0400_0000;

/// `ERROR_FILE_NOT_FOUND`.
pub const ERROR_FILE_NOT_FOUND: u32 = 2;
/// `ERROR_PATH_NOT_FOUND`.
pub const ERROR_PATH_NOT_FOUND: u32 = 3;
/// `ERROR_ACCESS_DENIED`.
pub const ERROR_ACCESS_DENIED: u32 = 5;
/// `ERROR_HANDLE_EOF`.
pub const ERROR_HANDLE_EOF: u32 = 38;
/// `ERROR_FILE_EXISTS`.
pub const ERROR_FILE_EXISTS: u32 = 80;
/// `ERROR_ALREADY_EXISTS`.
pub const ERROR_ALREADY_EXISTS: u32 = 183;
/// `INVALID_FILE_SIZE`.
pub const INVALID_FILE_SIZE: u32 = u32::MAX;

/// A file of the program.
#[derive(Debug)]
pub struct FileObj {
    /// The overlapped file.
    pub file: File,
    /// Associated with a completion port.
    pub associated: AtomicBool,
    /// The file pointer (for a call with a null `OVERLAPPED`).
    pub pos: AtomicU64,
    /// Removed when the handle closes (`FILE_FLAG_DELETE_ON_CLOSE`).
    pub delete_on_close: Option<std::path::PathBuf>,
}

impl Drop for FileObj {
    fn drop(&mut self) {
        if let Some(p) = &self.delete_on_close {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn handle(h: usize) -> *mut c_void {
    std::ptr::without_provenance_mut(h)
}

fn invalid() -> *mut c_void {
    handle(INVALID_HANDLE_VALUE)
}

/// The Win32 code of an error `open(2)` gave.
fn open_error(e: &std::io::Error) -> u32 {
    match e.raw_os_error() {
        Some(libc::ENOENT) => ERROR_FILE_NOT_FOUND,
        Some(libc::ENOTDIR) => ERROR_PATH_NOT_FOUND,
        Some(libc::EACCES | libc::EPERM | libc::EISDIR | libc::EROFS) => ERROR_ACCESS_DENIED,
        Some(libc::EEXIST) => ERROR_FILE_EXISTS,
        _ => errors::both_codes(e).1,
    }
}

fn open(path: &str, access: u32, creation: u32, flags: u32) -> *mut c_void {
    // Files need no `WSAStartup`: the engine is the same global one.
    match overlapped::Engine::global() {
        Ok(e) => open_on(&e, path, access, creation, flags),
        Err(_) => {
            errors::set_last(ERROR_NOT_SUPPORTED);
            invalid()
        }
    }
}

fn open_on(
    engine: &overlapped::Engine,
    path: &str,
    access: u32,
    creation: u32,
    flags: u32,
) -> *mut c_void {
    let fail = |code| {
        errors::set_last(code);
        invalid()
    };
    let read = access & (GENERIC_READ | GENERIC_ALL) != 0;
    let write = access & (GENERIC_WRITE | GENERIC_ALL) != 0;
    let mut o = OpenOptions::new();
    // A handle opened for neither (attributes only) is opened for reading.
    o.read(read || !write).write(write).mode(0o644);
    let existed = std::path::Path::new(path).exists();
    match creation {
        CREATE_NEW => o.create_new(true),
        CREATE_ALWAYS => o.create(true).truncate(true),
        OPEN_EXISTING => &mut o,
        OPEN_ALWAYS => o.create(true),
        TRUNCATE_EXISTING if write => o.truncate(true),
        _ => return fail(ERROR_INVALID_PARAMETER),
    };
    if matches!(creation, CREATE_ALWAYS | OPEN_ALWAYS | CREATE_NEW) && !write {
        // Creating needs write access on Linux; Windows allows it with
        // read access only.
        o.write(true);
    }
    let file = match o.open(path).and_then(|f| File::from_fd(engine, f.into())) {
        Ok(f) => f,
        Err(e) => return fail(open_error(&e)),
    };
    let h = table::insert(Obj::File(Arc::new(FileObj {
        file,
        associated: AtomicBool::new(false),
        pos: AtomicU64::new(0),
        delete_on_close: (flags & FILE_FLAG_DELETE_ON_CLOSE != 0).then(|| path.into()),
    })));
    errors::set_last(
        if matches!(creation, CREATE_ALWAYS | OPEN_ALWAYS) && existed {
            ERROR_ALREADY_EXISTS
        } else {
            0
        },
    );
    handle(h)
}

/// `CreateFileA`: `GENERIC_READ`/`GENERIC_WRITE`, `CREATE_NEW`,
/// `CREATE_ALWAYS`, `OPEN_EXISTING`, `OPEN_ALWAYS`, `TRUNCATE_EXISTING`;
/// `FILE_FLAG_OVERLAPPED` and `FILE_FLAG_DELETE_ON_CLOSE`. The sharing
/// mode, security attributes, other flags and attributes and the template
/// are accepted and not used. `INVALID_HANDLE_VALUE` with
/// `ERROR_FILE_NOT_FOUND`, `ERROR_PATH_NOT_FOUND`, `ERROR_FILE_EXISTS`,
/// `ERROR_ACCESS_DENIED`, ... on failure.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateFileA(
    name: *const c_char,
    access: u32,
    _share: u32,
    _attrs: *mut c_void,
    creation: u32,
    flags: u32,
    _template: *mut c_void,
) -> *mut c_void {
    if name.is_null() {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return invalid();
    }
    // SAFETY: the caller's promise.
    let path = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    open(&path, access, creation, flags)
}

/// `CreateFileW`: as `CreateFileA` with a UTF-16 name.
///
/// # Safety
/// `name` is a NUL-terminated UTF-16 string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn CreateFileW(
    name: *const u16,
    access: u32,
    _share: u32,
    _attrs: *mut c_void,
    creation: u32,
    flags: u32,
    _template: *mut c_void,
) -> *mut c_void {
    if name.is_null() {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return invalid();
    }
    let mut n = 0;
    // SAFETY: NUL-terminated (the caller's promise).
    while unsafe { *name.add(n) } != 0 {
        n += 1;
    }
    // SAFETY: `n` readable units.
    let path = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(name, n) });
    open(&path, access, creation, flags)
}

/// `DeleteFileA`.
///
/// # Safety
/// `name` is a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn DeleteFileA(name: *const c_char) -> c_int {
    if name.is_null() {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    // SAFETY: the caller's promise.
    let path = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .into_owned();
    match std::fs::remove_file(path) {
        Ok(()) => TRUE,
        Err(e) => {
            errors::set_last(open_error(&e));
            FALSE
        }
    }
}

/// The file behind `h`.
pub fn file(h: usize) -> Option<Arc<FileObj>> {
    match table::get(h) {
        Some(Obj::File(f)) => Some(f),
        _ => None,
    }
}

/// `CreateIoCompletionPort(file, port, key, 0)` for a file: its
/// operations post their packets to `port` under `key`.
pub fn associate(port: &CompletionPort, f: &FileObj, key: usize) -> Result<(), u32> {
    match port.associate_file(&f.file, key) {
        Ok(()) => {
            f.associated.store(true, Ordering::Release);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(ERROR_INVALID_PARAMETER),
        Err(e) => Err(errors::both_codes(&e).1),
    }
}

/// A file call's `BOOL` result: `FALSE` with the Win32 code.
fn win32_bool(r: Result<usize, Codes>, bytes_out: *mut u32) -> c_int {
    if !bytes_out.is_null() {
        // SAFETY: null or writable (the caller's promise); Windows writes 0
        // unless the call completed.
        unsafe { *bytes_out = *r.as_ref().unwrap_or(&0) as u32 };
    }
    match r {
        Ok(_) => TRUE,
        Err((_, win32)) => {
            errors::set_last(win32);
            FALSE
        }
    }
}

/// A read that found the end of the file: `ERROR_HANDLE_EOF`, as Windows
/// reports an overlapped read there.
fn eof_outcome(mut out: Outcome, room: usize) -> Outcome {
    if out.wsa == 0 && out.bytes == 0 && room > 0 {
        out.wsa = ERROR_HANDLE_EOF;
        out.win32 = ERROR_HANDLE_EOF;
        out.status = errors::status_of(Some((ERROR_HANDLE_EOF, ERROR_HANDLE_EOF)));
    }
    out
}

fn rw(h: usize, buf: *mut u8, n: u32, bytes: *mut u32, ov: *mut Overlapped, write: bool) -> c_int {
    let r = (|| {
        let Some(f) = file(h) else {
            // `ReadFile`/`WriteFile` on a socket: `WSARecv`/`WSASend`.
            if table::socket(h).is_some() {
                return Err((0, 0));
            }
            return Err((ERROR_INVALID_HANDLE, ERROR_INVALID_HANDLE));
        };
        if buf.is_null() && n > 0 {
            return Err((ERROR_INVALID_PARAMETER, ERROR_INVALID_PARAMETER));
        }
        let offset = if ov.is_null() {
            f.pos.load(Ordering::Acquire)
        } else {
            // SAFETY: `ov` readable (the caller's promise).
            unsafe { u64::from((*ov).offset) | (u64::from((*ov).offset_high) << 32) }
        };
        // SAFETY: the caller keeps the buffer valid until the completion.
        let bufs: WsaBufs = vec![unsafe { WsaPiece::new(buf, n as usize) }];
        let room = n as usize;
        let finish: Finish<WsaBufs> = if write {
            Box::new(|c| Outcome::of(&c))
        } else {
            Box::new(move |c| eof_outcome(Outcome::of(&c), room))
        };
        let target = Target {
            handle: h,
            associated: f.associated.load(Ordering::Acquire),
            skip_port: false,
        };
        let ff = f.clone();
        // SAFETY: the caller's promise.
        let r = unsafe {
            ext::start(target, ov, None, finish, |notify| {
                if write {
                    ff.file.write_at(bufs, offset, notify)
                } else {
                    ff.file.read_at(bufs, offset, notify)
                }
                .map_err(|e| e.error)
            })
        };
        if ov.is_null() {
            if let Ok(k) = r {
                f.pos.store(offset + k as u64, Ordering::Release);
            }
        }
        r
    })();
    if r == Err((0, 0)) {
        let mut wb = WsaBuf { len: n, buf };
        let mut flags = 0u32;
        // SAFETY: the caller's promise, as for `WSASend` / `WSARecv`.
        let rc = unsafe {
            if write {
                crate::io::WSASend(h, &raw mut wb, 1, bytes, 0, ov, None)
            } else {
                crate::io::WSARecv(h, &raw mut wb, 1, bytes, &raw mut flags, ov, None)
            }
        };
        return c_int::from(rc == 0);
    }
    win32_bool(r, bytes)
}

/// `ReadFile`: reads up to `n` bytes into `buf` at `OVERLAPPED.Offset` /
/// `OffsetHigh` (with `ov` null: at the file pointer, waiting, and the
/// pointer moves on). `FALSE` with `ERROR_IO_PENDING` when in flight;
/// at or past the end, `ERROR_HANDLE_EOF` (now, or as the operation's
/// result). On a socket: `WSARecv`.
///
/// # Safety
/// `buf` writable for `n` bytes and, with `ov`, it and `ov` valid until the
/// completion is reported; `read` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn ReadFile(
    h: *mut c_void,
    buf: *mut c_void,
    n: u32,
    read: *mut u32,
    ov: *mut Overlapped,
) -> c_int {
    rw(h as usize, buf.cast(), n, read, ov, false)
}

/// `WriteFile`: writes `n` bytes of `buf` at `OVERLAPPED.Offset` /
/// `OffsetHigh` (with `ov` null: at the file pointer, waiting). On a
/// socket: `WSASend`.
///
/// # Safety
/// As `ReadFile`, with `buf` readable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn WriteFile(
    h: *mut c_void,
    buf: *const c_void,
    n: u32,
    written: *mut u32,
    ov: *mut Overlapped,
) -> c_int {
    rw(h as usize, buf.cast_mut().cast(), n, written, ov, true)
}

fn size_of(h: *mut c_void) -> Result<u64, u32> {
    let f = file(h as usize).ok_or(ERROR_INVALID_HANDLE)?;
    f.file.size().map_err(|e| errors::both_codes(&e).1)
}

/// `GetFileSize`: the low 32 bits, the high ones in `*high`;
/// `INVALID_FILE_SIZE` with the last error set on failure (0 on success,
/// as a size of `0xFFFFFFFF` needs it).
///
/// # Safety
/// `high` null or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetFileSize(h: *mut c_void, high: *mut u32) -> u32 {
    match size_of(h) {
        Ok(n) => {
            if !high.is_null() {
                // SAFETY: writable (the caller's promise).
                unsafe { *high = (n >> 32) as u32 };
            }
            errors::set_last(0);
            n as u32
        }
        Err(c) => {
            errors::set_last(c);
            INVALID_FILE_SIZE
        }
    }
}

/// `GetFileSizeEx`.
///
/// # Safety
/// `size` writable (a `LARGE_INTEGER`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetFileSizeEx(h: *mut c_void, size: *mut i64) -> c_int {
    if size.is_null() {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return FALSE;
    }
    match size_of(h) {
        Ok(n) => {
            // SAFETY: writable (the caller's promise).
            unsafe { size.write_unaligned(n as i64) };
            TRUE
        }
        Err(c) => {
            errors::set_last(c);
            FALSE
        }
    }
}

/// Copies `text` and its NUL into `buf` (room for `len` bytes): the
/// length without the NUL, or, when it does not fit, the room it needs
/// with the NUL (Windows' rule for string outputs).
///
/// # Safety
/// `buf` is writable for `len` bytes (any pointer when `len` is 0).
unsafe fn string_out(text: &[u8], buf: *mut c_char, len: u32) -> u32 {
    let need = text.len() + 1;
    if buf.is_null() || (len as usize) < need {
        return need as u32;
    }
    // SAFETY: `need <= len` writable bytes (the caller's promise).
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        *buf.add(text.len()) = 0;
    }
    text.len() as u32
}

/// The directory for temporary files, with its trailing `/`: `TMPDIR`
/// when set and not empty, else `/tmp/`.
fn temp_dir() -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut d = std::env::var_os("TMPDIR")
        .filter(|v| !v.is_empty())
        .map_or_else(|| b"/tmp".to_vec(), |v| v.as_bytes().to_vec());
    if d.last() != Some(&b'/') {
        d.push(b'/');
    }
    d
}

/// `GetTempPathA`: the temporary directory with a trailing `/` (Windows:
/// `\`), from `TMPDIR` or `/tmp/` (Windows: `TMP`, `TEMP`, ...). Returns
/// its length, or the room it needs with the NUL when `nBufferLength` is
/// too small (then nothing is written).
///
/// # Safety
/// `buf` is writable for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetTempPathA(len: u32, buf: *mut c_char) -> u32 {
    // SAFETY: the caller's promise.
    unsafe { string_out(&temp_dir(), buf, len) }
}

/// `MAX_PATH`: the room `GetTempFileNameA` may write.
const MAX_PATH: usize = 260;

/// `GetTempFileNameA(path, prefix, unique, out)`: the name
/// `<path>/<up to 3 prefix chars><hex of unique's low 16 bits>.TMP` in
/// `out` (`MAX_PATH` bytes). With `unique` 0 it picks a number whose file
/// does not exist yet and creates that file empty, as Windows; otherwise
/// it only forms the name. Returns the number, or 0 with the error
/// (`ERROR_PATH_NOT_FOUND`, `ERROR_FILE_EXISTS` when every number is
/// taken, `ERROR_BUFFER_OVERFLOW` when the name is longer than
/// `MAX_PATH`, ...).
///
/// # Safety
/// `path` and `prefix` are NUL-terminated strings (`prefix` may be null);
/// `out` is writable for `MAX_PATH` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetTempFileNameA(
    path: *const c_char,
    prefix: *const c_char,
    unique: u32,
    out: *mut c_char,
) -> u32 {
    if path.is_null() || out.is_null() {
        errors::set_last(ERROR_INVALID_PARAMETER);
        return 0;
    }
    // SAFETY: NUL-terminated (the caller's promise).
    let mut dir = unsafe { CStr::from_ptr(path) }.to_bytes().to_vec();
    if !dir.is_empty() && dir.last() != Some(&b'/') {
        dir.push(b'/');
    }
    if !prefix.is_null() {
        // SAFETY: NUL-terminated (the caller's promise).
        let p = unsafe { CStr::from_ptr(prefix) }.to_bytes();
        dir.extend_from_slice(&p[..p.len().min(3)]);
    }
    let name = |n: u32| {
        let mut v = dir.clone();
        v.extend_from_slice(format!("{n:X}.TMP").as_bytes());
        v
    };
    let write = |v: &[u8]| -> Result<(), u32> {
        if v.len() + 1 > MAX_PATH {
            return Err(111); // ERROR_BUFFER_OVERFLOW
        }
        // SAFETY: `MAX_PATH` writable bytes at `out` (the caller's promise).
        unsafe { string_out(v, out, MAX_PATH as u32) };
        Ok(())
    };
    let r = if unique != 0 {
        let n = unique & 0xFFFF;
        write(&name(n)).map(|()| n)
    } else {
        // Start from a number of this process and time, then the next
        // ones, until a name is free.
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
        let mut found = Err(ERROR_FILE_EXISTS);
        for i in 0..0xFFFFu32 {
            let n = (seed.wrapping_add(i) & 0xFFFF).max(1);
            let v = name(n);
            if v.len() + 1 > MAX_PATH {
                found = Err(111);
                break;
            }
            use std::os::unix::ffi::OsStrExt;
            let p = std::path::Path::new(std::ffi::OsStr::from_bytes(&v));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
            {
                Ok(_) => {
                    found = write(&v).map(|()| n);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    found = Err(open_error(&e));
                    break;
                }
            }
        }
        found
    };
    match r {
        Ok(n) => n,
        Err(c) => {
            errors::set_last(c);
            0
        }
    }
}
