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
//! # Files
//! `mod.rs` holds [`RoomCore`], its state and the phase loop (ticks, flight, crash, the
//! next round, abort, events and journal records); `impl RoomCore` continues in `bets`
//! (placing bets), `cancel` (a bet taken back while betting is open), `chat` (a
//! player's message posted to the room, and the chat rate limit), `cashout`
//! (cashouts, auto-cashouts, everyone at the cap), `resume`
//! (a round taken over from a previous leader) and `requests` (answers and replays). The
//! pure parts are `curve` (the multiplier), `cap` (the max-profit cap) and `replay` (the
//! [`replay::ReplayMap`]); `types` holds the data they share. No file of the folder imports
//! `mod.rs`'s neighbours back.

mod bets;
mod cancel;
mod cap;
mod cashout;
mod chat;
mod controls;
mod curve;
mod replay;
mod requests;
mod resume;
#[cfg(test)]
mod test_support;
mod types;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use crate::fair::FairChain;
use crate::feed::Largest;
use crate::ledger::{
    Account, BetRef, BetTransferKind, RoundRecord, RoundStatus, Transfer, TransferId, TransferKind,
};

use super::event::{ListedBet, ListedCashout, RoundEvent, RoundTotals};
use replay::ReplayMap;

pub use chat::CHAT_PLAYERS_TRACKED_MAX;
pub use controls::{ControlChange, set_limits};

use curve::next_tick_after;
pub use curve::{elapsed_to_reach_ms, multiplier_at};
pub use replay::{REPLAY_REFUSALS_PER_ROUND_MAX, REQUEST_WAITERS_MAX};
pub use types::{
    AUTO_CASHOUT_MIN_HUNDREDTHS, BetInFlight, BetKey, BetSettled, BetTerms, CashoutBy,
    ChainExhausted, CreditNotice, CreditReason, Effects, ROUND_BETS_MAX, ResumeError, RoomSettings,
    RoundInFlight, RoundPhase, SLOTS_PER_PLAYER, TransferIntent, TransferPurpose,
};
use types::{Bet, BetState, MULTIPLIER_START_HUNDREDTHS, RoundState};

/// Phase changes one `advance` can make: Betting → Flying → Crashed (instant crash) →
/// Betting. A betting phase lasts at least 1 ms, which ends the chain.
const PHASE_CHANGES_PER_ADVANCE_MAX: usize = 3;

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
    /// The round's answered requests and those waiting for the ledger.
    replay: ReplayMap,
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
    /// An operator paused the room: the round in flight finishes, no new one opens.
    paused: bool,
    /// Limits an operator set for the next round; they replace the settings' when it opens.
    next_limits: Option<crate::ledger::RoomLimits>,
    /// Each player's chat rate (see `chat`), kept across rounds.
    chat_rates: chat::ChatRates,
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

    /// A paused room at `now_ms`, resting after round `first_round − 1`: it opens
    /// `first_round` once resumed. Announces the pause as event `first_seq`.
    pub fn paused(
        settings: RoomSettings,
        chain: Arc<FairChain>,
        first_round: u64,
        first_seq: u64,
        now_ms: u64,
    ) -> RoomCore {
        assert!(first_round >= 1 && first_seq >= 1);
        let round = RoundState::rested(first_round - 1, now_ms);
        let mut core = RoomCore::with_round(settings, chain, round, now_ms);
        core.next_seq = first_seq;
        core.rest_after_round(now_ms);
        core
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
            replay: ReplayMap::default(),
            resumed_bets: HashMap::new(),
            unannounced_bets,
            unannounced_cashouts,
            bets_unannounced: false,
            ledger_available: true,
            next_seq: 1,
            last_now_ms: now_ms,
            paused: false,
            next_limits: None,
            chat_rates: chat::ChatRates::default(),
            effects: Effects::default(),
        }
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

    /// Σ stakes of the round's active bets: what the players still have at stake.
    pub fn active_stakes_minor(&self) -> i128 {
        self.active_stakes_minor
    }

    /// Σ (payout − stake) of the round's cashouts so far; the max-profit cap bounds it.
    pub fn realized_profit_minor(&self) -> i64 {
        self.realized_profit_minor
    }

    /// Everything decided since the last call.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }

    /// When `advance` next has something to do (a tick or a phase change); `None` once
    /// the room has stopped, or while it rests paused.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let next_tick_at_ms = self.round.next_tick_at_ms;
        match self.round.phase {
            // Betting ticks exist only to announce bets: no bets, no wake-up.
            RoundPhase::Betting { ends_at_ms } if !self.bets_unannounced => Some(ends_at_ms),
            RoundPhase::Betting { ends_at_ms } => Some(ends_at_ms.min(next_tick_at_ms)),
            RoundPhase::Flying { crash_at_ms, .. } => Some(crash_at_ms.min(next_tick_at_ms)),
            // Paused: nothing to do until an operator resumes the room.
            RoundPhase::Crashed { .. } if self.paused => None,
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
            } if now_ms >= next_round_at_ms && !self.paused => {
                self.open_next_round(now_ms)?;
                Ok(true)
            }
            RoundPhase::Crashed { .. } | RoundPhase::Aborted => Ok(false),
        }
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
            self.round.totals.bets -= 1;
            self.round.totals.staked_minor -= stake_minor;
            let reason = CreditReason::Refund {
                refunded_minor: stake_minor,
            };
            self.refund(key, stake_minor, reason);
        }
        self.auto_cashouts.clear();
        assert_eq!(self.active_stakes_minor, 0, "every open stake was refunded");
    }

    /// Hands out the refund of `key`'s stake, under the bet's refund id: an abort and a
    /// cancel of one bet name the same transfer, so the ledger holds at most one.
    fn refund(&mut self, key: BetKey, stake_minor: i64, reason: CreditReason) {
        let transfer = Transfer {
            id: self.transfer_id(BetTransferKind::Refund, &key),
            debit: Account::House,
            credit: Account::Player(key.player.clone()),
            amount_minor: stake_minor,
            kind: TransferKind::Refund,
            multiplier_hundredths: None,
        };
        let notice = CreditNotice { bet: key, reason };
        self.effects.transfers.push(TransferIntent {
            transfer,
            purpose: TransferPurpose::Credit(notice),
        });
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
        if let Some(limits) = self.next_limits.take() {
            set_limits(&mut self.settings.engine, limits);
        }
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
        self.replay.forget_answers();
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
}

#[cfg(test)]
mod tests {

    use std::sync::Arc;

    use crate::config::EngineConfig;
    use crate::engine::answer::RefusalCode;
    use crate::engine::event::{ListedBet, ListedCashout, RoundEvent, RoundTotals};
    use crate::fair::FairChain;
    use crate::ledger::RoundStatus;

    use super::test_support::*;
    use super::*;

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
                RoundEvent::BetCancelled { .. } => panic!("no cancel here"),
                RoundEvent::ChatPosted { .. } => panic!("no chat here"),
                RoundEvent::RoomPaused { .. }
                | RoundEvent::RoomResumed { .. }
                | RoundEvent::RoomLimitsChanged { .. } => panic!("no operator here"),
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
            cashed_out_stakes_minor: 0,
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
        let mut stakes = std::collections::HashMap::new();
        for index in 0..PLAYERS {
            let name = format!("p{index}");
            // A spread of stakes with many ties; a third cash out automatically.
            let amount = 10 + (index as i64 * 37) % 900;
            let auto = (index % 3 == 0).then_some(101 + (index as u64 * 13) % 400);
            let slot = (index % 2) as u8;
            let now_ms = T0_MS + (index as u64 * BETTING_MS) / PLAYERS as u64;
            core.advance(now_ms).unwrap();
            core.bet(
                now_ms,
                &player(&name),
                &name,
                "b",
                BetTerms::new(amount, auto, slot),
            );
            let effects = core.take_effects();
            events.extend(effects.events);
            let TransferPurpose::Stake(key) = &effects.transfers[0].purpose else {
                panic!("a stake")
            };
            core.confirm_bet(key, 1_000);
            core.take_effects();
            staked += amount;
            stakes.insert(Account::Player(name), amount);
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
        let cashed_out_stakes_minor = payouts
            .iter()
            .map(|intent| stakes[&intent.transfer.credit])
            .sum();
        let expected = RoundTotals {
            bets,
            staked_minor: staked,
            cashouts: payouts.len() as u64,
            won_minor: won,
            cashed_out_stakes_minor,
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
