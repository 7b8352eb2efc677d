//! Startup recovery from the journal: the rounds a process left unfinished are settled
//! (every open stake refunded, the round journaled Aborted with its totals), the stakes of
//! a round are read back from the ledger ([`bets_in_flight`]) and the next round number
//! found.

use std::collections::HashSet;

use crate::engine::round::{BetInFlight, BetSettled};
use crate::ledger::{
    Account, BetRef, BetTransferKind, Ledger, LedgerError, RoundRecord, RoundStatus,
    StoredTransfer, Transfer, TransferId, TransferKind, TransferOutcome,
};

use super::deps::LedgerWriter;

/// The round `room` plays next after its newest journaled one.
pub(crate) async fn next_round(ledger: &dyn Ledger, room: &str) -> Result<u64, LedgerError> {
    let newest = ledger.recent_rounds(room, 1).await?;
    Ok(newest.first().map_or(1, |record| record.round + 1))
}

/// Settles `rounds`, left Betting or Flying by a process that died: refunds every stake
/// with neither a payout nor a refund, then journals the round Aborted with its totals
/// recomputed from its transfers (the record it was left with predates its payouts).
pub(super) async fn abort_unfinished_rounds(
    room: &str,
    writer: &LedgerWriter,
    rounds: Vec<RoundRecord>,
    now_ms: u64,
) -> Result<(), LedgerError> {
    for record in rounds {
        let bets = bets_in_flight(room, record.round, writer.ledger.as_ref()).await?;
        let refunds = refunds_owed(room, record.round, &bets);
        let refunded = refunds.len();
        if !refunds.is_empty() {
            let outcomes = writer.apply_batch(refunds.clone()).await?;
            for (refund, outcome) in refunds.iter().zip(&outcomes) {
                assert!(
                    matches!(outcome, TransferOutcome::Committed { .. }),
                    "refund {} refused ({outcome:?}): the house may go negative",
                    refund.id
                );
            }
        }
        tracing::warn!(
            room,
            round = record.round,
            refunded,
            "unfinished round aborted"
        );
        let (bets_total_minor, payouts_total_minor) = settled_totals_minor(&bets);
        writer
            .record_round(RoundRecord {
                status: RoundStatus::Aborted,
                ended_at_ms: Some(now_ms),
                bets_total_minor,
                payouts_total_minor,
                ..record
            })
            .await?;
    }
    Ok(())
}

/// The refunds of the stakes of `round` that were neither paid out nor refunded.
fn refunds_owed(room: &str, round: u64, bets: &[BetInFlight]) -> Vec<Transfer> {
    let open = bets.iter().filter(|bet| bet.settled == BetSettled::Open);
    let refunds = open.map(|bet| Transfer {
        id: TransferId::OfBet {
            kind: BetTransferKind::Refund,
            bet: BetRef {
                room: room.to_owned(),
                round,
                player: bet.player.clone(),
                slot: bet.slot,
            },
        }
        .to_string(),
        debit: Account::House,
        credit: Account::Player(bet.player.clone()),
        amount_minor: bet.stake_minor,
        kind: TransferKind::Refund,
        multiplier_hundredths: None,
    });
    refunds.collect()
}

/// An aborted round's journal totals from its stakes: (Σ stakes that played, Σ payouts),
/// as the engine counts them: every stake not paid out is refunded by the abort (or was,
/// by its player's cancel), and a refunded stake is out of the round.
fn settled_totals_minor(bets: &[BetInFlight]) -> (i64, i64) {
    let paid_out = bets
        .iter()
        .filter(|bet| matches!(bet.settled, BetSettled::PaidOut { .. }));
    let staked = paid_out.map(|bet| bet.stake_minor).sum();
    let paid = bets.iter().map(|bet| match bet.settled {
        BetSettled::PaidOut { win_minor, .. } => win_minor,
        BetSettled::Open | BetSettled::Refunded => 0,
    });
    (staked, paid.sum())
}

/// Every stake of `round` in the ledger, with what was paid or refunded for it: the
/// three kinds of transfer are matched by the bet their [`TransferId`] names.
pub(super) async fn bets_in_flight(
    room: &str,
    round: u64,
    ledger: &dyn Ledger,
) -> Result<Vec<BetInFlight>, LedgerError> {
    let by_bet =
        async |kind: BetTransferKind| -> Result<Vec<(BetRef, StoredTransfer)>, LedgerError> {
            let prefix = TransferId::round_prefix(kind, room, round);
            let transfers = ledger.transfers_with_prefix(&prefix).await?;
            let keyed = transfers
                .into_iter()
                .map(|stored| match stored.transfer.id.parse() {
                    Ok(TransferId::OfBet { bet, .. }) => Ok((bet, stored)),
                    _ => Err(LedgerError::Corrupt(format!(
                        "bet id {}",
                        stored.transfer.id
                    ))),
                });
            keyed.collect()
        };
    let payouts: std::collections::HashMap<BetRef, StoredTransfer> =
        by_bet(BetTransferKind::Payout).await?.into_iter().collect();
    let refunded: HashSet<BetRef> = by_bet(BetTransferKind::Refund)
        .await?
        .into_iter()
        .map(|(bet, _)| bet)
        .collect();
    let mut bets = Vec::new();
    for (bet, stake) in by_bet(BetTransferKind::Stake).await? {
        let stake_minor = stake.transfer.amount_minor;
        let settled = if let Some(payout) = payouts.get(&bet) {
            let win_minor = payout.transfer.amount_minor;
            BetSettled::PaidOut {
                // Payouts record their multiplier; the quotient is a floor of it.
                multiplier_hundredths: payout.transfer.multiplier_hundredths.unwrap_or_else(|| {
                    u64::try_from(i128::from(win_minor) * 100 / i128::from(stake_minor))
                        .unwrap_or(u64::MAX)
                }),
                win_minor,
                balance_after_minor: payout.credit_balance_after_minor,
            }
        } else if refunded.contains(&bet) {
            BetSettled::Refunded
        } else {
            BetSettled::Open
        };
        bets.push(BetInFlight {
            player: bet.player,
            slot: bet.slot,
            stake_minor,
            auto_cashout_hundredths: stake.transfer.multiplier_hundredths,
            stake_balance_after_minor: stake.debit_balance_after_minor,
            settled,
        });
    }
    Ok(bets)
}
#[cfg(test)]
mod tests {
    use crate::engine::event::RoundEvent;

    use crate::fair::FairChain;
    use crate::ledger::SqliteLedger;
    use crate::ledger::{Account, Ledger, RoundRecord, RoundStatus, TransferKind};

    use super::super::test_support::*;

    /// Leaves round 5 as a process that died while it was flying would: alice's stake
    /// open, bob paid, carol refunded.
    async fn seed_dead_round(ledger: &SqliteLedger, chain: &FairChain) {
        let movements = [
            ("bet:r1:5:alice:0", "alice", 1_000, TransferKind::Bet),
            ("bet:r1:5:bob:0", "bob", 500, TransferKind::Bet),
            ("payout:r1:5:bob:0", "bob", 1_000, TransferKind::Payout),
            ("bet:r1:5:carol:1", "carol", 300, TransferKind::Bet),
            ("refund:r1:5:carol:1", "carol", 300, TransferKind::Refund),
        ];
        for (id, player, amount_minor, kind) in movements {
            let player = Account::Player(player.into());
            let (debit, credit) = match kind {
                TransferKind::Bet => (player, Account::House),
                _ => (Account::House, player),
            };
            apply_one(ledger, id, debit, credit, amount_minor, kind).await;
        }
        let record = RoundRecord {
            room: ROOM.into(),
            round: 5,
            hash: chain.round_hash(5).unwrap(),
            crash_hundredths: 200,
            started_at_ms: 1,
            ended_at_ms: None,
            status: RoundStatus::Flying,
            // As journaled when the flight started, before any payout.
            bets_total_minor: 1_800,
            payouts_total_minor: 0,
        };
        ledger.record_round(record).await.unwrap();
    }

    #[tokio::test]
    async fn a_round_left_unfinished_is_refunded_at_start() {
        let fixture = fixture(1, |_| true);
        let ledger = fixture.ledger.as_ref();
        for player in ["alice", "bob", "carol"] {
            grant(ledger, player, 10_000).await;
        }
        seed_dead_round(ledger, &fixture.deps.chain).await;

        let (mut watcher, _replies, shutdown, engine) = start(&fixture).await;
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 6, .. }))
            .await;
        shutdown.cancel();
        engine.await.unwrap().unwrap();

        assert_eq!(balance_of(ledger, "alice").await, 10_000);
        assert_eq!(balance_of(ledger, "bob").await, 10_500);
        assert_eq!(balance_of(ledger, "carol").await, 10_000);
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        assert!(ledger.unfinished_rounds(ROOM).await.unwrap().is_empty());
        let rounds = ledger.recent_rounds(ROOM, 2).await.unwrap();
        let statuses: Vec<(u64, RoundStatus)> = rounds
            .iter()
            .map(|record| (record.round, record.status))
            .collect();
        assert_eq!(
            statuses,
            vec![(6, RoundStatus::Aborted), (5, RoundStatus::Aborted)]
        );
        // Recomputed from its transfers: the stake that played (bob's: alice's was
        // refunded now, carol's before), and bob's payout (not the refunds).
        assert_eq!(
            (rounds[1].bets_total_minor, rounds[1].payouts_total_minor),
            (500, 1_000)
        );
        assert_eq!(watcher.finish().len(), 1);
    }
}
