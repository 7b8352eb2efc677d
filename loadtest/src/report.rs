//! The outcome of a run: ack-latency percentiles from the histogram, ratios, the
//! summary table printed at the end and the JSON report written with `--report`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::process::Usage;
use crate::stats::{FailureLog, Stats};

/// Microseconds per millisecond.
const US_PER_MS: f64 = 1_000.0;
/// Bytes per MiB.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// Ack latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    /// `p50 / p90 / p99 / max ms`, as the summary table shows it.
    pub fn percentiles_ms(&self) -> String {
        format!(
            "{:.2} / {:.2} / {:.2} / {:.2} ms",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms
        )
    }
}

/// The value at `quantile` (0.0 ..= 1.0) of a histogram recorded in microseconds, in
/// milliseconds; 0 when empty.
pub fn quantile_ms(histogram_us: &Histogram<u64>, quantile: f64) -> f64 {
    if histogram_us.is_empty() {
        return 0.0;
    }
    histogram_us.value_at_quantile(quantile) as f64 / US_PER_MS
}

/// Percentiles of a histogram recorded in microseconds, in milliseconds.
pub fn latency_summary(histogram_us: &Histogram<u64>) -> LatencySummary {
    let ms = |value_us: u64| value_us as f64 / US_PER_MS;
    if histogram_us.is_empty() {
        return LatencySummary {
            count: 0,
            p50_ms: 0.0,
            p90_ms: 0.0,
            p99_ms: 0.0,
            max_ms: 0.0,
        };
    }
    LatencySummary {
        count: histogram_us.len(),
        p50_ms: quantile_ms(histogram_us, 0.50),
        p90_ms: quantile_ms(histogram_us, 0.90),
        p99_ms: quantile_ms(histogram_us, 0.99),
        max_ms: ms(histogram_us.max()),
    }
}

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

    /// The summary table printed at the end of a run.
    pub fn summary_table(&self) -> String {
        let latency = &self.ack_latency;
        let mut rows: Vec<(String, String)> = vec![
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
            (
                "bets sent / acked".into(),
                format!(
                    "{} / {} ({})",
                    self.bets.sent,
                    self.bets.acked,
                    percent(self.bets.acked, self.bets.sent)
                ),
            ),
            (
                "cashouts sent / acked".into(),
                format!(
                    "{} / {} ({})",
                    self.cashouts.sent,
                    self.cashouts.acked,
                    percent(self.cashouts.acked, self.cashouts.sent)
                ),
            ),
            (
                "ack latency p50/p90/p99/max".into(),
                latency.percentiles_ms(),
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
                    percent(
                        self.ticks_conflated,
                        self.frames_received + self.ticks_conflated
                    )
                ),
            ),
            (
                "final reconnects retried (503)".into(),
                self.final_reconnect_retries.to_string(),
            ),
            (
                "generator CPU".into(),
                format!(
                    "{:.2} s ({:.2} cores)",
                    self.load_generator.cpu_seconds, self.load_generator.cpu_cores_busy
                ),
            ),
            (
                "generator RSS now / peak".into(),
                format!(
                    "{:.1} / {:.1} MiB",
                    self.load_generator.rss_mib, self.load_generator.peak_rss_mib
                ),
            ),
        ];
        rows.extend(
            self.rejects
                .iter()
                .map(|(code, count)| (format!("reject {code}"), count.to_string())),
        );
        rows.push(("verification errors".into(), self.errors_total.to_string()));
        rows.extend(
            self.errors_by_kind
                .iter()
                .map(|(kind, count)| (format!("  {kind}"), count.to_string())),
        );
        let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut table: String = rows
            .iter()
            .map(|(name, value)| format!("{name:<width$}  {value}\n"))
            .collect();
        for message in &self.first_errors {
            table.push_str(&format!("  ! {message}\n"));
        }
        table.push_str(if self.passed() { "PASS\n" } else { "FAIL\n" });
        table
    }
}

/// Writes any report as pretty JSON (with a final newline) to `path`.
pub fn write_json(path: &Path, report: &impl Serialize) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(report).context("encoding the report")?;
    std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_read_in_milliseconds() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for latency_ms in 1..=1000u64 {
            histogram.record(latency_ms * 1_000).unwrap();
        }
        let summary = latency_summary(&histogram);
        assert_eq!(summary.count, 1000);
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002;
        assert!(close(summary.p50_ms, 500.0), "p50 {}", summary.p50_ms);
        assert!(close(summary.p90_ms, 900.0), "p90 {}", summary.p90_ms);
        assert!(close(summary.p99_ms, 990.0), "p99 {}", summary.p99_ms);
        assert!(close(summary.max_ms, 1000.0), "max {}", summary.max_ms);
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        assert_eq!(latency_summary(&histogram).count, 0);
        assert_eq!(latency_summary(&histogram).p99_ms, 0.0);
    }

    #[test]
    fn percent_formats_two_decimals() {
        assert_eq!(percent(1, 3), "33.33%");
        assert_eq!(percent(200, 200), "100.00%");
        assert_eq!(percent(0, 5), "0.00%");
        assert_eq!(percent(5, 0), "n/a");
    }
}
