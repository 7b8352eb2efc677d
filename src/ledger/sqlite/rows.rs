//! The rows the ledger reads and writes one at a time: balances, stored transfers, journaled
//! rounds; a SQLite row read column by column for `ledger::row_decoding`, which turns
//! the columns into values for both stores.

use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::ledger::row_decoding::{self, StoredRow};
use crate::ledger::{RoundRecord, SELECT_TRANSFER_COLUMNS, StoredTransfer, prefix_upper_bound};

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

// rusqlite's row callbacks take a row of any statement's lifetime, which the generic
// decoders cannot name: these two fix the row type for them.
fn transfer_from_row(row: &Row<'_>) -> rusqlite::Result<StoredTransfer> {
    row_decoding::transfer_from_row(row)
}

pub(super) fn round_from_row(row: &Row<'_>) -> rusqlite::Result<RoundRecord> {
    row_decoding::round_from_row(row)
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

/// SQLite integers are i64; the journal's u64 fields and multipliers stay far below
/// `i64::MAX`, and one that does not is refused rather than wrapped.
pub(super) fn to_sql_integer(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

impl StoredRow for Row<'_> {
    type Error = rusqlite::Error;

    fn text(&self, column: usize) -> rusqlite::Result<String> {
        self.get(column)
    }
    fn integer(&self, column: usize) -> rusqlite::Result<i64> {
        self.get(column)
    }
    fn optional_integer(&self, column: usize) -> rusqlite::Result<Option<i64>> {
        self.get(column)
    }
    /// Surfaced as a conversion failure of the column, with the type found there.
    fn corrupt(&self, column: usize, message: String) -> rusqlite::Error {
        let found = self
            .get_ref(column)
            .map_or(Type::Null, |value| value.data_type());
        rusqlite::Error::FromSqlConversionFailure(column, found, message.into())
    }
}
