//! A player as an operator looks them up (balance, last bets with their transfers) and
//! the audit trail: reads of the ledger, and the appends of actions their caller
//! performs (kick, ban: player-level actions no engine sees).

use serde::Serialize;

use crate::ledger::{
    Account, AuditEntry, BetTransferKind, Ledger, PLAYER_BETS_MAX, PlayerBet, TransferId,
    TransferKind,
};

use super::AdminError;

/// A player's balance and latest bets (at most `ledger::PLAYER_BETS_MAX`), newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlayerRecord {
    pub player: String,
    /// The display name others see: the one the player picked, else its default.
    pub name: String,
    pub balance_minor: i64,
    pub bets: Vec<PlayerBetRecord>,
}

/// One bet of a player: its stake transfer and what settled it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlayerBetRecord {
    pub room: String,
    pub round: u64,
    pub slot: u8,
    /// The stake's transfer id.
    pub stake_id: String,
    pub stake_minor: i64,
    pub auto_cashout_hundredths: Option<u64>,
    /// Unix ms the stake was committed.
    pub staked_at_ms: u64,
    pub outcome: BetOutcome,
}

/// What became of a bet, as the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BetOutcome {
    /// No payout or refund: the bet is still in play, or it was lost at the crash.
    Unsettled,
    /// Cashed out at `multiplier_hundredths`, `payout_minor` paid (stake included).
    PaidOut {
        id: String,
        multiplier_hundredths: u64,
        payout_minor: i64,
        at_ms: u64,
    },
    /// The stake given back (its round was aborted).
    Refunded {
        id: String,
        refund_minor: i64,
        at_ms: u64,
    },
}

/// The player's balance and their latest bets with their transfers.
pub async fn player_record(ledger: &dyn Ledger, player: &str) -> Result<PlayerRecord, AdminError> {
    let balance_minor = ledger.balance(&Account::Player(player.to_owned())).await?;
    let bets = ledger.player_bets(player, PLAYER_BETS_MAX).await?;
    let picked = ledger.display_name(player).await?;
    Ok(PlayerRecord {
        player: player.to_owned(),
        name: picked.unwrap_or_else(|| crate::display_name::default_name(player)),
        balance_minor,
        bets: bets.into_iter().filter_map(bet_record).collect(),
    })
}

/// The newest `limit` audit entries (at most `ledger::AUDIT_ENTRIES_MAX`), newest first.
pub async fn audit_trail(ledger: &dyn Ledger, limit: usize) -> Result<Vec<AuditEntry>, AdminError> {
    Ok(ledger.audit_entries(limit).await?)
}

/// Appends an action its caller performed (a kick) to the audit. Room controls are
/// audited by the engine that applies them, with the change.
pub async fn record_action(ledger: &dyn Ledger, entry: &AuditEntry) -> Result<(), AdminError> {
    Ok(ledger.append_audit(entry).await?)
}

/// The record of a stake whose id aloft wrote; a stake under another id (none of aloft's
/// own) is left out.
fn bet_record(bet: PlayerBet) -> Option<PlayerBetRecord> {
    let stake = bet.stake.transfer;
    let Ok(TransferId::OfBet {
        kind: BetTransferKind::Stake,
        bet: key,
    }) = stake.id.parse()
    else {
        return None;
    };
    let outcome = match bet.settlement {
        None => BetOutcome::Unsettled,
        Some((settled, at_ms)) => match settled.transfer.kind {
            TransferKind::Refund => BetOutcome::Refunded {
                id: settled.transfer.id,
                refund_minor: settled.transfer.amount_minor,
                at_ms,
            },
            _ => BetOutcome::PaidOut {
                id: settled.transfer.id,
                multiplier_hundredths: settled.transfer.multiplier_hundredths.unwrap_or(100),
                payout_minor: settled.transfer.amount_minor,
                at_ms,
            },
        },
    };
    Some(PlayerBetRecord {
        room: key.room,
        round: key.round,
        slot: key.slot,
        stake_id: stake.id,
        stake_minor: stake.amount_minor,
        auto_cashout_hundredths: stake.multiplier_hundredths,
        staked_at_ms: bet.staked_at_ms,
        outcome,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{SqliteLedger, Transfer};

    fn transfer(id: &str, debit: Account, credit: Account, amount: i64) -> Transfer {
        let kind = match (&debit, &credit) {
            (Account::Mint, _) => TransferKind::Grant,
            (Account::Player(_), _) => TransferKind::Bet,
            _ if id.starts_with("refund") => TransferKind::Refund,
            _ => TransferKind::Payout,
        };
        Transfer {
            id: id.to_owned(),
            debit,
            credit,
            amount_minor: amount,
            kind,
            multiplier_hundredths: None,
        }
    }

    #[tokio::test]
    async fn a_player_record_lists_bets_with_their_payouts_and_refunds() {
        let ledger = SqliteLedger::open_in_memory().unwrap();
        let alice = || Account::Player("alice".into());
        let mut stake = transfer("bet:main:1:alice:0", alice(), Account::House, 100);
        stake.multiplier_hundredths = Some(200);
        let mut payout = transfer("payout:main:1:alice:0", Account::House, alice(), 200);
        payout.multiplier_hundredths = Some(200);
        let batch = vec![
            transfer("grant:alice", Account::Mint, alice(), 1_000),
            stake,
            payout,
            transfer("bet:main:2:alice:1", alice(), Account::House, 50),
            transfer("refund:main:2:alice:1", Account::House, alice(), 50),
            transfer("bet:main:3:alice:0", alice(), Account::House, 30),
        ];
        ledger.apply_batch(batch).await.unwrap();
        let record = player_record(&ledger, "alice").await.unwrap();
        assert_eq!(record.balance_minor, 1_070);
        let rounds: Vec<(u64, u8)> = record.bets.iter().map(|b| (b.round, b.slot)).collect();
        assert_eq!(rounds, [(3, 0), (2, 1), (1, 0)]);
        assert_eq!(record.bets[0].outcome, BetOutcome::Unsettled);
        assert!(matches!(
            record.bets[1].outcome,
            BetOutcome::Refunded {
                refund_minor: 50,
                ..
            }
        ));
        assert!(matches!(
            record.bets[2].outcome,
            BetOutcome::PaidOut {
                multiplier_hundredths: 200,
                payout_minor: 200,
                ..
            }
        ));
        assert_eq!(record.bets[2].auto_cashout_hundredths, Some(200));
    }
}
