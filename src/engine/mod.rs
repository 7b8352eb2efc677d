//! The round engine of a room: the loop Betting → Flying → Crashed, bets, cashouts,
//! auto-cashouts, the max-profit cap and the room's public events. It speaks the domain
//! only: events are [`RoundEvent`]s, answers [`Answer`]s, and the [`Codec`] the process
//! hands it turns them into bytes for the bus.
//!
//! - [`event`]: [`RoundEvent`], what a room tells everyone.
//! - [`answer`]: [`Answer`], what it tells one player, and why a request was refused.
//! - [`round`]: [`RoomCore`], the pure state machine of one room, driven by explicit times.
//! - [`runner`]: [`run_room`] (embedded) and [`lead_room`] (a cluster leader under a
//!   lease), the async driver and the engine's only I/O, through
//!   [`crate::bus::Bus`], [`crate::ledger::Ledger`] and [`crate::clock::Clock`].
//! - [`codec`]: [`Codec`], the seam to the wire (implemented by `protocol::JsonCodec`).
//! - [`breaker`]: [`breaker::LedgerBreaker`], whether a room takes bets while its ledger
//!   fails or is slow.
//! - `invariants` (tests and the `fuzzing` feature only): random steps against a
//!   `RoomCore` and a model ledger, checked against the money invariants.

pub mod answer;
pub mod breaker;
pub mod codec;
pub mod event;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod round;
pub mod runner;

pub use answer::{Answer, EngineCashout, Refusal, RefusalCode, Reply};
pub use codec::Codec;
pub use event::{CashoutKind, ListedBet, ListedCashout, RoundEvent, RoundTotals};
pub use round::{RoomCore, RoomSettings, multiplier_at};
pub use runner::{EngineDeps, EngineError, Leadership, lead_room, run_room};
