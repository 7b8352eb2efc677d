//! Bet-ack latency as an engine reports it to the console: a fixed set of buckets
//! (integer microseconds, [`ACK_BUCKET_BOUNDS_US`]) counted with atomics and taken (read
//! and reset) once per report, so each report covers its own interval. The Prometheus
//! histogram `aloft_bet_ack_seconds` counts the same acks but cannot be read back.
//! Quantiles are read from the buckets by [`quantile_us`]: the upper bound of the bucket
//! the quantile falls in.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the buckets, in microseconds; one more bucket counts what is slower
/// than the last.
pub const ACK_BUCKET_BOUNDS_US: [u64; 14] = [
    250, 500, 1_000, 2_000, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 10_000_000,
];
/// Buckets of a histogram: one per bound and the overflow.
pub const ACK_BUCKETS: usize = ACK_BUCKET_BOUNDS_US.len() + 1;

/// One room's ack latencies since the last [`AckLatency::take`].
#[derive(Debug, Default)]
pub struct AckLatency {
    counts: [AtomicU64; ACK_BUCKETS],
}

impl AckLatency {
    /// Counts `acks` bets acknowledged `elapsed` after they were received.
    pub fn record_many(&self, elapsed: Duration, acks: u64) {
        if acks == 0 {
            return;
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let bucket = ACK_BUCKET_BOUNDS_US.partition_point(|&bound| bound < micros);
        self.counts[bucket].fetch_add(acks, Ordering::Relaxed);
    }

    /// The counts per bucket since the last take, which start over from 0.
    pub fn take(&self) -> Vec<u64> {
        let take = |count: &AtomicU64| count.swap(0, Ordering::Relaxed);
        self.counts.iter().map(take).collect()
    }
}

/// Adds `counts` (a report's, maybe of another length when sent by another version) to
/// `total`, bucket by bucket; `total` has [`ACK_BUCKETS`] buckets.
pub fn add_counts(total: &mut [u64; ACK_BUCKETS], counts: &[u64]) {
    for (sum, count) in total.iter_mut().zip(counts) {
        *sum = sum.saturating_add(*count);
    }
}

/// The latency under which `per_mille`/1000 of the counted acks fall, as the upper bound
/// of its bucket in microseconds (the last bound for the overflow bucket: "at least");
/// `None` without acks.
pub fn quantile_us(counts: &[u64], per_mille: u64) -> Option<u64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    // The rank of the quantile, 1-based, rounded up: p50 of 3 acks is the 2nd.
    let rank = (u128::from(total) * u128::from(per_mille))
        .div_ceil(1_000)
        .max(1);
    let mut seen = 0u128;
    for (bucket, count) in counts.iter().enumerate() {
        seen += u128::from(*count);
        if seen >= rank {
            let last = ACK_BUCKET_BOUNDS_US.len() - 1;
            return Some(ACK_BUCKET_BOUNDS_US[bucket.min(last)]);
        }
    }
    unreachable!("the ranks add up to the total")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_fall_in_their_buckets_and_a_take_starts_over() {
        let latency = AckLatency::default();
        latency.record_many(Duration::from_micros(250), 2);
        latency.record_many(Duration::from_micros(251), 1);
        latency.record_many(Duration::from_secs(60), 1);
        latency.record_many(Duration::from_millis(3), 0);
        let counts = latency.take();
        assert_eq!(counts.len(), ACK_BUCKETS);
        assert_eq!((counts[0], counts[1], counts[ACK_BUCKETS - 1]), (2, 1, 1));
        assert_eq!(counts.iter().sum::<u64>(), 4);
        assert_eq!(latency.take().iter().sum::<u64>(), 0);
    }

    #[test]
    fn quantiles_are_the_bounds_of_their_buckets() {
        assert_eq!(quantile_us(&[0; ACK_BUCKETS], 500), None);
        let mut counts = [0; ACK_BUCKETS];
        counts[2] = 98; // ≤ 1 ms
        counts[8] = 2; // ≤ 100 ms
        assert_eq!(quantile_us(&counts, 500), Some(1_000));
        assert_eq!(quantile_us(&counts, 980), Some(1_000));
        assert_eq!(quantile_us(&counts, 990), Some(100_000));
        counts[ACK_BUCKETS - 1] = 1_000;
        assert_eq!(quantile_us(&counts, 990), Some(10_000_000));
        let mut total = [0; ACK_BUCKETS];
        add_counts(&mut total, &counts);
        add_counts(&mut total, &[1, 1]);
        assert_eq!((total[0], total[2]), (1, 98));
    }
}
