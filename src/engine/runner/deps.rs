//! What the engine of a room is given and how it stops: [`EngineDeps`], [`Leadership`]
//! (a cluster leader's fencing token and handover signal), [`EngineError`], and the
//! engine's ledger writes ([`LedgerWriter`], fenced in cluster mode).

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::bus::{Bus, BusError};
use crate::clock::Clock;
use crate::engine::codec::Codec;
use crate::engine::round::{ChainExhausted, ResumeError};
use crate::fair::FairChain;
use crate::ledger::{
    Fence, Ledger, LedgerError, RoomControlsChange, RoundRecord, Transfer, TransferOutcome,
};
use crate::status::LeadingRooms;

/// What the engine of a room needs from the rest of the process.
#[derive(Clone)]
pub struct EngineDeps {
    pub bus: Arc<dyn Bus>,
    pub ledger: Arc<dyn Ledger>,
    /// The fairness chain the room's round hashes come from.
    pub chain: Arc<FairChain>,
    pub clock: Arc<dyn Clock>,
    /// How events and answers become bytes on the bus (`protocol::JsonCodec`).
    pub codec: Arc<dyn Codec>,
    /// The rooms this process leads, for its status reports (`crate::status`).
    pub leading: Arc<LeadingRooms>,
}

/// Why the engine of a room stopped.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The room's commands cannot be consumed: another engine of this process already
    /// leads the room, or the bus is down. Run one engine per room.
    #[error("room {room}: cannot take its command stream: {source}")]
    Commands {
        room: String,
        #[source]
        source: BusError,
    },
    /// The bus closed the room's command stream; restart the engine once it is back.
    #[error("room {room}: the bus closed the command stream")]
    CommandsClosed { room: String },
    /// The ledger failed while settling rounds left unfinished by a previous process.
    /// Nothing was played; fix the ledger (disk, permissions) and start again.
    #[error("room {room}: recovery of unfinished rounds failed: {source}")]
    Recovery {
        room: String,
        #[source]
        source: LedgerError,
    },
    /// The ledger refused journal writes for `JOURNAL_BACKLOG_ROUNDS_MAX` rounds. The
    /// engine stopped; the next start settles the rounds left unfinished.
    #[error("room {room}: the ledger refused journal writes for {rounds} rounds")]
    JournalBacklog { room: String, rounds: usize },
    /// Every round of the fairness chain has been played: generate a new chain (seed) and
    /// publish its commitment.
    #[error("the fairness chain has no hash for round {round}")]
    ChainExhausted { round: u64 },
    /// The round in flight cannot be resumed by this engine (see [`ResumeError`]).
    #[error("room {room}: cannot resume the round in flight: {source}")]
    Resume {
        room: String,
        #[source]
        source: ResumeError,
    },
    /// The ledger refused a write: a newer leader of the room (fencing token `current`)
    /// has started. This engine stopped without touching the round any further.
    #[error("room {room}: deposed by a newer leader (fencing token {current})")]
    Deposed { room: String, current: u64 },
}

/// What makes an engine the leader of a room in a cluster.
pub struct Leadership {
    /// The lease's fencing token, sent with every ledger write.
    pub fence: Fence,
    /// Cancelled when the lease is lost or the process hands its rooms over: the room
    /// stops at once, leaving the round in flight to the next leader.
    pub handover: CancellationToken,
}

impl From<ChainExhausted> for EngineError {
    fn from(exhausted: ChainExhausted) -> Self {
        EngineError::ChainExhausted {
            round: exhausted.round,
        }
    }
}

/// The engine's ledger writes: fenced with the lease's token in cluster mode.
pub(super) struct LedgerWriter {
    pub(super) ledger: Arc<dyn Ledger>,
    pub(super) fence: Option<Fence>,
}

impl LedgerWriter {
    pub(super) async fn apply_batch(
        &self,
        batch: Vec<Transfer>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        self.ledger.write_batch(batch, self.fence.as_ref()).await
    }

    pub(super) async fn record_round(&self, record: RoundRecord) -> Result<(), LedgerError> {
        self.ledger.write_round(record, self.fence.as_ref()).await
    }

    pub(super) async fn write_room_controls(
        &self,
        change: &RoomControlsChange,
    ) -> Result<(), LedgerError> {
        self.ledger
            .write_room_controls(change, self.fence.as_ref())
            .await
    }
}
