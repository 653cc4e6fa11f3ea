//! The figures of `ovl bench`: what one round measured, the medians and
//! spreads over the rounds (computed once, here), the table and the JSON.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::{BenchArgs, Cell, Mode};

/// What one server did in one round of one cell.
#[derive(Debug, Clone, Serialize)]
pub(super) struct RoundResult {
    pub(super) msgs_per_s: f64,
    pub(super) mb_per_s: f64,
    pub(super) p50_us: u64,
    pub(super) p99_us: u64,
    pub(super) p999_us: u64,
    pub(super) errors: u64,
    pub(super) mismatches: u64,
    pub(super) cpu_us_per_msg: f64,
    pub(super) enters_per_msg: Option<f64>,
    /// Kernel entries plus direct (try-now) system calls, per message.
    pub(super) syscalls_per_msg: Option<f64>,
    pub(super) immediate_share: Option<f64>,
    /// Every system call of the server process, counted by perf, per
    /// message (`--syscalls`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) perf_syscalls_per_msg: Option<f64>,
}

/// The rounds of each (cell index, server).
pub(super) type Results = BTreeMap<(usize, String), Vec<RoundResult>>;

/// The median of some values (the upper one of an even count); `None` for
/// none.
pub(super) fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// Median, min and max of one figure over the rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Spread {
    pub(super) med: f64,
    pub(super) lo: f64,
    pub(super) hi: f64,
}

impl Spread {
    /// The spread of some values; `None` for none.
    pub(super) fn of(values: &[f64]) -> Option<Spread> {
        Some(Spread {
            med: median(values)?,
            lo: values.iter().copied().fold(f64::INFINITY, f64::min),
            hi: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }
}

/// The spreads of one server in one cell, over its rounds.
#[derive(Debug, Clone)]
pub(super) struct Summary {
    pub(super) rate: Spread,
    pub(super) mb: Spread,
    pub(super) p50: Spread,
    pub(super) p99: Spread,
    pub(super) p999: Spread,
    pub(super) cpu: Spread,
    pub(super) enters: Option<Spread>,
    pub(super) syscalls: Option<Spread>,
    pub(super) immediate: Option<Spread>,
    pub(super) perf_syscalls: Option<Spread>,
    /// Failed connections plus mismatched bytes, over all rounds.
    pub(super) errors: u64,
    pub(super) mismatched: bool,
}

impl Summary {
    /// `None` when there are no rounds.
    fn of(rs: &[RoundResult]) -> Option<Summary> {
        let all = |f: fn(&RoundResult) -> f64| Spread::of(&rs.iter().map(f).collect::<Vec<_>>());
        let some = |f: fn(&RoundResult) -> Option<f64>| {
            Spread::of(&rs.iter().filter_map(f).collect::<Vec<_>>())
        };
        Some(Summary {
            rate: all(|r| r.msgs_per_s)?,
            mb: all(|r| r.mb_per_s)?,
            p50: all(|r| r.p50_us as f64)?,
            p99: all(|r| r.p99_us as f64)?,
            p999: all(|r| r.p999_us as f64)?,
            cpu: all(|r| r.cpu_us_per_msg)?,
            enters: some(|r| r.enters_per_msg),
            syscalls: some(|r| r.syscalls_per_msg),
            immediate: some(|r| r.immediate_share),
            perf_syscalls: some(|r| r.perf_syscalls_per_msg),
            errors: rs.iter().map(|r| r.errors + r.mismatches).sum(),
            mismatched: rs.iter().any(|r| r.mismatches > 0),
        })
    }
}

/// The summaries of each (cell index, server) that has rounds.
pub(super) type Summaries = BTreeMap<(usize, String), Summary>;

/// Summarizes every (cell, server) once.
pub(super) fn summarize(results: &Results) -> Summaries {
    results
        .iter()
        .filter_map(|(k, rs)| Summary::of(rs).map(|s| (k.clone(), s)))
        .collect()
}

/// Prints one table per cell.
pub(super) fn print_tables(
    a: &BenchArgs,
    cells: &[Cell],
    servers: &[String],
    results: &Results,
    sums: &Summaries,
    unavailable: &BTreeMap<String, String>,
) {
    for (ci, cell) in cells.iter().enumerate() {
        println!();
        let size = if cell.mode == Mode::Http {
            String::new()
        } else {
            format!(" {} B", cell.size)
        };
        println!(
            "{:?}{size}, {} connections{}",
            cell.mode,
            cell.conns,
            match cell.mode {
                Mode::Pingpong => String::new(),
                Mode::Pipeline => format!(", {} in flight each", a.depth),
                Mode::Http => " (http: keep-alive GET /, one request in flight each; \
                               a message is a request and its response; x tokio: against hyper-tokio)"
                    .to_string(),
                Mode::Stream => format!(
                    ", full duplex, up to {} B unacknowledged each\n  \
                     (a message is {} B of echo; its latency runs from its first byte \
                     sent to its last byte read back)",
                    a.window, cell.size
                ),
            }
        );
        let perf_head = if a.syscalls {
            format!(" {:>10}", "perf sys/m")
        } else {
            String::new()
        };
        println!(
            "  {:<16} {:>26} {:>8} {:>7} {:>7} {:>8} {:>6} {:>9} {:>10} {:>8} {:>8} {:>7} {:>7}{perf_head}",
            "server",
            "msgs/s",
            "MB/s",
            "p50us",
            "p99us",
            "p99.9us",
            "errs",
            "x tokio",
            "cpu us/msg",
            "cpu x tk",
            "enter/m",
            "sys/m",
            "now %"
        );
        let reference = if cell.mode == Mode::Http {
            "hyper-tokio"
        } else {
            "tokio"
        };
        let tokio = sums.get(&(ci, reference.to_string()));
        for name in servers {
            let Some(s) = sums.get(&(ci, name.clone())) else {
                if let Some(why) = unavailable.get(name) {
                    println!("  {name:<16} unavailable: {why}");
                }
                continue;
            };
            let med =
                |v: Option<Spread>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), |v| f(v.med));
            let perf = if a.syscalls {
                let v = s
                    .perf_syscalls
                    .map_or("n/a".into(), |v| format!("{:.2}", v.med));
                format!(" {v:>10}")
            } else {
                String::new()
            };
            let Spread { med: rate, lo, hi } = s.rate;
            println!(
                "  {name:<16} {:>26} {:>8.1} {:>7.0} {:>7.0} {:>8.0} {:>6} {:>9} {:>10.2} {:>8} {:>8} {:>7} {:>7}{perf}",
                format!("{rate:.0} ({lo:.0}..{hi:.0})"),
                s.mb.med,
                s.p50.med,
                s.p99.med,
                s.p999.med,
                s.errors,
                tokio.map_or("-".into(), |t| format!("{:.2}", rate / t.rate.med.max(1.0))),
                s.cpu.med,
                tokio.map_or("-".into(), |t| format!(
                    "{:.2}",
                    s.cpu.med / t.cpu.med.max(1e-9)
                )),
                med(s.enters, &|x| format!("{x:.3}")),
                med(s.syscalls, &|x| format!("{x:.2}")),
                med(s.immediate, &|x| format!("{:.0}", 100.0 * x)),
            );
        }
        let paired: Vec<String> = servers
            .iter()
            .filter(|n| n.as_str() != reference)
            .filter_map(|n| {
                let (rate, cpu) = paired_ratios(
                    results.get(&(ci, n.clone()))?,
                    results.get(&(ci, reference.to_string()))?,
                )?;
                Some(format!("{n} {rate:.2}x (cpu {cpu:.2}x)"))
            })
            .collect();
        if !paired.is_empty() {
            println!(
                "  paired with {reference}'s round next to it, median of the rounds' ratios: {}",
                paired.join(", ")
            );
        }
    }
}

/// The median over rounds of each round's msgs/s and CPU per message
/// relative to the reference server's round of the same number (run next
/// to it, so both met the same machine): steadier than the ratio of the
/// medians when the machine's load swings between rounds. `None` without
/// rounds to pair.
pub(super) fn paired_ratios(rs: &[RoundResult], reference: &[RoundResult]) -> Option<(f64, f64)> {
    let pairs = rs.iter().zip(reference);
    let rate: Vec<f64> = pairs
        .clone()
        .map(|(r, t)| r.msgs_per_s / t.msgs_per_s.max(1.0))
        .collect();
    let cpu: Vec<f64> = pairs
        .map(|(r, t)| r.cpu_us_per_msg / t.cpu_us_per_msg.max(1e-9))
        .collect();
    Some((median(&rate)?, median(&cpu)?))
}

/// Writes every round of every cell and server as JSON.
pub(super) fn write_json(
    path: &Path,
    a: &BenchArgs,
    cells: &[Cell],
    results: &Results,
    unavailable: &BTreeMap<String, String>,
) -> Result<(), String> {
    let v = serde_json::json!({
        "depth": a.depth,
        "stream_window_bytes": a.window,
        "stream_latency": "a message's first byte sent to its last byte read back",
        "cells": cells,
        "results": results.iter().map(|((ci, name), rs)| serde_json::json!({"cell": ci, "server": name, "rounds": rs})).collect::<Vec<_>>(),
        "unavailable": unavailable,
    });
    write_pretty(path, &v)
}

/// Writes a JSON value to a file.
pub(super) fn write_pretty(path: &Path, v: &serde_json::Value) -> Result<(), String> {
    let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0]), Some(3.0));
        assert_eq!(median(&[5.0, 1.0, 3.0]), Some(3.0));
        // An even count takes the upper middle value.
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(3.0));
        assert_eq!(Spread::of(&[]), None);
        assert_eq!(
            Spread::of(&[2.0, 9.0, 4.0]),
            Some(Spread {
                med: 4.0,
                lo: 2.0,
                hi: 9.0
            })
        );
    }

    #[test]
    fn paired_ratios_follow_the_rounds() {
        // The machine slowed in round two for both servers alike: paired,
        // the server is 1.1x in each round.
        let reference = [round(100.0, None), round(20.0, None), round(90.0, None)];
        let mut rs = [round(110.0, None), round(22.0, None), round(99.0, None)];
        rs[0].cpu_us_per_msg = 1.0;
        let (rate, cpu) = paired_ratios(&rs, &reference).unwrap();
        assert!((rate - 1.1).abs() < 1e-9, "{rate}");
        assert_eq!(cpu, 1.0);
        assert_eq!(paired_ratios(&rs, &[]), None);
    }

    fn round(rate: f64, perf: Option<f64>) -> RoundResult {
        RoundResult {
            msgs_per_s: rate,
            mb_per_s: rate / 1000.0,
            p50_us: 10,
            p99_us: 20,
            p999_us: 30,
            errors: 1,
            mismatches: 0,
            cpu_us_per_msg: 2.0,
            enters_per_msg: None,
            syscalls_per_msg: Some(1.5),
            immediate_share: None,
            perf_syscalls_per_msg: perf,
        }
    }

    #[test]
    fn summaries_are_computed_once_per_cell_and_server() {
        let mut results = Results::new();
        results.insert(
            (0, "a".into()),
            vec![
                round(100.0, Some(2.0)),
                round(300.0, None),
                round(200.0, Some(4.0)),
            ],
        );
        results.insert((1, "a".into()), Vec::new());
        let sums = summarize(&results);
        assert_eq!(sums.len(), 1, "a cell without rounds has no summary");
        let s = &sums[&(0, "a".to_string())];
        assert_eq!((s.rate.med, s.rate.lo, s.rate.hi), (200.0, 100.0, 300.0));
        assert_eq!(s.errors, 3);
        assert!(!s.mismatched);
        assert_eq!(s.enters, None);
        assert_eq!(s.syscalls.map(|x| x.med), Some(1.5));
        assert_eq!(s.perf_syscalls.map(|x| x.med), Some(4.0));
    }
}
