//! The ledger's tables, created and changed by embedded migrations that processes
//! starting at once apply one after the other.

use super::columns::now_ms;
use crate::ledger::{LedgerError, pending_migrations};

/// The `pg_advisory_xact_lock` key serializing migrations across processes: "aloft" in
/// ASCII, so an operator can recognize it in `pg_locks`.
const MIGRATION_LOCK_KEY: i64 = 0x61_6c_6f_66_74;

/// Schema steps, applied in order; `aloft_schema_migrations` holds one row per step
/// applied. Append only: a released step is never edited, a change is a new step.
/// Ids and account keys compare bytewise (`COLLATE "C"`), whatever the database's locale,
/// so prefix ranges match SQLite's and every writer locks accounts in the same order.
pub(super) const MIGRATIONS: &[&str] = &[
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

-- The highest fencing token that wrote each room (see `fence::check_fence`).
CREATE TABLE fences (
    room TEXT PRIMARY KEY,
    token BIGINT NOT NULL CHECK (token >= 0)
);
"#,
    crate::ledger::GUEST_EXPIRY_INDEXES,
    r#"
-- A room's operator controls, written by its leader (fenced) and read at takeover.
CREATE TABLE room_controls (
    room TEXT PRIMARY KEY,
    paused BIGINT NOT NULL CHECK (paused IN (0, 1)),
    bet_amount_min_minor BIGINT NOT NULL CHECK (bet_amount_min_minor >= 1),
    bet_amount_max_minor BIGINT NOT NULL,
    round_profit_max_minor BIGINT NOT NULL,
    CHECK (bet_amount_min_minor <= bet_amount_max_minor),
    CHECK (round_profit_max_minor >= bet_amount_max_minor)
);

-- Every admin action, appended and never changed.
CREATE TABLE audit (
    sequence BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms BIGINT NOT NULL CHECK (at_ms >= 0),
    operator TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('pause_room', 'resume_room', 'set_room_limits',
        'kick_player', 'ban_player')),
    target TEXT NOT NULL,
    state_before TEXT NOT NULL,
    state_after TEXT NOT NULL
);

CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit is append-only'; END $$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
    FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();
"#,
    r#"
-- Players whose tokens every gateway refuses, loaded at each gateway's start.
CREATE TABLE bans (
    player TEXT COLLATE "C" PRIMARY KEY,
    banned_at_ms BIGINT NOT NULL CHECK (banned_at_ms >= 0),
    operator TEXT NOT NULL
);

-- The audit takes 'unban_player' (the constraint's name is PostgreSQL's for the column's).
ALTER TABLE audit DROP CONSTRAINT audit_action_check,
    ADD CONSTRAINT audit_action_check CHECK (action IN ('pause_room', 'resume_room',
        'set_room_limits', 'kick_player', 'ban_player', 'unban_player'));
"#,
    r#"
-- Players whose chat every gateway refuses, loaded at each gateway's start.
CREATE TABLE mutes (
    player TEXT COLLATE "C" PRIMARY KEY,
    muted_at_ms BIGINT NOT NULL CHECK (muted_at_ms >= 0),
    operator TEXT NOT NULL
);

-- The audit takes 'mute_player' and 'unmute_player'.
ALTER TABLE audit DROP CONSTRAINT audit_action_check,
    ADD CONSTRAINT audit_action_check CHECK (action IN ('pause_room', 'resume_room',
        'set_room_limits', 'kick_player', 'ban_player', 'unban_player', 'mute_player',
        'unmute_player'));
"#,
    r#"
-- The names players picked; at most one player holds a key (case, separators and
-- look-alike digits folded), so no two players show as one name.
CREATE TABLE display_names (
    player TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT COLLATE "C" NOT NULL UNIQUE,
    named_at_ms BIGINT NOT NULL CHECK (named_at_ms >= 0)
);
"#,
];

/// `PostgresLedger::migrate` with the given `steps` (all of `MIGRATIONS`, but for tests
/// that build an older schema); `url` names the database in errors.
pub(super) async fn migrate(
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
    for (version, step) in pending_migrations(applied, steps, url)? {
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

#[cfg(test)]
mod tests {
    use tokio_postgres::error::SqlState;

    use super::*;
    use crate::ledger::conformance::{fence, player, transfer};
    use crate::ledger::postgres::test_support::committed;
    use crate::ledger::postgres_test_database::ScratchDatabase;
    use crate::ledger::{Account, Ledger};

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

    /// A database of schema version 4 (audit, no bans) keeps its audit, which takes
    /// `unban_player` from then on and stays append-only.
    #[tokio::test]
    async fn an_audit_of_version_4_survives_the_bans_step() {
        let scratch = ScratchDatabase::create().await;
        let mut client = scratch.client().await;
        migrate(&mut client, "old", &MIGRATIONS[..4]).await.unwrap();
        let insert = |action: &str| {
            format!(
                "INSERT INTO audit (at_ms, operator, action, target, state_before, \
                 state_after) VALUES (5, 'ops', '{action}', 'p', '{{}}', '{{}}')"
            )
        };
        client.batch_execute(&insert("kick_player")).await.unwrap();
        let refused = client.batch_execute(&insert("unban_player")).await;
        assert!(refused.is_err(), "version 4 has no unban_player");
        let ledger = scratch.ledger().await;
        assert_every_migration_applied(&client).await;
        let kept = ledger.audit_entries(10).await.unwrap();
        assert_eq!((kept.len(), kept[0].operator.as_str()), (1, "ops"));
        client.batch_execute(&insert("unban_player")).await.unwrap();
        let changed = client.batch_execute("DELETE FROM audit").await;
        assert!(changed.is_err(), "the audit stays append-only");
    }

    /// A database of schema version 5 (bans, no mutes) keeps its audit, which takes
    /// `mute_player` and `unmute_player` from then on and stays append-only.
    #[tokio::test]
    async fn an_audit_of_version_5_survives_the_mutes_step() {
        let scratch = ScratchDatabase::create().await;
        let mut client = scratch.client().await;
        migrate(&mut client, "old", &MIGRATIONS[..5]).await.unwrap();
        let insert = |action: &str| {
            format!(
                "INSERT INTO audit (at_ms, operator, action, target, state_before, \
                 state_after) VALUES (5, 'ops', '{action}', 'p', '{{}}', '{{}}')"
            )
        };
        client.batch_execute(&insert("unban_player")).await.unwrap();
        let refused = client.batch_execute(&insert("mute_player")).await;
        assert!(refused.is_err(), "version 5 has no mute_player");
        let ledger = scratch.ledger().await;
        assert_every_migration_applied(&client).await;
        let kept = ledger.audit_entries(10).await.unwrap();
        assert_eq!((kept.len(), kept[0].operator.as_str()), (1, "ops"));
        client.batch_execute(&insert("mute_player")).await.unwrap();
        client
            .batch_execute(&insert("unmute_player"))
            .await
            .unwrap();
        let changed = client.batch_execute("DELETE FROM audit").await;
        assert!(changed.is_err(), "the audit stays append-only");
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
}
