//! The helpers of the conformance cases: transfers of each kind, outcomes, fences, and
//! the reads and checks the cases share.

use super::super::{
    Account, Fence, Ledger, LedgerError, StoredTransfer, Transfer, TransferKind, TransferOutcome,
};

pub(crate) fn player(id: &str) -> Account {
    Account::Player(id.to_owned())
}

pub(crate) fn transfer(id: &str, debit: Account, credit: Account, amount_minor: i64) -> Transfer {
    let kind = match (&debit, &credit) {
        (Account::Mint, _) => TransferKind::Grant,
        (Account::Player(_), _) => TransferKind::Bet,
        _ => TransferKind::Payout,
    };
    Transfer {
        id: id.to_owned(),
        debit,
        credit,
        amount_minor,
        kind,
        multiplier_hundredths: None,
    }
}

pub(super) fn grant(id: &str, to: &str, amount_minor: i64) -> Transfer {
    transfer(id, Account::Mint, player(to), amount_minor)
}

pub(super) fn bet(id: &str, from: &str, amount_minor: i64) -> Transfer {
    transfer(id, player(from), Account::House, amount_minor)
}

pub(super) fn payout(id: &str, to: &str, amount_minor: i64) -> Transfer {
    transfer(id, Account::House, player(to), amount_minor)
}

pub(super) fn with_multiplier(
    mut transfer: Transfer,
    multiplier_hundredths: Option<u64>,
) -> Transfer {
    transfer.multiplier_hundredths = multiplier_hundredths;
    transfer
}

pub(super) fn committed(debit_after: i64, credit_after: i64, replayed: bool) -> TransferOutcome {
    TransferOutcome::Committed {
        debit_balance_after_minor: debit_after,
        credit_balance_after_minor: credit_after,
        replayed,
    }
}

pub(super) async fn apply(ledger: &dyn Ledger, batch: Vec<Transfer>) -> Vec<TransferOutcome> {
    ledger.apply_batch(batch).await.expect("batch applies")
}

pub(super) async fn balance(ledger: &dyn Ledger, account: Account) -> i64 {
    ledger.balance(&account).await.expect("balance reads")
}

pub(super) fn assert_strictly_increasing(transfers: &[StoredTransfer]) {
    for pair in transfers.windows(2) {
        assert!(pair[0].sequence < pair[1].sequence, "commit order");
    }
}

pub(crate) fn fence(room: &str, token: u64) -> Fence {
    Fence {
        room: room.to_owned(),
        token,
    }
}

/// Asserts that `result` is the refusal of `token` in room `main`, whose fence is at
/// `current`.
pub(crate) fn assert_fenced(
    result: Result<impl std::fmt::Debug, LedgerError>,
    token: u64,
    current: u64,
) {
    match result {
        Err(LedgerError::Fenced {
            room,
            token: refused,
            current: holder,
        }) => assert_eq!((room.as_str(), refused, holder), ("main", token, current)),
        other => panic!("expected Fenced {{ {token}, current {current} }}, got {other:?}"),
    }
}
