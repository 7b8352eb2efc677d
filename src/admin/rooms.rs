//! Room controls for operators: [`RoomController`] sends a control to the engine that
//! leads the room, on the room's command path, and waits a bounded time for its answer
//! on the process's admin reply channel. A task reads that channel all the time, so the
//! replies sent to every gateway's channel (notices, players' controls) never fill it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use serde::Serialize;
use tokio::sync::{Mutex, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bus::{
    Bus, Command, CommandEnvelope, ReplyEnvelope, ReplyTo, RequestId, RequestKind, RoomControl,
};
use crate::ledger::{RoomControls, RoomLimits};
use crate::protocol::{ServerMessage, domain_controls};

use super::AdminError;

/// How long a room control waits for the leading engine's answer, in milliseconds: a
/// wake of the engine is a few milliseconds, its ledger write at most
/// `engine.ledger_batch_timeout_ms`-like; past this, no engine leads the room.
pub const CONTROL_ANSWER_TIMEOUT_MS: u64 = 5_000;

/// A control the leading engine applied: the room's controls before and after it, and
/// the first round they govern.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ControlOutcome {
    pub before: RoomControls,
    pub after: RoomControls,
    pub from_round: u64,
}

/// The control awaiting its answer: the request it is, and where its answer goes.
type Awaited = Arc<std::sync::Mutex<Option<(RequestId, oneshot::Sender<ReplyEnvelope>)>>>;

/// Sends operators' room controls and awaits their answers. One per process: it owns the
/// process's admin reply channel (`admin-{process}` on the bus), and sends one control at
/// a time (an operator's action, not a hot path), so an answer is never another's.
pub struct RoomController {
    bus: Arc<dyn Bus>,
    /// The bus's reply channel of this process's controls.
    channel: String,
    /// Held while a control is sent and awaited: controls wait for one another.
    turn: Mutex<()>,
    /// The control awaiting its answer, which the channel's reader hands it.
    awaited: Awaited,
    /// Numbers the controls of this process: each request id is new.
    next_request: AtomicU64,
}

impl RoomController {
    /// Opens the admin reply channel of `process` (a name unique among the processes on
    /// the bus, e.g. the gateway's id), and spawns its reader, which runs until
    /// `shutdown`: the caller awaits the returned handle after that.
    pub async fn open(
        bus: Arc<dyn Bus>,
        process: &str,
        shutdown: CancellationToken,
    ) -> Result<(RoomController, JoinHandle<()>), AdminError> {
        let channel = format!("admin-{process}");
        let replies = bus.replies(&channel).await?;
        let awaited = Awaited::default();
        let reader = read_answers(replies, awaited.clone());
        let reader = tokio::spawn(async move {
            shutdown.run_until_cancelled(reader).await;
        });
        let controller = RoomController {
            bus,
            channel,
            turn: Mutex::new(()),
            awaited,
            next_request: AtomicU64::new(1),
        };
        Ok((controller, reader))
    }

    /// Pauses `room` after its current round: the round in flight finishes, no betting
    /// opens until [`RoomController::resume_room`].
    pub async fn pause_room(
        &self,
        room: &str,
        operator: &str,
    ) -> Result<ControlOutcome, AdminError> {
        self.control(room, operator, RoomControl::Pause).await
    }

    /// Resumes a paused `room`: betting opens at once (after the crashed phase of its
    /// last round, if that is not over).
    pub async fn resume_room(
        &self,
        room: &str,
        operator: &str,
    ) -> Result<ControlOutcome, AdminError> {
        self.control(room, operator, RoomControl::Resume).await
    }

    /// Sets the stake limits and the max-profit cap of `room`'s rounds from the next one.
    pub async fn set_room_limits(
        &self,
        room: &str,
        operator: &str,
        limits: RoomLimits,
    ) -> Result<ControlOutcome, AdminError> {
        self.control(room, operator, RoomControl::SetLimits(limits))
            .await
    }

    async fn control(
        &self,
        room: &str,
        operator: &str,
        control: RoomControl,
    ) -> Result<ControlOutcome, AdminError> {
        let _turn = self.turn.lock().await;
        let number = self.next_request.fetch_add(1, Ordering::Relaxed);
        let req = format!("control-{number}");
        let command = CommandEnvelope {
            room: room.to_owned(),
            from: ReplyTo {
                gateway: self.channel.clone(),
                connection: number,
                player: operator.to_owned(),
            },
            command: Command::Control {
                req: req.clone(),
                operator: operator.to_owned(),
                control,
            },
        };
        let answer = RequestId {
            kind: RequestKind::Control,
            req,
        };
        let (sender, receiver) = oneshot::channel();
        *self.awaited.lock().expect("awaited lock poisoned") = Some((answer, sender));
        if let Err(error) = self.bus.send_command(command).await {
            self.awaited.lock().expect("awaited lock poisoned").take();
            return Err(error.into());
        }
        let timeout = Duration::from_millis(CONTROL_ANSWER_TIMEOUT_MS);
        let awaited = tokio::time::timeout(timeout, receiver).await;
        self.awaited.lock().expect("awaited lock poisoned").take();
        let no_answer = || AdminError::NoAnswer {
            room: room.to_owned(),
            timeout_ms: CONTROL_ANSWER_TIMEOUT_MS,
        };
        let reply = awaited.map_err(|_| no_answer())?.map_err(|_| no_answer())?;
        outcome(&reply.json)
    }
}

/// Reads the admin channel until it closes: hands the awaited control its answer and
/// drops every other reply (a late answer to a control that timed out, the notices and
/// players' controls every gateway's channel gets).
async fn read_answers(mut replies: BoxStream<'static, ReplyEnvelope>, awaited: Awaited) {
    while let Some(reply) = replies.next().await {
        let mut awaited = awaited.lock().expect("awaited lock poisoned");
        let answers_it = matches!((&*awaited, &reply.answers),
            (Some((request, _)), Some(answer)) if request == answer);
        if answers_it && let Some((_, sender)) = awaited.take() {
            // The control gave up waiting (timed out) if nobody receives it.
            let _ = sender.send(reply);
        }
    }
}

/// The outcome the engine's answer tells.
fn outcome(json: &[u8]) -> Result<ControlOutcome, AdminError> {
    let message: ServerMessage = serde_json::from_slice(json)
        .map_err(|error| AdminError::UnreadableAnswer(error.to_string()))?;
    match message {
        ServerMessage::ControlOk {
            before,
            after,
            from_round,
            ..
        } => Ok(ControlOutcome {
            before: domain_controls(before),
            after: domain_controls(after),
            from_round,
        }),
        ServerMessage::ControlErr { code, message, .. } => {
            Err(AdminError::Refused { code, message })
        }
        other => Err(AdminError::UnreadableAnswer(format!(
            "not a control answer: {other:?}"
        ))),
    }
}
