//! The PostgreSQL ledger: the cluster-mode implementation of [`Ledger`], for several
//! engine processes writing one database at the same time.
//!
//! Owns the PostgreSQL schema and the write paths; by concern:
//! - `connection`: the pool, its timeouts, how the database is named in errors, and the
//!   READ COMMITTED transactions every write runs in;
//! - `schema`: the embedded migrations, applied under an advisory lock;
//! - `batch`: the group-commit write path (one transaction per batch, executing
//!   `ledger::plan`, retried when it loses a race);
//! - `fence`: the rooms' fencing tokens (`check_fence`, `acquire_fence`);
//! - `journal`: the round journal; `transfers`: balances and stored transfers;
//!   `guests`: removing unused guests; `names`: players' display names; `columns`: rows
//!   to values and back.
//!
//! Fencing: a fenced batch (or round record) first raises its room's row in `fences`
//! (see `fence::check_fence`); that row lock, held to the commit, orders the writes of a
//! deposed leader and its successor.
//!
//! The schema's CHECK constraints (positive amounts, player balances never negative) are
//! the last line of defence; the code checks first and asserts the money invariants.

mod admin;
mod batch;
mod columns;
mod connection;
mod fence;
mod guests;
mod journal;
mod names;
mod schema;
#[cfg(test)]
mod test_support;
mod transfers;

use async_trait::async_trait;
use deadpool_postgres::Pool;

use super::{
    Account, AuditEntry, Fence, Ledger, LedgerError, NameOutcome, PlayerBet, Restriction,
    RestrictionChange, RoomControls, RoomControlsChange, RoundRecord, StoredTransfer, Transfer,
    TransferOutcome,
};
use crate::display_name::DisplayName;

/// The PostgreSQL ledger. Cheap to share behind an `Arc`; calls run concurrently on the
/// pool's connections.
pub struct PostgresLedger {
    /// Connections to the ledger database; its size bounds this process's concurrency.
    pool: Pool,
    /// The database URL without its password, for error messages.
    url: String,
}

impl PostgresLedger {
    /// Connects to the database at `database_url` (`postgres://user@host:port/db`, no TLS)
    /// with up to `pool_size_max` connections, and applies the migrations it lacks.
    pub async fn connect(
        database_url: &str,
        pool_size_max: usize,
    ) -> Result<PostgresLedger, LedgerError> {
        let config: tokio_postgres::Config =
            database_url.parse().map_err(|error| LedgerError::Connect {
                // Unparsed, the password cannot be told apart: show no part of the URL.
                url: "(unparseable database URL)".to_owned(),
                source: Box::new(error),
            })?;
        PostgresLedger::connect_with_config(config, pool_size_max).await
    }

    async fn connect_with_config(
        config: tokio_postgres::Config,
        pool_size_max: usize,
    ) -> Result<PostgresLedger, LedgerError> {
        let (pool, url) = connection::pool(config, pool_size_max)?;
        let ledger = PostgresLedger { pool, url };
        match ledger.migrate().await {
            Ok(()) => Ok(ledger),
            Err(LedgerError::Pool(error)) => Err(connection::error(&ledger.url, Box::new(error))),
            Err(LedgerError::Postgres(error)) => {
                Err(connection::error(&ledger.url, Box::new(error)))
            }
            Err(other) => Err(other),
        }
    }

    /// Applies the migrations the database has not seen yet, all in one transaction
    /// (PostgreSQL's DDL is transactional, so a crash leaves the old version whole) under
    /// an advisory lock, so processes starting at once migrate one after the other.
    /// Idempotent; `connect` calls it, and so will `aloft migrate`.
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        let mut client = self.pool.get().await?;
        schema::migrate(&mut client, &self.url, schema::MIGRATIONS).await
    }
}

#[async_trait]
impl Ledger for PostgresLedger {
    async fn write_batch(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        batch::write_batch(&self.pool, batch, fence).await
    }

    async fn write_round(
        &self,
        record: RoundRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        journal::write_round(&self.pool, record, fence).await
    }

    async fn balance(&self, account: &Account) -> Result<i64, LedgerError> {
        transfers::balance(&self.pool, account).await
    }

    async fn total_balance(&self) -> Result<i64, LedgerError> {
        transfers::total_balance(&self.pool).await
    }

    async fn transfer(&self, id: &str) -> Result<Option<StoredTransfer>, LedgerError> {
        transfers::transfer(&self.pool, id).await
    }

    async fn transfers_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<StoredTransfer>, LedgerError> {
        transfers::with_prefix(&self.pool, prefix).await
    }

    async fn acquire_fence(&self, room: &str) -> Result<u64, LedgerError> {
        fence::acquire_fence(&self.pool, room).await
    }

    async fn recent_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        journal::recent_rounds(&self.pool, room, limit).await
    }

    async fn settled_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        journal::settled_rounds(&self.pool, room, limit).await
    }

    async fn unfinished_rounds(&self, room: &str) -> Result<Vec<RoundRecord>, LedgerError> {
        journal::unfinished_rounds(&self.pool, room).await
    }

    async fn expire_unused_guests(
        &self,
        granted_before_ms: u64,
        guests_max: usize,
    ) -> Result<u64, LedgerError> {
        guests::expire_unused_guests(&self.pool, granted_before_ms, guests_max).await
    }

    async fn write_room_controls(
        &self,
        change: &RoomControlsChange,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        admin::write_room_controls(&self.pool, change, fence).await
    }

    async fn room_controls(&self, room: &str) -> Result<Option<RoomControls>, LedgerError> {
        admin::room_controls(&self.pool, room).await
    }

    async fn append_audit(&self, entry: &AuditEntry) -> Result<(), LedgerError> {
        admin::append_audit(&self.pool, entry).await
    }

    async fn audit_entries(&self, limit: usize) -> Result<Vec<AuditEntry>, LedgerError> {
        admin::audit_entries(&self.pool, limit).await
    }

    async fn player_bets(&self, player: &str, limit: usize) -> Result<Vec<PlayerBet>, LedgerError> {
        admin::player_bets(&self.pool, player, limit).await
    }

    async fn write_restriction(&self, change: &RestrictionChange) -> Result<bool, LedgerError> {
        admin::write_restriction(&self.pool, change).await
    }

    async fn restricted_players(
        &self,
        restriction: Restriction,
        limit: usize,
    ) -> Result<Vec<String>, LedgerError> {
        admin::restricted_players(&self.pool, restriction, limit).await
    }

    async fn set_display_name(
        &self,
        player: &str,
        name: &DisplayName,
        at_ms: u64,
    ) -> Result<NameOutcome, LedgerError> {
        names::set_display_name(&self.pool, player, name, at_ms).await
    }

    async fn display_name(&self, player: &str) -> Result<Option<String>, LedgerError> {
        names::display_name(&self.pool, player).await
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::committed;
    use super::*;
    use crate::ledger::RoundStatus;
    use crate::ledger::conformance::ledger_conformance_tests;
    use crate::ledger::conformance::{player, transfer};
    use crate::ledger::postgres_test_database::ScratchDatabase;

    ledger_conformance_tests!(|| async {
        let scratch = ScratchDatabase::create().await;
        let ledger: Box<dyn Ledger> = Box::new(scratch.ledger().await);
        (ledger, scratch)
    });

    #[tokio::test]
    async fn data_survives_reconnect() {
        let scratch = ScratchDatabase::create().await;
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
            let ledger = scratch.ledger().await;
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
        let ledger = scratch.ledger().await;
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
        assert_eq!(retried[0], committed(60, 40, true));
        let second = ledger.transfer("b:a:2").await.unwrap().unwrap();
        assert!(second.sequence > first_bet.sequence, "sequence continues");
        assert_eq!(ledger.total_balance().await.unwrap(), 0);
    }
}
