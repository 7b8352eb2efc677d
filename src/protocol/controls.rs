//! Operators' room controls on the wire: the public `paused`, `resumed` and `limits`
//! events from the engine's domain events and back, and the `control_ok` / `control_err`
//! answers an operator's control gets (never sent to a player).

use super::{ErrorCode, RoomControlsWire, RoomEvent, ServerMessage};
use crate::engine::RoundEvent;
use crate::engine::answer::{ControlRefusal, ControlRefusalCode};
use crate::engine::round::ControlChange;
use crate::ledger::{RoomControls, RoomLimits};

/// The wire event of a room control event (`RoomPaused`, `RoomResumed`,
/// `RoomLimitsChanged`); the codec hands it no other.
pub(super) fn control_event(event: &RoundEvent) -> RoomEvent {
    match *event {
        RoundEvent::RoomPaused { seq, round, at_ms } => RoomEvent::Paused {
            seq,
            round,
            at: at_ms,
        },
        RoundEvent::RoomResumed { seq, round, at_ms } => RoomEvent::Resumed {
            seq,
            round,
            at: at_ms,
        },
        RoundEvent::RoomLimitsChanged {
            seq,
            round,
            limits,
            from_round,
        } => RoomEvent::Limits {
            seq,
            round,
            min: limits.bet_amount_min_minor,
            max: limits.bet_amount_max_minor,
            cap: limits.round_profit_max_minor,
            from_round,
        },
        _ => unreachable!("not a room control event: {event:?}"),
    }
}

/// The domain event of a wire `paused`, `resumed` or `limits`; the codec hands it no
/// other.
pub(super) fn domain_control_event(event: RoomEvent) -> RoundEvent {
    match event {
        RoomEvent::Paused { seq, round, at } => RoundEvent::RoomPaused {
            seq,
            round,
            at_ms: at,
        },
        RoomEvent::Resumed { seq, round, at } => RoundEvent::RoomResumed {
            seq,
            round,
            at_ms: at,
        },
        RoomEvent::Limits {
            seq,
            round,
            min,
            max,
            cap,
            from_round,
        } => RoundEvent::RoomLimitsChanged {
            seq,
            round,
            limits: RoomLimits {
                bet_amount_min_minor: min,
                bet_amount_max_minor: max,
                round_profit_max_minor: cap,
            },
            from_round,
        },
        other => unreachable!("not a room control event: {other:?}"),
    }
}

pub(super) fn control_ok(req: String, change: &ControlChange) -> ServerMessage {
    ServerMessage::ControlOk {
        req,
        before: wire_controls(change.before),
        after: wire_controls(change.after),
        from_round: change.from_round,
    }
}

pub(super) fn control_err(req: String, refusal: ControlRefusal) -> ServerMessage {
    let code = match refusal.code {
        ControlRefusalCode::InvalidLimits => ErrorCode::InvalidLimits,
        ControlRefusalCode::AlreadyPaused => ErrorCode::AlreadyPaused,
        ControlRefusalCode::NotPaused => ErrorCode::NotPaused,
        ControlRefusalCode::Unavailable => ErrorCode::Unavailable,
    };
    ServerMessage::ControlErr {
        req,
        code,
        message: refusal.message,
    }
}

/// A room's controls as `control_ok` carries them, back in domain terms.
pub fn domain_controls(wire: RoomControlsWire) -> RoomControls {
    RoomControls {
        paused: wire.paused,
        limits: RoomLimits {
            bet_amount_min_minor: wire.min,
            bet_amount_max_minor: wire.max,
            round_profit_max_minor: wire.cap,
        },
    }
}

/// A room's controls on the wire.
pub fn wire_controls(controls: RoomControls) -> RoomControlsWire {
    RoomControlsWire {
        paused: controls.paused,
        min: controls.limits.bet_amount_min_minor,
        max: controls.limits.bet_amount_max_minor,
        cap: controls.limits.round_profit_max_minor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Codec;
    use crate::protocol::JsonCodec;

    #[test]
    fn control_events_travel_as_paused_resumed_and_limits_and_come_back() {
        let limits = RoomLimits {
            bet_amount_min_minor: 5,
            bet_amount_max_minor: 900,
            round_profit_max_minor: 50_000,
        };
        let events = [
            (
                RoundEvent::RoomPaused {
                    seq: 4,
                    round: 2,
                    at_ms: 9,
                },
                r#"{"t":"paused","seq":4,"round":2,"at":9}"#,
            ),
            (
                RoundEvent::RoomResumed {
                    seq: 5,
                    round: 2,
                    at_ms: 10,
                },
                r#"{"t":"resumed","seq":5,"round":2,"at":10}"#,
            ),
            (
                RoundEvent::RoomLimitsChanged {
                    seq: 6,
                    round: 2,
                    limits,
                    from_round: 3,
                },
                r#"{"t":"limits","seq":6,"round":2,"min":5,"max":900,"cap":50000,"from_round":3}"#,
            ),
        ];
        for (event, json) in events {
            let bytes = JsonCodec.encode_event(&event);
            assert_eq!(std::str::from_utf8(&bytes).unwrap(), json);
            assert_eq!(JsonCodec.decode_event(&bytes), Some(event));
        }
    }
}
