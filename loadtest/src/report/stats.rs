//! What a run measures, shared by every bot: counters, the ack-latency histogram, the
//! reject codes and the failure log. Bots count into a small [`LocalStats`] and flush it
//! about once a second, so the hot path (a frame per tick per bot) touches no shared
//! cache line.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use crate::bots::verify::Failure;

/// A bet the server acknowledged with `bet_ok`, as the bot's reply named it: what the
/// ledger must hold a stake transfer for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedBet {
    pub round: u64,
    pub player: String,
    pub slot: u8,
    pub amount_minor: i64,
}

/// Failure messages kept verbatim; further ones are only counted.
pub const FAILURE_MESSAGES_MAX: usize = 20;
/// Largest ack latency the histogram tells apart, in microseconds (60 s).
const LATENCY_US_MAX: u64 = 60_000_000;
/// Significant figures of the latency histogram.
const LATENCY_SIGNIFICANT_FIGURES: u8 = 3;
/// Acknowledged bets kept for the ledger check of one run; further ones are counted in
/// `acked_bets_dropped` (a chaos iteration of 200 bots acks a few thousand).
pub const ACKED_BETS_MAX: usize = 1_000_000;

/// The failure log: counts per kind and the first messages.
#[derive(Debug, Default, Clone)]
pub struct FailureLog {
    pub by_check: BTreeMap<&'static str, u64>,
    pub first_messages: Vec<String>,
}

impl FailureLog {
    pub fn total(&self) -> u64 {
        self.by_check.values().sum()
    }
}

/// The run's shared measurements.
pub struct Stats {
    /// Bots connected now (a gauge).
    pub connected: AtomicU64,
    pub connections_ok: AtomicU64,
    pub connections_failed: AtomicU64,
    /// Distinct rounds whose crash at least one bot saw.
    pub rounds_seen: AtomicU64,
    /// Highest crashed round seen, to count each round once.
    highest_crashed_round: AtomicU64,
    /// Highest round whose `flying` a bot saw.
    highest_flying_round: AtomicU64,
    /// Connections a bot opened again after losing one (runs that allow reconnecting).
    pub reconnects: AtomicU64,
    /// Reconnections with `since` that the gateway resumed (`hello.recovered` true).
    pub resumes_recovered: AtomicU64,
    /// Reconnections with `since` answered with a snapshot (`hello.recovered` false).
    pub resumes_snapshot: AtomicU64,
    /// Every acknowledged bet, when the run checks them against the ledger (`None`
    /// otherwise): at most [`ACKED_BETS_MAX`].
    pub acked_bets: Option<Mutex<Vec<AckedBet>>>,
    /// Acknowledged bets not kept because [`ACKED_BETS_MAX`] was reached.
    pub acked_bets_dropped: AtomicU64,
    pub bets_sent: AtomicU64,
    pub bets_acked: AtomicU64,
    pub cashouts_sent: AtomicU64,
    pub cashouts_acked: AtomicU64,
    pub frames_received: AtomicU64,
    /// Ticks the server skipped for a slow socket (conflation): `seq` numbers missing
    /// where only ticks can have been. Allowed, so counted, not failed.
    pub ticks_conflated: AtomicU64,
    /// Send → reply latency of bets and cashouts, in microseconds.
    pub ack_latency_us: Mutex<Histogram<u64>>,
    /// Tick lag: the engine's `at` to the bot reading the tick, in microseconds (`at`
    /// has millisecond resolution). Tells a late server from a late load generator.
    pub tick_lag_us: Mutex<Histogram<u64>>,
    /// Final reconnections the server refused with 503 (`full`/`busy`) and the bot
    /// tried again.
    pub final_reconnect_retries: AtomicU64,
    /// `unavailable` answers in a run with faults (also in `rejects`): allowed, not
    /// failed.
    pub unavailable_answers: AtomicU64,
    /// Requests sent again with the same `req` after an `unavailable`.
    pub unavailable_retries: AtomicU64,
    /// Requests whose outcome the bot could not learn (`unavailable` too late to retry):
    /// the bot re-based its own ledger on the next fresh balance.
    pub outcomes_unknown: AtomicU64,
    /// Rejections by `request:code`, e.g. `cashout:too_late`.
    pub rejects: Mutex<BTreeMap<String, u64>>,
    pub failures: Mutex<FailureLog>,
}

impl Stats {
    pub fn new() -> Stats {
        Stats::with_acked_bets(false)
    }

    /// Stats that also keep every acknowledged bet when `keep_acked_bets`.
    pub fn with_acked_bets(keep_acked_bets: bool) -> Stats {
        let histogram = || {
            Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGNIFICANT_FIGURES)
                .expect("constant histogram bounds are valid")
        };
        Stats {
            connected: AtomicU64::new(0),
            connections_ok: AtomicU64::new(0),
            connections_failed: AtomicU64::new(0),
            rounds_seen: AtomicU64::new(0),
            highest_crashed_round: AtomicU64::new(0),
            highest_flying_round: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            resumes_recovered: AtomicU64::new(0),
            resumes_snapshot: AtomicU64::new(0),
            acked_bets: keep_acked_bets.then(|| Mutex::new(Vec::new())),
            acked_bets_dropped: AtomicU64::new(0),
            bets_sent: AtomicU64::new(0),
            bets_acked: AtomicU64::new(0),
            cashouts_sent: AtomicU64::new(0),
            cashouts_acked: AtomicU64::new(0),
            frames_received: AtomicU64::new(0),
            ticks_conflated: AtomicU64::new(0),
            ack_latency_us: Mutex::new(histogram()),
            tick_lag_us: Mutex::new(histogram()),
            final_reconnect_retries: AtomicU64::new(0),
            unavailable_answers: AtomicU64::new(0),
            unavailable_retries: AtomicU64::new(0),
            outcomes_unknown: AtomicU64::new(0),
            rejects: Mutex::new(BTreeMap::new()),
            failures: Mutex::new(FailureLog::default()),
        }
    }

    /// Counts a failure; keeps its message if it is among the first.
    pub fn record_failure(&self, failure: Failure) {
        let mut log = self.failures.lock().expect("failure log lock");
        *log.by_check.entry(failure.check.as_str()).or_default() += 1;
        if log.first_messages.len() < FAILURE_MESSAGES_MAX {
            log.first_messages
                .push(format!("{}: {}", failure.check.as_str(), failure.message));
        }
    }

    pub fn record_reject(&self, request: &str, code: &str) {
        let mut rejects = self.rejects.lock().expect("rejects lock");
        *rejects.entry(format!("{request}:{code}")).or_default() += 1;
    }

    /// Counts `round` once however many bots saw it crash (rounds only grow).
    pub fn note_crash(&self, round: u64) {
        if self
            .highest_crashed_round
            .fetch_max(round, Ordering::Relaxed)
            < round
        {
            self.rounds_seen.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Notes that a bot saw `round` fly.
    pub fn note_flying(&self, round: u64) {
        self.highest_flying_round
            .fetch_max(round, Ordering::Relaxed);
    }

    /// The highest round a bot saw crash (0 before the first).
    pub fn highest_crashed_round(&self) -> u64 {
        self.highest_crashed_round.load(Ordering::Relaxed)
    }

    /// The highest round a bot saw fly (0 before the first).
    pub fn highest_flying_round(&self) -> u64 {
        self.highest_flying_round.load(Ordering::Relaxed)
    }

    /// Keeps `bet` for the ledger check, if this run keeps them.
    pub fn record_acked_bet(&self, bet: AckedBet) {
        let Some(acked_bets) = &self.acked_bets else {
            return;
        };
        let mut acked_bets = acked_bets.lock().expect("acked bets lock");
        if acked_bets.len() < ACKED_BETS_MAX {
            acked_bets.push(bet);
        } else {
            self.acked_bets_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The acknowledged bets kept so far (empty when the run keeps none).
    pub fn acked_bets(&self) -> Vec<AckedBet> {
        (self.acked_bets.as_ref())
            .map(|bets| bets.lock().expect("acked bets lock").clone())
            .unwrap_or_default()
    }

    pub fn failures(&self) -> FailureLog {
        self.failures.lock().expect("failure log lock").clone()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

/// One bot's counts since its last flush.
#[derive(Debug, Default)]
pub struct LocalStats {
    pub frames_received: u64,
    pub ticks_conflated: u64,
    pub bets_sent: u64,
    pub bets_acked: u64,
    pub cashouts_sent: u64,
    pub cashouts_acked: u64,
    /// Ack latencies, in microseconds.
    pub ack_latencies_us: Vec<u64>,
    /// Tick lags, in microseconds.
    pub tick_lags_us: Vec<u64>,
}

impl LocalStats {
    /// Adds these counts to `stats` and starts over.
    pub fn flush(&mut self, stats: &Stats) {
        let add = |counter: &AtomicU64, value: u64| {
            if value > 0 {
                counter.fetch_add(value, Ordering::Relaxed);
            }
        };
        add(&stats.frames_received, self.frames_received);
        add(&stats.ticks_conflated, self.ticks_conflated);
        add(&stats.bets_sent, self.bets_sent);
        add(&stats.bets_acked, self.bets_acked);
        add(&stats.cashouts_sent, self.cashouts_sent);
        add(&stats.cashouts_acked, self.cashouts_acked);
        record_all(&stats.ack_latency_us, &mut self.ack_latencies_us);
        record_all(&stats.tick_lag_us, &mut self.tick_lags_us);
        self.frames_received = 0;
        self.ticks_conflated = 0;
        self.bets_sent = 0;
        self.bets_acked = 0;
        self.cashouts_sent = 0;
        self.cashouts_acked = 0;
    }
}

/// Moves `values_us` into `histogram` (under its lock once).
fn record_all(histogram: &Mutex<Histogram<u64>>, values_us: &mut Vec<u64>) {
    if values_us.is_empty() {
        return;
    }
    let mut histogram = histogram.lock().expect("histogram lock");
    for value_us in values_us.drain(..) {
        histogram.saturating_record(value_us.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bots::verify::Check;

    #[test]
    fn failures_are_counted_by_kind_and_the_first_kept() {
        let stats = Stats::new();
        for index in 0..(FAILURE_MESSAGES_MAX + 5) {
            stats.record_failure(Failure::new(Check::LostEvent, format!("gap {index}")));
        }
        stats.record_failure(Failure::new(Check::CrashPoint, "bad"));
        let log = stats.failures();
        assert_eq!(log.by_check["lost_event"], FAILURE_MESSAGES_MAX as u64 + 5);
        assert_eq!(log.by_check["crash_point"], 1);
        assert_eq!(log.total(), FAILURE_MESSAGES_MAX as u64 + 6);
        assert_eq!(log.first_messages.len(), FAILURE_MESSAGES_MAX);
        assert_eq!(log.first_messages[0], "lost_event: gap 0");
    }

    #[test]
    fn acked_bets_are_kept_only_when_the_run_asks() {
        let bet = AckedBet {
            round: 4,
            player: "g-1".to_owned(),
            slot: 1,
            amount_minor: 50,
        };
        let plain = Stats::new();
        plain.record_acked_bet(bet.clone());
        assert!(plain.acked_bets().is_empty());
        let keeping = Stats::with_acked_bets(true);
        keeping.record_acked_bet(bet.clone());
        assert_eq!(keeping.acked_bets(), vec![bet]);
    }

    #[test]
    fn each_round_is_counted_once() {
        let stats = Stats::new();
        for round in [3, 3, 4, 3, 5, 5] {
            stats.note_crash(round);
        }
        assert_eq!(Stats::get(&stats.rounds_seen), 3);
    }

    #[test]
    fn local_counts_flush_into_the_shared_ones() {
        let stats = Stats::new();
        let mut local = LocalStats {
            frames_received: 10,
            ticks_conflated: 3,
            bets_sent: 2,
            ack_latencies_us: vec![1_000, 2_000],
            tick_lags_us: vec![3_000],
            ..LocalStats::default()
        };
        local.flush(&stats);
        local.frames_received += 1;
        local.flush(&stats);
        assert_eq!(Stats::get(&stats.frames_received), 11);
        assert_eq!(Stats::get(&stats.ticks_conflated), 3);
        assert_eq!(Stats::get(&stats.bets_sent), 2);
        assert_eq!(stats.ack_latency_us.lock().unwrap().len(), 2);
        assert_eq!(stats.tick_lag_us.lock().unwrap().len(), 1);
    }
}
