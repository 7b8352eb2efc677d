//! The SQLite ledger: the embedded default implementation of [`Ledger`].
//!
//! Owns the SQLite schema, its embedded migrations and the group-commit write path.
//!
//! One connection behind a mutex serves every call on tokio's blocking pool. SQLite admits
//! one writer at a time anyway; what makes it fast is batching (one `BEGIN IMMEDIATE`
//! transaction per engine tick, so one fsync per tick), not concurrency.
//!
//! What a batch does is decided by `ledger::plan`, shared with PostgreSQL: this store
//! reads what the plan needs and writes it. Hot-spot rule: each moved account row is
//! written once, at the end of the batch, so the house row is updated once per tick, not
//! once per bet, while each stored transfer still records the running balances it
//! produced.
//!
//! The schema's CHECK constraints (positive amounts, player balances never negative) are
//! the last line of defence; the code checks first and asserts the money invariants.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::Type;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

use super::plan::{BatchReads, NewTransfer, plan_batch, prepare};
use super::{
    Account, Fence, Ledger, LedgerError, RoundRecord, RoundStatus, SELECT_ROUND_COLUMNS,
    SELECT_TRANSFER_COLUMNS, StoredTransfer, Transfer, TransferKind, TransferOutcome,
    acquired_token, prefix_upper_bound,
};

/// How long a writer waits for a lock held by another connection, in milliseconds.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Prepared statements cached per connection; more than the distinct queries below, so
/// none is ever re-prepared.
const STATEMENT_CACHE_STATEMENTS_MAX: usize = 32;

/// Schema steps, applied in order at open; `PRAGMA user_version` counts the steps applied.
/// Append only: a released step is never edited, a change is a new step.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    key TEXT PRIMARY KEY,
    balance INTEGER NOT NULL,
    CHECK (balance >= 0 OR key NOT LIKE 'player:%')
) STRICT;

CREATE TABLE transfers (
    id TEXT PRIMARY KEY,
    sequence INTEGER UNIQUE NOT NULL,
    debit TEXT NOT NULL,
    credit TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'bet', 'payout', 'refund')),
    debit_balance_after INTEGER NOT NULL,
    credit_balance_after INTEGER NOT NULL,
    created_at_ms INTEGER NOT NULL,
    CHECK (debit <> credit),
    CHECK (debit_balance_after >= 0 OR debit NOT LIKE 'player:%')
) STRICT;

CREATE TABLE rounds (
    room TEXT NOT NULL,
    round INTEGER NOT NULL CHECK (round >= 0),
    hash TEXT NOT NULL,
    crash_hundredths INTEGER NOT NULL CHECK (crash_hundredths >= 100),
    started_at_ms INTEGER NOT NULL CHECK (started_at_ms >= 0),
    ended_at_ms INTEGER NULL CHECK (ended_at_ms >= 0),
    status TEXT NOT NULL CHECK (status IN ('betting', 'flying', 'crashed', 'aborted')),
    bets_total_minor INTEGER NOT NULL CHECK (bets_total_minor >= 0),
    payouts_total_minor INTEGER NOT NULL CHECK (payouts_total_minor >= 0),
    PRIMARY KEY (room, round)
) STRICT;

-- Recovery looks up a room's unfinished rounds at every engine start.
CREATE INDEX rounds_unfinished ON rounds (room, round)
    WHERE status IN ('betting', 'flying');
"#,
    r#"
-- A bet's auto-cashout target or a payout's multiplier, so a standby resumes the round.
ALTER TABLE transfers ADD COLUMN multiplier_hundredths INTEGER NULL
    CHECK (multiplier_hundredths >= 100);

-- The highest fencing token that wrote each room (see `check_fence`).
CREATE TABLE fences (
    room TEXT PRIMARY KEY,
    token INTEGER NOT NULL CHECK (token >= 0)
) STRICT;
"#,
    super::GUEST_EXPIRY_INDEXES,
];

/// The SQLite ledger. Cheap to share behind an `Arc`; every call runs on the blocking pool.
pub struct SqliteLedger {
    /// The single connection; the mutex serializes calls, as SQLite serializes writers.
    connection: Arc<Mutex<Connection>>,
}

impl SqliteLedger {
    /// Opens (creating if needed) the ledger file at `path`: WAL journal, `synchronous =
    /// FULL` (a committed batch survives power loss), migrations applied.
    pub fn open(path: &Path) -> Result<SqliteLedger, LedgerError> {
        let open_error = |source| LedgerError::Open {
            path: path.display().to_string(),
            source,
        };
        let mut connection = Connection::open(path).map_err(open_error)?;
        let journal_mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(open_error)?;
        if !journal_mode.eq_ignore_ascii_case("wal") {
            return Err(LedgerError::Open {
                path: path.display().to_string(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("journal_mode is {journal_mode}, WAL is required")),
                ),
            });
        }
        configure(&mut connection).map_err(open_error)?;
        migrate(&mut connection, &path.display().to_string(), MIGRATIONS)?;
        Ok(SqliteLedger::from_connection(connection))
    }

    /// A private ledger in memory, gone when dropped: tests and throwaway demos.
    pub fn open_in_memory() -> Result<SqliteLedger, LedgerError> {
        let open_error = |source| LedgerError::Open {
            path: ":memory:".to_owned(),
            source,
        };
        let mut connection = Connection::open_in_memory().map_err(open_error)?;
        configure(&mut connection).map_err(open_error)?;
        migrate(&mut connection, ":memory:", MIGRATIONS)?;
        Ok(SqliteLedger::from_connection(connection))
    }

    fn from_connection(connection: Connection) -> SqliteLedger {
        SqliteLedger {
            connection: Arc::new(Mutex::new(connection)),
        }
    }

    /// Runs `work` with the connection on the blocking pool.
    async fn run<T, F>(&self, work: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, LedgerError> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        tokio::task::spawn_blocking(move || {
            // A poisoned mutex means an earlier call panicked, which only a broken money
            // invariant does: refuse to move money until the process is restarted.
            let mut connection = connection.lock().map_err(|_| {
                LedgerError::Worker("an earlier ledger call panicked; restart the process".into())
            })?;
            work(&mut connection)
        })
        .await
        .map_err(|error| LedgerError::Worker(error.to_string()))?
    }

    /// `apply_batch`, behind `fence` when one is given.
    async fn apply(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        let Some(reads) = prepare(&batch, fence)? else {
            return Ok(Vec::new());
        };
        let fence = fence.cloned();
        self.run(move |connection| apply_batch_blocking(connection, &batch, &reads, fence.as_ref()))
            .await
    }

    /// `record_round`, behind `fence` when one is given.
    async fn record(&self, record: RoundRecord, fence: Option<&Fence>) -> Result<(), LedgerError> {
        let fence = fence.cloned();
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            if let Some(fence) = &fence {
                check_fence(&transaction, fence)?;
            }
            upsert_round(&transaction, &record)?;
            transaction.commit()?;
            Ok(())
        })
        .await
    }
}

fn configure(connection: &mut Connection) -> rusqlite::Result<()> {
    connection.pragma_update(None, "synchronous", "FULL")?;
    connection.busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))?;
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE_STATEMENTS_MAX);
    Ok(())
}

/// Applies the `steps` the database has not seen yet (all of `MIGRATIONS`, but for tests
/// that build an older schema), each in its own transaction with its `user_version` bump,
/// so a crash mid-migration leaves a consistent version.
fn migrate(connection: &mut Connection, path: &str, steps: &[&str]) -> Result<(), LedgerError> {
    let open_error = |source| LedgerError::Open {
        path: path.to_owned(),
        source,
    };
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(open_error)?;
    let known = i64::try_from(steps.len()).expect("a handful of migrations");
    if version > known {
        return Err(LedgerError::SchemaTooNew {
            path: path.to_owned(),
            found: version,
            supported: known,
        });
    }
    let applied = usize::try_from(version).map_err(|_| LedgerError::SchemaTooNew {
        path: path.to_owned(),
        found: version,
        supported: known,
    })?;
    for (version_after, step) in (1_i64..).zip(steps).skip(applied) {
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(open_error)?;
        transaction.execute_batch(step).map_err(open_error)?;
        transaction
            .pragma_update(None, "user_version", version_after)
            .map_err(open_error)?;
        transaction.commit().map_err(open_error)?;
    }
    Ok(())
}

#[async_trait]
impl Ledger for SqliteLedger {
    async fn write_batch(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        self.apply(batch, fence).await
    }

    async fn balance(&self, account: &Account) -> Result<i64, LedgerError> {
        let key = account.key();
        self.run(move |connection| Ok(read_balance(connection, &key)?.unwrap_or(0)))
            .await
    }

    async fn total_balance(&self) -> Result<i64, LedgerError> {
        self.run(|connection| {
            let mut statement =
                connection.prepare_cached("SELECT COALESCE(SUM(balance), 0) FROM accounts")?;
            Ok(statement.query_row([], |row| row.get(0))?)
        })
        .await
    }

    async fn transfer(&self, id: &str) -> Result<Option<StoredTransfer>, LedgerError> {
        let id = id.to_owned();
        self.run(move |connection| Ok(find_transfer(connection, &id)?))
            .await
    }

    async fn transfers_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<StoredTransfer>, LedgerError> {
        let prefix = prefix.to_owned();
        self.run(move |connection| Ok(select_transfers_with_prefix(connection, &prefix)?))
            .await
    }

    async fn write_round(
        &self,
        record: RoundRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        self.record(record, fence).await
    }

    async fn acquire_fence(&self, room: &str) -> Result<u64, LedgerError> {
        let room = room.to_owned();
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let token: i64 = transaction
                .prepare_cached(ACQUIRE_FENCE_SQL)?
                .query_row([&room], |row| row.get(0))?;
            transaction.commit()?;
            acquired_token(&room, token)
        })
        .await
    }

    async fn recent_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        let room = room.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let sql =
                format!("{SELECT_ROUND_COLUMNS} WHERE room = ?1 ORDER BY round DESC LIMIT ?2");
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![room, limit], round_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn expire_unused_guests(
        &self,
        granted_before_ms: u64,
        guests_max: usize,
    ) -> Result<u64, LedgerError> {
        let granted_before_ms = to_sql_integer(granted_before_ms)?;
        let guests_max = i64::try_from(guests_max).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let transaction =
                connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let unused: Vec<(String, String, i64)> = transaction
                .prepare_cached(
                    "SELECT t.id, t.credit, t.amount FROM transfers t \
                     JOIN accounts a ON a.key = t.credit \
                     WHERE t.kind = 'grant' AND t.debit = 'mint' AND t.created_at_ms < ?1 \
                     AND a.balance = t.amount \
                     AND NOT EXISTS (SELECT 1 FROM transfers o WHERE o.debit = t.credit) \
                     ORDER BY t.created_at_ms LIMIT ?2",
                )?
                .query_map(params![granted_before_ms, guests_max], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            let returned_minor: i64 = unused.iter().map(|(_, _, amount)| amount).sum();
            for (grant_id, key, _) in &unused {
                transaction
                    .prepare_cached("DELETE FROM transfers WHERE id = ?1")?
                    .execute([grant_id])?;
                transaction
                    .prepare_cached("DELETE FROM accounts WHERE key = ?1")?
                    .execute([key])?;
            }
            transaction
                .prepare_cached("UPDATE accounts SET balance = balance + ?1 WHERE key = 'mint'")?
                .execute([returned_minor])?;
            transaction.commit()?;
            Ok(unused.len() as u64)
        })
        .await
    }

    async fn unfinished_rounds(&self, room: &str) -> Result<Vec<RoundRecord>, LedgerError> {
        let room = room.to_owned();
        self.run(move |connection| {
            let sql = format!(
                "{SELECT_ROUND_COLUMNS} WHERE room = ?1 AND status IN ('betting', 'flying') \
                 ORDER BY round ASC"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![room], round_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }
}

/// Executes the plan of `batch` ([`plan_batch`]) in one IMMEDIATE transaction: reads
/// what the plan needs (the write lock is held, so nothing changes meanwhile), inserts
/// the new transfers, writes each moved account once.
fn apply_batch_blocking(
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

/// Increments the room's token (a first one is 1) and returns it.
const ACQUIRE_FENCE_SQL: &str = "INSERT INTO fences (room, token) VALUES (?1, 1) \
     ON CONFLICT (room) DO UPDATE SET token = fences.token + 1 RETURNING token";

/// Stores `fence.token` as the room's token unless a higher one is stored, which fails
/// with `Fenced` (the caller's transaction then rolls back, so nothing it wrote lands).
/// Every caller holds an IMMEDIATE transaction, SQLite's single write lock, from this
/// check to its commit: no other writer, in this process or another, can raise the token
/// in between, so a write that passed the check commits before any newer leader's check.
fn check_fence(transaction: &Transaction<'_>, fence: &Fence) -> Result<(), LedgerError> {
    let token = fence.sql_token()?;
    let mut raise = transaction.prepare_cached(
        "INSERT INTO fences (room, token) VALUES (?1, ?2) \
         ON CONFLICT (room) DO UPDATE SET token = excluded.token \
         WHERE fences.token <= excluded.token RETURNING token",
    )?;
    if raise
        .query_row(params![fence.room, token], |_| Ok(()))
        .optional()?
        .is_some()
    {
        return Ok(());
    }
    let mut current = transaction.prepare_cached("SELECT token FROM fences WHERE room = ?1")?;
    let current: i64 = current.query_row([&fence.room], |row| row.get(0))?;
    Err(fence.stale(current))
}

fn read_balance(connection: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    let mut statement = connection.prepare_cached("SELECT balance FROM accounts WHERE key = ?1")?;
    statement.query_row([key], |row| row.get(0)).optional()
}

fn find_transfer(connection: &Connection, id: &str) -> rusqlite::Result<Option<StoredTransfer>> {
    let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id = ?1");
    let mut statement = connection.prepare_cached(&sql)?;
    statement.query_row([id], transfer_from_row).optional()
}

/// A range scan on the primary key rather than `LIKE`, so `_` and `%` in ids are plain
/// characters and the index is used.
fn select_transfers_with_prefix(
    connection: &Connection,
    prefix: &str,
) -> rusqlite::Result<Vec<StoredTransfer>> {
    let rows = match prefix_upper_bound(prefix) {
        Some(upper) => {
            let sql =
                format!("{SELECT_TRANSFER_COLUMNS} WHERE id >= ?1 AND id < ?2 ORDER BY sequence");
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![prefix, upper], transfer_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
        None => {
            let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id >= ?1 ORDER BY sequence");
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![prefix], transfer_from_row)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()?
        }
    };
    Ok(rows)
}

fn transfer_from_row(row: &Row<'_>) -> rusqlite::Result<StoredTransfer> {
    let account = |index: usize| -> rusqlite::Result<Account> {
        let key: String = row.get(index)?;
        Account::from_key(&key)
            .ok_or_else(|| corrupt(index, Type::Text, format!("unknown account {key}")))
    };
    let kind_text: String = row.get(5)?;
    let kind = kind_text
        .parse::<TransferKind>()
        .ok()
        .ok_or_else(|| corrupt(5, Type::Text, format!("unknown transfer kind {kind_text}")))?;
    let multiplier: Option<i64> = row.get(8)?;
    let multiplier_hundredths = multiplier
        .map(|value| {
            u64::try_from(value)
                .map_err(|_| corrupt(8, Type::Integer, format!("negative multiplier {value}")))
        })
        .transpose()?;
    Ok(StoredTransfer {
        transfer: Transfer {
            id: row.get(0)?,
            debit: account(2)?,
            credit: account(3)?,
            amount_minor: row.get(4)?,
            kind,
            multiplier_hundredths,
        },
        debit_balance_after_minor: row.get(6)?,
        credit_balance_after_minor: row.get(7)?,
        sequence: row.get(1)?,
    })
}

fn upsert_round(connection: &Connection, record: &RoundRecord) -> rusqlite::Result<()> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO rounds (room, round, hash, crash_hundredths, started_at_ms, ended_at_ms, \
         status, bets_total_minor, payouts_total_minor) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
         ON CONFLICT (room, round) DO UPDATE SET hash = excluded.hash, \
         crash_hundredths = excluded.crash_hundredths, started_at_ms = excluded.started_at_ms, \
         ended_at_ms = excluded.ended_at_ms, status = excluded.status, \
         bets_total_minor = excluded.bets_total_minor, \
         payouts_total_minor = excluded.payouts_total_minor",
    )?;
    statement.execute(params![
        record.room,
        to_sql_integer(record.round)?,
        record.hash,
        to_sql_integer(record.crash_hundredths)?,
        to_sql_integer(record.started_at_ms)?,
        record.ended_at_ms.map(to_sql_integer).transpose()?,
        record.status.as_str(),
        record.bets_total_minor,
        record.payouts_total_minor,
    ])?;
    Ok(())
}

fn round_from_row(row: &Row<'_>) -> rusqlite::Result<RoundRecord> {
    let unsigned = |index: usize| -> rusqlite::Result<u64> {
        let value: i64 = row.get(index)?;
        u64::try_from(value)
            .map_err(|_| corrupt(index, Type::Integer, format!("negative value {value}")))
    };
    let ended_at_ms: Option<i64> = row.get(5)?;
    let status_text: String = row.get(6)?;
    Ok(RoundRecord {
        room: row.get(0)?,
        round: unsigned(1)?,
        hash: row.get(2)?,
        crash_hundredths: unsigned(3)?,
        started_at_ms: unsigned(4)?,
        ended_at_ms: match ended_at_ms {
            Some(_) => Some(unsigned(5)?),
            None => None,
        },
        status: status_text
            .parse::<RoundStatus>()
            .ok()
            .ok_or_else(|| corrupt(6, Type::Text, format!("unknown round status {status_text}")))?,
        bets_total_minor: row.get(7)?,
        payouts_total_minor: row.get(8)?,
    })
}

/// SQLite integers are i64; the journal's u64 fields and multipliers stay far below
/// `i64::MAX`, and one that does not is refused rather than wrapped.
fn to_sql_integer(value: u64) -> rusqlite::Result<i64> {
    i64::try_from(value).map_err(|error| rusqlite::Error::ToSqlConversionFailure(Box::new(error)))
}

/// A stored value this code did not write: surfaced as a storage error, never guessed at.
fn corrupt(column: usize, column_type: Type, message: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, column_type, message.into())
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::ledger::conformance::ledger_conformance_tests;
    use crate::ledger::conformance::{player, transfer};

    mod in_memory {
        use super::*;

        ledger_conformance_tests!(|| async {
            let ledger: Box<dyn Ledger> = Box::new(SqliteLedger::open_in_memory().unwrap());
            (ledger, ())
        });
    }

    mod on_file {
        use super::*;

        ledger_conformance_tests!(|| async {
            let directory = tempfile::tempdir().unwrap();
            let ledger = SqliteLedger::open(&directory.path().join("ledger.db")).unwrap();
            (Box::new(ledger) as Box<dyn Ledger>, directory)
        });
    }

    #[tokio::test]
    async fn data_survives_close_and_reopen() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        let round = RoundRecord {
            room: "main".into(),
            round: 7,
            hash: "ab".repeat(32),
            crash_hundredths: 257,
            started_at_ms: 1_700_000_000_000,
            ended_at_ms: None,
            status: RoundStatus::Flying,
            bets_total_minor: 40,
            payouts_total_minor: 0,
        };
        let first_bet = {
            let ledger = SqliteLedger::open(&path).unwrap();
            ledger
                .apply_batch(vec![
                    transfer("g:a", Account::Mint, player("a"), 100),
                    transfer("b:a", player("a"), Account::House, 40),
                ])
                .await
                .unwrap();
            ledger.record_round(round.clone()).await.unwrap();
            ledger.transfer("b:a").await.unwrap().unwrap()
        };
        let ledger = SqliteLedger::open(&path).unwrap();
        assert_eq!(ledger.balance(&player("a")).await.unwrap(), 60);
        assert_eq!(ledger.balance(&Account::House).await.unwrap(), 40);
        assert_eq!(ledger.transfer("b:a").await.unwrap().unwrap(), first_bet);
        assert_eq!(ledger.unfinished_rounds("main").await.unwrap(), vec![round]);
        let retried = ledger
            .apply_batch(vec![
                transfer("b:a", player("a"), Account::House, 40),
                transfer("b:a:2", player("a"), Account::House, 10),
            ])
            .await
            .unwrap();
        assert_eq!(
            retried[0],
            TransferOutcome::Committed {
                debit_balance_after_minor: 60,
                credit_balance_after_minor: 40,
                replayed: true,
            }
        );
        let second = ledger.transfer("b:a:2").await.unwrap().unwrap();
        assert!(second.sequence > first_bet.sequence, "sequence continues");
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
    }

    #[test]
    fn schema_refuses_a_negative_player_balance_written_behind_the_code() {
        let ledger = SqliteLedger::open_in_memory().unwrap();
        let connection = ledger.connection.lock().unwrap();
        let negative = connection.execute(
            "INSERT INTO accounts (key, balance) VALUES ('player:x', -1)",
            [],
        );
        assert!(negative.is_err(), "CHECK constraint holds");
        connection
            .execute(
                "INSERT INTO accounts (key, balance) VALUES ('house', -1)",
                [],
            )
            .unwrap();
        let insert = |amount: i64, multiplier: Option<i64>| {
            connection.execute(
                "INSERT INTO transfers (id, sequence, debit, credit, amount, kind, \
                 debit_balance_after, credit_balance_after, created_at_ms, multiplier_hundredths) \
                 VALUES ('t', 1, 'mint', 'house', ?1, 'grant', 0, 0, 0, ?2)",
                params![amount, multiplier],
            )
        };
        assert!(insert(0, None).is_err(), "CHECK constraint holds");
        assert!(insert(1, Some(99)).is_err(), "CHECK constraint holds");
        let negative_token = connection.execute("INSERT INTO fences VALUES ('main', -1)", []);
        assert!(negative_token.is_err(), "CHECK constraint holds");
        insert(1, Some(100)).unwrap();
    }

    /// A database written before multipliers and fences (schema version 1) migrates on
    /// open; its transfers read back with no multiplier and fenced writes work at once.
    #[tokio::test]
    async fn a_ledger_from_the_first_schema_version_migrates() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        {
            let mut connection = Connection::open(&path).unwrap();
            migrate(&mut connection, "old", &MIGRATIONS[..1]).unwrap();
            connection
                .execute_batch(
                    "INSERT INTO accounts VALUES ('mint', -100), ('player:a', 100); \
                     INSERT INTO transfers VALUES \
                     ('g:a', 1, 'mint', 'player:a', 100, 'grant', -100, 100, 0);",
                )
                .unwrap();
        }
        let ledger = SqliteLedger::open(&path).unwrap();
        let version: i64 = ledger
            .connection
            .lock()
            .unwrap()
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .unwrap();
        assert_eq!(version, i64::try_from(MIGRATIONS.len()).unwrap());
        let old = ledger.transfer("g:a").await.unwrap().unwrap();
        assert_eq!(
            old.transfer,
            transfer("g:a", Account::Mint, player("a"), 100)
        );
        assert_eq!(old.transfer.multiplier_hundredths, None);
        let fence = Fence {
            room: "main".into(),
            token: 1,
        };
        let mut bet = transfer("b:a", player("a"), Account::House, 40);
        bet.multiplier_hundredths = Some(150);
        let outcomes = ledger
            .apply_batch_fenced(vec![bet.clone()], &fence)
            .await
            .unwrap();
        assert!(matches!(outcomes[0], TransferOutcome::Committed { .. }));
        assert_eq!(ledger.transfer("b:a").await.unwrap().unwrap().transfer, bet);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("ledger.db");
        drop(SqliteLedger::open(&path).unwrap());
        let connection = Connection::open(&path).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
        drop(connection);
        match SqliteLedger::open(&path) {
            Err(LedgerError::SchemaTooNew { found: 99, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.err()),
        }
    }

    /// Group-commit throughput on a file database: `cargo test --release --lib
    /// bets_per_second -- --ignored --nocapture`. Prints; asserts nothing about speed.
    #[tokio::test]
    #[ignore = "benchmark"]
    async fn bets_per_second_by_batch_size() {
        let directory = tempfile::tempdir().unwrap();
        let ledger = SqliteLedger::open(&directory.path().join("ledger.db")).unwrap();
        crate::ledger::conformance::bets_per_second(&ledger).await;
    }
}
