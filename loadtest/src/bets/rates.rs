//! Bet throughput over the betting phases: each phase's window as the players saw it
//! (from the first `betting` event to the server's `ends_at`), the acks inside it, and
//! the busiest round's burst rate. Measured on the wall clock the server stamps
//! `ends_at` with (same machine).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::bets::reconcile::AckedBet;

/// Microseconds per second.
const US_PER_SECOND: f64 = 1_000_000.0;

/// The clock the windows and acks are measured on (the server's clock on this machine).
pub fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_micros() as u64)
}

/// A betting phase as the players saw it, unix microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BettingWindow {
    /// When the first player received the round's `betting` event.
    pub opened_us: u64,
    /// The server's `ends_at`.
    pub ends_us: u64,
}

/// Throughput over the betting windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub rounds: u64,
    /// Betting time measured: each window clipped to the end of the run, in seconds.
    pub window_seconds: f64,
    /// Acks that arrived inside their round's (clipped) window.
    pub acked_in_windows: u64,
    /// `acked_in_windows / window_seconds`.
    pub bets_per_second: f64,
    /// The busiest round: its acks over the time from its window's opening to its last
    /// ack (how fast the server drains a burst of bets).
    pub busiest_round_bets_per_second: f64,
}

/// Throughput from the windows and the acks; `run_end_us` clips a window the run left
/// early.
pub fn betting_rates(
    windows: &BTreeMap<u64, BettingWindow>,
    acks: &[AckedBet],
    run_end_us: u64,
) -> Rates {
    let mut window_us = 0;
    let mut per_round: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for ack in acks {
        let Some(window) = windows.get(&ack.round) else {
            continue;
        };
        let end_us = window.ends_us.min(run_end_us);
        if (window.opened_us..=end_us).contains(&ack.acked_at_us) {
            let (count, last_us) = per_round.entry(ack.round).or_default();
            *count += 1;
            *last_us = (*last_us).max(ack.acked_at_us);
        }
    }
    for window in windows.values() {
        window_us += window
            .ends_us
            .min(run_end_us)
            .saturating_sub(window.opened_us);
    }
    let acked_in_windows: u64 = per_round.values().map(|(count, _)| count).sum();
    let busiest = per_round
        .iter()
        .map(|(round, (count, last_us))| {
            let span_us = last_us.saturating_sub(windows[round].opened_us).max(1);
            *count as f64 * US_PER_SECOND / span_us as f64
        })
        .fold(0.0, f64::max);
    let window_seconds = window_us as f64 / US_PER_SECOND;
    Rates {
        rounds: windows.len() as u64,
        window_seconds,
        acked_in_windows,
        bets_per_second: if window_us == 0 {
            0.0
        } else {
            acked_in_windows as f64 / window_seconds
        },
        busiest_round_bets_per_second: busiest,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ack(round: u64, player: &str, slot: u8, amount: i64, acked_at_us: u64) -> AckedBet {
        AckedBet {
            round,
            player: player.to_owned(),
            slot,
            amount,
            acked_at_us,
        }
    }

    #[test]
    fn rates_count_acks_inside_clipped_windows() {
        let windows = BTreeMap::from([
            (
                1,
                BettingWindow {
                    opened_us: 0,
                    ends_us: 1_000_000,
                },
            ),
            (
                2,
                BettingWindow {
                    opened_us: 2_000_000,
                    ends_us: 3_000_000,
                },
            ),
        ]);
        let acks = [
            ack(1, "a", 0, 10, 100_000),
            ack(1, "a", 1, 11, 250_000),
            ack(1, "b", 0, 10, 1_500_000), // after its window: not counted
            ack(2, "a", 0, 10, 2_100_000),
            ack(9, "a", 0, 10, 100), // no window seen
        ];
        // The run ended half-way through round 2's window.
        let rates = betting_rates(&windows, &acks, 2_500_000);
        assert_eq!(rates.rounds, 2);
        assert_eq!(rates.window_seconds, 1.5);
        assert_eq!(rates.acked_in_windows, 3);
        assert_eq!(rates.bets_per_second, 2.0);
        // Round 1: 2 acks in 0.25 s; round 2: 1 ack in 0.1 s.
        assert_eq!(rates.busiest_round_bets_per_second, 10.0);
        let empty = betting_rates(&BTreeMap::new(), &acks, 2_500_000);
        assert_eq!((empty.bets_per_second, empty.acked_in_windows), (0.0, 0));
    }
}
