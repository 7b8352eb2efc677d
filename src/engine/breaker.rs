//! The ledger circuit breaker of a room: [`LedgerBreaker`].
//!
//! Owns one decision: may the room take new bets now? A ledger batch that fails, or that
//! took longer than `engine.ledger_batch_timeout_ms`, opens the breaker: for
//! `engine.ledger_breaker_cooldown_ms` the room refuses bets at once (`unavailable`)
//! instead of queueing stakes on a ledger that cannot take them. Then it is half-open:
//! the bets of one wake go to the ledger, and that batch decides — committed in time
//! closes it, failed or slow opens it again. Payouts and refunds never wait for it: they
//! are retried on every wake whatever its state. Pure logic driven by the engine clock.

/// Where the breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Bets go to the ledger.
    Closed,
    /// Bets are refused until `until_ms`.
    Open { until_ms: u64 },
    /// The cooldown is over: the next batch is the probe.
    HalfOpen,
}

/// See the module documentation.
#[derive(Debug)]
pub struct LedgerBreaker {
    state: State,
    batch_timeout_ms: u64,
    cooldown_ms: u64,
}

impl LedgerBreaker {
    pub fn new(batch_timeout_ms: u64, cooldown_ms: u64) -> LedgerBreaker {
        LedgerBreaker {
            state: State::Closed,
            batch_timeout_ms,
            cooldown_ms,
        }
    }

    /// Whether bets may go to the ledger at `now_ms`; the first call after the cooldown
    /// turns the breaker half-open.
    pub fn allows_bets(&mut self, now_ms: u64) -> bool {
        match self.state {
            State::Closed | State::HalfOpen => true,
            State::Open { until_ms } if now_ms >= until_ms => {
                self.state = State::HalfOpen;
                true
            }
            State::Open { .. } => false,
        }
    }

    /// Takes the verdict of a batch that ended at `now_ms` after `elapsed_ms`. Returns
    /// true when this opened the breaker (it was not open before).
    pub fn record_batch(&mut self, committed: bool, elapsed_ms: u64, now_ms: u64) -> bool {
        if !committed || elapsed_ms > self.batch_timeout_ms {
            let opened = !matches!(self.state, State::Open { .. });
            self.state = State::Open {
                until_ms: now_ms + self.cooldown_ms,
            };
            return opened;
        }
        if self.state == State::HalfOpen {
            self.state = State::Closed;
        }
        false
    }

    /// Whether bets are refused now (for the metric).
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_or_slow_batch_refuses_bets_for_the_cooldown_then_one_batch_probes() {
        let mut breaker = LedgerBreaker::new(100, 1_000);
        assert!(breaker.allows_bets(0));
        assert!(!breaker.record_batch(true, 100, 0));
        assert!(breaker.allows_bets(1));
        // A failure opens it: no bets until the cooldown is over.
        assert!(breaker.record_batch(false, 5, 10));
        assert!(!breaker.allows_bets(500));
        // Payouts retried meanwhile do not close it, a failed one prolongs it.
        assert!(!breaker.record_batch(true, 5, 600));
        assert!(!breaker.allows_bets(1_009));
        assert!(breaker.allows_bets(1_010));
        // Half-open: a slow probe opens it again.
        assert!(breaker.record_batch(true, 101, 1_200));
        assert!(!breaker.allows_bets(2_199));
        assert!(breaker.allows_bets(2_200));
        // A probe committed in time closes it.
        assert!(!breaker.record_batch(true, 20, 2_220));
        assert!(!breaker.is_open());
        assert!(breaker.allows_bets(2_221));
        assert!(breaker.record_batch(false, 1, 2_300));
        assert!(breaker.is_open());
    }
}
