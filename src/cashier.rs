//! The cashier: the movements of money that belong to no round. A new guest's starting
//! balance is granted here (mint → player, once per player under the idempotent
//! `grant:{player}` transfer id), and the guests that never played give it back here
//! (the periodic sweep of `Ledger::expire_unused_guests`). Round money (stakes, payouts,
//! refunds) is the engine's; the engine and the cashier are the only writers of money,
//! and both write through the [`Ledger`], whose planner (`ledger::plan`) decides what a
//! batch of transfers does.
//!
//! The HTTP layer only admits a guest request and asks for the grant; when and how much
//! is decided here. Grants arrive one at a time from every shard's handlers, so they are
//! group-committed ([`TransferBatcher`]): a burst of sign-ups costs a few transactions.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::ledger::batcher::{BatcherError, TransferBatcher};
use crate::ledger::{
    Account, Ledger, LedgerError, Transfer, TransferId, TransferKind, TransferOutcome,
};

/// Interval of the sweep of unused guests.
const GUEST_EXPIRY_SWEEP_INTERVAL_MS: u64 = 60_000;
/// Guests removed per ledger transaction, at most; a sweep repeats while batches are full.
const GUEST_EXPIRY_BATCH_GUESTS_MAX: usize = 1_000;

/// What a guest is given and for how long an unused guest is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestTerms {
    /// A new guest's starting balance (`ledger.guest_balance_minor`); 0 grants nothing.
    pub grant_minor: i64,
    /// A guest that never bet within this many seconds of its grant is removed and its
    /// grant returned to the mint (`limits.guest_unused_expiry_seconds`).
    pub unused_expiry_seconds: u64,
}

impl GuestTerms {
    /// The terms `config` sets.
    pub fn from_config(config: &crate::Config) -> GuestTerms {
        GuestTerms {
            grant_minor: config.ledger.guest_balance_minor,
            unused_expiry_seconds: config.limits.guest_unused_expiry_seconds,
        }
    }
}

/// Why a guest got no starting balance. Nothing moved in either case.
#[derive(Debug, thiserror::Error)]
pub enum GrantError {
    /// The ledger could not be written (it failed, or too many grants are queued): the
    /// client may retry later; check the ledger's health if it persists.
    #[error("the guest grant was not written: {0}")]
    Ledger(#[from] BatcherError),
    /// The ledger refused the grant: its id holds a different transfer (the database was
    /// edited, or the grant amount changed while a player id was reused). A bug to report.
    #[error("the ledger refused the guest grant: {0:?}")]
    Refused(TransferOutcome),
}

/// The owner of the non-round movements of money; cheap to clone.
#[derive(Clone)]
pub struct Cashier {
    ledger: Arc<dyn Ledger>,
    grants: TransferBatcher,
    terms: GuestTerms,
}

impl Cashier {
    /// A cashier over `ledger`; starts the grants' batching task on the current runtime.
    pub fn spawn(ledger: Arc<dyn Ledger>, terms: GuestTerms) -> Cashier {
        Cashier {
            grants: TransferBatcher::spawn(ledger.clone()),
            ledger,
            terms,
        }
    }

    /// Grants `player` its starting balance and returns the balance after it. Idempotent:
    /// a player is granted once, and asking again returns the first grant's balance.
    pub async fn grant_guest(&self, player: &str) -> Result<i64, GrantError> {
        // A transfer moves a positive amount: with no grant there is nothing to write.
        if self.terms.grant_minor == 0 {
            return Ok(0);
        }
        let grant = Transfer {
            id: TransferId::grant(player).to_string(),
            debit: Account::Mint,
            credit: Account::Player(player.to_owned()),
            amount_minor: self.terms.grant_minor,
            kind: TransferKind::Grant,
            multiplier_hundredths: None,
        };
        match self.grants.submit(grant).await? {
            TransferOutcome::Committed {
                credit_balance_after_minor,
                ..
            } => Ok(credit_balance_after_minor),
            refused => Err(GrantError::Refused(refused)),
        }
    }

    /// Every minute until `shutdown`: removes the guests that never played within the
    /// terms' expiry of their grant. Every gateway of a cluster runs it; the ledger makes
    /// concurrent sweeps safe.
    pub async fn run_guest_expiry(self, shutdown: CancellationToken) {
        let mut sweep =
            tokio::time::interval(Duration::from_millis(GUEST_EXPIRY_SWEEP_INTERVAL_MS));
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = sweep.tick() => {}
            }
            match self.expire_unused_guests(crate::clock::unix_now_ms()).await {
                Ok(0) => {}
                Ok(removed) => tracing::info!(removed, "unused guests removed"),
                Err(error) => {
                    tracing::warn!(%error, "unused guests not removed: next sweep retries");
                }
            }
        }
    }

    /// One sweep at `now_ms`: batches of removals until one is not full. Returns the count.
    pub async fn expire_unused_guests(&self, now_ms: u64) -> Result<u64, LedgerError> {
        let expiry_ms = self.terms.unused_expiry_seconds.saturating_mul(1_000);
        let granted_before_ms = now_ms.saturating_sub(expiry_ms);
        let mut removed = 0;
        loop {
            let batch = self
                .ledger
                .expire_unused_guests(granted_before_ms, GUEST_EXPIRY_BATCH_GUESTS_MAX)
                .await?;
            metrics::counter!(crate::metrics::GUESTS_EXPIRED).increment(batch);
            removed += batch;
            if batch < GUEST_EXPIRY_BATCH_GUESTS_MAX as u64 {
                return Ok(removed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::SqliteLedger;
    use crate::ledger::flaky::FlakyLedger;

    const TERMS: GuestTerms = GuestTerms {
        grant_minor: 100,
        unused_expiry_seconds: 3_600,
    };

    fn cashier(terms: GuestTerms) -> (Cashier, Arc<SqliteLedger>) {
        let ledger = Arc::new(SqliteLedger::open_in_memory().unwrap());
        (Cashier::spawn(ledger.clone(), terms), ledger)
    }

    fn player(name: &str) -> Account {
        Account::Player(name.to_owned())
    }

    #[tokio::test]
    async fn a_guest_is_granted_once_under_its_grant_id() {
        let (cashier, ledger) = cashier(TERMS);
        assert_eq!(cashier.grant_guest("g-1").await.unwrap(), 100);
        assert_eq!(cashier.grant_guest("g-1").await.unwrap(), 100);
        assert_eq!(cashier.grant_guest("g-2").await.unwrap(), 100);
        assert_eq!(ledger.balance(&player("g-1")).await.unwrap(), 100);
        assert_eq!(ledger.balance(&Account::Mint).await.unwrap(), -200);
        let stored = ledger.transfer("grant:g-1").await.unwrap().unwrap();
        assert_eq!(stored.transfer.debit, Account::Mint);
        assert_eq!(stored.transfer.kind, TransferKind::Grant);
    }

    #[tokio::test]
    async fn a_zero_grant_writes_nothing() {
        let terms = GuestTerms {
            grant_minor: 0,
            ..TERMS
        };
        let (cashier, ledger) = cashier(terms);
        assert_eq!(cashier.grant_guest("g-1").await.unwrap(), 0);
        assert!(ledger.transfer("grant:g-1").await.unwrap().is_none());
        assert_eq!(ledger.balance(&Account::Mint).await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_failing_ledger_is_a_grant_error_and_moves_nothing() {
        let sqlite = Arc::new(SqliteLedger::open_in_memory().unwrap());
        let flaky = Arc::new(FlakyLedger::new(sqlite.clone()));
        let cashier = Cashier::spawn(flaky.clone(), TERMS);
        flaky.fail_next(1);
        let failed = cashier.grant_guest("g-1").await;
        assert!(matches!(failed, Err(GrantError::Ledger(_))), "{failed:?}");
        assert_eq!(sqlite.balance(&player("g-1")).await.unwrap(), 0);
        assert_eq!(cashier.grant_guest("g-1").await.unwrap(), 100);
    }

    #[tokio::test]
    async fn a_grant_id_holding_another_transfer_is_refused() {
        let (cashier, ledger) = cashier(TERMS);
        let other = Transfer {
            id: TransferId::grant("g-1").to_string(),
            debit: Account::Mint,
            credit: player("g-1"),
            amount_minor: 7,
            kind: TransferKind::Grant,
            multiplier_hundredths: None,
        };
        ledger.apply_batch(vec![other]).await.unwrap();
        let refused = cashier.grant_guest("g-1").await;
        assert!(
            matches!(
                refused,
                Err(GrantError::Refused(TransferOutcome::IdConflict))
            ),
            "{refused:?}"
        );
        assert_eq!(ledger.balance(&player("g-1")).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_sweep_removes_guests_unused_for_the_expiry_and_only_those() {
        let (cashier, ledger) = cashier(TERMS);
        for n in 0..GUEST_EXPIRY_BATCH_GUESTS_MAX + 5 {
            cashier.grant_guest(&format!("g-{n}")).await.unwrap();
        }
        let now_ms = crate::clock::unix_now_ms();
        assert_eq!(cashier.expire_unused_guests(now_ms).await.unwrap(), 0);
        let later_ms = now_ms + TERMS.unused_expiry_seconds * 1_000 + 1_000;
        let removed = cashier.expire_unused_guests(later_ms).await.unwrap();
        assert_eq!(removed, GUEST_EXPIRY_BATCH_GUESTS_MAX as u64 + 5);
        assert_eq!(ledger.balance(&Account::Mint).await.unwrap(), 0);
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
    }
}
