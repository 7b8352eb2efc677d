//! The round engine of a room: the loop Betting → Flying → Crashed, bets, cashouts,
//! auto-cashouts, the max-profit cap and the room's public events.
//!
//! - [`round`]: [`RoomCore`], the pure state machine of one room, driven by explicit times.
//! - [`runner`]: [`run_room`] (embedded) and [`lead_room`] (a cluster leader under a
//!   lease), the async driver and the engine's only I/O, through
//!   [`crate::bus::Bus`], [`crate::ledger::Ledger`] and [`crate::clock::Clock`].
//! - [`breaker`]: [`breaker::LedgerBreaker`], whether a room takes bets while its ledger
//!   fails or is slow.
//! - `invariants` (tests and the `fuzzing` feature only): random steps against a
//!   `RoomCore` and a model ledger, checked against the money invariants.

pub mod breaker;
#[cfg(any(test, feature = "fuzzing"))]
pub mod invariants;
pub mod round;
pub mod runner;

pub use round::{RoomCore, RoomSettings, multiplier_at};
pub use runner::{EngineDeps, EngineError, Leadership, lead_room, run_room};
