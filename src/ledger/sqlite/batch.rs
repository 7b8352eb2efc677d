//! The group-commit write path: a batch of transfers in one IMMEDIATE transaction (one
//! fsync per engine tick), executing the plan `ledger::plan` makes of it.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{Connection, Transaction, TransactionBehavior, params};

use super::fence::check_fence;
use super::rows::{find_transfer, read_balance, to_sql_integer};
use crate::ledger::plan::{BatchReads, NewTransfer, plan_batch};
use crate::ledger::{Fence, LedgerError, Transfer, TransferOutcome};

/// Executes the plan of `batch` ([`plan_batch`]) in one IMMEDIATE transaction: reads
/// what the plan needs (the write lock is held, so nothing changes meanwhile), inserts
/// the new transfers, writes each moved account once.
pub(super) fn apply_batch_blocking(
    connection: &mut Connection,
    batch: &[Transfer],
    reads: &BatchReads,
    fence: Option<&Fence>,
) -> Result<Vec<TransferOutcome>, LedgerError> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if let Some(fence) = fence {
        check_fence(&transaction, fence)?;
    }
    let mut balances = HashMap::with_capacity(reads.account_keys.len());
    for key in &reads.account_keys {
        if let Some(balance) = read_balance(&transaction, key)? {
            balances.insert(key.clone(), balance);
        }
    }
    let mut committed = Vec::new();
    for id in &reads.ids {
        committed.extend(find_transfer(&transaction, id)?);
    }
    let plan = plan_batch(batch, &balances, committed)?;
    insert_transfers(&transaction, batch, &plan.inserts)?;
    write_balances(&transaction, &plan.balances_after)?;
    transaction.commit()?;
    Ok(plan.outcomes)
}

/// Inserts the plan's new transfers in batch order, numbered after the last committed one
/// and stamped with one time: they commit together.
fn insert_transfers(
    transaction: &Transaction<'_>,
    batch: &[Transfer],
    inserts: &[NewTransfer],
) -> Result<(), LedgerError> {
    if inserts.is_empty() {
        return Ok(());
    }
    let last_sequence: i64 = transaction
        .prepare_cached("SELECT COALESCE(MAX(sequence), 0) FROM transfers")?
        .query_row([], |row| row.get(0))?;
    let created_at_ms = to_sql_integer(crate::clock::unix_now_ms())?;
    let mut insert = transaction.prepare_cached(
        "INSERT INTO transfers (id, sequence, debit, credit, amount, kind, \
         debit_balance_after, credit_balance_after, created_at_ms, multiplier_hundredths) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    for (sequence, new) in (last_sequence + 1..).zip(inserts) {
        let transfer = &batch[new.index];
        insert.execute(params![
            transfer.id,
            sequence,
            transfer.debit.key(),
            transfer.credit.key(),
            transfer.amount_minor,
            transfer.kind.as_str(),
            new.debit_balance_after_minor,
            new.credit_balance_after_minor,
            created_at_ms,
            transfer
                .multiplier_hundredths
                .map(to_sql_integer)
                .transpose()?,
        ])?;
    }
    Ok(())
}

/// Writes every moved account once, creating the new ones.
fn write_balances(
    transaction: &Transaction<'_>,
    balances_after: &BTreeMap<String, i64>,
) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached(
        "INSERT INTO accounts (key, balance) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET balance = excluded.balance",
    )?;
    for (key, balance) in balances_after {
        statement.execute(params![key, balance])?;
    }
    Ok(())
}
