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

#[cfg(test)]
mod tests {
    use crate::bus::RoomControl;
    use crate::engine::answer::{ControlRefusalCode, RefusalCode};
    use crate::engine::event::RoundEvent;
    use crate::ledger::RoomLimits;

    use super::super::test_support::*;
    use super::super::*;

    /// Decides and applies `control` at `now_ms`; panics if refused.
    fn control(core: &mut RoomCore, now_ms: u64, control: RoomControl) -> Vec<RoundEvent> {
        let change = core.decide_control(&control).expect("accepted");
        core.apply_control(now_ms, &change);
        core.take_effects().events
    }

    /// Advances from `from_ms` in steps of 50 ms up to `until_ms`; every event.
    fn run(core: &mut RoomCore, from_ms: u64, until_ms: u64) -> Vec<RoundEvent> {
        let mut events = Vec::new();
        let mut now_ms = from_ms;
        while now_ms <= until_ms {
            core.advance(now_ms).unwrap();
            events.extend(core.take_effects().events);
            now_ms += 50;
        }
        events
    }

    fn opened(events: &[RoundEvent]) -> Vec<u64> {
        let opened = events.iter().filter_map(|event| match event {
            RoundEvent::BettingOpened { round, .. } => Some(*round),
            _ => None,
        });
        opened.collect()
    }

    fn crashed(events: &[RoundEvent]) -> Vec<u64> {
        let crashed = events.iter().filter_map(|event| match event {
            RoundEvent::Crashed { round, .. } => Some(*round),
            _ => None,
        });
        crashed.collect()
    }

    /// A room whose round 1 crashes at 1.50x–3.00x; its crash time.
    fn room() -> (RoomCore, u64) {
        let (mut core, crash) = room_where(|crash| (150..=300).contains(&crash), engine());
        core.take_effects();
        let crash_at_ms = T0_MS + BETTING_MS + elapsed_to_reach_ms(crash, RATE);
        (core, crash_at_ms)
    }

    /// Paused at `pause_at_ms` (the clock advanced there first): round 1 plays to its
    /// crash, with its bet, and round 2 never opens however long the room waits.
    fn pause_finishes_the_round_and_opens_no_other(pause_at_ms: u64) {
        let (mut core, crash_at_ms) = room();
        placed(&mut core, "a", 100, None, 0);
        core.advance(pause_at_ms).unwrap();
        core.take_effects();
        let events = control(&mut core, pause_at_ms, RoomControl::Pause);
        assert!(matches!(
            events.as_slice(),
            [RoundEvent::RoomPaused { round: 1, .. }]
        ));
        let later = run(&mut core, pause_at_ms, crash_at_ms + 60_000);
        assert!(crashed(&later).contains(&1) || pause_at_ms >= crash_at_ms);
        assert!(opened(&later).is_empty(), "{later:?}");
        assert!(matches!(core.phase(), RoundPhase::Crashed { .. }));
        assert_eq!(core.round_number(), 1);
        assert_eq!(core.next_deadline_ms(), None, "a paused room sleeps");
        core.bet(
            crash_at_ms + 60_000,
            &player("b"),
            "b",
            "late",
            BetTerms::new(100, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
    }

    #[test]
    fn a_pause_during_betting_lets_the_round_fly_and_crash_then_stops() {
        pause_finishes_the_round_and_opens_no_other(T0_MS + BETTING_MS / 2);
    }

    #[test]
    fn a_pause_during_the_flight_lets_it_crash_then_stops() {
        let (_, crash_at_ms) = room();
        pause_finishes_the_round_and_opens_no_other(crash_at_ms - 1);
    }

    #[test]
    fn a_pause_right_at_the_crash_opens_no_next_round() {
        let (_, crash_at_ms) = room();
        pause_finishes_the_round_and_opens_no_other(crash_at_ms);
    }

    #[test]
    fn resume_opens_betting_at_once_and_pause_resume_are_refused_twice() {
        let (mut core, crash_at_ms) = room();
        control(&mut core, T0_MS, RoomControl::Pause);
        let refused = core.decide_control(&RoomControl::Pause).unwrap_err();
        assert_eq!(refused.code, ControlRefusalCode::AlreadyPaused);
        let resume_at_ms = crash_at_ms + 60_000;
        run(&mut core, T0_MS, resume_at_ms);
        let events = control(&mut core, resume_at_ms, RoomControl::Resume);
        assert!(matches!(
            events.as_slice(),
            [RoundEvent::RoomResumed { round: 1, .. }]
        ));
        let due_ms = core.next_deadline_ms().expect("the next round is due");
        assert!(due_ms <= resume_at_ms);
        core.advance(resume_at_ms).unwrap();
        let events = core.take_effects().events;
        let expected_end_ms = resume_at_ms + BETTING_MS;
        assert!(matches!(
            events.as_slice(),
            [RoundEvent::BettingOpened { round: 2, ends_at_ms, .. }] if *ends_at_ms == expected_end_ms
        ));
        let refused = core.decide_control(&RoomControl::Resume).unwrap_err();
        assert_eq!(refused.code, ControlRefusalCode::NotPaused);
    }

    #[test]
    fn new_limits_govern_the_next_round_not_the_current_one() {
        let (mut core, crash_at_ms) = room();
        let limits = RoomLimits {
            bet_amount_min_minor: 500,
            bet_amount_max_minor: 600,
            round_profit_max_minor: 1_000,
        };
        let events = control(&mut core, T0_MS, RoomControl::SetLimits(limits));
        assert!(matches!(
            events.as_slice(),
            [RoundEvent::RoomLimitsChanged { round: 1, from_round: 2, limits: announced, .. }] if *announced == limits
        ));
        assert_eq!(core.controls().limits, limits);
        // Round 1 keeps its limits: 100 is still a valid stake, 700 too.
        placed(&mut core, "a", 100, None, 0);
        placed(&mut core, "b", 700, None, 0);
        let next_ms = crash_at_ms + 600;
        let events = run(&mut core, T0_MS, next_ms);
        assert_eq!(opened(&events), [2]);
        core.bet(
            next_ms,
            &player("c"),
            "c",
            "small",
            BetTerms::new(100, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::InvalidField);
        core.bet(
            next_ms,
            &player("c"),
            "c",
            "large",
            BetTerms::new(700, None, 0),
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::InvalidField);
        placed_at(&mut core, next_ms, "c", 550, None, 0);
    }

    #[test]
    fn insane_limits_are_refused_and_change_nothing() {
        let (core, _) = room();
        let before = core.controls();
        let insane = [(0, 100, 1_000), (200, 100, 1_000), (10, 1_000, 999)];
        for (min, max, cap) in insane {
            let limits = RoomLimits {
                bet_amount_min_minor: min,
                bet_amount_max_minor: max,
                round_profit_max_minor: cap,
            };
            let refused = core.decide_control(&RoomControl::SetLimits(limits));
            assert_eq!(refused.unwrap_err().code, ControlRefusalCode::InvalidLimits);
        }
        assert_eq!(core.controls(), before);
    }

    #[test]
    fn a_room_started_paused_rests_until_resumed_then_opens_its_first_round() {
        let (core, _) = room();
        let settings = core.settings.clone();
        let mut core = RoomCore::paused(settings, core.chain.clone(), 1, 1, T0_MS);
        let events = core.take_effects().events;
        assert!(matches!(
            events.as_slice(),
            [RoundEvent::RoomPaused {
                seq: 1,
                round: 0,
                ..
            }]
        ));
        assert!(run(&mut core, T0_MS, T0_MS + 60_000).is_empty());
        control(&mut core, T0_MS + 60_000, RoomControl::Resume);
        core.advance(T0_MS + 60_000).unwrap();
        assert_eq!(opened(&core.take_effects().events), [1]);
    }
}
