//! Removing unused guests: their grant goes back to the mint, their account and grant
//! are deleted.

use std::collections::BTreeSet;

use deadpool_postgres::{Pool, Transaction};

use super::connection::read_committed;
use crate::ledger::LedgerError;

/// An unused guest about to be removed.
struct UnusedGuest {
    grant_id: String,
    account_key: String,
    granted_minor: i64,
}

/// `Ledger::expire_unused_guests`. Locks the mint first, then the candidates' accounts
/// (key order, as every batch does), and checks again under those locks that none ever
/// bet: a bet must lock its player's account, so none can land between the check and the
/// delete. A batch that saw an account just before it was deleted retries
/// (`batch::lock_accounts`).
pub(super) async fn expire_unused_guests(
    pool: &Pool,
    granted_before_ms: u64,
    guests_max: usize,
) -> Result<u64, LedgerError> {
    let mut client = pool.get().await?;
    let transaction = read_committed(&mut client).await?;
    transaction
        .execute("SELECT 1 FROM accounts WHERE key = 'mint' FOR UPDATE", &[])
        .await?;
    let unused = lock_unused_guests(&transaction, granted_before_ms, guests_max).await?;
    let grant_ids: Vec<&str> = unused.iter().map(|guest| guest.grant_id.as_str()).collect();
    let keys: Vec<&str> = unused
        .iter()
        .map(|guest| guest.account_key.as_str())
        .collect();
    let returned_minor: i64 = unused.iter().map(|guest| guest.granted_minor).sum();
    transaction
        .execute("DELETE FROM transfers WHERE id = ANY($1)", &[&grant_ids])
        .await?;
    transaction
        .execute("DELETE FROM accounts WHERE key = ANY($1)", &[&keys])
        .await?;
    transaction
        .execute(
            "UPDATE accounts SET balance = balance + $1 WHERE key = 'mint'",
            &[&returned_minor],
        )
        .await?;
    transaction.commit().await?;
    Ok(unused.len() as u64)
}

/// Locks the accounts of at most `guests_max` guests whose only transfer is a grant
/// committed before `granted_before_ms`, and returns those that, under the lock, still
/// never bet.
async fn lock_unused_guests(
    transaction: &Transaction<'_>,
    granted_before_ms: u64,
    guests_max: usize,
) -> Result<Vec<UnusedGuest>, LedgerError> {
    let granted_before_ms = i64::try_from(granted_before_ms).unwrap_or(i64::MAX);
    let guests_max = i64::try_from(guests_max).unwrap_or(i64::MAX);
    let candidates = transaction
        .query(
            "SELECT t.id, t.credit, t.amount FROM transfers t \
             JOIN accounts a ON a.key = t.credit \
             WHERE t.kind = 'grant' AND t.debit = 'mint' AND t.created_at_ms < $1 \
             AND a.balance = t.amount \
             AND NOT EXISTS (SELECT 1 FROM transfers o WHERE o.debit = t.credit) \
             ORDER BY a.key LIMIT $2 FOR UPDATE OF a SKIP LOCKED",
            &[&granted_before_ms, &guests_max],
        )
        .await?;
    let candidates = candidates
        .iter()
        .map(|row| {
            Ok(UnusedGuest {
                grant_id: row.try_get(0)?,
                account_key: row.try_get(1)?,
                granted_minor: row.try_get(2)?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
    let keys: Vec<&str> = candidates
        .iter()
        .map(|guest| guest.account_key.as_str())
        .collect();
    let played: BTreeSet<String> = transaction
        .query(
            "SELECT DISTINCT debit FROM transfers WHERE debit = ANY($1)",
            &[&keys],
        )
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let unused = candidates
        .into_iter()
        .filter(|guest| !played.contains(&guest.account_key));
    Ok(unused.collect())
}
