//! The `--engine` option of the subcommands: given, it wins; not given,
//! `OVERLAPPED_ENGINE` decides (unset: auto), as in any program built on
//! the library.

use std::fmt;

use overlapped::probe::EngineChoice;
use overlapped::{Engine, EngineKind};

/// Help text of `--engine`.
pub const HELP: &str = "Engine: auto (io_uring when it can run here, else poll), uring, poll \
                        [default: $OVERLAPPED_ENGINE, else auto]";

/// An engine choice and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    /// The choice.
    pub choice: EngineChoice,
    /// Where it came from.
    pub source: Source,
}

/// Where an engine choice came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `--engine`.
    Flag,
    /// `OVERLAPPED_ENGINE`.
    Env,
    /// Neither: auto.
    Default,
}

/// The name `--engine` and `OVERLAPPED_ENGINE` accept for a choice.
pub fn name(c: EngineChoice) -> &'static str {
    c.name()
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = name(self.choice);
        match self.source {
            Source::Flag => write!(f, "--engine {n}"),
            Source::Env => write!(f, "OVERLAPPED_ENGINE={n}"),
            Source::Default => write!(f, "default {n}: no --engine, no OVERLAPPED_ENGINE"),
        }
    }
}

/// The choice in effect: `flag` when given, else `OVERLAPPED_ENGINE` read
/// as the library reads it. An unknown value of the variable is an error
/// that names the variable.
pub fn choose(flag: Option<EngineChoice>) -> Result<Chosen, String> {
    if let Some(choice) = flag {
        return Ok(Chosen {
            choice,
            source: Source::Flag,
        });
    }
    let set = std::env::var_os("OVERLAPPED_ENGINE").is_some();
    let choice = EngineChoice::from_env()
        .map_err(|e| format!("the OVERLAPPED_ENGINE variable: {e} (or pass --engine)"))?;
    Ok(Chosen {
        choice,
        source: if set { Source::Env } else { Source::Default },
    })
}

/// The engine for `flag` (see [`choose`]); errors say which choice failed.
pub fn build(flag: Option<EngineChoice>) -> Result<(Engine, Chosen), String> {
    let chosen = choose(flag)?;
    let engine = Engine::builder()
        .choice(chosen.choice)
        .build()
        .map_err(|e| format!("cannot start the engine ({chosen}): {e}"))?;
    Ok((engine, chosen))
}

/// The choice that makes exactly this kind of engine (for threads that
/// build their own engines after the first one decided).
pub fn forced(kind: EngineKind) -> EngineChoice {
    if kind == EngineKind::Uring {
        EngineChoice::Uring
    } else {
        EngineChoice::Poll
    }
}

/// Why `engine` is the one in use: the library's reason and where the
/// choice came from.
pub fn why(engine: &Engine, chosen: Chosen) -> String {
    format!("{}; {chosen}", engine.reason())
}
