//! The engine's domain on the wire: [`JsonCodec`], the [`Codec`] every process hands its
//! engines. A [`RoundEvent`] is written through borrowed views of its lists (no copy of a
//! player name, no list built per event: one `String` per event, the JSON itself), with
//! the field names of [`RoomEvent`]; an [`Answer`] becomes its [`ServerMessage`].

use bytes::Bytes;
use serde::{Serialize, Serializer};

use super::controls::{control_err, control_event, control_ok, domain_control_event};
use super::player_events::{cancel_ok, domain_player_event, player_event, refusal_message};
use super::totals::{domain_totals, wire_totals};
use super::{
    BetCashout, BetRefund, ErrorCode, PublicBet, PublicCashout, RoomEvent, ServerMessage, encode,
};
use crate::engine::{
    Answer, CashoutKind, Codec, EngineCashout, ListedBet, ListedCashout, RefusalCode, RoundEvent,
};

/// Protocol v1's codec: JSON text, as `docs/protocol.md` describes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonCodec;

impl Codec for JsonCodec {
    fn encode_event(&self, event: &RoundEvent) -> Bytes {
        Bytes::from(encode(&EventView::from(event)))
    }

    fn encode_answer(&self, answer: &Answer) -> Bytes {
        Bytes::from(encode(&server_message(answer)))
    }

    fn decode_event(&self, bytes: &[u8]) -> Option<RoundEvent> {
        serde_json::from_slice::<RoomEvent>(bytes)
            .ok()
            .map(round_event)
    }
}

/// A [`RoundEvent`] serialized as its [`RoomEvent`], borrowing its lists.
#[derive(Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum EventView<'a> {
    Betting {
        seq: u64,
        round: u64,
        ends_at: u64,
    },
    Flying {
        seq: u64,
        round: u64,
        started_at: u64,
    },
    Tick {
        seq: u64,
        round: u64,
        m: u64,
        ms: u64,
        at: u64,
        #[serde(skip_serializing_if = "Listed::is_empty")]
        bets: Listed<'a, ListedBet>,
        #[serde(skip_serializing_if = "Listed::is_empty")]
        cashouts: Listed<'a, ListedCashout>,
        #[serde(skip_serializing_if = "Option::is_none")]
        totals: Option<super::RoundTotals>,
    },
    Crash {
        seq: u64,
        round: u64,
        m: u64,
        hash: &'a str,
        at: u64,
        #[serde(skip_serializing_if = "Listed::is_empty")]
        cashouts: Listed<'a, ListedCashout>,
        #[serde(skip_serializing_if = "Option::is_none")]
        totals: Option<super::RoundTotals>,
    },
    /// The rare events, written from an owned wire event: room controls, a player's
    /// cancel or chat message.
    #[serde(untagged)]
    Owned(RoomEvent),
}

impl<'a> From<&'a RoundEvent> for EventView<'a> {
    fn from(event: &'a RoundEvent) -> Self {
        match event {
            RoundEvent::BettingOpened {
                seq,
                round,
                ends_at_ms,
            } => EventView::Betting {
                seq: *seq,
                round: *round,
                ends_at: *ends_at_ms,
            },
            RoundEvent::FlightStarted {
                seq,
                round,
                started_at_ms,
            } => EventView::Flying {
                seq: *seq,
                round: *round,
                started_at: *started_at_ms,
            },
            RoundEvent::Tick {
                seq,
                round,
                multiplier_hundredths,
                elapsed_ms,
                at_ms,
                bets,
                cashouts,
                totals,
            } => EventView::Tick {
                seq: *seq,
                round: *round,
                m: *multiplier_hundredths,
                ms: *elapsed_ms,
                at: *at_ms,
                bets: Listed(bets),
                cashouts: Listed(cashouts),
                totals: totals.map(wire_totals),
            },
            RoundEvent::Crashed {
                seq,
                round,
                crash_hundredths,
                hash,
                at_ms,
                cashouts,
                totals,
            } => EventView::Crash {
                seq: *seq,
                round: *round,
                m: *crash_hundredths,
                hash,
                at: *at_ms,
                cashouts: Listed(cashouts),
                totals: totals.map(wire_totals),
            },
            rare => EventView::Owned(owned_event(rare)),
        }
    }
}

/// The wire form of a rare event: a player's cancel or chat message, a room control.
fn owned_event(event: &RoundEvent) -> RoomEvent {
    match event {
        RoundEvent::BetCancelled { .. } | RoundEvent::ChatPosted { .. } => player_event(event),
        control => control_event(control), // Paused, Resumed, Limits.
    }
}

/// A public list serialized item by item through a borrowed view.
struct Listed<'a, T>(&'a [T]);

impl<T> Listed<'_, T> {
    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// [`PublicBet`], borrowing the player and its name.
#[derive(Serialize)]
struct BetView<'a> {
    player: &'a str,
    name: &'a str,
    slot: u8,
    amount: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    auto: Option<u64>,
}

/// [`PublicCashout`], borrowing the player.
#[derive(Serialize)]
struct CashoutView<'a> {
    player: &'a str,
    slot: u8,
    m: u64,
    win: i64,
    by: super::CashoutKind,
}

impl Serialize for Listed<'_, ListedBet> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|bet| BetView {
            player: &bet.player,
            name: &bet.name,
            slot: bet.slot,
            amount: bet.stake_minor,
            auto: bet.auto_cashout_hundredths,
        }))
    }
}

impl Serialize for Listed<'_, ListedCashout> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|cashout| CashoutView {
            player: &cashout.player,
            slot: cashout.slot,
            m: cashout.multiplier_hundredths,
            win: cashout.win_minor,
            by: wire_kind(cashout.kind),
        }))
    }
}

fn wire_kind(kind: CashoutKind) -> super::CashoutKind {
    match kind {
        CashoutKind::Manual => super::CashoutKind::Manual,
        CashoutKind::Auto => super::CashoutKind::Auto,
        CashoutKind::Cap => super::CashoutKind::Cap,
    }
}

/// An event without `by` (none is written without it) reads as a manual cashout.
fn domain_kind(kind: Option<super::CashoutKind>) -> CashoutKind {
    match kind {
        Some(super::CashoutKind::Manual) | None => CashoutKind::Manual,
        Some(super::CashoutKind::Auto) => CashoutKind::Auto,
        Some(super::CashoutKind::Cap) => CashoutKind::Cap,
    }
}

fn listed_cashout(cashout: PublicCashout) -> ListedCashout {
    ListedCashout {
        player: cashout.player,
        slot: cashout.slot,
        multiplier_hundredths: cashout.m,
        win_minor: cashout.win,
        kind: domain_kind(cashout.by),
    }
}

fn listed_bet(bet: PublicBet) -> ListedBet {
    ListedBet {
        player: bet.player,
        name: bet.name,
        slot: bet.slot,
        stake_minor: bet.amount,
        auto_cashout_hundredths: bet.auto,
    }
}

/// A decoded event in domain terms (what a new leader reads of its predecessor's, what
/// the operator console follows).
pub fn round_event(event: RoomEvent) -> RoundEvent {
    match event {
        RoomEvent::Betting {
            seq,
            round,
            ends_at,
        } => RoundEvent::BettingOpened {
            seq,
            round,
            ends_at_ms: ends_at,
        },
        RoomEvent::Flying {
            seq,
            round,
            started_at,
        } => RoundEvent::FlightStarted {
            seq,
            round,
            started_at_ms: started_at,
        },
        RoomEvent::Tick {
            seq,
            round,
            m,
            ms,
            at,
            bets,
            cashouts,
            totals,
        } => RoundEvent::Tick {
            seq,
            round,
            multiplier_hundredths: m,
            elapsed_ms: ms,
            at_ms: at,
            bets: bets.into_iter().map(listed_bet).collect(),
            cashouts: cashouts.into_iter().map(listed_cashout).collect(),
            totals: totals.map(domain_totals),
        },
        RoomEvent::Crash {
            seq,
            round,
            m,
            hash,
            at,
            cashouts,
            totals,
        } => RoundEvent::Crashed {
            seq,
            round,
            crash_hundredths: m,
            hash,
            at_ms: at,
            cashouts: cashouts.into_iter().map(listed_cashout).collect(),
            totals: totals.map(domain_totals),
        },
        e @ (RoomEvent::BetCancelled { .. } | RoomEvent::Chat { .. }) => domain_player_event(e),
        control => domain_control_event(control), // Paused, Resumed, Limits.
    }
}

impl From<RefusalCode> for ErrorCode {
    fn from(code: RefusalCode) -> Self {
        match code {
            RefusalCode::InvalidField => ErrorCode::InvalidField,
            RefusalCode::WrongPhase => ErrorCode::WrongPhase,
            RefusalCode::InsufficientFunds => ErrorCode::InsufficientFunds,
            RefusalCode::SlotTaken => ErrorCode::SlotTaken,
            RefusalCode::NoActiveBet => ErrorCode::NoActiveBet,
            RefusalCode::TooLate => ErrorCode::TooLate,
            RefusalCode::Overloaded => ErrorCode::Overloaded,
            RefusalCode::Internal => ErrorCode::Internal,
            RefusalCode::Unavailable => ErrorCode::Unavailable,
            RefusalCode::ChatRateLimited => ErrorCode::ChatRateLimited,
        }
    }
}

/// The private frame that tells a player `answer`.
pub fn server_message(answer: &Answer) -> ServerMessage {
    if let Some(refusal) = answer.refusal() {
        return refusal_message(answer, refusal);
    }
    match answer.clone() {
        Answer::BetAccepted {
            req,
            round,
            slot,
            stake_minor,
            auto_cashout_hundredths,
            balance_after_minor,
        } => ServerMessage::BetOk {
            req,
            round,
            slot,
            amount: stake_minor,
            auto: auto_cashout_hundredths,
            balance: balance_after_minor,
        },
        Answer::CashedOut {
            req,
            round,
            slot,
            multiplier_hundredths,
            win_minor,
            balance_after_minor,
        } => ServerMessage::CashoutOk {
            req,
            round,
            slot,
            m: multiplier_hundredths,
            win: win_minor,
            balance: balance_after_minor,
        },
        cancelled @ Answer::BetCancelled { .. } => cancel_ok(cancelled),
        Answer::BalanceChanged {
            balance_minor,
            cashout,
            refund,
        } => ServerMessage::Balance {
            balance: balance_minor,
            cashout: cashout.map(bet_cashout),
            refund: refund.map(|refund| BetRefund {
                round: refund.round,
                slot: refund.slot,
                amount: refund.refunded_minor,
            }),
        },
        Answer::ControlApplied { req, change } => control_ok(req, &change),
        Answer::ControlRefused { req, refusal } => control_err(req, refusal),
        Answer::BetRefused { .. }
        | Answer::CashoutRefused { .. }
        | Answer::CancelRefused { .. }
        | Answer::ChatRefused { .. } => unreachable!("refusals are answered above"),
    }
}

fn bet_cashout(cashout: EngineCashout) -> BetCashout {
    BetCashout {
        round: cashout.round,
        slot: cashout.slot,
        m: cashout.multiplier_hundredths,
        win: cashout.win_minor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Refusal, RoundTotals};

    fn tick() -> RoundEvent {
        RoundEvent::Tick {
            seq: 7,
            round: 3,
            multiplier_hundredths: 257,
            elapsed_ms: 15_000,
            at_ms: 1,
            bets: vec![ListedBet {
                player: "b".into(),
                name: "Bee".into(),
                slot: 1,
                stake_minor: 500,
                auto_cashout_hundredths: Some(300),
            }],
            cashouts: vec![ListedCashout {
                player: "p".into(),
                slot: 0,
                multiplier_hundredths: 200,
                win_minor: 200,
                kind: CashoutKind::Auto,
            }],
            totals: Some(RoundTotals {
                bets: 12,
                staked_minor: 3_400,
                cashouts: 1,
                won_minor: 200,
                cashed_out_stakes_minor: 100,
            }),
        }
    }

    #[test]
    fn a_tick_is_written_with_the_wire_names() {
        assert_eq!(
            JsonCodec.encode_event(&tick()),
            r#"{"t":"tick","seq":7,"round":3,"m":257,"ms":15000,"at":1,"bets":[{"player":"b","name":"Bee","slot":1,"amount":500,"auto":300}],"cashouts":[{"player":"p","slot":0,"m":200,"win":200,"by":"auto"}],"totals":{"bets":12,"staked":3400,"cashouts":1,"won":200,"cashout_stakes":100}}"#
        );
    }

    #[test]
    fn every_event_reads_back_as_written_and_as_the_wire_type_writes_it() {
        let events = [
            RoundEvent::BettingOpened {
                seq: 1,
                round: 3,
                ends_at_ms: 9,
            },
            RoundEvent::FlightStarted {
                seq: 2,
                round: 3,
                started_at_ms: 10,
            },
            tick(),
            RoundEvent::Tick {
                seq: 8,
                round: 3,
                multiplier_hundredths: 100,
                elapsed_ms: 0,
                at_ms: 2,
                bets: vec![],
                cashouts: vec![],
                totals: None,
            },
            RoundEvent::Crashed {
                seq: 9,
                round: 3,
                crash_hundredths: 300,
                hash: "ab".into(),
                at_ms: 20,
                cashouts: vec![],
                totals: None,
            },
            RoundEvent::BetCancelled {
                seq: 3,
                round: 4,
                player: "p".into(),
                slot: 1,
                stake_minor: 500,
                totals: None,
            },
        ];
        for event in events {
            let bytes = JsonCodec.encode_event(&event);
            assert_eq!(JsonCodec.decode_event(&bytes), Some(event.clone()));
            let wire: RoomEvent = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(encode(&wire).as_bytes(), bytes, "{event:?}");
        }
        assert_eq!(JsonCodec.decode_event(b"{\"t\":\"pong\"}"), None);
    }

    #[test]
    fn a_cancel_is_written_with_the_wire_names() {
        let cancelled = RoundEvent::BetCancelled {
            seq: 3,
            round: 4,
            player: "p".into(),
            slot: 1,
            stake_minor: 500,
            totals: Some(RoundTotals {
                bets: 1,
                staked_minor: 100,
                ..RoundTotals::default()
            }),
        };
        assert_eq!(
            JsonCodec.encode_event(&cancelled),
            r#"{"t":"bet_cancelled","seq":3,"round":4,"player":"p","slot":1,"amount":500,"totals":{"bets":1,"staked":100,"cashouts":0,"won":0,"cashout_stakes":0}}"#
        );
        let ok = Answer::BetCancelled {
            req: "x".into(),
            round: 4,
            slot: 1,
            refunded_minor: 500,
            balance_after_minor: 1_500,
        };
        assert_eq!(
            JsonCodec.encode_answer(&ok),
            r#"{"t":"cancel_ok","req":"x","round":4,"slot":1,"amount":500,"balance":1500}"#
        );
        let late = Answer::CancelRefused {
            req: "x".into(),
            refusal: Refusal::new(RefusalCode::TooLate, "betting has closed"),
        };
        assert_eq!(
            JsonCodec.encode_answer(&late),
            r#"{"t":"cancel_err","req":"x","code":"too_late","message":"betting has closed"}"#
        );
    }

    #[test]
    fn answers_become_their_private_frames() {
        let refused = Answer::CashoutRefused {
            req: "r".into(),
            refusal: Refusal::new(RefusalCode::TooLate, "the round crashed first"),
        };
        assert_eq!(
            JsonCodec.encode_answer(&refused),
            r#"{"t":"cashout_err","req":"r","code":"too_late","message":"the round crashed first"}"#
        );
        let auto = Answer::BalanceChanged {
            balance_minor: 100_200,
            cashout: Some(EngineCashout {
                round: 12,
                slot: 1,
                multiplier_hundredths: 200,
                win_minor: 200,
            }),
            refund: None,
        };
        assert_eq!(
            JsonCodec.encode_answer(&auto),
            r#"{"t":"balance","balance":100200,"cashout":{"round":12,"slot":1,"m":200,"win":200}}"#
        );
        let accepted = Answer::BetAccepted {
            req: "a".into(),
            round: 1,
            slot: 0,
            stake_minor: 10,
            auto_cashout_hundredths: None,
            balance_after_minor: 90,
        };
        assert_eq!(
            JsonCodec.encode_answer(&accepted),
            r#"{"t":"bet_ok","req":"a","round":1,"slot":0,"amount":10,"balance":90}"#
        );
    }
}
