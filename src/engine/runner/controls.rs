//! Operators' controls of a room, performed: the core decides a control, the ledger
//! stores the change with its audit entry (fenced, like every write of the leader), and
//! only then the core applies and announces it; the answer goes back to the operator.
//! (At a leader's start, `takeover` reads the controls stored last.)

use crate::bus::{ReplyTo, RoomControl};
use crate::engine::answer::{Answer, ControlRefusal, ControlRefusalCode, Reply};
use crate::engine::round::ControlChange;
use crate::ledger::{AuditAction, RoomControlsChange};

use super::RoomRunner;

impl RoomRunner {
    /// Decides, stores and applies the control `req` of `operator` at `now_ms`; the
    /// answer goes to `from`.
    pub(super) async fn control(
        &mut self,
        now_ms: u64,
        from: ReplyTo,
        req: String,
        operator: String,
        control: RoomControl,
    ) -> Reply {
        let decided = self.core.decide_control(&control);
        let answer = match decided {
            Err(refusal) => Answer::ControlRefused { req, refusal },
            Ok(change) => match self
                .store_control(now_ms, operator, &control, &change)
                .await
            {
                Ok(()) => {
                    self.core.apply_control(now_ms, &change);
                    Answer::ControlApplied { req, change }
                }
                Err(refusal) => Answer::ControlRefused { req, refusal },
            },
        };
        Reply { to: from, answer }
    }

    async fn store_control(
        &mut self,
        now_ms: u64,
        operator: String,
        control: &RoomControl,
        change: &ControlChange,
    ) -> Result<(), ControlRefusal> {
        let stored = RoomControlsChange {
            room: self.room.clone(),
            operator,
            action: audit_action(control),
            at_ms: now_ms,
            before: change.before,
            after: change.after,
        };
        let written = self.writer.write_room_controls(&stored).await;
        written.map_err(|error| {
            self.note_fenced(&error);
            tracing::error!(room = %self.room, %error, "room controls not stored; refused");
            ControlRefusal::new(
                ControlRefusalCode::Unavailable,
                "the ledger did not store the change; nothing changed",
            )
        })
    }
}

fn audit_action(control: &RoomControl) -> AuditAction {
    match control {
        RoomControl::Pause => AuditAction::PauseRoom,
        RoomControl::Resume => AuditAction::ResumeRoom,
        RoomControl::SetLimits(_) => AuditAction::SetRoomLimits,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::bus::{Command, MemoryBus, RoomControl};
    use crate::engine::EngineDeps;
    use crate::engine::answer::Answer;
    use crate::engine::event::RoundEvent;
    use crate::ledger::Ledger;

    use super::super::test_support::*;

    fn control(req: &str, control: RoomControl) -> Command {
        Command::Control {
            req: req.into(),
            operator: "ops".into(),
            control,
        }
    }

    /// The same room and ledger on a new bus: a restarted process.
    fn restarted(fixture: &Fixture) -> Fixture {
        let bus = Arc::new(MemoryBus::default());
        Fixture {
            bus: bus.clone(),
            ledger: fixture.ledger.clone(),
            settings: fixture.settings.clone(),
            deps: EngineDeps {
                bus,
                ..fixture.deps.clone()
            },
            codec: fixture.codec.clone(),
        }
    }

    #[tokio::test]
    async fn a_paused_room_stays_paused_after_a_restart_until_resumed() {
        let fixture = fixture(1, |crash| (150..=300).contains(&crash));
        let (mut watcher, mut replies, shutdown, engine) = start(&fixture).await;
        watcher
            .until(|event| matches!(event, RoundEvent::BettingOpened { round: 1, .. }))
            .await;
        send(&fixture.bus, "ops", control("p", RoomControl::Pause)).await;
        let (_, answer) = next_reply(&mut replies).await;
        assert!(matches!(answer, Answer::ControlApplied { ref change, .. } if change.after.paused));
        watcher
            .until(|event| matches!(event, RoundEvent::Crashed { round: 1, .. }))
            .await;
        shutdown.cancel();
        engine.await.unwrap().unwrap();
        let stored = fixture.ledger.room_controls(ROOM).await.unwrap();
        assert!(stored.unwrap().paused);

        let again = restarted(&fixture);
        let (mut watcher, mut replies, shutdown, engine) = start(&again).await;
        let first = watcher.until(|_| true).await;
        assert!(
            matches!(first, RoundEvent::RoomPaused { round: 1, .. }),
            "{first:?}"
        );
        // Betting is 200 ms, the crashed pause 100 ms: a running room would have opened.
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        send(&again.bus, "ops", control("r", RoomControl::Resume)).await;
        let (_, answer) = next_reply(&mut replies).await;
        assert!(
            matches!(answer, Answer::ControlApplied { ref change, .. } if !change.after.paused)
        );
        let events = [watcher.until(|_| true).await, watcher.until(|_| true).await];
        assert!(
            matches!(events[0], RoundEvent::RoomResumed { round: 1, .. }),
            "{events:?}"
        );
        assert!(
            matches!(events[1], RoundEvent::BettingOpened { round: 2, .. }),
            "nothing opened while paused: {events:?}"
        );
        shutdown.cancel();
        engine.await.unwrap().unwrap();
    }
}
