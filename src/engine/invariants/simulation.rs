//! A [`RoomCore`] driven by a scenario's steps the way `engine::runner` drives it, against
//! the model ledger, with the checks of every money invariant after each step.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::model::{BetOutcome, ModelBet, ModelLedger};
use super::scenario::{GRANTS_MINOR, Scenario, Step};
use crate::bus::{ReplyTo, RequestKind};
use crate::config::EngineConfig;
use crate::engine::answer::{Answer, RefusalCode, Reply};
use crate::engine::event::RoundEvent;
use crate::engine::round::{
    BetKey, BetTerms, CashoutBy, CreditReason, Effects, REQUEST_WAITERS_MAX, RoomCore,
    RoomSettings, RoundPhase, TransferIntent, TransferPurpose, multiplier_at,
};
use crate::fair::{self, FairChain};
use crate::ledger::{Account, RoundRecord, RoundStatus, Transfer, TransferKind};

const ROOM: &str = "fuzz";
const CHAIN_SEED: &str = "00000000000000000000000000000000000000000000000000000000000000f2";
/// Rounds the chain holds: a long scenario runs it out, which stops the room.
const CHAIN_ROUNDS: u64 = 64;
const HOUSE_EDGE_BP: u32 = 100;
/// Engine time of the first step.
const START_MS: u64 = 1_000_000;
/// What a scenario reached, so a test can tell that random steps do reach every case.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// The round the room was in at the end.
    pub rounds: u64,
    pub cashed_out: u64,
    pub lost: u64,
    pub refunded: u64,
    /// Bets their players cancelled.
    pub cancelled: u64,
    /// Payouts the max-profit cap made (below the bet's target, or without one).
    pub capped: u64,
}

/// A request as sent, to check the answers it gets.
#[derive(Debug)]
struct Request {
    player: String,
    kind: RequestKind,
    req: String,
    answered: bool,
}

/// Progress of a round as its events, journal records and the core tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Betting,
    Flying,
    Ended,
}

/// A `RoomCore`, the model ledger and what the checks remember between steps.
pub(super) struct Simulation {
    core: RoomCore,
    chain: Arc<FairChain>,
    settings: RoomSettings,
    now_ms: u64,
    ledger: ModelLedger,
    bets: BTreeMap<BetKey, ModelBet>,
    /// Credits of a failed batch, sent again with the next one (as the runner does).
    credits_to_retry: Vec<TransferIntent>,
    fail_next_batch: bool,
    aborted: bool,
    /// Requests by the connection that sent them: one connection per request.
    requests: HashMap<u64, Request>,
    /// Requests per (player, req), to know when waiters may have been turned away.
    senders_by_request: HashMap<(String, String), usize>,
    last_seq: u64,
    /// The round of the newest event and how far its events went.
    event_stage: Option<(u64, Stage)>,
    /// The core's (round, phase rank) after the last step.
    core_stage: (u64, u8),
    /// Each round's newest journal status.
    journal_stage: HashMap<u64, Stage>,
    /// Each round's Σ(payout − stake) of its cashed-out bets.
    profit_by_round: HashMap<u64, i64>,
    payouts_by_round: HashMap<u64, i64>,
    capped_payouts: u64,
    /// Bets cancelled, as the events tell.
    cancelled: u64,
}

impl Simulation {
    pub(super) fn new(scenario: &Scenario) -> Simulation {
        let chain = Arc::new(FairChain::generate(CHAIN_SEED, CHAIN_ROUNDS).expect("a valid seed"));
        let settings = RoomSettings {
            room: ROOM.to_owned(),
            salt: format!("salt-{}", scenario.salt),
            house_edge_bp: HOUSE_EDGE_BP,
            engine: EngineConfig {
                betting_duration_ms: 1_000,
                crashed_duration_ms: 500,
                tick_interval_ms: 100,
                bet_amount_min_minor: 10,
                bet_amount_max_minor: 10_000,
                auto_cashout_max_hundredths: 100_000,
                round_profit_max_minor: scenario.round_profit_max_minor,
                command_batch_max: 64,
                growth_rate_per_ms_millionths: 60,
                // Small lists, so that the feed's selection is exercised too.
                public_bets_per_tick_max: 3,
                public_cashouts_per_tick_max: 3,
                ..EngineConfig::default()
            },
        };
        let core = RoomCore::new(settings.clone(), chain.clone(), 1, 1, START_MS)
            .expect("the chain has round 1");
        let mut ledger = ModelLedger::default();
        for (index, grant_minor) in GRANTS_MINOR.iter().enumerate() {
            ledger.balances.insert(player(index), *grant_minor);
        }
        ledger
            .balances
            .insert(Account::Mint, -GRANTS_MINOR.iter().sum::<i64>());
        let mut simulation = Simulation {
            core,
            chain,
            settings,
            now_ms: START_MS,
            ledger,
            bets: BTreeMap::new(),
            credits_to_retry: Vec::new(),
            fail_next_batch: false,
            aborted: false,
            requests: HashMap::new(),
            senders_by_request: HashMap::new(),
            last_seq: 0,
            event_stage: None,
            core_stage: (1, 0),
            journal_stage: HashMap::new(),
            profit_by_round: HashMap::new(),
            payouts_by_round: HashMap::new(),
            capped_payouts: 0,
            cancelled: 0,
        };
        simulation.perform();
        simulation
    }

    pub(super) fn step(&mut self, step: &Step) {
        let now_ms = self.now_ms;
        match step {
            Step::Clock { elapsed_ms } => self.now_ms += elapsed_ms,
            // A chain run out stops the room between rounds; later steps find it so.
            Step::Advance => _ = self.core.advance(now_ms),
            Step::Bet {
                player,
                req,
                amount_minor,
                auto_cashout_hundredths,
                slot,
            } => {
                let (from, req) = self.request(*player, RequestKind::Bet, *req);
                let (amount, auto) = (*amount_minor, *auto_cashout_hundredths);
                self.core.bet(
                    now_ms,
                    &from,
                    &from.player,
                    &req,
                    BetTerms::new(amount, auto, *slot),
                );
            }
            Step::Cashout { player, req, slot } => {
                let (from, req) = self.request(*player, RequestKind::Cashout, *req);
                self.core.cashout(now_ms, &from, &req, *slot);
            }
            Step::Cancel { player, req, slot } => {
                let (from, req) = self.request(*player, RequestKind::Cancel, *req);
                self.core.cancel(now_ms, &from, &req, *slot);
            }
            Step::LedgerFault => self.fail_next_batch = true,
            Step::Abort => {
                self.core.abort(now_ms);
                self.aborted = true;
            }
        }
        self.perform();
    }

    /// A new request of `player` from a connection of its own.
    fn request(&mut self, player_index: usize, kind: RequestKind, id: u8) -> (ReplyTo, String) {
        let prefix = match kind {
            RequestKind::Bet => 'b',
            RequestKind::Cashout => 'c',
            RequestKind::Cancel => 'x',
            RequestKind::Control => unreachable!("no operator in a simulation"),
        };
        let req = format!("{prefix}{id}");
        let connection = self.requests.len() as u64 + 1;
        let Account::Player(player) = player(player_index) else {
            unreachable!("players are player accounts")
        };
        let request = Request {
            player: player.clone(),
            kind,
            req: req.clone(),
            answered: false,
        };
        self.requests.insert(connection, request);
        *self
            .senders_by_request
            .entry((player.clone(), req.clone()))
            .or_default() += 1;
        let from = ReplyTo {
            gateway: "fuzz".to_owned(),
            connection,
            player,
        };
        (from, req)
    }

    /// Does what the runner does with one wake's effects, checking each of them.
    fn perform(&mut self) {
        let Effects {
            events,
            transfers,
            replies,
            records,
        } = self.core.take_effects();
        for intent in &transfers {
            self.decide(intent);
        }
        let mut batch = std::mem::take(&mut self.credits_to_retry);
        batch.extend(transfers);
        let failed = std::mem::take(&mut self.fail_next_batch);
        for intent in batch {
            self.settle(intent, failed);
        }
        let settled = self.core.take_effects();
        assert!(
            settled.events.is_empty() && settled.transfers.is_empty() && settled.records.is_empty(),
            "ledger outcomes only produce replies"
        );
        // After the transfers: a crash's auto-cashouts are paid before its bets are lost.
        for event in &events {
            self.check_event(event);
        }
        for record in &records {
            self.check_record(record);
        }
        for reply in replies.iter().chain(&settled.replies) {
            self.check_reply(reply);
        }
        self.check_core_phase();
        self.check_books();
    }

    /// Checks a transfer the core decided and moves the bet along.
    fn decide(&mut self, intent: &TransferIntent) {
        let transfer = &intent.transfer;
        match &intent.purpose {
            TransferPurpose::Stake(key) => {
                assert_eq!(transfer.kind, TransferKind::Bet);
                assert_eq!(transfer.debit, Account::Player(key.player.clone()));
                assert_eq!(transfer.credit, Account::House);
                assert_eq!(key.round, self.core.round_number());
                let engine = &self.settings.engine;
                let limits = engine.bet_amount_min_minor..=engine.bet_amount_max_minor;
                assert!(limits.contains(&transfer.amount_minor), "{transfer:?}");
                let bet = ModelBet {
                    stake_minor: transfer.amount_minor,
                    auto_cashout_hundredths: transfer.multiplier_hundredths,
                    outcome: BetOutcome::Pending,
                };
                let previous = self.bets.insert(key.clone(), bet);
                assert!(previous.is_none(), "a second stake for {key:?}");
            }
            TransferPurpose::Credit(notice) => {
                assert_eq!(transfer.debit, Account::House);
                assert_eq!(transfer.credit, Account::Player(notice.bet.player.clone()));
                match &notice.reason {
                    CreditReason::Refund { .. } => {
                        assert!(
                            self.aborted,
                            "refund of {:?} without a shutdown",
                            notice.bet
                        );
                        self.decide_refund(&notice.bet, transfer);
                    }
                    CreditReason::Cancel { refunded_minor, .. } => {
                        let betting = matches!(
                            self.core.phase(),
                            RoundPhase::Betting { ends_at_ms } if self.now_ms < ends_at_ms
                        );
                        assert!(betting, "{:?} cancelled after betting closed", notice.bet);
                        assert_eq!(transfer.amount_minor, *refunded_minor);
                        self.decide_refund(&notice.bet, transfer);
                    }
                    CreditReason::Cashout {
                        by,
                        multiplier_hundredths,
                        win_minor,
                    } => {
                        assert_eq!(transfer.amount_minor, *win_minor);
                        assert_eq!(transfer.multiplier_hundredths, Some(*multiplier_hundredths));
                        let requested = matches!(by, CashoutBy::Request(_));
                        self.decide_payout(&notice.bet, transfer, requested);
                    }
                }
            }
        }
    }

    fn decide_refund(&mut self, key: &BetKey, transfer: &Transfer) {
        assert_eq!(transfer.kind, TransferKind::Refund);
        let bet = self.active_bet(key);
        assert_eq!(
            transfer.amount_minor, bet.stake_minor,
            "a refund is the stake"
        );
        bet.outcome = BetOutcome::Refunded;
    }

    fn decide_payout(&mut self, key: &BetKey, transfer: &Transfer, requested: bool) {
        assert_eq!(transfer.kind, TransferKind::Payout);
        let multiplier = transfer
            .multiplier_hundredths
            .expect("a payout's multiplier");
        let crash = self.crash_point(key.round);
        assert!(
            (100..crash).contains(&multiplier),
            "{key:?} paid at {multiplier} with the crash at {crash}"
        );
        if requested {
            let RoundPhase::Flying { started_at_ms, .. } = self.core.phase() else {
                panic!("{key:?} cashed out by request while not flying");
            };
            let rate = self.settings.engine.growth_rate_per_ms_millionths;
            let now = multiplier_at(self.now_ms - started_at_ms, rate);
            assert_eq!(
                multiplier, now,
                "a cashout is stamped with the engine's time"
            );
        }
        let cap_minor = self.settings.engine.round_profit_max_minor;
        let bet = self.active_bet(key);
        let target = bet.auto_cashout_hundredths.unwrap_or(u64::MAX);
        let capped = !requested && multiplier < target;
        assert!(
            requested || multiplier <= target,
            "{key:?} paid above its target"
        );
        let win = i128::from(bet.stake_minor) * i128::from(multiplier) / 100;
        assert_eq!(i128::from(transfer.amount_minor), win, "{key:?}");
        bet.outcome = BetOutcome::CashedOut;
        let profit_minor = transfer.amount_minor - bet.stake_minor;
        let round_profit = self.profit_by_round.entry(key.round).or_default();
        *round_profit += profit_minor;
        assert!(
            *round_profit <= cap_minor,
            "round {} profit {} above the max profit {cap_minor}",
            key.round,
            *round_profit
        );
        *self.payouts_by_round.entry(key.round).or_default() += transfer.amount_minor;
        self.capped_payouts += u64::from(capped);
    }

    fn active_bet(&mut self, key: &BetKey) -> &mut ModelBet {
        let bet = self
            .bets
            .get_mut(key)
            .unwrap_or_else(|| panic!("credit for {key:?}, which has no stake"));
        assert_eq!(bet.outcome, BetOutcome::Active, "{key:?} settled again");
        bet
    }

    /// Commits (or fails) one transfer and tells the core, as the runner does.
    fn settle(&mut self, intent: TransferIntent, failed: bool) {
        let TransferIntent { transfer, purpose } = intent;
        match purpose {
            TransferPurpose::Stake(key) => {
                let outcome = (!failed).then(|| self.ledger.commit(&transfer)).flatten();
                match outcome {
                    Some((debit_after, _)) => {
                        self.bets.get_mut(&key).expect("decided").outcome = BetOutcome::Active;
                        self.core.confirm_bet(&key, debit_after);
                    }
                    None => {
                        self.bets.remove(&key);
                        let code = if failed {
                            RefusalCode::Internal
                        } else {
                            RefusalCode::InsufficientFunds
                        };
                        self.core.reject_bet(&key, code);
                    }
                }
            }
            TransferPurpose::Credit(notice) if failed => {
                self.credits_to_retry.push(TransferIntent {
                    transfer,
                    purpose: TransferPurpose::Credit(notice),
                });
            }
            TransferPurpose::Credit(notice) => {
                let (_, credit_after) = self
                    .ledger
                    .commit(&transfer)
                    .expect("the house may go negative");
                self.core.credit_committed(&notice, credit_after);
            }
        }
    }

    fn check_event(&mut self, event: &RoundEvent) {
        assert_eq!(
            event.seq(),
            self.last_seq + 1,
            "events are numbered without gaps"
        );
        self.last_seq = event.seq();
        let round = event.round();
        let stage = match event {
            RoundEvent::BettingOpened { .. } => {
                let after = self.event_stage.map_or(0, |(previous, stage)| {
                    assert_eq!(stage, Stage::Ended, "round {previous} did not end");
                    previous
                });
                assert_eq!(round, after + 1, "rounds open in order");
                Stage::Betting
            }
            RoundEvent::FlightStarted { .. } => {
                assert_eq!(self.event_stage, Some((round, Stage::Betting)));
                Stage::Flying
            }
            RoundEvent::Tick {
                multiplier_hundredths: m,
                elapsed_ms: ms,
                bets,
                cashouts,
                ..
            } => {
                for listed in bets {
                    let key = BetKey {
                        round,
                        player: listed.player.clone(),
                        slot: listed.slot,
                    };
                    let outcome = self.bets.get(&key).map(|bet| bet.outcome);
                    assert_eq!(outcome, Some(BetOutcome::Active), "{key:?} listed");
                }
                let (current, stage) = self.event_stage.expect("a round is announced first");
                assert_eq!(current, round);
                match stage {
                    Stage::Betting => assert_eq!((*m, *ms), (100, 0), "betting ticks stand still"),
                    Stage::Flying => assert!(*m < self.crash_point(round)),
                    Stage::Ended => panic!("a tick after round {round} crashed"),
                }
                assert!(
                    cashouts
                        .iter()
                        .all(|c| c.multiplier_hundredths < self.crash_point(round))
                );
                stage
            }
            RoundEvent::Crashed {
                crash_hundredths: m,
                hash,
                ..
            } => {
                assert_eq!(self.event_stage, Some((round, Stage::Flying)));
                assert_eq!(*m, self.crash_point(round), "the chain's crash point");
                assert_eq!(Some(hash), self.chain.round_hash(round).as_ref());
                self.lose_active_bets(round);
                Stage::Ended
            }
            RoundEvent::BetCancelled {
                player,
                slot,
                stake_minor,
                ..
            } => {
                assert_eq!(self.event_stage, Some((round, Stage::Betting)));
                let key = BetKey {
                    round,
                    player: player.clone(),
                    slot: *slot,
                };
                let bet = self.bets.get(&key).expect("a cancelled bet was staked");
                assert_eq!(bet.stake_minor, *stake_minor);
                self.cancelled += 1;
                Stage::Betting
            }
            RoundEvent::RoomPaused { .. }
            | RoundEvent::RoomResumed { .. }
            | RoundEvent::RoomLimitsChanged { .. } => panic!("no operator in a simulation"),
            RoundEvent::ChatPosted { .. } => panic!("no chat in a simulation: it moves no money"),
        };
        self.event_stage = Some((round, stage));
    }

    fn lose_active_bets(&mut self, round: u64) {
        for (key, bet) in self.bets.range_mut(round_keys(round)) {
            assert_ne!(
                bet.outcome,
                BetOutcome::Pending,
                "{key:?} pending at the crash"
            );
            if bet.outcome == BetOutcome::Active {
                bet.outcome = BetOutcome::Lost;
            }
        }
    }

    fn check_record(&mut self, record: &RoundRecord) {
        let round = record.round;
        assert_eq!(record.crash_hundredths, self.crash_point(round));
        assert_eq!(Some(&record.hash), self.chain.round_hash(round).as_ref());
        let stage = match record.status {
            RoundStatus::Betting => Stage::Betting,
            RoundStatus::Flying => Stage::Flying,
            RoundStatus::Crashed | RoundStatus::Aborted => Stage::Ended,
        };
        if let Some(previous) = self.journal_stage.insert(round, stage) {
            assert!(
                previous < stage,
                "round {round} journaled {previous:?} then {stage:?}"
            );
        }
        if stage == Stage::Ended {
            let staked_minor: i64 = self
                .bets
                .range(round_keys(round))
                .filter(|(_, bet)| {
                    !matches!(bet.outcome, BetOutcome::Pending | BetOutcome::Refunded)
                })
                .map(|(_, bet)| bet.stake_minor)
                .sum();
            assert_eq!(
                record.bets_total_minor, staked_minor,
                "round {round} stakes"
            );
            let paid_minor = self.payouts_by_round.get(&round).copied().unwrap_or(0);
            assert_eq!(
                record.payouts_total_minor, paid_minor,
                "round {round} payouts"
            );
        }
    }

    fn check_reply(&mut self, reply: &Reply) {
        if let Answer::BalanceChanged { balance_minor, .. } = &reply.answer {
            assert!(
                reply.to.is_every_socket(),
                "a balance goes to every socket of the player, wherever it moved"
            );
            assert!(
                self.requests
                    .values()
                    .any(|request| request.kind == RequestKind::Bet
                        && request.player == reply.to.player),
                "a balance goes to a player that bet"
            );
            assert!(*balance_minor >= 0);
            return;
        }
        let request = self
            .requests
            .get_mut(&reply.to.connection)
            .expect("replies go to connections that sent a request");
        let answered = reply.answer.request().expect("an answer to a request");
        assert_eq!(
            (answered.kind, &answered.req),
            (request.kind, &request.req),
            "the answer to {request:?}"
        );
        assert!(!request.answered, "{request:?} answered twice");
        request.answered = true;
    }

    fn check_core_phase(&mut self) {
        let rank = match self.core.phase() {
            RoundPhase::Betting { .. } => 0,
            RoundPhase::Flying { .. } => 1,
            RoundPhase::Crashed { .. } => 2,
            RoundPhase::Aborted => 3,
        };
        let stage = (self.core.round_number(), rank);
        assert!(
            stage >= self.core_stage,
            "phase went back: {:?} → {stage:?}",
            self.core_stage
        );
        self.core_stage = stage;
    }

    fn check_books(&self) {
        let total: i64 = self.ledger.balances.values().sum();
        assert_eq!(total, 0, "money appeared or vanished");
        for (account, balance) in &self.ledger.balances {
            if matches!(account, Account::Player(_)) {
                assert!(*balance >= 0, "{account:?} at {balance}");
            }
        }
    }

    /// The ledger heals and pays what it owes; then every request has its answer and a
    /// room that shut down has no open bet left.
    pub(super) fn finish(mut self) -> Outcomes {
        if !self.credits_to_retry.is_empty() {
            self.perform();
        }
        assert!(self.credits_to_retry.is_empty());
        if self.aborted {
            for (key, bet) in &self.bets {
                assert!(
                    !matches!(bet.outcome, BetOutcome::Pending | BetOutcome::Active),
                    "{key:?} still open after the shutdown"
                );
            }
        }
        for request in self.requests.values() {
            let key = (request.player.clone(), request.req.clone());
            let senders = self.senders_by_request[&key];
            assert!(
                request.answered || senders > REQUEST_WAITERS_MAX,
                "{request:?} never answered"
            );
        }
        let mut outcomes = Outcomes::default();
        for bet in self.bets.values() {
            match bet.outcome {
                BetOutcome::CashedOut => outcomes.cashed_out += 1,
                BetOutcome::Lost => outcomes.lost += 1,
                BetOutcome::Refunded => outcomes.refunded += 1,
                BetOutcome::Pending | BetOutcome::Active => {}
            }
        }
        outcomes.rounds = self.core.round_number();
        outcomes.capped = self.capped_payouts;
        outcomes.cancelled = self.cancelled;
        outcomes
    }

    fn crash_point(&self, round: u64) -> u64 {
        let hash = self
            .chain
            .round_hash(round)
            .expect("rounds come from the chain");
        fair::crash_point_hundredths(&hash, &self.settings.salt, HOUSE_EDGE_BP)
    }
}

fn player(index: usize) -> Account {
    Account::Player(format!("p{index}"))
}

/// The keys of every bet of `round`, for a range over `BetKey`s (ordered by round first).
fn round_keys(round: u64) -> std::ops::Range<BetKey> {
    let first = |round| BetKey {
        round,
        player: String::new(),
        slot: 0,
    };
    first(round)..first(round + 1)
}
