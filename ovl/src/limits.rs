//! Value parsers for the numeric options: a number outside its range is a
//! usage error that says the range, never silently changed.

/// Most threads a server may start.
pub const MAX_THREADS: u64 = 1024;
/// Largest receive buffer per connection.
pub const MAX_BUF: u64 = 64 << 20;
/// Largest message of the echo client.
pub const MAX_MESSAGE: u64 = 1 << 30;
/// Longest soak, in seconds (30 days).
pub const MAX_SECONDS: u64 = 30 * 24 * 3600;
/// Most connections of a soak.
pub const MAX_CONNS: u64 = 1_000_000;

fn int(s: &str, min: u64, max: u64, unit: &str) -> Result<u64, String> {
    let v: u64 = s
        .trim()
        .parse()
        .map_err(|e| format!("not a whole number: {e}"))?;
    if (min..=max).contains(&v) {
        Ok(v)
    } else if max == u64::MAX {
        Err(format!("out of range (at least {min}{unit})"))
    } else {
        Err(format!("out of range ({min} to {max}{unit})"))
    }
}

fn size(v: u64) -> usize {
    // The bounds above fit every target this crate builds for.
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// `--workers` / `--threads`: 0 (one per CPU) to [`MAX_THREADS`].
pub fn threads(s: &str) -> Result<usize, String> {
    int(s, 0, MAX_THREADS, " threads; 0 = one per CPU").map(size)
}

/// A server's `--buf-size`: 1 byte to [`MAX_BUF`].
pub fn buf_size(s: &str) -> Result<usize, String> {
    int(s, 1, MAX_BUF, " bytes").map(size)
}

/// The echo client's `--size`: 1 byte to [`MAX_MESSAGE`].
pub fn message_size(s: &str) -> Result<usize, String> {
    int(s, 1, MAX_MESSAGE, " bytes").map(size)
}

/// A soak's `--max-size`: 1 byte to [`MAX_BUF`].
pub fn soak_size(s: &str) -> Result<usize, String> {
    int(s, 1, MAX_BUF, " bytes").map(size)
}

/// The echo client's `--count`: at least 1.
pub fn count(s: &str) -> Result<u64, String> {
    int(s, 1, u64::MAX, "")
}

/// `--max-conns`: at least 1.
pub fn max_conns(s: &str) -> Result<usize, String> {
    int(s, 1, u64::MAX, "").map(size)
}

/// A connection count: 1 to [`MAX_CONNS`].
pub fn conns(s: &str) -> Result<usize, String> {
    int(s, 1, MAX_CONNS, " connections").map(size)
}

/// A duration in whole seconds: 1 to [`MAX_SECONDS`].
pub fn seconds(s: &str) -> Result<u64, String> {
    int(s, 1, MAX_SECONDS, " s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(threads("0"), Ok(0));
        assert_eq!(threads("1024"), Ok(1024));
        assert!(threads("1025").unwrap_err().contains("0 to 1024 threads"));
        assert!(buf_size("0").unwrap_err().contains("1 to 67108864 bytes"));
        assert_eq!(buf_size("16384"), Ok(16384));
        assert!(message_size("-1").unwrap_err().contains("whole number"));
        assert_eq!(count("0").unwrap_err(), "out of range (at least 1)");
        assert!(conns("0").is_err());
        assert!(seconds("0").is_err());
        assert!(seconds("99999999999999999999").is_err());
        assert_eq!(seconds(" 30 "), Ok(30));
    }
}
