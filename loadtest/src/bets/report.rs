//! What a `bets` run reports: counts, throughput, ack latency, the ledger check, the
//! generator's own use; the summary printed at the end and the JSON written with
//! `--report`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::bets::player::Merged;
use crate::bets::rates::{Rates, betting_rates};
use crate::bets::reconcile::{LISTED_MAX, Reconciliation};
use crate::report::latency::{LatencySummary, latency_summary};
use crate::report::stats::Stats;
use crate::report::summary::GeneratorUsage;
use crate::report::table;

/// Bytes per MiB.
const BYTES_PER_MIB: f64 = 1024.0 * 1024.0;

/// What the run knew besides what the players saw.
pub struct RunFacts {
    pub url: String,
    pub room: String,
    pub players: u64,
    pub duration: Duration,
    /// The end of the betting time, unix microseconds: clips the last window.
    pub run_end_us: u64,
    pub wall_seconds: f64,
}

/// The JSON report of a `bets` run.
#[derive(Debug, Serialize)]
pub struct BetsReport {
    pub url: String,
    pub room: String,
    pub players: u64,
    pub connections_ok: u64,
    pub connections_failed: u64,
    pub duration_seconds: f64,
    pub wall_seconds: f64,
    pub bets_sent: u64,
    pub bet_ok: u64,
    /// `bet_err` replies by code.
    pub bet_err: BTreeMap<String, u64>,
    /// Bets still unanswered at the end of the drain.
    pub unanswered: u64,
    pub rates: Rates,
    pub ack_latency: LatencySummary,
    pub errors_total: u64,
    pub first_errors: Vec<String>,
    /// The ledger check, when a data directory was known.
    pub ledger: Option<Reconciliation>,
    pub load_generator: GeneratorUsage,
}

impl BetsReport {
    /// Passes when bets were acked, nothing failed and the ledger (if checked) matched.
    pub fn passed(&self) -> bool {
        self.bet_ok > 0
            && self.errors_total == 0
            && self
                .ledger
                .as_ref()
                .is_none_or(|ledger| ledger.mismatches_total == 0)
    }

    /// The summary printed at the end: the figures, then the first errors and
    /// mismatches.
    pub fn summary_table(&self) -> String {
        let mut rows = self.figure_rows();
        rows.extend(self.ledger_rows());
        let mut text = table::key_values(rows);
        let mismatches = self
            .ledger
            .iter()
            .flat_map(|ledger| &ledger.first_mismatches);
        for line in self.first_errors.iter().chain(mismatches) {
            text.push_str(&format!("  {line}\n"));
        }
        if self.bet_ok == 0 {
            text.push_str(
                "FAIL: no bet acked; run longer than one round (betting + flight + crash)\n",
            );
        }
        text
    }

    /// The run's figures: players, time, bets, throughput, latency, errors.
    fn figure_rows(&self) -> Vec<(&'static str, String)> {
        let latency = &self.ack_latency;
        let rates = &self.rates;
        vec![
            (
                "players connected / failed",
                format!("{} / {}", self.connections_ok, self.connections_failed),
            ),
            (
                "duration / wall",
                format!(
                    "{:.1} s / {:.1} s",
                    self.duration_seconds, self.wall_seconds
                ),
            ),
            (
                "betting rounds / time",
                format!("{} / {:.2} s", rates.rounds, rates.window_seconds),
            ),
            (
                "bets sent / bet_ok / unans.",
                format!("{} / {} / {}", self.bets_sent, self.bet_ok, self.unanswered),
            ),
            ("bet_err by code", format!("{:?}", self.bet_err)),
            (
                "acked bets/s (betting)",
                format!("{:.0}", rates.bets_per_second),
            ),
            (
                "busiest round bets/s",
                format!("{:.0}", rates.busiest_round_bets_per_second),
            ),
            (
                "ack latency p50 / p99 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} ms ({} samples)",
                    latency.p50_ms, latency.p99_ms, latency.max_ms, latency.count
                ),
            ),
            (
                "generator CPU (cores busy)",
                format!("{:.2}", self.load_generator.cpu_cores_busy),
            ),
            ("errors", self.errors_total.to_string()),
        ]
    }

    /// The ledger check's counts, or why it was skipped.
    fn ledger_rows(&self) -> Vec<(&'static str, String)> {
        let Some(ledger) = &self.ledger else {
            let skipped = "skipped (no --data-dir / --spawn-server)".to_owned();
            return vec![("ledger check", skipped)];
        };
        vec![
            (
                "ledger acked / matched",
                format!(
                    "{} / {} ({} bets in ledger, {} refunded)",
                    ledger.acked, ledger.matched, ledger.ledger_bets, ledger.refunded
                ),
            ),
            ("ledger mismatches", ledger.mismatches_total.to_string()),
        ]
    }
}

/// The report of a run from its facts, the shared stats, what the players saw and the
/// ledger check.
pub fn build_report(
    facts: RunFacts,
    stats: &Stats,
    merged: Merged,
    ledger: Option<Reconciliation>,
) -> anyhow::Result<BetsReport> {
    let wall_seconds = facts.wall_seconds;
    let usage = crate::process::read_usage()?;
    let bet_err = stats
        .rejects
        .lock()
        .expect("rejects lock")
        .iter()
        .map(|(key, count)| (key.trim_start_matches("bet:").to_owned(), *count))
        .collect();
    let histogram = stats.ack_latency_us.lock().expect("histogram lock");
    Ok(BetsReport {
        url: facts.url,
        room: facts.room,
        players: facts.players,
        connections_ok: Stats::get(&stats.connections_ok),
        connections_failed: Stats::get(&stats.connections_failed),
        duration_seconds: facts.duration.as_secs_f64(),
        wall_seconds,
        bets_sent: Stats::get(&stats.bets_sent),
        bet_ok: merged.acked.len() as u64,
        bet_err,
        unanswered: merged.unanswered,
        rates: betting_rates(&merged.windows, &merged.acked, facts.run_end_us),
        ack_latency: latency_summary(&histogram),
        errors_total: merged.errors.len() as u64,
        first_errors: merged.errors.into_iter().take(LISTED_MAX).collect(),
        ledger,
        load_generator: GeneratorUsage {
            cpu_seconds: usage.cpu_seconds,
            cpu_cores_busy: usage.cpu_seconds / wall_seconds.max(f64::MIN_POSITIVE),
            rss_mib: usage.rss_bytes as f64 / BYTES_PER_MIB,
            peak_rss_mib: usage.peak_rss_bytes as f64 / BYTES_PER_MIB,
        },
    })
}
