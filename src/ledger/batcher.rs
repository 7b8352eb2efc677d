//! Group commit for transfers that arrive one at a time from many places (the cashier's
//! guest grants, asked for by every shard's HTTP handlers): callers submit a single
//! transfer and await its outcome; one task applies whatever has queued up in one
//! `apply_batch`, so a burst of N requests costs a few transactions, not N fsyncs.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Ledger, Transfer, TransferOutcome};

/// Transfers waiting for the batching task, at most.
pub const BATCHER_QUEUE_TRANSFERS_MAX: usize = 4096;

/// Transfers applied in one batch, at most.
pub const BATCHER_BATCH_TRANSFERS_MAX: usize = 512;

type Request = (Transfer, oneshot::Sender<Result<TransferOutcome, String>>);

/// Why a submitted transfer has no outcome.
#[derive(Debug, thiserror::Error)]
pub enum BatcherError {
    /// More than `BATCHER_QUEUE_TRANSFERS_MAX` transfers are waiting: retry later.
    #[error("the ledger is busy")]
    Busy,
    /// The batch failed in the ledger (rolled back) or the batching task stopped.
    #[error("ledger batch failed: {0}")]
    Failed(String),
}

/// The submitting side; cheap to clone.
#[derive(Clone)]
pub struct TransferBatcher {
    requests: mpsc::Sender<Request>,
}

impl TransferBatcher {
    /// Starts the batching task on the current tokio runtime.
    pub fn spawn(ledger: Arc<dyn Ledger>) -> TransferBatcher {
        let (requests, receiver) = mpsc::channel(BATCHER_QUEUE_TRANSFERS_MAX);
        tokio::spawn(run(ledger, receiver));
        TransferBatcher { requests }
    }

    /// Applies `transfer` in the next batch and returns its outcome.
    pub async fn submit(&self, transfer: Transfer) -> Result<TransferOutcome, BatcherError> {
        let (reply, outcome) = oneshot::channel();
        self.requests
            .try_send((transfer, reply))
            .map_err(|_| BatcherError::Busy)?;
        outcome
            .await
            .map_err(|_| BatcherError::Failed("the batching task stopped".into()))?
            .map_err(BatcherError::Failed)
    }
}

async fn run(ledger: Arc<dyn Ledger>, mut receiver: mpsc::Receiver<Request>) {
    let mut batch = Vec::with_capacity(BATCHER_BATCH_TRANSFERS_MAX);
    while receiver
        .recv_many(&mut batch, BATCHER_BATCH_TRANSFERS_MAX)
        .await
        > 0
    {
        let (transfers, replies): (Vec<Transfer>, Vec<_>) = batch.drain(..).unzip();
        match ledger.apply_batch(transfers).await {
            Ok(outcomes) => {
                assert_eq!(outcomes.len(), replies.len(), "one outcome per transfer");
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for reply in replies {
                    let _ = reply.send(Err(message.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::conformance::{player, transfer};
    use crate::ledger::{Account, SqliteLedger};

    #[tokio::test]
    async fn concurrent_submissions_each_get_their_own_outcome() {
        let ledger: Arc<dyn Ledger> = Arc::new(SqliteLedger::open_in_memory().unwrap());
        let batcher = TransferBatcher::spawn(ledger.clone());
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..200 {
            let batcher = batcher.clone();
            tasks.spawn(async move {
                let grant = transfer(
                    &format!("grant:{n}"),
                    Account::Mint,
                    player(&n.to_string()),
                    100 + n,
                );
                (n, batcher.submit(grant).await.unwrap())
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (n, outcome) = joined.unwrap();
            assert!(
                matches!(outcome, TransferOutcome::Committed { credit_balance_after_minor, replayed: false, .. } if credit_balance_after_minor == 100 + n),
                "{n}: {outcome:?}"
            );
        }
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        // An overdraft is that transfer's outcome only.
        let overdraft = transfer("bet:x", player("1"), Account::House, 1_000_000);
        assert!(matches!(
            batcher.submit(overdraft).await.unwrap(),
            TransferOutcome::InsufficientFunds { .. }
        ));
    }
}
