//! The group-commit write path: a batch of transfers in one READ COMMITTED transaction of
//! a few set-based statements, several processes at once.
//!
//! 1. create the touched accounts that do not exist yet (balance 0), in key order;
//! 2. lock every touched account with one `SELECT … ORDER BY key FOR UPDATE` — one lock
//!    order for every writer, so batches queue instead of deadlocking;
//! 3. load the batch's ids already committed, with one `SELECT … WHERE id = ANY($1)`;
//! 4. plan every outcome and running balance in memory (`ledger::plan`, as SQLite does);
//! 5. insert the new transfers with one `INSERT … SELECT FROM UNNEST(…)`, and write each
//!    moved account once with one UPSERT from `UNNEST` — the house row is written once per
//!    batch, the design's hot-spot rule.
//!
//! Concurrency: a replay of an id with the same terms touches the same debit account, so
//! step 2 makes it wait for the first commit, and step 3 (a fresh snapshot, as READ
//! COMMITTED takes one per statement) then sees it. An id reused with other terms on other
//! accounts can slip past step 3; its insert then waits for the other writer and finds the
//! id taken (`ON CONFLICT DO NOTHING` inserts fewer rows than planned), so the batch rolls
//! back and runs again, now seeing the id: never a lost or double movement. Deadlocks and
//! serialization failures are retried the same way, a bounded number of times.
//!
//! `sequence` is an identity column: strictly increasing in insert order. Transfers that
//! touch a common account are inserted under that account's lock, so for every account,
//! sequence order is the order in which its balance moved.

use std::collections::{BTreeMap, HashMap};

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::error::SqlState;

use super::columns::{now_ms, to_sql_integer};
use super::connection::read_committed;
use super::fence::check_fence;
use crate::ledger::plan::{BatchReads, NewTransfer, plan_batch, prepare};
use crate::ledger::row_decoding::transfer_from_row;
use crate::ledger::{
    Fence, LedgerError, SELECT_TRANSFER_COLUMNS, StoredTransfer, Transfer, TransferOutcome,
};

/// Attempts of one batch lost to concurrent writers (deadlock, serialization failure, an
/// id committed elsewhere meanwhile) before `apply_batch` gives up with `Contention`.
const SERIALIZATION_RETRIES_MAX: u32 = 8;

/// `Ledger::write_batch`: every attempt checks the fence anew.
pub(super) async fn write_batch(
    pool: &Pool,
    batch: Vec<Transfer>,
    fence: Option<&Fence>,
) -> Result<Vec<TransferOutcome>, LedgerError> {
    let Some(reads) = prepare(&batch, fence)? else {
        return Ok(Vec::new());
    };
    for attempt in 1..=SERIALIZATION_RETRIES_MAX {
        match apply_batch_once(pool, &batch, &reads, fence).await {
            Ok(Some(outcomes)) => return Ok(outcomes),
            Ok(None) => {
                tracing::debug!(
                    attempt,
                    "ledger batch raced another writer on an id; retrying"
                );
            }
            Err(LedgerError::Postgres(error)) if lost_to_concurrency(&error) => {
                tracing::debug!(attempt, %error, "ledger batch lost to a concurrent writer; retrying");
            }
            Err(other) => return Err(other),
        }
    }
    Err(LedgerError::Contention {
        attempts: SERIALIZATION_RETRIES_MAX,
    })
}

/// One attempt at a batch in its own transaction. `Ok(None)` means another writer
/// committed one of the batch's ids (or removed an unused guest's account) meanwhile:
/// the attempt was rolled back, and the next one will see the change.
async fn apply_batch_once(
    pool: &Pool,
    batch: &[Transfer],
    reads: &BatchReads,
    fence: Option<&Fence>,
) -> Result<Option<Vec<TransferOutcome>>, LedgerError> {
    let mut client = pool.get().await?;
    let transaction = read_committed(&mut client).await?;
    if let Some(fence) = fence {
        check_fence(&transaction, fence).await?;
    }
    let Some(balances) = lock_accounts(&transaction, &reads.account_keys).await? else {
        // An unused guest's account was removed meanwhile: the next attempt creates
        // it anew at balance 0.
        transaction.rollback().await?;
        return Ok(None);
    };
    let committed = find_transfers(&transaction, &reads.ids).await?;
    let plan = plan_batch(batch, &balances, committed)?;
    if !plan.inserts.is_empty() {
        let inserted = insert_transfers(&transaction, batch, &plan.inserts).await?;
        if inserted != plan.inserts.len() {
            transaction.rollback().await?;
            return Ok(None);
        }
        write_balances(&transaction, &plan.balances_after).await?;
    }
    transaction.commit().await?;
    Ok(Some(plan.outcomes))
}
/// Whether a failed attempt lost to another writer and may simply run again.
fn lost_to_concurrency(error: &tokio_postgres::Error) -> bool {
    error.code().is_some_and(|code| {
        *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
    })
}

/// Creates the touched accounts that do not exist yet, then locks all of them in key
/// order and returns their balances. Creating first matters: `FOR UPDATE` cannot lock a
/// row that does not exist, and two batches both creating a new player at balance 0 would
/// otherwise each write a balance computed from 0. `DO NOTHING` waits for a concurrent
/// creator of the same key to finish, so after it every key is committed or ours. `None`
/// when an account existed at the insert but was deleted before the lock (an unused
/// guest removed by `expire_unused_guests`): the caller tries again.
async fn lock_accounts(
    transaction: &Transaction<'_>,
    keys: &[String],
) -> Result<Option<HashMap<String, i64>>, LedgerError> {
    let create = transaction
        .prepare_cached(
            "INSERT INTO accounts (key, balance) \
             SELECT key, 0 FROM UNNEST($1::text[]) AS touched(key) \
             ORDER BY key COLLATE \"C\" ON CONFLICT (key) DO NOTHING",
        )
        .await?;
    transaction.execute(&create, &[&keys]).await?;
    let lock = transaction
        .prepare_cached(
            "SELECT key, balance FROM accounts WHERE key = ANY($1) ORDER BY key FOR UPDATE",
        )
        .await?;
    let rows = transaction.query(&lock, &[&keys]).await?;
    let balances = rows
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<HashMap<String, i64>, tokio_postgres::Error>>()?;
    Ok((balances.len() == keys.len()).then_some(balances))
}

/// The batch's ids already committed.
async fn find_transfers(
    transaction: &Transaction<'_>,
    ids: &[String],
) -> Result<Vec<StoredTransfer>, LedgerError> {
    let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id = ANY($1)");
    let statement = transaction.prepare_cached(&sql).await?;
    let rows = transaction.query(&statement, &[&ids]).await?;
    rows.iter().map(transfer_from_row).collect()
}

/// Inserts the plan's new transfers in batch order with one statement; returns how many
/// were inserted (fewer than asked when another writer committed one of the ids first).
async fn insert_transfers(
    transaction: &Transaction<'_>,
    batch: &[Transfer],
    inserts: &[NewTransfer],
) -> Result<usize, LedgerError> {
    let mut ids = Vec::with_capacity(inserts.len());
    let mut debits = Vec::with_capacity(inserts.len());
    let mut credits = Vec::with_capacity(inserts.len());
    let mut amounts = Vec::with_capacity(inserts.len());
    let mut kinds = Vec::with_capacity(inserts.len());
    let mut multipliers = Vec::with_capacity(inserts.len());
    let mut debits_after = Vec::with_capacity(inserts.len());
    let mut credits_after = Vec::with_capacity(inserts.len());
    for new in inserts {
        let transfer = &batch[new.index];
        ids.push(transfer.id.as_str());
        debits.push(transfer.debit.key());
        credits.push(transfer.credit.key());
        amounts.push(transfer.amount_minor);
        kinds.push(transfer.kind.as_str());
        let multiplier = transfer.multiplier_hundredths;
        multipliers.push(
            multiplier
                .map(|value| to_sql_integer("multiplier_hundredths", value))
                .transpose()?,
        );
        debits_after.push(new.debit_balance_after_minor);
        credits_after.push(new.credit_balance_after_minor);
    }
    let statement = transaction
        .prepare_cached(
            "INSERT INTO transfers (id, debit, credit, amount, kind, debit_balance_after, \
             credit_balance_after, multiplier_hundredths, created_at_ms) \
             SELECT id, debit, credit, amount, kind, debit_after, credit_after, multiplier, $9 \
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
             $6::bigint[], $7::bigint[], $8::bigint[]) WITH ORDINALITY \
             AS new (id, debit, credit, amount, kind, debit_after, credit_after, multiplier, \
             position) \
             ORDER BY position ON CONFLICT (id) DO NOTHING",
        )
        .await?;
    let inserted = transaction
        .execute(
            &statement,
            &[
                &ids,
                &debits,
                &credits,
                &amounts,
                &kinds,
                &debits_after,
                &credits_after,
                &multipliers,
                &now_ms(),
            ],
        )
        .await?;
    Ok(usize::try_from(inserted).expect("at most one row per transfer of the batch"))
}

/// Writes every moved account once (the rows exist and are locked by this transaction).
async fn write_balances(
    transaction: &Transaction<'_>,
    balances_after: &BTreeMap<String, i64>,
) -> Result<(), LedgerError> {
    let keys: Vec<&str> = balances_after.keys().map(String::as_str).collect();
    let balances: Vec<i64> = balances_after.values().copied().collect();
    let statement = transaction
        .prepare_cached(
            "INSERT INTO accounts (key, balance) \
             SELECT * FROM UNNEST($1::text[], $2::bigint[]) \
             ON CONFLICT (key) DO UPDATE SET balance = excluded.balance",
        )
        .await?;
    let written = transaction.execute(&statement, &[&keys, &balances]).await?;
    assert_eq!(
        usize::try_from(written).ok(),
        Some(keys.len()),
        "every moved account is written once"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ledger::conformance::{player, transfer};
    use crate::ledger::postgres::PostgresLedger;
    use crate::ledger::postgres::test_support::{committed, wait_for_a_lock_waiter};
    use crate::ledger::postgres_test_database::ScratchDatabase;
    use crate::ledger::{Account, Ledger};

    /// The race the account locks cannot prevent: an id reused on other accounts, inserted
    /// by another writer between this batch's id lookup and its insert. The batch must run
    /// again and report the conflict, moving nothing for that id.
    #[tokio::test]
    async fn an_id_committed_meanwhile_by_another_writer_ends_as_a_conflict() {
        let scratch = ScratchDatabase::create().await;
        let ledger = Arc::new(scratch.ledger().await);
        let granted = transfer("g:a", Account::Mint, player("a"), 100);
        ledger.apply_batch(vec![granted]).await.unwrap();
        let mut other = scratch.client().await;
        let writer = other.transaction().await.unwrap();
        writer
            .batch_execute(
                "UPDATE accounts SET balance = balance - 5 WHERE key = 'mint'; \
                 INSERT INTO accounts (key, balance) VALUES ('player:z', 5); \
                 INSERT INTO transfers (id, debit, credit, amount, kind, debit_balance_after, \
                 credit_balance_after, created_at_ms) \
                 VALUES ('race', 'mint', 'player:z', 5, 'grant', -105, 5, 0)",
            )
            .await
            .unwrap();
        let racing = tokio::spawn({
            let ledger = Arc::clone(&ledger);
            async move {
                let batch = vec![
                    transfer("race", player("a"), Account::House, 10),
                    transfer("after", player("a"), Account::House, 1),
                ];
                ledger.apply_batch(batch).await
            }
        });
        wait_for_a_lock_waiter(&scratch.client().await).await;
        writer.commit().await.unwrap();
        let outcomes = racing.await.unwrap().unwrap();
        assert_eq!(
            outcomes,
            vec![TransferOutcome::IdConflict, committed(99, 1, false)]
        );
        assert_eq!(ledger.balance(&player("a")).await.unwrap(), 99);
        assert_eq!(ledger.balance(&player("z")).await.unwrap(), 5);
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        let stored = ledger.transfer("race").await.unwrap().unwrap();
        assert_eq!(stored.transfer.debit, Account::Mint);
    }

    /// Batches of the two-writer test, split between the two ledgers.
    const CONCURRENT_BATCHES: usize = 200;
    /// Transfer ids the two-writer test draws from, so both sides send the same ids.
    const CONCURRENT_IDS: usize = 400;
    /// Players of the two-writer test: many, so batches often share no player and an id
    /// reused with other terms can really race past the account locks.
    const CONCURRENT_PLAYERS: usize = 300;
    /// Largest batch of the two-writer test, in transfers.
    const CONCURRENT_BATCH_TRANSFERS_MAX: usize = 20;

    /// The transfer id `n` stands for in variant `variant` (0 or 1): a grant, or a bet or
    /// payout on other accounts. Both sides derive the same terms, so the same (id,
    /// variant) is a replay and the other variant an id conflict.
    fn variant(n: usize, variant: usize) -> Transfer {
        let id = format!("t:{n}");
        let amount = i64::try_from(50 + n % 200).unwrap();
        match (variant, n % 2) {
            (0, _) => {
                let to = player(&(n % CONCURRENT_PLAYERS).to_string());
                transfer(&id, Account::Mint, to, amount * 2)
            }
            (_, 0) => {
                let from = player(&((n * 7 + 3) % CONCURRENT_PLAYERS).to_string());
                transfer(&id, from, Account::House, amount)
            }
            _ => {
                let to = player(&((n * 11 + 5) % CONCURRENT_PLAYERS).to_string());
                transfer(&id, Account::House, to, amount)
            }
        }
    }

    /// A batch of one variant only: grant batches lock the mint, the others the house, so
    /// the two kinds run side by side and race on the ids they share.
    fn random_batch(rng: &mut StdRng) -> Vec<Transfer> {
        let family = rng.random_range(0..2);
        let size = rng.random_range(1..=CONCURRENT_BATCH_TRANSFERS_MAX);
        (0..size)
            .map(|_| variant(rng.random_range(0..CONCURRENT_IDS), family))
            .collect()
    }

    /// Replays every stored transfer per account in sequence order: the balances each
    /// records chain from 0 to the account's stored balance, so every id moved money
    /// exactly once and no update was lost.
    async fn assert_balances_chain(ledger: &PostgresLedger, stored: &[StoredTransfer]) {
        let mut running: HashMap<Account, i64> = HashMap::new();
        for entry in stored {
            let transfer = &entry.transfer;
            let debit = running.entry(transfer.debit.clone()).or_insert(0);
            *debit -= transfer.amount_minor;
            assert_eq!(*debit, entry.debit_balance_after_minor, "{}", transfer.id);
            let credit = running.entry(transfer.credit.clone()).or_insert(0);
            *credit += transfer.amount_minor;
            assert_eq!(*credit, entry.credit_balance_after_minor, "{}", transfer.id);
        }
        for (account, balance) in running {
            assert_eq!(
                ledger.balance(&account).await.unwrap(),
                balance,
                "{account:?}"
            );
            assert!(balance >= 0 || account.may_go_negative(), "{account:?}");
        }
    }

    /// Each outcome agrees with what was stored, and each stored id committed fresh once.
    fn assert_outcomes_match(
        outcomes: &[(Transfer, TransferOutcome)],
        stored: &HashMap<String, StoredTransfer>,
    ) {
        let mut fresh: HashMap<&str, usize> = HashMap::new();
        for (sent, outcome) in outcomes {
            let first = stored.get(&sent.id);
            match outcome {
                TransferOutcome::Committed {
                    debit_balance_after_minor,
                    credit_balance_after_minor,
                    replayed,
                } => {
                    let first = first.expect("a committed id is stored");
                    assert_eq!(first.transfer, *sent);
                    assert_eq!(first.debit_balance_after_minor, *debit_balance_after_minor);
                    assert_eq!(
                        first.credit_balance_after_minor,
                        *credit_balance_after_minor
                    );
                    *fresh.entry(&sent.id).or_insert(0) += usize::from(!*replayed);
                }
                TransferOutcome::IdConflict => {
                    assert_ne!(first.expect("a conflict names a stored id").transfer, *sent);
                }
                TransferOutcome::InsufficientFunds { .. } => {
                    assert!(!sent.debit.may_go_negative());
                }
            }
        }
        for id in stored.keys() {
            assert_eq!(
                fresh.get(id.as_str()),
                Some(&1),
                "{id} committed fresh once"
            );
        }
    }

    /// Two processes' ledgers on one database apply 200 batches at once, sending the same
    /// ids from both sides (as retries and a second engine would): money is conserved, no
    /// player goes negative, and every id moves money exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_ledgers_applying_concurrent_batches_apply_each_id_once() {
        let scratch = ScratchDatabase::create().await;
        let ledgers = [
            Arc::new(scratch.ledger().await),
            Arc::new(scratch.ledger().await),
        ];
        let mut rng = StdRng::seed_from_u64(0x2_1ed9e5);
        let tasks: Vec<_> = (0..CONCURRENT_BATCHES)
            .map(|serial| {
                let ledger = Arc::clone(&ledgers[serial % 2]);
                let batch = random_batch(&mut rng);
                tokio::spawn(async move {
                    let outcomes = ledger.apply_batch(batch.clone()).await.unwrap();
                    (
                        serial % 2,
                        batch.into_iter().zip(outcomes).collect::<Vec<_>>(),
                    )
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        let mut sides: HashMap<String, HashSet<usize>> = HashMap::new();
        for task in tasks {
            let (side, results) = task.await.unwrap();
            for (sent, _) in &results {
                sides.entry(sent.id.clone()).or_default().insert(side);
            }
            outcomes.extend(results);
        }
        assert!(sides.values().filter(|both| both.len() == 2).count() > 50);
        let ledger = &ledgers[0];
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
        let stored = ledger.transfers_with_prefix("").await.unwrap();
        assert_balances_chain(ledger, &stored).await;
        let by_id = stored
            .into_iter()
            .map(|entry| (entry.transfer.id.clone(), entry))
            .collect();
        assert_outcomes_match(&outcomes, &by_id);
        let conflicts = outcomes
            .iter()
            .filter(|(_, outcome)| *outcome == TransferOutcome::IdConflict)
            .count();
        assert!(conflicts > 0, "the generator exercises id conflicts");
        let negative: i64 = scratch
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM accounts WHERE balance < 0 AND key LIKE 'player:%'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(negative, 0);
    }

    /// Group-commit throughput: `cargo test --release --lib postgres -- --ignored
    /// --nocapture`. Prints; asserts nothing about speed.
    #[tokio::test]
    #[ignore = "benchmark"]
    async fn bets_per_second_by_batch_size() {
        let scratch = ScratchDatabase::create().await;
        let ledger = scratch.ledger().await;
        crate::ledger::conformance::bets_per_second(&ledger).await;
    }
}
