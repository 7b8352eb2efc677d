//! The data of a round that several parts of [`RoomCore`](super::RoomCore) share: its
//! limits, the settings of a room, where a round is ([`RoundPhase`]), its bets, what a
//! previous leader left in flight ([`RoundInFlight`]) and what the core hands out
//! ([`Effects`]: transfers with their purpose, replies, events, journal records).

use crate::config::EngineConfig;
use crate::fair::{self, FairChain};
use crate::ledger::{RoundRecord, Transfer};

use super::super::answer::Reply;
use super::super::event::{CashoutKind, RoundEvent, RoundTotals};

/// Bets one round accepts, at most; further bets are answered `overloaded`.
pub const ROUND_BETS_MAX: usize = 100_000;

/// Bet slots per player per round: slots 0 and 1.
pub const SLOTS_PER_PLAYER: u8 = 2;

/// Lowest auto-cashout target, in hundredths: 1.00x would be a refund in disguise.
pub const AUTO_CASHOUT_MIN_HUNDREDTHS: u64 = 101;

/// The multiplier at the start of a flight, in hundredths (1.00x).
pub(super) const MULTIPLIER_START_HUNDREDTHS: u64 = 100;

const _: () = assert!(AUTO_CASHOUT_MIN_HUNDREDTHS > MULTIPLIER_START_HUNDREDTHS);

/// What a room is: its name, its fairness parameters and its round rules.
#[derive(Debug, Clone, PartialEq)]
pub struct RoomSettings {
    /// Room name; part of every transfer id and journal key.
    pub room: String,
    /// Public salt mixed into every crash point (see `fair`).
    pub salt: String,
    /// House edge in basis points (100 = 1%).
    pub house_edge_bp: u32,
    /// Durations, limits and the multiplier curve.
    pub engine: EngineConfig,
}

/// The fairness chain has no hash for the next round: every round it committed to has
/// been played. Generate a new chain (a new seed) and publish its commitment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the fairness chain has no hash for round {round}")]
pub struct ChainExhausted {
    pub round: u64,
}

/// A round a previous leader of the room left in flight, as the ledger holds it: what a
/// new leader needs to finish it ([`RoomCore::resume`](super::RoomCore::resume)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundInFlight {
    /// The round's journal record (Betting or Flying).
    pub record: RoundRecord,
    /// Every stake the ledger took for the round.
    pub bets: Vec<BetInFlight>,
    /// When betting closes, if the previous leader announced it (its `betting` event is
    /// still on the bus): the round keeps it, and its phase is not announced again.
    pub announced_betting_end_ms: Option<u64>,
    /// Whether the previous leader announced the flight (its `flying` event is on the bus).
    pub announced_flying: bool,
}

/// A stake of a round in flight and what has been paid for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BetInFlight {
    pub player: String,
    pub slot: u8,
    pub stake_minor: i64,
    pub auto_cashout_hundredths: Option<u64>,
    /// The player's balance right after the stake was taken: what its `bet_ok` said.
    pub stake_balance_after_minor: i64,
    pub settled: BetSettled,
}

/// What the ledger holds beside a stake of a round in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BetSettled {
    /// Nothing: the bet is still in play.
    Open,
    /// Paid at `multiplier_hundredths`; `balance_after_minor` is the player's balance
    /// right after the payout (what its `cashout_ok` said).
    PaidOut {
        multiplier_hundredths: u64,
        win_minor: i64,
        balance_after_minor: i64,
    },
    /// Given back: the previous leader was aborting the round.
    Refunded,
}

/// Why a round in flight cannot be resumed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeError {
    #[error(transparent)]
    ChainExhausted(#[from] ChainExhausted),
    /// The journal's hash for the round is not this engine's chain's: the engines of the
    /// cluster do not share `fair.chain_secret` (or `fair.chain_length`).
    #[error(
        "round {round}: the journal's hash is not this engine's chain's; check that every engine has the same fair.chain_secret and fair.chain_length"
    )]
    ChainMismatch { round: u64 },
}

/// Where a round is. Phases only move forward: Betting → Flying → Crashed, or to Aborted
/// (shutdown) from Betting or Flying; the next round starts over at Betting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoundPhase {
    Betting {
        ends_at_ms: u64,
    },
    Flying {
        started_at_ms: u64,
        crash_at_ms: u64,
    },
    Crashed {
        crashed_at_ms: u64,
        next_round_at_ms: u64,
    },
    /// The room stopped; nothing changes any more.
    Aborted,
}

impl RoundPhase {
    /// Position in the one-way order of phases within a round.
    pub(super) fn rank(self) -> u8 {
        match self {
            RoundPhase::Betting { .. } => 0,
            RoundPhase::Flying { .. } => 1,
            RoundPhase::Crashed { .. } => 2,
            RoundPhase::Aborted => 3,
        }
    }
}

/// Names one bet. Its transfer ids are derived from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BetKey {
    pub round: u64,
    pub player: String,
    pub slot: u8,
}

/// A transfer the core wants in the ledger, and what to tell it about the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferIntent {
    pub transfer: Transfer,
    pub purpose: TransferPurpose,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferPurpose {
    /// A stake: answer with [`RoomCore::confirm_bet`](super::RoomCore::confirm_bet) or [`RoomCore::reject_bet`](super::RoomCore::reject_bet).
    Stake(BetKey),
    /// A payout or refund, already decided: retry it until committed, then answer with
    /// [`RoomCore::credit_committed`](super::RoomCore::credit_committed).
    Credit(CreditNotice),
}

/// What a payout or refund is for, told once the ledger holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditNotice {
    pub bet: BetKey,
    pub reason: CreditReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreditReason {
    /// A cashout. Of a request ([`CashoutBy::Request`]): its senders get `cashout_ok`.
    /// Made by the engine (auto-cashout, max profit): every socket of the bet's player
    /// gets `balance` naming the cashout, the only way it learns of it when the public
    /// feed does not list it.
    Cashout {
        by: CashoutBy,
        multiplier_hundredths: u64,
        win_minor: i64,
    },
    /// A refund of a round that did not play (an abort): every socket of the bet's
    /// player gets `balance` naming it.
    Refund { refunded_minor: i64 },
    /// A refund of a bet its player cancelled by the request `req`: its senders get
    /// `cancel_ok`.
    Cancel { req: String, refunded_minor: i64 },
}

/// Who cashed a bet out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CashoutBy {
    /// The player, by the cashout request `req`.
    Request(String),
    /// The engine, at the bet's auto-cashout target.
    AutoTarget,
    /// The engine, everyone at once at the round's max-profit cap.
    ProfitCap,
}

impl CashoutBy {
    /// The kind the public feed and the metrics tell.
    pub fn kind(&self) -> CashoutKind {
        match self {
            CashoutBy::Request(_) => CashoutKind::Manual,
            CashoutBy::AutoTarget => CashoutKind::Auto,
            CashoutBy::ProfitCap => CashoutKind::Cap,
        }
    }
}

/// What the core decided since the last [`RoomCore::take_effects`](super::RoomCore::take_effects), in order.
#[derive(Debug, Default)]
pub struct Effects {
    pub events: Vec<RoundEvent>,
    pub transfers: Vec<TransferIntent>,
    pub replies: Vec<Reply>,
    pub records: Vec<RoundRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum BetState {
    /// Accepted; the ledger has not taken the stake yet. `req` is the bet request's id.
    Pending {
        req: String,
    },
    Active,
    CashedOut,
    Lost,
    Refunded,
}

#[derive(Debug)]
pub(super) struct Bet {
    pub(super) stake_minor: i64,
    pub(super) auto_cashout_hundredths: Option<u64>,
    pub(super) state: BetState,
    /// The player's display name when it bet, for the public lists.
    pub(super) name: String,
}

/// What a player asks to bet: the stake, its auto-cashout target, the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BetTerms {
    pub amount_minor: i64,
    pub auto_cashout_hundredths: Option<u64>,
    pub slot: u8,
}

impl BetTerms {
    pub fn new(amount_minor: i64, auto_cashout_hundredths: Option<u64>, slot: u8) -> BetTerms {
        BetTerms {
            amount_minor,
            auto_cashout_hundredths,
            slot,
        }
    }
}

/// The current round.
#[derive(Debug)]
pub(super) struct RoundState {
    pub(super) number: u64,
    pub(super) hash: String,
    pub(super) crash_hundredths: u64,
    pub(super) phase: RoundPhase,
    /// When betting opened: the origin of the betting tick grid.
    pub(super) opened_at_ms: u64,
    /// When the flight started; 0 while betting (as journaled).
    pub(super) started_at_ms: u64,
    pub(super) next_tick_at_ms: u64,
    /// Confirmed bets and decided cashouts: public in ticks, and the journal's sums.
    pub(super) totals: RoundTotals,
}

impl RoundState {
    /// Round `number` ended at `now_ms` (or never was, for 0) and the next one is due:
    /// where a room started paused rests. Never journaled nor announced as a round.
    pub(super) fn rested(number: u64, now_ms: u64) -> RoundState {
        RoundState {
            number,
            hash: String::new(),
            crash_hundredths: MULTIPLIER_START_HUNDREDTHS,
            phase: RoundPhase::Crashed {
                crashed_at_ms: now_ms,
                next_round_at_ms: now_ms,
            },
            opened_at_ms: now_ms,
            started_at_ms: 0,
            next_tick_at_ms: now_ms,
            totals: RoundTotals::default(),
        }
    }

    pub(super) fn open(
        settings: &RoomSettings,
        chain: &FairChain,
        number: u64,
        now_ms: u64,
    ) -> Result<RoundState, ChainExhausted> {
        let hash = chain
            .round_hash(number)
            .ok_or(ChainExhausted { round: number })?;
        let crash_hundredths =
            fair::crash_point_hundredths(&hash, &settings.salt, settings.house_edge_bp);
        let engine = &settings.engine;
        Ok(RoundState {
            number,
            hash,
            crash_hundredths,
            phase: RoundPhase::Betting {
                ends_at_ms: now_ms + engine.betting_duration_ms,
            },
            opened_at_ms: now_ms,
            started_at_ms: 0,
            next_tick_at_ms: now_ms + engine.tick_interval_ms,
            totals: RoundTotals::default(),
        })
    }
}
