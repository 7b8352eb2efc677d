//! `aloft-loadtest`: aloft's yardstick.
//!
//! # Layout
//!
//! - `bets`: the `bets` subcommand: bet throughput, ack latency and the ledger check.
//! - `bots`: the `bots` subcommand: N bot players, ramp, bounded drain, report.
//! - `chaos`: the `chaos` subcommand: the fault suite, iteration by iteration.
//! - `chaos_cluster`: the cluster the fault suite owns and the faults' primitives.
//! - `chaos_checks`: the ledger checks after each fault, as pure functions.
//! - `fanout`: the `fanout` subcommand: one server under a fixed broadcast load.
//! - `receiver`: the fan-out client's connections: counters and latency probes.
//! - `wire`: the WebSocket handshake and frames, read and written by hand.
//! - `servers`: the servers a benchmark can run (floor, aloft, peers) and their processes.
//! - `floor`: the raw-TCP floor server (`floor-server`).
//! - `fanout_report`: CPU per frame, RSS per connection, latency percentiles, ratios.
//! - `compare`: the `compare` subcommand: every server in turn, ratios to the floor.
//! - `html`: the comparison's text table and HTML report with SVG charts.
//! - `bot`: one bot player: its connection loop, bets, own ledger and checks.
//! - `behaviour`: what a bot decides each round (watch, stake, auto or manual exit).
//! - `verify`: the rules a correct server never breaks, as pure functions.
//! - `connection`: opening a bot's WebSocket and decoding server frames.
//! - `api`: the JSON API calls (`/api/guest`, `/api/fair`).
//! - `target`: the loopback-only target and the source addresses.
//! - `stats`: shared counters, latency histogram and failure log.
//! - `progress`: the live status line.
//! - `report`: percentiles, the summary table and the JSON report.
//! - `process`: the generator's own CPU, memory and open-file limit.

mod api;
mod behaviour;
mod bets;
mod bot;
mod bots;
mod chaos;
mod chaos_checks;
mod chaos_cluster;
mod compare;
mod connection;
mod fanout;
mod fanout_report;
mod floor;
mod html;
mod process;
mod progress;
mod receiver;
mod report;
mod servers;
mod stats;
mod target;
mod verify;
mod wire;

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
    Compare(compare::CompareArgs),
    /// The raw-TCP floor server: pre-encoded frames, one write per socket per tick, one
    /// thread (started by `fanout --server floor`).
    FloorServer(floor::FloorArgs),
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
        Command::FloorServer(args) => floor::run(args),
        Command::Bots(args) => runtime()?.block_on(bots::run(args)),
        Command::Fanout(args) => runtime()?.block_on(fanout::run(args)),
        Command::Compare(args) => runtime()?.block_on(compare::run(args)),
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
