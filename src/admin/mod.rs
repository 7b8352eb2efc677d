//! The domain and storage side of the operators' admin actions, for the routes under
//! `/api/admin/`: a room's controls sent to the engine that leads it and awaited
//! ([`RoomController`]: pause after the round, resume, the next round's limits), a
//! player's record ([`player_record`]: balance and last bets with their transfers), and
//! the audit trail ([`audit_trail`], [`record_action`]), and what operators do to a
//! player on every gateway ([`kick_player`], [`set_restriction`]: bans and mutes).
//!
//! A room control travels as a `bus::Command::Control` on the room's command path, so it
//! reaches the leader wherever it runs; the leader decides it (`engine::RoomCore`), stores
//! the change with its audit entry (fenced) and announces it to the players before it
//! answers. The caller gets the before/after of the change or an [`AdminError`] with the
//! HTTP status and code a route answers with.
//!
//! - `rooms`: [`RoomController`], the room controls and the wait for their answers.
//! - `players`: [`player_record`], [`audit_trail`], [`record_action`].
//! - `sanctions`: [`kick_player`], [`set_restriction`], sent to every gateway on the bus.

mod players;
mod rooms;
mod sanctions;

use crate::bus::BusError;
use crate::ledger::{LedgerError, Restriction};
use crate::protocol::ErrorCode;

pub use players::{
    BetOutcome, PlayerBetRecord, PlayerRecord, audit_trail, player_record, record_action,
};
pub use rooms::{CONTROL_ANSWER_TIMEOUT_MS, ControlOutcome, RoomController};
pub use sanctions::{SanctionOutcome, kick_player, set_restriction};

/// Why an admin action did not happen. Nothing changed in any case but `NoAnswer`, where
/// the engine may yet apply the control: read the room's state before retrying.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The engine leading the room refused the control (`code`: `invalid_limits`,
    /// `already_paused`, `not_paused`, or `unavailable` when its ledger did not store
    /// the change). HTTP 409, or 503 for `unavailable`.
    #[error("refused ({}): {message}", code.as_str())]
    Refused { code: ErrorCode, message: String },
    /// No answer from the room's engine within `CONTROL_ANSWER_TIMEOUT_MS`: no engine
    /// leads the room, or it is overloaded. HTTP 503.
    #[error("no answer from the engine of room {room} within {timeout_ms} ms")]
    NoAnswer { room: String, timeout_ms: u64 },
    /// The bus did not take the command or give the answer channel (Redis down, or the
    /// controller of this process opened twice). HTTP 503.
    #[error("bus: {0}")]
    Bus(#[from] BusError),
    /// The ledger database failed (reads of a player or the audit, an audit append).
    /// HTTP 503.
    #[error("ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// A ban or mute past `ledger::RESTRICTED_PLAYERS_MAX`: lift some first. HTTP 409.
    #[error(transparent)]
    RestrictedFull(#[from] crate::admission::restricted::RestrictedFull),
    /// The engine's answer could not be read: processes of another aloft version share
    /// the bus. HTTP 500.
    #[error("unreadable answer from the engine: {0}")]
    UnreadableAnswer(String),
}

impl AdminError {
    /// The HTTP status a route answers with.
    pub fn http_status(&self) -> u16 {
        match self {
            AdminError::Refused {
                code: ErrorCode::Unavailable,
                ..
            } => 503,
            AdminError::Refused { .. } | AdminError::RestrictedFull(_) => 409,
            AdminError::NoAnswer { .. } | AdminError::Bus(_) | AdminError::Ledger(_) => 503,
            AdminError::UnreadableAnswer(_) => 500,
        }
    }

    /// The machine-readable code a route answers with.
    pub fn code(&self) -> &'static str {
        match self {
            AdminError::Refused { code, .. } => code.as_str(),
            AdminError::NoAnswer { .. } => "no_answer",
            AdminError::Bus(_) => "bus_unavailable",
            AdminError::Ledger(_) => "ledger_unavailable",
            AdminError::RestrictedFull(full) => match full.restriction {
                Restriction::Ban => "bans_full",
                Restriction::Mute => "mutes_full",
            },
            AdminError::UnreadableAnswer(_) => "internal",
        }
    }
}
