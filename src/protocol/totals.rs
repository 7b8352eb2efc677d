//! A round's totals between the engine's domain and the wire, both ways.

use crate::engine::RoundTotals;

pub(super) fn wire_totals(totals: RoundTotals) -> super::RoundTotals {
    super::RoundTotals {
        bets: totals.bets,
        staked: totals.staked_minor,
        cashouts: totals.cashouts,
        won: totals.won_minor,
        cashout_stakes: totals.cashed_out_stakes_minor,
    }
}

pub(super) fn domain_totals(totals: super::RoundTotals) -> RoundTotals {
    RoundTotals {
        bets: totals.bets,
        staked_minor: totals.staked,
        cashouts: totals.cashouts,
        won_minor: totals.won,
        cashed_out_stakes_minor: totals.cashout_stakes,
    }
}
