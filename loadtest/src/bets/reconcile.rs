//! The bets the server acknowledged and the ledger check behind them: the ledger must
//! hold exactly the acked bets of the run's players, each under its
//! `bet:{room}:{round}:{player}:{slot}` id with the acked amount, and no bet of theirs
//! that was never acked; acked bets refunded since (an aborted round) are counted.

use std::collections::{HashMap, HashSet};

use aloft::ledger::{Account, BetRef, BetTransferKind, Ledger, Transfer, TransferId, TransferKind};
use anyhow::Context;
use serde::Serialize;

/// Mismatches and errors listed verbatim; further ones are only counted.
pub const LISTED_MAX: usize = 20;

/// A bet the server acknowledged with `bet_ok`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedBet {
    pub round: u64,
    pub player: String,
    pub slot: u8,
    pub amount: i64,
    /// When the ack arrived, unix microseconds.
    pub acked_at_us: u64,
}

impl AckedBet {
    /// The ledger id of this bet's stake.
    pub fn transfer_id(&self, room: &str) -> String {
        let bet = BetRef {
            room: room.to_owned(),
            round: self.round,
            player: self.player.clone(),
            slot: self.slot,
        };
        TransferId::OfBet {
            kind: BetTransferKind::Stake,
            bet,
        }
        .to_string()
    }
}

/// How the ledger compares with the acked bets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reconciliation {
    pub acked: u64,
    /// Acked bets found in the ledger with the acked amount.
    pub matched: u64,
    /// Bet transfers of the run's players in the ledger.
    pub ledger_bets: u64,
    /// Acked bets refunded (their round was aborted, e.g. at shutdown).
    pub refunded: u64,
    pub mismatches_total: u64,
    pub first_mismatches: Vec<String>,
}

impl Reconciliation {
    /// Compares the acked `bet` with its stake transfer `id` as stored, if stored.
    fn compare(&mut self, id: &str, bet: &AckedBet, stored: Option<&Transfer>) {
        match stored {
            None => self.mismatch(format!(
                "{id}: acked ({}) but not in the ledger",
                bet.amount
            )),
            Some(transfer)
                if transfer.amount_minor != bet.amount
                    || transfer.kind != TransferKind::Bet
                    || transfer.debit != Account::Player(bet.player.clone())
                    || transfer.credit != Account::House =>
            {
                self.mismatch(format!(
                    "{id}: acked {} from player {}, ledger has {} {} {} -> {}",
                    bet.amount,
                    bet.player,
                    transfer.kind.as_str(),
                    transfer.amount_minor,
                    transfer.debit.key(),
                    transfer.credit.key()
                ));
            }
            Some(_) => self.matched += 1,
        }
    }

    fn mismatch(&mut self, message: String) {
        self.mismatches_total += 1;
        if self.first_mismatches.len() < LISTED_MAX {
            self.first_mismatches.push(message);
        }
    }
}

/// Checks that `ledger` holds exactly the `acked` bets of `players` in `room`.
pub async fn reconcile(
    ledger: &dyn Ledger,
    room: &str,
    players: &HashSet<String>,
    acked: &[AckedBet],
) -> anyhow::Result<Reconciliation> {
    let mut outcome = Reconciliation {
        acked: acked.len() as u64,
        ..Reconciliation::default()
    };
    let ours = |account: &Account| matches!(account, Account::Player(id) if players.contains(id));
    let stored: HashMap<String, _> = ledger
        .transfers_with_prefix(&TransferId::room_prefix(BetTransferKind::Stake, room))
        .await
        .context("reading the bet transfers")?
        .into_iter()
        .filter(|stored| ours(&stored.transfer.debit))
        .map(|stored| (stored.transfer.id.clone(), stored.transfer))
        .collect();
    outcome.ledger_bets = stored.len() as u64;
    let mut acked_ids = HashSet::new();
    for bet in acked {
        let id = bet.transfer_id(room);
        if !acked_ids.insert(id.clone()) {
            outcome.mismatch(format!("{id}: acked twice"));
            continue;
        }
        outcome.compare(&id, bet, stored.get(&id));
    }
    let mut unacked: Vec<&String> = stored
        .keys()
        .filter(|id| !acked_ids.contains(*id))
        .collect();
    unacked.sort();
    for id in unacked {
        outcome.mismatch(format!(
            "{id}: in the ledger ({}) but never acked",
            stored[id].amount_minor
        ));
    }
    let refunds = ledger
        .transfers_with_prefix(&TransferId::room_prefix(BetTransferKind::Refund, room))
        .await
        .context("reading the refunds")?;
    outcome.refunded = refunds
        .iter()
        .filter_map(|stored| stake_of_refund(&stored.transfer.id))
        .filter(|stake_id| acked_ids.contains(stake_id))
        .count() as u64;
    Ok(outcome)
}

/// The id of the stake a refund returns, if `refund_id` is one of aloft's bet transfer ids.
fn stake_of_refund(refund_id: &str) -> Option<String> {
    match refund_id.parse() {
        Ok(TransferId::OfBet { bet, .. }) => Some(
            TransferId::OfBet {
                kind: BetTransferKind::Stake,
                bet,
            }
            .to_string(),
        ),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft::ledger::SqliteLedger;

    fn ack(round: u64, player: &str, slot: u8, amount: i64, acked_at_us: u64) -> AckedBet {
        AckedBet {
            round,
            player: player.to_owned(),
            slot,
            amount,
            acked_at_us,
        }
    }

    fn bet(id: &str, player: &str, amount_minor: i64) -> Transfer {
        Transfer {
            id: id.to_owned(),
            debit: Account::Player(player.to_owned()),
            credit: Account::House,
            amount_minor,
            kind: TransferKind::Bet,
            multiplier_hundredths: None,
        }
    }

    async fn ledger_with(transfers: Vec<Transfer>) -> SqliteLedger {
        let ledger = SqliteLedger::open_in_memory().unwrap();
        let grants = ["a", "b", "stranger"].map(|player| Transfer {
            id: TransferId::grant(player).to_string(),
            debit: Account::Mint,
            credit: Account::Player(player.to_owned()),
            amount_minor: 1_000,
            kind: TransferKind::Grant,
            multiplier_hundredths: None,
        });
        ledger.apply_batch(grants.to_vec()).await.unwrap();
        ledger.apply_batch(transfers).await.unwrap();
        ledger
    }

    #[tokio::test]
    async fn the_ledger_matches_exactly_the_acked_bets() {
        let refund = Transfer {
            id: "refund:main:2:b:0".to_owned(),
            debit: Account::House,
            credit: Account::Player("b".to_owned()),
            amount_minor: 10,
            kind: TransferKind::Refund,
            multiplier_hundredths: None,
        };
        let ledger = ledger_with(vec![
            bet("bet:main:1:a:0", "a", 10),
            bet("bet:main:1:a:1", "a", 11),
            bet("bet:main:2:b:0", "b", 10),
            refund,
            bet("bet:main:1:stranger:0", "stranger", 10), // not a player of this run
        ])
        .await;
        let players = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let acked = [
            ack(1, "a", 0, 10, 0),
            ack(1, "a", 1, 11, 0),
            ack(2, "b", 0, 10, 0),
        ];
        let outcome = reconcile(&ledger, "main", &players, &acked).await.unwrap();
        assert_eq!(
            outcome.mismatches_total, 0,
            "{:?}",
            outcome.first_mismatches
        );
        assert_eq!(
            (outcome.acked, outcome.matched, outcome.ledger_bets),
            (3, 3, 3)
        );
        assert_eq!(outcome.refunded, 1);
    }

    #[tokio::test]
    async fn missing_wrong_unacked_and_double_acked_bets_are_mismatches() {
        let ledger = ledger_with(vec![
            bet("bet:main:1:a:0", "a", 12),  // acked as 10
            bet("bet:main:1:b:0", "b", 10),  // never acked
            bet("bet:other:1:a:1", "a", 11), // another room: ignored
        ])
        .await;
        let players = HashSet::from(["a".to_owned(), "b".to_owned()]);
        let acked = [
            ack(1, "a", 0, 10, 0),
            ack(1, "a", 1, 11, 0), // not in this room's ledger
            ack(1, "a", 1, 11, 0), // the same slot acked twice
        ];
        let outcome = reconcile(&ledger, "main", &players, &acked).await.unwrap();
        assert_eq!(outcome.matched, 0);
        assert_eq!(
            outcome.mismatches_total, 4,
            "{:?}",
            outcome.first_mismatches
        );
        let listed = outcome.first_mismatches.join("\n");
        for expected in [
            "bet:main:1:a:0: acked 10 from player a, ledger has bet 12",
            "bet:main:1:a:1: acked (11) but not in the ledger",
            "bet:main:1:a:1: acked twice",
            "bet:main:1:b:0: in the ledger (10) but never acked",
        ] {
            assert!(listed.contains(expected), "{expected:?} not in\n{listed}");
        }
    }
}
