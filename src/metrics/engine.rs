//! The engine's series of one room: [`RoomMetrics`], handles made once per room (at the
//! role's start by [`register`], again by the room's runner), so counting a bet, a
//! cashout or a batch costs an atomic add, not a lookup by labels.

use metrics::{Counter, Gauge, Histogram};
use strum::IntoEnumIterator;

use super::families::*;
use crate::engine::answer::{Answer, RefusalCode};
use crate::engine::round::{CreditReason, RoomCore, RoundPhase};

/// The `phase` label of each [`RoundPhase`], in the order of [`phase_index`].
const PHASES: [&str; 4] = ["betting", "flying", "crashed", "stopped"];

fn phase_index(phase: RoundPhase) -> usize {
    match phase {
        RoundPhase::Betting { .. } => 0,
        RoundPhase::Flying { .. } => 1,
        RoundPhase::Crashed { .. } => 2,
        RoundPhase::Aborted => 3,
    }
}

/// The `path` labels of [`ENGINE_BUS_ERRORS`].
pub const BUS_ERROR_PATHS: [&str; 2] = ["publish", "reply"];

/// Registers at 0 the engine series of `rooms` (and the room-less ones).
pub fn register(rooms: &[String]) {
    for room in rooms {
        RoomMetrics::new(room);
    }
    for path in BUS_ERROR_PATHS {
        metrics::counter!(ENGINE_BUS_ERRORS, "path" => path).increment(0);
    }
}

/// One counter per refusal code, indexed by the code's position in [`RefusalCode`].
struct ByCode(Vec<Counter>);

impl ByCode {
    fn new(name: &'static str, room: &str) -> ByCode {
        let counters = RefusalCode::iter()
            .map(|code| {
                let code: &'static str = code.into();
                metrics::counter!(name, "room" => room.to_owned(), "code" => code)
            })
            .collect();
        ByCode(counters)
    }

    fn increment(&self, code: RefusalCode) {
        self.0[code as usize].increment(1);
    }
}

/// The series of one room's engine.
pub struct RoomMetrics {
    bets_accepted: Counter,
    bets_refused: ByCode,
    cashouts_refused: ByCode,
    /// By [`crate::engine::CashoutKind`]: manual, auto, cap.
    cashouts: [Counter; 3],
    bets_cancelled: Counter,
    /// Posted, refused over the chat rate.
    chat_messages: [Counter; 2],
    refunds: Counter,
    wagered_minor: Counter,
    paid_out_minor: Counter,
    refunded_minor: Counter,
    stake_at_risk_minor: Gauge,
    round_profit_minor: Gauge,
    pub round_profit_max_minor: Gauge,
    pub rounds: Counter,
    /// By [`phase_index`].
    phases: [Gauge; 4],
    /// 1 while a runner leads the room.
    pub leading: Gauge,
    pub takeovers: Counter,
    pub bet_ack_seconds: Histogram,
    pub ledger_batch_seconds: Histogram,
    pub ledger_batch_transfers: Histogram,
    pub ledger_batch_errors: Counter,
    pub ledger_journal_errors: Counter,
    pub ledger_breaker_open: Gauge,
}

impl RoomMetrics {
    pub fn new(room: &str) -> RoomMetrics {
        let counter = |name: &'static str| metrics::counter!(name, "room" => room.to_owned());
        let gauge = |name: &'static str| metrics::gauge!(name, "room" => room.to_owned());
        let histogram = |name: &'static str| metrics::histogram!(name, "room" => room.to_owned());
        let labelled = |name: &'static str, key: &'static str, value: &'static str| metrics::counter!(name, "room" => room.to_owned(), key => value);
        let phase = |phase: &'static str| metrics::gauge!(ROOM_PHASE, "room" => room.to_owned(), "phase" => phase);
        RoomMetrics {
            bets_accepted: counter(BETS_ACCEPTED),
            bets_refused: ByCode::new(BETS_REFUSED, room),
            cashouts_refused: ByCode::new(CASHOUTS_REFUSED, room),
            cashouts: ["manual", "auto", "cap"].map(|kind| labelled(CASHOUTS, "kind", kind)),
            bets_cancelled: counter(BETS_CANCELLED),
            chat_messages: ["posted", "rate_limited"]
                .map(|result| labelled(CHAT_MESSAGES, "result", result)),
            refunds: counter(REFUNDS),
            wagered_minor: counter(WAGERED_MINOR),
            paid_out_minor: counter(PAID_OUT_MINOR),
            refunded_minor: counter(REFUNDED_MINOR),
            stake_at_risk_minor: gauge(STAKE_AT_RISK_MINOR),
            round_profit_minor: gauge(ROUND_PROFIT_MINOR),
            round_profit_max_minor: gauge(ROUND_PROFIT_MAX_MINOR),
            rounds: counter(ROUNDS),
            phases: PHASES.map(phase),
            leading: gauge(LEASE_HELD),
            takeovers: counter(LEASE_TAKEOVERS),
            bet_ack_seconds: histogram(BET_ACK_SECONDS),
            ledger_batch_seconds: histogram(LEDGER_BATCH_SECONDS),
            ledger_batch_transfers: histogram(LEDGER_BATCH_TRANSFERS),
            ledger_batch_errors: labelled(LEDGER_ERRORS, "op", "batch"),
            ledger_journal_errors: labelled(LEDGER_ERRORS, "op", "journal"),
            ledger_breaker_open: gauge(LEDGER_BREAKER_OPEN),
        }
    }

    /// Counts a refusal sent to a player.
    pub fn answered(&self, answer: &Answer) {
        match answer {
            Answer::BetRefused { refusal, .. } => self.bets_refused.increment(refusal.code),
            Answer::CashoutRefused { refusal, .. } => self.cashouts_refused.increment(refusal.code),
            Answer::ChatRefused { .. } => self.chat_messages[1].increment(1),
            Answer::BetAccepted { .. }
            | Answer::CashedOut { .. }
            | Answer::BetCancelled { .. }
            | Answer::CancelRefused { .. }
            | Answer::BalanceChanged { .. }
            | Answer::ControlApplied { .. }
            | Answer::ControlRefused { .. } => {}
        }
    }

    /// A chat message was posted to the room.
    pub fn chat_posted(&self) {
        self.chat_messages[0].increment(1);
    }

    /// The ledger took a stake of `amount_minor`.
    pub fn stake_taken(&self, amount_minor: i64) {
        self.bets_accepted.increment(1);
        self.wagered_minor.increment(minor(amount_minor));
    }

    /// The ledger holds a payout or refund of `amount_minor` for `reason`.
    pub fn credited(&self, reason: &CreditReason, amount_minor: i64) {
        match reason {
            CreditReason::Cashout { by, .. } => {
                self.cashouts[by.kind() as usize].increment(1);
                self.paid_out_minor.increment(minor(amount_minor));
            }
            CreditReason::Cancel { .. } => {
                self.bets_cancelled.increment(1);
                self.refunds.increment(1);
                self.refunded_minor.increment(minor(amount_minor));
            }
            CreditReason::Refund { .. } => {
                self.refunds.increment(1);
                self.refunded_minor.increment(minor(amount_minor));
            }
        }
    }

    /// Shows the room's phase and what is at stake in its round, once per wake.
    pub fn observe(&self, core: &RoomCore) {
        let current = phase_index(core.phase());
        for (index, gauge) in self.phases.iter().enumerate() {
            gauge.set(if index == current { 1.0 } else { 0.0 });
        }
        self.stake_at_risk_minor
            .set(core.active_stakes_minor() as f64);
        self.round_profit_minor
            .set(core.realized_profit_minor() as f64);
    }
}

/// Money moves are positive; a counter takes them as `u64`.
fn minor(amount_minor: i64) -> u64 {
    u64::try_from(amount_minor).expect("transfers move positive amounts")
}
