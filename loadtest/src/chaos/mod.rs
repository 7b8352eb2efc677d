//! The `chaos` subcommand: the fault suite. It starts a cluster of its own
//! (`cluster`), and in each iteration plays a generation of verifying bots spread
//! over the gateways, injects one fault while a round flies, waits until the cluster is
//! healthy and a round has crashed after it, lets the bots settle, and checks what the
//! bots saw and what the ledger holds (`checks`). Faults run in the order given,
//! over and over, `--iterations` in all. Bounded: each wait has a named timeout, the
//! bots play a fixed time per fault.

mod checks;
mod cluster;

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use tokio::time::Instant;

use crate::bots::{self, Generation};
use crate::report::stats::{FailureLog, Stats};
use cluster::{Cluster, ENGINES, GATEWAYS, ROOM, Role, Setup};

/// Most iterations of one run.
const ITERATIONS_MAX: u64 = 100_000;
/// Most bots per iteration.
const BOTS_MAX: u64 = 5_000;
/// Longest wait for the bots to see a round fly before the fault, in milliseconds.
const WARMUP_TIMEOUT_MS: u64 = 20_000;
/// Longest time a fault may take to be injected and undone (a rolling restart of five
/// processes takes the longest), in milliseconds.
const FAULT_TIMEOUT_MS: u64 = 60_000;
/// Longest wait, after the fault, for the cluster to be healthy again, in milliseconds.
const RECOVERY_TIMEOUT_MS: u64 = 30_000;
/// Longest wait, once healthy, for a round to crash, in milliseconds.
const ROUND_TIMEOUT_MS: u64 = 30_000;
/// Longest time a bot may take to open a connection again after losing one, in
/// milliseconds.
const RECONNECT_TIMEOUT_MS: u64 = 30_000;
/// How long PostgreSQL stays down in `postgres-stop`, in milliseconds.
const POSTGRES_DOWN_MS: u64 = 5_000;
/// Latest the fault comes after a `flying` was seen, in milliseconds.
const FAULT_DELAY_MS_MAX: u64 = 1_000;
/// Bot play besides the fault: the warm-up until a round flies and a round after the
/// recovery, in milliseconds (rounds of the default timing take 3-8 s, a few 15 s).
const PLAY_BESIDES_FAULT_MS: u64 = 20_000;
/// New bot connections per second.
const RAMP_PER_SECOND: u64 = 200;
/// Bots' verification messages printed per failed iteration (all are counted).
const BOT_MESSAGES_PRINTED_MAX: usize = 5;

/// A fault the suite injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the engine leading the room; a standby takes over; the killed one restarts.
    EngineKill,
    /// SIGKILL Redis (no persistence: every key is lost) and start it on the same port.
    RedisRestart,
    /// Stop PostgreSQL (fast shutdown), keep it down 5 s, start it again.
    PostgresStop,
    /// SIGKILL one gateway (about a third of the bots) and start it on the same port.
    GatewayKill,
    /// SIGTERM each engine, then each gateway, in turn: wait for its exit, start it
    /// again, wait until it serves.
    RollingRestart,
}

impl Fault {
    pub const ALL: [Fault; 5] = [
        Fault::EngineKill,
        Fault::RedisRestart,
        Fault::PostgresStop,
        Fault::GatewayKill,
        Fault::RollingRestart,
    ];

    /// How long the fault and the recovery usually take, in milliseconds: with
    /// [`PLAY_BESIDES_FAULT_MS`], how long the bots of its iteration play.
    fn typical_ms(self) -> u64 {
        match self {
            Fault::EngineKill | Fault::GatewayKill => 5_000,
            Fault::RedisRestart => 8_000,
            Fault::PostgresStop => POSTGRES_DOWN_MS + 5_000,
            Fault::RollingRestart => 30_000,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Fault::EngineKill => "engine-kill",
            Fault::RedisRestart => "redis-restart",
            Fault::PostgresStop => "postgres-stop",
            Fault::GatewayKill => "gateway-kill",
            Fault::RollingRestart => "rolling-restart",
        }
    }
}

/// Parses a fault's name, for `--faults`.
fn parse_fault(name: &str) -> Result<Fault, String> {
    Fault::ALL
        .into_iter()
        .find(|fault| fault.name() == name)
        .ok_or_else(|| {
            let names: Vec<&str> = Fault::ALL.iter().map(|fault| fault.name()).collect();
            format!("unknown fault {name:?}: choose from {}", names.join(", "))
        })
}

/// Options of `aloft-loadtest chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Faults injected in all (the list is cycled through).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=ITERATIONS_MAX))]
    pub iterations: u64,
    /// Faults to inject, in turn: engine-kill, redis-restart, postgres-stop, gateway-kill,
    /// rolling-restart (default: all).
    #[arg(long, value_delimiter = ',', value_parser = parse_fault)]
    pub faults: Vec<Fault>,
    /// Bots per iteration, spread over the gateways.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(3..=BOTS_MAX))]
    pub bots: u64,
    /// Directory for logs, data and the PostgreSQL instance (made by scripts/chaos).
    #[arg(long)]
    pub work_dir: PathBuf,
    /// The aloft binary under test.
    #[arg(long, default_value = "target/release/aloft")]
    pub aloft_binary: PathBuf,
    /// The roles' configuration file.
    #[arg(long, default_value = "config/cluster.toml")]
    pub role_config: PathBuf,
    /// Betting phase of every round, in milliseconds (short rounds: more faults per minute).
    #[arg(long, default_value_t = 2_000)]
    pub betting_duration_ms: u64,
    /// Pause after a crash, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub crashed_duration_ms: u64,
    /// Multiplier growth, in millionths per millisecond (300: five times Bustabit's).
    #[arg(long, default_value_t = 300)]
    pub growth_rate_per_ms_millionths: u64,
    /// Seed of the bots' choices (default: random, printed).
    #[arg(long)]
    pub seed: Option<u64>,
}

/// What one iteration found.
#[derive(Default)]
struct Outcome {
    /// The fault's own account: what was done, takeover or downtime.
    fault: String,
    /// Time from the fault to a healthy cluster, in milliseconds (`None`: not healthy).
    recovered_ms: Option<u128>,
    /// The bots' counts.
    bots: String,
    /// The bots' verification errors.
    bot_errors: FailureLog,
    /// The harness's failures (timeouts, a fault not completed) and the ledger findings.
    failures: Vec<String>,
}

impl Outcome {
    fn passed(&self) -> bool {
        self.failures.is_empty() && self.bot_errors.total() == 0
    }
}

/// Runs the suite; `Ok(true)` when every fault was survived.
pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    let faults = if args.faults.is_empty() {
        Fault::ALL.to_vec()
    } else {
        args.faults.clone()
    };
    crate::process::ensure_open_files(args.bots * 2)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    println!(
        "chaos: {} iterations of {}, {} bots, seed {seed}, work dir {}",
        args.iterations,
        faults
            .iter()
            .map(|fault| fault.name())
            .collect::<Vec<_>>()
            .join(","),
        args.bots,
        args.work_dir.display()
    );
    let setup = Setup {
        work_dir: args.work_dir.clone(),
        binary: args.aloft_binary.clone(),
        role_config: args.role_config.clone(),
        betting_duration_ms: args.betting_duration_ms,
        crashed_duration_ms: args.crashed_duration_ms,
        growth_rate_per_ms_millionths: args.growth_rate_per_ms_millionths,
    };
    let started = Instant::now();
    let mut cluster = Cluster::start(setup)
        .await
        .context("starting the cluster")?;
    println!("cluster up in {:.1} s", started.elapsed().as_secs_f64());
    let survived = tokio::select! {
        survived = iterate(&mut cluster, &args, &faults, seed) => survived,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    cluster.shutdown().await;
    let (survived, failed) = survived?;
    println!("{survived} faults survived, {failed} failed");
    Ok(failed == 0)
}

/// Resolves at Ctrl-C or SIGTERM.
async fn interrupted() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let terminated = async {
        match terminate.as_mut() {
            Some(signal) => signal.recv().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminated => {}
    }
}

/// The iterations; returns (survived, failed).
async fn iterate(
    cluster: &mut Cluster,
    args: &ChaosArgs,
    faults: &[Fault],
    seed: u64,
) -> anyhow::Result<(u64, u64)> {
    // Survived and failed per fault, each fault once even if `--faults` repeats it.
    let mut tally: Vec<(Fault, u64, u64)> = Vec::new();
    for number in 1..=args.iterations {
        let index = usize::try_from(number - 1).expect("iterations fit usize") % faults.len();
        let fault = faults[index];
        let iteration_seed = seed.wrapping_add(number);
        let began = Instant::now();
        let outcome = iteration(cluster, args, fault, number, iteration_seed).await;
        print_outcome(number, args.iterations, fault, &outcome);
        println!("    iteration took {:.1} s", began.elapsed().as_secs_f64());
        let position = match tally.iter().position(|entry| entry.0 == fault) {
            Some(position) => position,
            None => {
                tally.push((fault, 0, 0));
                tally.len() - 1
            }
        };
        if outcome.passed() {
            tally[position].1 += 1;
        } else {
            tally[position].2 += 1;
        }
        if let Some(problems) = cluster.unhealthy().await {
            // The next iteration cannot start from a broken cluster.
            cluster
                .wait_healthy(RECOVERY_TIMEOUT_MS)
                .await
                .with_context(|| {
                    format!("the cluster stayed broken after iteration {number}: {problems}")
                })?;
        }
    }
    for (fault, survived, failed) in &tally {
        println!(
            "  {:<16} {survived} survived, {failed} failed",
            fault.name()
        );
    }
    let survived = tally.iter().map(|entry| entry.1).sum();
    let failed = tally.iter().map(|entry| entry.2).sum();
    Ok((survived, failed))
}

/// One iteration: bots, the fault, recovery, a round, the checks.
async fn iteration(
    cluster: &mut Cluster,
    args: &ChaosArgs,
    fault: Fault,
    number: u64,
    seed: u64,
) -> Outcome {
    let stats = Arc::new(Stats::with_acked_bets(true));
    let mut outcome = Outcome::default();
    let generation = Generation {
        servers: cluster.gateway_addrs.clone(),
        room: ROOM.to_owned(),
        duration: Duration::from_millis(PLAY_BESIDES_FAULT_MS + fault.typical_ms()),
        reconnect_ms_max: Some(RECONNECT_TIMEOUT_MS),
        faults_expected: true,
        stats: stats.clone(),
    };
    let context = match generation.context().await {
        Ok(context) => Arc::new(context),
        Err(error) => {
            outcome
                .failures
                .push(format!("bots could not start: {error:#}"));
            return outcome;
        }
    };
    let players = args.bots;
    let bots = tokio::spawn({
        let context = context.clone();
        let sources = [Ipv4Addr::LOCALHOST];
        async move { bots::play(&context, players, RAMP_PER_SECOND, &sources, seed).await }
    });
    outcome.fault = "not injected".to_owned();
    let disturbed = disturb(cluster, &stats, players, fault, number, &mut outcome).await;
    if let Err(error) = disturbed {
        outcome.failures.push(format!("{error:#}"));
    } else if Instant::now() > context.end_at {
        let message = "the bots stopped playing before a round finished after the fault \
                       (a long warm-up): this iteration proves nothing";
        outcome.failures.push(message.to_owned());
    }
    let started = match bots.await {
        Ok(started) => started,
        Err(error) => {
            outcome
                .failures
                .push(format!("the bots' task failed: {error}"));
            0
        }
    };
    if started < players {
        let message = format!("only {started} of {players} bots started");
        outcome.failures.push(message);
    }
    outcome.bot_errors = stats.failures();
    outcome.bots = bots_line(&stats, started);
    match checks::read_ledger(&cluster.database_url).await {
        Ok(rows) => {
            let findings = checks::check(&rows, &stats.acked_bets(), ROOM);
            outcome.failures.extend(findings.messages);
        }
        Err(error) => outcome
            .failures
            .push(format!("reading the ledger: {error:#}")),
    }
    outcome
}

/// Waits until every bot is connected and a round flies, injects `fault`, waits for
/// health and a round finished in the ledger; notes the fault's account and the time to
/// health in `outcome`.
async fn disturb(
    cluster: &mut Cluster,
    stats: &Stats,
    players: u64,
    fault: Fault,
    number: u64,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    cluster::wait_for("every bot to connect", WARMUP_TIMEOUT_MS, || async {
        Stats::get(&stats.connected) >= players
    })
    .await?;
    let flying_before = stats.highest_flying_round();
    cluster::wait_for("the bots to see a round fly", WARMUP_TIMEOUT_MS, || async {
        stats.highest_flying_round() > flying_before
    })
    .await?;
    let delay_ms = rand::rng().random_range(0..=FAULT_DELAY_MS_MAX);
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let injected = Instant::now();
    let report = tokio::time::timeout(
        Duration::from_millis(FAULT_TIMEOUT_MS),
        inject(cluster, fault, number),
    )
    .await
    .with_context(|| format!("{} took more than {FAULT_TIMEOUT_MS} ms", fault.name()))??;
    outcome.fault = report;
    cluster.wait_healthy(RECOVERY_TIMEOUT_MS).await?;
    outcome.recovered_ms = Some(injected.elapsed().as_millis());
    let url = cluster.database_url.clone();
    let finished_before = checks::newest_finished_round(&url).await?;
    let what = "a round to finish in the ledger after the recovery";
    cluster::wait_for(what, ROUND_TIMEOUT_MS, || async {
        let finished = checks::newest_finished_round(&url).await;
        finished.is_ok_and(|finished| finished > finished_before)
    })
    .await
}

/// Injects `fault` and undoes it (restarts what it stopped); says what it did.
async fn inject(cluster: &mut Cluster, fault: Fault, number: u64) -> anyhow::Result<String> {
    match fault {
        Fault::EngineKill => kill_leader(cluster).await,
        Fault::RedisRestart => {
            let down = Instant::now();
            cluster.kill_redis().await?;
            cluster.start_redis().await?;
            let down_ms = down.elapsed().as_millis();
            let (engine, token) = cluster.wait_for_leader(RECOVERY_TIMEOUT_MS).await?;
            Ok(format!(
                "Redis down {down_ms} ms; {engine} led {} ms after the kill, fencing token {token}",
                down.elapsed().as_millis()
            ))
        }
        Fault::PostgresStop => {
            let down = Instant::now();
            cluster.stop_postgres().await?;
            tokio::time::sleep(Duration::from_millis(POSTGRES_DOWN_MS)).await;
            cluster.start_postgres().await?;
            Ok(format!("PostgreSQL down {} ms", down.elapsed().as_millis()))
        }
        Fault::GatewayKill => {
            let index = usize::try_from(number).expect("iteration fits usize") % GATEWAYS;
            let role = Role::Gateway(index);
            let down = Instant::now();
            cluster.kill_role(role).await?;
            cluster.start_role(role).await?;
            Ok(format!(
                "{} killed, serving again after {} ms",
                role.name(),
                down.elapsed().as_millis()
            ))
        }
        Fault::RollingRestart => rolling_restart(cluster).await,
    }
}

/// SIGKILLs the leader, measures the takeover, restarts the killed engine.
async fn kill_leader(cluster: &mut Cluster) -> anyhow::Result<String> {
    let (leader, token) = cluster.wait_for_leader(RECOVERY_TIMEOUT_MS).await?;
    let index = (0..ENGINES)
        .find(|index| Role::Engine(*index).name() == leader)
        .with_context(|| format!("the lease names {leader}, none of our engines"))?;
    let killed = Instant::now();
    cluster.kill_role(Role::Engine(index)).await?;
    let deadline = killed + Duration::from_millis(RECOVERY_TIMEOUT_MS);
    let (successor, new_token) = loop {
        if let Ok(Some((engine, new_token))) = cluster.leader().await
            && engine != leader
        {
            break (engine, new_token);
        }
        if Instant::now() >= deadline {
            bail!("no engine took over from {leader} within {RECOVERY_TIMEOUT_MS} ms");
        }
        tokio::time::sleep(Duration::from_millis(cluster::POLL_MS)).await;
    };
    let takeover_ms = killed.elapsed().as_millis();
    cluster.start_role(Role::Engine(index)).await?;
    Ok(format!(
        "killed {leader} (token {token}); {successor} took over in {takeover_ms} ms (token {new_token})"
    ))
}

/// SIGTERM, exit, start, serve: each engine, then each gateway.
async fn rolling_restart(cluster: &mut Cluster) -> anyhow::Result<String> {
    let mut account = String::new();
    let roles = (0..ENGINES)
        .map(Role::Engine)
        .chain((0..GATEWAYS).map(Role::Gateway));
    for role in roles {
        let stopping = Instant::now();
        cluster
            .terminate_role(role)
            .await
            .with_context(|| format!("stopping {}", role.name()))?;
        let stopped_ms = stopping.elapsed().as_millis();
        cluster.start_role(role).await?;
        if matches!(role, Role::Engine(_)) {
            cluster.wait_for_leader(RECOVERY_TIMEOUT_MS).await?;
        }
        let _ = write!(
            account,
            "{} exited in {stopped_ms} ms, back in {} ms; ",
            role.name(),
            stopping.elapsed().as_millis()
        );
    }
    Ok(account.trim_end_matches("; ").to_owned())
}

fn bots_line(stats: &Stats, started: u64) -> String {
    let get = Stats::get;
    format!(
        "{started} bots, {} bets acked, {} reconnects ({} resumed, {} snapshots), rejects {:?}",
        get(&stats.bets_acked),
        get(&stats.reconnects),
        get(&stats.resumes_recovered),
        get(&stats.resumes_snapshot),
        stats.rejects.lock().expect("rejects lock"),
    )
}

fn print_outcome(number: u64, iterations: u64, fault: Fault, outcome: &Outcome) {
    let verdict = if outcome.passed() { "PASS" } else { "FAIL" };
    let healthy = outcome.recovered_ms.map_or_else(
        || "not healthy again".to_owned(),
        |ms| format!("healthy {ms} ms after the fault"),
    );
    println!(
        "[{number}/{iterations}] {verdict} {}: {}; {healthy}",
        fault.name(),
        outcome.fault
    );
    println!("    bots: {}", outcome.bots);
    let errors = &outcome.bot_errors;
    if errors.total() > 0 {
        println!(
            "    bots' verification errors: {} {:?}",
            errors.total(),
            errors.by_check
        );
        for message in errors.first_messages.iter().take(BOT_MESSAGES_PRINTED_MAX) {
            println!("      {message}");
        }
    }
    for failure in &outcome.failures {
        println!("    - {failure}");
    }
    if outcome.passed() {
        println!(
            "    checks: every acked bet staked, none settled twice, no negative balance, \
             balances sum to 0, no bot verification error"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_named_on_the_command_line() {
        for fault in Fault::ALL {
            assert_eq!(parse_fault(fault.name()), Ok(fault));
        }
        let unknown = parse_fault("disk-full").unwrap_err();
        assert!(unknown.contains("engine-kill, redis-restart"), "{unknown}");
    }
}
