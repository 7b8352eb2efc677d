//! The money invariants of a room, checked after every step of a random scenario.
//!
//! A [`Scenario`] is a room's settings (salt, max profit) and a list of [`Step`]s: time
//! passing, the runner waking (`advance`), bets and cashouts from four players with few
//! request ids (so replays happen), a failing ledger batch, a shutdown. [`run`] drives a
//! [`RoomCore`] with them the way `engine::runner` does (one wake's transfers go to the
//! ledger at once and their outcomes are fed back; a failed batch refuses its stakes and
//! retries its credits) against a model ledger, and panics at the first broken rule:
//!
//! - the sum of all balances stays 0 (the mint holds minus what it granted) and no player
//!   balance goes below zero; a transfer id is committed at most once;
//! - a bet moves Pending → Active (stake taken) → CashedOut | Lost | Refunded exactly
//!   once; a refund gives back the stake, and only after a shutdown;
//! - a payout is `floor(stake · m / 100)` with 100 ≤ m < the round's crash point, at most
//!   the bet's auto-cashout target when the engine made it, at the engine's current
//!   multiplier when a request did; a round's total profit never exceeds
//!   `round_profit_max_minor`;
//! - events are numbered 1, 2, 3… with no gap; per round Betting → Flying → Crash, the
//!   crash at the chain's crash point with the chain's hash; the core's phase only moves
//!   forward; journal statuses only move forward and a finished round's totals are the
//!   stakes and payouts it made;
//! - every request gets at most one answer, of its own type and with its own `req`, and
//!   one answer by the end unless more than `REQUEST_WAITERS_MAX` connections sent it.
//!
//! Compiled for `cargo test` (the proptest below) and with the `fuzzing` feature for the
//! `engine_steps` fuzz target (`fuzz/`), which feeds it arbitrary bytes through
//! [`Scenario::decode`]: one decoder, so an input either finds is a test case for both.
//! Release builds do not contain it.
//!
//! `scenario` is what happens to the room and how bytes decode into it; `model` the
//! ledger and bets as the engine must leave them; `simulation` the room driven by the
//! steps, with the checks of every rule above after each.

mod model;
mod scenario;
mod simulation;

pub use scenario::{STEPS_MAX, Scenario, Step};
pub use simulation::Outcomes;

use simulation::Simulation;

/// Runs `scenario`, panicking at the first broken invariant; tells what it reached.
pub fn run(scenario: &Scenario) -> Outcomes {
    let mut room = Simulation::new(scenario);
    for step in &scenario.steps {
        room.step(step);
    }
    room.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random scenarios keep every money invariant (see the module doc).
        #[test]
        fn random_steps_keep_the_money_invariants(
            bytes in proptest::collection::vec(any::<u8>(), 0..4_000)
        ) {
            run(&Scenario::decode(&bytes));
        }
    }

    /// The property above is not vacuous: random steps play rounds and reach every end
    /// of a bet, the max-profit cap included.
    #[test]
    fn random_steps_reach_every_outcome() {
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let strategy = proptest::collection::vec(any::<u8>(), 0..4_000);
        let mut reached = Outcomes::default();
        for _ in 0..200 {
            let bytes = strategy.new_tree(&mut runner).unwrap().current();
            let outcomes = run(&Scenario::decode(&bytes));
            reached.rounds = reached.rounds.max(outcomes.rounds);
            reached.cashed_out += outcomes.cashed_out;
            reached.lost += outcomes.lost;
            reached.refunded += outcomes.refunded;
            reached.capped += outcomes.capped;
            reached.cancelled += outcomes.cancelled;
        }
        assert!(reached.rounds > 3, "{reached:?}");
        assert!(reached.cashed_out > 0 && reached.lost > 0, "{reached:?}");
        assert!(reached.refunded > 0 && reached.capped > 0, "{reached:?}");
        assert!(reached.cancelled > 0, "{reached:?}");
    }
}
