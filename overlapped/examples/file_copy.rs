//! Copies a file with overlapped reads and writes through a completion
//! port (`ReadFile` / `WriteFile` on handles opened with
//! `FILE_FLAG_OVERLAPPED`, both associated with one port): several chunks
//! are in flight at once, each read at its own offset and, once its packet
//! arrives, written at the same offset of the copy; chunks complete in any
//! order.
//!
//! ```text
//! cargo run --example file_copy -- SOURCE DESTINATION
//! ```

use std::io;

use overlapped::{CompletionPort, Engine, File, Notify};

/// Bytes per chunk, and chunks in flight.
const CHUNK: usize = 64 * 1024;
const IN_FLIGHT: u64 = 8;

/// The port keys of the two files.
const SOURCE: usize = 1;
const COPY: usize = 2;

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(from), Some(to)) = (args.next(), args.next()) else {
        eprintln!("usage: file_copy SOURCE DESTINATION");
        std::process::exit(2);
    };
    let engine = Engine::new()?;
    let source = File::open(&engine, &from)?;
    let copy = File::create(&engine, &to)?;
    let port = CompletionPort::new(1);
    port.associate_file(&source, SOURCE)?;
    port.associate_file(&copy, COPY)?;

    let len = source.size()?;
    let chunks = len.div_ceil(CHUNK as u64);
    // The tag of each operation is its chunk's index: its offset.
    let mut next = 0;
    while next < chunks.min(IN_FLIGHT) {
        source.read_at(vec![0u8; CHUNK], next * CHUNK as u64, Notify::Port(next))?;
        next += 1;
    }
    let mut written = 0u64;
    let mut copied = 0;
    while copied < chunks {
        let packet = port.get_queued(None)?.expect("no timeout");
        let (key, chunk) = (packet.key, packet.tag);
        let done = packet
            .into_completion::<Vec<u8>>()
            .map_err(|_| io::Error::other("a packet without an operation"))?;
        if let Some(e) = done.error {
            return Err(e);
        }
        let at = chunk * CHUNK as u64;
        if key == SOURCE {
            // A chunk read: write it at the same offset of the copy.
            copy.write_at(done.data, at, Notify::Port(chunk))?;
        } else {
            // A chunk written: its buffer reads the next chunk.
            written += done.bytes as u64;
            copied += 1;
            if next < chunks {
                let mut buf = done.data;
                buf.resize(CHUNK, 0);
                source.read_at(buf, next * CHUNK as u64, Notify::Port(next))?;
                next += 1;
            }
        }
    }
    copy.sync_all()?;
    println!(
        "copied {written} bytes in {chunks} chunks (engine {})",
        engine.kind()
    );
    Ok(())
}
