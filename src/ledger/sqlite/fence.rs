//! The rooms' fencing tokens in the `fences` table: the check every fenced write makes
//! first, and the increment a new leader takes its token from.

use rusqlite::{OptionalExtension, Transaction, params};

use crate::ledger::{Fence, LedgerError};

/// Increments the room's token (a first one is 1) and returns it.
pub(super) const ACQUIRE_FENCE_SQL: &str = "INSERT INTO fences (room, token) VALUES (?1, 1) \
     ON CONFLICT (room) DO UPDATE SET token = fences.token + 1 RETURNING token";

/// Stores `fence.token` as the room's token unless a higher one is stored, which fails
/// with `Fenced` (the caller's transaction then rolls back, so nothing it wrote lands).
/// Every caller holds an IMMEDIATE transaction, SQLite's single write lock, from this
/// check to its commit: no other writer, in this process or another, can raise the token
/// in between, so a write that passed the check commits before any newer leader's check.
pub(super) fn check_fence(transaction: &Transaction<'_>, fence: &Fence) -> Result<(), LedgerError> {
    let token = fence.sql_token()?;
    let mut raise = transaction.prepare_cached(
        "INSERT INTO fences (room, token) VALUES (?1, ?2) \
         ON CONFLICT (room) DO UPDATE SET token = excluded.token \
         WHERE fences.token <= excluded.token RETURNING token",
    )?;
    if raise
        .query_row(params![fence.room, token], |_| Ok(()))
        .optional()?
        .is_some()
    {
        return Ok(());
    }
    let mut current = transaction.prepare_cached("SELECT token FROM fences WHERE room = ?1")?;
    let current: i64 = current.query_row([&fence.room], |row| row.get(0))?;
    Err(fence.stale(current))
}
