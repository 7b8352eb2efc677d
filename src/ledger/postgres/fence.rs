//! The rooms' fencing tokens in the `fences` table: the check every fenced write makes
//! first, and the increment a new leader takes its token from.

use deadpool_postgres::{Pool, Transaction};

use crate::ledger::{Fence, LedgerError, acquired_token};

/// Stores `fence.token` as the room's token unless a higher one is stored, which fails
/// with `Fenced`; the caller's transaction then rolls back, so nothing it wrote lands.
///
/// Why a deposed leader's write can never commit after its successor's (say tokens 5 and
/// 6 racing on one room): the UPSERT takes the room's row lock (or, for a first insert,
/// the unique-index entry) and keeps it to the commit, so the two transactions pass this
/// statement one at a time.
/// - 6 first: 5's UPSERT waits for 6's commit, then, READ COMMITTED, re-checks its WHERE
///   against the newest row version, finds 6 > 5 and updates nothing: `Fenced`.
///   Any later attempt with 5 likewise sees 6 (tokens stored only ever rise).
/// - 5 first: 6 waits until 5 has committed or rolled back, so every write of 5's
///   transaction is committed before 6 passes, i.e. before the new leader reads the
///   room (it takes its token with `acquire_fence`, whose UPSERT waits on the same row).
///
/// So once 6 has committed, no transaction with 5 can commit afterwards. Fenced
/// transactions take this lock before any account lock, one order for all, so it adds no
/// deadlock.
pub(super) async fn check_fence(
    transaction: &Transaction<'_>,
    fence: &Fence,
) -> Result<(), LedgerError> {
    let token = fence.sql_token()?;
    let raise = transaction
        .prepare_cached(
            "INSERT INTO fences (room, token) VALUES ($1, $2) \
             ON CONFLICT (room) DO UPDATE SET token = EXCLUDED.token \
             WHERE fences.token <= EXCLUDED.token RETURNING token",
        )
        .await?;
    if transaction
        .query_opt(&raise, &[&fence.room, &token])
        .await?
        .is_some()
    {
        return Ok(());
    }
    // The UPSERT locked the row it declined to update, so this reads the token that
    // refused us.
    let current = transaction
        .prepare_cached("SELECT token FROM fences WHERE room = $1")
        .await?;
    let current: i64 = transaction
        .query_one(&current, &[&fence.room])
        .await?
        .try_get(0)?;
    Err(fence.stale(current))
}

/// One statement, so one transaction: the UPSERT's row lock serializes racing
/// acquirers, and READ COMMITTED makes each increment the newest committed token.
pub(super) async fn acquire_fence(pool: &Pool, room: &str) -> Result<u64, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO fences (room, token) VALUES ($1, 1) \
             ON CONFLICT (room) DO UPDATE SET token = fences.token + 1 RETURNING token",
        )
        .await?;
    let token: i64 = client.query_one(&statement, &[&room]).await?.try_get(0)?;
    acquired_token(room, token)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::ledger::conformance::{assert_fenced, fence, player, transfer};
    use crate::ledger::postgres::PostgresLedger;
    use crate::ledger::postgres::test_support::wait_for_a_lock_waiter;
    use crate::ledger::postgres_test_database::ScratchDatabase;
    use crate::ledger::{Account, Ledger, TransferOutcome};

    /// The fence row orders a deposed leader and its successor both ways: a stale batch
    /// waiting on the new leader's open transaction is refused once that commits, and a
    /// new leader waiting on a stale writer's open transaction passes only after it ends.
    #[tokio::test]
    async fn the_fence_row_orders_a_stale_writer_and_the_new_leader() {
        let scratch = ScratchDatabase::create().await;
        let ledger = Arc::new(scratch.ledger().await);
        let granted = transfer("g:a", Account::Mint, player("a"), 1_000);
        ledger
            .apply_batch_fenced(vec![granted], &fence("main", 5))
            .await
            .unwrap();

        let mut other = scratch.client().await;
        let stale_writer = other.transaction().await.unwrap();
        stale_writer
            .execute("UPDATE fences SET token = 5 WHERE room = 'main'", &[])
            .await
            .unwrap();
        let new_leader = tokio::spawn({
            let ledger = Arc::clone(&ledger);
            async move { fence("main", 6).raise(&*ledger).await }
        });
        wait_for_a_lock_waiter(&scratch.client().await).await;
        assert!(!new_leader.is_finished(), "the new leader waits");
        stale_writer.commit().await.unwrap();
        new_leader.await.unwrap().unwrap();

        let new_writer = other.transaction().await.unwrap();
        new_writer
            .execute("UPDATE fences SET token = 7 WHERE room = 'main'", &[])
            .await
            .unwrap();
        let stale = tokio::spawn({
            let ledger = Arc::clone(&ledger);
            async move {
                let bet = transfer("b:a", player("a"), Account::House, 10);
                ledger
                    .apply_batch_fenced(vec![bet], &fence("main", 6))
                    .await
            }
        });
        wait_for_a_lock_waiter(&scratch.client().await).await;
        new_writer.commit().await.unwrap();
        assert_fenced(stale.await.unwrap(), 6, 7);
        assert_eq!(ledger.transfer("b:a").await.unwrap(), None);
        assert_eq!(ledger.balance(&player("a")).await.unwrap(), 1_000);
    }

    /// Races of the racing-leaders test.
    const FENCE_RACES: u64 = 100;

    /// Two processes' ledgers race a fenced batch with tokens N and N+1, many times, the
    /// two started in alternating order. Whichever wins the fence, once N+1 has committed
    /// N never commits: it either committed before (a lower sequence) or is refused, then
    /// and on every later try.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_leaders_never_commit_a_stale_batch_after_the_new_one() {
        let scratch = ScratchDatabase::create().await;
        let ledgers = [
            Arc::new(scratch.ledger().await),
            Arc::new(scratch.ledger().await),
        ];
        let grants = ["stale", "new"]
            .map(|who| transfer(&format!("g:{who}"), Account::Mint, player(who), 1 << 40));
        ledgers[0].apply_batch(grants.to_vec()).await.unwrap();
        let race = |side: usize, id: String, who: &'static str, token: u64| {
            let ledger = Arc::clone(&ledgers[side]);
            tokio::spawn(async move {
                let bet = transfer(&id, player(who), Account::House, 10);
                ledger
                    .apply_batch_fenced(vec![bet], &fence("main", token))
                    .await
            })
        };
        for n in 0..FENCE_RACES {
            // Each race's stale token is above the previous race's new one.
            let token = 2 * n + 1;
            let (stale_id, new_id) = (format!("stale:{n}"), format!("new:{n}"));
            let (stale, new) = if n % 2 == 0 {
                let stale = race(0, stale_id.clone(), "stale", token);
                (stale, race(1, new_id.clone(), "new", token + 1))
            } else {
                let new = race(1, new_id.clone(), "new", token + 1);
                (race(0, stale_id.clone(), "stale", token), new)
            };
            let (stale, new) = (stale.await.unwrap(), new.await.unwrap());
            let new = new.unwrap();
            assert!(
                matches!(
                    new[..],
                    [TransferOutcome::Committed {
                        replayed: false,
                        ..
                    }]
                ),
                "{new:?}"
            );
            let new_sequence = ledger_sequence(&ledgers[0], &new_id).await;
            match stale {
                Ok(_) => {
                    let stale_sequence = ledger_sequence(&ledgers[0], &stale_id).await;
                    assert!(stale_sequence < new_sequence, "race {n}: stale after new");
                }
                Err(error) => {
                    assert_fenced(Err::<(), _>(error), token, token + 1);
                    assert_eq!(ledgers[0].transfer(&stale_id).await.unwrap(), None);
                }
            }
            let retry = race(0, format!("stale:{n}:retry"), "stale", token);
            assert_fenced(retry.await.unwrap(), token, token + 1);
        }
        assert_eq!(ledgers[0].total_balance().await.unwrap(), 0);
    }

    async fn ledger_sequence(ledger: &PostgresLedger, id: &str) -> i64 {
        ledger
            .transfer(id)
            .await
            .unwrap()
            .expect("committed")
            .sequence
    }
}
