//! What a bot holds between its requests and their outcomes: the requests in flight,
//! the bets in its two slots (late ones whose auto-cashout report is owed, unsure ones
//! whose request went unanswered), the click it planned for the betting phase, and where
//! a cashout report came from.

use aloft::protocol::ClientMessage;
use tokio::time::Instant;

use crate::bots::behaviour::{Exit, Stake};
use crate::bots::verify::{Check, Failure};

/// A request sent and not answered yet.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) req: String,
    pub(super) slot: u8,
    pub(super) is_bet: bool,
    pub(super) sent_at: Instant,
    /// The request itself, sent again after a reconnection.
    pub(super) message: ClientMessage,
    /// Sent again (after a reconnection or an `unavailable`): its reply may be the
    /// first one, verbatim, with the balance of that time.
    pub(super) resent: bool,
    /// Sent again after an `unavailable` already: another one leaves its outcome
    /// unknown.
    pub(super) retried_after_unavailable: bool,
}

impl Pending {
    /// A request sent now for the first time.
    pub(super) fn new(req: String, slot: u8, message: ClientMessage, now: Instant) -> Pending {
        Pending {
            req,
            slot,
            is_bet: matches!(message, ClientMessage::Bet { .. }),
            sent_at: now,
            message,
            resent: false,
            retried_after_unavailable: false,
        }
    }
}

/// A bet the bot holds in a slot, from the request until its round crashed and its
/// outcome is known.
#[derive(Debug)]
pub(super) struct OpenBet {
    pub(super) round: u64,
    pub(super) slot: u8,
    pub(super) amount_minor: i64,
    pub(super) exit: Exit,
    pub(super) acked: bool,
    pub(super) cashout_sent: bool,
    /// Cashout multiplier and payout, once a private frame told them.
    pub(super) win: Option<(u64, i64)>,
    /// The same as listed by the public feed, when it listed it.
    pub(super) listed: Option<(u64, i64)>,
    /// The crash point of its round, once crashed.
    pub(super) crashed_at: Option<u64>,
    /// No private report of its outcome is owed to the bot: it was away during this
    /// bet's round (a report of its auto-cashout may have gone to the lost connection),
    /// or its cashout request went unanswered (`unavailable` after the flight).
    pub(super) report_may_be_lost: bool,
}

impl OpenBet {
    /// Whether the engine owes it an auto-cashout whose private report has not come yet.
    pub(super) fn awaits_auto_cashout(&self) -> bool {
        let target = self.exit.auto();
        self.acked
            && !self.report_may_be_lost
            && self.win.is_none()
            && matches!((target, self.crashed_at), (Some(auto), Some(crash)) if auto < crash)
    }

    /// What is wrong with a cashout at `m` the engine made of its own accord (not asked
    /// for by the bot): an auto-cashout at another multiplier than the bet's `auto`, or a
    /// bet with no `auto` at all.
    pub(super) fn engine_cashout_failure(&self, m: u64) -> Option<Failure> {
        let (round, slot) = (self.round, self.slot);
        match self.exit {
            Exit::Auto(auto) if auto != m => Some(Failure::new(
                Check::AutoCashoutPrice,
                format!("round {round} slot {slot}: auto {auto}, cashed out at {m}"),
            )),
            Exit::Auto(_) => None,
            Exit::Manual(_) => Some(Failure::new(
                Check::UnrequestedCashout,
                format!(
                    "round {round} slot {slot}: cashed out at {m} without an auto or a request"
                ),
            )),
        }
    }

    /// Its round is over and everything about it is known.
    pub(super) fn is_settled(&self) -> bool {
        self.crashed_at.is_some() && !self.awaits_auto_cashout()
    }
}

/// Where a cashout report came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// `cashout_ok`: the bot's own request.
    Reply,
    /// `balance` naming the cashout: the engine's auto-cashout or max profit.
    Engine,
    /// The tick or crash lists.
    Public,
}

/// A planned click in the betting phase.
#[derive(Debug)]
pub(super) struct PlannedBets {
    pub(super) round: u64,
    pub(super) at: Instant,
    pub(super) stakes: [Option<Stake>; 2],
}
