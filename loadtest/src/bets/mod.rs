//! The `bets` subcommand: end-to-end bet throughput and the ledger check behind it.
//!
//! N guest players connect (`player`); in every betting phase each one bets in slot 0
//! and, as soon as that bet is answered, in slot 1 (one bet per slot per round is the
//! protocol's limit), so the server acks bets as fast as it can. The run measures acked
//! bets per second over the betting windows (`rates`), the busiest round's burst rate
//! and the send → `bet_ok`/`bet_err` latency (`report`). With the server's data
//! directory (`--data-dir`, or `--spawn-server`, which starts `aloft serve` with short
//! phases and stops it with SIGINT: `spawned`), it then opens the server's SQLite ledger
//! and checks that it holds exactly the acked bets (`reconcile`).

mod player;
mod rates;
mod reconcile;
mod report;
mod spawned;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aloft::ledger::SqliteLedger;
use anyhow::Context;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::bets::player::{PlayerOutcome, RunContext};
use crate::bets::rates::unix_us;
use crate::bets::reconcile::{AckedBet, Reconciliation};
use crate::bets::report::RunFacts;
use crate::bets::spawned::SpawnedServer;
use crate::report::stats::Stats;

/// Most players in one run: one socket each, under the 20,000 open files of a process.
const PLAYERS_MAX: u64 = 15_000;
/// Time after the end for the last bets' replies to arrive, in milliseconds.
const DRAIN_MS: u64 = 5_000;
/// Betting phase of a spawned server, in milliseconds.
const SPAWN_BETTING_MS_DEFAULT: u64 = 1_000;

/// Options of `aloft-loadtest bets`.
#[derive(Debug, clap::Args)]
pub struct BetsArgs {
    /// Server WebSocket URL, on loopback only (127.0.0.0/8); not with --spawn-server.
    #[arg(
        long,
        required_unless_present = "spawn_server",
        conflicts_with = "spawn_server"
    )]
    pub url: Option<String>,
    /// Start `aloft serve` (next to this binary) on a free loopback port with short
    /// betting phases, stop it with SIGINT at the end and check its ledger.
    #[arg(long)]
    pub spawn_server: bool,
    /// Betting phase of the spawned server, in milliseconds.
    #[arg(long, default_value_t = SPAWN_BETTING_MS_DEFAULT, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub betting_ms: u64,
    /// Players (connections).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..=PLAYERS_MAX))]
    pub players: u64,
    /// How long the players bet, e.g. 30s (then at most 5 s for the last replies).
    #[arg(long, value_parser = crate::flags::parse_duration)]
    pub duration: Duration,
    /// The server's data directory: its ledger.db is checked against the acked bets
    /// (with --spawn-server: where the server keeps its data; default a new temp dir).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Room to bet in.
    #[arg(long, default_value = "main")]
    pub room: String,
    /// Stake of slot 0 in minor units; slot 1 stakes one more.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub stake: i64,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Where the run goes: the URL, the data dir to check and the server it started.
struct Target {
    url: String,
    server: SocketAddr,
    data_dir: Option<PathBuf>,
    spawned: Option<SpawnedServer>,
}

async fn target(args: &BetsArgs) -> anyhow::Result<Target> {
    if !args.spawn_server {
        let url = args
            .url
            .clone()
            .context("--url or --spawn-server is required")?;
        let server = crate::target::parse_ws_url(&url)?;
        return Ok(Target {
            url,
            server,
            data_dir: args.data_dir.clone(),
            spawned: None,
        });
    }
    let data_dir = args.data_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("aloft-bets-{}-{}", std::process::id(), unix_us()))
    });
    let spawned = SpawnedServer::start(&data_dir, args.betting_ms).await?;
    println!(
        "spawned aloft on {} with data in {}",
        spawned.listen,
        data_dir.display()
    );
    Ok(Target {
        url: format!("ws://{}", spawned.listen),
        server: spawned.listen,
        data_dir: Some(data_dir),
        spawned: Some(spawned),
    })
}

/// Runs the players, stops a spawned server, checks the ledger; `Ok(true)` on a pass.
pub async fn run(args: BetsArgs) -> anyhow::Result<bool> {
    crate::target::check_room(&args.room)?;
    crate::process::ensure_open_files(args.players)?;
    let target = target(&args).await?;
    let started = Instant::now();
    let mut context = RunContext {
        room: args.room.clone(),
        stake: args.stake,
        stats: Stats::new(),
        end_at: started,
        drain_at: started,
    };
    let (players, setup_errors) =
        player::connect_players(target.server, &context, args.players).await;
    let betting_started = Instant::now();
    context.end_at = betting_started + args.duration;
    context.drain_at = context.end_at + Duration::from_millis(DRAIN_MS);
    let run_end_us = unix_us() + args.duration.as_micros() as u64;
    let context = Arc::new(context);
    let player_ids: HashSet<String> = players.iter().map(|player| player.id.clone()).collect();
    let mut running = JoinSet::new();
    for player in players {
        running.spawn(player.play(context.clone()));
    }
    let outcomes: Vec<PlayerOutcome> = running.join_all().await;
    let merged = player::merge(outcomes, setup_errors);
    let wall_seconds = started.elapsed().as_secs_f64();
    if let Some(spawned) = target.spawned {
        spawned.stop().await?;
    }
    let ledger = match &target.data_dir {
        Some(dir) => Some(check_ledger(dir, &args.room, &player_ids, &merged.acked).await?),
        None => None,
    };
    let facts = RunFacts {
        url: target.url,
        room: args.room.clone(),
        players: args.players,
        duration: args.duration,
        run_end_us,
        wall_seconds,
    };
    let report = report::build_report(facts, &context.stats, merged, ledger)?;
    print!("{}", report.summary_table());
    if let Some(path) = &args.report {
        crate::report::write_json(path, &report)?;
    }
    Ok(report.passed())
}

/// Opens `dir/ledger.db` (the server must have stopped) and reconciles it.
async fn check_ledger(
    dir: &Path,
    room: &str,
    players: &HashSet<String>,
    acked: &[AckedBet],
) -> anyhow::Result<Reconciliation> {
    let path = dir.join("ledger.db");
    let ledger =
        SqliteLedger::open(&path).with_context(|| format!("opening {}", path.display()))?;
    reconcile::reconcile(&ledger, room, players, acked).await
}
