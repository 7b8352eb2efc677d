//! `aloft-loadtest`: aloft's yardstick.
//!
//! # Layout
//!
//! One folder per concern; the subcommands' own modules hold their options.
//!
//! - `bots`: the `bots` subcommand and the bot players (`bot`), what they decide
//!   (`behaviour`), the rules they check (`verify`), their WebSocket (`connection`) and
//!   the live status line (`progress`).
//! - `bets`: the `bets` subcommand: bet throughput, ack latency and the ledger check.
//! - `fanout`: the `fanout` subcommand (one server under a fixed broadcast load) and
//!   `compare` (every server in turn), the servers they run (`servers`, the raw-TCP
//!   `floor`), the receiving connections (`receiver`) and the WebSocket wire by hand
//!   (`wire`).
//! - `report`: shared counters and failure log, percentiles, the summaries, tables,
//!   charts and the HTML report, JSON output.
//! - `chaos`: the `chaos` subcommand: the fault suite, its cluster and ledger checks.
//! - `api`: the JSON API calls (`/api/guest`, `/api/fair`).
//! - `target`: the loopback-only target and the source addresses.
//! - `flags`: parsers of command-line values the subcommands share (durations).
//! - `process`: the generator's own CPU, memory and open-file limit.

mod api;
mod bets;
mod bots;
mod chaos;
mod fanout;
mod flags;
mod process;
mod report;
mod target;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// aloft's load generator.
#[derive(Debug, Parser)]
#[command(name = "aloft-loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run N bot players that watch, bet and cash out like people, and verify
    /// everything the server sends them.
    Bots(bots::BotsArgs),
    /// Put one server under a fixed broadcast load (connections × tick rate) and report
    /// frames/s, server CPU-µs per frame, RSS per connection and tick latency.
    Fanout(fanout::FanoutArgs),
    /// Run the fan-out load against several servers in turn and write report.json and
    /// report.html with every figure also as a ratio to the raw-TCP floor.
    Compare(fanout::compare::CompareArgs),
    /// The raw-TCP floor server: pre-encoded frames, one write per socket per tick, one
    /// thread (started by `fanout --server floor`).
    FloorServer(fanout::floor::FloorArgs),
    /// Bet throughput: N players bet in every betting phase as fast as the server acks;
    /// acked bets/s, ack latency, and a check that the ledger holds exactly those bets.
    Bets(bets::BetsArgs),
    /// The fault suite: a cluster of its own under verifying bots, one fault per
    /// iteration (engine kill, Redis restart, PostgreSQL stop, gateway kill, rolling
    /// restart), then the ledger and the bots' checks (see scripts/chaos).
    Chaos(chaos::ChaosArgs),
}

/// Runs a command: the floor on its own single thread, the others on a multi-thread
/// runtime.
fn run(command: Command) -> anyhow::Result<bool> {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
    };
    match command {
        Command::FloorServer(args) => fanout::floor::run(args),
        Command::Bots(args) => runtime()?.block_on(bots::run(args)),
        Command::Fanout(args) => runtime()?.block_on(fanout::run(args)),
        Command::Compare(args) => runtime()?.block_on(fanout::compare::run(args)),
        Command::Bets(args) => runtime()?.block_on(bets::run(args)),
        Command::Chaos(args) => runtime()?.block_on(chaos::run(args)),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = run(cli.command);
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
