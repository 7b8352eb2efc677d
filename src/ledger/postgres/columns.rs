//! Rows to values and back: a PostgreSQL row read column by column (for
//! `ledger::row_decoding`, which decodes transfers and rounds for both stores), and how
//! unsigned values are stored in PostgreSQL's signed BIGINT.

use tokio_postgres::Row;

use crate::ledger::LedgerError;
use crate::ledger::row_decoding::StoredRow;

impl StoredRow for Row {
    type Error = LedgerError;

    fn text(&self, column: usize) -> Result<String, LedgerError> {
        Ok(self.try_get(column)?)
    }
    fn integer(&self, column: usize) -> Result<i64, LedgerError> {
        Ok(self.try_get(column)?)
    }
    fn optional_integer(&self, column: usize) -> Result<Option<i64>, LedgerError> {
        Ok(self.try_get(column)?)
    }
    fn corrupt(&self, column: usize, message: String) -> LedgerError {
        let name = self.columns().get(column).map_or("?", |found| found.name());
        LedgerError::Corrupt(format!("{name}: {message}"))
    }
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
