//! The SQLite ledger: the embedded default implementation of [`Ledger`].
//!
//! Owns the SQLite database: its connection and the calls of the trait here, the schema and
//! its migrations (`schema`), the group-commit write path (`batch`), the rooms' fencing
//! tokens (`fence`), the rows read and written (`rows`) and the players' display names
//! (`names`).
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

mod admin;
mod batch;
mod fence;
mod names;
mod rows;
mod schema;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, TransactionBehavior, params};

use super::plan::prepare;
use super::{
    Account, AuditEntry, Fence, Ledger, LedgerError, NameOutcome, PlayerBet, Restriction,
    RestrictionChange, RoomControls, RoomControlsChange, RoundRecord, SELECT_ROUND_COLUMNS,
    StoredTransfer, Transfer, TransferOutcome, acquired_token,
};
use batch::apply_batch_blocking;
use fence::{ACQUIRE_FENCE_SQL, check_fence};
use rows::{
    find_transfer, read_balance, round_from_row, select_transfers_with_prefix, to_sql_integer,
    upsert_round,
};
use schema::{MIGRATIONS, migrate};

use crate::display_name::DisplayName;

/// How long a writer waits for a lock held by another connection, in milliseconds.
const BUSY_TIMEOUT_MS: u64 = 5_000;

/// Prepared statements cached per connection; more than the distinct queries below, so
/// none is ever re-prepared.
const STATEMENT_CACHE_STATEMENTS_MAX: usize = 32;

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

    /// The newest `limit` rounds of `room` that meet `condition` (SQL after the room's).
    async fn newest_rounds(
        &self,
        room: &str,
        limit: usize,
        condition: &'static str,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        let room = room.to_owned();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.run(move |connection| {
            let sql = format!(
                "{SELECT_ROUND_COLUMNS} WHERE room = ?1 {condition} ORDER BY round DESC LIMIT ?2"
            );
            let mut statement = connection.prepare_cached(&sql)?;
            let rows = statement.query_map(params![room, limit], round_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
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
        self.newest_rounds(room, limit, "").await
    }

    async fn settled_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        self.newest_rounds(room, limit, "AND status = 'crashed'")
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

    async fn write_room_controls(
        &self,
        change: &RoomControlsChange,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        let (change, fence) = (change.clone(), fence.cloned());
        self.run(move |connection| admin::write_room_controls(connection, &change, fence.as_ref()))
            .await
    }

    async fn room_controls(&self, room: &str) -> Result<Option<RoomControls>, LedgerError> {
        let room = room.to_owned();
        self.run(move |connection| admin::room_controls(connection, &room))
            .await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), LedgerError> {
        let entry = entry.clone();
        self.run(move |connection| admin::append_audit(connection, &entry))
            .await
    }

    async fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, LedgerError> {
        self.run(move |connection| admin::audit_entries(connection, limit))
            .await
    }

    async fn player_bets(&self, player: &str, limit: usize) -> Result<Vec<PlayerBet>, LedgerError> {
        let player = player.to_owned();
        self.run(move |connection| admin::player_bets(connection, &player, limit))
            .await
    }

    async fn write_restriction(&self, change: &RestrictionChange) -> Result<bool, LedgerError> {
        let change = change.clone();
        self.run(move |connection| admin::write_restriction(connection, &change))
            .await
    }

    async fn restricted_players(
        &self,
        restriction: Restriction,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        self.run(move |connection| admin::restricted_players(connection, restriction, limit))
            .await
    }

    async fn set_display_name(
        &self,
        player: &str,
        name: &DisplayName,
        at_ms: u64,
    ) -> Result<NameOutcome, LedgerError> {
        let (player, name) = (player.to_owned(), name.clone());
        self.run(move |connection| names::set_display_name(connection, &player, &name, at_ms))
            .await
    }

    async fn display_name(&self, player: &str) -> Result<Option<String>, LedgerError> {
        let player = player.to_owned();
        self.run(move |connection| names::display_name(connection, &player))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::conformance::ledger_conformance_tests;
    use crate::ledger::conformance::{player, transfer};
    use crate::ledger::{RoundStatus, TransferOutcome};

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
