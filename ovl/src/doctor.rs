//! `ovl doctor`: what this system offers the engines, and what limits a
//! server here.

use overlapped::probe::{
    EngineChoice, REQUIRED_OPCODES, fixed_support, io_uring_sysctl, opcode_support, probe_uring,
    resolve,
};
use serde_json::json;

/// A server wants at least this many descriptors (one per connection).
const NOFILE_ADVICE: u64 = 65_536;

fn limit(res: rustix::process::Resource) -> (Option<u64>, Option<u64>) {
    let r = rustix::process::getrlimit(res);
    (r.current, r.maximum)
}

fn show(v: Option<u64>) -> String {
    v.map_or("unlimited".to_string(), |n| n.to_string())
}

/// Runs the checks and prints them (as JSON with `json`).
pub fn run(as_json: bool) -> std::process::ExitCode {
    let uname = rustix::system::uname();
    let release = uname.release().to_string_lossy().into_owned();
    let sysctl = io_uring_sysctl();
    let uring = probe_uring();
    let opcodes = opcode_support().ok();
    let fixed = uring.as_ref().ok().map(|()| fixed_support());
    let env_choice = std::env::var("OVERLAPPED_ENGINE").ok();
    let auto = resolve(EngineChoice::Auto);
    let (nofile_cur, nofile_max) = limit(rustix::process::Resource::Nofile);
    let (memlock_cur, memlock_max) = limit(rustix::process::Resource::Memlock);

    let mut advice = Vec::new();
    if let Err(why) = &uring {
        advice.push(format!(
            "io_uring is unavailable ({why}); the poll engine will be used. In a container, allow io_uring_setup/io_uring_enter/io_uring_register in the seccomp profile to get the io_uring engine."
        ));
    }
    if nofile_cur.is_some_and(|n| n < NOFILE_ADVICE) {
        advice.push(format!(
            "RLIMIT_NOFILE is {}: a server can hold at most about that many connections; raise it (ulimit -n {NOFILE_ADVICE}).",
            show(nofile_cur)
        ));
    }
    if let Ok(v) = &env_choice
        .as_deref()
        .unwrap_or("auto")
        .parse::<EngineChoice>()
    {
        if *v == EngineChoice::Uring && uring.is_err() {
            advice.push("OVERLAPPED_ENGINE=uring is set but io_uring cannot run here: programs will fail to start their engine.".into());
        }
    } else {
        advice.push(format!(
            "OVERLAPPED_ENGINE={:?} is not one of auto, uring, poll.",
            env_choice.clone().unwrap_or_default()
        ));
    }

    if as_json {
        let v = json!({
            "kernel_release": release,
            "io_uring": {
                "available": uring.is_ok(),
                "reason": uring.as_ref().err().map(|e| e.to_string()),
                "sysctl_io_uring_disabled": sysctl,
            },
            "auto_engine": auto.as_ref().ok().map(|(k, _)| k.name()),
            "auto_reason": auto.as_ref().map(|(_, r)| r.clone()).unwrap_or_else(|e| e.to_string()),
            "overlapped_engine_env": env_choice,
            "opcodes": opcodes.as_ref().map(|ops| ops.iter().map(|(n, ok)| json!({"name": n, "supported": ok})).collect::<Vec<_>>()),
            "fixed_buffers": fixed.map(|f| json!({
                "in_use": f.any(),
                "recv_read_fixed": f.read_waits,
                "send_zc_fixed": f.send_zc,
                "send_fixed": f.send,
                "probe_results": f.raw,
            })),
            "rlimit_nofile": {"soft": nofile_cur, "hard": nofile_max},
            "rlimit_memlock": {"soft": memlock_cur, "hard": memlock_max},
            "advice": advice,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return std::process::ExitCode::SUCCESS;
    }

    println!("overlapped doctor");
    println!("  kernel release       {release}");
    match &uring {
        Ok(()) => println!("  io_uring             available"),
        Err(why) => println!("  io_uring             NOT available: {why}"),
    }
    println!(
        "  kernel.io_uring_disabled  {}",
        sysctl.map_or("(not present on this kernel)".to_string(), |v| format!(
            "{v} ({})",
            match v {
                0 => "enabled",
                1 => "root or io_uring_group only",
                _ => "disabled",
            }
        ))
    );
    match &auto {
        Ok((k, r)) => println!("  engine with auto     {k} ({r})"),
        Err(e) => println!("  engine with auto     error: {e}"),
    }
    if let Some(v) = &env_choice {
        println!("  OVERLAPPED_ENGINE    {v}");
    }
    println!("  opcodes the io_uring engine needs:");
    match &opcodes {
        Some(ops) => {
            for (n, ok) in ops {
                println!(
                    "    {:<14} {}",
                    n,
                    if *ok { "supported" } else { "MISSING" }
                );
            }
        }
        None => {
            for (n, _) in REQUIRED_OPCODES {
                println!("    {n:<14} unknown (no ring)");
            }
        }
    }
    match fixed {
        Some(f) => {
            println!(
                "  registered buffers   {}",
                if f.any() {
                    "used by the io_uring engine (Engine::register_buffers)"
                } else {
                    "not used: the kernel takes neither fixed opcode on sockets"
                }
            );
            println!(
                "    receive          {}",
                fixed_line(f.read_waits, "READ_FIXED", f.raw[3])
            );
            println!(
                "    send             {}",
                fixed_line(f.send_zc, "SEND_ZC + RECVSEND_FIXED_BUF", f.raw[1])
            );
            println!(
                "    (SEND + RECVSEND_FIXED_BUF: {}, not used)",
                result(f.raw[0])
            );
        }
        None => println!("  registered buffers   not used (no io_uring)"),
    }
    println!(
        "  RLIMIT_NOFILE        soft {} / hard {}",
        show(nofile_cur),
        show(nofile_max)
    );
    println!(
        "  RLIMIT_MEMLOCK       soft {} / hard {} bytes",
        show(memlock_cur),
        show(memlock_max)
    );
    if advice.is_empty() {
        println!("  advice               none: everything the engines need is here");
    } else {
        for a in &advice {
            println!("  advice               {a}");
        }
    }
    std::process::ExitCode::SUCCESS
}

/// A probe request's result: bytes, or the errno's name.
fn result(res: i32) -> String {
    if res >= 0 {
        format!("ok ({res} byte{})", if res == 1 { "" } else { "s" })
    } else {
        std::io::Error::from_raw_os_error(-res).to_string()
    }
}

fn fixed_line(used: bool, what: &str, res: i32) -> String {
    if used {
        format!("{what} (probe: {})", result(res))
    } else {
        format!("ordinary path ({what} probe: {})", result(res))
    }
}
