//! Baseline echo servers for `ovl bench`; the servers are the binaries in `src/bin`.
