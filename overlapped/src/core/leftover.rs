//! Bytes kept from dropped receives: a stream receive whose handle was
//! dropped after it took bytes from the kernel leaves them to the socket's
//! next receives, so no byte of the stream is lost or reordered.

use super::table::{Slot, SlotState, SockState};
use crate::buf::RawBufs;
use crate::flags::MsgFlags;
use crate::sys::{Dir, OpKind, Outcome};

/// Stream receives of the normal channel are served from kept bytes.
pub(super) fn serves(kind: &OpKind, stream: bool) -> bool {
    stream && matches!(kind, OpKind::Recv { flags, .. } if !flags.contains(MsgFlags::OOB))
}

/// Completes a receive from kept bytes (consuming them unless `PEEK`),
/// filling its buffers after the `done` bytes it has. `None` when it is a
/// `WAITALL` receive the kept bytes did not fill: it goes on with `done`
/// bytes.
#[allow(unsafe_code)] // `RawBufs::set_received`'s contract
pub(super) fn fill(
    leftover: &mut Vec<u8>,
    bufs: &mut dyn RawBufs,
    kind: &OpKind,
    done: &mut usize,
) -> Option<Outcome> {
    let flags = match kind {
        OpKind::Recv { flags, .. } => *flags,
        _ => MsgFlags::empty(),
    };
    let (n, room) = bufs.copy_in(*done, leftover);
    if !flags.contains(MsgFlags::PEEK) {
        leftover.drain(..n);
    }
    *done += n;
    if flags.contains(MsgFlags::WAITALL) && n < room {
        return None;
    }
    // `copy_in` wrote the first `*done` bytes (this call's and earlier
    // rounds').
    // SAFETY: so they are written.
    unsafe { bufs.set_received(*done) };
    Some(Outcome::ok(*done))
}

/// Serves the queued head `key` from kept bytes, if it is a receive they
/// serve (a `WAITALL` receive they do not fill keeps them and goes on).
pub(super) fn serve_head(s: &mut SockState, key: usize) -> Option<Outcome> {
    if s.leftover.is_empty() {
        return None;
    }
    let SockState { ops, leftover, .. } = s;
    let slot = &mut ops[key];
    if !serves(&slot.kind, slot.stream) {
        return None;
    }
    let b = slot.bufs.as_deref_mut()?;
    fill(leftover, b.as_bufs(), &slot.kind, &mut slot.done)
}

/// A finished operation nobody will take (its handle was dropped): bytes a
/// stream receive took from the kernel are kept for the socket's next
/// receive; everything else is freed with the slot.
pub(super) fn keep_unclaimed(s: &mut SockState, mut slot: Slot, out: Outcome) {
    // Bytes a receive took count, also those of a `WAITALL` receive that
    // was aborted part-way.
    let keep = out.error.as_ref().is_none_or(crate::flags::is_aborted)
        && out.bytes > 0
        && serves(&slot.kind, slot.stream)
        && !matches!(slot.kind, OpKind::Recv { flags, .. } if flags.contains(MsgFlags::PEEK));
    // Keeping the bytes must not reorder the stream: no later receive may
    // have completed, nor be parked where newer bytes would reach it before
    // these.
    let later_armed = s.queues[Dir::Read as usize].iter().any(|k| {
        s.ops
            .get(*k as usize)
            .is_some_and(|o| !matches!(o.state, SlotState::Queued))
    });
    if let (true, Some(b)) = (
        keep && s.reads_done == slot.order && !later_armed,
        slot.bufs.as_deref_mut(),
    ) {
        // These bytes precede any still kept: they were taken first.
        let mut kept: Vec<u8> = Vec::with_capacity(out.bytes + s.leftover.len());
        b.as_bufs().received(out.bytes, &mut kept);
        kept.append(&mut s.leftover);
        s.leftover = kept;
    }
    // Dropped after the socket's lock (a user buffer's `Drop`, an accepted
    // descriptor's `close(2)`).
    if let Some(b) = slot.bufs {
        s.later.push(super::table::Later::Bufs(b));
    }
    if let Some(fd) = out.fd {
        s.later.push(super::table::Later::Fd(fd));
    }
}
