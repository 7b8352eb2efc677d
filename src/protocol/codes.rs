//! The codes of the wire: what an `error`, `*_err` or `control_err` frame names
//! ([`ErrorCode`]) and the WebSocket close codes aloft uses ([`close_code`]).

use serde::{Deserialize, Serialize};

/// Machine-readable error codes carried by `error` and the `*_err` frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not valid JSON or lacks a required field.
    BadJson,
    /// The `t` field names no known client message.
    UnknownType,
    /// A field is out of range (stake, auto-cashout, slot, request id).
    InvalidField,
    /// Bets are taken only in the Betting phase; cashouts only while Flying.
    WrongPhase,
    /// The player's balance is lower than the stake.
    InsufficientFunds,
    /// The slot already holds a bet this round.
    SlotTaken,
    /// There is no active bet in the slot to cash out or cancel.
    NoActiveBet,
    /// The round crashed before the cashout reached the engine, or betting closed before
    /// the cancel did (the bet plays in the round).
    TooLate,
    /// Too many messages per second on this connection.
    RateLimited,
    /// The engine's command queue is full; retry with the same `req`.
    Overloaded,
    /// A storage or bus fault; nothing was changed; retry with the same `req`.
    Internal,
    /// The ledger is failing or slow, so bets are refused at once for a while (the
    /// engine's circuit breaker); nothing was changed; retry with the same `req` later.
    Unavailable,
    /// (`control_err`) Stake limits that cannot govern a round: min ≥ 1, min ≤ max and
    /// cap ≥ max are required.
    InvalidLimits,
    /// (`control_err`) The room is paused already.
    AlreadyPaused,
    /// (`control_err`) The room is not paused.
    NotPaused,
    /// (`error`, after `chat`) The player sent chat messages faster than the room's limit;
    /// the message was not posted.
    ChatRateLimited,
    /// (`error`, after `chat`) An operator muted the player: its messages are not posted.
    Muted,
    /// (`name_err`) The name breaks the rules (length, characters, reserved words).
    InvalidName,
    /// (`name_err`) Another player holds that name (or one that differs only in case,
    /// separators or look-alike digits).
    NameTaken,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::InvalidField => "invalid_field",
            ErrorCode::WrongPhase => "wrong_phase",
            ErrorCode::InsufficientFunds => "insufficient_funds",
            ErrorCode::SlotTaken => "slot_taken",
            ErrorCode::NoActiveBet => "no_active_bet",
            ErrorCode::TooLate => "too_late",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidLimits => "invalid_limits",
            ErrorCode::AlreadyPaused => "already_paused",
            ErrorCode::NotPaused => "not_paused",
            ErrorCode::ChatRateLimited => "chat_rate_limited",
            ErrorCode::Muted => "muted",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::NameTaken => "name_taken",
        }
    }
}

/// WebSocket close codes aloft uses (RFC 6455 §7.4 plus private 4000-4999 codes).
pub mod close_code {
    /// Server shutting down; reconnect later.
    pub const GOING_AWAY: u16 = 1001;
    /// The client sent a binary frame; the protocol is JSON text only.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A protocol violation (bad framing, unmasked client frame).
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message or close reason that is not UTF-8 (RFC 6455 §7.4.1).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: sustained rate-limit abuse.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message larger than `inbound_message_bytes_max`.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The socket could not keep up with the broadcast and its queue overflowed.
    pub const SLOW_CONSUMER: u16 = 4001;
    /// Nothing was received for `idle_timeout_ms`.
    pub const IDLE_TIMEOUT: u16 = 4002;
    /// A socket opened without `token` did not send a valid `auth` message first within
    /// `auth_timeout_ms`: another message came first, the token was refused, or nothing
    /// came.
    pub const AUTH_FAILED: u16 = 4003;
    /// An operator kicked the player (`POST /api/admin/players/{id}/kick`); it may
    /// connect again.
    pub const KICKED: u16 = 4004;
    /// An operator banned the player: every socket of it is closed, and its token is
    /// refused (403 `banned` at `/ws`, this code after a first-message `auth`) until the
    /// ban is lifted.
    pub const BANNED: u16 = 4005;
}
