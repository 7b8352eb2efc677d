//! A player's cancel on the wire: the public `bet_cancelled` event from the engine's
//! domain event and back, and the `cancel_ok` / `cancel_err` answers.

use super::totals::{domain_totals, wire_totals};
use super::{RoomEvent, ServerMessage};
use crate::engine::{Answer, RoundEvent};

/// The wire event of a `BetCancelled`; the codec hands it no other.
pub(super) fn cancel_event(event: &RoundEvent) -> RoomEvent {
    let RoundEvent::BetCancelled {
        seq,
        round,
        player,
        slot,
        stake_minor,
        totals,
    } = event
    else {
        unreachable!("not a cancel: {event:?}");
    };
    RoomEvent::BetCancelled {
        seq: *seq,
        round: *round,
        player: player.clone(),
        slot: *slot,
        amount: *stake_minor,
        totals: totals.map(wire_totals),
    }
}

/// The domain event of a wire `bet_cancelled`; the codec hands it no other.
pub(super) fn domain_cancel_event(event: RoomEvent) -> RoundEvent {
    let RoomEvent::BetCancelled {
        seq,
        round,
        player,
        slot,
        amount,
        totals,
    } = event
    else {
        unreachable!("not a cancel: {event:?}");
    };
    RoundEvent::BetCancelled {
        seq,
        round,
        player,
        slot,
        stake_minor: amount,
        totals: totals.map(domain_totals),
    }
}

/// The private frame of a cancel's answer; the codec hands it no other.
pub(super) fn cancel_answer(answer: Answer) -> ServerMessage {
    match answer {
        Answer::BetCancelled {
            req,
            round,
            slot,
            refunded_minor,
            balance_after_minor,
        } => ServerMessage::CancelOk {
            req,
            round,
            slot,
            amount: refunded_minor,
            balance: balance_after_minor,
        },
        Answer::CancelRefused { req, refusal } => ServerMessage::CancelErr {
            req,
            code: refusal.code.into(),
            message: refusal.message,
        },
        other => unreachable!("not a cancel's answer: {other:?}"),
    }
}
