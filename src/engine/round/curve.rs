//! The growth curve of a flight, pure: the multiplier at a time, the time a multiplier
//! is reached, a payout at a multiplier and the tick grid.
//!
//! `m(t) = floor(100 · e^(rate · t))` hundredths, `t` in ms since the flight started,
//! `rate` = `growth_rate_per_ms_millionths` / 10⁶ per ms. The round crashes at the first
//! millisecond where `m(t)` reaches the crash point (a crash point of 100 crashes at the
//! start). A cashout is stamped with the engine's time, never the client's. Auto-cashouts
//! are paid at exactly their target, even when ticks skipped past it, provided the target
//! is below the crash point; at the crash every other active bet loses.

/// The multiplier, in hundredths, `elapsed_ms` after the flight started:
/// `floor(100 · e^(rate · elapsed_ms))` with `rate` = millionths / 10⁶ per ms.
pub fn multiplier_at(elapsed_ms: u64, growth_rate_per_ms_millionths: u64) -> u64 {
    // The only float in the engine: e^x has no integer form. The value is floored to
    // integer hundredths at once; money is computed from that integer.
    let exponent = growth_rate_per_ms_millionths as f64 / 1e6 * elapsed_ms as f64;
    let hundredths = (100.0 * exponent.exp()).floor();
    // `as` saturates, so an absurdly long flight pins at u64::MAX instead of wrapping.
    hundredths as u64
}

/// The first millisecond of a flight at which the multiplier reaches `target_hundredths`.
pub fn elapsed_to_reach_ms(target_hundredths: u64, growth_rate_per_ms_millionths: u64) -> u64 {
    assert!(
        growth_rate_per_ms_millionths > 0,
        "a flat curve never crashes"
    );
    let reached =
        |elapsed_ms| multiplier_at(elapsed_ms, growth_rate_per_ms_millionths) >= target_hundredths;
    if reached(0) {
        return 0;
    }
    // Invariant: not reached at `low`, reached at `high`. Doubling ends within 64 steps
    // because the multiplier saturates at u64::MAX.
    let (mut low, mut high) = (0u64, 1u64);
    for _ in 0..u64::BITS {
        if reached(high) {
            break;
        }
        low = high;
        high = high.saturating_mul(2);
    }
    assert!(reached(high), "the multiplier reaches every u64 target");
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if reached(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// A stake times a multiplier in hundredths, floored to minor units.
pub(super) fn payout_minor(stake_minor: i64, multiplier_hundredths: u64) -> i64 {
    let payout = i128::from(stake_minor) * i128::from(multiplier_hundredths) / 100;
    i64::try_from(payout).expect("a payout is at most stake + round_profit_max_minor")
}

/// The first tick time after `now_ms` on the grid `origin_ms + k · interval_ms`, k ≥ 1.
pub(super) fn next_tick_after(origin_ms: u64, now_ms: u64, interval_ms: u64) -> u64 {
    let elapsed_ms = now_ms.saturating_sub(origin_ms);
    origin_ms + (elapsed_ms / interval_ms + 1) * interval_ms
}
#[cfg(test)]
mod tests {

    use super::super::test_support::*;
    use super::*;

    #[test]
    fn multiplier_curve_values() {
        assert_eq!(multiplier_at(0, RATE), 100);
        assert_eq!(multiplier_at(1_000, RATE), 106);
        assert_eq!(multiplier_at(11_552, RATE), 199);
        assert_eq!(multiplier_at(11_553, RATE), 200);
        assert_eq!(elapsed_to_reach_ms(100, RATE), 0);
        assert_eq!(elapsed_to_reach_ms(200, RATE), 11_553);
        let mut previous = 0;
        for elapsed_ms in (0..600_000).step_by(7) {
            let multiplier = multiplier_at(elapsed_ms, RATE);
            assert!(multiplier >= previous, "the curve never goes down");
            previous = multiplier;
        }
        for target in [101, 150, 1_000, 123_456, 4_000_000_000_000] {
            let elapsed_ms = elapsed_to_reach_ms(target, RATE);
            assert!(multiplier_at(elapsed_ms, RATE) >= target);
            assert!(multiplier_at(elapsed_ms - 1, RATE) < target);
        }
    }
}
