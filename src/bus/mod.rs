//! The bus: how round engines and gateways talk, wherever they run.
//!
//! Three paths, each bounded:
//! - events, engine → every gateway of a room: pub/sub, subscribed once per gateway
//!   process (never per socket). Delivery is at-most-once and in order; every event
//!   carries the room's contiguous `seq`, so a subscriber that misses some sees a gap
//!   and is told so with [`Delivery::Gap`].
//! - commands, gateway → the engine leading a room: bets and cashouts, in order per
//!   gateway. A command may be delivered more than once by a distributed bus; the
//!   ledger's idempotent transfer ids make that harmless.
//! - replies, engine → the gateway that holds the player: private frames.
//!
//! Implementations: [`memory::MemoryBus`] (embedded default, tokio channels). A Redis one
//! follows behind the same trait; `bus::conformance` is the suite every one must pass.

#[cfg(test)]
pub mod conformance;
pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use memory::MemoryBus;

/// A public event of a room, serialized once by the engine (the JSON text of a
/// [`crate::protocol::RoomEvent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventEnvelope {
    pub room: String,
    /// The room's event sequence number, contiguous from 1 within an epoch.
    pub seq: u64,
    /// Whether slow sockets may drop it for a newer one (a tick).
    pub conflatable: bool,
    pub json: Bytes,
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
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReplyTo {
    /// The gateway process that holds the connection.
    pub gateway: String,
    /// The connection within that gateway (see `gateway::ConnectionId`).
    pub connection: u64,
    pub player: String,
}

/// A player's request to the engine of a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Bet {
        req: String,
        amount_minor: i64,
        auto_cashout_hundredths: Option<u64>,
        slot: u8,
    },
    Cashout {
        req: String,
        slot: u8,
    },
}

/// A command with the connection it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandEnvelope {
    pub room: String,
    pub from: ReplyTo,
    pub command: Command,
}

/// A private frame for one connection (the JSON text of a
/// [`crate::protocol::ServerMessage`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyEnvelope {
    pub to: ReplyTo,
    pub json: Bytes,
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
}

/// Transport between engines and gateways.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes an event of `event.room` to every subscribed gateway.
    async fn publish(&self, event: EventEnvelope) -> Result<(), BusError>;

    /// Subscribes to a room's events. Called once per gateway process and room.
    async fn subscribe(&self, room: &str) -> Result<BoxStream<'static, Delivery>, BusError>;

    /// Sends a command to the engine leading `command.room`.
    async fn send_command(&self, command: CommandEnvelope) -> Result<(), BusError>;

    /// The commands of a room, for the engine that leads it.
    async fn commands(&self, room: &str) -> Result<BoxStream<'static, CommandEnvelope>, BusError>;

    /// Sends a private frame to the gateway named in `reply.to`.
    async fn send_reply(&self, reply: ReplyEnvelope) -> Result<(), BusError>;

    /// The replies addressed to `gateway`.
    async fn replies(&self, gateway: &str) -> Result<BoxStream<'static, ReplyEnvelope>, BusError>;
}
