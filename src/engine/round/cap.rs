//! The max-profit cap of a round, pure: whether cashing out at a level would take the
//! players' profit in the round above the cap, and the multiplier that meets it exactly.
//!
//! Let `realized` = Σ(payout − stake) over the round's cashed-out bets and `S` = Σ stakes
//! of its active bets. Before any cashout at level `L` (each auto-cashout target in
//! increasing order, then the current multiplier), if
//! `realized + S · (L − 100) / 100 > round_profit_max_minor`, every active bet is cashed
//! out at `m* = 100 + floor((cap − realized) · 100 / S)`, clamped to `100..=L`. The
//! players' total profit in a round therefore never exceeds the cap; the round flies on
//! to its crash point without them.

use super::types::MULTIPLIER_START_HUNDREDTHS;

/// Whether cashing out `active_stakes_minor` at `level_hundredths`, on top of the
/// `realized_profit_minor` of the round's cashouts, would take the players' profit above
/// `cap_minor`.
pub(super) fn exceeded_at(
    level_hundredths: u64,
    realized_profit_minor: i64,
    active_stakes_minor: i128,
    cap_minor: i64,
) -> bool {
    let rise = i128::from(level_hundredths - MULTIPLIER_START_HUNDREDTHS);
    let profit_hundredths = i128::from(realized_profit_minor) * 100 + active_stakes_minor * rise;
    profit_hundredths > i128::from(cap_minor) * 100
}

/// The multiplier at which `active_stakes_minor` cashed out bring the players' profit to
/// `cap_minor` at most, clamped to `100..=level_max`: `m*` of the module documentation.
pub(super) fn capped_multiplier(
    level_max: u64,
    realized_profit_minor: i64,
    active_stakes_minor: i128,
    cap_minor: i64,
) -> u64 {
    assert!(
        active_stakes_minor > 0,
        "only open stakes can exceed the cap"
    );
    let headroom_minor = i128::from(cap_minor) - i128::from(realized_profit_minor);
    let capped =
        i128::from(MULTIPLIER_START_HUNDREDTHS) + headroom_minor * 100 / active_stakes_minor;
    let capped = capped.clamp(
        i128::from(MULTIPLIER_START_HUNDREDTHS),
        i128::from(level_max),
    );
    u64::try_from(capped).expect("clamped to u64 bounds")
}

#[cfg(test)]
mod tests {

    use crate::config::EngineConfig;
    use crate::engine::answer::RefusalCode;

    use super::super::test_support::*;
    use super::super::*;

    use super::{capped_multiplier, exceeded_at};

    #[test]
    fn the_cap_is_exceeded_only_above_it_and_met_exactly_at_the_capped_multiplier() {
        // 3,000 staked, 500 realized, cap 1,000: 500 of headroom over 3,000 is 0.1666x.
        assert!(!exceeded_at(116, 500, 3_000, 1_000));
        assert!(exceeded_at(117, 500, 3_000, 1_000));
        assert_eq!(capped_multiplier(300, 500, 3_000, 1_000), 116);
        // Clamped to the level reached, and to 1.00x when the cap is already used up.
        assert_eq!(capped_multiplier(110, 500, 3_000, 1_000), 110);
        assert_eq!(capped_multiplier(300, 1_000, 3_000, 1_000), 100);
    }

    #[test]
    fn max_profit_cashes_everyone_out_at_the_cap_multiplier() {
        let capped = EngineConfig {
            round_profit_max_minor: 1_000,
            ..engine()
        };
        let (mut core, _) = room_where(|crash| crash >= 300, capped);
        placed(&mut core, "auto", 1_000, Some(120), 0);
        placed(&mut core, "a", 1_000, None, 0);
        placed(&mut core, "b", 1_000, None, 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.advance(started_at_ms + elapsed_to_reach_ms(200, RATE))
            .unwrap();
        let effects = core.take_effects();
        // At 1.20x the profit is 600 ≤ 1000: "auto" is paid 1200 (realized 200). At 2.00x
        // it would be 200 + 2000 > 1000: m* = 100 + (1000 − 200) · 100 / 2000 = 140.
        let expected = vec![
            ("payout:test:1:auto:0".to_owned(), 1_200),
            ("payout:test:1:a:0".to_owned(), 1_400),
            ("payout:test:1:b:0".to_owned(), 1_400),
        ];
        assert_eq!(credits(&effects), expected);
        let multipliers: Vec<u64> = cashout_multipliers(&effects)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(multipliers, vec![120, 140, 140]);
        core.cashout(
            started_at_ms + elapsed_to_reach_ms(210, RATE),
            &player("a"),
            "late",
            0,
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::NoActiveBet);
    }
}
