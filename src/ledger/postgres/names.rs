//! Players' display names in PostgreSQL (the SQL is `ledger::display_names`', shared
//! with SQLite).

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;

use super::columns::to_sql_integer;
use crate::display_name::DisplayName;
use crate::ledger::display_names::{SELECT_DISPLAY_NAME, UPSERT_DISPLAY_NAME};
use crate::ledger::{LedgerError, NameOutcome};

/// `Ledger::set_display_name`: one statement; the unique index on the key says whether
/// another player holds it.
pub(super) async fn set_display_name(
    pool: &Pool,
    player: &str,
    name: &DisplayName,
    at_ms: u64,
) -> Result<NameOutcome, LedgerError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(UPSERT_DISPLAY_NAME).await?;
    let at_ms = to_sql_integer("named_at_ms", at_ms)?;
    let written = client
        .execute(&statement, &[&player, &name.as_str(), &name.key(), &at_ms])
        .await;
    match written {
        Ok(_) => Ok(NameOutcome::Set),
        Err(error) if error.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(NameOutcome::Taken),
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn display_name(pool: &Pool, player: &str) -> Result<Option<String>, LedgerError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(SELECT_DISPLAY_NAME).await?;
    let row = client.query_opt(&statement, &[&player]).await?;
    row.map(|row| row.try_get(0).map_err(LedgerError::from))
        .transpose()
}
