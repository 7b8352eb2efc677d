//! The PostgreSQL ledger: the cluster-mode implementation of [`Ledger`].
//!
//! Owns the PostgreSQL schema, its embedded migrations and the group-commit write path
//! that several engine processes may run against one database at the same time.
//!
//! A batch is one READ COMMITTED transaction made of a few set-based statements:
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
//!
//! Fencing: a fenced batch (or round record) first raises its room's row in `fences`
//! (see `check_fence`); that row lock, held to the commit, orders the writes of a
//! deposed leader and its successor.
//!
//! The schema's CHECK constraints (positive amounts, player balances never negative) are
//! the last line of defence; the code checks first and asserts the money invariants.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, Runtime, Transaction};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::plan::{BatchReads, NewTransfer, plan_batch, prepare};
use super::{
    Account, Fence, Ledger, LedgerError, RoundRecord, RoundStatus, SELECT_ROUND_COLUMNS,
    SELECT_TRANSFER_COLUMNS, StoredTransfer, Transfer, TransferKind, TransferOutcome,
    acquired_token, prefix_upper_bound,
};

/// Attempts of one batch lost to concurrent writers (deadlock, serialization failure, an
/// id committed elsewhere meanwhile) before `apply_batch` gives up with `Contention`.
const SERIALIZATION_RETRIES_MAX: u32 = 8;

/// How long a call waits for a free pooled connection, in milliseconds.
const POOL_WAIT_TIMEOUT_MS: u64 = 10_000;

/// How long opening one connection may take when the URL sets no `connect_timeout`, in
/// milliseconds.
const CONNECT_TIMEOUT_MS: u64 = 5_000;

/// The `pg_advisory_xact_lock` key serializing migrations across processes: "aloft" in
/// ASCII, so an operator can recognize it in `pg_locks`.
const MIGRATION_LOCK_KEY: i64 = 0x61_6c_6f_66_74;

/// Schema steps, applied in order; `aloft_schema_migrations` holds one row per step
/// applied. Append only: a released step is never edited, a change is a new step.
/// Ids and account keys compare bytewise (`COLLATE "C"`), whatever the database's locale,
/// so prefix ranges match SQLite's and every writer locks accounts in the same order.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE accounts (
    key TEXT COLLATE "C" PRIMARY KEY,
    balance BIGINT NOT NULL,
    CHECK (balance >= 0 OR key NOT LIKE 'player:%')
);

CREATE TABLE transfers (
    id TEXT COLLATE "C" PRIMARY KEY,
    sequence BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    debit TEXT COLLATE "C" NOT NULL,
    credit TEXT COLLATE "C" NOT NULL,
    amount BIGINT NOT NULL CHECK (amount > 0),
    kind TEXT NOT NULL CHECK (kind IN ('grant', 'bet', 'payout', 'refund')),
    debit_balance_after BIGINT NOT NULL,
    credit_balance_after BIGINT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    CHECK (debit <> credit),
    CHECK (debit_balance_after >= 0 OR debit NOT LIKE 'player:%')
);

CREATE TABLE rounds (
    room TEXT NOT NULL,
    round BIGINT NOT NULL CHECK (round >= 0),
    hash TEXT NOT NULL,
    crash_hundredths BIGINT NOT NULL CHECK (crash_hundredths >= 100),
    started_at_ms BIGINT NOT NULL CHECK (started_at_ms >= 0),
    ended_at_ms BIGINT NULL CHECK (ended_at_ms >= 0),
    status TEXT NOT NULL CHECK (status IN ('betting', 'flying', 'crashed', 'aborted')),
    bets_total_minor BIGINT NOT NULL CHECK (bets_total_minor >= 0),
    payouts_total_minor BIGINT NOT NULL CHECK (payouts_total_minor >= 0),
    PRIMARY KEY (room, round)
);

-- Recovery looks up a room's unfinished rounds at every engine start.
CREATE INDEX rounds_unfinished ON rounds (room, round)
    WHERE status IN ('betting', 'flying');
"#,
    r#"
-- A bet's auto-cashout target or a payout's multiplier, so a standby resumes the round.
-- NOT VALID: every existing row is NULL, which passes, so skipping the check's full scan
-- of `transfers` keeps this step's exclusive lock short on a large ledger; new rows are
-- checked all the same.
ALTER TABLE transfers ADD COLUMN multiplier_hundredths BIGINT NULL,
    ADD CONSTRAINT transfers_multiplier_hundredths_check
        CHECK (multiplier_hundredths >= 100) NOT VALID;

-- The highest fencing token that wrote each room (see `check_fence`).
CREATE TABLE fences (
    room TEXT PRIMARY KEY,
    token BIGINT NOT NULL CHECK (token >= 0)
);
"#,
    super::GUEST_EXPIRY_INDEXES,
];

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
        mut config: tokio_postgres::Config,
        pool_size_max: usize,
    ) -> Result<PostgresLedger, LedgerError> {
        let url = describe(&config);
        let connect_error =
            |source: Box<dyn std::error::Error + Send + Sync>| LedgerError::Connect {
                url: url.clone(),
                source,
            };
        if pool_size_max == 0 {
            return Err(connect_error("pool_size_max must be at least 1".into()));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_millis(CONNECT_TIMEOUT_MS));
        }
        if config.get_application_name().is_none() {
            config.application_name("aloft");
        }
        // Statements are prepared once per connection, and PostgreSQL then settles on a
        // generic plan after five runs. On a young ledger that plan is made while the
        // tables are nearly empty (a sequential scan), and it stays until autovacuum next
        // analyzes them, making `id = ANY(...)` cost a scan of every transfer meanwhile.
        // Planning each run afresh costs microseconds and always sees the real table size.
        let options = format!(
            "{} -c plan_cache_mode=force_custom_plan",
            config.get_options().unwrap_or("")
        );
        config.options(options.trim_start());
        let manager = Manager::from_config(config, NoTls, ManagerConfig::default());
        let pool = Pool::builder(manager)
            .max_size(pool_size_max)
            .wait_timeout(Some(Duration::from_millis(POOL_WAIT_TIMEOUT_MS)))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|error| connect_error(Box::new(error)))?;
        let ledger = PostgresLedger {
            pool,
            url: url.clone(),
        };
        match ledger.migrate().await {
            Ok(()) => Ok(ledger),
            Err(LedgerError::Pool(error)) => Err(connect_error(Box::new(error))),
            Err(LedgerError::Postgres(error)) => Err(connect_error(Box::new(error))),
            Err(other) => Err(other),
        }
    }

    /// Applies the migrations the database has not seen yet, all in one transaction
    /// (PostgreSQL's DDL is transactional, so a crash leaves the old version whole) under
    /// an advisory lock, so processes starting at once migrate one after the other.
    /// Idempotent; `connect` calls it, and so will `aloft migrate`.
    pub async fn migrate(&self) -> Result<(), LedgerError> {
        let mut client = self.client().await?;
        migrate(&mut client, &self.url, MIGRATIONS).await
    }

    async fn client(&self) -> Result<Object, LedgerError> {
        Ok(self.pool.get().await?)
    }

    /// `apply_batch`, behind `fence` when one is given: every attempt checks it anew.
    async fn apply(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        let Some(reads) = prepare(&batch, fence)? else {
            return Ok(Vec::new());
        };
        for attempt in 1..=SERIALIZATION_RETRIES_MAX {
            match self.apply_batch_once(&batch, &reads, fence).await {
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

    /// `record_round`, behind `fence` when one is given.
    async fn record(&self, record: RoundRecord, fence: Option<&Fence>) -> Result<(), LedgerError> {
        let mut client = self.client().await?;
        let transaction = read_committed(&mut client).await?;
        if let Some(fence) = fence {
            check_fence(&transaction, fence).await?;
        }
        let statement = transaction
            .prepare_cached(
                "INSERT INTO rounds (room, round, hash, crash_hundredths, started_at_ms, \
                 ended_at_ms, status, bets_total_minor, payouts_total_minor) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (room, round) DO UPDATE SET hash = excluded.hash, \
                 crash_hundredths = excluded.crash_hundredths, \
                 started_at_ms = excluded.started_at_ms, ended_at_ms = excluded.ended_at_ms, \
                 status = excluded.status, bets_total_minor = excluded.bets_total_minor, \
                 payouts_total_minor = excluded.payouts_total_minor",
            )
            .await?;
        let ended_at_ms = record
            .ended_at_ms
            .map(|value| to_sql_integer("ended_at_ms", value))
            .transpose()?;
        transaction
            .execute(
                &statement,
                &[
                    &record.room,
                    &to_sql_integer("round", record.round)?,
                    &record.hash,
                    &to_sql_integer("crash_hundredths", record.crash_hundredths)?,
                    &to_sql_integer("started_at_ms", record.started_at_ms)?,
                    &ended_at_ms,
                    &record.status.as_str(),
                    &record.bets_total_minor,
                    &record.payouts_total_minor,
                ],
            )
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    /// One attempt at a batch in its own transaction. `Ok(None)` means another writer
    /// committed one of the batch's ids (or removed an unused guest's account) meanwhile:
    /// the attempt was rolled back, and the next one will see the change.
    async fn apply_batch_once(
        &self,
        batch: &[Transfer],
        reads: &BatchReads,
        fence: Option<&Fence>,
    ) -> Result<Option<Vec<TransferOutcome>>, LedgerError> {
        let mut client = self.client().await?;
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
}

#[async_trait]
impl Ledger for PostgresLedger {
    async fn write_batch(
        &self,
        batch: Vec<Transfer>,
        fence: Option<&Fence>,
    ) -> Result<Vec<TransferOutcome>, LedgerError> {
        self.apply(batch, fence).await
    }

    async fn balance(&self, account: &Account) -> Result<i64, LedgerError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT balance FROM accounts WHERE key = $1")
            .await?;
        let row = client.query_opt(&statement, &[&account.key()]).await?;
        Ok(row.map(|row| row.try_get(0)).transpose()?.unwrap_or(0))
    }

    async fn total_balance(&self) -> Result<i64, LedgerError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached("SELECT COALESCE(SUM(balance), 0)::BIGINT FROM accounts")
            .await?;
        Ok(client.query_one(&statement, &[]).await?.try_get(0)?)
    }

    async fn transfer(&self, id: &str) -> Result<Option<StoredTransfer>, LedgerError> {
        let client = self.client().await?;
        let sql = format!("{SELECT_TRANSFER_COLUMNS} WHERE id = $1");
        let statement = client.prepare_cached(&sql).await?;
        let row = client.query_opt(&statement, &[&id]).await?;
        row.as_ref().map(transfer_from_row).transpose()
    }

    /// A range scan on the primary key rather than `LIKE` (see [`prefix_upper_bound`]).
    async fn transfers_with_prefix(
        &self,
        prefix: &str,
    ) -> Result<Vec<StoredTransfer>, LedgerError> {
        let client = self.client().await?;
        let rows = match prefix_upper_bound(prefix) {
            Some(upper) => {
                let sql = format!(
                    "{SELECT_TRANSFER_COLUMNS} WHERE id >= $1 AND id < $2 ORDER BY sequence"
                );
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

    async fn write_round(
        &self,
        record: RoundRecord,
        fence: Option<&Fence>,
    ) -> Result<(), LedgerError> {
        self.record(record, fence).await
    }

    /// One statement, so one transaction: the UPSERT's row lock serializes racing
    /// acquirers, and READ COMMITTED makes each increment the newest committed token.
    async fn acquire_fence(&self, room: &str) -> Result<u64, LedgerError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO fences (room, token) VALUES ($1, 1) \
                 ON CONFLICT (room) DO UPDATE SET token = fences.token + 1 RETURNING token",
            )
            .await?;
        let token: i64 = client.query_one(&statement, &[&room]).await?.try_get(0)?;
        acquired_token(room, token)
    }

    async fn recent_rounds(
        &self,
        room: &str,
        limit: usize,
    ) -> Result<Vec<RoundRecord>, LedgerError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let client = self.client().await?;
        let sql = format!("{SELECT_ROUND_COLUMNS} WHERE room = $1 ORDER BY round DESC LIMIT $2");
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &[&room, &limit]).await?;
        rows.iter().map(round_from_row).collect()
    }

    /// Locks the mint first, then the candidates' accounts (key order, as every batch
    /// does), and checks again under those locks that none ever bet: a bet must lock its
    /// player's account, so none can land between the check and the delete. A batch
    /// that saw an account just before it was deleted retries (`lock_accounts`).
    async fn expire_unused_guests(
        &self,
        granted_before_ms: u64,
        guests_max: usize,
    ) -> Result<u64, LedgerError> {
        let granted_before_ms = i64::try_from(granted_before_ms).unwrap_or(i64::MAX);
        let guests_max = i64::try_from(guests_max).unwrap_or(i64::MAX);
        let mut client = self.client().await?;
        let transaction = read_committed(&mut client).await?;
        transaction
            .execute("SELECT 1 FROM accounts WHERE key = 'mint' FOR UPDATE", &[])
            .await?;
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
        let keys: Vec<String> = candidates
            .iter()
            .map(|row| row.try_get(1))
            .collect::<Result<_, _>>()?;
        let played: BTreeSet<String> = transaction
            .query(
                "SELECT DISTINCT debit FROM transfers WHERE debit = ANY($1)",
                &[&keys],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        let mut grant_ids = Vec::new();
        let mut unused_keys = Vec::new();
        let mut returned_minor = 0i64;
        for row in &candidates {
            let key: String = row.try_get(1)?;
            if !played.contains(&key) {
                grant_ids.push(row.try_get::<_, String>(0)?);
                returned_minor += row.try_get::<_, i64>(2)?;
                unused_keys.push(key);
            }
        }
        transaction
            .execute("DELETE FROM transfers WHERE id = ANY($1)", &[&grant_ids])
            .await?;
        transaction
            .execute("DELETE FROM accounts WHERE key = ANY($1)", &[&unused_keys])
            .await?;
        transaction
            .execute(
                "UPDATE accounts SET balance = balance + $1 WHERE key = 'mint'",
                &[&returned_minor],
            )
            .await?;
        transaction.commit().await?;
        Ok(unused_keys.len() as u64)
    }

    async fn unfinished_rounds(&self, room: &str) -> Result<Vec<RoundRecord>, LedgerError> {
        let client = self.client().await?;
        let sql = format!(
            "{SELECT_ROUND_COLUMNS} WHERE room = $1 AND status IN ('betting', 'flying') \
             ORDER BY round ASC"
        );
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &[&room]).await?;
        rows.iter().map(round_from_row).collect()
    }
}

/// `PostgresLedger::migrate` with the given `steps` (all of `MIGRATIONS`, but for tests
/// that build an older schema); `url` names the database in errors.
async fn migrate(
    client: &mut tokio_postgres::Client,
    url: &str,
    steps: &[&str],
) -> Result<(), LedgerError> {
    let transaction = client.transaction().await?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    transaction
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS aloft_schema_migrations (\
             version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)",
        )
        .await?;
    let applied: i64 = transaction
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM aloft_schema_migrations",
            &[],
        )
        .await?
        .try_get(0)?;
    let known = i64::try_from(steps.len()).expect("a handful of migrations");
    if applied > known {
        return Err(LedgerError::SchemaTooNew {
            path: url.to_owned(),
            found: applied,
            supported: known,
        });
    }
    let applied = usize::try_from(applied)
        .map_err(|_| LedgerError::Corrupt(format!("schema version {applied}")))?;
    for (version, step) in (1_i64..).zip(steps).skip(applied) {
        transaction.batch_execute(step).await?;
        transaction
            .execute(
                "INSERT INTO aloft_schema_migrations (version, applied_at_ms) \
                 VALUES ($1, $2)",
                &[&version, &now_ms()],
            )
            .await?;
    }
    transaction.commit().await?;
    Ok(())
}

/// Every write transaction is READ COMMITTED, whatever the server's default: the locking
/// arguments above and in `check_fence` are made for it.
async fn read_committed(client: &mut Object) -> Result<Transaction<'_>, LedgerError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await?)
}

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
async fn check_fence(transaction: &Transaction<'_>, fence: &Fence) -> Result<(), LedgerError> {
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

fn transfer_from_row(row: &Row) -> Result<StoredTransfer, LedgerError> {
    let account = |index: usize| -> Result<Account, LedgerError> {
        let key: String = row.try_get(index)?;
        Account::from_key(&key).ok_or_else(|| LedgerError::Corrupt(format!("account {key}")))
    };
    let kind_text: String = row.try_get(5)?;
    let kind = kind_text
        .parse::<TransferKind>()
        .ok()
        .ok_or_else(|| LedgerError::Corrupt(format!("transfer kind {kind_text}")))?;
    let multiplier: Option<i64> = row.try_get(8)?;
    let multiplier_hundredths = multiplier
        .map(|value| {
            u64::try_from(value)
                .map_err(|_| LedgerError::Corrupt(format!("negative multiplier {value}")))
        })
        .transpose()?;
    Ok(StoredTransfer {
        transfer: Transfer {
            id: row.try_get(0)?,
            debit: account(2)?,
            credit: account(3)?,
            amount_minor: row.try_get(4)?,
            kind,
            multiplier_hundredths,
        },
        debit_balance_after_minor: row.try_get(6)?,
        credit_balance_after_minor: row.try_get(7)?,
        sequence: row.try_get(1)?,
    })
}

fn round_from_row(row: &Row) -> Result<RoundRecord, LedgerError> {
    let unsigned = |index: usize| -> Result<u64, LedgerError> {
        let value: i64 = row.try_get(index)?;
        u64::try_from(value)
            .map_err(|_| LedgerError::Corrupt(format!("negative round field {value}")))
    };
    let ended_at_ms: Option<i64> = row.try_get(5)?;
    let status_text: String = row.try_get(6)?;
    Ok(RoundRecord {
        room: row.try_get(0)?,
        round: unsigned(1)?,
        hash: row.try_get(2)?,
        crash_hundredths: unsigned(3)?,
        started_at_ms: unsigned(4)?,
        ended_at_ms: match ended_at_ms {
            Some(_) => Some(unsigned(5)?),
            None => None,
        },
        status: status_text
            .parse::<RoundStatus>()
            .ok()
            .ok_or_else(|| LedgerError::Corrupt(format!("round status {status_text}")))?,
        bets_total_minor: row.try_get(7)?,
        payouts_total_minor: row.try_get(8)?,
    })
}

/// PostgreSQL's BIGINT is signed; a journal value or multiplier above `i64::MAX` is
/// refused rather than wrapped.
fn to_sql_integer(field: &'static str, value: u64) -> Result<i64, LedgerError> {
    i64::try_from(value).map_err(|_| LedgerError::OutOfRange { field, value })
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// The connection target as `postgres://user@host:port/database`, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(index, host)| {
            let name = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(index).or(config.get_ports().first()) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    format!(
        "postgres://{}@{}/{}",
        config.get_user().unwrap_or(""),
        hosts.join(","),
        config.get_dbname().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ledger::conformance::ledger_conformance_tests;
    use crate::ledger::conformance::{assert_fenced, fence, player, transfer};
    use crate::ledger::postgres_test_database::ScratchDatabase;

    /// Connections per test ledger: enough for concurrency, few enough that parallel
    /// tests stay far below the server's `max_connections` (100 by default).
    const TEST_POOL_SIZE_MAX: usize = 4;

    /// How long a test waits for a backend to block on a lock, in 10 ms polls.
    const LOCK_WAIT_POLLS_MAX: usize = 1_000;

    /// Opening the ledger on a scratch database; creating and dropping it is shared with
    /// the cluster tests (`ledger::postgres_test_database`).
    impl ScratchDatabase {
        async fn connect(&self) -> Result<PostgresLedger, LedgerError> {
            PostgresLedger::connect_with_config(self.config.clone(), TEST_POOL_SIZE_MAX).await
        }

        async fn ledger(&self) -> PostgresLedger {
            self.connect().await.expect("the scratch database connects")
        }
    }

    ledger_conformance_tests!(|| async {
        let scratch = ScratchDatabase::create().await;
        let ledger: Box<dyn Ledger> = Box::new(scratch.ledger().await);
        (ledger, scratch)
    });

    fn committed(debit_after: i64, credit_after: i64, replayed: bool) -> TransferOutcome {
        TransferOutcome::Committed {
            debit_balance_after_minor: debit_after,
            credit_balance_after_minor: credit_after,
            replayed,
        }
    }

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

    #[tokio::test]
    async fn schema_refuses_a_negative_player_balance_written_behind_the_code() {
        let scratch = ScratchDatabase::create().await;
        let _ledger = scratch.ledger().await;
        let client = scratch.client().await;
        let negative = client
            .execute(
                "INSERT INTO accounts (key, balance) VALUES ('player:x', -1)",
                &[],
            )
            .await
            .expect_err("CHECK constraint holds");
        assert_eq!(negative.code(), Some(&SqlState::CHECK_VIOLATION));
        client
            .execute(
                "INSERT INTO accounts (key, balance) VALUES ('house', -1)",
                &[],
            )
            .await
            .unwrap();
        let zero_amount = client
            .execute(
                "INSERT INTO transfers (id, debit, credit, amount, kind, debit_balance_after, \
                 credit_balance_after, created_at_ms) \
                 VALUES ('t', 'mint', 'house', 0, 'grant', 0, 0, 0)",
                &[],
            )
            .await
            .expect_err("CHECK constraint holds");
        assert_eq!(zero_amount.code(), Some(&SqlState::CHECK_VIOLATION));
        let below_1x = client
            .execute(
                "INSERT INTO transfers (id, debit, credit, amount, kind, debit_balance_after, \
                 credit_balance_after, created_at_ms, multiplier_hundredths) \
                 VALUES ('t', 'mint', 'house', 1, 'grant', 0, 0, 0, 99)",
                &[],
            )
            .await
            .expect_err("CHECK constraint holds");
        assert_eq!(below_1x.code(), Some(&SqlState::CHECK_VIOLATION));
        let negative_token = client
            .execute("INSERT INTO fences VALUES ('main', -1)", &[])
            .await
            .expect_err("CHECK constraint holds");
        assert_eq!(negative_token.code(), Some(&SqlState::CHECK_VIOLATION));
    }

    /// A database written before multipliers and fences (schema version 1) migrates at
    /// connect; its transfers read back with no multiplier and fenced writes work at once.
    #[tokio::test]
    async fn a_database_from_the_first_schema_version_migrates() {
        let scratch = ScratchDatabase::create().await;
        let mut client = scratch.client().await;
        migrate(&mut client, "old", &MIGRATIONS[..1]).await.unwrap();
        client
            .batch_execute(
                "INSERT INTO accounts VALUES ('mint', -100), ('player:a', 100); \
                 INSERT INTO transfers (id, debit, credit, amount, kind, debit_balance_after, \
                 credit_balance_after, created_at_ms) \
                 VALUES ('g:a', 'mint', 'player:a', 100, 'grant', -100, 100, 0)",
            )
            .await
            .unwrap();
        let ledger = scratch.ledger().await;
        assert_every_migration_applied(&client).await;
        let old = ledger.transfer("g:a").await.unwrap().unwrap();
        assert_eq!(
            old.transfer,
            transfer("g:a", Account::Mint, player("a"), 100)
        );
        assert_eq!(old.transfer.multiplier_hundredths, None);
        let mut bet = transfer("b:a", player("a"), Account::House, 40);
        bet.multiplier_hundredths = Some(150);
        let outcomes = ledger
            .apply_batch_fenced(vec![bet.clone()], &fence("main", 1))
            .await
            .unwrap();
        assert_eq!(outcomes, vec![committed(60, 40, false)]);
        assert_eq!(ledger.transfer("b:a").await.unwrap().unwrap().transfer, bet);
    }

    async fn assert_every_migration_applied(client: &tokio_postgres::Client) {
        let versions: Vec<i64> = client
            .query(
                "SELECT version FROM aloft_schema_migrations ORDER BY version",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let known = i64::try_from(MIGRATIONS.len()).unwrap();
        assert_eq!(versions, (1..=known).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn migrations_are_idempotent_when_processes_start_at_once() {
        let scratch = ScratchDatabase::create().await;
        let (first, second, third) =
            tokio::join!(scratch.connect(), scratch.connect(), scratch.connect());
        let (first, _second, _third) = (first.unwrap(), second.unwrap(), third.unwrap());
        first.migrate().await.unwrap();
        let client = scratch.client().await;
        assert_every_migration_applied(&client).await;
        client
            .execute(
                "INSERT INTO aloft_schema_migrations (version, applied_at_ms) VALUES (99, 0)",
                &[],
            )
            .await
            .unwrap();
        match scratch.connect().await {
            Err(LedgerError::SchemaTooNew { found: 99, .. }) => {}
            other => panic!("expected SchemaTooNew, got {:?}", other.err()),
        }
    }

    #[tokio::test]
    async fn an_unreachable_server_is_named_without_its_password() {
        let url = "postgres://aloft:secret@127.0.0.1:1/ledger?connect_timeout=2";
        let error = PostgresLedger::connect(url, 1)
            .await
            .err()
            .expect("nothing listens on port 1");
        let message = error.to_string();
        assert!(matches!(error, LedgerError::Connect { .. }), "{message}");
        assert!(
            message.contains("postgres://aloft@127.0.0.1:1/ledger"),
            "{message}"
        );
        assert!(!message.contains("secret"), "{message}");
    }

    /// Waits until some backend of the scratch database is blocked on a lock.
    async fn wait_for_a_lock_waiter(client: &tokio_postgres::Client) {
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
