//! Rows to values and back: how transfers and rounds are read from their columns, and
//! how unsigned values are stored in PostgreSQL's signed BIGINT.

use tokio_postgres::Row;

use crate::ledger::{
    Account, LedgerError, RoundRecord, RoundStatus, StoredTransfer, Transfer, TransferKind,
};

pub(super) fn transfer_from_row(row: &Row) -> Result<StoredTransfer, LedgerError> {
    let account = |index: usize| -> Result<Account, LedgerError> {
        let key: String = row.try_get(index)?;
        Account::from_key(&key).ok_or_else(|| LedgerError::Corrupt(format!("account {key}")))
    };
    let kind_text: String = row.try_get(5)?;
    let kind = kind_text
        .parse::<TransferKind>()
        .ok()
        .ok_or_else(|| LedgerError::Corrupt(format!("transfer kind {kind_text}")))?;
    let multiplier: Option<i64> = row.try_get(8)?;
    let multiplier_hundredths = multiplier
        .map(|value| {
            u64::try_from(value)
                .map_err(|_| LedgerError::Corrupt(format!("negative multiplier {value}")))
        })
        .transpose()?;
    Ok(StoredTransfer {
        transfer: Transfer {
            id: row.try_get(0)?,
            debit: account(2)?,
            credit: account(3)?,
            amount_minor: row.try_get(4)?,
            kind,
            multiplier_hundredths,
        },
        debit_balance_after_minor: row.try_get(6)?,
        credit_balance_after_minor: row.try_get(7)?,
        sequence: row.try_get(1)?,
    })
}

pub(super) fn round_from_row(row: &Row) -> Result<RoundRecord, LedgerError> {
    let unsigned = |index: usize| -> Result<u64, LedgerError> {
        let value: i64 = row.try_get(index)?;
        u64::try_from(value)
            .map_err(|_| LedgerError::Corrupt(format!("negative round field {value}")))
    };
    let ended_at_ms: Option<i64> = row.try_get(5)?;
    let status_text: String = row.try_get(6)?;
    Ok(RoundRecord {
        room: row.try_get(0)?,
        round: unsigned(1)?,
        hash: row.try_get(2)?,
        crash_hundredths: unsigned(3)?,
        started_at_ms: unsigned(4)?,
        ended_at_ms: match ended_at_ms {
            Some(_) => Some(unsigned(5)?),
            None => None,
        },
        status: status_text
            .parse::<RoundStatus>()
            .ok()
            .ok_or_else(|| LedgerError::Corrupt(format!("round status {status_text}")))?,
        bets_total_minor: row.try_get(7)?,
        payouts_total_minor: row.try_get(8)?,
    })
}

/// PostgreSQL's BIGINT is signed; a journal value or multiplier above `i64::MAX` is
/// refused rather than wrapped.
pub(super) fn to_sql_integer(field: &'static str, value: u64) -> Result<i64, LedgerError> {
    i64::try_from(value).map_err(|_| LedgerError::OutOfRange { field, value })
}

/// Now, as stored in `created_at_ms` and `applied_at_ms`.
pub(super) fn now_ms() -> i64 {
    i64::try_from(crate::clock::unix_now_ms()).unwrap_or(i64::MAX)
}
