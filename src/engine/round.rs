//! The round state machine of one room: [`RoomCore`].
//!
//! Owns everything a room decides: the current round number and its phase (Betting →
//! Flying → Crashed → the next round's Betting, only ever forward), the round's hash and
//! crash point from the fairness chain, the bets (two slots per player), the round's
//! public feed (its totals, and the largest bets and cashouts not yet announced — at most
//! `public_bets_per_tick_max` / `public_cashouts_per_tick_max`, see `feed`), the
//! per-round replay map of request ids, and the room's event sequence number. It is pure
//! logic: no I/O, no async, no clock reads. Every method takes the engine time `now_ms`,
//! and every decision comes out as [`Effects`] (events to publish, transfers to apply,
//! replies to send, journal records to write) that `engine::runner` performs.
//!
//! # Money
//! A bet is *pending* from its acceptance until the ledger has taken the stake: the core
//! hands out the stake transfer and the caller answers with [`RoomCore::confirm_bet`] or
//! [`RoomCore::reject_bet`]. Payouts and refunds are decided here exactly once (a bet moves
//! Active → CashedOut, Lost or Refunded and never back) and handed out as transfers whose
//! ids are derived from the bet (`payout:{room}:{round}:{player}:{slot}`), so the caller
//! may retry them until the ledger holds them without ever paying twice.
//!
//! # Multiplier
//! `m(t) = floor(100 · e^(rate · t))` hundredths, `t` in ms since the flight started,
//! `rate` = `growth_rate_per_ms_millionths` / 10⁶ per ms. The round crashes at the first
//! millisecond where `m(t)` reaches the crash point (a crash point of 100 crashes at the
//! start). A cashout is stamped with the engine's time, never the client's. Auto-cashouts
//! are paid at exactly their target, even when ticks skipped past it, provided the target
//! is below the crash point; at the crash every other active bet loses.
//!
//! # Max profit
//! Let `realized` = Σ(payout − stake) over the round's cashed-out bets and `S` = Σ stakes
//! of its active bets. Before any cashout at level `L` (each auto-cashout target in
//! increasing order, then the current multiplier), if
//! `realized + S · (L − 100) / 100 > round_profit_max_minor`, every active bet is cashed
//! out at `m* = 100 + floor((cap − realized) · 100 / S)`, clamped to `100..=L`. The
//! players' total profit in a round therefore never exceeds the cap; the round flies on
//! to its crash point without them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::bus::{ReplyTo, RequestKind};
use crate::config::EngineConfig;
use crate::fair::{self, FairChain};
use crate::feed::Largest;
use crate::ledger::{
    Account, BetRef, BetTransferKind, RoundRecord, RoundStatus, Transfer, TransferId, TransferKind,
};

use super::answer::{Answer, EngineCashout, Refusal, RefusalCode, Reply};
use super::event::{ListedBet, ListedCashout, RoundEvent, RoundTotals};

/// Bets one round accepts, at most; further bets are answered `overloaded`.
pub const ROUND_BETS_MAX: usize = 100_000;
/// Refusals remembered per round for replays. Beyond it a replayed refused request is
/// decided again, which is harmless: a refusal changed nothing.
pub const REPLAY_REFUSALS_PER_ROUND_MAX: usize = 4 * ROUND_BETS_MAX;
/// Connections waiting for the answer of one request still in the ledger (the first
/// sender plus replays); further replays of it get no answer.
pub const REQUEST_WAITERS_MAX: usize = 8;
/// Bet slots per player per round: slots 0 and 1.
pub const SLOTS_PER_PLAYER: u8 = 2;
/// Lowest auto-cashout target, in hundredths: 1.00x would be a refund in disguise.
pub const AUTO_CASHOUT_MIN_HUNDREDTHS: u64 = 101;
/// The multiplier at the start of a flight, in hundredths (1.00x).
const MULTIPLIER_START_HUNDREDTHS: u64 = 100;
/// Phase changes one `advance` can make: Betting → Flying → Crashed (instant crash) →
/// Betting. A betting phase lasts at least 1 ms, which ends the chain.
const PHASE_CHANGES_PER_ADVANCE_MAX: usize = 3;

const _: () = assert!(AUTO_CASHOUT_MIN_HUNDREDTHS > MULTIPLIER_START_HUNDREDTHS);
const _: () = assert!(REPLAY_REFUSALS_PER_ROUND_MAX >= ROUND_BETS_MAX);

/// The multiplier, in hundredths, `elapsed_ms` after the flight started:
/// `floor(100 · e^(rate · elapsed_ms))` with `rate` = millionths / 10⁶ per ms.
pub fn multiplier_at(elapsed_ms: u64, growth_rate_per_ms_millionths: u64) -> u64 {
    // The only float in the engine: e^x has no integer form. The value is floored to
    // integer hundredths at once; money is computed from that integer.
    let exponent = growth_rate_per_ms_millionths as f64 / 1e6 * elapsed_ms as f64;
    let hundredths = (100.0 * exponent.exp()).floor();
    // `as` saturates, so an absurdly long flight pins at u64::MAX instead of wrapping.
    hundredths as u64
}

/// The first millisecond of a flight at which the multiplier reaches `target_hundredths`.
pub fn elapsed_to_reach_ms(target_hundredths: u64, growth_rate_per_ms_millionths: u64) -> u64 {
    assert!(
        growth_rate_per_ms_millionths > 0,
        "a flat curve never crashes"
    );
    let reached =
        |elapsed_ms| multiplier_at(elapsed_ms, growth_rate_per_ms_millionths) >= target_hundredths;
    if reached(0) {
        return 0;
    }
    // Invariant: not reached at `low`, reached at `high`. Doubling ends within 64 steps
    // because the multiplier saturates at u64::MAX.
    let (mut low, mut high) = (0u64, 1u64);
    for _ in 0..u64::BITS {
        if reached(high) {
            break;
        }
        low = high;
        high = high.saturating_mul(2);
    }
    assert!(reached(high), "the multiplier reaches every u64 target");
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        if reached(middle) {
            high = middle;
        } else {
            low = middle;
        }
    }
    high
}

/// A stake times a multiplier in hundredths, floored to minor units.
fn payout_minor(stake_minor: i64, multiplier_hundredths: u64) -> i64 {
    let payout = i128::from(stake_minor) * i128::from(multiplier_hundredths) / 100;
    i64::try_from(payout).expect("a payout is at most stake + round_profit_max_minor")
}

/// The first tick time after `now_ms` on the grid `origin_ms + k · interval_ms`, k ≥ 1.
fn next_tick_after(origin_ms: u64, now_ms: u64, interval_ms: u64) -> u64 {
    let elapsed_ms = now_ms.saturating_sub(origin_ms);
    origin_ms + (elapsed_ms / interval_ms + 1) * interval_ms
}

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
/// new leader needs to finish it ([`RoomCore::resume`]).
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
    fn rank(self) -> u8 {
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
    /// A stake: answer with [`RoomCore::confirm_bet`] or [`RoomCore::reject_bet`].
    Stake(BetKey),
    /// A payout or refund, already decided: retry it until committed, then answer with
    /// [`RoomCore::credit_committed`].
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
    /// A cashout. Of a request (`req`): its senders get `cashout_ok`. Made by the engine
    /// (auto-cashout, max profit): every socket of the bet's player gets `balance`
    /// naming the cashout, the only way it learns of it when the public feed does not
    /// list it.
    Cashout {
        req: Option<String>,
        multiplier_hundredths: u64,
        win_minor: i64,
    },
    /// A refund: every socket of the bet's player gets `balance`.
    Refund,
}

/// What the core decided since the last [`RoomCore::take_effects`], in order.
#[derive(Debug, Default)]
pub struct Effects {
    pub events: Vec<RoundEvent>,
    pub transfers: Vec<TransferIntent>,
    pub replies: Vec<Reply>,
    pub records: Vec<RoundRecord>,
}

/// A request id as scoped by the replay map: per round, per player and per message type,
/// so a bet and a cashout that happen to share a `req` are two requests.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct RequestKey {
    round: u64,
    player: String,
    kind: RequestKind,
    req: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum BetState {
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
struct Bet {
    stake_minor: i64,
    auto_cashout_hundredths: Option<u64>,
    state: BetState,
}

/// The current round.
#[derive(Debug)]
struct RoundState {
    number: u64,
    hash: String,
    crash_hundredths: u64,
    phase: RoundPhase,
    /// When betting opened: the origin of the betting tick grid.
    opened_at_ms: u64,
    /// When the flight started; 0 while betting (as journaled).
    started_at_ms: u64,
    next_tick_at_ms: u64,
    /// Confirmed bets and decided cashouts: public in ticks, and the journal's sums.
    totals: RoundTotals,
}

impl RoundState {
    fn open(
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

/// The round state machine of one room. See the module documentation.
pub struct RoomCore {
    settings: RoomSettings,
    chain: Arc<FairChain>,
    round: RoundState,
    /// The round's bets by (player, slot); ordered so that mass cashouts are deterministic.
    bets: BTreeMap<(String, u8), Bet>,
    /// Active bets with an auto-cashout, ordered by target: (target, player, slot).
    auto_cashouts: BTreeSet<(u64, String, u8)>,
    /// Σ stakes of the active bets (i128: a sum of up to `ROUND_BETS_MAX` i64 stakes).
    active_stakes_minor: i128,
    /// Σ (payout − stake) of the round's cashed-out bets; never above the max profit.
    realized_profit_minor: i64,
    /// The answer to every finished request of the round, for replays.
    replies_by_request: HashMap<RequestKey, Answer>,
    remembered_refusals: usize,
    /// Requests waiting for the ledger, with the connections to answer.
    waiters_by_request: HashMap<RequestKey, Vec<ReplyTo>>,
    /// The stakes a previous leader took this round, by (player, slot): a command it took
    /// but did not answer before it died is redelivered here, and is answered with what
    /// the ledger holds for it (see [`RoomCore::bet`], [`RoomCore::cashout`]).
    resumed_bets: HashMap<(String, u8), BetInFlight>,
    /// The largest bets confirmed since the last tick; the rest are only counted.
    unannounced_bets: Largest<ListedBet>,
    /// The largest cashouts since the last tick; the rest are only counted.
    unannounced_cashouts: Largest<ListedCashout>,
    /// A bet was confirmed since the last tick: the totals changed, so a betting tick is
    /// due even when no bet is listed.
    bets_unannounced: bool,
    /// Whether bets may go to the ledger (the runner's circuit breaker is not open).
    ledger_available: bool,
    /// Sequence number of the next event; the first event of a run is 1.
    next_seq: u64,
    /// Latest time seen, to assert that engine time never goes back.
    last_now_ms: u64,
    effects: Effects,
}

impl RoomCore {
    /// Opens betting for `first_round` at `now_ms`, numbering events from `first_seq`.
    pub fn new(
        settings: RoomSettings,
        chain: Arc<FairChain>,
        first_round: u64,
        first_seq: u64,
        now_ms: u64,
    ) -> Result<RoomCore, ChainExhausted> {
        assert!(first_seq >= 1);
        let round = RoundState::open(&settings, &chain, first_round, now_ms)?;
        let mut core = RoomCore::with_round(settings, chain, round, now_ms);
        core.next_seq = first_seq;
        core.announce_betting();
        Ok(core)
    }

    fn with_round(
        settings: RoomSettings,
        chain: Arc<FairChain>,
        round: RoundState,
        now_ms: u64,
    ) -> RoomCore {
        let engine = &settings.engine;
        assert!(engine.betting_duration_ms > 0 && engine.tick_interval_ms > 0);
        assert!(engine.growth_rate_per_ms_millionths > 0);
        assert!(0 < engine.bet_amount_min_minor);
        assert!(engine.bet_amount_min_minor <= engine.bet_amount_max_minor);
        assert!(engine.round_profit_max_minor > 0);
        let unannounced_bets = Largest::new(engine.public_bets_per_tick_max);
        let unannounced_cashouts = Largest::new(engine.public_cashouts_per_tick_max);
        RoomCore {
            settings,
            chain,
            round,
            bets: BTreeMap::new(),
            auto_cashouts: BTreeSet::new(),
            active_stakes_minor: 0,
            realized_profit_minor: 0,
            replies_by_request: HashMap::new(),
            remembered_refusals: 0,
            waiters_by_request: HashMap::new(),
            resumed_bets: HashMap::new(),
            unannounced_bets,
            unannounced_cashouts,
            bets_unannounced: false,
            ledger_available: true,
            next_seq: 1,
            last_now_ms: now_ms,
            effects: Effects::default(),
        }
    }

    /// Takes over `in_flight`, the round a previous leader left Betting or Flying, at
    /// `now_ms`, numbering events from `first_seq`. The round goes on exactly as it
    /// would have: the crash point comes from the chain, the multiplier from the
    /// journaled start time, and the stakes and payouts from the ledger. Auto-cashouts
    /// the flight reached meanwhile are paid at their target on the next `advance`, and a
    /// round past its crash point crashes then. A round still betting keeps the end its
    /// `betting` event announced, or gets a fresh betting period when that event is gone
    /// (the end time is not journaled). A phase the previous leader did not announce (it
    /// died between journal and publish) is announced now.
    pub fn resume(
        settings: RoomSettings,
        chain: Arc<FairChain>,
        in_flight: RoundInFlight,
        first_seq: u64,
        now_ms: u64,
    ) -> Result<RoomCore, ResumeError> {
        let RoundInFlight {
            record,
            bets,
            announced_betting_end_ms,
            announced_flying,
        } = in_flight;
        assert!(matches!(
            record.status,
            RoundStatus::Betting | RoundStatus::Flying
        ));
        assert!(first_seq >= 1);
        let mut round = RoundState::open(&settings, &chain, record.round, now_ms)?;
        if round.hash != record.hash {
            return Err(ResumeError::ChainMismatch {
                round: record.round,
            });
        }
        if record.status == RoundStatus::Flying {
            let rate = settings.engine.growth_rate_per_ms_millionths;
            let started_at_ms = record.started_at_ms.min(now_ms);
            round.phase = RoundPhase::Flying {
                started_at_ms,
                crash_at_ms: started_at_ms + elapsed_to_reach_ms(round.crash_hundredths, rate),
            };
            round.started_at_ms = started_at_ms;
            round.next_tick_at_ms = now_ms;
        } else if let Some(ends_at_ms) = announced_betting_end_ms {
            round.phase = RoundPhase::Betting {
                ends_at_ms: ends_at_ms.max(now_ms),
            };
        }
        let mut core = RoomCore::with_round(settings, chain, round, now_ms);
        core.next_seq = first_seq;
        for bet in bets {
            core.adopt(bet);
        }
        let round = core.round.number;
        match core.round.phase {
            RoundPhase::Betting { .. } if announced_betting_end_ms.is_some() => {}
            RoundPhase::Flying { .. } if announced_flying => {}
            RoundPhase::Betting { .. } => core.announce_betting(),
            RoundPhase::Flying { started_at_ms, .. } => {
                core.emit(|seq| RoundEvent::FlightStarted {
                    seq,
                    round,
                    started_at_ms,
                })
            }
            RoundPhase::Crashed { .. } | RoundPhase::Aborted => {
                unreachable!("resumed rounds are betting or flying")
            }
        }
        Ok(core)
    }

    /// Takes a stake of a resumed round back into the round's books.
    fn adopt(&mut self, bet: BetInFlight) {
        self.resumed_bets
            .insert((bet.player.clone(), bet.slot), bet.clone());
        let BetInFlight {
            player,
            slot,
            stake_minor,
            auto_cashout_hundredths,
            settled,
            ..
        } = bet;
        assert!(stake_minor > 0 && slot < SLOTS_PER_PLAYER);
        self.round.totals.bets += 1;
        self.round.totals.staked_minor += stake_minor;
        let state = match settled {
            BetSettled::Open => {
                self.active_stakes_minor += i128::from(stake_minor);
                if let Some(auto) = auto_cashout_hundredths {
                    self.auto_cashouts.insert((auto, player.clone(), slot));
                }
                BetState::Active
            }
            BetSettled::PaidOut { win_minor, .. } => {
                self.realized_profit_minor += win_minor - stake_minor;
                self.round.totals.cashouts += 1;
                self.round.totals.won_minor += win_minor;
                BetState::CashedOut
            }
            BetSettled::Refunded => BetState::Refunded,
        };
        let previous = self.bets.insert(
            (player, slot),
            Bet {
                stake_minor,
                auto_cashout_hundredths,
                state,
            },
        );
        assert!(previous.is_none(), "one stake per player and slot");
    }

    /// Whether the ledger takes stakes now: while it does not, bets are refused
    /// `unavailable` (after every other check); cashouts are not affected.
    pub fn set_ledger_available(&mut self, available: bool) {
        self.ledger_available = available;
    }

    pub fn round_number(&self) -> u64 {
        self.round.number
    }

    pub fn phase(&self) -> RoundPhase {
        self.round.phase
    }

    /// Everything decided since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    /// When `advance` next has something to do (a tick or a phase change); `None` once
    /// the room has stopped.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let next_tick_at_ms = self.round.next_tick_at_ms;
        match self.round.phase {
            // Betting ticks exist only to announce bets: no bets, no wake-up.
            RoundPhase::Betting { ends_at_ms } if !self.bets_unannounced => Some(ends_at_ms),
            RoundPhase::Betting { ends_at_ms } => Some(ends_at_ms.min(next_tick_at_ms)),
            RoundPhase::Flying { crash_at_ms, .. } => Some(crash_at_ms.min(next_tick_at_ms)),
            RoundPhase::Crashed {
                next_round_at_ms, ..
            } => Some(next_round_at_ms),
            RoundPhase::Aborted => None,
        }
    }

    /// Runs what is due at `now_ms`: phase changes, auto-cashouts, the max-profit cap and
    /// ticks. Fails only when the next round has no hash left in the chain.
    pub fn advance(&mut self, now_ms: u64) -> Result<(), ChainExhausted> {
        self.observe(now_ms);
        for _ in 0..=PHASE_CHANGES_PER_ADVANCE_MAX {
            if !self.step(now_ms)? {
                return Ok(());
            }
        }
        panic!("more than {PHASE_CHANGES_PER_ADVANCE_MAX} phase changes at one instant");
    }

    /// Makes the phase change due at `now_ms`, if any, and reports whether it did;
    /// otherwise runs the current phase's tick.
    fn step(&mut self, now_ms: u64) -> Result<bool, ChainExhausted> {
        match self.round.phase {
            RoundPhase::Betting { ends_at_ms } if now_ms >= ends_at_ms => {
                self.start_flying(now_ms);
                Ok(true)
            }
            RoundPhase::Betting { .. } => {
                self.betting_tick(now_ms);
                Ok(false)
            }
            RoundPhase::Flying { crash_at_ms, .. } if now_ms >= crash_at_ms => {
                self.crash(now_ms);
                Ok(true)
            }
            RoundPhase::Flying { started_at_ms, .. } => {
                self.flying_tick(now_ms, started_at_ms);
                Ok(false)
            }
            RoundPhase::Crashed {
                next_round_at_ms, ..
            } if now_ms >= next_round_at_ms => {
                self.open_next_round(now_ms)?;
                Ok(true)
            }
            RoundPhase::Crashed { .. } | RoundPhase::Aborted => Ok(false),
        }
    }

    /// Places a bet for `from.player`. Answers at once when refused or replayed;
    /// otherwise hands out the stake transfer and answers once the ledger has spoken. A
    /// bet with the terms of a stake a previous leader took in that slot this round is
    /// that leader's command redelivered: it gets the `bet_ok` the stake earned.
    pub fn bet(
        &mut self,
        now_ms: u64,
        from: &ReplyTo,
        req: &str,
        amount_minor: i64,
        auto_cashout_hundredths: Option<u64>,
        slot: u8,
    ) {
        self.observe(now_ms);
        let request = self.request_key(from, RequestKind::Bet, req);
        if self.answer_replay(&request, from) {
            return;
        }
        let resumed = self.resumed_bets.get(&(from.player.clone(), slot));
        if let Some(stake) = resumed.filter(|stake| {
            (stake.stake_minor, stake.auto_cashout_hundredths)
                == (amount_minor, auto_cashout_hundredths)
        }) {
            let answer = Answer::BetAccepted {
                req: req.to_owned(),
                round: self.round.number,
                slot,
                stake_minor: amount_minor,
                auto_cashout_hundredths,
                balance_after_minor: stake.stake_balance_after_minor,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        let checked = self.check_bet(
            now_ms,
            &from.player,
            amount_minor,
            auto_cashout_hundredths,
            slot,
        );
        if let Err(refusal) = checked {
            let answer = Answer::BetRefused {
                req: req.to_owned(),
                refusal,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        let bet = Bet {
            stake_minor: amount_minor,
            auto_cashout_hundredths,
            state: BetState::Pending {
                req: req.to_owned(),
            },
        };
        self.bets.insert((from.player.clone(), slot), bet);
        self.waiters_by_request.insert(request, vec![from.clone()]);
        let key = BetKey {
            round: self.round.number,
            player: from.player.clone(),
            slot,
        };
        let transfer = Transfer {
            id: self.transfer_id(BetTransferKind::Stake, &key),
            debit: Account::Player(from.player.clone()),
            credit: Account::House,
            amount_minor,
            kind: TransferKind::Bet,
            multiplier_hundredths: auto_cashout_hundredths,
        };
        self.effects.transfers.push(TransferIntent {
            transfer,
            purpose: TransferPurpose::Stake(key),
        });
    }

    fn check_bet(
        &self,
        now_ms: u64,
        player: &str,
        amount_minor: i64,
        auto_cashout_hundredths: Option<u64>,
        slot: u8,
    ) -> Result<(), Refusal> {
        let engine = &self.settings.engine;
        let betting =
            matches!(self.round.phase, RoundPhase::Betting { ends_at_ms } if now_ms < ends_at_ms);
        if !betting {
            return Err(Refusal::new(
                RefusalCode::WrongPhase,
                "bets are taken only while betting is open",
            ));
        }
        if slot >= SLOTS_PER_PLAYER {
            return Err(Refusal::new(
                RefusalCode::InvalidField,
                "slot must be 0 or 1",
            ));
        }
        let (amount_min, amount_max) = (engine.bet_amount_min_minor, engine.bet_amount_max_minor);
        if !(amount_min..=amount_max).contains(&amount_minor) {
            let message = format!("amount must be {amount_min}..={amount_max} minor units");
            return Err(Refusal::new(RefusalCode::InvalidField, message));
        }
        let auto_range = AUTO_CASHOUT_MIN_HUNDREDTHS..=engine.auto_cashout_max_hundredths;
        if auto_cashout_hundredths.is_some_and(|auto| !auto_range.contains(&auto)) {
            let message = format!(
                "auto must be {}..={} hundredths",
                auto_range.start(),
                auto_range.end()
            );
            return Err(Refusal::new(RefusalCode::InvalidField, message));
        }
        if self.bets.contains_key(&(player.to_owned(), slot)) {
            return Err(Refusal::new(
                RefusalCode::SlotTaken,
                "this slot already holds a bet this round",
            ));
        }
        if self.bets.len() >= ROUND_BETS_MAX {
            return Err(Refusal::new(
                RefusalCode::Overloaded,
                "this round is full; retry with the same req",
            ));
        }
        if !self.ledger_available {
            return Err(Refusal::new(
                RefusalCode::Unavailable,
                "the ledger is failing; bets are refused for a few seconds; retry with the same req",
            ));
        }
        Ok(())
    }

    /// The ledger took the stake: the bet is active and public.
    pub fn confirm_bet(&mut self, key: &BetKey, debit_balance_after_minor: i64) {
        assert_eq!(
            key.round, self.round.number,
            "stakes are settled within their round"
        );
        let index = (key.player.clone(), key.slot);
        let bet = self
            .bets
            .get_mut(&index)
            .expect("a confirmed bet was accepted");
        let BetState::Pending { req } = std::mem::replace(&mut bet.state, BetState::Active) else {
            panic!("bet {key:?} confirmed twice");
        };
        let (stake_minor, auto) = (bet.stake_minor, bet.auto_cashout_hundredths);
        self.active_stakes_minor += i128::from(stake_minor);
        self.round.totals.bets += 1;
        self.round.totals.staked_minor += stake_minor;
        if let Some(auto) = auto {
            self.auto_cashouts
                .insert((auto, key.player.clone(), key.slot));
        }
        self.unannounced_bets.offer(ListedBet {
            player: key.player.clone(),
            slot: key.slot,
            stake_minor,
            auto_cashout_hundredths: auto,
        });
        self.bets_unannounced = true;
        let answer = Answer::BetAccepted {
            req: req.clone(),
            round: key.round,
            slot: key.slot,
            stake_minor,
            auto_cashout_hundredths: auto,
            balance_after_minor: debit_balance_after_minor,
        };
        self.finish_request(key.round, &key.player, RequestKind::Bet, req, answer);
    }

    /// The ledger refused the stake (`insufficient_funds`) or failed (`internal`): the
    /// slot is free again and the request is answered with `code`.
    pub fn reject_bet(&mut self, key: &BetKey, code: RefusalCode) {
        assert_eq!(
            key.round, self.round.number,
            "stakes are settled within their round"
        );
        let index = (key.player.clone(), key.slot);
        let bet = self
            .bets
            .remove(&index)
            .expect("a rejected bet was accepted");
        let BetState::Pending { req } = bet.state else {
            panic!("bet {key:?} rejected after it was confirmed");
        };
        let message = match code {
            RefusalCode::InsufficientFunds => "the balance is lower than the stake",
            RefusalCode::Internal => "storage fault; nothing was changed; retry with the same req",
            _ => "the bet was refused",
        };
        let answer = Answer::BetRefused {
            req: req.clone(),
            refusal: Refusal::new(code, message),
        };
        self.finish_request(key.round, &key.player, RequestKind::Bet, req, answer);
    }

    /// Cashes out `from.player`'s bet in `slot` at the multiplier of `now_ms`. A bet a
    /// previous leader already paid is that leader's cashout redelivered: it gets the
    /// `cashout_ok` the payout earned.
    pub fn cashout(&mut self, now_ms: u64, from: &ReplyTo, req: &str, slot: u8) {
        self.observe(now_ms);
        let request = self.request_key(from, RequestKind::Cashout, req);
        if self.answer_replay(&request, from) {
            return;
        }
        let resumed = self.resumed_bets.get(&(from.player.clone(), slot));
        if let Some(BetSettled::PaidOut {
            multiplier_hundredths,
            win_minor,
            balance_after_minor,
        }) = resumed.map(|stake| stake.settled)
        {
            let answer = Answer::CashedOut {
                req: req.to_owned(),
                round: self.round.number,
                slot,
                multiplier_hundredths,
                win_minor,
                balance_after_minor,
            };
            self.answer(request, vec![from.clone()], answer);
            return;
        }
        match self.check_cashout(now_ms, &from.player, slot) {
            Err(refusal) => {
                let answer = Answer::CashoutRefused {
                    req: req.to_owned(),
                    refusal,
                };
                self.answer(request, vec![from.clone()], answer);
            }
            Ok(multiplier_hundredths) => {
                self.waiters_by_request.insert(request, vec![from.clone()]);
                let index = (from.player.clone(), slot);
                self.cash_out(&index, multiplier_hundredths, Some(req.to_owned()));
            }
        }
    }

    /// The multiplier to cash out at, or why not.
    fn check_cashout(&mut self, now_ms: u64, player: &str, slot: u8) -> Result<u64, Refusal> {
        if slot >= SLOTS_PER_PLAYER {
            return Err(Refusal::new(
                RefusalCode::InvalidField,
                "slot must be 0 or 1",
            ));
        }
        let index = (player.to_owned(), slot);
        let too_late = || Refusal::new(RefusalCode::TooLate, "the round crashed first");
        match self.round.phase {
            RoundPhase::Flying { started_at_ms, .. } => {
                let rate = self.settings.engine.growth_rate_per_ms_millionths;
                let multiplier = multiplier_at(now_ms - started_at_ms, rate);
                if multiplier >= self.round.crash_hundredths {
                    return Err(too_late());
                }
                // Targets and the cap below this multiplier come first: they may already
                // have taken this bet out at a lower multiplier.
                self.settle_up_to(multiplier);
                match self.bets.get(&index) {
                    Some(bet) if bet.state == BetState::Active => Ok(multiplier),
                    _ => Err(Refusal::new(
                        RefusalCode::NoActiveBet,
                        "no active bet in this slot",
                    )),
                }
            }
            RoundPhase::Crashed { .. } => match self.bets.get(&index) {
                Some(bet) if bet.state == BetState::Lost => Err(too_late()),
                _ => Err(Refusal::new(RefusalCode::WrongPhase, "the round is over")),
            },
            RoundPhase::Betting { .. } | RoundPhase::Aborted => Err(Refusal::new(
                RefusalCode::WrongPhase,
                "cashouts are taken only while flying",
            )),
        }
    }

    /// The ledger holds a payout or refund: tell whoever waits for it.
    pub fn credit_committed(&mut self, notice: &CreditNotice, credit_balance_after_minor: i64) {
        let (round, slot) = (notice.bet.round, notice.bet.slot);
        let cashout = match &notice.reason {
            CreditReason::Cashout {
                req: Some(req),
                multiplier_hundredths,
                win_minor,
            } => {
                let answer = Answer::CashedOut {
                    req: req.clone(),
                    round,
                    slot,
                    multiplier_hundredths: *multiplier_hundredths,
                    win_minor: *win_minor,
                    balance_after_minor: credit_balance_after_minor,
                };
                self.finish_request(
                    round,
                    &notice.bet.player,
                    RequestKind::Cashout,
                    req.clone(),
                    answer,
                );
                return;
            }
            CreditReason::Cashout {
                req: None,
                multiplier_hundredths,
                win_minor,
            } => Some(EngineCashout {
                round,
                slot,
                multiplier_hundredths: *multiplier_hundredths,
                win_minor: *win_minor,
            }),
            CreditReason::Refund => None,
        };
        // Not an answer to a request: the player may have reconnected to another socket
        // or gateway since the bet, so the notice goes to each socket it holds now.
        self.effects.replies.push(Reply {
            to: ReplyTo::every_socket_of(&notice.bet.player),
            answer: Answer::BalanceChanged {
                balance_minor: credit_balance_after_minor,
                cashout,
            },
        });
    }

    /// Stops the room at `now_ms`. A round past its crash point crashes as usual; a round
    /// still betting or flying pays the auto-cashouts it reached, refunds every other open
    /// bet and is journaled Aborted. Every stake must be settled (confirmed or rejected).
    pub fn abort(&mut self, now_ms: u64) {
        self.observe(now_ms);
        match self.round.phase {
            RoundPhase::Flying { crash_at_ms, .. } if now_ms >= crash_at_ms => self.crash(now_ms),
            RoundPhase::Flying { started_at_ms, .. } => {
                let rate = self.settings.engine.growth_rate_per_ms_millionths;
                self.settle_up_to(multiplier_at(now_ms - started_at_ms, rate));
            }
            RoundPhase::Betting { .. } | RoundPhase::Crashed { .. } | RoundPhase::Aborted => {}
        }
        match self.round.phase {
            RoundPhase::Betting { .. } | RoundPhase::Flying { .. } => {
                self.refund_open_bets();
                self.enter(RoundPhase::Aborted);
                self.journal(RoundStatus::Aborted, Some(now_ms));
            }
            RoundPhase::Crashed { .. } => self.enter(RoundPhase::Aborted),
            RoundPhase::Aborted => {}
        }
    }

    fn refund_open_bets(&mut self) {
        let round = self.round.number;
        let mut refunds = Vec::new();
        for ((player, slot), bet) in &mut self.bets {
            assert!(
                !matches!(bet.state, BetState::Pending { .. }),
                "stakes are settled before an abort"
            );
            if bet.state != BetState::Active {
                continue;
            }
            bet.state = BetState::Refunded;
            let key = BetKey {
                round,
                player: player.clone(),
                slot: *slot,
            };
            refunds.push((key, bet.stake_minor));
        }
        for (key, stake_minor) in refunds {
            self.active_stakes_minor -= i128::from(stake_minor);
            let transfer = Transfer {
                id: self.transfer_id(BetTransferKind::Refund, &key),
                debit: Account::House,
                credit: Account::Player(key.player.clone()),
                amount_minor: stake_minor,
                kind: TransferKind::Refund,
                multiplier_hundredths: None,
            };
            let notice = CreditNotice {
                bet: key,
                reason: CreditReason::Refund,
            };
            self.effects.transfers.push(TransferIntent {
                transfer,
                purpose: TransferPurpose::Credit(notice),
            });
        }
        self.auto_cashouts.clear();
        assert_eq!(self.active_stakes_minor, 0, "every open stake was refunded");
    }

    fn betting_tick(&mut self, now_ms: u64) {
        if now_ms < self.round.next_tick_at_ms {
            return;
        }
        let interval_ms = self.settings.engine.tick_interval_ms;
        self.round.next_tick_at_ms = next_tick_after(self.round.opened_at_ms, now_ms, interval_ms);
        if self.bets_unannounced {
            self.emit_tick(now_ms, MULTIPLIER_START_HUNDREDTHS, 0);
        }
    }

    fn start_flying(&mut self, now_ms: u64) {
        let pending = self
            .bets
            .values()
            .any(|bet| matches!(bet.state, BetState::Pending { .. }));
        assert!(!pending, "stakes are settled before the flight");
        // Bets confirmed after the last betting tick are announced before the flight.
        if self.bets_unannounced {
            self.emit_tick(now_ms, MULTIPLIER_START_HUNDREDTHS, 0);
        }
        let rate = self.settings.engine.growth_rate_per_ms_millionths;
        let crash_at_ms = now_ms + elapsed_to_reach_ms(self.round.crash_hundredths, rate);
        self.enter(RoundPhase::Flying {
            started_at_ms: now_ms,
            crash_at_ms,
        });
        self.round.started_at_ms = now_ms;
        self.round.next_tick_at_ms = now_ms + self.settings.engine.tick_interval_ms;
        let round = self.round.number;
        self.emit(|seq| RoundEvent::FlightStarted {
            seq,
            round,
            started_at_ms: now_ms,
        });
        self.journal(RoundStatus::Flying, None);
    }

    fn flying_tick(&mut self, now_ms: u64, started_at_ms: u64) {
        let elapsed_ms = now_ms - started_at_ms;
        let multiplier = multiplier_at(
            elapsed_ms,
            self.settings.engine.growth_rate_per_ms_millionths,
        );
        assert!(
            multiplier < self.round.crash_hundredths,
            "flying below the crash point"
        );
        self.settle_up_to(multiplier);
        if now_ms >= self.round.next_tick_at_ms {
            let interval_ms = self.settings.engine.tick_interval_ms;
            self.round.next_tick_at_ms = next_tick_after(started_at_ms, now_ms, interval_ms);
            self.emit_tick(now_ms, multiplier, elapsed_ms);
        }
    }

    fn crash(&mut self, now_ms: u64) {
        let crash_hundredths = self.round.crash_hundredths;
        if crash_hundredths > MULTIPLIER_START_HUNDREDTHS {
            // The flight reached every level below the crash point.
            self.settle_up_to(crash_hundredths - 1);
        }
        for bet in self.bets.values_mut() {
            if bet.state == BetState::Active {
                bet.state = BetState::Lost;
            }
        }
        self.auto_cashouts.clear();
        self.active_stakes_minor = 0;
        self.enter(RoundPhase::Crashed {
            crashed_at_ms: now_ms,
            next_round_at_ms: now_ms + self.settings.engine.crashed_duration_ms,
        });
        let round = self.round.number;
        let hash = self.round.hash.clone();
        let cashouts = self.unannounced_cashouts.take();
        let totals = self.public_totals();
        self.emit(|seq| RoundEvent::Crashed {
            seq,
            round,
            crash_hundredths,
            hash,
            at_ms: now_ms,
            cashouts,
            totals,
        });
        self.journal(RoundStatus::Crashed, Some(now_ms));
    }

    fn open_next_round(&mut self, now_ms: u64) -> Result<(), ChainExhausted> {
        let number = self.round.number + 1;
        let round = RoundState::open(&self.settings, &self.chain, number, now_ms)?;
        assert!(self.unannounced_bets.is_empty() && self.unannounced_cashouts.is_empty());
        assert!(
            !self.bets_unannounced,
            "a round's bets are announced before it flies"
        );
        assert!(self.auto_cashouts.is_empty() && self.active_stakes_minor == 0);
        self.round = round;
        self.bets.clear();
        self.resumed_bets.clear();
        self.replies_by_request.clear();
        self.remembered_refusals = 0;
        self.realized_profit_minor = 0;
        self.announce_betting();
        Ok(())
    }

    fn announce_betting(&mut self) {
        let RoundPhase::Betting { ends_at_ms } = self.round.phase else {
            panic!("a round opens in Betting");
        };
        let round = self.round.number;
        self.emit(|seq| RoundEvent::BettingOpened {
            seq,
            round,
            ends_at_ms,
        });
        self.journal(RoundStatus::Betting, None);
    }

    /// Pays every auto-cashout target up to `level_max` at exactly its target, and applies
    /// the max-profit cap at each target and at `level_max` (see the module doc).
    fn settle_up_to(&mut self, level_max: u64) {
        // Bounded: every pass takes one bet out of `auto_cashouts`.
        while let Some((target, player, slot)) = self.auto_cashouts.first().cloned() {
            if target > level_max {
                break;
            }
            if self.profit_cap_exceeded_at(target) {
                self.cash_out_everyone_at_cap(target);
                return;
            }
            self.cash_out(&(player, slot), target, None);
        }
        if self.profit_cap_exceeded_at(level_max) {
            self.cash_out_everyone_at_cap(level_max);
        }
    }

    fn profit_cap_exceeded_at(&self, level_hundredths: u64) -> bool {
        let rise = i128::from(level_hundredths - MULTIPLIER_START_HUNDREDTHS);
        let profit_hundredths =
            i128::from(self.realized_profit_minor) * 100 + self.active_stakes_minor * rise;
        profit_hundredths > i128::from(self.settings.engine.round_profit_max_minor) * 100
    }

    fn cash_out_everyone_at_cap(&mut self, level_max: u64) {
        let cap_minor = self.settings.engine.round_profit_max_minor;
        assert!(
            self.active_stakes_minor > 0,
            "only open stakes can exceed the cap"
        );
        let headroom_minor = i128::from(cap_minor) - i128::from(self.realized_profit_minor);
        let capped = i128::from(MULTIPLIER_START_HUNDREDTHS)
            + headroom_minor * 100 / self.active_stakes_minor;
        let capped = capped.clamp(
            i128::from(MULTIPLIER_START_HUNDREDTHS),
            i128::from(level_max),
        );
        let capped = u64::try_from(capped).expect("clamped to u64 bounds");
        let active: Vec<(String, u8)> = self
            .bets
            .iter()
            .filter(|(_, bet)| bet.state == BetState::Active)
            .map(|(index, _)| index.clone())
            .collect();
        for index in active {
            self.cash_out(&index, capped, None);
        }
        assert!(
            self.realized_profit_minor <= cap_minor,
            "round profit above the max profit"
        );
    }

    /// Pays the active bet at `index` at `multiplier_hundredths`; `req` is the cashout
    /// request, or `None` for auto and max-profit cashouts.
    fn cash_out(&mut self, index: &(String, u8), multiplier_hundredths: u64, req: Option<String>) {
        let bet = self
            .bets
            .get_mut(index)
            .expect("only placed bets are cashed out");
        assert_eq!(bet.state, BetState::Active, "a bet is paid at most once");
        bet.state = BetState::CashedOut;
        let stake_minor = bet.stake_minor;
        if let Some(auto) = bet.auto_cashout_hundredths {
            self.auto_cashouts.remove(&(auto, index.0.clone(), index.1));
        }
        self.active_stakes_minor -= i128::from(stake_minor);
        let win_minor = payout_minor(stake_minor, multiplier_hundredths);
        self.realized_profit_minor += win_minor - stake_minor;
        self.round.totals.cashouts += 1;
        self.round.totals.won_minor += win_minor;
        let key = BetKey {
            round: self.round.number,
            player: index.0.clone(),
            slot: index.1,
        };
        self.unannounced_cashouts.offer(ListedCashout {
            player: key.player.clone(),
            slot: key.slot,
            multiplier_hundredths,
            win_minor,
        });
        let transfer = Transfer {
            id: self.transfer_id(BetTransferKind::Payout, &key),
            debit: Account::House,
            credit: Account::Player(key.player.clone()),
            amount_minor: win_minor,
            kind: TransferKind::Payout,
            multiplier_hundredths: Some(multiplier_hundredths),
        };
        let reason = CreditReason::Cashout {
            req,
            multiplier_hundredths,
            win_minor,
        };
        let notice = CreditNotice { bet: key, reason };
        self.effects.transfers.push(TransferIntent {
            transfer,
            purpose: TransferPurpose::Credit(notice),
        });
    }

    fn emit_tick(&mut self, now_ms: u64, multiplier_hundredths: u64, elapsed_ms: u64) {
        let round = self.round.number;
        let bets = self.unannounced_bets.take();
        let cashouts = self.unannounced_cashouts.take();
        self.bets_unannounced = false;
        let totals = self.public_totals();
        self.emit(|seq| RoundEvent::Tick {
            seq,
            round,
            multiplier_hundredths,
            elapsed_ms,
            at_ms: now_ms,
            bets,
            cashouts,
            totals,
        });
    }

    /// The round's totals as events carry them: only once the round has a bet.
    fn public_totals(&self) -> Option<RoundTotals> {
        (self.round.totals.bets > 0).then_some(self.round.totals)
    }

    /// Queues an event under the room's next sequence number.
    fn emit(&mut self, build: impl FnOnce(u64) -> RoundEvent) {
        let seq = self.next_seq;
        let event = build(seq);
        assert_eq!(event.seq(), seq, "events carry the room's next seq");
        assert_eq!(
            event.round(),
            self.round.number,
            "events belong to the current round"
        );
        self.next_seq = seq + 1;
        self.effects.events.push(event);
    }

    fn journal(&mut self, status: RoundStatus, ended_at_ms: Option<u64>) {
        let round = &self.round;
        self.effects.records.push(RoundRecord {
            room: self.settings.room.clone(),
            round: round.number,
            hash: round.hash.clone(),
            crash_hundredths: round.crash_hundredths,
            started_at_ms: round.started_at_ms,
            ended_at_ms,
            status,
            bets_total_minor: round.totals.staked_minor,
            payouts_total_minor: round.totals.won_minor,
        });
    }

    fn enter(&mut self, phase: RoundPhase) {
        let from = self.round.phase;
        assert!(
            phase.rank() > from.rank(),
            "round phases only move forward: {from:?} → {phase:?}"
        );
        self.round.phase = phase;
    }

    fn observe(&mut self, now_ms: u64) {
        assert!(now_ms >= self.last_now_ms, "engine time never goes back");
        self.last_now_ms = now_ms;
    }

    fn transfer_id(&self, kind: BetTransferKind, key: &BetKey) -> String {
        let bet = BetRef {
            room: self.settings.room.clone(),
            round: key.round,
            player: key.player.clone(),
            slot: key.slot,
        };
        TransferId::OfBet { kind, bet }.to_string()
    }

    fn request_key(&self, from: &ReplyTo, kind: RequestKind, req: &str) -> RequestKey {
        RequestKey {
            round: self.round.number,
            player: from.player.clone(),
            kind,
            req: req.to_owned(),
        }
    }

    /// Answers a replayed request: with its first answer, or by joining the connections
    /// waiting for it. Returns false for a request seen for the first time.
    fn answer_replay(&mut self, request: &RequestKey, from: &ReplyTo) -> bool {
        if let Some(answer) = self.replies_by_request.get(request) {
            let answer = answer.clone();
            self.effects.replies.push(Reply {
                to: from.clone(),
                answer,
            });
            return true;
        }
        if let Some(waiters) = self.waiters_by_request.get_mut(request) {
            if waiters.len() < REQUEST_WAITERS_MAX {
                waiters.push(from.clone());
            }
            return true;
        }
        false
    }

    /// Answers a request that waited for the ledger.
    fn finish_request(
        &mut self,
        round: u64,
        player: &str,
        kind: RequestKind,
        req: String,
        answer: Answer,
    ) {
        let request = RequestKey {
            round,
            player: player.to_owned(),
            kind,
            req,
        };
        let waiters = self
            .waiters_by_request
            .remove(&request)
            .expect("a request in the ledger has its sender");
        self.answer(request, waiters, answer);
    }

    /// Sends `answer` to `waiters` and remembers it as the request's answer for replays.
    fn answer(&mut self, request: RequestKey, waiters: Vec<ReplyTo>, answer: Answer) {
        for to in waiters {
            self.effects.replies.push(Reply {
                to,
                answer: answer.clone(),
            });
        }
        // The replay map holds the current round only.
        if request.round != self.round.number {
            return;
        }
        if let Some(refusal) = answer.refusal() {
            // A code that asks the client to retry with the same req is never replayed.
            if refusal.code.asks_retry()
                || self.remembered_refusals >= REPLAY_REFUSALS_PER_ROUND_MAX
            {
                return;
            }
            self.remembered_refusals += 1;
        }
        self.replies_by_request.insert(request, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "0000000000000000000000000000000000000000000000000000000000000007";
    /// Engine time at which round 1 opens.
    const T0_MS: u64 = 1_000_000;
    const BETTING_MS: u64 = 1_000;
    const RATE: u64 = 60;

    fn engine() -> EngineConfig {
        EngineConfig {
            betting_duration_ms: BETTING_MS,
            crashed_duration_ms: 500,
            tick_interval_ms: 100,
            bet_amount_min_minor: 10,
            bet_amount_max_minor: 10_000,
            auto_cashout_max_hundredths: 100_000,
            round_profit_max_minor: 1_000_000,
            command_batch_max: 64,
            growth_rate_per_ms_millionths: RATE,
            public_bets_per_tick_max: 10,
            public_cashouts_per_tick_max: 10,
            ledger_batch_timeout_ms: 1_000,
            ledger_breaker_cooldown_ms: 5_000,
        }
    }

    /// A room whose round 1 crashes at a point `wanted` accepts (found by trying salts),
    /// and that crash point.
    fn room_where(wanted: impl Fn(u64) -> bool, engine: EngineConfig) -> (RoomCore, u64) {
        let chain = Arc::new(FairChain::generate(SEED, 10).unwrap());
        let hash = chain.round_hash(1).unwrap();
        for attempt in 0..100_000 {
            let salt = format!("salt-{attempt}");
            let crash = fair::crash_point_hundredths(&hash, &salt, 100);
            if wanted(crash) {
                let settings = RoomSettings {
                    room: "test".into(),
                    salt,
                    house_edge_bp: 100,
                    engine,
                };
                return (RoomCore::new(settings, chain, 1, 1, T0_MS).unwrap(), crash);
            }
        }
        panic!("no salt gives a wanted crash point");
    }

    fn player(name: &str) -> ReplyTo {
        ReplyTo {
            gateway: "g".into(),
            connection: 1,
            player: name.into(),
        }
    }

    /// Places a bet at T0 and confirms it with a balance of 1000 after.
    fn placed(core: &mut RoomCore, name: &str, amount: i64, auto: Option<u64>, slot: u8) -> BetKey {
        placed_at(core, T0_MS, name, amount, auto, slot)
    }

    /// Places a bet at `now_ms` and confirms it with a balance of 1000 after.
    fn placed_at(
        core: &mut RoomCore,
        now_ms: u64,
        name: &str,
        amount: i64,
        auto: Option<u64>,
        slot: u8,
    ) -> BetKey {
        core.bet(
            now_ms,
            &player(name),
            &format!("bet-{name}-{slot}"),
            amount,
            auto,
            slot,
        );
        let effects = core.take_effects();
        let [intent] = effects.transfers.as_slice() else {
            panic!("expected one stake: {effects:?}");
        };
        let TransferPurpose::Stake(key) = &intent.purpose else {
            panic!("expected a stake: {intent:?}");
        };
        let key = key.clone();
        core.confirm_bet(&key, 1_000);
        core.take_effects();
        key
    }

    /// Starts the flight; returns its start time.
    fn fly(core: &mut RoomCore) -> u64 {
        let started_at_ms = T0_MS + BETTING_MS;
        core.advance(started_at_ms).unwrap();
        assert!(matches!(core.phase(), RoundPhase::Flying { .. }));
        started_at_ms
    }

    fn only_reply(core: &mut RoomCore) -> Answer {
        let effects = core.take_effects();
        assert_eq!(effects.replies.len(), 1, "{effects:?}");
        effects.replies[0].answer.clone()
    }

    fn refusal(answer: &Answer) -> RefusalCode {
        match answer.refusal() {
            Some(refusal) => refusal.code,
            None => panic!("not a refusal: {answer:?}"),
        }
    }

    /// (id, amount) of the payouts and refunds in `effects`.
    fn credits(effects: &Effects) -> Vec<(String, i64)> {
        let credits = effects.transfers.iter();
        let credits = credits.filter(|intent| matches!(intent.purpose, TransferPurpose::Credit(_)));
        credits
            .map(|intent| (intent.transfer.id.clone(), intent.transfer.amount_minor))
            .collect()
    }

    /// (player, multiplier) of the cashouts decided in `effects`, from their payouts:
    /// what the engine pays, listed publicly or not.
    fn cashout_multipliers(effects: &Effects) -> Vec<(String, u64)> {
        let mut cashouts = Vec::new();
        for intent in &effects.transfers {
            if let TransferPurpose::Credit(CreditNotice {
                bet,
                reason:
                    CreditReason::Cashout {
                        multiplier_hundredths,
                        ..
                    },
                ..
            }) = &intent.purpose
            {
                cashouts.push((bet.player.clone(), *multiplier_hundredths));
            }
        }
        cashouts
    }

    #[test]
    fn multiplier_curve_values() {
        assert_eq!(multiplier_at(0, RATE), 100);
        assert_eq!(multiplier_at(1_000, RATE), 106);
        assert_eq!(multiplier_at(11_552, RATE), 199);
        assert_eq!(multiplier_at(11_553, RATE), 200);
        assert_eq!(elapsed_to_reach_ms(100, RATE), 0);
        assert_eq!(elapsed_to_reach_ms(200, RATE), 11_553);
        let mut previous = 0;
        for elapsed_ms in (0..600_000).step_by(7) {
            let multiplier = multiplier_at(elapsed_ms, RATE);
            assert!(multiplier >= previous, "the curve never goes down");
            previous = multiplier;
        }
        for target in [101, 150, 1_000, 123_456, 4_000_000_000_000] {
            let elapsed_ms = elapsed_to_reach_ms(target, RATE);
            assert!(multiplier_at(elapsed_ms, RATE) >= target);
            assert!(multiplier_at(elapsed_ms - 1, RATE) < target);
        }
    }

    #[test]
    fn bets_only_while_betting_and_cashouts_only_while_flying() {
        let (mut core, _) = room_where(|crash| crash >= 200, engine());
        core.cashout(T0_MS + 10, &player("a"), "c1", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        // Betting ends at T0 + BETTING_MS even before `advance` has seen it.
        core.bet(T0_MS + BETTING_MS, &player("a"), "b1", 100, None, 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.bet(started_at_ms + 5, &player("a"), "b2", 100, None, 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        core.cashout(started_at_ms + 5, &player("a"), "c2", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::NoActiveBet);
    }

    #[test]
    fn two_slots_per_player_and_a_taken_slot_is_refused() {
        let (mut core, _) = room_where(|_| true, engine());
        placed(&mut core, "a", 100, None, 0);
        placed(&mut core, "a", 200, None, 1);
        core.bet(T0_MS, &player("a"), "again", 100, None, 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
        core.bet(T0_MS, &player("a"), "third", 100, None, 2);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::InvalidField);
        // A pending (unconfirmed) stake holds its slot too.
        core.bet(T0_MS, &player("b"), "p1", 100, None, 0);
        core.take_effects();
        core.bet(T0_MS, &player("b"), "p2", 100, None, 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
    }

    #[test]
    fn stake_and_auto_cashout_limits() {
        let (mut core, _) = room_where(|_| true, engine());
        let refused = [
            (9, None),
            (10_001, None),
            (100, Some(100)),
            (100, Some(100_001)),
        ];
        for (index, (amount, auto)) in refused.into_iter().enumerate() {
            core.bet(T0_MS, &player("a"), &format!("r{index}"), amount, auto, 0);
            assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::InvalidField);
        }
        placed(&mut core, "a", 10, Some(101), 0);
        placed(&mut core, "a", 10_000, Some(100_000), 1);
    }

    #[test]
    fn a_replayed_request_gets_exactly_the_first_reply() {
        let (mut core, _) = room_where(|_| true, engine());
        let other_connection = ReplyTo {
            connection: 2,
            ..player("a")
        };
        core.bet(T0_MS, &player("a"), "r1", 100, None, 0);
        let stake = core.take_effects().transfers.remove(0);
        // Replayed while the ledger has the stake: answered together with the first.
        core.bet(T0_MS, &other_connection, "r1", 100, None, 0);
        assert!(core.take_effects().replies.is_empty());
        let TransferPurpose::Stake(key) = stake.purpose else {
            panic!("a stake")
        };
        core.confirm_bet(&key, 900);
        let replies = core.take_effects().replies;
        assert_eq!(replies.len(), 2);
        assert_eq!(replies[0].answer, replies[1].answer);
        assert_eq!(replies[1].to, other_connection);
        // Replayed later, even with other fields: the first reply again, nothing moves.
        core.bet(T0_MS + 1, &player("a"), "r1", 555, None, 1);
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty());
        assert_eq!(effects.replies[0].answer, replies[0].answer);
        // A refusal is replayed as it was, though the request would now be valid.
        core.bet(T0_MS + 2, &player("a"), "r2", 1, None, 1);
        let first = only_reply(&mut core);
        core.bet(T0_MS + 3, &player("a"), "r2", 100, None, 1);
        assert_eq!(only_reply(&mut core), first);
        // An internal fault is not remembered: the retry with the same req goes through.
        core.bet(T0_MS + 4, &player("a"), "r3", 100, None, 1);
        let key = BetKey {
            round: 1,
            player: "a".into(),
            slot: 1,
        };
        core.take_effects();
        core.reject_bet(&key, RefusalCode::Internal);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::Internal);
        core.bet(T0_MS + 5, &player("a"), "r3", 100, None, 1);
        assert_eq!(core.take_effects().transfers.len(), 1);
    }

    #[test]
    fn a_bet_and_a_cashout_sharing_a_req_are_two_requests() {
        let (mut core, _) = room_where(|crash| crash >= 300, engine());
        core.bet(T0_MS, &player("a"), "same", 100, None, 0);
        let TransferPurpose::Stake(key) = core.take_effects().transfers.remove(0).purpose else {
            panic!("a stake")
        };
        core.confirm_bet(&key, 900);
        assert!(matches!(only_reply(&mut core), Answer::BetAccepted { .. }));
        let started_at_ms = fly(&mut core);
        core.take_effects();

        // Not the bet's reply replayed: the cashout is made.
        core.cashout(started_at_ms + 1_000, &player("a"), "same", 0);
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:a:0".to_owned(), 106)]
        );
        let TransferPurpose::Credit(notice) = &effects.transfers[0].purpose else {
            panic!("a credit")
        };
        core.credit_committed(notice, 1_006);
        let cashout_ok = only_reply(&mut core);
        assert!(matches!(
            cashout_ok,
            Answer::CashedOut {
                multiplier_hundredths: 106,
                ..
            }
        ));
        // Each is replayed as itself.
        core.cashout(started_at_ms + 1_100, &player("a"), "same", 0);
        assert_eq!(only_reply(&mut core), cashout_ok);
        core.bet(started_at_ms + 1_100, &player("a"), "same", 100, None, 0);
        assert!(matches!(
            only_reply(&mut core),
            Answer::BetAccepted {
                balance_after_minor: 900,
                ..
            }
        ));
    }

    #[test]
    fn insufficient_funds_frees_the_slot() {
        let (mut core, _) = room_where(|_| true, engine());
        core.bet(T0_MS, &player("a"), "poor", 5_000, None, 0);
        let TransferPurpose::Stake(key) = core.take_effects().transfers.remove(0).purpose else {
            panic!("a stake")
        };
        core.reject_bet(&key, RefusalCode::InsufficientFunds);
        assert_eq!(
            refusal(&only_reply(&mut core)),
            RefusalCode::InsufficientFunds
        );
        core.bet(T0_MS, &player("a"), "poor", 5_000, None, 0);
        assert_eq!(
            refusal(&only_reply(&mut core)),
            RefusalCode::InsufficientFunds
        );
        placed(&mut core, "a", 100, None, 0);
    }

    #[test]
    fn a_cashout_pays_the_engine_multiplier_floored() {
        let (mut core, _) = room_where(|crash| crash >= 300, engine());
        placed(&mut core, "a", 333, None, 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.cashout(started_at_ms + 1_000, &player("a"), "out", 0);
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:a:0".to_owned(), 352)]
        );
        let TransferPurpose::Credit(notice) = &effects.transfers[0].purpose else {
            panic!("a credit")
        };
        core.credit_committed(notice, 1_352);
        let reply = only_reply(&mut core);
        let expected = Answer::CashedOut {
            req: "out".into(),
            round: 1,
            slot: 0,
            multiplier_hundredths: 106,
            win_minor: 352,
            balance_after_minor: 1_352,
        };
        assert_eq!(reply, expected);
        core.cashout(started_at_ms + 2_000, &player("a"), "out", 0);
        assert_eq!(only_reply(&mut core), expected);
        core.cashout(started_at_ms + 2_000, &player("a"), "out-again", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::NoActiveBet);
    }

    #[test]
    fn a_cashout_after_the_crash_is_too_late() {
        let (mut core, crash) = room_where(|crash| (120..=300).contains(&crash), engine());
        placed(&mut core, "a", 100, None, 0);
        placed(&mut core, "a", 100, None, 1);
        let started_at_ms = fly(&mut core);
        let crash_at_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE);
        // The crash instant has come, though `advance` has not run yet.
        core.cashout(crash_at_ms, &player("a"), "late-1", 1);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::TooLate);
        core.advance(crash_at_ms).unwrap();
        assert!(matches!(core.phase(), RoundPhase::Crashed { .. }));
        core.take_effects();
        core.cashout(crash_at_ms + 1, &player("a"), "late-0", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::TooLate);
        core.cashout(crash_at_ms + 1, &player("b"), "none", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
    }

    #[test]
    fn auto_cashout_pays_exactly_its_target_across_a_skipped_tick() {
        let (mut core, _) = room_where(|crash| crash >= 400, engine());
        placed(&mut core, "a", 1_000, Some(150), 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        // One wake-up far past 1.50x: no tick in between saw 1.50x.
        core.advance(started_at_ms + elapsed_to_reach_ms(300, RATE))
            .unwrap();
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:a:0".to_owned(), 1_500)]
        );
        let TransferPurpose::Credit(notice) = &effects.transfers[0].purpose else {
            panic!("a credit")
        };
        core.credit_committed(notice, 2_500);
        // The player learns the price privately (the public feed may not list it), on
        // every socket it holds: it may have reconnected elsewhere since the bet.
        let effects = core.take_effects();
        let [Reply { to, answer }] = &effects.replies[..] else {
            panic!("one reply: {effects:?}")
        };
        assert_eq!(to, &ReplyTo::every_socket_of("a"));
        let cashout = EngineCashout {
            round: 1,
            slot: 0,
            multiplier_hundredths: 150,
            win_minor: 1_500,
        };
        assert_eq!(
            answer,
            &Answer::BalanceChanged {
                balance_minor: 2_500,
                cashout: Some(cashout),
            }
        );
    }

    #[test]
    fn an_auto_cashout_at_or_above_the_crash_point_loses() {
        let (mut core, crash) = room_where(|crash| (150..=1_000).contains(&crash), engine());
        placed(&mut core, "at", 100, Some(crash), 0);
        placed(&mut core, "below", 100, Some(crash - 1), 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.advance(started_at_ms + elapsed_to_reach_ms(crash, RATE))
            .unwrap();
        let effects = core.take_effects();
        let win = payout_minor(100, crash - 1);
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:below:0".to_owned(), win)]
        );
        let Some(RoundEvent::Crashed {
            crash_hundredths: m,
            hash,
            cashouts,
            ..
        }) = effects.events.last()
        else {
            panic!("a crash: {effects:?}")
        };
        assert_eq!(*m, crash);
        assert_eq!(
            hash,
            &FairChain::generate(SEED, 10)
                .unwrap()
                .round_hash(1)
                .unwrap()
        );
        assert_eq!(cashouts.len(), 1);
        assert_eq!(
            (
                cashouts[0].player.as_str(),
                cashouts[0].multiplier_hundredths
            ),
            ("below", crash - 1)
        );
    }

    #[test]
    fn max_profit_cashes_everyone_out_at_the_cap_multiplier() {
        let capped = EngineConfig {
            round_profit_max_minor: 1_000,
            ..engine()
        };
        let (mut core, _) = room_where(|crash| crash >= 300, capped);
        placed(&mut core, "auto", 1_000, Some(120), 0);
        placed(&mut core, "a", 1_000, None, 0);
        placed(&mut core, "b", 1_000, None, 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.advance(started_at_ms + elapsed_to_reach_ms(200, RATE))
            .unwrap();
        let effects = core.take_effects();
        // At 1.20x the profit is 600 ≤ 1000: "auto" is paid 1200 (realized 200). At 2.00x
        // it would be 200 + 2000 > 1000: m* = 100 + (1000 − 200) · 100 / 2000 = 140.
        let expected = vec![
            ("payout:test:1:auto:0".to_owned(), 1_200),
            ("payout:test:1:a:0".to_owned(), 1_400),
            ("payout:test:1:b:0".to_owned(), 1_400),
        ];
        assert_eq!(credits(&effects), expected);
        let multipliers: Vec<u64> = cashout_multipliers(&effects)
            .into_iter()
            .map(|(_, m)| m)
            .collect();
        assert_eq!(multipliers, vec![120, 140, 140]);
        core.cashout(
            started_at_ms + elapsed_to_reach_ms(210, RATE),
            &player("a"),
            "late",
            0,
        );
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::NoActiveBet);
    }

    #[test]
    fn abort_pays_reached_targets_and_refunds_the_rest() {
        let (mut core, _) = room_where(|crash| crash >= 500, engine());
        placed(&mut core, "auto", 1_000, Some(110), 0);
        placed(&mut core, "open", 500, None, 0);
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.abort(started_at_ms + elapsed_to_reach_ms(130, RATE) - 1);
        let effects = core.take_effects();
        let expected = vec![
            ("payout:test:1:auto:0".to_owned(), 1_100),
            ("refund:test:1:open:0".to_owned(), 500),
        ];
        assert_eq!(credits(&effects), expected);
        assert_eq!(effects.records.last().unwrap().status, RoundStatus::Aborted);
        assert_eq!(core.phase(), RoundPhase::Aborted);
        assert_eq!(core.next_deadline_ms(), None);
        core.cashout(started_at_ms + 20_000, &player("open"), "c", 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
    }

    #[test]
    fn seq_is_contiguous_and_phases_only_move_forward() {
        let (mut core, crash) = room_where(|crash| (101..=250).contains(&crash), engine());
        let opening = core.take_effects();
        let mut events = opening.events;
        let mut records = opening.records;
        placed(&mut core, "a", 100, None, 0);
        let mut now_ms = T0_MS;
        while core.round_number() < 3 {
            now_ms += 37;
            core.advance(now_ms).unwrap();
            let effects = core.take_effects();
            events.extend(effects.events);
            records.extend(effects.records);
            assert!(now_ms < T0_MS + 3_600_000, "three rounds within an hour");
        }
        for (index, event) in events.iter().enumerate() {
            assert_eq!(event.seq(), index as u64 + 1);
        }
        // (round, phase rank) never goes back; a round opens with betting.
        let mut position = (0, 0);
        for event in &events {
            let rank = match event {
                RoundEvent::BettingOpened { .. } => 0,
                RoundEvent::Tick {
                    elapsed_ms: 0,
                    multiplier_hundredths: 100,
                    ..
                } if position.1 == 0 => 0,
                RoundEvent::FlightStarted { .. } | RoundEvent::Tick { .. } => 1,
                RoundEvent::Crashed { .. } => 2,
            };
            let next = (event.round(), rank);
            assert!(next >= position, "{next:?} after {position:?}");
            assert!(
                next.0 == position.0 || rank == 0,
                "a round opens with betting"
            );
            position = next;
        }
        assert!(matches!(events[1], RoundEvent::Tick { ref bets, .. } if bets.len() == 1));
        assert!(matches!(
            events[2],
            RoundEvent::FlightStarted { round: 1, .. }
        ));
        let crash_event = events
            .iter()
            .find(|event| matches!(event, RoundEvent::Crashed { .. }));
        assert!(
            matches!(crash_event, Some(RoundEvent::Crashed { crash_hundredths, .. }) if *crash_hundredths == crash)
        );
        let statuses: Vec<RoundStatus> =
            records.iter().take(4).map(|record| record.status).collect();
        let expected = [
            RoundStatus::Betting,
            RoundStatus::Flying,
            RoundStatus::Crashed,
            RoundStatus::Betting,
        ];
        assert_eq!(statuses, expected);
        assert_eq!((records[2].round, records[2].bets_total_minor), (1, 100));
    }

    #[test]
    fn the_end_of_the_chain_stops_the_room() {
        let chain = Arc::new(FairChain::generate(SEED, 1).unwrap());
        let settings = RoomSettings {
            room: "test".into(),
            salt: "s".into(),
            house_edge_bp: 100,
            engine: engine(),
        };
        let beyond = RoomCore::new(settings.clone(), chain.clone(), 2, 1, T0_MS);
        assert_eq!(beyond.err(), Some(ChainExhausted { round: 2 }));
        let mut core = RoomCore::new(settings, chain, 1, 1, T0_MS).unwrap();
        // Round 1 flies, then one wake-up far in the future crashes it.
        fly(&mut core);
        core.advance(T0_MS + 10_000_000).unwrap();
        assert!(matches!(core.phase(), RoundPhase::Crashed { .. }));
        assert_eq!(
            core.advance(T0_MS + 10_000_500),
            Err(ChainExhausted { round: 2 })
        );
    }

    /// A flight left by a dead leader in the room of `core` (round 1, started at the end
    /// of its betting): alice 1000 auto 1.50x open, bob 500 auto 1.20x paid, carol 200
    /// without auto open.
    fn left_in_flight(core: &RoomCore, crash: u64) -> RoundInFlight {
        let open = |player: &str, stake_minor, auto| BetInFlight {
            player: player.into(),
            slot: 0,
            stake_minor,
            auto_cashout_hundredths: auto,
            stake_balance_after_minor: 10_000 - stake_minor,
            settled: BetSettled::Open,
        };
        let record = RoundRecord {
            room: "test".into(),
            round: 1,
            hash: core.chain.round_hash(1).unwrap(),
            crash_hundredths: crash,
            started_at_ms: T0_MS + BETTING_MS,
            ended_at_ms: None,
            status: RoundStatus::Flying,
            bets_total_minor: 1_700,
            payouts_total_minor: 600,
        };
        let bets = vec![
            open("alice", 1_000, Some(150)),
            BetInFlight {
                settled: BetSettled::PaidOut {
                    multiplier_hundredths: 120,
                    win_minor: 600,
                    balance_after_minor: 10_100,
                },
                ..open("bob", 500, Some(120))
            },
            open("carol", 200, None),
        ];
        RoundInFlight {
            record,
            bets,
            announced_betting_end_ms: None,
            announced_flying: false,
        }
    }

    #[test]
    fn a_resumed_flight_pays_what_it_reached_once_and_crashes_on_its_chain() {
        let (original, crash) = room_where(|crash| crash >= 300, engine());
        let started_at_ms = T0_MS + BETTING_MS;
        let now_ms = started_at_ms + elapsed_to_reach_ms(200, RATE);
        let in_flight = left_in_flight(&original, crash);
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 41, now_ms).unwrap();
        let announced = core.take_effects();
        assert_eq!(
            announced.events,
            vec![RoundEvent::FlightStarted {
                seq: 41,
                round: 1,
                started_at_ms
            }]
        );

        core.advance(now_ms).unwrap();
        let effects = core.take_effects();
        // alice's 1.50x was reached while no engine led: paid at exactly 1.50x; bob's
        // payout is already in the ledger and is not made again.
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:alice:0".into(), 1_500)]
        );
        assert!(matches!(
            effects.events[..],
            [RoundEvent::Tick {
                seq: 42,
                multiplier_hundredths: 200,
                ..
            }]
        ));
        let payout = &effects.transfers[0].transfer;
        assert_eq!(payout.multiplier_hundredths, Some(150));

        core.cashout(now_ms, &player("carol"), "c1", 0);
        let effects = core.take_effects();
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:carol:0".into(), 400)]
        );

        let crash_at_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE);
        core.advance(crash_at_ms).unwrap();
        let effects = core.take_effects();
        assert!(credits(&effects).is_empty());
        assert!(
            matches!(effects.events.last(), Some(RoundEvent::Crashed { crash_hundredths, .. }) if *crash_hundredths == crash)
        );
        let record = effects.records.last().unwrap();
        assert_eq!(record.status, RoundStatus::Crashed);
        assert_eq!(record.bets_total_minor, 1_700);
        assert_eq!(record.payouts_total_minor, 600 + 1_500 + 400);
    }

    #[test]
    fn a_command_the_previous_leader_took_is_answered_with_what_the_ledger_holds() {
        let (original, crash) = room_where(|crash| crash >= 300, engine());
        let now_ms = T0_MS + BETTING_MS + 50;
        let in_flight = left_in_flight(&original, crash);
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 41, now_ms).unwrap();
        core.take_effects();

        // bob's cashout was paid before the leader died: its reply, nothing paid again.
        core.cashout(now_ms, &player("bob"), "out", 0);
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty());
        let cashout_ok = Answer::CashedOut {
            req: "out".into(),
            round: 1,
            slot: 0,
            multiplier_hundredths: 120,
            win_minor: 600,
            balance_after_minor: 10_100,
        };
        assert_eq!(effects.replies[0].answer, cashout_ok);
        core.cashout(now_ms + 1, &player("bob"), "out", 0);
        assert_eq!(only_reply(&mut core), cashout_ok);
        // alice's bet was taken: bet_ok with the balance after her stake, though betting
        // is over.
        core.bet(now_ms + 1, &player("alice"), "in", 1_000, Some(150), 0);
        let effects = core.take_effects();
        assert!(effects.transfers.is_empty());
        let bet_ok = Answer::BetAccepted {
            req: "in".into(),
            round: 1,
            slot: 0,
            stake_minor: 1_000,
            auto_cashout_hundredths: Some(150),
            balance_after_minor: 9_000,
        };
        assert_eq!(effects.replies[0].answer, bet_ok);
        // Other terms are another bet, refused as any; an open bet is cashed out as usual.
        core.bet(now_ms + 1, &player("carol"), "in", 300, None, 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::WrongPhase);
        core.cashout(now_ms + 1, &player("carol"), "out", 0);
        assert_eq!(credits(&core.take_effects()).len(), 1);
    }

    #[test]
    fn a_phase_the_previous_leader_announced_is_not_announced_again() {
        let (original, crash) = room_where(|crash| crash >= 300, engine());
        let mut flying = left_in_flight(&original, crash);
        flying.announced_flying = true;
        let now_ms = T0_MS + BETTING_MS + 50;
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core =
            RoomCore::resume(settings.clone(), chain.clone(), flying, 9, now_ms).unwrap();
        assert!(core.take_effects().events.is_empty());
        core.advance(now_ms).unwrap();
        assert!(matches!(
            core.take_effects().events[..],
            [RoundEvent::Tick { seq: 9, .. }]
        ));

        let mut betting = left_in_flight(&original, crash);
        betting.record.status = RoundStatus::Betting;
        betting.bets.retain(|bet| bet.settled == BetSettled::Open);
        betting.announced_betting_end_ms = Some(T0_MS + BETTING_MS);
        let mut core = RoomCore::resume(settings, chain, betting, 9, T0_MS + 300).unwrap();
        assert!(core.take_effects().events.is_empty());
        // The announced end holds: the flight starts when the players were told.
        core.advance(T0_MS + BETTING_MS).unwrap();
        assert!(matches!(
            core.take_effects().events[..],
            [.., RoundEvent::FlightStarted { seq: 9, .. }]
        ));
    }

    #[test]
    fn a_flight_resumed_past_its_crash_point_crashes_at_once() {
        let (original, crash) = room_where(|crash| (160..300).contains(&crash), engine());
        let started_at_ms = T0_MS + BETTING_MS;
        let now_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE) + 5_000;
        let in_flight = left_in_flight(&original, crash);
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 1, now_ms).unwrap();
        core.advance(now_ms).unwrap();
        let effects = core.take_effects();
        // alice's target is below the crash point: the flight reached it.
        assert_eq!(
            credits(&effects),
            vec![("payout:test:1:alice:0".into(), 1_500)]
        );
        assert!(
            matches!(effects.events.last(), Some(RoundEvent::Crashed { crash_hundredths, .. }) if *crash_hundredths == crash)
        );
        assert!(matches!(core.phase(), RoundPhase::Crashed { .. }));
    }

    #[test]
    fn resuming_refuses_a_round_of_another_chain() {
        let (original, crash) = room_where(|_| true, engine());
        let mut in_flight = left_in_flight(&original, crash);
        in_flight.record.hash = fair::sha256_hex("another chain");
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let error = RoomCore::resume(settings, chain, in_flight, 1, T0_MS).err();
        assert_eq!(error, Some(ResumeError::ChainMismatch { round: 1 }));
    }

    #[test]
    fn a_resumed_betting_phase_keeps_its_bets_and_reopens_for_a_full_period() {
        let (original, crash) = room_where(|_| true, engine());
        let mut in_flight = left_in_flight(&original, crash);
        in_flight.record.status = RoundStatus::Betting;
        in_flight.record.started_at_ms = 0;
        in_flight.bets.retain(|bet| bet.settled == BetSettled::Open);
        let now_ms = T0_MS + 300;
        let (settings, chain) = (original.settings.clone(), original.chain.clone());
        let mut core = RoomCore::resume(settings, chain, in_flight, 7, now_ms).unwrap();
        let effects = core.take_effects();
        assert!(matches!(
            effects.events[..],
            [RoundEvent::BettingOpened { seq: 7, round: 1, ends_at_ms }] if ends_at_ms == now_ms + BETTING_MS
        ));
        core.bet(now_ms, &player("alice"), "again", 100, None, 0);
        assert_eq!(refusal(&only_reply(&mut core)), RefusalCode::SlotTaken);
    }

    /// The bets and cashouts events list, and the totals of the last event carrying them.
    fn public_lists(events: &[RoundEvent]) -> Vec<(Vec<ListedBet>, Vec<ListedCashout>)> {
        events
            .iter()
            .filter_map(|event| match event {
                RoundEvent::Tick { bets, cashouts, .. } => Some((bets.clone(), cashouts.clone())),
                RoundEvent::Crashed { cashouts, .. } => Some((Vec::new(), cashouts.clone())),
                _ => None,
            })
            .collect()
    }

    fn event_totals(event: &RoundEvent) -> Option<RoundTotals> {
        match event {
            RoundEvent::Tick { totals, .. } | RoundEvent::Crashed { totals, .. } => *totals,
            _ => None,
        }
    }

    #[test]
    fn a_tick_lists_the_largest_bets_since_the_last_tick_and_counts_them_all() {
        let listed_max = EngineConfig {
            public_bets_per_tick_max: 3,
            ..engine()
        };
        let (mut core, _) = room_where(|crash| crash >= 200, listed_max);
        core.take_effects();
        let first = [("a", 50), ("b", 500), ("c", 50), ("d", 10), ("e", 200)];
        for (name, amount) in first {
            placed(&mut core, name, amount, None, 0);
        }
        core.advance(T0_MS + 100).unwrap();
        let tick = core.take_effects().events;
        let [RoundEvent::Tick { bets, totals, .. }] = tick.as_slice() else {
            panic!("one betting tick: {tick:?}");
        };
        let listed: Vec<(&str, i64)> = bets
            .iter()
            .map(|bet| (bet.player.as_str(), bet.stake_minor))
            .collect();
        // Largest first; of the two 50s the one confirmed first.
        assert_eq!(listed, [("b", 500), ("e", 200), ("a", 50)]);
        let expected = RoundTotals {
            bets: 5,
            staked_minor: 810,
            cashouts: 0,
            won_minor: 0,
        };
        assert_eq!(*totals, Some(expected));
        // The next tick chooses among the bets since this one only: small ones show.
        placed_at(&mut core, T0_MS + 150, "f", 20, None, 0);
        placed_at(&mut core, T0_MS + 150, "g", 10, None, 0);
        core.advance(T0_MS + 200).unwrap();
        let tick = core.take_effects().events;
        let [RoundEvent::Tick { bets, totals, .. }] = tick.as_slice() else {
            panic!("one betting tick: {tick:?}");
        };
        assert_eq!(
            bets.iter().map(|bet| bet.stake_minor).collect::<Vec<_>>(),
            [20, 10]
        );
        assert_eq!(
            totals.map(|totals| (totals.bets, totals.staked_minor)),
            Some((7, 840))
        );
        // No new bet, no betting tick.
        core.advance(T0_MS + 300).unwrap();
        assert!(core.take_effects().events.is_empty());
    }

    #[test]
    fn a_room_that_lists_nothing_still_ticks_its_totals() {
        let unlisted = EngineConfig {
            public_bets_per_tick_max: 0,
            public_cashouts_per_tick_max: 0,
            ..engine()
        };
        let (mut core, _) = room_where(|crash| crash >= 200, unlisted);
        core.take_effects();
        placed(&mut core, "a", 100, Some(150), 0);
        core.advance(T0_MS + 100).unwrap();
        let tick = core.take_effects().events;
        let [RoundEvent::Tick { bets, totals, .. }] = tick.as_slice() else {
            panic!("one betting tick: {tick:?}");
        };
        assert!(bets.is_empty());
        assert_eq!(totals.map(|totals| totals.bets), Some(1));
        let started_at_ms = fly(&mut core);
        core.take_effects();
        core.advance(started_at_ms + elapsed_to_reach_ms(160, RATE))
            .unwrap();
        let events = core.take_effects().events;
        let totals = events.iter().rev().find_map(event_totals).unwrap();
        assert_eq!((totals.cashouts, totals.won_minor), (1, 150));
        assert!(
            public_lists(&events)
                .iter()
                .all(|(_, cashouts)| cashouts.is_empty())
        );
    }

    #[test]
    fn a_round_without_bets_carries_no_totals() {
        let (mut core, crash) = room_where(|crash| (120..=300).contains(&crash), engine());
        let started_at_ms = fly(&mut core);
        core.advance(started_at_ms + elapsed_to_reach_ms(crash, RATE))
            .unwrap();
        let events = core.take_effects().events;
        assert!(matches!(events.last(), Some(RoundEvent::Crashed { .. })));
        assert!(events.iter().all(|event| event_totals(event).is_none()));
    }

    /// Many players, stakes and exits: every event lists at most the configured
    /// numbers, largest first; the totals only grow and the crash's are exact.
    #[test]
    fn totals_are_exact_over_a_round_with_many_bets() {
        const PLAYERS: usize = 600;
        const LISTED_MAX: usize = 7;
        let listed_max = EngineConfig {
            public_bets_per_tick_max: LISTED_MAX,
            public_cashouts_per_tick_max: LISTED_MAX,
            ..engine()
        };
        let (mut core, crash) = room_where(|crash| (300..=2_000).contains(&crash), listed_max);
        let mut events = core.take_effects().events;
        let mut payouts = Vec::new();
        let (mut staked, mut bets) = (0, 0);
        for index in 0..PLAYERS {
            let name = format!("p{index}");
            // A spread of stakes with many ties; a third cash out automatically.
            let amount = 10 + (index as i64 * 37) % 900;
            let auto = (index % 3 == 0).then_some(101 + (index as u64 * 13) % 400);
            let slot = (index % 2) as u8;
            let now_ms = T0_MS + (index as u64 * BETTING_MS) / PLAYERS as u64;
            core.advance(now_ms).unwrap();
            core.bet(now_ms, &player(&name), "b", amount, auto, slot);
            let effects = core.take_effects();
            events.extend(effects.events);
            let TransferPurpose::Stake(key) = &effects.transfers[0].purpose else {
                panic!("a stake")
            };
            core.confirm_bet(key, 1_000);
            core.take_effects();
            staked += amount;
            bets += 1;
        }
        let started_at_ms = fly(&mut core);
        let crash_at_ms = started_at_ms + elapsed_to_reach_ms(crash, RATE);
        let mut now_ms = started_at_ms;
        while now_ms < crash_at_ms {
            // Every fifth player without an auto cashes out by hand, spread over the flight.
            let index = ((now_ms - started_at_ms) / 7) as usize * 5;
            if index < PLAYERS && index % 3 != 0 {
                let slot = (index % 2) as u8;
                core.cashout(now_ms, &player(&format!("p{index}")), "c", slot);
            }
            core.advance(now_ms).unwrap();
            let effects = core.take_effects();
            events.extend(effects.events);
            payouts.extend(effects.transfers);
            now_ms += 7;
        }
        core.advance(crash_at_ms).unwrap();
        let effects = core.take_effects();
        events.extend(effects.events);
        payouts.extend(effects.transfers);
        let records = effects.records;
        assert!(matches!(events.last(), Some(RoundEvent::Crashed { .. })));

        let won: i64 = payouts
            .iter()
            .map(|intent| intent.transfer.amount_minor)
            .sum();
        let expected = RoundTotals {
            bets,
            staked_minor: staked,
            cashouts: payouts.len() as u64,
            won_minor: won,
        };
        assert!(expected.cashouts > 2 * LISTED_MAX as u64, "{expected:?}");
        assert_eq!(event_totals(events.last().unwrap()), Some(expected));
        let journal = records.last().unwrap();
        assert_eq!(
            (journal.bets_total_minor, journal.payouts_total_minor),
            (staked, won)
        );
        let mut previous = RoundTotals::default();
        for totals in events.iter().filter_map(event_totals) {
            assert!(totals.bets >= previous.bets && totals.staked_minor >= previous.staked_minor);
            assert!(totals.cashouts >= previous.cashouts && totals.won_minor >= previous.won_minor);
            previous = totals;
        }
        let lists = public_lists(&events);
        let listed_bets: usize = lists.iter().map(|(bets, _)| bets.len()).sum();
        assert!(listed_bets < PLAYERS, "the feed is bounded");
        for (bets, cashouts) in lists {
            assert!(bets.len() <= LISTED_MAX && cashouts.len() <= LISTED_MAX);
            assert!(
                bets.windows(2)
                    .all(|pair| pair[0].stake_minor >= pair[1].stake_minor)
            );
            assert!(
                cashouts
                    .windows(2)
                    .all(|pair| pair[0].win_minor >= pair[1].win_minor)
            );
        }
    }
}
