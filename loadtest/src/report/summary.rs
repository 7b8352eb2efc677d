//! The outcome of a `bots` run: the counts, ratios and percentiles of the shared
//! stats, the summary table printed at the end and the JSON report written with
//! `--report`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::process::Usage;
use crate::report::latency::{LatencySummary, latency_summary};
use crate::report::stats::{FailureLog, Stats};
use crate::report::table;
/// Bytes per MiB.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// `part / whole` as a percentage with two decimals, or `n/a` when `whole` is zero.
pub fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "n/a".to_owned();
    }
    format!("{:.2}%", part as f64 * 100.0 / whole as f64)
}

/// Sent and acknowledged requests of one kind.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Requests {
    pub sent: u64,
    pub acked: u64,
}

/// What the bots did with `unavailable` answers.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Unavailable {
    pub answers: u64,
    pub retried: u64,
    pub outcomes_unknown: u64,
}

impl Unavailable {
    pub fn of(stats: &Stats) -> Unavailable {
        Unavailable {
            answers: Stats::get(&stats.unavailable_answers),
            retried: Stats::get(&stats.unavailable_retries),
            outcomes_unknown: Stats::get(&stats.outcomes_unknown),
        }
    }
}

impl std::fmt::Display for Unavailable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({} retried, {} outcomes left unknown)",
            self.answers, self.retried, self.outcomes_unknown
        )
    }
}

/// The load generator's own resource use.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GeneratorUsage {
    pub cpu_seconds: f64,
    /// CPU seconds per wall second of the run (1.0 = one core busy).
    pub cpu_cores_busy: f64,
    pub rss_mib: f64,
    pub peak_rss_mib: f64,
}

/// The JSON report of a `bots` run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub url: String,
    pub room: String,
    pub seed: u64,
    pub players: u64,
    pub players_started: u64,
    pub duration_seconds: f64,
    pub wall_seconds: f64,
    pub connections_ok: u64,
    pub connections_failed: u64,
    pub rounds_seen: u64,
    pub bets: Requests,
    pub cashouts: Requests,
    pub ack_latency: LatencySummary,
    /// Engine tick time (`at`) to the bot reading the tick.
    pub tick_lag: LatencySummary,
    pub frames_received: u64,
    /// Ticks skipped by the server for slow sockets (conflation, allowed), summed over
    /// the bots.
    pub ticks_conflated: u64,
    /// Final reconnections refused with 503 and tried again.
    pub final_reconnect_retries: u64,
    /// `unavailable` answers (runs with faults), the requests sent again after one, and
    /// the outcomes left unknown.
    pub unavailable: Unavailable,
    /// Rejections by `request:code`; expected ones (too late, wrong phase) included.
    pub rejects: BTreeMap<String, u64>,
    pub errors_total: u64,
    pub errors_by_kind: BTreeMap<&'static str, u64>,
    pub first_errors: Vec<String>,
    pub load_generator: GeneratorUsage,
}

/// What the run knew besides the shared stats.
pub struct RunFacts {
    pub url: String,
    pub room: String,
    pub seed: u64,
    pub players: u64,
    pub players_started: u64,
    pub duration_seconds: f64,
    pub wall_seconds: f64,
    pub usage: Usage,
}

impl Report {
    pub fn new(facts: RunFacts, stats: &Stats) -> Report {
        let failures: FailureLog = stats.failures();
        let ack_latency = latency_summary(&stats.ack_latency_us.lock().expect("histogram lock"));
        let tick_lag = latency_summary(&stats.tick_lag_us.lock().expect("histogram lock"));
        let usage = facts.usage;
        Report {
            url: facts.url,
            room: facts.room,
            seed: facts.seed,
            players: facts.players,
            players_started: facts.players_started,
            duration_seconds: facts.duration_seconds,
            wall_seconds: facts.wall_seconds,
            connections_ok: Stats::get(&stats.connections_ok),
            connections_failed: Stats::get(&stats.connections_failed),
            rounds_seen: Stats::get(&stats.rounds_seen),
            bets: Requests {
                sent: Stats::get(&stats.bets_sent),
                acked: Stats::get(&stats.bets_acked),
            },
            cashouts: Requests {
                sent: Stats::get(&stats.cashouts_sent),
                acked: Stats::get(&stats.cashouts_acked),
            },
            ack_latency,
            tick_lag,
            frames_received: Stats::get(&stats.frames_received),
            ticks_conflated: Stats::get(&stats.ticks_conflated),
            final_reconnect_retries: Stats::get(&stats.final_reconnect_retries),
            unavailable: Unavailable::of(stats),
            rejects: stats.rejects.lock().expect("rejects lock").clone(),
            errors_total: failures.total(),
            errors_by_kind: failures.by_check,
            first_errors: failures.first_messages,
            load_generator: GeneratorUsage {
                cpu_seconds: usage.cpu_seconds,
                cpu_cores_busy: if facts.wall_seconds > 0.0 {
                    usage.cpu_seconds / facts.wall_seconds
                } else {
                    0.0
                },
                rss_mib: usage.rss_bytes as f64 / BYTES_PER_MIB,
                peak_rss_mib: usage.peak_rss_bytes as f64 / BYTES_PER_MIB,
            },
        }
    }

    /// A run passes when every bot connected and no check failed.
    pub fn passed(&self) -> bool {
        self.errors_total == 0 && self.connections_failed == 0
    }

    /// The summary table printed at the end of a run, then the first failures and the
    /// verdict.
    pub fn summary_table(&self) -> String {
        let mut rows = self.run_rows();
        rows.extend(self.traffic_rows());
        rows.extend(self.generator_rows());
        rows.extend(
            (self.rejects.iter())
                .map(|(code, count)| (format!("reject {code}"), count.to_string())),
        );
        rows.push(("verification errors".into(), self.errors_total.to_string()));
        rows.extend(
            (self.errors_by_kind.iter())
                .map(|(kind, count)| (format!("  {kind}"), count.to_string())),
        );
        let mut table = table::key_values(rows);
        for message in &self.first_errors {
            table.push_str(&format!("  ! {message}\n"));
        }
        table.push_str(if self.passed() { "PASS\n" } else { "FAIL\n" });
        table
    }

    /// The rows about the run itself: players, time, connections, rounds.
    fn run_rows(&self) -> Vec<(String, String)> {
        vec![
            (
                "players (started)".into(),
                format!("{} ({})", self.players, self.players_started),
            ),
            (
                "duration / wall".into(),
                format!(
                    "{:.1} s / {:.1} s",
                    self.duration_seconds, self.wall_seconds
                ),
            ),
            (
                "connections ok / failed".into(),
                format!("{} / {}", self.connections_ok, self.connections_failed),
            ),
            ("rounds seen".into(), self.rounds_seen.to_string()),
        ]
    }

    /// The load generator's own CPU and memory.
    fn generator_rows(&self) -> Vec<(String, String)> {
        let generator = &self.load_generator;
        vec![
            (
                "generator CPU".into(),
                format!(
                    "{:.2} s ({:.2} cores)",
                    generator.cpu_seconds, generator.cpu_cores_busy
                ),
            ),
            (
                "generator RSS now / peak".into(),
                format!(
                    "{:.1} / {:.1} MiB",
                    generator.rss_mib, generator.peak_rss_mib
                ),
            ),
        ]
    }

    /// The rows about what went over the sockets: requests, latencies, frames.
    fn traffic_rows(&self) -> Vec<(String, String)> {
        let requests = |requests: &Requests| {
            let acked = percent(requests.acked, requests.sent);
            format!("{} / {} ({acked})", requests.sent, requests.acked)
        };
        let frames_offered = self.frames_received + self.ticks_conflated;
        vec![
            ("bets sent / acked".into(), requests(&self.bets)),
            ("cashouts sent / acked".into(), requests(&self.cashouts)),
            (
                "ack latency p50/p90/p99/max".into(),
                self.ack_latency.percentiles_ms(),
            ),
            (
                "tick lag p50/p90/p99/max".into(),
                self.tick_lag.percentiles_ms(),
            ),
            ("frames received".into(), self.frames_received.to_string()),
            (
                "ticks conflated (allowed)".into(),
                format!(
                    "{} ({} of frames)",
                    self.ticks_conflated,
                    percent(self.ticks_conflated, frames_offered)
                ),
            ),
            (
                "final reconnects retried (503)".into(),
                self.final_reconnect_retries.to_string(),
            ),
            ("unavailable answers".into(), self.unavailable.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_formats_two_decimals() {
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(200, 200), "100.00%");
        assert_eq!(percent(0, 5), "0.00%");
        assert_eq!(percent(5, 0), "n/a");
    }
}
