//! How a bot plays a round, like a person would: this module owns the decisions (watch
//! or bet, how much, one slot or two, auto-cashout or a target to cash out by hand, when
//! in the betting phase to click), drawn from the bot's own seeded RNG so a run with the
//! same `--seed` makes the same choices.

use rand::Rng;
use rand::rngs::SmallRng;

/// Share of rounds a bot only watches, in percent.
const WATCH_ROUND_PERCENT: u32 = 40;
/// Share of betting rounds in which a bot also fills the second slot, in percent.
const SECOND_SLOT_PERCENT: u32 = 20;
/// Share of bets with an auto-cashout (the rest are cashed out by hand), in percent.
const AUTO_CASHOUT_PERCENT: u32 = 50;
/// Share of targets picked from the favourites below, in percent.
const FAVOURITE_TARGET_PERCENT: u32 = 70;
/// Stakes people like, in minor units (cents).
const STAKES_MINOR: [i64; 6] = [10, 20, 50, 100, 200, 500];
/// Targets people like, in hundredths.
const FAVOURITE_TARGETS_HUNDREDTHS: [u64; 7] = [120, 150, 200, 250, 300, 500, 1000];
/// Lowest and highest target of the uniform draw, in hundredths.
const TARGET_HUNDREDTHS_MIN: u64 = 101;
const TARGET_HUNDREDTHS_MAX: u64 = 2000;
/// Latest a bot clicks after the betting phase opens, in milliseconds.
const BET_DELAY_MS_MAX: u64 = 3_000;
/// Time kept between the click and the end of the betting phase, in milliseconds.
const BET_MARGIN_MS: u64 = 500;

/// How a bet leaves the round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The server cashes out at this multiplier (hundredths), sent as `auto`.
    Auto(u64),
    /// The bot sends `cashout` once a tick reaches this multiplier (hundredths).
    Manual(u64),
}

impl Exit {
    /// The `auto` field of the bet request.
    pub fn auto(self) -> Option<u64> {
        match self {
            Exit::Auto(target) => Some(target),
            Exit::Manual(_) => None,
        }
    }
}

/// One bet a bot means to place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stake {
    pub slot: u8,
    pub amount_minor: i64,
    pub exit: Exit,
}

/// What a bot does in one betting phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoundPlan {
    /// Time from the start of the betting phase to the click, in milliseconds.
    pub delay_ms: u64,
    /// The bets, slot 0 first.
    pub stakes: [Option<Stake>; 2],
}

/// Decides a round given `betting_window_ms` left to bet; `None` means watch only.
pub fn plan_round(rng: &mut SmallRng, betting_window_ms: u64) -> Option<RoundPlan> {
    let usable_window_ms = betting_window_ms.checked_sub(BET_MARGIN_MS)?;
    if rng.random_ratio(WATCH_ROUND_PERCENT, 100) {
        return None;
    }
    let delay_ms = rng.random_range(0..=usable_window_ms.min(BET_DELAY_MS_MAX));
    let first = Some(stake(rng, 0));
    let second = rng
        .random_ratio(SECOND_SLOT_PERCENT, 100)
        .then(|| stake(rng, 1));
    Some(RoundPlan {
        delay_ms,
        stakes: [first, second],
    })
}

fn stake(rng: &mut SmallRng, slot: u8) -> Stake {
    let amount_minor = STAKES_MINOR[rng.random_range(0..STAKES_MINOR.len())];
    let target = if rng.random_ratio(FAVOURITE_TARGET_PERCENT, 100) {
        FAVOURITE_TARGETS_HUNDREDTHS[rng.random_range(0..FAVOURITE_TARGETS_HUNDREDTHS.len())]
    } else {
        rng.random_range(TARGET_HUNDREDTHS_MIN..=TARGET_HUNDREDTHS_MAX)
    };
    let exit = if rng.random_ratio(AUTO_CASHOUT_PERCENT, 100) {
        Exit::Auto(target)
    } else {
        Exit::Manual(target)
    };
    Stake {
        slot,
        amount_minor,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn plans_stay_within_the_limits_and_mix_behaviours() {
        let mut rng = SmallRng::seed_from_u64(7);
        let plans: Vec<Option<RoundPlan>> =
            (0..1000).map(|_| plan_round(&mut rng, 5_000)).collect();
        let watched = plans.iter().filter(|plan| plan.is_none()).count();
        assert!((300..500).contains(&watched), "watched {watched} of 1000");
        let stakes: Vec<Stake> = plans
            .iter()
            .flatten()
            .flat_map(|plan| plan.stakes)
            .flatten()
            .collect();
        assert!(stakes.iter().any(|stake| stake.slot == 1));
        assert!(
            stakes
                .iter()
                .any(|stake| matches!(stake.exit, Exit::Auto(_)))
        );
        assert!(
            stakes
                .iter()
                .any(|stake| matches!(stake.exit, Exit::Manual(_)))
        );
        for plan in plans.iter().flatten() {
            assert!(plan.delay_ms <= BET_DELAY_MS_MAX);
            assert!(plan.stakes[0].is_some());
        }
        for stake in stakes {
            assert!(STAKES_MINOR.contains(&stake.amount_minor));
            let (Exit::Auto(target) | Exit::Manual(target)) = stake.exit;
            assert!((TARGET_HUNDREDTHS_MIN..=TARGET_HUNDREDTHS_MAX).contains(&target));
        }
    }

    #[test]
    fn no_bet_when_the_window_is_too_short() {
        let mut rng = SmallRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(plan_round(&mut rng, BET_MARGIN_MS - 1), None);
        }
        let plan = (0..100)
            .find_map(|_| plan_round(&mut rng, BET_MARGIN_MS + 10))
            .unwrap();
        assert!(plan.delay_ms <= 10);
    }
}
