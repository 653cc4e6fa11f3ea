//! The memory of a registered-buffer pool ([`crate::buf::FixedBufs`]): one
//! page-aligned, zeroed allocation of `count` buffers of `size` bytes, and
//! the free list of buffer indices.
//!
//! # Memory rule
//!
//! An io_uring engine registers the region with the kernel
//! (`IORING_REGISTER_BUFFERS`): the kernel may then read or write it for
//! any request that names a buffer index, until the ring is gone. The
//! region is freed only when the last [`Arc<Pool>`] is dropped, and Arcs
//! are held by:
//!
//! * the backend that registered it (`Backend::fixed`, declared after the
//!   backend's ring, so the ring is torn down first);
//! * every [`Slot`] (the buffer a `FixedBuf` owns), including one inside an
//!   operation's buffers, which a parked io_uring operation leaks rather
//!   than drops when its completion was never reaped.
//!
//! So the region outlives the registration and every request that uses it.

#![allow(unsafe_code)]

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The most buffers one pool may hold (the kernel's
/// `IORING_MAX_REG_BUFFERS`).
pub(crate) const MAX_BUFFERS: usize = 1 << 14;
/// The largest buffer the kernel registers (1 GiB).
pub(crate) const MAX_BUFFER_SIZE: usize = 1 << 30;
const PAGE: usize = 4096;

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The allocation of a pool.
struct Region {
    ptr: NonNull<u8>,
    layout: Layout,
}

// Access to each buffer is arbitrated by the `Slot` that owns its index.
// SAFETY: the region is plain memory with no thread affinity.
unsafe impl Send for Region {}
// SAFETY: as above; `Region` itself hands out only raw pointers.
unsafe impl Sync for Region {}

impl Drop for Region {
    fn drop(&mut self) {
        // The memory rule (module docs) makes this the last user.
        // SAFETY: allocated in `Pool::new` with this layout, freed once.
        unsafe { dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A pool: its region, geometry, identity and free indices.
pub(crate) struct Pool {
    /// Unique in the process (never 0).
    pub(crate) id: u64,
    count: usize,
    size: usize,
    region: Region,
    free: Mutex<Vec<u16>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("id", &self.id)
            .field("count", &self.count)
            .field("size", &self.size)
            .finish()
    }
}

impl Pool {
    /// Checks the geometry and allocates a zeroed region for it.
    pub(crate) fn new(count: usize, size: usize) -> io::Result<Arc<Pool>> {
        if count == 0 || size == 0 {
            return Err(invalid(format!(
                "a registered-buffer pool needs at least one buffer of at least one byte (asked for {count} x {size})"
            )));
        }
        if count > MAX_BUFFERS {
            return Err(invalid(format!(
                "{count} registered buffers is more than the kernel allows ({MAX_BUFFERS})"
            )));
        }
        if size > MAX_BUFFER_SIZE {
            return Err(invalid(format!(
                "a registered buffer of {size} bytes is larger than the kernel allows ({MAX_BUFFER_SIZE})"
            )));
        }
        let total = count
            .checked_mul(size)
            .filter(|&t| t <= isize::MAX as usize - PAGE)
            .ok_or_else(|| invalid(format!("{count} x {size} bytes overflows")))?;
        let layout = Layout::from_size_align(total, PAGE)
            .map_err(|e| invalid(format!("{count} x {size} bytes: {e}")))?;
        // SAFETY: `layout` has a non-zero size (count and size are >= 1).
        let ptr = NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::OutOfMemory,
                format!("could not allocate {total} bytes for registered buffers"),
            )
        })?;
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Ok(Arc::new(Pool {
            id: NEXT.fetch_add(1, Ordering::Relaxed),
            count,
            size,
            region: Region { ptr, layout },
            // Popped from the end: buffer 0 is taken first.
            free: Mutex::new((0..count as u16).rev().collect()),
        }))
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    /// One iovec per buffer, in index order, for the kernel.
    pub(crate) fn iovecs(&self) -> Vec<libc::iovec> {
        (0..self.count)
            .map(|i| libc::iovec {
                iov_base: self.buf_ptr(i).cast(),
                iov_len: self.size,
            })
            .collect()
    }

    fn buf_ptr(&self, i: usize) -> *mut u8 {
        // `i < count`: inside the allocation.
        self.region.ptr.as_ptr().wrapping_add(i * self.size)
    }

    fn free_list(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Free buffers.
    pub(crate) fn available(&self) -> usize {
        self.free_list().len()
    }

    /// Takes a free buffer.
    pub(crate) fn take(self: &Arc<Self>) -> Option<Slot> {
        let index = self.free_list().pop()?;
        Some(Slot {
            pool: Arc::clone(self),
            index,
        })
    }
}

/// The exclusive owner of one buffer of a pool: nobody else (in user space)
/// reads or writes its bytes while it lives; dropped, its index is free
/// again. Keeps the pool's region alive.
pub(crate) struct Slot {
    pool: Arc<Pool>,
    index: u16,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.pool.free_list().push(self.index);
    }
}

impl Slot {
    pub(crate) fn pool_id(&self) -> u64 {
        self.pool.id
    }
    pub(crate) fn index(&self) -> u16 {
        self.index
    }
    pub(crate) fn capacity(&self) -> usize {
        self.pool.size
    }
    /// The buffer's first byte; `capacity()` bytes follow, all initialized
    /// (zeroed at allocation), in a region that does not move.
    pub(crate) fn ptr(&self) -> *mut u8 {
        self.pool.buf_ptr(self.index as usize)
    }
    /// The first `n` bytes (at most the capacity).
    pub(crate) fn bytes(&self, n: usize) -> &[u8] {
        let n = n.min(self.capacity());
        // `n` initialized bytes of this slot's buffer, which only this slot's
        // owner touches in user space.
        // SAFETY: `&self` keeps the region alive and rules out a `bytes_mut` meanwhile.
        unsafe { std::slice::from_raw_parts(self.ptr(), n) }
    }
    /// The first `n` bytes (at most the capacity), writable.
    pub(crate) fn bytes_mut(&mut self, n: usize) -> &mut [u8] {
        let n = n.min(self.capacity());
        // SAFETY: as in `bytes`, and `&mut self` makes the borrow exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr(), n) }
    }
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("pool", &self.pool.id)
            .field("index", &self.index)
            .finish()
    }
}
