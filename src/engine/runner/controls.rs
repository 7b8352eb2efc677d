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
