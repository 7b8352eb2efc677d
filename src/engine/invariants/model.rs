//! The ledger and the bets as the engine must leave them: balances and committed ids, and
//! where each bet is.

use std::collections::BTreeMap;

use crate::ledger::{Account, Transfer};

/// Where a bet is, as the model follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum BetOutcome {
    /// Accepted; the stake is on its way to the ledger.
    Pending,
    Active,
    CashedOut,
    Lost,
    Refunded,
}

#[derive(Debug)]
pub(super) struct ModelBet {
    pub(super) stake_minor: i64,
    pub(super) auto_cashout_hundredths: Option<u64>,
    pub(super) outcome: BetOutcome,
}

/// Balances and committed transfer ids: the ledger as the engine must find it.
#[derive(Debug, Default)]
pub(super) struct ModelLedger {
    pub(super) balances: BTreeMap<Account, i64>,
    committed_ids: std::collections::HashSet<String>,
}

impl ModelLedger {
    pub(super) fn balance(&self, account: &Account) -> i64 {
        self.balances.get(account).copied().unwrap_or(0)
    }

    /// Commits `transfer`, or refuses it (nothing moves) when the debited player's
    /// balance is short; returns the balances after (debit, credit).
    pub(super) fn commit(&mut self, transfer: &Transfer) -> Option<(i64, i64)> {
        transfer
            .validate()
            .expect("the engine sends only valid transfers");
        let debit_after = self.balance(&transfer.debit) - transfer.amount_minor;
        if matches!(transfer.debit, Account::Player(_)) && debit_after < 0 {
            return None;
        }
        assert!(
            self.committed_ids.insert(transfer.id.clone()),
            "transfer {} committed twice",
            transfer.id
        );
        self.balances.insert(transfer.debit.clone(), debit_after);
        let credit_after = self.balance(&transfer.credit) + transfer.amount_minor;
        self.balances.insert(transfer.credit.clone(), credit_after);
        Some((debit_after, credit_after))
    }
}
