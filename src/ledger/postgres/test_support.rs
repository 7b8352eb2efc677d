//! Helpers of the PostgreSQL ledger's tests: a ledger on a scratch database, and waiting
//! for a backend to block on a lock.

use std::time::Duration;

use super::PostgresLedger;
use crate::ledger::postgres_test_database::ScratchDatabase;
use crate::ledger::{LedgerError, TransferOutcome};

/// Connections per test ledger: enough for concurrency, few enough that parallel
/// tests stay far below the server's `max_connections` (100 by default).
const TEST_POOL_SIZE_MAX: usize = 4;

/// How long a test waits for a backend to block on a lock, in 10 ms polls.
const LOCK_WAIT_POLLS_MAX: usize = 1_000;

/// Opening the ledger on a scratch database; creating and dropping it is shared with
/// the cluster tests (`ledger::postgres_test_database`).
impl ScratchDatabase {
    pub(crate) async fn connect(&self) -> Result<PostgresLedger, LedgerError> {
        PostgresLedger::connect_with_config(self.config.clone(), TEST_POOL_SIZE_MAX).await
    }

    pub(crate) async fn ledger(&self) -> PostgresLedger {
        self.connect().await.expect("the scratch database connects")
    }
}

pub(super) fn committed(debit_after: i64, credit_after: i64, replayed: bool) -> TransferOutcome {
    TransferOutcome::Committed {
        debit_balance_after_minor: debit_after,
        credit_balance_after_minor: credit_after,
        replayed,
    }
}

/// Waits until some backend of the scratch database is blocked on a lock.
pub(super) async fn wait_for_a_lock_waiter(client: &tokio_postgres::Client) {
    for _ in 0..LOCK_WAIT_POLLS_MAX {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no backend blocked on a lock");
}
