//! The `bots` subcommand: N real bot players against one server. This module owns the
//! run as a whole: its options and their limits, the ramp of connections, the end of the
//! run and its bounded drain, and the report.

pub mod behaviour;
pub mod bot;
pub mod connection;
pub mod progress;
pub mod verify;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, ensure};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::api::Api;
use crate::bots::bot::RunContext;
use crate::bots::progress::Progress;
use crate::bots::verify::FairCheck;
use crate::report::stats::Stats;
use crate::report::summary::{Report, RunFacts};

/// Most bot players in one run.
pub const PLAYERS_MAX: u64 = 200_000;
/// Fastest ramp, in new connections per second.
const RAMP_PER_SECOND_MAX: u64 = 20_000;
/// Time after the end for bots to settle their bets, in milliseconds.
const SETTLE_MS: u64 = 7_000;
/// Time after the end by which everything, final reconnections included, is over, in
/// milliseconds (the bounded drain).
const DRAIN_MS_MAX: u64 = 10_000;
/// Extra time given to bot tasks past the drain before they are aborted, in milliseconds.
const ABORT_GRACE_MS: u64 = 1_000;
const _: () = assert!(SETTLE_MS < DRAIN_MS_MAX);

/// Options of `aloft-loadtest bots`.
#[derive(Debug, clap::Args)]
pub struct BotsArgs {
    /// Server WebSocket URL, on loopback only (127.0.0.0/8), e.g. ws://127.0.0.1:8080.
    #[arg(long)]
    pub url: String,
    /// Bot players to run.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=PLAYERS_MAX))]
    pub players: u64,
    /// How long the bots play, e.g. 60s, 2m, 500ms (then at most 10 s of drain).
    #[arg(long, value_parser = crate::flags::parse_duration)]
    pub duration: Duration,
    /// New connections per second.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=RAMP_PER_SECOND_MAX))]
    pub ramp_per_second: u64,
    /// Loopback source addresses to spread the bots over (default: 127.0.0.1 ..
    /// 127.0.0.k, k = ceil(players / 20000)).
    #[arg(long, value_delimiter = ',')]
    pub source_addrs: Vec<Ipv4Addr>,
    /// Room to join.
    #[arg(long, default_value = "main")]
    pub room: String,
    /// Write the JSON report to this file.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Seed of the bots' choices (default: random, printed in the report).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Runs the bots and reports; `Ok(true)` when every check passed.
pub async fn run(args: BotsArgs) -> anyhow::Result<bool> {
    let server = crate::target::parse_ws_url(&args.url)?;
    let sources = crate::target::source_addrs(&args.source_addrs, args.players)?;
    crate::target::check_room(&args.room)?;
    crate::process::ensure_open_files(args.players)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let started = Instant::now();
    let plan = Generation {
        servers: vec![server],
        room: args.room.clone(),
        duration: args.duration,
        reconnect_ms_max: None,
        faults_expected: false,
        stats: Arc::new(Stats::new()),
    };
    let context = Arc::new(plan.context().await?);
    let progress = Progress::start(context.stats.clone(), args.players);
    let players_started = play(&context, args.players, args.ramp_per_second, &sources, seed).await;
    progress.finish().await;
    let facts = RunFacts {
        url: args.url.clone(),
        room: args.room.clone(),
        seed,
        players: args.players,
        players_started,
        duration_seconds: args.duration.as_secs_f64(),
        wall_seconds: started.elapsed().as_secs_f64(),
        usage: crate::process::read_usage()?,
    };
    let report = Report::new(facts, &context.stats);
    print!("{}", report.summary_table());
    if let Some(path) = &args.report {
        crate::report::write_json(path, &report)?;
        println!("report written to {}", path.display());
    }
    Ok(report.passed() && players_started == args.players)
}

/// A set of bots that play together from now for `duration`.
pub struct Generation {
    pub servers: Vec<SocketAddr>,
    pub room: String,
    pub duration: Duration,
    /// See [`RunContext::reconnect_ms_max`].
    pub reconnect_ms_max: Option<u64>,
    /// See [`RunContext::faults_expected`].
    pub faults_expected: bool,
    pub stats: Arc<Stats>,
}

impl Generation {
    /// What the bots share: the fairness parameters read from the first server, and the
    /// run's end, settle deadline and bounded drain counted from now.
    pub async fn context(self) -> anyhow::Result<RunContext> {
        let first = *self.servers.first().context("no server to play on")?;
        let api = Api::new(first);
        let fair = api
            .fair()
            .await
            .context("reading the fairness parameters")?;
        ensure!(
            fair.chain_length > 0,
            "the server publishes an empty hash chain"
        );
        let end_at = Instant::now() + self.duration;
        Ok(RunContext {
            api,
            fair: FairCheck {
                salt: fair.salt,
                commitment: fair.commitment,
                house_edge_bp: fair.house_edge_bp,
            },
            stats: self.stats,
            servers: self.servers,
            reconnect_ms_max: self.reconnect_ms_max,
            faults_expected: self.faults_expected,
            room: self.room,
            end_at,
            settle_deadline: end_at + Duration::from_millis(SETTLE_MS),
            stop_deadline: end_at + Duration::from_millis(DRAIN_MS_MAX),
        })
    }
}

/// Plays `players` bots of `context` to their end: starts them at `ramp_per_second`,
/// waits for them until the drain is over and aborts those still running; returns how
/// many started.
pub async fn play(
    context: &Arc<RunContext>,
    players: u64,
    ramp_per_second: u64,
    sources: &[Ipv4Addr],
    seed: u64,
) -> u64 {
    let mut bots = JoinSet::new();
    let started = ramp(context, &mut bots, players, ramp_per_second, sources, seed).await;
    let all_done = async { while bots.join_next().await.is_some() {} };
    let abort_at = context.stop_deadline + Duration::from_millis(ABORT_GRACE_MS);
    if tokio::time::timeout_at(abort_at, all_done).await.is_err() {
        eprintln!("{} bots still running past the drain; aborted", bots.len());
        bots.shutdown().await;
    }
    started
}

/// Starts the bots at `ramp_per_second` until all run or the run ends; returns how many
/// started.
async fn ramp(
    context: &Arc<RunContext>,
    bots: &mut JoinSet<()>,
    players: u64,
    ramp_per_second: u64,
    sources: &[Ipv4Addr],
    seed: u64,
) -> u64 {
    let ramp_started = Instant::now();
    for index in 0..players {
        let due = ramp_started + Duration::from_secs_f64(index as f64 / ramp_per_second as f64);
        if due >= context.end_at {
            eprintln!("the run ended before every bot started: {index} of {players} started");
            return index;
        }
        tokio::time::sleep_until(due).await;
        let source = sources[usize::try_from(index).expect("players fit usize") % sources.len()];
        bots.spawn(bot::run(context.clone(), index, source, seed));
    }
    players
}
