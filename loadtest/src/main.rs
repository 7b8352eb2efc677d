//! `aloft-loadtest`: aloft's yardstick.
//!
//! # Layout
//!
//! - `bots`: the `bots` subcommand: N bot players, ramp, bounded drain, report.
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
mod bot;
mod bots;
mod connection;
mod process;
mod progress;
mod report;
mod stats;
mod target;
mod verify;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| match cli.command {
            Command::Bots(args) => runtime.block_on(bots::run(args)),
        });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
