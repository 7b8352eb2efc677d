//! The operators' rows in PostgreSQL: a room's controls, the audit trail, a player's bets,
//! the restricted players (the SQL and the row decoding are `ledger::admin_records`', shared with SQLite).

use deadpool_postgres::{GenericClient, Pool};

use super::columns::to_sql_integer;
use super::connection::read_committed;
use super::fence::check_fence;
use crate::ledger::admin_records::{
    SELECT_AUDIT_NEWEST_FIRST, SELECT_ROOM_CONTROLS, audit_entry_from_row, audit_limit,
    player_bet_from_row, player_bets_limit, restricted_players_limit, room_controls_from_row,
    select_player_bets, select_restricted_players,
};
use crate::ledger::{
    Account, AuditEntry, Fence, LedgerError, PlayerBet, Restriction, RestrictionChange,
    RoomControls, RoomControlsChange,
};

/// `Ledger::write_room_controls`: the controls and their audit entry in one transaction,
/// behind `fence` when one is given (its row lock first, as every fenced write).
pub(super) async fn write_room_controls(
    pool: &Pool,
    change: &RoomControlsChange,
    fence: Option<&Fence>,
) -> Result<(), LedgerError> {
    let mut client = pool.get().await?;
    let transaction = read_committed(&mut client).await?;
    if let Some(fence) = fence {
        check_fence(&transaction, fence).await?;
    }
    let RoomControls { paused, limits } = change.after;
    let statement = transaction
        .prepare_cached(
            "INSERT INTO room_controls (room, paused, bet_amount_min_minor, \
             bet_amount_max_minor, round_profit_max_minor) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (room) DO UPDATE SET paused = EXCLUDED.paused, \
             bet_amount_min_minor = EXCLUDED.bet_amount_min_minor, \
             bet_amount_max_minor = EXCLUDED.bet_amount_max_minor, \
             round_profit_max_minor = EXCLUDED.round_profit_max_minor",
        )
        .await?;
    transaction
        .execute(
            &statement,
            &[
                &change.room,
                &i64::from(paused),
                &limits.bet_amount_min_minor,
                &limits.bet_amount_max_minor,
                &limits.round_profit_max_minor,
            ],
        )
        .await?;
    insert_audit(&transaction, &change.audit_entry()).await?;
    transaction.commit().await?;
    Ok(())
}

pub(super) async fn room_controls(
    pool: &Pool,
    room: &str,
) -> Result<Option<RoomControls>, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("{SELECT_ROOM_CONTROLS}$1"))
        .await?;
    let row = client.query_opt(&statement, &[&room]).await?;
    row.as_ref().map(room_controls_from_row).transpose()
}

pub(super) async fn append_audit(pool: &Pool, entry: &AuditEntry) -> Result<(), LedgerError> {
    let client = pool.get().await?;
    insert_audit(&client, entry).await
}

async fn insert_audit(client: &impl GenericClient, entry: &AuditEntry) -> Result<(), LedgerError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO audit (at_ms, operator, action, target, state_before, state_after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    client
        .execute(
            &statement,
            &[
                &to_sql_integer("at_ms", entry.at_ms)?,
                &entry.operator,
                &entry.action.as_str(),
                &entry.target,
                &entry.before.to_string(),
                &entry.after.to_string(),
            ],
        )
        .await?;
    Ok(())
}

pub(super) async fn audit_entries(
    pool: &Pool,
    limit: usize,
) -> Result<Vec<AuditEntry>, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("{SELECT_AUDIT_NEWEST_FIRST}$1"))
        .await?;
    let rows = client.query(&statement, &[&audit_limit(limit)]).await?;
    rows.iter().map(audit_entry_from_row).collect()
}

pub(super) async fn player_bets(
    pool: &Pool,
    player: &str,
    limit: usize,
) -> Result<Vec<PlayerBet>, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&select_player_bets("$1", "$2"))
        .await?;
    let key = Account::Player(player.to_owned()).key();
    let rows = client
        .query(&statement, &[&key, &player_bets_limit(limit)])
        .await?;
    rows.iter().map(player_bet_from_row).collect()
}

/// `Ledger::write_restriction`: the player's row inserted (kept when there is one) or
/// deleted, and the audit entry with the state before, in one transaction.
pub(super) async fn write_restriction(
    pool: &Pool,
    change: &RestrictionChange,
) -> Result<bool, LedgerError> {
    let mut client = pool.get().await?;
    let transaction = read_committed(&mut client).await?;
    let was_restricted = if change.restricted {
        let statement = transaction
            .prepare_cached(&change.insert_sql(["$1", "$2", "$3"]))
            .await?;
        let at_ms = to_sql_integer("at_ms", change.at_ms)?;
        let inserted = transaction
            .execute(&statement, &[&change.player, &at_ms, &change.operator])
            .await?;
        inserted == 0
    } else {
        let statement = transaction.prepare_cached(&change.delete_sql("$1")).await?;
        transaction.execute(&statement, &[&change.player]).await? == 1
    };
    insert_audit(&transaction, &change.audit_entry(was_restricted)).await?;
    transaction.commit().await?;
    Ok(was_restricted)
}

pub(super) async fn restricted_players(
    pool: &Pool,
    restriction: Restriction,
    limit: usize,
) -> Result<Vec<String>, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&select_restricted_players(restriction, "$1"))
        .await?;
    let rows = client
        .query(&statement, &[&restricted_players_limit(limit)])
        .await?;
    rows.iter()
        .map(|row| row.try_get(0).map_err(LedgerError::from))
        .collect()
}
