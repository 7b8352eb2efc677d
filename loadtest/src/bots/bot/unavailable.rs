//! What a bot does with an `unavailable` answer in a run with faults: either the room's
//! ledger breaker was open (nothing changed) or the gateway had no answer from the
//! engine in time (the request may have been handled), and the bot cannot tell which.
//! Like a correct client it sends the request again, once, with the same `req` while its
//! round is still in the phase that allows it (bets: betting; cashouts: flying): the
//! engine answers a request it handled with its first answer. When it cannot, the
//! outcome stays unknown: the own ledger waits for the next fresh balance, and a
//! settlement of the bet is accepted rather than failed.

use std::sync::atomic::Ordering;

use aloft::protocol::Phase;
use tokio::time::Instant;

use crate::bots::bot::Bot;
use crate::bots::bot::open_bets::Pending;

/// Unsure bets a bot keeps to accept their settlement; older ones are forgotten (a
/// settlement comes within a round or two).
pub(super) const UNSURE_BETS_MAX: usize = 8;

impl Bot {
    /// `request` was answered `unavailable` (faults expected): sends it again once, or
    /// leaves its outcome unknown.
    pub(super) fn on_unavailable(&mut self, request: Pending, now: Instant) {
        let stats = self.context.stats.clone();
        stats.unavailable_answers.fetch_add(1, Ordering::Relaxed);
        if !request.retried_after_unavailable && self.still_allowed(&request) {
            stats.unavailable_retries.fetch_add(1, Ordering::Relaxed);
            self.outbox.push(request.message.clone());
            self.pending.push(Pending {
                sent_at: now,
                resent: true,
                retried_after_unavailable: true,
                ..request
            });
            return;
        }
        stats.outcomes_unknown.fetch_add(1, Ordering::Relaxed);
        self.leave_outcome_unknown(&request);
    }

    /// Whether the round of `request`'s bet is still in the phase that allows it.
    fn still_allowed(&self, request: &Pending) -> bool {
        let allowing = if request.is_bet {
            Phase::Betting
        } else {
            Phase::Flying
        };
        let in_slot = self.slots[usize::from(request.slot)].as_ref();
        self.phase == allowing && in_slot.is_some_and(|bet| bet.round == self.round)
    }

    /// The engine may or may not have handled `request`: a bet moves from its slot to
    /// the unsure ones, a cashout's bet owes no report, and the own ledger is set to the
    /// next fresh balance.
    fn leave_outcome_unknown(&mut self, request: &Pending) {
        self.rebase_pending = true;
        let slot = &mut self.slots[usize::from(request.slot)];
        if request.is_bet {
            if self.unsure.len() == UNSURE_BETS_MAX {
                self.unsure.remove(0);
            }
            self.unsure.extend(slot.take());
        } else if let Some(bet) = slot.as_mut() {
            bet.report_may_be_lost = true;
        }
    }
}
