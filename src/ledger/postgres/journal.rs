//! The round journal: one row per round, written when betting opens, when it flies and
//! when it ends, read by recovery and the public history.

use deadpool_postgres::Pool;

use super::columns::to_sql_integer;
use super::connection::read_committed;
use super::fence::check_fence;
use crate::ledger::row_decoding::round_from_row;
use crate::ledger::{Fence, LedgerError, RoundRecord, SELECT_ROUND_COLUMNS};

/// `Ledger::write_round`: inserts or updates the round, behind `fence` when one is given.
pub(super) async fn write_round(
    pool: &Pool,
    record: RoundRecord,
    fence: Option<&Fence>,
) -> Result<(), LedgerError> {
    let mut client = pool.get().await?;
    let transaction = read_committed(&mut client).await?;
    if let Some(fence) = fence {
        check_fence(&transaction, fence).await?;
    }
    let statement = transaction
        .prepare_cached(
            "INSERT INTO rounds (room, round, hash, crash_hundredths, started_at_ms, \
             ended_at_ms, status, bets_total_minor, payouts_total_minor) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (room, round) DO UPDATE SET hash = excluded.hash, \
             crash_hundredths = excluded.crash_hundredths, \
             started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms, \
             status = excluded.status, bets_total_minor = excluded.bets_total_minor, \
             payouts_total_minor = excluded.payouts_total_minor",
        )
        .await?;
    let ended_at_ms = record
        .ended_at_ms
        .map(|value| to_sql_integer("ended_at_ms", value))
        .transpose()?;
    transaction
        .execute(
            &statement,
            &[
                &record.room,
                &to_sql_integer("round", record.round)?,
                &record.hash,
                &to_sql_integer("crash_hundredths", record.crash_hundredths)?,
                &to_sql_integer("started_at_ms", record.started_at_ms)?,
                &ended_at_ms,
                &record.status.as_str(),
                &record.bets_total_minor,
                &record.payouts_total_minor,
            ],
        )
        .await?;
    transaction.commit().await?;
    Ok(())
}

pub(super) async fn recent_rounds(
    pool: &Pool,
    room: &str,
    limit: usize,
) -> Result<Vec<RoundRecord>, LedgerError> {
    newest_rounds(pool, room, limit, "").await
}

pub(super) async fn settled_rounds(
    pool: &Pool,
    room: &str,
    limit: usize,
) -> Result<Vec<RoundRecord>, LedgerError> {
    newest_rounds(pool, room, limit, "AND status = 'crashed'").await
}

/// The newest `limit` rounds of `room` that meet `condition` (SQL after the room's).
async fn newest_rounds(
    pool: &Pool,
    room: &str,
    limit: usize,
    condition: &str,
) -> Result<Vec<RoundRecord>, LedgerError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let client = pool.get().await?;
    let sql =
        format!("{SELECT_ROUND_COLUMNS} WHERE room = $1 {condition} ORDER BY round DESC LIMIT $2");
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &[&room, &limit]).await?;
    rows.iter().map(round_from_row).collect()
}

pub(super) async fn unfinished_rounds(
    pool: &Pool,
    room: &str,
) -> Result<Vec<RoundRecord>, LedgerError> {
    let client = pool.get().await?;
    let sql = format!(
        "{SELECT_ROUND_COLUMNS} WHERE room = $1 AND status IN ('betting', 'flying') \
         ORDER BY round ASC"
    );
    let statement = client.prepare_cached(&sql).await?;
    let rows = client.query(&statement, &[&room]).await?;
    rows.iter().map(round_from_row).collect()
}
