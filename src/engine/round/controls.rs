//! An operator's controls of a room, decided by the core: pause after the round in
//! flight, resume, and the stake limits and max-profit cap of the next round.
//!
//! Two steps, like a stake: [`RoomCore::decide_control`] checks a control against the
//! room and says what it would change ([`ControlChange`]) without changing anything; the
//! runner makes the change durable (the ledger's room controls, fenced, with its audit
//! entry) and only then calls [`RoomCore::apply_control`], which changes the room and
//! announces it. A paused room finishes the round in flight and opens no new betting
//! phase until resumed; new limits govern the rounds from the next one on.

use crate::bus::RoomControl;
use crate::ledger::{RoomControls, RoomLimits};

use super::super::answer::{ControlRefusal, ControlRefusalCode};
use super::super::event::RoundEvent;
use super::RoomCore;

/// What a control changes: the room's controls before and after it, and the first round
/// they govern (pause: the first round that does not open).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlChange {
    pub before: RoomControls,
    pub after: RoomControls,
    pub from_round: u64,
}

impl RoomCore {
    /// Whether the room is paused, and the limits its next round will have.
    pub fn controls(&self) -> RoomControls {
        let engine = &self.settings.engine;
        let current = RoomLimits {
            bet_amount_min_minor: engine.bet_amount_min_minor,
            bet_amount_max_minor: engine.bet_amount_max_minor,
            round_profit_max_minor: engine.round_profit_max_minor,
        };
        RoomControls {
            paused: self.paused,
            limits: self.next_limits.unwrap_or(current),
        }
    }

    /// What `control` would change, or why it is refused (a pause of a paused room, a
    /// resume of a running one, limits that cannot govern a round). Changes nothing.
    pub fn decide_control(&self, control: &RoomControl) -> Result<ControlChange, ControlRefusal> {
        let before = self.controls();
        let refuse = |code, message: &str| Err(ControlRefusal::new(code, message));
        let after = match control {
            RoomControl::Pause if before.paused => {
                return refuse(
                    ControlRefusalCode::AlreadyPaused,
                    "the room is paused already",
                );
            }
            RoomControl::Resume if !before.paused => {
                return refuse(ControlRefusalCode::NotPaused, "the room is not paused");
            }
            RoomControl::Pause | RoomControl::Resume => RoomControls {
                paused: !before.paused,
                ..before
            },
            RoomControl::SetLimits(limits) => {
                if let Some(reason) = limits.insane_because() {
                    return refuse(ControlRefusalCode::InvalidLimits, reason);
                }
                RoomControls {
                    limits: *limits,
                    ..before
                }
            }
        };
        Ok(ControlChange {
            before,
            after,
            from_round: self.round.number + 1,
        })
    }

    /// Applies a change [`RoomCore::decide_control`] made, once it is durable, and
    /// announces it. A resumed room opens betting at its next `advance` if the round
    /// before has ended its crashed phase.
    pub fn apply_control(&mut self, now_ms: u64, change: &ControlChange) {
        self.observe(now_ms);
        assert_eq!(
            change.before,
            self.controls(),
            "a change applies to the controls it was decided on"
        );
        let round = self.round.number;
        if change.after.limits != change.before.limits {
            let limits = change.after.limits;
            self.next_limits = Some(limits);
            self.emit(|seq| RoundEvent::RoomLimitsChanged {
                seq,
                round,
                limits,
                from_round: round + 1,
            });
        }
        match (change.before.paused, change.after.paused) {
            (false, true) => self.rest_after_round(now_ms),
            (true, false) => {
                self.paused = false;
                self.emit(|seq| RoundEvent::RoomResumed {
                    seq,
                    round,
                    at_ms: now_ms,
                });
            }
            _ => {}
        }
    }

    /// Pauses the room after its current round and announces it.
    pub fn rest_after_round(&mut self, now_ms: u64) {
        assert!(!self.paused, "a room is paused once");
        self.paused = true;
        let round = self.round.number;
        self.emit(|seq| RoundEvent::RoomPaused {
            seq,
            round,
            at_ms: now_ms,
        });
    }
}

/// Makes `limits` those of `engine`: the stored limits at a leader's start, and a change
/// when the round it governs opens.
pub fn set_limits(engine: &mut crate::config::EngineConfig, limits: RoomLimits) {
    engine.bet_amount_min_minor = limits.bet_amount_min_minor;
    engine.bet_amount_max_minor = limits.bet_amount_max_minor;
    engine.round_profit_max_minor = limits.round_profit_max_minor;
}
