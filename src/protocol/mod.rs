//! Wire protocol v1: the JSON text frames exchanged with players.
//!
//! This module owns every type that crosses the WebSocket, their field names (part of the
//! contract, see docs/protocol.md) and the error and close codes. Domain types (rounds,
//! bets, transfers) live in `engine` and `ledger`; they are mapped to these types at the
//! edge (`codec`: [`JsonCodec`], the engine's events and answers on the wire) so that a
//! refactor inside never changes the wire by accident.
//!
//! Money is integer minor units (`i64`), multipliers integer hundredths (`u64`, `257` =
//! 2.57x), times unix milliseconds from the server clock. No floats anywhere.

mod codec;
mod codes;
mod controls;
mod decode;
mod player_events;
mod totals;

use serde::{Deserialize, Serialize};

use crate::bus::RequestKind;

pub use codec::{JsonCodec, round_event, server_message};
pub use codes::{ErrorCode, close_code};
pub use controls::{domain_controls, wire_controls};
pub use decode::{DecodeError, decode_client_message};

/// Version announced in `hello`. Bump it for any change to a field name or meaning.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest accepted client request id (`req`), in bytes.
pub const REQUEST_ID_BYTES_MAX: usize = 64;

/// A message from a player.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Place a bet in the current betting phase.
    Bet {
        /// Client-chosen id echoed in the reply; replaying it returns the first reply.
        req: String,
        /// Stake in minor units.
        amount: i64,
        /// Auto-cashout multiplier in hundredths, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto: Option<u64>,
        /// Bet slot, 0 or 1 (two bets per round, as in Aviator).
        #[serde(default)]
        slot: u8,
    },
    /// Cash out the bet in `slot` at the engine's current multiplier.
    Cashout {
        req: String,
        #[serde(default)]
        slot: u8,
    },
    /// Take back the bet in `slot` while betting is open: its stake is refunded
    /// (`cancel_ok`), or, once betting has closed, `cancel_err` `too_late` (the bet plays).
    Cancel {
        req: String,
        #[serde(default)]
        slot: u8,
    },
    /// Post `text` to the room's chat (1 to 200 characters, no control characters), as
    /// the player's display name; refused with an `error` frame (the socket stays).
    Chat { text: String },
    /// Pick a display name (3 to 16 characters, see docs/protocol.md): `name_ok`, or
    /// `name_err` (`invalid_name`, `name_taken`).
    Name { req: String, name: String },
    /// Liveness probe; answered by `pong`.
    Ping,
    /// The player's token, as the first message of a socket opened without `token` in
    /// its URL (URLs end up in proxy logs). Accepted only as the first message.
    Auth { token: String },
}

/// A public bet as shown to every player of the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicBet {
    pub player: String,
    /// The player's display name (the one it picked, or its default `guest-…`).
    #[serde(default)]
    pub name: String,
    pub slot: u8,
    /// Stake in minor units.
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<u64>,
}

/// A public cashout as shown to every player of the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicCashout {
    pub player: String,
    pub slot: u8,
    /// Multiplier the bet was cashed out at, in hundredths.
    pub m: u64,
    /// Amount paid back, stake included, in minor units.
    pub win: i64,
    /// Who cashed it out: `manual`, `auto` (its target) or `cap` (the round's max profit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<CashoutKind>,
}

/// Who cashed a bet out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CashoutKind {
    Manual,
    Auto,
    Cap,
}

/// A round's totals so far: every accepted bet and every cashout, listed publicly or
/// not. Absolute values, so the newest event that carries them is enough.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoundTotals {
    /// Bets accepted (stakes taken).
    pub bets: u64,
    /// Sum of their stakes, in minor units.
    pub staked: i64,
    /// Bets cashed out, by hand, auto-cashout or the max-profit cap.
    pub cashouts: u64,
    /// Sum of their payouts, stakes included, in minor units.
    pub won: i64,
    /// Sum of the stakes of the bets cashed out, in minor units: `staked` minus this is
    /// what is still at risk.
    #[serde(default)]
    pub cashout_stakes: i64,
}

/// A public event of a room. Every one carries the room's contiguous sequence number
/// `seq` and the `round` it belongs to; the engine serializes each one exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum RoomEvent {
    /// A new round opened for bets until `ends_at`.
    Betting { seq: u64, round: u64, ends_at: u64 },
    /// The multiplier started climbing at `started_at`.
    Flying {
        seq: u64,
        round: u64,
        started_at: u64,
    },
    /// One tick: the multiplier now, the largest bets and cashouts since the last tick
    /// (at most `engine.public_bets_per_tick_max` / `public_cashouts_per_tick_max`,
    /// largest first) and the round's totals. During Betting a tick is sent only when
    /// there are new bets, with `m` = 100 and `ms` = 0.
    Tick {
        seq: u64,
        round: u64,
        /// Current multiplier in hundredths.
        m: u64,
        /// Milliseconds since `flying.started_at`.
        ms: u64,
        /// Engine time the tick was produced at (unix ms); used to measure latency.
        at: u64,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        bets: Vec<PublicBet>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cashouts: Vec<PublicCashout>,
        /// Absent while the round has no bet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        totals: Option<RoundTotals>,
    },
    /// The round crashed at `m`; `hash` is the revealed round hash.
    Crash {
        seq: u64,
        round: u64,
        m: u64,
        hash: String,
        at: u64,
        /// The largest cashouts since the last tick, the auto-cashouts just below the
        /// crash point included (bounded as in `tick`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cashouts: Vec<PublicCashout>,
        /// The round's final totals; absent when the round had no bet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        totals: Option<RoundTotals>,
    },
    /// A player took back a bet while betting was open (`amount` refunded): a list that
    /// shows it drops it; `totals` no longer count it (absent when no bet is left).
    BetCancelled {
        seq: u64,
        round: u64,
        player: String,
        slot: u8,
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        totals: Option<RoundTotals>,
    },
    /// An operator paused the room at `at`: `round` is the last to play; no `betting`
    /// follows until `resumed`.
    Paused { seq: u64, round: u64, at: u64 },
    /// An operator resumed the room at `at`: `betting` for the next round follows.
    Resumed { seq: u64, round: u64, at: u64 },
    /// A chat message `text` of `player`, shown as `name`, posted at `at`.
    Chat {
        seq: u64,
        round: u64,
        #[serde(flatten)]
        line: ChatLine,
    },
    /// New stake limits (`min`, `max`) and max-profit cap (`cap`), in minor units, for
    /// the rounds from `from_round` on; `round` keeps its own.
    Limits {
        seq: u64,
        round: u64,
        min: i64,
        max: i64,
        cap: i64,
        from_round: u64,
    },
}

impl RoomEvent {
    /// The room sequence number of this event.
    pub fn seq(&self) -> u64 {
        match self {
            RoomEvent::Betting { seq, .. }
            | RoomEvent::Flying { seq, .. }
            | RoomEvent::Tick { seq, .. }
            | RoomEvent::Crash { seq, .. }
            | RoomEvent::BetCancelled { seq, .. }
            | RoomEvent::Paused { seq, .. }
            | RoomEvent::Resumed { seq, .. }
            | RoomEvent::Chat { seq, .. }
            | RoomEvent::Limits { seq, .. } => *seq,
        }
    }

    /// The round this event belongs to.
    pub fn round(&self) -> u64 {
        match self {
            RoomEvent::Betting { round, .. }
            | RoomEvent::Flying { round, .. }
            | RoomEvent::Tick { round, .. }
            | RoomEvent::Crash { round, .. }
            | RoomEvent::BetCancelled { round, .. }
            | RoomEvent::Paused { round, .. }
            | RoomEvent::Resumed { round, .. }
            | RoomEvent::Chat { round, .. }
            | RoomEvent::Limits { round, .. } => *round,
        }
    }
}

/// Round phase as shown in a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Betting,
    Flying,
    Crashed,
}

/// A past round as listed in a snapshot and in `/api/rounds`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastRound {
    pub round: u64,
    /// Crash point in hundredths.
    pub m: u64,
    pub hash: String,
}

/// A bet of the current round in a snapshot, with its outcome so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveBet {
    pub player: String,
    #[serde(default)]
    pub name: String,
    pub slot: u8,
    pub amount: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto: Option<u64>,
    /// Cashout multiplier, once cashed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cashed_out: Option<u64>,
    /// Amount paid, once cashed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub win: Option<i64>,
}

/// A chat message as every player of the room sees it (in a `chat` event and in the
/// snapshot's last messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    pub player: String,
    /// The sender's display name at the time.
    pub name: String,
    pub text: String,
    /// Engine time it was posted at (unix ms).
    pub at: u64,
}

/// One of the player's bets cashed out without a request of its own, as told in `balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BetCashout {
    pub round: u64,
    pub slot: u8,
    /// Multiplier the bet was cashed out at, in hundredths.
    pub m: u64,
    /// Amount paid back, stake included, in minor units.
    pub win: i64,
}

/// One of the player's bets refunded without a request of its own (its round was
/// aborted), as told in `balance`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BetRefund {
    pub round: u64,
    pub slot: u8,
    /// The stake given back, in minor units.
    pub amount: i64,
}

/// A private message to one connection. Private frames carry no `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum ServerMessage {
    Hello {
        player: String,
        balance: i64,
        server_time: u64,
        proto: u32,
        room: String,
        /// Growth rate of the room's multiplier in millionths per ms:
        /// m(t) = floor(100 · e^(growth · t / 10^6)), for animating between ticks.
        growth: u64,
        /// Only when the client asked to resume (`since`): true when the events it
        /// missed follow (no snapshot), false when a snapshot follows instead.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recovered: Option<bool>,
    },
    Snapshot {
        room: String,
        /// The numbering `seq` belongs to; with `seq`, what a client sends back as
        /// `epoch` and `since` to resume. Absent while the gateway has seen no event.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "epoch_text")]
        epoch: Option<u64>,
        /// Sequence number of the last event this state includes; live events follow
        /// with `seq` + 1.
        seq: u64,
        round: u64,
        phase: Phase,
        /// Current (or crash) multiplier in hundredths.
        m: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ends_at: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        started_at: Option<u64>,
        history: Vec<PastRound>,
        /// The round's largest bets that its ticks listed, largest first, at most
        /// `gateway.snapshot_bets_max`.
        bets: Vec<LiveBet>,
        /// Absent while the round has no bet.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        totals: Option<RoundTotals>,
        /// Present (true) while an operator has the room paused: no betting phase opens
        /// after the current round until `resumed`.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        paused: bool,
        /// The room's last chat messages, oldest first, at most 50; absent when none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        chat: Vec<ChatLine>,
    },
    BetOk {
        req: String,
        round: u64,
        slot: u8,
        amount: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        auto: Option<u64>,
        balance: i64,
    },
    BetErr {
        req: String,
        code: ErrorCode,
        message: String,
    },
    CashoutOk {
        req: String,
        round: u64,
        slot: u8,
        m: u64,
        win: i64,
        balance: i64,
    },
    CashoutErr {
        req: String,
        code: ErrorCode,
        message: String,
    },
    /// The bet in `slot` is cancelled: `amount` is refunded, `balance` is after it.
    CancelOk {
        req: String,
        round: u64,
        slot: u8,
        amount: i64,
        balance: i64,
    },
    CancelErr {
        req: String,
        code: ErrorCode,
        message: String,
    },
    /// The player's balance changed outside a request (auto-cashout, refund).
    Balance {
        balance: i64,
        /// The cashout the engine made for the player (auto-cashout or the round's max
        /// profit) that this balance includes; absent for a refund.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cashout: Option<BetCashout>,
        /// The refund this balance includes (the bet's round was aborted).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refund: Option<BetRefund>,
    },
    /// The display name `req` asked for is the player's now (as it will be shown).
    NameOk {
        req: String,
        name: String,
    },
    NameErr {
        req: String,
        code: ErrorCode,
        message: String,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
    Pong {
        server_time: u64,
    },
    /// To an operator, not a player: the room control `req` is applied; `before` and
    /// `after` are the room's controls, which govern the rounds from `from_round` on.
    ControlOk {
        req: String,
        before: RoomControlsWire,
        after: RoomControlsWire,
        from_round: u64,
    },
    /// To an operator: the room control `req` was refused; nothing changed.
    ControlErr {
        req: String,
        code: ErrorCode,
        message: String,
    },
}

impl ServerMessage {
    /// The refusal of a request of `kind` (`bet_err`, `cashout_err`, `cancel_err`,
    /// `control_err`).
    pub fn refusal(kind: RequestKind, req: String, code: ErrorCode, message: String) -> Self {
        match kind {
            RequestKind::Bet => ServerMessage::BetErr { req, code, message },
            RequestKind::Cashout => ServerMessage::CashoutErr { req, code, message },
            RequestKind::Cancel => ServerMessage::CancelErr { req, code, message },
            RequestKind::Control => ServerMessage::ControlErr { req, code, message },
        }
    }
}

/// A room's operator controls in `control_ok`: whether it is paused, the stake limits
/// (`min`, `max`) and the max-profit cap (`cap`) of its next round, in minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomControlsWire {
    pub paused: bool,
    pub min: i64,
    pub max: i64,
    pub cap: i64,
}

/// Epochs travel as decimal strings: opaque to clients, and exact in JavaScript, whose
/// numbers lose integers above 2^53 (an epoch is any `u64`).
mod epoch_text {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(epoch: &Option<u64>, serializer: S) -> Result<S::Ok, S::Error> {
        match epoch {
            Some(epoch) => serializer.collect_str(epoch),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<u64>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| {
                super::parse_decimal(&text)
                    .ok_or_else(|| D::Error::custom("epoch is not a decimal u64"))
            })
            .transpose()
    }
}

/// Reads a stream position number as clients send it back (`epoch` of a `snapshot`, and
/// the `since` and `epoch` of a resuming `/ws` request): decimal digits only (where
/// `u64::from_str` would also take a leading `+`).
pub fn parse_decimal(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Serializes a server message. Serialization of these types cannot fail (no maps with
/// non-string keys, no non-finite floats), so a failure is a bug.
pub fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).expect("protocol types always serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bet_defaults_slot_zero_and_no_auto() {
        let message = decode_client_message(r#"{"t":"bet","req":"a1","amount":100}"#).unwrap();
        assert_eq!(
            message,
            ClientMessage::Bet {
                req: "a1".into(),
                amount: 100,
                auto: None,
                slot: 0
            }
        );
    }

    #[test]
    fn malformed_json_and_unknown_type_are_told_apart() {
        assert_eq!(
            decode_client_message("{nope").unwrap_err().code,
            ErrorCode::BadJson
        );
        assert_eq!(
            decode_client_message(r#"{"t":"fly"}"#).unwrap_err().code,
            ErrorCode::UnknownType
        );
        assert_eq!(
            decode_client_message(r#"{"t":"bet","req":"x"}"#)
                .unwrap_err()
                .code,
            ErrorCode::BadJson
        );
    }

    #[test]
    fn error_messages_never_echo_the_input() {
        let junk = "<".repeat(4096);
        for text in [
            format!(r#"{{"t":"bet","req":"a","amount":"{junk}"}}"#),
            format!(r#"{{"t":"{junk}"}}"#),
            format!(r#"{{"t":"bet","req":"a","amount":1,"slot":"{junk}"}}"#),
            format!(r#"{{"t":"cashout","req":["{junk}"]}}"#),
            format!(r#"{{"{junk}"#),
            format!(r#"{{"t":"ping"}}{junk}"#),
        ] {
            let error = decode_client_message(&text).unwrap_err();
            assert!(
                error.message.len() <= 80 && !error.message.contains("<<"),
                "{error:?}"
            );
        }
        let missing = decode_client_message(r#"{"t":"bet","req":"a"}"#).unwrap_err();
        assert_eq!(missing.message, "missing field amount");
    }

    #[test]
    fn request_id_length_is_bounded() {
        let long = "x".repeat(REQUEST_ID_BYTES_MAX + 1);
        let text = format!(r#"{{"t":"cashout","req":"{long}"}}"#);
        assert_eq!(
            decode_client_message(&text).unwrap_err().code,
            ErrorCode::InvalidField
        );
    }

    #[test]
    fn tick_field_names_are_the_contract() {
        let tick = RoomEvent::Tick {
            seq: 7,
            round: 3,
            m: 257,
            ms: 15000,
            at: 1,
            bets: vec![],
            cashouts: vec![PublicCashout {
                player: "p".into(),
                slot: 0,
                m: 200,
                win: 200,
                by: Some(CashoutKind::Auto),
            }],
            totals: Some(RoundTotals {
                bets: 12,
                staked: 3_400,
                cashouts: 1,
                won: 200,
                cashout_stakes: 100,
            }),
        };
        assert_eq!(
            encode(&tick),
            r#"{"t":"tick","seq":7,"round":3,"m":257,"ms":15000,"at":1,"cashouts":[{"player":"p","slot":0,"m":200,"win":200,"by":"auto"}],"totals":{"bets":12,"staked":3400,"cashouts":1,"won":200,"cashout_stakes":100}}"#
        );
    }

    #[test]
    fn epoch_is_a_decimal_string_and_recovered_only_when_asked() {
        let snapshot = |epoch| ServerMessage::Snapshot {
            room: "main".into(),
            epoch,
            seq: 4,
            round: 2,
            phase: Phase::Crashed,
            m: 150,
            ends_at: None,
            started_at: None,
            history: vec![],
            bets: vec![],
            totals: None,
            paused: false,
            chat: vec![],
        };
        let text = encode(&snapshot(Some(u64::MAX)));
        assert_eq!(
            text,
            r#"{"t":"snapshot","room":"main","epoch":"18446744073709551615","seq":4,"round":2,"phase":"crashed","m":150,"history":[],"bets":[]}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerMessage>(&text).unwrap(),
            snapshot(Some(u64::MAX))
        );
        // Before the gateway saw any event.
        assert!(!encode(&snapshot(None)).contains("epoch"));
        let hello = |recovered| ServerMessage::Hello {
            player: "p".into(),
            balance: 1,
            server_time: 2,
            proto: PROTOCOL_VERSION,
            room: "main".into(),
            growth: 60,
            recovered,
        };
        assert!(!encode(&hello(None)).contains("recovered"));
        assert!(encode(&hello(Some(true))).ends_with(r#""growth":60,"recovered":true}"#));
        assert!(encode(&hello(Some(false))).contains(r#""recovered":false"#));
    }

    #[test]
    fn positions_are_plain_decimal() {
        assert_eq!(parse_decimal("0"), Some(0));
        assert_eq!(parse_decimal("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "+1",
            "-1",
            " 1",
            "1.0",
            "0x10",
            "18446744073709551616",
            "abc",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn balance_names_the_cashout_it_includes() {
        let auto = ServerMessage::Balance {
            balance: 100_200,
            cashout: Some(BetCashout {
                round: 12,
                slot: 1,
                m: 200,
                win: 200,
            }),
            refund: None,
        };
        assert_eq!(
            encode(&auto),
            r#"{"t":"balance","balance":100200,"cashout":{"round":12,"slot":1,"m":200,"win":200}}"#
        );
        let refund = ServerMessage::Balance {
            balance: 100_000,
            cashout: None,
            refund: Some(BetRefund {
                round: 12,
                slot: 0,
                amount: 500,
            }),
        };
        assert_eq!(
            encode(&refund),
            r#"{"t":"balance","balance":100000,"refund":{"round":12,"slot":0,"amount":500}}"#
        );
    }

    #[test]
    fn error_code_wire_names_match_serde() {
        for code in [
            ErrorCode::BadJson,
            ErrorCode::UnknownType,
            ErrorCode::InvalidField,
            ErrorCode::WrongPhase,
            ErrorCode::InsufficientFunds,
            ErrorCode::SlotTaken,
            ErrorCode::NoActiveBet,
            ErrorCode::TooLate,
            ErrorCode::RateLimited,
            ErrorCode::Overloaded,
            ErrorCode::Internal,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(encode(&code), format!("\"{}\"", code.as_str()));
        }
    }
}
