//! What the operator console is told, as JSON: the frames of the operator socket
//! (`/api/operator/ws`) and the body of `GET /api/admin/rooms`. Its own small wire, apart
//! from the players' protocol v1 (`protocol`): field names carry their units
//! (`_minor`, `_hundredths`, `_ms`, `_bp`), money is integer minor units, multipliers
//! integer hundredths, ratios integer basis points.

use serde::Serialize;

use super::cluster::{ClusterReport, TrafficReport};
use super::house::HouseFigures;

/// A room's phase as the console shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseName {
    Betting,
    Flying,
    Crashed,
}

/// What is at stake in a room's round now, against its max-profit cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Risk {
    /// Bets accepted in the round (a player has at most two).
    pub bets: u64,
    pub staked_minor: i64,
    pub cashouts: u64,
    /// Paid to the cashed-out bets, stakes included.
    pub paid_minor: i64,
    /// Stakes of the bets still in the air.
    pub at_risk_minor: i64,
    /// The players' profit realized by their cashouts (what the cap bounds).
    pub realized_profit_minor: i64,
    /// The players' profit if every bet in the air cashed out at the current multiplier:
    /// what the engine checks against the cap before each cashout level.
    pub exposure_minor: i64,
    /// The round's max-profit cap (`engine.round_profit_max_minor`).
    pub cap_minor: i64,
}

/// A cashout as the console lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CashoutEntry {
    pub player: String,
    pub slot: u8,
    pub multiplier_hundredths: u64,
    /// Paid back, stake included.
    pub win_minor: i64,
    /// `manual`, `auto` (its target) or `cap` (the round's max profit).
    pub kind: &'static str,
}

/// A room's state as this gateway knows it from the bus.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomReport {
    pub room: String,
    /// The engine's numbering of the room's events (decimal text: any u64); absent
    /// before the first event.
    pub epoch: Option<String>,
    pub seq: u64,
    pub round: u64,
    pub phase: PhaseName,
    pub multiplier_hundredths: u64,
    /// Betting closes then (unix ms).
    pub ends_at_ms: Option<u64>,
    /// The flight started then (unix ms).
    pub started_at_ms: Option<u64>,
    pub risk: Risk,
    /// The round's listed cashouts, newest first (the largest of each tick, bounded).
    pub cashouts: Vec<CashoutEntry>,
    /// The last crash points, newest first.
    pub crash_points_hundredths: Vec<u64>,
    /// An operator paused the room (as far as this gateway saw its events): no betting
    /// opens after the current round until it is resumed.
    pub paused: bool,
}

/// Something an operator should notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub at_ms: u64,
    pub room: Option<String>,
    pub message: String,
}

/// A frame of the operator socket.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum OperatorFrame {
    /// First frame of a socket: everything the console shows.
    Snapshot {
        server_time_ms: u64,
        /// The rooms' multiplier growth (`engine.growth_rate_per_ms_millionths`), to
        /// draw the curve between ticks.
        growth_per_ms_millionths: u64,
        rooms: Vec<RoomReport>,
        house: Vec<HouseFigures>,
        traffic: Option<TrafficReport>,
        cluster: ClusterReport,
        /// Newest first.
        warnings: Vec<Warning>,
    },
    /// A round opened for bets, started flying or crashed.
    Phase {
        room: String,
        round: u64,
        phase: PhaseName,
        multiplier_hundredths: u64,
        ends_at_ms: Option<u64>,
        started_at_ms: Option<u64>,
    },
    /// The multiplier and the round's stakes now (at most one per
    /// `TICK_FRAME_INTERVAL_MS` per room).
    Tick {
        room: String,
        round: u64,
        multiplier_hundredths: u64,
        elapsed_ms: u64,
        risk: Risk,
    },
    /// A bet the round's ticks listed.
    Bet {
        room: String,
        round: u64,
        player: String,
        slot: u8,
        stake_minor: i64,
        auto_cashout_hundredths: Option<u64>,
    },
    /// A bet its player cancelled while betting was open (refunded); `risk` without it.
    BetCancelled {
        room: String,
        round: u64,
        player: String,
        slot: u8,
        stake_minor: i64,
        risk: Risk,
    },
    Cashout {
        room: String,
        round: u64,
        #[serde(flatten)]
        cashout: CashoutEntry,
    },
    /// The round crashed; `risk` is its final account.
    Crash {
        room: String,
        round: u64,
        multiplier_hundredths: u64,
        risk: Risk,
    },
    /// An operator paused or resumed the room.
    Paused {
        room: String,
        round: u64,
        paused: bool,
    },
    /// The house's figures of every room, after a round settled.
    House {
        house: Vec<HouseFigures>,
    },
    Traffic(TrafficReport),
    /// Who leads what, the engines and gateways, failovers (once a second).
    Cluster(ClusterReport),
    Warning(Warning),
}

impl OperatorFrame {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("operator frames serialize")
    }
}
