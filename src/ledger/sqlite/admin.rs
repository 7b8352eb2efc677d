//! The operators' rows in SQLite: a room's controls, the audit trail, a player's bets,
//! the restricted players (the SQL and the row decoding are `ledger::admin_records`', shared with PostgreSQL).

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::fence::check_fence;
use super::rows::to_sql_integer;
use crate::ledger::admin_records::{
    SELECT_AUDIT_NEWEST_FIRST, SELECT_ROOM_CONTROLS, audit_entry_from_row, audit_limit,
    player_bet_from_row, player_bets_limit, restricted_players_limit, room_controls_from_row,
    select_player_bets, select_restricted_players,
};
use crate::ledger::{
    Account, AuditEntry, Fence, LedgerError, PlayerBet, Restriction, RestrictionChange,
    RoomControls, RoomControlsChange,
};

/// `Ledger::write_room_controls`: the controls and their audit entry in one IMMEDIATE
/// transaction, behind `fence` when one is given.
pub(super) fn write_room_controls(
    connection: &mut Connection,
    change: &RoomControlsChange,
    fence: Option<&Fence>,
) -> Result<(), LedgerError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(fence) = fence {
        check_fence(&transaction, fence)?;
    }
    let RoomControls { paused, limits } = change.after;
    transaction
        .prepare_cached(
            "INSERT INTO room_controls (room, paused, bet_amount_min_minor, \
             bet_amount_max_minor, round_profit_max_minor) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (room) DO UPDATE SET paused = excluded.paused, \
             bet_amount_min_minor = excluded.bet_amount_min_minor, \
             bet_amount_max_minor = excluded.bet_amount_max_minor, \
             round_profit_max_minor = excluded.round_profit_max_minor",
        )?
        .execute(params![
            change.room,
            i64::from(paused),
            limits.bet_amount_min_minor,
            limits.bet_amount_max_minor,
            limits.round_profit_max_minor,
        ])?;
    insert_audit(&transaction, &change.audit_entry())?;
    transaction.commit()?;
    Ok(())
}

pub(super) fn room_controls(
    connection: &Connection,
    room: &str,
) -> Result<Option<RoomControls>, LedgerError> {
    let sql = format!("{SELECT_ROOM_CONTROLS}?1");
    let mut statement = connection.prepare_cached(&sql)?;
    Ok(statement.query_row([room], from_row).optional()?)
}

/// `Ledger::append_audit`.
pub(super) fn append_audit(connection: &Connection, entry: &AuditEntry) -> Result<(), LedgerError> {
    insert_audit(connection, entry)
}

fn insert_audit(connection: &Connection, entry: &AuditEntry) -> Result<(), LedgerError> {
    connection
        .prepare_cached(
            "INSERT INTO audit (at_ms, operator, action, target, state_before, state_after) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            to_sql_integer(entry.at_ms)?,
            entry.operator,
            entry.action.as_str(),
            entry.target,
            entry.before.to_string(),
            entry.after.to_string(),
        ])?;
    Ok(())
}

pub(super) fn audit_entries(
    connection: &Connection,
    limit: usize,
) -> Result<Vec<AuditEntry>, LedgerError> {
    let sql = format!("{SELECT_AUDIT_NEWEST_FIRST}?1");
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map([audit_limit(limit)], audit_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(super) fn player_bets(
    connection: &Connection,
    player: &str,
    limit: usize,
) -> Result<Vec<PlayerBet>, LedgerError> {
    let sql = select_player_bets("?1", "?2");
    let mut statement = connection.prepare_cached(&sql)?;
    let key = Account::Player(player.to_owned()).key();
    let rows = statement.query_map(params![key, player_bets_limit(limit)], bet_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `Ledger::write_restriction`: the player's row inserted (kept when there is one) or
/// deleted, and the audit entry with the state before, in one IMMEDIATE transaction.
pub(super) fn write_restriction(
    connection: &mut Connection,
    change: &RestrictionChange,
) -> Result<bool, LedgerError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let was_restricted = if change.restricted {
        let inserted = transaction
            .prepare_cached(&change.insert_sql(["?1", "?2", "?3"]))?
            .execute(params![
                change.player,
                to_sql_integer(change.at_ms)?,
                change.operator
            ])?;
        inserted == 0
    } else {
        let deleted = transaction
            .prepare_cached(&change.delete_sql("?1"))?
            .execute([&change.player])?;
        deleted == 1
    };
    insert_audit(&transaction, &change.audit_entry(was_restricted))?;
    transaction.commit()?;
    Ok(was_restricted)
}

pub(super) fn restricted_players(
    connection: &Connection,
    restriction: Restriction,
    limit: usize,
) -> Result<Vec<String>, LedgerError> {
    let sql = select_restricted_players(restriction, "?1");
    let mut statement = connection.prepare_cached(&sql)?;
    let rows = statement.query_map([restricted_players_limit(limit)], |row| row.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
}

// rusqlite's row callbacks take a row of any statement's lifetime, which the generic
// decoders cannot name: these fix the row type for them.
fn from_row(row: &Row<'_>) -> rusqlite::Result<RoomControls> {
    room_controls_from_row(row)
}

fn audit_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    audit_entry_from_row(row)
}

fn bet_from_row(row: &Row<'_>) -> rusqlite::Result<PlayerBet> {
    player_bet_from_row(row)
}
