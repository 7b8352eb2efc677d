//! The bus: how round engines and gateways talk, wherever they run.
//!
//! Three paths, each bounded:
//! - events, engine → every gateway of a room: pub/sub, subscribed once per gateway
//!   process (never per socket). Delivery is at-most-once and in order; every event
//!   carries the room's `epoch` and its `seq`, contiguous within the epoch, so a
//!   subscriber that misses some sees a gap and is told so with [`Delivery::Gap`]. A new
//!   epoch (an engine that started over from seq 1) is a restart, not a gap.
//! - commands, gateway → the engine leading a room: bets and cashouts, in order per
//!   gateway. A command may be delivered more than once by a distributed bus; the
//!   ledger's idempotent transfer ids make that harmless.
//! - replies, engine → the gateway that holds the player: private frames.
//!
//! - recovery: each room keeps its recent events ([`Bus::recent_events`]), so a gateway
//!   that saw a gap can fetch what it missed instead of starting over (Centrifugo's
//!   history model).
//! - status, every process → every process: the reports of `crate::status`
//!   ([`Bus::publish_status`], [`Bus::subscribe_status`]), pub/sub, at-most-once, each
//!   subscriber buffering at most [`STATUS_BUFFER_REPORTS_MAX`] (a slow one loses the
//!   oldest: a lost report only ages).
//!
//! Implementations: [`memory::MemoryBus`] (embedded default, tokio channels) and
//! [`redis::RedisBus`] (cluster mode); `bus::conformance` is the suite both must pass.

#[cfg(test)]
pub mod conformance;
pub mod memory;
pub mod redis;
#[cfg(test)]
mod redis_test_server;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};

pub use memory::MemoryBus;

use crate::ledger::{Restriction, RoomLimits};
pub use redis::{RedisBus, RedisBusOptions};

/// Status reports a subscriber holds before it reads them; past it the oldest are
/// dropped.
pub const STATUS_BUFFER_REPORTS_MAX: usize = 256;

/// A public event of a room, serialized once by the engine (the JSON text of a
/// [`crate::protocol::RoomEvent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub room: String,
    /// The numbering `seq` belongs to: a new epoch means the numbering started over (an
    /// engine restarted), so positions of another epoch say nothing about this one.
    pub epoch: u64,
    /// The room's event sequence number, contiguous from 1 within an epoch.
    pub seq: u64,
    /// Whether slow sockets may drop it for a newer one (a tick).
    pub conflatable: bool,
    pub json: Bytes,
}

impl EventEnvelope {
    /// Where a reader that applied this event is in the room's stream.
    pub fn position(&self) -> StreamPosition {
        StreamPosition {
            epoch: self.epoch,
            seq: self.seq,
        }
    }
}

/// Where a reader is in a room's event stream: it has every event of `epoch` up to
/// `seq`. Clients resume from one (`?since=&epoch=`), gateways fill bus gaps after one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamPosition {
    pub epoch: u64,
    pub seq: u64,
}

impl StreamPosition {
    /// Whether the event at `event` was read already: same epoch, not after this one.
    pub fn covers(self, event: StreamPosition) -> bool {
        self.epoch == event.epoch && event.seq <= self.seq
    }

    /// Events known to be missing between this position and the next event read, at
    /// `next`. Across epochs, or when the seq does not grow (a replayed or older event),
    /// nothing is known to be missing: a new epoch restarts the numbering.
    pub fn missed_before(self, next: StreamPosition) -> u64 {
        if self.epoch == next.epoch && next.seq > self.seq {
            next.seq - self.seq - 1
        } else {
            0
        }
    }
}

/// What an event subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    Event(EventEnvelope),
    /// The subscriber fell behind and `missed` events were dropped before the next one.
    Gap {
        missed: u64,
    },
}

/// Where a private reply must go: one connection on one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplyTo {
    /// The gateway process that holds the connection.
    pub gateway: String,
    /// The connection within that gateway (see `gateway::ConnectionId`).
    pub connection: u64,
    pub player: String,
}

impl ReplyTo {
    /// Every socket of `player`, on every gateway ([`Bus::gateways`]), each of which
    /// hands the reply to the player's sockets it holds. For what is not tied to one
    /// connection: a notice (auto-cashout, refund) the player may receive after moving
    /// to another socket or gateway, or a bet resumed from a previous leader, whose
    /// connection this engine cannot name.
    pub fn every_socket_of(player: &str) -> ReplyTo {
        ReplyTo {
            gateway: String::new(),
            connection: 0,
            player: player.to_owned(),
        }
    }

    /// Whether this is [`ReplyTo::every_socket_of`].
    pub fn is_every_socket(&self) -> bool {
        self.gateway.is_empty()
    }
}

/// A player's request to the engine of a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Bet {
        req: String,
        amount_minor: i64,
        auto_cashout_hundredths: Option<u64>,
        slot: u8,
        /// The player's display name, as the public lists show the bet.
        #[serde(default)]
        name: String,
    },
    Cashout {
        req: String,
        slot: u8,
    },
    /// Take back the bet in `slot` while betting is open: its stake is refunded.
    Cancel {
        req: String,
        slot: u8,
    },
    /// Post `text` (checked by the gateway: `crate::chat`) to the room's chat as `name`.
    /// Not a request: it has no answer unless refused (an `error` frame).
    Chat {
        name: String,
        text: String,
    },
    /// An operator's control of the room (not a player's: no gateway sends one). The
    /// answer goes to `from`, whose `player` is the operator.
    Control {
        req: String,
        operator: String,
        control: RoomControl,
    },
}

impl Command {
    /// The kind of request this is, as its answer names it; `None` for chat, which is
    /// answered only when refused.
    pub fn request_kind(&self) -> Option<RequestKind> {
        match self {
            Command::Bet { .. } => Some(RequestKind::Bet),
            Command::Cashout { .. } => Some(RequestKind::Cashout),
            Command::Cancel { .. } => Some(RequestKind::Cancel),
            Command::Control { .. } => Some(RequestKind::Control),
            Command::Chat { .. } => None,
        }
    }
}

/// What an operator changes in a room; its leader decides and applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoomControl {
    /// Let the round in flight finish, then open no betting phase until resumed.
    Pause,
    /// Open betting again.
    Resume,
    /// The stake limits and max-profit cap of the rounds from the next one on.
    SetLimits(RoomLimits),
}

/// A command with the connection it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandEnvelope {
    pub room: String,
    pub from: ReplyTo,
    pub command: Command,
}

/// The type of a player's request, as its answer names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequestKind {
    Bet,
    Cashout,
    Cancel,
    /// An operator's [`Command::Control`].
    Control,
}

/// One request as its answer names it: its type and the client's `req`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RequestId {
    pub kind: RequestKind,
    pub req: String,
}

/// A private frame for one connection (the JSON text of a
/// [`crate::protocol::ServerMessage`]), or an operator's control of a player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEnvelope {
    pub to: ReplyTo,
    /// The request this frame answers, if it answers one (`None` for a balance notice):
    /// the gateway delivers one answer per request without reading the frame.
    pub answers: Option<RequestId>,
    /// An operator's control of `to.player` for the gateway itself (then `json` is empty
    /// and `answers` none): sent to every gateway, it reaches the player's sockets
    /// wherever they are, and every gateway's sets of banned and muted players.
    pub control: Option<PlayerControl>,
    pub json: Bytes,
}

/// What an operator does to a player, applied by every gateway (`admin::sanctions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PlayerControl {
    /// Close the player's sockets (close code 4004); the player may come back.
    Kick,
    /// Refuse the player's token from now on and close its sockets (4005).
    Ban,
    /// Admit the player's token again.
    Unban,
    /// Refuse the player's chat from now on; its sockets stay open.
    Mute,
    /// Take the player's chat again.
    Unmute,
}

impl PlayerControl {
    /// The restriction this control imposes (`true`) or lifts, if it changes one.
    pub fn restriction_change(self) -> Option<(Restriction, bool)> {
        match self {
            PlayerControl::Kick => None,
            PlayerControl::Ban => Some((Restriction::Ban, true)),
            PlayerControl::Unban => Some((Restriction::Ban, false)),
            PlayerControl::Mute => Some((Restriction::Mute, true)),
            PlayerControl::Unmute => Some((Restriction::Mute, false)),
        }
    }

    /// The control that imposes `restriction` (`restricted`) or lifts it.
    pub fn of_restriction(restriction: Restriction, restricted: bool) -> PlayerControl {
        match (restriction, restricted) {
            (Restriction::Ban, true) => PlayerControl::Ban,
            (Restriction::Ban, false) => PlayerControl::Unban,
            (Restriction::Mute, true) => PlayerControl::Mute,
            (Restriction::Mute, false) => PlayerControl::Unmute,
        }
    }
}

/// A bus failure.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The receiving side's bounded queue is full: the engine is overloaded. The caller
    /// tells the player to retry with the same request id.
    #[error("the {queue} queue is full")]
    QueueFull { queue: &'static str },
    /// Nobody consumes this path (no engine leads the room, or the gateway is gone).
    #[error("no receiver for {what}")]
    NoReceiver { what: String },
    /// The command stream of a room is already taken by another engine in this process.
    #[error("the commands of room {room} are already consumed")]
    AlreadyConsumed { room: String },
    /// Redis refused or dropped a request. Check that Redis is reachable at the configured
    /// URL, that it is version 7 or newer (streams, XAUTOCLAIM, RESP3), and that the
    /// `cluster` option matches the server (SPUBLISH needs cluster mode).
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// A message on the bus could not be decoded: a process of another aloft version, or
    /// another program, writes under the same key prefix. Run one version per prefix.
    #[error("cannot decode {what} from the bus: {detail}")]
    Undecodable { what: &'static str, detail: String },
}

/// Collects, from a room's retained events listed newest first, the run
/// [`Bus::recent_events`] returns: the events of the newest epoch with `seq > after_seq`.
pub(crate) struct NewestRun {
    after_seq: u64,
    run_newest_first: Vec<EventEnvelope>,
}

impl NewestRun {
    pub(crate) fn new(after_seq: u64) -> Self {
        NewestRun {
            after_seq,
            run_newest_first: Vec::new(),
        }
    }

    /// Takes the next older event; false once the run is complete (this one is not in it).
    pub(crate) fn offer(&mut self, event: EventEnvelope) -> bool {
        let older_epoch = self
            .run_newest_first
            .first()
            .is_some_and(|newest| event.epoch != newest.epoch);
        if event.seq <= self.after_seq || older_epoch {
            return false;
        }
        self.run_newest_first.push(event);
        true
    }

    /// The run, oldest first, cut to its oldest `events_max`.
    pub(crate) fn finish(mut self, events_max: usize) -> Vec<EventEnvelope> {
        self.run_newest_first.reverse();
        self.run_newest_first.truncate(events_max);
        self.run_newest_first
    }
}

/// Transport between engines and gateways.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes an event of `event.room` to every subscribed gateway.
    async fn publish(&self, event: EventEnvelope) -> Result<(), BusError>;

    /// Subscribes to a room's events. Called once per gateway process and room.
    async fn subscribe(&self, room: &str) -> Result<BoxStream<'static, Delivery>, BusError>;

    /// The retained events of `room` with `seq > after_seq`, oldest first, at most
    /// `events_max` (the oldest ones): what a subscriber that saw a gap after `after_seq`
    /// missed, if the room still holds it. Only the newest epoch counts: events of older
    /// epochs are never returned, so a caller whose position is in another epoch than
    /// the returned events' must ask again from 0. When the first returned `seq` is not
    /// `after_seq + 1`, the missed events are gone: resend a snapshot.
    async fn recent_events(
        &self,
        room: &str,
        after_seq: u64,
        events_max: usize,
    ) -> Result<Vec<EventEnvelope>, BusError>;

    /// Sends a command to the engine leading `command.room`.
    async fn send_command(&self, command: CommandEnvelope) -> Result<(), BusError>;

    /// The commands of a room, for the engine that leads it. Dropping the stream gives the
    /// room's commands up (a handover); a later call may take them again.
    async fn commands(&self, room: &str) -> Result<BoxStream<'static, CommandEnvelope>, BusError>;

    /// The engine of `room` has finished every command it took so far (their ledger
    /// writes are done and their replies sent): an at-least-once bus may forget them.
    /// Commands taken but not reported here are redelivered to the room's next leader if
    /// this engine dies.
    async fn commands_handled(&self, room: &str);

    /// Sends a private frame to the gateway named in `reply.to`.
    async fn send_reply(&self, reply: ReplyEnvelope) -> Result<(), BusError>;

    /// The gateways whose reply streams are open now: where the engine sends a reply it
    /// cannot address to one connection ([`ReplyTo::every_socket_of`]); each gateway hands it to
    /// the player's sockets, if it holds any.
    async fn gateways(&self) -> Result<Vec<String>, BusError>;

    /// The replies addressed to `gateway`.
    async fn replies(&self, gateway: &str) -> Result<BoxStream<'static, ReplyEnvelope>, BusError>;

    /// Publishes a process's status report (the bytes of a `status::StatusReport`) to
    /// every status subscriber of the deployment, this process's included.
    async fn publish_status(&self, report: Bytes) -> Result<(), BusError>;

    /// The status reports published from now on, in each publisher's order; a subscriber
    /// more than [`STATUS_BUFFER_REPORTS_MAX`] behind loses the oldest. May be called
    /// more than once per process.
    async fn subscribe_status(&self) -> Result<BoxStream<'static, Bytes>, BusError>;
}

/// The status reports of a bounded broadcast, as `Bus::subscribe_status` hands them
/// out: a subscriber that fell behind skips the oldest (the next report is newer anyway).
pub(crate) fn status_reports(
    receiver: tokio::sync::broadcast::Receiver<Bytes>,
) -> BoxStream<'static, Bytes> {
    use futures_util::StreamExt;
    use tokio::sync::broadcast::error::RecvError;
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(report) => return Some((report, receiver)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::{PlayerControl, StreamPosition};
    use crate::ledger::Restriction;

    #[test]
    fn each_restriction_change_has_its_own_control_and_a_kick_changes_none() {
        for restriction in [Restriction::Ban, Restriction::Mute] {
            for restricted in [true, false] {
                let control = PlayerControl::of_restriction(restriction, restricted);
                assert_eq!(
                    control.restriction_change(),
                    Some((restriction, restricted))
                );
            }
        }
        assert_eq!(PlayerControl::Kick.restriction_change(), None);
    }

    fn at(epoch: u64, seq: u64) -> StreamPosition {
        StreamPosition { epoch, seq }
    }

    #[test]
    fn a_position_covers_its_epoch_up_to_its_seq_and_counts_the_jump_to_the_next() {
        assert!(at(7, 5).covers(at(7, 5)));
        assert!(at(7, 5).covers(at(7, 1)));
        assert!(!at(7, 5).covers(at(7, 6)));
        assert!(!at(7, 5).covers(at(8, 1)));
        assert_eq!(at(7, 5).missed_before(at(7, 6)), 0);
        assert_eq!(at(7, 5).missed_before(at(7, 9)), 3);
        // A replayed event, or a new epoch restarting the numbering: nothing known missing.
        assert_eq!(at(7, 5).missed_before(at(7, 3)), 0);
        assert_eq!(at(7, 5).missed_before(at(8, 9)), 0);
    }
}
