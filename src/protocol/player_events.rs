//! The public events a player causes on the wire, from the engine's domain events and
//! back: a cancel (`bet_cancelled`, and the `cancel_ok` answer) and a chat message
//! (`chat`). Rare next to ticks, so they are written from an owned wire event.

use super::totals::{domain_totals, wire_totals};
use super::{ChatLine, RoomEvent, ServerMessage};
use crate::bus::RequestId;
use crate::engine::{Answer, Refusal, RoundEvent};

/// The wire event of a `BetCancelled` or a `ChatPosted`; the codec hands it no other.
pub(super) fn player_event(event: &RoundEvent) -> RoomEvent {
    match event {
        RoundEvent::BetCancelled {
            seq,
            round,
            player,
            slot,
            stake_minor,
            totals,
        } => RoomEvent::BetCancelled {
            seq: *seq,
            round: *round,
            player: player.clone(),
            slot: *slot,
            amount: *stake_minor,
            totals: totals.map(wire_totals),
        },
        RoundEvent::ChatPosted {
            seq,
            round,
            player,
            name,
            text,
            at_ms,
        } => RoomEvent::Chat {
            seq: *seq,
            round: *round,
            line: ChatLine {
                player: player.clone(),
                name: name.clone(),
                text: text.clone(),
                at: *at_ms,
            },
        },
        other => unreachable!("not a player's event: {other:?}"),
    }
}

/// The domain event of a wire `bet_cancelled` or `chat`; the codec hands it no other.
pub(super) fn domain_player_event(event: RoomEvent) -> RoundEvent {
    match event {
        RoomEvent::BetCancelled {
            seq,
            round,
            player,
            slot,
            amount,
            totals,
        } => RoundEvent::BetCancelled {
            seq,
            round,
            player,
            slot,
            stake_minor: amount,
            totals: totals.map(domain_totals),
        },
        RoomEvent::Chat { seq, round, line } => RoundEvent::ChatPosted {
            seq,
            round,
            player: line.player,
            name: line.name,
            text: line.text,
            at_ms: line.at,
        },
        other => unreachable!("not a player's event: {other:?}"),
    }
}

/// The `cancel_ok` of a cancelled bet; the codec hands it no other answer.
pub(super) fn cancel_ok(answer: Answer) -> ServerMessage {
    let Answer::BetCancelled {
        req,
        round,
        slot,
        refunded_minor,
        balance_after_minor,
    } = answer
    else {
        unreachable!("not a cancel's answer: {answer:?}");
    };
    ServerMessage::CancelOk {
        req,
        round,
        slot,
        amount: refunded_minor,
        balance: balance_after_minor,
    }
}

/// The private frame of a refusal: the `*_err` of the request it answers, or `error`
/// for a chat message (no request).
pub(super) fn refusal_message(answer: &Answer, refusal: &Refusal) -> ServerMessage {
    let (code, message) = (refusal.code.into(), refusal.message.clone());
    match answer.request() {
        Some(RequestId { kind, req }) => ServerMessage::refusal(kind, req, code, message),
        None => ServerMessage::Error { code, message },
    }
}
