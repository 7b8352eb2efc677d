//! The `chaos` subcommand: the fault suite. It starts a cluster of its own
//! (`cluster`, polled through `probes`), and in each iteration plays a generation of
//! verifying bots spread over the gateways, injects one fault while a round flies
//! (`faults`; `engine-kill` possibly several kills in a row), waits until the cluster is
//! healthy and a round has crashed after it, lets the bots settle, and checks what the
//! bots saw and what the ledger holds (`checks`). Faults run in the order given, over
//! and over, `--iterations` in all. Bounded: each wait has a named timeout, the bots play
//! a fixed time per fault (per kill).

mod checks;
mod cluster;
mod faults;
mod probes;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::Rng;
use strum::IntoEnumIterator;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::bots::bot::RunContext;
use crate::bots::{self, Generation};
use crate::report::stats::{FailureLog, Stats};
use crate::report::summary::Unavailable;
use cluster::{Cluster, ROOM, Setup};
use faults::{FAILOVERS_PER_ITERATION_MAX, Failovers, Fault, Injection, parse_fault};

/// Most iterations of one run.
const ITERATIONS_MAX: u64 = 100_000;
/// Most bots per iteration.
const BOTS_MAX: u64 = 5_000;
/// Longest wait for the bots to see a round fly before the fault, in milliseconds.
const WARMUP_TIMEOUT_MS: u64 = 20_000;
/// Longest time a fault may take to be injected and undone (a rolling restart of five
/// processes takes the longest; `engine-kill` gets it once per kill), in milliseconds.
const FAULT_TIMEOUT_MS: u64 = 60_000;
/// Longest wait, after the fault, for the cluster to be healthy again, in milliseconds.
const RECOVERY_TIMEOUT_MS: u64 = 30_000;
/// Longest wait, once healthy, for a round to crash, in milliseconds.
const ROUND_TIMEOUT_MS: u64 = 30_000;
/// Longest time a bot may take to open a connection again after losing one, in
/// milliseconds.
const RECONNECT_TIMEOUT_MS: u64 = 30_000;
/// Latest the fault comes after a `flying` was seen, in milliseconds.
const FAULT_DELAY_MS_MAX: u64 = 1_000;
/// Bot play besides the fault: the warm-up until a round flies and a round after the
/// recovery, in milliseconds (rounds of the default timing take 3-8 s, a few 15 s).
const PLAY_BESIDES_FAULT_MS: u64 = 20_000;
/// New bot connections per second.
const RAMP_PER_SECOND: u64 = 200;
/// Bots' verification messages printed per failed iteration (all are counted).
const BOT_MESSAGES_PRINTED_MAX: usize = 5;

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
    /// Kills of the leading engine in each `engine-kill` iteration, one after the other
    /// (each waited out: takeover, a round under the new leader, the killed engine back
    /// as standby); the checks run once after the last. Other faults ignore it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=FAILOVERS_PER_ITERATION_MAX))]
    pub failovers_per_iteration: u64,
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
    /// `engine-kill`: the kills followed by a healthy takeover.
    failovers: Failovers,
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

/// Iterations passed and failed of one fault, and the failovers survived in them.
struct Tally {
    fault: Fault,
    passed: u64,
    failed: u64,
    failovers_survived: u64,
}

impl Tally {
    /// `engine-kill 3 iterations, 30 failovers survived, 0 failed`, or `gateway-kill 2
    /// survived, 0 failed`.
    fn line(&self) -> String {
        let name = self.fault.name();
        if self.fault != Fault::EngineKill {
            return format!("{name} {} survived, {} failed", self.passed, self.failed);
        }
        format!(
            "{name} {}, {} survived, {} failed",
            counted(self.passed + self.failed, "iteration"),
            counted(self.failovers_survived, "failover"),
            self.failed
        )
    }
}

/// `1 failover`, `30 failovers`.
fn counted(count: u64, noun: &str) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {noun}{plural}")
}

/// Runs the suite; `Ok(true)` when every fault was survived.
pub async fn run(args: ChaosArgs) -> anyhow::Result<bool> {
    let faults = if args.faults.is_empty() {
        Fault::iter().collect()
    } else {
        args.faults.clone()
    };
    crate::process::ensure_open_files(args.bots * 2)?;
    let seed = args.seed.unwrap_or_else(rand::random);
    let names: Vec<&str> = faults.iter().map(|fault| fault.name()).collect();
    println!(
        "chaos: {} iterations of {}, {} bots, {} failovers per engine-kill, seed {seed}, work dir {}",
        args.iterations,
        names.join(","),
        args.bots,
        args.failovers_per_iteration,
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
    let tallies = tokio::select! {
        tallies = iterate(&mut cluster, &args, &faults, seed) => tallies,
        () = interrupted() => Err(anyhow::anyhow!("interrupted")),
    };
    cluster.shutdown().await;
    let tallies = tallies?;
    for tally in &tallies {
        println!("  {}", tally.line());
    }
    let survived: u64 = tallies.iter().map(|tally| tally.passed).sum();
    let failed: u64 = tallies.iter().map(|tally| tally.failed).sum();
    println!(
        "{survived} faults survived, {failed} failed, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
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

/// The iterations; returns the tally of each fault (once even if `--faults` repeats it).
async fn iterate(
    cluster: &mut Cluster,
    args: &ChaosArgs,
    faults: &[Fault],
    seed: u64,
) -> anyhow::Result<Vec<Tally>> {
    let mut tallies: Vec<Tally> = Vec::new();
    for number in 1..=args.iterations {
        let index = usize::try_from(number - 1).expect("iterations fit usize") % faults.len();
        let fault = faults[index];
        let began = Instant::now();
        let outcome = iteration(cluster, args, fault, number, seed.wrapping_add(number)).await;
        print_outcome(number, args.iterations, fault, &outcome);
        println!("    iteration took {:.1} s", began.elapsed().as_secs_f64());
        let position = match tallies.iter().position(|tally| tally.fault == fault) {
            Some(position) => position,
            None => {
                tallies.push(Tally {
                    fault,
                    passed: 0,
                    failed: 0,
                    failovers_survived: 0,
                });
                tallies.len() - 1
            }
        };
        let tally = &mut tallies[position];
        tally.failovers_survived += outcome.failovers.survived();
        if outcome.passed() {
            tally.passed += 1;
        } else {
            tally.failed += 1;
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
    Ok(tallies)
}

/// How many times `fault` strikes in one iteration.
fn kills_of(fault: Fault, args: &ChaosArgs) -> u64 {
    match fault {
        Fault::EngineKill => args.failovers_per_iteration,
        _ => 1,
    }
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
    let kills = kills_of(fault, args);
    let play_ms = PLAY_BESIDES_FAULT_MS + fault.typical_ms() * kills;
    let context = match bot_context(cluster, play_ms, &stats).await {
        Ok(context) => context,
        Err(error) => {
            outcome
                .failures
                .push(format!("bots could not start: {error:#}"));
            return outcome;
        }
    };
    let bots = start_bots(&context, args.bots, seed);
    outcome.fault = "not injected".to_owned();
    let injection = Injection {
        number,
        kills,
        stats: &stats,
    };
    let disturbed = disturb(cluster, args.bots, fault, &injection, &mut outcome).await;
    if let Err(error) = disturbed {
        outcome.failures.push(format!("{error:#}"));
    } else if Instant::now() > context.end_at {
        let message = "the bots stopped playing before a round finished after the fault \
                       (a long warm-up): this iteration proves nothing";
        outcome.failures.push(message.to_owned());
    }
    let started = finish_bots(bots, args.bots, &mut outcome).await;
    outcome.bot_errors = stats.failures();
    outcome.bots = bots_line(&stats, started);
    check_ledger(&cluster.database_url, &stats, &mut outcome).await;
    outcome
}

/// What a generation of bots playing `play_ms` on the cluster's gateways shares.
async fn bot_context(
    cluster: &Cluster,
    play_ms: u64,
    stats: &Arc<Stats>,
) -> anyhow::Result<Arc<RunContext>> {
    let generation = Generation {
        servers: cluster.gateway_addrs.clone(),
        room: ROOM.to_owned(),
        duration: Duration::from_millis(play_ms),
        reconnect_ms_max: Some(RECONNECT_TIMEOUT_MS),
        faults_expected: true,
        stats: stats.clone(),
    };
    Ok(Arc::new(generation.context().await?))
}

/// Starts `players` bots in a task of their own; it returns how many started.
fn start_bots(context: &Arc<RunContext>, players: u64, seed: u64) -> JoinHandle<u64> {
    let context = context.clone();
    let sources = [Ipv4Addr::LOCALHOST];
    tokio::spawn(
        async move { bots::play(&context, players, RAMP_PER_SECOND, &sources, seed).await },
    )
}

/// Waits for the bots' task to end; notes a failed task or bots that never started.
async fn finish_bots(bots: JoinHandle<u64>, players: u64, outcome: &mut Outcome) -> u64 {
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
    started
}

/// Reads the ledger and notes what its checks find against the bets the bots saw acked.
async fn check_ledger(database_url: &str, stats: &Stats, outcome: &mut Outcome) {
    match checks::read_ledger(database_url).await {
        Ok(rows) => {
            let findings = checks::check(&rows, &stats.acked_bets(), ROOM);
            outcome.failures.extend(findings.messages);
        }
        Err(error) => outcome
            .failures
            .push(format!("reading the ledger: {error:#}")),
    }
}

/// Waits until every bot is connected and a round flies, injects `fault`, waits for
/// health and a round finished in the ledger; notes the fault's account, the failovers
/// survived and the time to health in `outcome`.
async fn disturb(
    cluster: &mut Cluster,
    players: u64,
    fault: Fault,
    injection: &Injection<'_>,
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    let stats = injection.stats;
    probes::wait_for("every bot to connect", WARMUP_TIMEOUT_MS, || async {
        Stats::get(&stats.connected) >= players
    })
    .await?;
    let flying_before = stats.highest_flying_round();
    probes::wait_for("the bots to see a round fly", WARMUP_TIMEOUT_MS, || async {
        stats.highest_flying_round() > flying_before
    })
    .await?;
    let delay_ms = rand::rng().random_range(0..=FAULT_DELAY_MS_MAX);
    tokio::time::sleep(Duration::from_millis(delay_ms)).await;
    let injected = Instant::now();
    let timeout_ms = FAULT_TIMEOUT_MS * injection.kills;
    let injecting = faults::inject(cluster, fault, injection, &mut outcome.failovers);
    outcome.fault = tokio::time::timeout(Duration::from_millis(timeout_ms), injecting)
        .await
        .with_context(|| format!("{} took more than {timeout_ms} ms", fault.name()))??;
    cluster.wait_healthy(RECOVERY_TIMEOUT_MS).await?;
    outcome.recovered_ms = Some(injected.elapsed().as_millis());
    let url = cluster.database_url.clone();
    let finished_before = checks::newest_finished_round(&url).await?;
    let what = "a round to finish in the ledger after the recovery";
    probes::wait_for(what, ROUND_TIMEOUT_MS, || async {
        let finished = checks::newest_finished_round(&url).await;
        finished.is_ok_and(|finished| finished > finished_before)
    })
    .await
}

fn bots_line(stats: &Stats, started: u64) -> String {
    let get = Stats::get;
    format!(
        "{started} bots, {} bets acked, {} reconnects ({} resumed, {} snapshots), \
         unavailable {}, rejects {:?}",
        get(&stats.bets_acked),
        get(&stats.reconnects),
        get(&stats.resumes_recovered),
        get(&stats.resumes_snapshot),
        Unavailable::of(stats),
        stats.rejects.lock().expect("rejects lock"),
    )
}

fn print_outcome(number: u64, iterations: u64, fault: Fault, outcome: &Outcome) {
    let verdict = if outcome.passed() { "PASS" } else { "FAIL" };
    let healthy = outcome.recovered_ms.map_or_else(
        || "not healthy again".to_owned(),
        |ms| format!("healthy {ms} ms after the fault began"),
    );
    let failovers = if fault == Fault::EngineKill {
        format!(
            "{} survived; ",
            counted(outcome.failovers.survived(), "failover")
        )
    } else {
        String::new()
    };
    println!(
        "[{number}/{iterations}] {verdict} {}: {failovers}{}; {healthy}",
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
    fn the_tally_line_counts_in_words() {
        let one = Tally {
            fault: Fault::EngineKill,
            passed: 1,
            failed: 0,
            failovers_survived: 1,
        };
        assert_eq!(
            one.line(),
            "engine-kill 1 iteration, 1 failover survived, 0 failed"
        );
        let many = Tally {
            passed: 2,
            failed: 1,
            failovers_survived: 30,
            ..one
        };
        assert_eq!(
            many.line(),
            "engine-kill 3 iterations, 30 failovers survived, 1 failed"
        );
        let other = Tally {
            fault: Fault::GatewayKill,
            ..many
        };
        assert_eq!(other.line(), "gateway-kill 2 survived, 1 failed");
    }
}
