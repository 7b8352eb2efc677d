//! What operators change and look up, as the ledger database keeps it: a room's controls
//! ([`RoomControls`]: paused, and the stake limits and max-profit cap of its next round),
//! the append-only audit trail of admin actions ([`AuditEntry`]), a player's latest
//! bets with what settled them ([`PlayerBet`]), and the players under a [`Restriction`]
//! (banned, muted: [`RestrictionChange`]). The SQL both stores run and the decoding of
//! their rows live here, so SQLite and PostgreSQL read and write the same way.

use serde::{Deserialize, Serialize};

use super::StoredTransfer;
use super::row_decoding::{
    StoredRow, TRANSFER_COLUMNS, transfer_columns_of, transfer_from_columns, unsigned,
};
use super::transfer_id::settlement_ids_sql;

/// Audit entries one read returns, at most ([`super::Ledger::audit_entries`]).
pub const AUDIT_ENTRIES_MAX: usize = 200;

/// Bets one player lookup returns, at most ([`super::Ledger::player_bets`]).
pub const PLAYER_BETS_MAX: usize = 50;

/// Players under one restriction (banned, or muted) a gateway holds in memory and loads
/// at start, at most ([`super::Ledger::restricted_players`]): one past it is refused, so
/// every gateway knows every ban and mute. About 100 bytes each: 10 MB at the bound.
pub const RESTRICTED_PLAYERS_MAX: usize = 100_000;

/// The stake limits and max-profit cap of a room's rounds, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomLimits {
    pub bet_amount_min_minor: i64,
    pub bet_amount_max_minor: i64,
    pub round_profit_max_minor: i64,
}

impl RoomLimits {
    /// Why these limits cannot govern a round, if they cannot: the smallest stake is at
    /// least 1, at most the largest, and the cap at least the largest stake (below it,
    /// one bet of the largest stake would be cashed out by the cap before 2.00x).
    pub fn insane_because(&self) -> Option<&'static str> {
        if self.bet_amount_min_minor < 1 {
            Some("the smallest stake must be at least 1")
        } else if self.bet_amount_min_minor > self.bet_amount_max_minor {
            Some("the smallest stake must not exceed the largest")
        } else if self.round_profit_max_minor < self.bet_amount_max_minor {
            Some("the max-profit cap must be at least the largest stake")
        } else {
            None
        }
    }
}

/// What an operator controls in a room, as its leader applies it: whether the room is
/// paused (no new round opens), and the limits of its next round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomControls {
    pub paused: bool,
    pub limits: RoomLimits,
}

/// What an admin action did, as the audit names it; stored as its snake_case name.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    strum::IntoStaticStr,
    strum::EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum AuditAction {
    PauseRoom,
    ResumeRoom,
    SetRoomLimits,
    KickPlayer,
    BanPlayer,
    UnbanPlayer,
    MutePlayer,
    UnmutePlayer,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One admin action: who did what to which room or player, when, and the state before
/// and after it (JSON, as the action's performer describes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Unix ms the action took effect.
    pub at_ms: u64,
    /// The operator's name or id, as the caller authenticated it.
    pub operator: String,
    pub action: AuditAction,
    /// The room or player acted on.
    pub target: String,
    pub before: serde_json::Value,
    pub after: serde_json::Value,
}

/// A change of a room's controls by its leader, written with its audit entry in one
/// transaction ([`super::Ledger::write_room_controls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomControlsChange {
    pub room: String,
    pub operator: String,
    pub action: AuditAction,
    pub at_ms: u64,
    pub before: RoomControls,
    pub after: RoomControls,
}

impl RoomControlsChange {
    /// The audit entry of this change.
    pub fn audit_entry(&self) -> AuditEntry {
        let json = |controls: &RoomControls| {
            serde_json::to_value(controls).expect("room controls serialize")
        };
        AuditEntry {
            at_ms: self.at_ms,
            operator: self.operator.clone(),
            action: self.action,
            target: self.room.clone(),
            before: json(&self.before),
            after: json(&self.after),
        }
    }
}

/// What an operator can hold a player to until it is lifted, each kept in its own table
/// with the same shape (player, since when, by whom): a ban (its tokens refused, its
/// sockets closed) or a mute (its chat refused, its sockets kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restriction {
    Ban,
    Mute,
}

impl Restriction {
    /// The table of the restricted players.
    fn table(self) -> &'static str {
        match self {
            Restriction::Ban => "bans",
            Restriction::Mute => "mutes",
        }
    }

    /// The column holding when the restriction began.
    fn since_column(self) -> &'static str {
        match self {
            Restriction::Ban => "banned_at_ms",
            Restriction::Mute => "muted_at_ms",
        }
    }

    /// The word of a restricted player's state: `banned`, `muted` (the audit's and the
    /// admin API's JSON key).
    pub fn state(self) -> &'static str {
        match self {
            Restriction::Ban => "banned",
            Restriction::Mute => "muted",
        }
    }

    /// The audit action that imposes the restriction (`restricted`) or lifts it.
    pub fn audit_action(self, restricted: bool) -> AuditAction {
        match (self, restricted) {
            (Restriction::Ban, true) => AuditAction::BanPlayer,
            (Restriction::Ban, false) => AuditAction::UnbanPlayer,
            (Restriction::Mute, true) => AuditAction::MutePlayer,
            (Restriction::Mute, false) => AuditAction::UnmutePlayer,
        }
    }
}

/// A restriction imposed on a player or lifted, written with its audit entry in one
/// transaction ([`super::Ledger::write_restriction`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionChange {
    pub restriction: Restriction,
    pub player: String,
    pub operator: String,
    /// Unix ms the change took effect.
    pub at_ms: u64,
    /// Whether the player is under the restriction after it.
    pub restricted: bool,
}

impl RestrictionChange {
    /// The audit entry of this change, given whether the player was under the
    /// restriction before it (imposing one already in force is audited too, with the
    /// same before and after).
    pub fn audit_entry(&self, was_restricted: bool) -> AuditEntry {
        let state = self.restriction.state();
        AuditEntry {
            at_ms: self.at_ms,
            operator: self.operator.clone(),
            action: self.restriction.audit_action(self.restricted),
            target: self.player.clone(),
            before: serde_json::json!({ state: was_restricted }),
            after: serde_json::json!({ state: self.restricted }),
        }
    }

    /// The statement that imposes it, keeping an earlier row (and its time) when there
    /// is one: `placeholders` are the player, the time and the operator, as `?1`..
    /// (SQLite) or `$1`.. (PostgreSQL). It inserted a row unless the player was
    /// restricted already.
    pub(crate) fn insert_sql(&self, [player, at_ms, operator]: [&str; 3]) -> String {
        format!(
            "INSERT INTO {table} (player, {since}, operator) VALUES ({player}, {at_ms}, \
             {operator}) ON CONFLICT (player) DO NOTHING",
            table = self.restriction.table(),
            since = self.restriction.since_column(),
        )
    }

    /// The statement that lifts it, given the player's placeholder; it deleted a row if
    /// the player was restricted.
    pub(crate) fn delete_sql(&self, player: &str) -> String {
        let table = self.restriction.table();
        format!("DELETE FROM {table} WHERE player = {player}")
    }
}

/// The players under `restriction`, oldest first, at most the `limit` placeholder.
pub(crate) fn select_restricted_players(restriction: Restriction, limit: &str) -> String {
    format!(
        "SELECT player FROM {table} ORDER BY {since}, player LIMIT {limit}",
        table = restriction.table(),
        since = restriction.since_column(),
    )
}

/// A bet of a player as the ledger holds it: the stake, and its payout or refund once
/// one was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlayerBet {
    pub stake: StoredTransfer,
    /// Unix ms the stake was committed.
    pub staked_at_ms: u64,
    /// The payout or refund, with the unix ms it was committed; `None` while the bet is
    /// open or after it was lost.
    pub settlement: Option<(StoredTransfer, u64)>,
}

/// The room controls columns, in the order [`room_controls_from_row`] reads them.
pub(crate) const SELECT_ROOM_CONTROLS: &str = "SELECT paused, bet_amount_min_minor, \
     bet_amount_max_minor, round_profit_max_minor FROM room_controls WHERE room = ";

/// The audit columns, in the order [`audit_entry_from_row`] reads them, newest first.
pub(crate) const SELECT_AUDIT_NEWEST_FIRST: &str = "SELECT at_ms, operator, action, target, \
     state_before, state_after FROM audit ORDER BY sequence DESC LIMIT ";

/// The player's latest bets, newest first, each joined with its payout or refund (a bet
/// has at most one): the stake's transfer columns and time, then the settlement's. The
/// statement ends with its two placeholders, the player's account key and the limit, as
/// `?1`/`?2` (SQLite) or `$1`/`$2` (PostgreSQL).
pub(crate) fn select_player_bets(first: &str, second: &str) -> String {
    format!(
        "SELECT {stake}, b.created_at_ms, {settlement}, s.created_at_ms \
         FROM transfers b LEFT JOIN transfers s ON s.id IN ({ids}) \
         WHERE b.debit = {first} AND b.kind = 'bet' ORDER BY b.sequence DESC LIMIT {second}",
        stake = transfer_columns_of("b"),
        settlement = transfer_columns_of("s"),
        ids = settlement_ids_sql("b.id"),
    )
}

/// A row of [`select_player_bets`].
pub(crate) fn player_bet_from_row<R: StoredRow>(row: &R) -> Result<PlayerBet, R::Error> {
    let settled_at = 2 * TRANSFER_COLUMNS + 1;
    let settlement = match row.optional_integer(settled_at)? {
        None => None,
        Some(_) => Some((
            transfer_from_columns(row, TRANSFER_COLUMNS + 1)?,
            unsigned(row, settled_at)?,
        )),
    };
    Ok(PlayerBet {
        stake: transfer_from_columns(row, 0)?,
        staked_at_ms: unsigned(row, TRANSFER_COLUMNS)?,
        settlement,
    })
}

/// A row of [`SELECT_ROOM_CONTROLS`].
pub(crate) fn room_controls_from_row<R: StoredRow>(row: &R) -> Result<RoomControls, R::Error> {
    let paused = match row.integer(0)? {
        0 => false,
        1 => true,
        other => return Err(row.corrupt(0, format!("paused is {other}"))),
    };
    Ok(RoomControls {
        paused,
        limits: RoomLimits {
            bet_amount_min_minor: row.integer(1)?,
            bet_amount_max_minor: row.integer(2)?,
            round_profit_max_minor: row.integer(3)?,
        },
    })
}

/// A row of [`SELECT_AUDIT_NEWEST_FIRST`].
pub(crate) fn audit_entry_from_row<R: StoredRow>(row: &R) -> Result<AuditEntry, R::Error> {
    let action_text = row.text(2)?;
    let action = action_text
        .parse()
        .map_err(|_| row.corrupt(2, format!("unknown audit action {action_text}")))?;
    let json = |column: usize| {
        let text = row.text(column)?;
        serde_json::from_str(&text).map_err(|error| row.corrupt(column, error.to_string()))
    };
    Ok(AuditEntry {
        at_ms: unsigned(row, 0)?,
        operator: row.text(1)?,
        action,
        target: row.text(3)?,
        before: json(4)?,
        after: json(5)?,
    })
}

/// The bounded number of restricted players a read asks for.
pub(crate) fn restricted_players_limit(limit: usize) -> i64 {
    i64::try_from(limit.min(RESTRICTED_PLAYERS_MAX)).expect("a small bound")
}

/// The bounded number of entries an audit read asks for.
pub(crate) fn audit_limit(limit: usize) -> i64 {
    i64::try_from(limit.min(AUDIT_ENTRIES_MAX)).expect("a small bound")
}

/// The bounded number of bets a player lookup asks for.
pub(crate) fn player_bets_limit(limit: usize) -> i64 {
    i64::try_from(limit.min(PLAYER_BETS_MAX)).expect("a small bound")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(min: i64, max: i64, cap: i64) -> RoomLimits {
        RoomLimits {
            bet_amount_min_minor: min,
            bet_amount_max_minor: max,
            round_profit_max_minor: cap,
        }
    }

    #[test]
    fn limits_are_sane_only_when_min_is_positive_and_below_max_and_the_cap_covers_max() {
        assert_eq!(limits(1, 1, 1).insane_because(), None);
        assert_eq!(limits(10, 500, 10_000).insane_because(), None);
        assert!(limits(0, 500, 10_000).insane_because().is_some());
        assert!(limits(501, 500, 10_000).insane_because().is_some());
        assert!(limits(10, 500, 499).insane_because().is_some());
    }

    #[test]
    fn a_room_change_is_audited_with_its_before_and_after() {
        let before = RoomControls {
            paused: false,
            limits: limits(10, 500, 10_000),
        };
        let change = RoomControlsChange {
            room: "main".into(),
            operator: "ops".into(),
            action: AuditAction::PauseRoom,
            at_ms: 7,
            before,
            after: RoomControls {
                paused: true,
                ..before
            },
        };
        let entry = change.audit_entry();
        assert_eq!(entry.before["paused"], false);
        assert_eq!(entry.after["paused"], true);
        assert_eq!(entry.after["limits"]["bet_amount_max_minor"], 500);
        assert_eq!((entry.target.as_str(), entry.at_ms), ("main", 7));
    }
}
