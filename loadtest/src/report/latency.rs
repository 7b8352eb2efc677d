//! Latency percentiles read from an HDR histogram recorded in microseconds, in
//! milliseconds: the figures every report (bots, bets, fan-out) prints.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Microseconds per millisecond.
const US_PER_MS: f64 = 1_000.0;

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

/// Latency percentiles (tick: server send → probe receive; chat: chatter send →
/// receipt), in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyPercentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

/// Percentiles of a histogram recorded in microseconds.
pub fn latency_percentiles(histogram_us: &Histogram<u64>) -> LatencyPercentiles {
    LatencyPercentiles {
        count: histogram_us.len(),
        p50_ms: quantile_ms(histogram_us, 0.50),
        p99_ms: quantile_ms(histogram_us, 0.99),
        p999_ms: quantile_ms(histogram_us, 0.999),
        max_ms: quantile_ms(histogram_us, 1.0),
    }
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
    fn percentiles_read_p50_to_p999_in_milliseconds() {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for latency_us in 1..=10_000u64 {
            histogram.record(latency_us * 100).unwrap();
        }
        let latency = latency_percentiles(&histogram);
        let close = |value: f64, expected: f64| (value - expected).abs() <= expected * 0.002;
        assert_eq!(latency.count, 10_000);
        assert!(close(latency.p50_ms, 500.0), "p50 {}", latency.p50_ms);
        assert!(close(latency.p99_ms, 990.0), "p99 {}", latency.p99_ms);
        assert!(close(latency.p999_ms, 999.0), "p999 {}", latency.p999_ms);
        assert!(close(latency.max_ms, 1000.0), "max {}", latency.max_ms);
        let empty = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        assert_eq!(latency_percentiles(&empty).p999_ms, 0.0);
    }
}
