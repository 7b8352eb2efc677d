//! How a stored transfer and a journaled round are read back from their columns, for both
//! stores: each store's row type reads one column at a time ([`StoredRow`]), and one
//! decoder per record turns the columns into values. A value this build did not write
//! (an unknown account key, transfer kind or round status, a negative unsigned field) is
//! the store's corruption error, never a guess.

use super::{Account, RoundRecord, StoredTransfer, Transfer, TransferKind};

/// The columns both backends read a stored transfer from, in the order
/// [`transfer_from_row`] reads them.
pub(crate) const SELECT_TRANSFER_COLUMNS: &str = "SELECT id, sequence, debit, credit, amount, \
     kind, debit_balance_after, credit_balance_after, multiplier_hundredths FROM transfers";

/// The columns both backends read a journaled round from, in the order
/// [`round_from_row`] reads them.
pub(crate) const SELECT_ROUND_COLUMNS: &str = "SELECT room, round, hash, crash_hundredths, \
     started_at_ms, ended_at_ms, status, bets_total_minor, payouts_total_minor FROM rounds";

/// A row of a store, read by column index.
pub(crate) trait StoredRow {
    /// The store's error: a failed read, or a value this build did not write.
    type Error;

    fn text(&self, column: usize) -> Result<String, Self::Error>;
    fn integer(&self, column: usize) -> Result<i64, Self::Error>;
    fn optional_integer(&self, column: usize) -> Result<Option<i64>, Self::Error>;
    /// The error for a value in `column` this build did not write.
    fn corrupt(&self, column: usize, message: String) -> Self::Error;
}

/// The transfer columns of [`SELECT_TRANSFER_COLUMNS`] (without its `SELECT` and `FROM`),
/// qualified by a table alias: `{alias}.id, {alias}.sequence, …`, for queries that read
/// several transfers per row ([`transfer_from_columns`]).
pub(crate) fn transfer_columns_of(alias: &str) -> String {
    const COLUMNS: [&str; TRANSFER_COLUMNS] = [
        "id",
        "sequence",
        "debit",
        "credit",
        "amount",
        "kind",
        "debit_balance_after",
        "credit_balance_after",
        "multiplier_hundredths",
    ];
    let qualified: Vec<String> = COLUMNS
        .iter()
        .map(|column| format!("{alias}.{column}"))
        .collect();
    qualified.join(", ")
}

/// Columns a stored transfer takes in a row (see [`transfer_columns_of`]).
pub(crate) const TRANSFER_COLUMNS: usize = 9;

/// A row of [`SELECT_TRANSFER_COLUMNS`].
pub(crate) fn transfer_from_row<R: StoredRow>(row: &R) -> Result<StoredTransfer, R::Error> {
    transfer_from_columns(row, 0)
}

/// The transfer whose [`TRANSFER_COLUMNS`] columns start at column `first` of `row`.
pub(crate) fn transfer_from_columns<R: StoredRow>(
    row: &R,
    first: usize,
) -> Result<StoredTransfer, R::Error> {
    let account = |column: usize| {
        let key = row.text(first + column)?;
        Account::from_key(&key)
            .ok_or_else(|| row.corrupt(first + column, format!("unknown account {key}")))
    };
    let kind_text = row.text(first + 5)?;
    let kind = kind_text
        .parse::<TransferKind>()
        .map_err(|_| row.corrupt(first + 5, format!("unknown transfer kind {kind_text}")))?;
    Ok(StoredTransfer {
        transfer: Transfer {
            id: row.text(first)?,
            debit: account(2)?,
            credit: account(3)?,
            amount_minor: row.integer(first + 4)?,
            kind,
            multiplier_hundredths: optional_unsigned(row, first + 8)?,
        },
        debit_balance_after_minor: row.integer(first + 6)?,
        credit_balance_after_minor: row.integer(first + 7)?,
        sequence: row.integer(first + 1)?,
    })
}

/// A row of [`SELECT_ROUND_COLUMNS`].
pub(crate) fn round_from_row<R: StoredRow>(row: &R) -> Result<RoundRecord, R::Error> {
    let status_text = row.text(6)?;
    Ok(RoundRecord {
        room: row.text(0)?,
        round: unsigned(row, 1)?,
        hash: row.text(2)?,
        crash_hundredths: unsigned(row, 3)?,
        started_at_ms: unsigned(row, 4)?,
        ended_at_ms: optional_unsigned(row, 5)?,
        status: status_text
            .parse()
            .map_err(|_| row.corrupt(6, format!("unknown round status {status_text}")))?,
        bets_total_minor: row.integer(7)?,
        payouts_total_minor: row.integer(8)?,
    })
}

/// An unsigned value, stored in a signed integer column.
pub(crate) fn unsigned<R: StoredRow>(row: &R, column: usize) -> Result<u64, R::Error> {
    let value = row.integer(column)?;
    u64::try_from(value).map_err(|_| row.corrupt(column, format!("negative value {value}")))
}

/// An unsigned value or NULL, stored in a signed integer column.
fn optional_unsigned<R: StoredRow>(row: &R, column: usize) -> Result<Option<u64>, R::Error> {
    match row.optional_integer(column)? {
        Some(_) => unsigned(row, column).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::RoundStatus;

    /// A row of text and integer columns, as a store would hand it over.
    struct FakeRow(Vec<Option<Column>>);

    enum Column {
        Text(&'static str),
        Integer(i64),
    }

    #[derive(Debug, PartialEq)]
    enum FakeError {
        WrongType(usize),
        Corrupt(usize, String),
    }

    impl StoredRow for FakeRow {
        type Error = FakeError;
        fn text(&self, column: usize) -> Result<String, FakeError> {
            match &self.0[column] {
                Some(Column::Text(text)) => Ok((*text).to_owned()),
                _ => Err(FakeError::WrongType(column)),
            }
        }
        fn integer(&self, column: usize) -> Result<i64, FakeError> {
            self.optional_integer(column)?
                .ok_or(FakeError::WrongType(column))
        }
        fn optional_integer(&self, column: usize) -> Result<Option<i64>, FakeError> {
            match &self.0[column] {
                Some(Column::Integer(value)) => Ok(Some(*value)),
                None => Ok(None),
                Some(Column::Text(_)) => Err(FakeError::WrongType(column)),
            }
        }
        fn corrupt(&self, column: usize, message: String) -> FakeError {
            FakeError::Corrupt(column, message)
        }
    }

    fn round_row(ended_at_ms: Option<i64>, status: &'static str) -> FakeRow {
        use Column::{Integer, Text};
        FakeRow(vec![
            Some(Text("main")),
            Some(Integer(7)),
            Some(Text("ab")),
            Some(Integer(250)),
            Some(Integer(1_000)),
            ended_at_ms.map(Integer),
            Some(Text(status)),
            Some(Integer(500)),
            Some(Integer(0)),
        ])
    }

    #[test]
    fn a_round_reads_back_with_or_without_its_end() {
        let crashed = round_from_row(&round_row(Some(2_000), "crashed")).unwrap();
        assert_eq!(crashed.round, 7);
        assert_eq!(crashed.ended_at_ms, Some(2_000));
        assert_eq!(crashed.status, RoundStatus::Crashed);
        let flying = round_from_row(&round_row(None, "flying")).unwrap();
        assert_eq!(flying.ended_at_ms, None);
    }

    #[test]
    fn values_this_build_did_not_write_are_corrupt() {
        let status = round_from_row(&round_row(None, "paused")).unwrap_err();
        let message = "unknown round status paused".to_owned();
        assert_eq!(status, FakeError::Corrupt(6, message));
        let ended = round_from_row(&round_row(Some(-1), "crashed")).unwrap_err();
        assert_eq!(ended, FakeError::Corrupt(5, "negative value -1".to_owned()));
    }

    #[test]
    fn a_transfer_reads_back_and_an_unknown_account_is_corrupt() {
        use Column::{Integer, Text};
        let mut row = FakeRow(vec![
            Some(Text("grant:g-1")),
            Some(Integer(1)),
            Some(Text("mint")),
            Some(Text("player:g-1")),
            Some(Integer(100)),
            Some(Text("grant")),
            Some(Integer(-100)),
            Some(Integer(100)),
            None,
        ]);
        let stored = transfer_from_row(&row).unwrap();
        assert_eq!(stored.transfer.credit, Account::Player("g-1".to_owned()));
        assert_eq!(stored.transfer.multiplier_hundredths, None);
        row.0[2] = Some(Text("bank"));
        let unknown = transfer_from_row(&row).unwrap_err();
        assert_eq!(
            unknown,
            FakeError::Corrupt(2, "unknown account bank".to_owned())
        );
    }
}
