//! What a room tells everyone: [`RoundEvent`], the engine's public events in domain
//! terms (units in the names, no field names of the wire). `protocol` maps them to its
//! `RoomEvent` when it encodes them, once per event, at the bus.

use crate::ledger::RoomLimits;

/// A public event of a room. Every one carries the room's contiguous sequence number
/// `seq` and the `round` it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoundEvent {
    /// A round opened for bets until `ends_at_ms`.
    BettingOpened {
        seq: u64,
        round: u64,
        ends_at_ms: u64,
    },
    /// The multiplier started climbing at `started_at_ms`.
    FlightStarted {
        seq: u64,
        round: u64,
        started_at_ms: u64,
    },
    /// The multiplier now, the largest bets and cashouts since the previous tick (at most
    /// `engine.public_bets_per_tick_max` / `public_cashouts_per_tick_max`, largest first)
    /// and the round's totals. During Betting a tick is made only when bets were accepted
    /// since the previous one, at 100 hundredths and 0 ms.
    Tick {
        seq: u64,
        round: u64,
        multiplier_hundredths: u64,
        /// Since the flight started.
        elapsed_ms: u64,
        /// Engine time the tick was made at (unix ms).
        at_ms: u64,
        bets: Vec<ListedBet>,
        cashouts: Vec<ListedCashout>,
        /// `None` while the round has no bet.
        totals: Option<RoundTotals>,
    },
    /// The round crashed at `crash_hundredths`, revealing its `hash`.
    Crashed {
        seq: u64,
        round: u64,
        crash_hundredths: u64,
        hash: String,
        at_ms: u64,
        /// The largest cashouts since the previous tick, the auto-cashouts just below the
        /// crash point included (bounded as in a tick).
        cashouts: Vec<ListedCashout>,
        /// The round's final totals; `None` when the round had no bet.
        totals: Option<RoundTotals>,
    },
    /// A player took back a bet while betting was open; its stake is refunded. The
    /// bet is no longer in the round (a list that showed it drops it) and `totals` no
    /// longer count it (`None` when the round has no bet left).
    BetCancelled {
        seq: u64,
        round: u64,
        player: String,
        slot: u8,
        stake_minor: i64,
        totals: Option<RoundTotals>,
    },
    /// An operator paused the room at `at_ms`: `round` (in flight, or just crashed) is the
    /// last to play; no betting phase opens until the room is resumed.
    RoomPaused { seq: u64, round: u64, at_ms: u64 },
    /// An operator resumed the room at `at_ms`: betting opens for the next round once
    /// `round`'s crashed phase is over (at once if it is).
    RoomResumed { seq: u64, round: u64, at_ms: u64 },
    /// A player's chat message, posted at `at_ms` (its text checked: `crate::chat`).
    ChatPosted {
        seq: u64,
        round: u64,
        player: String,
        /// The sender's display name when it posted.
        name: String,
        text: String,
        at_ms: u64,
    },
    /// An operator changed the stake limits and the max-profit cap: they govern the
    /// rounds from `from_round` on (the one after `round`), not `round`.
    RoomLimitsChanged {
        seq: u64,
        round: u64,
        limits: RoomLimits,
        from_round: u64,
    },
}

impl RoundEvent {
    /// The room sequence number of this event.
    pub fn seq(&self) -> u64 {
        match self {
            RoundEvent::BettingOpened { seq, .. }
            | RoundEvent::FlightStarted { seq, .. }
            | RoundEvent::Tick { seq, .. }
            | RoundEvent::Crashed { seq, .. }
            | RoundEvent::BetCancelled { seq, .. }
            | RoundEvent::RoomPaused { seq, .. }
            | RoundEvent::RoomResumed { seq, .. }
            | RoundEvent::ChatPosted { seq, .. }
            | RoundEvent::RoomLimitsChanged { seq, .. } => *seq,
        }
    }

    /// The round this event belongs to.
    pub fn round(&self) -> u64 {
        match self {
            RoundEvent::BettingOpened { round, .. }
            | RoundEvent::FlightStarted { round, .. }
            | RoundEvent::Tick { round, .. }
            | RoundEvent::Crashed { round, .. }
            | RoundEvent::BetCancelled { round, .. }
            | RoundEvent::RoomPaused { round, .. }
            | RoundEvent::RoomResumed { round, .. }
            | RoundEvent::ChatPosted { round, .. }
            | RoundEvent::RoomLimitsChanged { round, .. } => *round,
        }
    }

    /// Whether a slow reader may skip this event for a newer one: a tick carries absolute
    /// values (multiplier, totals), so the newest says all; a phase change never is.
    /// The one place this is decided: the bus envelope carries it to every gateway.
    pub fn is_conflatable(&self) -> bool {
        matches!(self, RoundEvent::Tick { .. })
    }
}

/// A bet as the public feed lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBet {
    pub player: String,
    /// The player's display name when it bet.
    pub name: String,
    pub slot: u8,
    pub stake_minor: i64,
    pub auto_cashout_hundredths: Option<u64>,
}

/// A cashout as the public feed lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedCashout {
    pub player: String,
    pub slot: u8,
    pub multiplier_hundredths: u64,
    /// Paid back, stake included.
    pub win_minor: i64,
    /// Who decided it: the player, the auto-cashout target or the max-profit cap.
    pub kind: CashoutKind,
}

/// Who cashed a bet out, as the public feed tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CashoutKind {
    /// The player asked.
    Manual,
    /// The engine, at the bet's auto-cashout target.
    Auto,
    /// The engine, everyone at once at the round's max-profit cap.
    Cap,
}

/// A round's totals so far: every accepted bet and every cashout, listed or not.
/// Absolute values, so the newest event that carries them is enough.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RoundTotals {
    /// Bets accepted (stakes taken).
    pub bets: u64,
    pub staked_minor: i64,
    /// Bets cashed out, by hand, auto-cashout or the max-profit cap.
    pub cashouts: u64,
    /// Σ payouts, stakes included.
    pub won_minor: i64,
    /// Σ stakes of the bets cashed out: with `staked_minor` and `won_minor`, the stakes
    /// still at risk and the players' realized profit, which the max-profit cap bounds.
    pub cashed_out_stakes_minor: i64,
}
