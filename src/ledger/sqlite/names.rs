//! Players' display names in SQLite (the SQL is `ledger::display_names`', shared with
//! PostgreSQL).

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::rows::to_sql_integer;
use crate::display_name::DisplayName;
use crate::ledger::display_names::{SELECT_DISPLAY_NAME, UPSERT_DISPLAY_NAME};
use crate::ledger::{LedgerError, NameOutcome};

/// `Ledger::set_display_name`: one statement; the unique index on the key says whether
/// another player holds it.
pub(super) fn set_display_name(
    connection: &Connection,
    player: &str,
    name: &DisplayName,
    at_ms: u64,
) -> Result<NameOutcome, LedgerError> {
    let written = connection
        .prepare_cached(UPSERT_DISPLAY_NAME)?
        .execute(params![
            player,
            name.as_str(),
            name.key(),
            to_sql_integer(at_ms)?
        ]);
    match written {
        Ok(_) => Ok(NameOutcome::Set),
        Err(rusqlite::Error::SqliteFailure(failure, _))
            if failure.code == ErrorCode::ConstraintViolation =>
        {
            Ok(NameOutcome::Taken)
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) fn display_name(
    connection: &Connection,
    player: &str,
) -> Result<Option<String>, LedgerError> {
    let name = connection
        .prepare_cached(SELECT_DISPLAY_NAME)?
        .query_row([player], |row| row.get(0))
        .optional()?;
    Ok(name)
}
