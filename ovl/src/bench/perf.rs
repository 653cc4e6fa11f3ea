//! `--syscalls`: every system call of a server process, counted by `perf`
//! (the `raw_syscalls:sys_enter` tracepoint, attached with `-p PID`) over
//! the measured part of a round.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The tracepoint hit on every system call entry.
const EVENT: &str = "raw_syscalls:sys_enter";
/// How long perf may take beyond its window before it is stopped.
const GRACE: Duration = Duration::from_secs(5);

/// Checks once that perf can count system calls here. `Err` says why not
/// and what to do about it.
pub(super) fn probe() -> Result<(), String> {
    let mut cmd = Command::new("perf");
    cmd.args(["stat", "-x,", "-e", EVENT, "--", "true"]);
    let child = spawn(cmd)?;
    let (count, _) = finish(child, GRACE)?;
    if count == 0 {
        return Err(format!("perf counted no {EVENT} for `true`"));
    }
    Ok(())
}

/// perf counting one process's system calls.
pub(super) struct Counting(Child);

impl Counting {
    /// Starts counting the system calls of process `pid` from `delay` from
    /// now, for `window`.
    pub(super) fn start(pid: u32, delay: Duration, window: Duration) -> Result<Counting, String> {
        let mut cmd = Command::new("perf");
        cmd.args(["stat", "-x,", "-e", EVENT, "-p", &pid.to_string()])
            .args(["-D", &delay.as_millis().to_string()])
            .args([
                "--",
                "sleep",
                &format!("{:.3}", (delay + window).as_secs_f64()),
            ]);
        spawn(cmd).map(Counting)
    }

    /// Waits for the count; returns system calls per second of the time
    /// perf counted.
    pub(super) fn per_second(self, limit: Duration) -> Result<f64, String> {
        let (count, secs) = finish(self.0, limit + GRACE)?;
        if secs <= 0.0 {
            return Err("perf counted for no time".into());
        }
        Ok(count as f64 / secs)
    }
}

fn spawn(mut cmd: Command) -> Result<Child, String> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "perf is not installed (Debian: `apt install linux-perf`; Ubuntu: linux-tools-$(uname -r))"
                    .to_string()
            }
            _ => format!("cannot run perf: {e}"),
        })
}

/// Waits (at most `limit`) for perf to exit; returns the count and the
/// seconds it counted for.
fn finish(mut child: Child, limit: Duration) -> Result<(u64, f64), String> {
    let t0 = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if t0.elapsed() < limit => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("perf did not finish within {} s", limit.as_secs()));
            }
        }
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    parse(&err).map_err(|why| {
        if status.success() {
            why
        } else {
            format!("{why} (perf exited with {status})")
        }
    })
}

/// Reads perf's CSV output (`count,unit,event,enabled ns,percent,..`).
fn parse(out: &str) -> Result<(u64, f64), String> {
    for line in out.lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.get(2).map(|e| e.trim()) != Some(EVENT) {
            continue;
        }
        let count = f[0].trim();
        let count: u64 = match count.parse() {
            Ok(n) => n,
            // The process made no system call while perf looked.
            Err(_) if count == "<not counted>" => 0,
            Err(_) => return Err(format!("perf could not count {EVENT}: {count}")),
        };
        let ns: f64 = f
            .get(3)
            .and_then(|n| n.trim().parse().ok())
            .ok_or_else(|| format!("perf printed no counting time: {line}"))?;
        return Ok((count, ns / 1e9));
    }
    Err(explain(out))
}

/// Why perf printed no count, and what to do.
fn explain(out: &str) -> String {
    let lower = out.to_lowercase();
    if lower.contains("permission") || lower.contains("paranoid") || lower.contains("access to") {
        "perf may not count system calls here: run the bench as root, or as root run \
         `sysctl kernel.perf_event_paranoid=-1` first"
            .into()
    } else if lower.contains("event syntax error") || lower.contains("unknown tracepoint") {
        format!(
            "perf has no {EVENT} tracepoint here (is tracefs mounted? \
             `mount -t tracefs nodev /sys/kernel/tracing`)"
        )
    } else {
        let first = out.lines().map(str::trim).find(|l| !l.is_empty());
        format!("perf printed no count ({})", first.unwrap_or("no output"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_perf_csv() {
        let out = "Events enabled\n286554,,raw_syscalls:sys_enter,334938431,100.00,,\n";
        assert_eq!(parse(out), Ok((286_554, 0.334_938_431)));
        let idle = "<not counted>,,raw_syscalls:sys_enter,0,100.00,,\n";
        assert_eq!(parse(idle), Ok((0, 0.0)));
        let unsupported = "<not supported>,,raw_syscalls:sys_enter,0,100.00,,\n";
        assert!(parse(unsupported).unwrap_err().contains("not supported"));
        let denied = "Error:\nNo permission to enable raw_syscalls:sys_enter event.\n";
        assert!(parse(denied).unwrap_err().contains("perf_event_paranoid"));
        let missing = "event syntax error: 'raw_syscalls:sys_enter'\n";
        assert!(parse(missing).unwrap_err().contains("tracefs"));
        assert!(parse("").unwrap_err().contains("no output"));
    }
}
