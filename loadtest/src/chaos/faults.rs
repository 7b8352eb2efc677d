//! The faults the suite injects: what each does to the cluster, how it is undone and
//! the account it gives of itself. `engine-kill` may kill the leading engine several
//! times in a row (`--failovers-per-iteration`); each kill is waited out — the standby
//! takes the lease, a round flies or crashes under it, the killed engine comes back as
//! the new standby — before the next, and counted as a survived failover only then.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use strum::IntoEnumIterator;
use tokio::time::Instant;

use super::cluster::{Cluster, ENGINES, GATEWAYS, Role};
use super::probes::{POLL_MS, wait_for};
use crate::report::stats::Stats;

/// How long PostgreSQL stays down in `postgres-stop`, in milliseconds.
pub const POSTGRES_DOWN_MS: u64 = 5_000;
/// Longest wait for an engine to lead the room (after a kill: another engine than the
/// killed one), in milliseconds.
pub const LEADER_TIMEOUT_MS: u64 = 30_000;
/// Longest wait, after a takeover, for the bots to see a round fly or crash under the
/// new leader, in milliseconds (a round's betting phase and a flight).
const FAILOVER_ROUND_TIMEOUT_MS: u64 = 30_000;
/// Most kills of the leading engine in one `engine-kill` iteration.
pub const FAILOVERS_PER_ITERATION_MAX: u64 = 100;

/// A fault the suite injects; named on the command line in kebab case (`engine-kill`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, strum::EnumString, strum::IntoStaticStr, strum::EnumIter,
)]
#[strum(serialize_all = "kebab-case")]
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
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// How long one injection and its recovery usually take, in milliseconds (for
    /// `engine-kill`: one failover, a round under the new leader included).
    pub fn typical_ms(self) -> u64 {
        match self {
            // A takeover (~2.5 s, the lease's TTL) and up to a round's betting phase.
            Fault::EngineKill | Fault::GatewayKill => 5_000,
            Fault::RedisRestart => 8_000,
            Fault::PostgresStop => POSTGRES_DOWN_MS + 5_000,
            Fault::RollingRestart => 30_000,
        }
    }
}

/// Parses a fault's name, for `--faults`; the error lists the valid names.
pub fn parse_fault(name: &str) -> Result<Fault, String> {
    name.parse().map_err(|_| {
        let names: Vec<&str> = Fault::iter().map(Fault::name).collect();
        format!("unknown fault {name:?}: choose from {}", names.join(", "))
    })
}

/// The survived failovers of an iteration: each kill of the leader followed by a
/// takeover, a round under the new leader and the killed engine back as standby.
#[derive(Debug, Default)]
pub struct Failovers {
    /// Kill to the standby's lease, in milliseconds, one per survived failover.
    pub takeovers_ms: Vec<u128>,
}

impl Failovers {
    pub fn survived(&self) -> u64 {
        u64::try_from(self.takeovers_ms.len()).expect("failovers fit u64")
    }
}

/// One survived failover.
struct Takeover {
    killed: String,
    token: u64,
    successor: String,
    successor_token: u64,
    takeover_ms: u128,
}

/// What an injection is given: the iteration's number (which gateway `gateway-kill`
/// kills), how many times `engine-kill` kills, and the bots' view of the rounds.
pub struct Injection<'a> {
    pub number: u64,
    pub kills: u64,
    pub stats: &'a Stats,
}

/// Injects `fault` and undoes it (restarts what it stopped); says what it did. Survived
/// failovers are added to `failovers` as they happen, so a failed one keeps the count.
pub async fn inject(
    cluster: &mut Cluster,
    fault: Fault,
    injection: &Injection<'_>,
    failovers: &mut Failovers,
) -> anyhow::Result<String> {
    match fault {
        Fault::EngineKill => kill_leaders(cluster, injection, failovers).await,
        Fault::RedisRestart => {
            let down = Instant::now();
            cluster.kill_redis().await?;
            cluster.start_redis().await?;
            let down_ms = down.elapsed().as_millis();
            let (engine, token) = cluster.wait_for_leader(LEADER_TIMEOUT_MS).await?;
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
            let index = usize::try_from(injection.number).expect("iteration fits usize") % GATEWAYS;
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

/// `injection.kills` failovers in a row; the account of each, or of all in short.
async fn kill_leaders(
    cluster: &mut Cluster,
    injection: &Injection<'_>,
    failovers: &mut Failovers,
) -> anyhow::Result<String> {
    let kills = injection.kills;
    let mut first_token = None;
    let mut last = None;
    for kill in 1..=kills {
        let takeover = fail_over(cluster, injection.stats)
            .await
            .with_context(|| format!("failover {kill} of {kills}"))?;
        failovers.takeovers_ms.push(takeover.takeover_ms);
        first_token.get_or_insert(takeover.token);
        last = Some(takeover);
    }
    let (Some(first_token), Some(takeover)) = (first_token, last) else {
        bail!("no kill asked for");
    };
    if kills == 1 {
        return Ok(format!(
            "killed {} (token {}); {} took over in {} ms (token {})",
            takeover.killed,
            takeover.token,
            takeover.successor,
            takeover.takeover_ms,
            takeover.successor_token
        ));
    }
    let times: Vec<String> = (failovers.takeovers_ms.iter())
        .map(u128::to_string)
        .collect();
    Ok(format!(
        "{kills} kills of the leader, taken over in {} ms; fencing tokens {first_token} → {}",
        times.join(", "),
        takeover.successor_token
    ))
}

/// One failover: SIGKILL the leader, wait for another engine's lease and for a round to
/// fly or crash under it, start the killed engine again as the standby.
async fn fail_over(cluster: &mut Cluster, stats: &Stats) -> anyhow::Result<Takeover> {
    let (killed, token) = cluster.wait_for_leader(LEADER_TIMEOUT_MS).await?;
    let index = (0..ENGINES)
        .find(|index| Role::Engine(*index).name() == killed)
        .with_context(|| format!("the lease names {killed}, none of our engines"))?;
    let killed_at = Instant::now();
    cluster.kill_role(Role::Engine(index)).await?;
    let (successor, successor_token) = wait_for_successor(cluster, &killed).await?;
    let takeover_ms = killed_at.elapsed().as_millis();
    let (flying, crashed) = (stats.highest_flying_round(), stats.highest_crashed_round());
    let what = format!("a round to fly or crash under {successor}");
    wait_for(&what, FAILOVER_ROUND_TIMEOUT_MS, || async {
        stats.highest_flying_round() > flying || stats.highest_crashed_round() > crashed
    })
    .await?;
    cluster.start_role(Role::Engine(index)).await?;
    Ok(Takeover {
        killed,
        token,
        successor,
        successor_token,
        takeover_ms,
    })
}

/// Waits until an engine other than `killed` holds the lease; returns it and its token.
async fn wait_for_successor(cluster: &Cluster, killed: &str) -> anyhow::Result<(String, u64)> {
    let deadline = Instant::now() + Duration::from_millis(LEADER_TIMEOUT_MS);
    loop {
        if let Ok(Some((engine, token))) = cluster.leader().await
            && engine != killed
        {
            return Ok((engine, token));
        }
        if Instant::now() >= deadline {
            bail!("no engine took over from {killed} within {LEADER_TIMEOUT_MS} ms");
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
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
            cluster.wait_for_leader(LEADER_TIMEOUT_MS).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_named_on_the_command_line() {
        for fault in Fault::iter() {
            assert_eq!(parse_fault(fault.name()), Ok(fault));
        }
        assert_eq!(parse_fault("engine-kill"), Ok(Fault::EngineKill));
        let unknown = parse_fault("disk-full").unwrap_err();
        assert!(
            unknown.contains(
                "engine-kill, redis-restart, postgres-stop, gateway-kill, rolling-restart"
            ),
            "{unknown}"
        );
    }
}
