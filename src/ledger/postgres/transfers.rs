//! Reading balances and stored transfers.

use deadpool_postgres::Pool;

use crate::ledger::row_decoding::transfer_from_row;
use crate::ledger::{
    Account, LedgerError, SELECT_TRANSFER_COLUMNS, StoredTransfer, prefix_upper_bound,
};

pub(super) async fn balance(pool: &Pool, account: &Account) -> Result<i64, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT balance FROM accounts WHERE key = $1")
        .await?;
    let row = client.query_opt(&statement, &[&account.key()]).await?;
    Ok(row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0))
}

pub(super) async fn total_balance(pool: &Pool) -> Result<i64, LedgerError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT COALESCE(SUM(balance), 0)::BIGINT FROM accounts")
        .await?;
    Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
}

pub(super) async fn transfer(pool: &Pool, id: &str) -> Result<Option<StoredTransfer>, LedgerError> {
    let client = pool.get().await?;
    let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id = $1");
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    row.as_ref().map(transfer_from_row).transpose()
}

/// A range scan on the primary key rather than `LIKE` (see `prefix_upper_bound`).
pub(super) async fn with_prefix(
    pool: &Pool,
    prefix: &str,
) -> Result<Vec<StoredTransfer>, LedgerError> {
    let client = pool.get().await?;
    let rows = match prefix_upper_bound(prefix) {
        Some(upper) => {
            let sql =
                format!("{SELECT_TRANSFER_COLUMNS} WHERE id >= $1 AND id < $2 ORDER BY sequence");
            let statement = client.prepare_cached(&sql).await?;
            client.query(&statement, &[&prefix, &upper]).await?
        }
        None => {
            let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id >= $1 ORDER BY sequence");
            let statement = client.prepare_cached(&sql).await?;
            client.query(&statement, &[&prefix]).await?
        }
    };
    rows.iter().map(transfer_from_row).collect()
}
