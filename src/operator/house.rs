//! The house's figures of a room from the ledger: wagered, paid out, profit and realized
//! RTP over its last [`RECENT_ROUNDS`] and [`RECENT_ROUNDS_MAX`] settled rounds, next to
//! the configured target `1 − house_edge`. Integers only: money in minor units, RTP in
//! basis points (floored). One bounded query per room (`Ledger::settled_rounds`).

use serde::Serialize;

use crate::ledger::{Ledger, LedgerError, RoundRecord};

/// The short window, in settled rounds.
pub const RECENT_ROUNDS: usize = 100;
/// The long window, in settled rounds: the most one query reads.
pub const RECENT_ROUNDS_MAX: usize = 1_000;

const BASIS_POINTS: i128 = 10_000;

/// A window of settled rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HouseWindow {
    /// Settled rounds in the window (fewer than its size while the room is young).
    pub rounds: usize,
    pub wagered_minor: i64,
    pub paid_out_minor: i64,
    /// Wagered − paid out: the house's side.
    pub profit_minor: i64,
    /// Paid out ÷ wagered, in basis points; absent while nothing was wagered.
    pub rtp_bp: Option<i64>,
}

/// A room's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HouseFigures {
    pub room: String,
    pub last_100: HouseWindow,
    pub last_1000: HouseWindow,
    /// `10,000 − fair.house_edge_bp`: what the realized RTP tends to.
    pub target_rtp_bp: i64,
}

/// The figures of `room` and its last crash points (newest first, at most `crash_points_max`).
pub async fn house_figures(
    ledger: &dyn Ledger,
    room: &str,
    house_edge_bp: u32,
    crash_points_max: usize,
) -> Result<(HouseFigures, Vec<u64>), LedgerError> {
    let settled = ledger.settled_rounds(room, RECENT_ROUNDS_MAX).await?;
    let crash_points = settled
        .iter()
        .take(crash_points_max)
        .map(|record| record.crash_hundredths)
        .collect();
    Ok((figures(room, &settled, house_edge_bp), crash_points))
}

/// The figures of `settled` rounds (newest first).
pub fn figures(room: &str, settled: &[RoundRecord], house_edge_bp: u32) -> HouseFigures {
    let recent = &settled[..settled.len().min(RECENT_ROUNDS)];
    HouseFigures {
        room: room.to_owned(),
        last_100: window(recent),
        last_1000: window(&settled[..settled.len().min(RECENT_ROUNDS_MAX)]),
        target_rtp_bp: 10_000 - i64::from(house_edge_bp),
    }
}

fn window(rounds: &[RoundRecord]) -> HouseWindow {
    let wagered_minor: i64 = rounds.iter().map(|r| r.bets_total_minor).sum();
    let paid_out_minor: i64 = rounds.iter().map(|r| r.payouts_total_minor).sum();
    let rtp_bp = (wagered_minor > 0).then(|| {
        let ratio = i128::from(paid_out_minor) * BASIS_POINTS / i128::from(wagered_minor);
        i64::try_from(ratio).expect("a ratio of two i64 sums times 10,000 fits")
    });
    HouseWindow {
        rounds: rounds.len(),
        wagered_minor,
        paid_out_minor,
        profit_minor: wagered_minor - paid_out_minor,
        rtp_bp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::RoundStatus;

    fn settled(round: u64, wagered: i64, paid: i64) -> RoundRecord {
        RoundRecord {
            room: "main".into(),
            round,
            hash: String::new(),
            crash_hundredths: 200,
            started_at_ms: 1,
            ended_at_ms: Some(2),
            status: RoundStatus::Crashed,
            bets_total_minor: wagered,
            payouts_total_minor: paid,
        }
    }

    #[test]
    fn windows_add_up_their_rounds_and_rtp_is_in_whole_basis_points() {
        // 150 rounds, newest first: the newest 100 wagered 1,000 and paid 970 each, the
        // older 50 wagered 1,000 and paid 1,500 each.
        let rounds: Vec<RoundRecord> = (0..150)
            .map(|index| settled(150 - index, 1_000, if index < 100 { 970 } else { 1_500 }))
            .collect();
        let figures = figures("main", &rounds, 100);
        assert_eq!(figures.target_rtp_bp, 9_900);
        let short = figures.last_100;
        assert_eq!((short.rounds, short.wagered_minor), (100, 100_000));
        assert_eq!((short.paid_out_minor, short.profit_minor), (97_000, 3_000));
        assert_eq!(short.rtp_bp, Some(9_700));
        let long = figures.last_1000;
        assert_eq!((long.rounds, long.paid_out_minor), (150, 172_000));
        assert_eq!(long.profit_minor, -22_000);
        // 172,000 / 150,000 = 1.14666…: floored to 11,466 bp.
        assert_eq!(long.rtp_bp, Some(11_466));
    }

    #[test]
    fn no_wager_no_rtp() {
        let figures = figures("main", &[settled(1, 0, 0)], 100);
        assert_eq!(figures.last_100.rtp_bp, None);
        assert_eq!(figures.last_1000.rounds, 1);
    }
}
