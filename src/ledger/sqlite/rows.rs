//! The rows the ledger reads and writes one at a time: balances, stored transfers, journaled
//! rounds, and how their columns become values (a value this code did not write is an
//! error, never a guess).

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::ledger::{
    Account, RoundRecord, RoundStatus, SELECT_TRANSFER_COLUMNS, StoredTransfer, Transfer,
    TransferKind, prefix_upper_bound,
};

pub(super) fn read_balance(connection: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    let mut statement = connection.prepare_cached("SELECT balance FROM accounts WHERE key = ?1")?;
    statement.query_row([key], |row| row.get(0)).optional()
}

pub(super) fn find_transfer(
    connection: &Connection,
    id: &str,
) -> rusqlite::Result<Option<StoredTransfer>> {
    let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id = ?1");
    let mut statement = connection.prepare_cached(&sql)?;
    statement.query_row([id], transfer_from_row).optional()
}

/// A range scan on the primary key rather than `LIKE`, so `_` and `%` in ids are plain
/// characters and the index is used.
pub(super) fn select_transfers_with_prefix(
    connection: &Connection,
    prefix: &str,
) -> rusqlite::Result<Vec<StoredTransfer>> {
    let rows = match prefix_upper_bound(prefix) {
        Some(upper) => {
            let sql =
                format!("{SELECT_TRANSFER_COLUMNS} WHERE id >= ?1 AND id < ?2 ORDER BY sequence");
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![prefix, upper], transfer_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
        None => {
            let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id >= ?1 ORDER BY sequence");
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![prefix], transfer_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(rows)
}

fn transfer_from_row(row: &Row<'_>) -> rusqlite::Result<StoredTransfer> {
    let account = |index: usize| -> rusqlite::Result<Account> {
        let key: String = row.get(index)?;
        Account::from_key(&key)
            .ok_or_else(|| corrupt(index, Type::Text, format!("unknown account {key}")))
    };
    let kind_text: String = row.get(5)?;
    let kind = kind_text
        .parse::<TransferKind>()
        .ok()
        .ok_or_else(|| corrupt(5, Type::Text, format!("unknown transfer kind {kind_text}")))?;
    let multiplier: Option<i64> = row.get(8)?;
    let multiplier_hundredths = multiplier
        .map(|value| {
            u64::try_from(value)
                .map_err(|_| corrupt(8, Type::Integer, format!("negative multiplier {value}")))
        })
        .transpose()?;
    Ok(StoredTransfer {
        transfer: Transfer {
            id: row.get(0)?,
            debit: account(2)?,
            credit: account(3)?,
            amount_minor: row.get(4)?,
            kind,
            multiplier_hundredths,
        },
        debit_balance_after_minor: row.get(6)?,
        credit_balance_after_minor: row.get(7)?,
        sequence: row.get(1)?,
    })
}

pub(super) fn upsert_round(connection: &Connection, record: &RoundRecord) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO rounds (room, round, hash, crash_hundredths, started_at_ms, ended_at_ms, \
         status, bets_total_minor, payouts_total_minor) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (room, round) DO UPDATE SET hash = excluded.hash, \
         crash_hundredths = excluded.crash_hundredths, started_at_ms = excluded.started_at_ms, \
         ended_at_ms = excluded.ended_at_ms, status = excluded.status, \
         bets_total_minor = excluded.bets_total_minor, \
         payouts_total_minor = excluded.payouts_total_minor",
    )?;
    statement.execute(params![
        record.room,
        to_sql_integer(record.round)?,
        record.hash,
        to_sql_integer(record.crash_hundredths)?,
        to_sql_integer(record.started_at_ms)?,
        record.ended_at_ms.map(to_sql_integer).transpose()?,
        record.status.as_str(),
        record.bets_total_minor,
        record.payouts_total_minor,
    ])?;
    Ok(())
}

pub(super) fn round_from_row(row: &Row<'_>) -> rusqlite::Result<RoundRecord> {
    let unsigned = |index: usize| -> rusqlite::Result<u64> {
        let value: i64 = row.get(index)?;
        u64::try_from(value)
            .map_err(|_| corrupt(index, Type::Integer, format!("negative value {value}")))
    };
    let ended_at_ms: Option<i64> = row.get(5)?;
    let status_text: String = row.get(6)?;
    Ok(RoundRecord {
        room: row.get(0)?,
        round: unsigned(1)?,
        hash: row.get(2)?,
        crash_hundredths: unsigned(3)?,
        started_at_ms: unsigned(4)?,
        ended_at_ms: match ended_at_ms {
            Some(_) => Some(unsigned(5)?),
            None => None,
        },
        status: status_text
            .parse::<RoundStatus>()
            .ok()
            .ok_or_else(|| corrupt(6, Type::Text, format!("unknown round status {status_text}")))?,
        bets_total_minor: row.get(7)?,
        payouts_total_minor: row.get(8)?,
    })
}

/// SQLite integers are i64; the journal's u64 fields and multipliers stay far below
/// `i64::MAX`, and one that does not is refused rather than wrapped.
pub(super) fn to_sql_integer(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

/// A stored value this code did not write: surfaced as a storage error, never guessed at.
fn corrupt(column: usize, column_type: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, column_type, message.into())
}
