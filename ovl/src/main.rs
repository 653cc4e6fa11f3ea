//! `ovl`: the command-line tool of the overlapped library — echo servers in
//! every model, an echo client, a benchmark, and a system check.

#![deny(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod client;
mod doctor;
mod engine;
mod http;
mod limits;
mod server;
mod soak;

/// The overlapped I/O model on Linux: servers, client, bench, doctor.
#[derive(Debug, Parser)]
#[command(name = "ovl", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run an echo server (Ctrl-C stops it with a summary).
    EchoServer(server::ServerArgs),
    /// Run a hyper HTTP/1.1 "hello" server on tokio's sockets or ours.
    HttpServer(http::HttpArgs),
    /// Talk to an echo server: interactive, or scripted with --count.
    EchoClient(client::ClientArgs),
    /// Benchmark our servers against tokio and std baselines.
    Bench(bench::BenchArgs),
    /// Soak test: many connections, random sizes, every byte verified.
    Soak(soak::SoakArgs),
    /// Check what this system offers the engines.
    Doctor {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::EchoServer(a) => server::run(a),
        Cmd::HttpServer(a) => http::run(a),
        Cmd::EchoClient(a) => client::run(a),
        Cmd::Soak(a) => soak::run(a),
        Cmd::Bench(a) => bench::run(a),
        Cmd::Doctor { json } => doctor::run(json),
    }
}
